public import HTTPTypes
import RampartCore

/// Template and expression-language injection: Log4j lookups (`${jndi:...}`, after undoing
/// the nested `${lower:j}` and `${env:x:-j}` disguises), and expressions inside the
/// delimiters server-side template engines evaluate — `${...}`, `#{...}`, `*{...}`,
/// `{{...}}`, `<%= ... %>`, `@{[...]}` — when their content is code (an operator, a call, a
/// member access), so `{{name}}` in a template string is not a finding and `{{7*7}}` is.
public struct TemplateInjectionDetector: ThreatDetector {
    public let kind = ThreatKind.templateInjection

    public init() {}

    public func inspect(_ value: InspectedValue, into findings: inout [Finding]) {
        let bytes = value.normalized
        guard bytes.contains(UInt8(ascii: "{")) || bytes.contains(UInt8(ascii: "%")) || bytes.contains(UInt8(ascii: "<")) || bytes.contains(UInt8(ascii: "#")) else { return }
        let text = String(decoding: bytes, as: UTF8.self)
        if let rule = Self.analyse(text) { report("template.\(rule)", .critical, value, into: &findings) }
    }

    static func analyse(_ text: String) -> String? {
        if Bytes.contains(text, "${") {
            let resolved = resolveLookups(text)
            for lookup in ["jndi:", "ctx:", "env:", "sys:", "java:", "base64:", "main:", "bundle:", "spring:", "k8s:", "docker:", "log4j:", "web:", "date:", "upper:", "lower:", "marker:", "sd:", "map:", "event:", "script:"] {
                if Bytes.contains(resolved, "${" + lookup) || Bytes.contains(text, "${" + lookup) { return "lookup.\(lookup.dropLast())" }
            }
            if Bytes.contains(resolved, "jndi:") && ["ldap", "rmi", "dns", "iiop"].contains(where: { Bytes.contains(resolved, $0) }) { return "lookup.jndi" }
        }
        for (open, close, name) in delimiters where Bytes.contains(text, open) {
            var from = text.startIndex
            while let start = text[from...].firstRange(of: open) {
                from = start.upperBound
                let end = text[start.upperBound...].firstRange(of: close)?.lowerBound ?? text.endIndex
                let inner = text[start.upperBound..<end]
                if isCode(inner, closed: end != text.endIndex) { return name }
            }
        }
        // Velocity and FreeMarker directives.
        for directive in ["#set(", "#foreach(", "#evaluate(", "<#assign", "<#import", "<#include", "?new(", "freemarker.template.utility", "$class.inspect", "#parse("] where Bytes.contains(text, directive) {
            return "directive"
        }
        return nil
    }

    static let delimiters: [(String, String, String)] = [
        ("{{", "}}", "mustache-expression"), ("${", "}", "dollar-expression"), ("#{", "}", "hash-expression"), ("*{", "}", "selection-expression"),
        ("<%", "%>", "scriptlet"), ("@{", "}", "perl-expression"), ("@(", ")", "razor-expression"), ("{%", "%}", "jinja-statement"), ("[[", "]]", "inline-expression"), ("{php}", "{/php}", "smarty-php"),
    ]

    /// Whether the inside of a template delimiter is an expression rather than a name:
    /// arithmetic, a call, member or index access, a string, a filter.
    static func isCode(_ inner: Substring, closed: Bool) -> Bool {
        let body = inner.trimmingASCIIWhitespace()
        guard !body.isEmpty else { return false }
        let words = body.split(separator: " ")
        if let first = words.first, ["if", "for", "set", "import", "include", "extends", "macro", "block", "raw", "call", "with", "from", "end", "endif", "endfor", "while", "each", "unless"].contains(String(first)), words.count >= 2 || first.hasPrefix("end") {
            return true
        }
        if body.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == " " }) { return false }
        if !closed && body.count > 120 { return false }
        let codeMarks: Set<Character> = ["(", "*", "+", "[", "'", "\"", "|", "=", "@", "$", "{", "`", "!", "~", ":", "<", ">", "/", "%", "^", "&", ";"]
        if body.contains(where: codeMarks.contains) { return true }
        // Member access on a name: `config.items`, `self.__class__`.
        if body.contains("."), body.contains(where: \.isLetter), !body.contains(" ") { return body.contains("__") || body.split(separator: ".").count >= 2 && closed }
        return false
    }

    /// Resolves Log4j's nested lookups to what they print: `${lower:J}` is `j`,
    /// `${env:NOPE:-j}` and `${::-j}` are `j`. Bounded by the input's length.
    static func resolveLookups(_ text: String) -> String {
        var current = Array(text)
        for _ in 0..<32 {
            // The innermost `${...}`: an opening with no `${` before its closing brace.
            guard let close = current.firstIndex(of: "}") else { break }
            var open: Int?
            var i = close - 1
            while i > 0 {
                if current[i] == "{", current[i - 1] == "$" { open = i - 1; break }
                i -= 1
            }
            guard let open else { break }
            let body = String(current[(open + 2)..<close])
            let replacement: String
            if let defaultRange = body.firstRange(of: ":-") {
                replacement = String(body[defaultRange.upperBound...])
            } else if body.hasPrefix("lower:") || body.hasPrefix("upper:") {
                replacement = String(body.dropFirst(6))
            } else {
                // An unresolvable lookup stays, marked so it is not resolved again.
                replacement = "\u{1}" + body + "\u{2}"
            }
            current.replaceSubrange(open...close, with: Array(replacement))
        }
        return String(current).replacing("\u{1}", with: "${").replacing("\u{2}", with: "}")
    }
}

/// PHP code injection: opening tags, superglobals, stream wrappers, serialized objects,
/// dangerous functions called (comments and whitespace before the parenthesis allowed,
/// `(system)(...)` and variable functions too), and `php.ini` directives.
public struct PHPInjectionDetector: ThreatDetector {
    public let kind = ThreatKind.phpInjection

    public init() {}

    public func inspect(_ value: InspectedValue, into findings: inout [Finding]) {
        let bytes = value.normalized
        guard bytes.count >= 3 else { return }
        if let rule = Self.analyse(bytes, present: value.present) { report("php.\(rule)", .critical, value, into: &findings) }
    }

    /// Uploads named as PHP scripts (which a misconfigured server would run) or as PHP
    /// session files (`sess_<id>`, to plant a session): multipart file names and the
    /// `X-Filename` headers of raw uploads. Looked at here, over all values, because a
    /// session file name is letters, digits and `_` only, which per-value inspection skips.
    public func inspect(request: HTTPRequest, values: [InspectedValue], into findings: inout [Finding]) {
        for value in values where value.location.namesAFile {
            if let rule = Self.dangerousUpload(value.normalized) { report("php.upload.\(rule)", .critical, value, into: &findings) }
        }
    }

    static let scriptExtensions: Set<String> = ["php", "php3", "php4", "php5", "php7", "php8", "phtml", "pht", "phar", "phps"]

    static func dangerousUpload(_ bytes: [UInt8]) -> String? {
        // Windows drops trailing dots and spaces from a file name: `a.php.` is `a.php`; and
        // spaces around a dot (`photo. php`) are dropped by the same loose parsers.
        var name = bytes.filter { $0 != 0x20 && $0 != 0 }[...]
        while let last = name.last, last == UInt8(ascii: ".") { name = name.dropLast() }
        if let slash = name.lastIndex(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "\\") }) { name = name[(slash + 1)...] }
        // Apache runs a file with a PHP extension anywhere among its extensions
        // (`shell.php.jpg`), and PHP handlers often match `php` plus anything (`.php907`,
        // `.phpt`).
        for part in name.split(separator: UInt8(ascii: ".")).dropFirst() {
            let ext = String(decoding: part, as: UTF8.self)
            if scriptExtensions.contains(ext) || (ext.hasPrefix("php") && ext.dropFirst(3).allSatisfy { $0.isNumber || $0 == "t" || $0 == "s" }) { return "script" }
        }
        let id = name.dropFirst(5)
        if name.starts(with: "sess_".utf8), id.count >= 20, id.allSatisfy({ Bytes.isLetter($0) || Bytes.isDigit($0) || $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "-") }) {
            return "session-file"
        }
        return nil
    }

    /// `present`: the bytes of `bytes`; each shape below is looked for only when the
    /// characters it needs are there.
    static func analyse(_ bytes: [UInt8], present: ByteSet) -> String? {
        if present.contains(UInt8(ascii: "<")) {
            if Bytes.contains(bytes, "<?php") || Bytes.contains(bytes, "<?=")
                || (Bytes.contains(bytes, "<?") && Bytes.contains(bytes, "?>") && !Bytes.contains(bytes, "<?xml")) || openTag(bytes) { return "open-tag" }
        }
        if codeBlocks.mayMatch(present), let match = codeBlocks.firstMatch(in: bytes) { return "code-block.\(codeBlocks.needles[match.needle])" }
        if superglobals.mayMatch(present), let match = superglobals.firstMatch(in: bytes) { return "superglobal.\(superglobals.needles[match.needle].dropFirst())" }
        if wrappers.mayMatch(present), let match = wrappers.firstMatch(in: bytes) { return "wrapper.\(wrappers.needles[match.needle].dropLast(3))" }
        if present.contains(UInt8(ascii: ":")), serializedObject(bytes) { return "serialized-object" }
        if ini.mayMatch(present) {
            for match in ini.wordMatches(in: bytes) {
                var k = match.end
                while k < bytes.count, Bytes.isSpace(bytes[k]) { k += 1 }
                if k == bytes.count || bytes[k] == UInt8(ascii: "=") { return "ini.\(ini.needles[match.needle])" }
            }
        }
        // The rest are calls (or `$` variables), read with comments and whitespace removed.
        let calls = present.contains(UInt8(ascii: "(")) || present.contains(UInt8(ascii: "`"))
        guard calls || present.contains(UInt8(ascii: "$")) else { return nil }
        let code = Bytes.removingComments(bytes)
        if calls {
            for match in functions.wordMatches(in: code) {
                var k = match.end
                if k < code.count, code[k] == UInt8(ascii: ")"), match.start > 0, code[match.start - 1] == UInt8(ascii: "(") { k += 1 }
                // Names that are also English words must touch their parenthesis: "a copy (2nd ed.)".
                if !englishNames.contains(functions.needles[match.needle]) {
                    while k < code.count, Bytes.isSpace(code[k]) { k += 1 }
                }
                if k < code.count, code[k] == UInt8(ascii: "(") || code[k] == UInt8(ascii: "`") { return "function.\(functions.needles[match.needle])" }
            }
        }
        if present.contains(UInt8(ascii: "$")), variableFunction(code) { return "variable-function" }
        guard present.contains(UInt8(ascii: "(")) else { return nil }
        if callableExpression(code) { return "callable-expression" }
        if let match = extensionFunctions.firstMatch(in: code) {
            var k = match.end
            while k < code.count, Bytes.isWordByte(code[k]) { k += 1 }
            while k < code.count, Bytes.isSpace(code[k]) { k += 1 }
            if k < code.count, code[k] == UInt8(ascii: "(") { return "function.\(extensionFunctions.needles[match.needle])" }
        }
        return nil
    }

    /// `<?` followed by whitespace and then `php`, a statement (`echo`, `print`, `$x`), or
    /// `<?xml` followed by `:` — the short and spaced open tags a filter for `<?php` misses.
    static func openTag(_ bytes: [UInt8]) -> Bool {
        var from = 0
        while let open = Bytes.find(shortOpen, in: bytes, from: from) {
            from = open + 2
            var k = from
            if bytes[k...].starts(with: "xml".utf8) {
                k += 3
                while k < bytes.count, Bytes.isSpace(bytes[k]) { k += 1 }
                if k < bytes.count, bytes[k] == UInt8(ascii: ":") || bytes[k] == UInt8(ascii: "(") || bytes[k] == UInt8(ascii: ";") { return true }
                continue
            }
            guard k < bytes.count, Bytes.isSpace(bytes[k]) else { continue }
            while k < bytes.count, Bytes.isSpace(bytes[k]) { k += 1 }
            let rest = bytes[k...]
            if ["php", "echo", "print", "system", "eval", "include", "require", "$"].contains(where: { rest.starts(with: $0.utf8) }) { return true }
        }
        return false
    }

    private static let shortOpen = Array("<?".utf8)

    /// A call whose callee is an expression that spells a dangerous function once PHP has
    /// evaluated it: `(sy.(st).em)('id')`, `"system"(ls)`, `[system][0](ls)`,
    /// `(string)"sys"."tem"('id')`. Only the statement before the call is read, with quotes,
    /// concatenation dots, brackets, parentheses, casts and indexes removed.
    static func callableExpression(_ bytes: [UInt8]) -> Bool {
        var i = 0
        while let open = bytes[i...].firstIndex(of: UInt8(ascii: "(")) {
            i = open + 1
            var p = open
            while p > 0, Bytes.isSpace(bytes[p - 1]) { p -= 1 }
            guard p > 0, [UInt8(ascii: "\""), UInt8(ascii: "'"), UInt8(ascii: ")"), UInt8(ascii: "]"), UInt8(ascii: "}")].contains(bytes[p - 1]) else { continue }
            var start = p
            while start > 0, bytes[start - 1] != UInt8(ascii: ";") { start -= 1 }
            var folded = String(decoding: bytes[start..<p].filter { Bytes.isLetter($0) || $0 == UInt8(ascii: "_") }, as: UTF8.self)
            for cast in ["string", "array"] where folded.hasPrefix(cast) && folded.count > cast.count { folded.removeFirst(cast.count) }
            if callableNames.contains(folded) { return true }
        }
        return false
    }

    static let callableNames: Set<String> = [
        "system", "exec", "shell_exec", "passthru", "popen", "proc_open", "pcntl_exec", "assert", "eval", "phpinfo", "create_function", "call_user_func",
        "call_user_func_array", "file_put_contents", "file_get_contents", "readfile", "include", "require", "unserialize", "base64_decode",
    ]
    /// Template and forum tags that run PHP: Smarty's `{php}`, BBCode-style `[php]`.
    static let codeBlocks = KeywordMatcher(["{php}", "{/php}", "[php]", "[/php]", "[\\php]"])
    /// Prefixes of PHP extension functions no other language or prose uses, found with a
    /// call after them (`posix_getegid()`, `ldap_get_entries()`, `zlib_decode(`).
    static let extensionFunctions = KeywordMatcher([
        "posix_", "pcntl_", "ldap_", "odbc_", "pg_", "mysqli_", "sodium_", "tidy_", "zend_", "zlib_", "bzdecompress", "bzopen", "gzinflate", "gzdecode",
        "call_user_func", "fsockopen", "shell_exec", "array_diff", "date_add", "date_sub", "file_exists", "is_array", "strip_tags", "unserialize",
        "openssl_", "proc_", "stream_socket", "curl_", "imap_", "ftp_", "socket_", "mb_ereg", "preg_replace", "var_dump", "print_r", "phpinfo",
    ])

    /// `$f(`, `$_(`, `${'a'.'b'}(`, `${@_}`, `$$x`, `$x{...}(`.
    static func variableFunction(_ bytes: [UInt8]) -> Bool {
        var i = 0
        let n = bytes.count
        while i + 1 < n {
            if bytes[i] == UInt8(ascii: "$") {
                var afterDollar = i + 1
                while afterDollar + 1 < n, Bytes.isSpace(bytes[afterDollar]) { afterDollar += 1 }
                let next = bytes[afterDollar]
                if next == UInt8(ascii: "{") {
                    var k = afterDollar + 1
                    while k < n, Bytes.isSpace(bytes[k]) { k += 1 }
                    if k < n, bytes[k] == UInt8(ascii: "'") || bytes[k] == UInt8(ascii: "\"") || bytes[k] == UInt8(ascii: "@") || bytes[k] == UInt8(ascii: "$") || bytes[k] == UInt8(ascii: "_") { return true }
                    // `${a}`, `${ CONSTANT }` as a whole value: a variable variable.
                    if afterDollar > i + 1 || i == 0, let close = bytes[k...].firstIndex(of: UInt8(ascii: "}")), bytes[k..<close].allSatisfy({ Bytes.isWordByte($0) || Bytes.isSpace($0) }),
                       bytes[(close + 1)...].allSatisfy(Bytes.isSpace), close > k { return true }
                }
                if afterDollar == i + 1, next == UInt8(ascii: "_") || Bytes.isLetter(next) {
                    var k = i + 1
                    while k < n, Bytes.isWordByte(bytes[k]) { k += 1 }
                    // `$a['x'][0]{1}` indexes, then the call (`$f (1)` too).
                    while k < n, bytes[k] == UInt8(ascii: "{") || bytes[k] == UInt8(ascii: "[") || Bytes.isSpace(bytes[k]) {
                        if Bytes.isSpace(bytes[k]) { k += 1; continue }
                        let open = bytes[k], close = open == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
                        var depth = 0
                        var j = k
                        while j < n {
                            if bytes[j] == open { depth += 1 } else if bytes[j] == close { depth -= 1; if depth == 0 { break } }
                            j += 1
                        }
                        guard j < n else { break }
                        k = j + 1
                    }
                    // Right after the name any call counts; after a space, only one whose
                    // arguments read as code, so "$USD (dollars)" stays prose.
                    if k < n, bytes[k] == UInt8(ascii: "(") {
                        if !Bytes.isSpace(bytes[k - 1]) { return true }
                        if k + 1 < n, [UInt8(ascii: ")"), UInt8(ascii: "'"), UInt8(ascii: "\""), UInt8(ascii: "$"), UInt8(ascii: "@")].contains(bytes[k + 1]) || Bytes.isDigit(bytes[k + 1]) { return true }
                    }
                }
                if next == UInt8(ascii: "$"), i + 2 < n, Bytes.isLetter(bytes[i + 2]) { return true }
            }
            i += 1
        }
        return false
    }

    /// `O:8:"stdClass":0:{}`, `a:2:{i:0;...}`, `C:11:"ArrayObject":...`.
    static func serializedObject(_ bytes: [UInt8]) -> Bool {
        var i = 0
        let n = bytes.count
        while i + 3 < n {
            let b = bytes[i]
            if (b == UInt8(ascii: "o") || b == UInt8(ascii: "c") || b == UInt8(ascii: "a")), bytes[i + 1] == UInt8(ascii: ":"), i == 0 || !Bytes.isWordByte(bytes[i - 1]) {
                var k = i + 2
                if k < n, bytes[k] == UInt8(ascii: "+") { k += 1 }
                let digits = k
                while k < n, Bytes.isDigit(bytes[k]) { k += 1 }
                if k > digits, k + 1 < n, bytes[k] == UInt8(ascii: ":") {
                    let after = bytes[k + 1]
                    if b == UInt8(ascii: "a"), after == UInt8(ascii: "{") { return true }
                    if b != UInt8(ascii: "a"), after == UInt8(ascii: "\"") { return true }
                }
            }
            i += 1
        }
        return false
    }

    static let englishNames: Set<String> = ["system", "exec", "file", "copy", "link", "touch", "glob", "mail", "include", "require", "extract", "rename", "assert", "eval", "dl", "usort", "getenv", "scandir"]
    static let superglobals = KeywordMatcher(["$_get", "$_post", "$_server", "$_cookie", "$_request", "$_files", "$_env", "$_session", "$globals", "$http_raw_post_data", "$http_get_vars", "$http_post_vars", "$http_server_vars", "$http_cookie_vars", "$http_env_vars", "$http_session_vars", "$php_errormsg", "$argv"])
    static let wrappers = KeywordMatcher(["php://", "phar://", "zlib://", "compress.zlib://", "compress.bzip2://", "expect://", "ssh2.exec://", "ssh2.shell://", "ssh2.tunnel://", "ssh2.sftp://", "ogg://", "rar://", "glob://", "data://", "zip://"])
    static let functions = KeywordMatcher([
        "system", "exec", "shell_exec", "passthru", "popen", "proc_open", "pcntl_exec", "pcntl_fork", "eval", "assert", "assert_options", "create_function",
        "call_user_func", "call_user_func_array", "preg_replace", "preg_replace_callback", "base64_decode", "gzinflate", "gzuncompress", "gzdecode",
        "str_rot13", "convert_uudecode", "file_get_contents", "file_put_contents", "fopen", "fwrite", "fputs", "readfile", "fpassthru", "include",
        "include_once", "require", "require_once", "phpinfo", "unserialize", "var_dump", "print_r", "var_export", "highlight_file", "show_source",
        "php_uname", "getcwd", "chmod", "chown", "chgrp", "fsockopen", "pfsockopen", "stream_socket_client", "curl_exec", "curl_init", "move_uploaded_file",
        "symlink", "link", "putenv", "ini_set", "ini_get", "ini_restore", "set_time_limit", "array_map", "array_filter", "array_walk", "usort", "uasort", "uksort",
        "ob_start", "extract", "parse_str", "mb_ereg_replace", "posix_getpwuid", "posix_kill", "posix_setuid", "posix_getuid", "getenv", "get_current_user", "getmypid",
        "dl", "mail", "escapeshellarg", "escapeshellcmd", "proc_nice", "proc_terminate", "apache_child_terminate", "register_shutdown_function",
        "register_tick_function", "scandir", "glob", "opendir", "readdir", "file", "unlink", "rmdir", "mkdir", "copy", "rename", "tempnam", "tmpfile",
        "touch", "str_replace", "strrev", "hex2bin", "bin2hex", "gzcompress", "gzdeflate", "gzencode", "urldecode", "rawurldecode", "htmlspecialchars_decode",
        "filter_var", "func_get_args", "get_defined_vars", "get_defined_functions", "get_defined_constants", "error_reporting", "debug_zval_dump",
        "stream_get_contents", "posix_mkfifo", "lchown", "lchgrp", "disk_free_space", "getmyuid", "php_sapi_name", "zend_version", "win_shell_execute",
        "expect_popen", "ftp_connect", "socket_create", "imap_open", "mb_send_mail", "error_log", "fileperms", "phpversion", "gethostbyname", "iterator_apply",
    ])
    static let ini = KeywordMatcher([
        "allow_url_include", "allow_url_fopen", "auto_prepend_file", "auto_append_file", "disable_functions", "open_basedir", "safe_mode", "register_globals",
        "display_errors", "error_log", "session.save_path", "session.auto_start", "file_uploads", "upload_tmp_dir", "magic_quotes_gpc", "enable_dl", "cgi.force_redirect",
        "suhosin.", "include_path", "extension_dir", "sendmail_path", "mail.add_x_header",
    ])
}
