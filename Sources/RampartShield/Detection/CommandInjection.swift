import RampartCore

/// OS command injection, found by reading the input as a shell would: the value is split
/// into commands at `;`, `|`, `&`, newlines, backticks and `$(`, each command's first word
/// is de-obfuscated the way the shell would (quotes, backslashes, empty `$@`/`$?`
/// expansions and path prefixes removed), and a finding is made when a command position
/// holds a real program. A program named at the very start of a value counts only with
/// shell syntax after it, so "cat pictures" is prose and `cat /etc/hosts` is not. Also
/// `${IFS}`-style evasions, brace expansion, Windows batch syntax (`for %a in (..) do`,
/// `if /i ... echo`) and `cmd /c` / PowerShell invocations.
///
/// A command word disguised the way only a shell reads it (`'wh'oami`, `c\at`, `pi$()ng`)
/// is a finding wherever it stands, as is a program run through a wrapper (`time`, `nohup`,
/// `strace`). Also shell globs that expand to system files (`/???/?s`, `/et*/pa??wd`), brace
/// expansions that spell a program (`c{a,oun}t`), function definitions such as fork bombs,
/// shell arithmetic, `alias` definitions, and mail-protocol commands injected after a line
/// break (SMTP, POP3, IMAP). A User-Agent is product tokens; one that starts with a program
/// and its arguments is a command line.
public struct CommandInjectionDetector: ThreatDetector {
    public let kind = ThreatKind.commandInjection
    public let inspectsPlainText = true

    public init() {}

    public func inspect(_ value: InspectedValue, into findings: inout [Finding]) {
        let bytes = value.normalized
        guard bytes.count >= 2 else { return }
        // Plain text (letters, digits, spaces, `-`, `_`) can only be a command line when it
        // starts with a program, a wrapper or a batch keyword.
        if value.isPlain, !Self.startsWithProgram(bytes) { return }
        if let rule = Self.analyse(bytes, present: value.present) ?? Self.headerCommand(bytes, location: value.location) {
            report("rce.\(rule)", .critical, value, into: &findings)
        }
    }

    /// Whether the first word is a program, a wrapper or `if`/`for`, without building more
    /// than a small string.
    static func startsWithProgram(_ bytes: [UInt8]) -> Bool {
        var end = 0
        while end < bytes.count, end < 24, bytes[end] != 0x20 { end += 1 }
        guard end > 0, end < 24 else { return false }
        let word = bytes[..<end]
        return programs.contains(word) || wrappers.contains(word) || word.elementsEqual("if".utf8) || word.elementsEqual("for".utf8)
            || (word.firstIndex(of: UInt8(ascii: "-")).map { programs.contains(word[..<$0]) } ?? false)
    }

    /// A User-Agent is product tokens (`name/version (comment)`) and a Referer a URL; one
    /// that starts with a program followed by arguments (or with a program that is never a
    /// word) is a command line.
    static func headerCommand(_ bytes: [UInt8], location: InputLocation) -> String? {
        guard location.part == .header, location.name == "user-agent" || location.name == "referer" else { return nil }
        guard let word = commandWord(bytes, from: 0), programs.contains(word.name) else { return nil }
        let token = bytes[..<word.end]
        if token.contains(UInt8(ascii: "/")) || token.contains(UInt8(ascii: ":")) { return nil }
        var next = word.end
        while next < bytes.count, Bytes.isSpace(bytes[next]) { next += 1 }
        if next == bytes.count { return neverProse.contains(word.name) || word.obfuscated ? "header-command.\(word.name)" : nil }
        // `Links (2.1; Linux)`, `Go 1.1 package http`: a comment or a version is a product.
        if bytes[next] == UInt8(ascii: "(") || Bytes.isDigit(bytes[next]) { return nil }
        return "header-command.\(word.name)"
    }

    /// `present`: the bytes `bytes` holds, so the string forms below are only made when a
    /// value has what they look for.
    static func analyse(_ bytes: [UInt8], present: ByteSet) -> String? {
        if present.contains(UInt8(ascii: "$")) || present.contains(UInt8(ascii: "/")),
           let rule = evasion(String(decoding: bytes, as: UTF8.self)) { return rule }
        if (windowsHints.mayMatch(present) && windowsHints.firstMatch(in: bytes) != nil)
            || (present.contains(UInt8(ascii: "/")) && Bytes.contains(bytes, "cmd"))
            || (batchTests.mayMatch(present) && batchTests.firstMatch(in: bytes) != nil && Bytes.contains(bytes, "if ")),
           let rule = windows(String(decoding: bytes, as: UTF8.self)) { return rule }
        if let rule = shellSyntax(bytes, present: present) { return rule }
        // Command positions: the start, and after each separator. Pipes, `&&`, backticks and
        // substitutions are shell and nothing else; `;`, a lone `&` and line breaks also
        // occur in prose, so after those a program needs shell-like arguments, unless the
        // separator opens the value (`;id`), which prose never does.
        var starts: [(offset: Int, hard: Bool)] = [(0, false)]
        var i = 0
        let n = bytes.count
        var first = 0
        while first < n, Bytes.isSpace(bytes[first]) || bytes[first] == UInt8(ascii: "'") || bytes[first] == UInt8(ascii: "\"") { first += 1 }
        while i < n {
            let b = bytes[i]
            switch b {
            case UInt8(ascii: ";"), UInt8(ascii: "|"), UInt8(ascii: "&"), 0x0A, 0x0D, UInt8(ascii: "`"):
                var j = i + 1
                while j < n, bytes[j] == b || bytes[j] == UInt8(ascii: "|") || bytes[j] == UInt8(ascii: "&") { j += 1 }
                let hard = b == UInt8(ascii: "|") || b == UInt8(ascii: "`") || (b == UInt8(ascii: "&") && j - i > 1) || (i == first && b != 0x0A && b != 0x0D)
                starts.append((j, hard))
                i = j
            case UInt8(ascii: "$") where i + 1 < n && bytes[i + 1] == UInt8(ascii: "("),
                 UInt8(ascii: "<") where i + 1 < n && bytes[i + 1] == UInt8(ascii: "("),
                 UInt8(ascii: ">") where i + 1 < n && bytes[i + 1] == UInt8(ascii: "("):
                starts.append((i + 2, true))
                i += 2
            default:
                i += 1
            }
        }
        for start in starts {
            guard let word = commandWord(bytes, from: start.offset) else { continue }
            if let rule = aliasDefinition(bytes, name: word.name, at: word.end) { return rule }
            guard programs.contains(word.name) else { continue }
            // `image/png;base64,` and `text/html;charset=utf-8` are media type parameters.
            if start.offset > 0, bytes[start.offset - 1] == UInt8(ascii: ";"), word.end < n, bytes[word.end] == UInt8(ascii: ",") || bytes[word.end] == UInt8(ascii: "=") { continue }
            let name = word.name
            if word.obfuscated { return "obfuscated-command.\(name)" }
            if start.hard, word.end >= n || followedByArgument(bytes, at: word.end) { return "command.\(name)" }
            if shellArgument(bytes, at: word.end) { return "command.\(name)" }
            if start.offset > 0 || word.wrapped, neverProse.contains(name), followedByArgument(bytes, at: word.end) { return "command.\(name)" }
        }
        if let rule = mailCommand(bytes) { return rule }
        return nil
    }

    /// `alias name=value` (options such as `-p` or `+m` between): defines a command.
    static func aliasDefinition(_ bytes: [UInt8], name: String, at end: Int) -> String? {
        guard name == "alias" else { return nil }
        var i = end
        while i < bytes.count {
            while i < bytes.count, Bytes.isSpace(bytes[i]) { i += 1 }
            guard i < bytes.count else { return nil }
            if bytes[i] == UInt8(ascii: "-") || bytes[i] == UInt8(ascii: "+") {
                while i < bytes.count, !Bytes.isSpace(bytes[i]) { i += 1 }
                continue
            }
            var j = i
            while j < bytes.count, Bytes.isWordByte(bytes[j]) || bytes[j] == UInt8(ascii: "-") { j += 1 }
            return j > i && j < bytes.count && bytes[j] == UInt8(ascii: "=") ? "alias-definition" : nil
        }
        return nil
    }

    /// A command word as the shell would run it.
    struct CommandWord {
        let name: String
        /// Where the word ends in the input.
        let end: Int
        /// Whether it came after a wrapper such as `sudo`, `time` or `nohup`.
        var wrapped = false
        /// Whether quotes, escapes or empty expansions were put inside it (`'wh'oami`,
        /// `c\at`, `pi$()ng`), which only a shell undoes.
        var obfuscated = false
    }

    /// The command word at `from`, as the shell would run it: quotes, backslashes and empty
    /// expansions removed, and a directory prefix (`/usr/bin/`) dropped.
    static func commandWord(_ bytes: [UInt8], from start: Int) -> CommandWord? {
        var i = start
        let n = bytes.count
        while i < n, Bytes.isSpace(bytes[i]) || bytes[i] == UInt8(ascii: "(") || bytes[i] == UInt8(ascii: "!") { i += 1 }
        var word: [UInt8] = []
        var raw = i
        var quotes = 0
        var expansion = false
        var markPending = false
        var markInside = false
        while raw < n {
            let b = bytes[raw]
            if b == UInt8(ascii: "`"), raw + 1 < n, bytes[raw + 1] == UInt8(ascii: "`") {
                expansion = true
                raw += 2
                continue
            }
            if Bytes.isSpace(b) || b == UInt8(ascii: ";") || b == UInt8(ascii: "|") || b == UInt8(ascii: "&") || b == UInt8(ascii: ")") || b == UInt8(ascii: "`") || b == UInt8(ascii: ",") || b == UInt8(ascii: "}") { break }
            if b == UInt8(ascii: ">") || b == UInt8(ascii: "<") {
                // `pi<()ng`: an empty process substitution inside a word.
                if raw + 2 < n, bytes[raw + 1] == UInt8(ascii: "("), bytes[raw + 2] == UInt8(ascii: ")"), !word.isEmpty {
                    expansion = true
                    raw += 3
                    continue
                }
                break
            }
            if b == UInt8(ascii: "'") || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") || b == UInt8(ascii: "^") {
                if b != UInt8(ascii: "\\") && b != UInt8(ascii: "^") { quotes += 1 }
                if !word.isEmpty { markPending = true }
                raw += 1
                continue
            }
            if b == UInt8(ascii: "$"), raw + 1 < n, bytes[raw + 1] == UInt8(ascii: "@") || bytes[raw + 1] == UInt8(ascii: "?") || bytes[raw + 1] == UInt8(ascii: "*") || bytes[raw + 1] == UInt8(ascii: "!") {
                expansion = true
                raw += 2
                continue
            }
            if b == UInt8(ascii: "$"), raw + 2 < n, (bytes[raw + 1] == UInt8(ascii: "{") && bytes[raw + 2] == UInt8(ascii: "}")) || (bytes[raw + 1] == UInt8(ascii: "(") && bytes[raw + 2] == UInt8(ascii: ")")) {
                expansion = true
                raw += 3
                continue
            }
            if markPending { markInside = true }
            markPending = false
            word.append(b)
            raw += 1
        }
        guard !word.isEmpty, word.count < 64 else { return nil }
        var slice = word[...]
        if let slash = slice.lastIndex(of: UInt8(ascii: "/")) { slice = slice[(slash + 1)...] }
        if slice.count >= 4, slice.suffix(4).elementsEqual(".exe".utf8) { slice = slice.dropLast(4) }
        if !programs.contains(slice) {
            // `python3.10`, `php7` -> `python`, `php`
            while let last = slice.last, Bytes.isDigit(last) || last == UInt8(ascii: ".") { slice = slice.dropLast() }
            guard !slice.isEmpty else { return nil }
        }
        // `ansible-galaxy`, `chef-shell`, `git-upload-pack`: a program's own subcommands.
        if !programs.contains(slice), let dash = slice.firstIndex(of: UInt8(ascii: "-")), programs.contains(slice[..<dash]) {
            slice = slice[..<dash]
        }
        let name = String(decoding: slice, as: UTF8.self)
        let obfuscated = expansion || (markInside && quotes % 2 == 0)
        if wrappers.contains(slice) {
            var next = raw
            while next < n, Bytes.isSpace(bytes[next]) { next += 1 }
            if next < n, bytes[next] != UInt8(ascii: "-"), var inner = commandWord(bytes, from: next), programs.contains(inner.name) {
                inner.wrapped = true
                inner.obfuscated = inner.obfuscated || obfuscated
                return inner
            }
        }
        return CommandWord(name: name, end: raw, obfuscated: obfuscated)
    }

    /// Words that run the command after them.
    static let wrappers = WordSet([
        "sudo", "doas", "env", "nohup", "exec", "command", "busybox", "timeout", "xargs", "time", "strace", "ltrace", "nice", "ionice", "stdbuf",
    ])

    static func followedByArgument(_ bytes: [UInt8], at end: Int) -> Bool {
        guard end < bytes.count else { return true }
        let b = bytes[end]
        return Bytes.isSpace(b) || b == UInt8(ascii: ";") || b == UInt8(ascii: "|") || b == UInt8(ascii: "&") || b == UInt8(ascii: ">") || b == UInt8(ascii: "<") || b == UInt8(ascii: ")") || b == UInt8(ascii: "`") || b == UInt8(ascii: ",") || b == UInt8(ascii: "}") || b == UInt8(ascii: "$")
    }

    /// Whether what follows a command word reads as shell arguments: an option, a path, a
    /// redirection, a pipe, a variable, or a separator.
    static func shellArgument(_ bytes: [UInt8], at end: Int) -> Bool {
        if end < bytes.count, [UInt8(ascii: ";"), UInt8(ascii: "|"), UInt8(ascii: "&"), UInt8(ascii: ">"), UInt8(ascii: "<"), UInt8(ascii: "`"), 0x0A].contains(bytes[end]) { return true }
        var i = end
        while i < bytes.count, Bytes.isSpace(bytes[i]) { i += 1 }
        guard i < bytes.count, i > end else { return false }
        let b = bytes[i]
        if b == UInt8(ascii: "-"), i + 1 < bytes.count, Bytes.isLetter(bytes[i + 1]) || (bytes[i + 1] == UInt8(ascii: "-") && i + 2 < bytes.count && Bytes.isLetter(bytes[i + 2])) { return true }
        if b == UInt8(ascii: "/") || b == UInt8(ascii: "~") || b == UInt8(ascii: "$") || b == UInt8(ascii: ">") || b == UInt8(ascii: "<") || b == UInt8(ascii: "|") || b == UInt8(ascii: "`") { return true }
        if b == UInt8(ascii: "."), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "/") || bytes[i + 1] == UInt8(ascii: ".") { return true }
        return false
    }

    /// `${IFS}`, `$IFS$9`, `$'\x63at'`, `<<<`, shellshock `() { :; };`.
    static func evasion(_ text: String) -> String? {
        if Bytes.contains(text, "${ifs") || Bytes.contains(text, "$ifs") { return "ifs-evasion" }
        if Bytes.contains(text, "() {") && (Bytes.contains(text, ":;") || Bytes.contains(text, ": ;")) { return "shellshock" }
        if Bytes.contains(text, "/dev/tcp/") || Bytes.contains(text, "/dev/udp/") { return "dev-tcp" }
        return nil
    }

    /// Syntax only a shell has: a function definition (`f(){ f|f& };f`, and Shellshock's
    /// `() {` opening a value), arithmetic (`$((...))`, `$[...]`), brace expansions that
    /// spell a program, and globs that expand to a system file or program.
    private static let globBytes = ByteSet("?*[")

    static func shellSyntax(_ bytes: [UInt8], present: ByteSet) -> String? {
        if present.contains(UInt8(ascii: "{")) {
            var start = 0
            while start < bytes.count, Bytes.isSpace(bytes[start]) { start += 1 }
            if bytes[start...].starts(with: "() {".utf8) || bytes[start...].starts(with: "(){".utf8) { return "shellshock" }
            if functionDefinition(bytes) { return "function-definition" }
            if let rule = braceExpansion(bytes) { return rule }
        }
        if present.contains(UInt8(ascii: "$")) {
            if let dollar = Bytes.find(arithmeticOpen, in: bytes), Bytes.find(arithmeticClose, in: bytes, from: dollar + 3) != nil { return "arithmetic" }
            if let dollar = Bytes.find(bracketArithmetic, in: bytes), bytes[(dollar + 2)...].contains(UInt8(ascii: "]")) { return "arithmetic" }
        }
        if present.contains(UInt8(ascii: "/")), present.containsAny(of: globBytes) {
            for token in bytes.split(whereSeparator: { Bytes.isSpace($0) || $0 == UInt8(ascii: ";") || $0 == UInt8(ascii: "|") || $0 == UInt8(ascii: "&") || $0 == UInt8(ascii: "=") || $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "{") || $0 == UInt8(ascii: "}") }) {
                if Glob.expandsToSystemPath(Array(token)) { return "glob-path" }
            }
        }
        return nil
    }

    private static let arithmeticOpen = Array("$((".utf8), arithmeticClose = Array("))".utf8)
    private static let bracketArithmetic = Array("$[".utf8), emptyParentheses = Array("()".utf8)

    /// `name(){ ... name ... }` where the body runs the function itself in a pipe or the
    /// background: a fork bomb. Bounded: each `(){` is looked at once.
    static func functionDefinition(_ bytes: [UInt8]) -> Bool {
        var from = 0
        while let paren = Bytes.find(emptyParentheses, in: bytes, from: from) {
            from = paren + 2
            var open = from
            while open < bytes.count, Bytes.isSpace(bytes[open]) { open += 1 }
            guard open < bytes.count, bytes[open] == UInt8(ascii: "{") else { continue }
            var nameStart = paren
            while nameStart > 0, Bytes.isWordByte(bytes[nameStart - 1]) || bytes[nameStart - 1] == UInt8(ascii: ":") || bytes[nameStart - 1] == UInt8(ascii: ".") { nameStart -= 1 }
            let name = Array(bytes[nameStart..<paren])
            guard !name.isEmpty, let close = bytes[open...].firstIndex(of: UInt8(ascii: "}")) else { continue }
            let body = Array(bytes[(open + 1)..<close])
            if (body.contains(UInt8(ascii: "|")) || body.contains(UInt8(ascii: "&"))), Bytes.find(name, in: body) != nil { return true }
        }
        return false
    }

    /// `{cat,/etc/hosts}`, `c{a,oun}t`, `{l,-lh}s`, `{,ip,a}`: the words a brace expansion
    /// produces (with the text glued before and after it), when one of them is a program
    /// or a glob of a system file. Prose braces have spaces inside; sets of numbers name no
    /// program.
    static func braceExpansion(_ bytes: [UInt8]) -> String? {
        var from = 0
        while let open = bytes[from...].firstIndex(of: UInt8(ascii: "{")) {
            guard let close = bytes[open...].firstIndex(of: UInt8(ascii: "}")) else { return nil }
            from = close + 1
            let inner = bytes[(open + 1)..<close]
            guard inner.contains(UInt8(ascii: ",")), !inner.contains(where: Bytes.isSpace) else { continue }
            var prefixStart = open
            while prefixStart > 0, Bytes.isWordByte(bytes[prefixStart - 1]) { prefixStart -= 1 }
            var suffixEnd = close + 1
            while suffixEnd < bytes.count, Bytes.isWordByte(bytes[suffixEnd]) { suffixEnd += 1 }
            for alternative in inner.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
                let spelled = Array(bytes[prefixStart..<open]) + alternative.filter { $0 != UInt8(ascii: "'") && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "$") && $0 != UInt8(ascii: "\\") }
                    + Array(bytes[(close + 1)..<suffixEnd])
                if let word = commandWord(spelled, from: 0), programs.contains(word.name), word.end == spelled.count { return "brace-expansion" }
                if Glob.expandsToSystemPath(spelled) { return "brace-expansion" }
            }
        }
        return nil
    }

    /// SMTP, POP3 and IMAP commands on a line of their own in a value that opens with a line
    /// break: text smuggled into a mail session (CRLF injection).
    static func mailCommand(_ bytes: [UInt8]) -> String? {
        guard let firstByte = bytes.first(where: { $0 != 0x20 && $0 != 0x09 }), firstByte == 0x0D || firstByte == 0x0A else { return nil }
        let lines = bytes.split(whereSeparator: { $0 == 0x0D || $0 == 0x0A })
        for (index, line) in lines.enumerated() {
            let words = line.split(separator: 0x20).map { String(decoding: $0, as: UTF8.self) }
            guard let verb = words.first else { continue }
            let text = String(decoding: line, as: UTF8.self)
            if text.hasPrefix("mail from:") || text.hasPrefix("rcpt to:") { return "smtp-command" }
            // A bare verb ends what was injected; a heading in a text does not.
            if words.count == 1, index == lines.count - 1, ["data", "quit", "rset", "noop", "stat", "uidl", "starttls", "capa"].contains(verb) { return "mail-command" }
            if words.count == 2, ["ehlo", "helo", "vrfy", "expn"].contains(verb) { return "mail-command" }
            if words.count == 3, ["auth", "apop"].contains(verb) { return "mail-command" }
            if words.count >= 2, words.count <= 3, ["retr", "dele", "top", "list"].contains(verb), words.dropFirst().allSatisfy({ $0.allSatisfy(\.isNumber) }) { return "pop3-command" }
            // IMAP: a tag, then a command.
            if words.count >= 2, verb.count <= 8, verb.contains(where: \.isNumber), verb.allSatisfy({ $0.isLetter || $0.isNumber }), imapCommands.contains(words[1]) { return "imap-command" }
        }
        return nil
    }

    static let imapCommands: Set<String> = [
        "login", "authenticate", "select", "examine", "create", "delete", "rename", "subscribe", "unsubscribe", "list", "lsub", "status", "append",
        "check", "close", "expunge", "search", "fetch", "store", "copy", "move", "uid", "capability", "noop", "logout", "starttls", "idle", "quit",
    ]

    /// Windows command interpreter syntax: `cmd /c`, `powershell -`, batch `for`/`if`.
    static func windows(_ text: String) -> String? {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0.isNewline || $0 == "&" || $0 == "|" || $0 == ";" })
        for (index, word) in words.enumerated() {
            let next = index + 1 < words.count ? words[index + 1] : ""
            if word == "cmd" || word == "cmd.exe" || word.hasSuffix("\\cmd.exe") || word.hasSuffix("/cmd.exe") {
                if next == "/c" || next == "/k" || next == "/q" || next == "/r" { return "windows-cmd" }
            }
            if word.hasPrefix("powershell") || word.hasPrefix("pwsh") {
                if next.hasPrefix("-") || next.hasPrefix("/") { return "powershell" }
            }
            // PowerShell's Verb-Noun cmdlets that fetch or run code.
            if ["invoke-webrequest", "invoke-restmethod", "invoke-expression", "invoke-command", "invoke-wmimethod", "invoke-item", "start-process", "new-object"].contains(where: { word.hasSuffix($0) }),
               !next.isEmpty { return "powershell-cmdlet" }
            if word == "for", next.hasPrefix("%") || (next.hasPrefix("/") && next.count == 2), text.contains(" in "),
               let inAt = text.firstRange(of: " in "), text[inAt.upperBound...].trimmingASCIIWhitespace().hasPrefix("("),
               let close = text[inAt.upperBound...].firstIndex(of: ")"), text[text.index(after: close)...].trimmingASCIIWhitespace().hasPrefix("do") {
                return "batch-for"
            }
            if word == "if" {
                let rest = words[(index + 1)...].prefix(6).map(String.init)
                let batchWord = rest.contains { ["/i", "not", "exist", "defined", "errorlevel", "%errorlevel%", "cmdextversion", "equ", "neq", "lss", "leq", "gtr", "geq"].contains($0) || $0.hasPrefix("%") || $0.hasPrefix("\"%") || $0.contains("==") || $0.hasPrefix("[%") }
                let batchCompare = text.contains("==") || [" equ ", " neq ", " lss ", " leq ", " gtr ", " geq "].contains(where: text.contains)
                if batchWord && batchCompare { return "batch-if" }
                // `if [not] exist|defined|errorlevel|cmdextversion X command`
                var k = index + 1
                if k < words.count, words[k] == "not" { k += 1 }
                if k + 2 < words.count, ["exist", "defined", "errorlevel", "cmdextversion"].contains(String(words[k])) {
                    let command = String(words[k + 2])
                    if programs.contains(command) || ["goto", "set", "exit"].contains(command) { return "batch-if" }
                }
            }
        }
        if ["%comspec%", "%systemroot%", "%windir%"].contains(where: { Bytes.contains(text, $0) }) { return "windows-variable" }
        return nil
    }

    /// Something each of `windows`' checks needs besides `cmd` and a slash (a variable, a
    /// PowerShell name, a batch `for ... in (`, an `if` comparison or test); values without
    /// any are not read as batch.
    static let windowsHints = KeywordMatcher(["%", "powershell", "pwsh", "==", " equ ", " neq ", " lss ", " leq ", " gtr ", " geq ",
                                              "errorlevel", "cmdextversion", "invoke-", "start-process", "new-object"])
    /// Batch `if` tests that are also English words: looked at only with an `if` beside them.
    static let batchTests = KeywordMatcher(["exist", "defined"])

    /// Programs whose names are also words or identifiers.
    static let wordPrograms: Set<String> = [
        "cat", "tac", "id", "ls", "ll", "dir", "pwd", "who", "w", "ps", "top", "cd", "cp", "mv", "rm", "du", "df", "env", "set", "time", "date", "echo", "printf",
        "sleep", "kill", "find", "sort", "head", "tail", "less", "more", "tee", "cut", "diff", "comm", "file", "type", "which", "where", "test",
        "read", "true", "false", "exit", "eval", "source", "alias", "export", "history", "jobs", "wait", "yes", "make", "man", "open", "mail",
        "sh", "at", "vi", "ed", "ex", "ping", "host", "dig", "arp", "ip", "tar", "zip", "unzip", "gzip", "gunzip", "touch", "mkdir", "rmdir",
        "ln", "chmod", "chown", "passwd", "su", "groups", "uptime", "free", "last", "nl", "od", "xxd", "base64", "strings", "split", "join",
        "expand", "fold", "fmt", "rev", "watch", "screen", "tmux", "crontab", "service", "systemctl", "mount", "umount", "reboot",
        "shutdown", "halt", "logout", "lsof", "netstat", "ss", "route", "traceroute", "tracepath", "mtr", "whois", "finger", "telnet", "ftp",
        "tftp", "scp", "sftp", "rsync", "ssh", "nmap", "awk", "sed", "grep", "egrep", "fgrep", "xargs", "nice", "renice", "nohup", "timeout",
        "script", "stat", "look", "units", "bc", "dc", "expr", "factor", "seq", "shuf", "wc", "md5sum", "sha1sum", "sha256sum", "cksum",
        "iconv", "install", "dd", "sync", "lsblk", "blkid", "fdisk", "mkfs", "hostname", "domainname", "ulimit", "umask", "trap", "shift",
        "getent", "logger", "killall", "pkill", "pgrep", "pidof", "nproc", "lscpu", "dmesg", "journalctl", "apt", "yum", "dnf", "rpm", "dpkg",
        "pip", "npm", "node", "java", "go", "gcc", "cc", "git", "svn", "docker", "kubectl", "helm", "vim", "nano", "emacs", "view",
        "pg", "mysql", "psql", "sqlite", "redis-cli", "mongo", "openssl", "gpg", "ansible", "puppet", "chef", "ruby", "irb", "perl", "lua",
        "php", "python", "py", "tclsh", "wish", "expect", "sqlcmd", "osql", "net", "reg", "sc", "tasklist", "taskkill", "systeminfo", "whoami",
        "ipconfig", "nslookup", "certutil", "bitsadmin", "wmic", "mshta", "rundll", "regsvr", "cscript", "wscript", "start", "call", "del",
        "copy", "move", "ren", "rd", "md", "attrib", "icacls", "cacls", "runas", "schtasks", "chcp", "ver", "vol", "tree", "cls", "pause",
        "choice", "findstr", "xcopy", "robocopy", "forfiles", "pushd", "popd", "visudo", "vipw", "useradd", "usermod", "userdel",
        "groupadd", "adduser", "deluser", "cpulimit", "strace", "ltrace", "gdb", "objdump", "readelf", "nm", "ldd", "pax", "cpio", "ar",
        "bzip2", "xz", "lzma", "zcat", "bzcat", "xzcat", "zless", "zmore", "zgrep", "base32", "basenc", "uuencode", "uudecode", "column",
        "paste", "tr", "uniq", "csplit", "truncate", "shred", "wipe", "sum", "pr", "ptx", "tsort", "numfmt", "dirname", "basename",
        "realpath", "readlink", "mktemp", "unlink", "link", "chgrp", "chattr", "lsattr", "setfacl", "getfacl", "capsh", "setcap", "getcap",
        "chroot", "unshare", "nsenter", "runc", "ctr", "crictl", "podman", "lxc", "virsh", "qemu", "vagrant", "terraform", "aws", "gcloud", "az",
        "cscli", "knife", "salt", "ansible-playbook", "ansible-inventory", "ansible-vault", "chef-client", "puppetd",
    ]
    /// Programs whose names are not words of prose: found with any argument.
    static let neverProse: Set<String> = [
        "wget", "nc", "ncat", "netcat", "socat", "zsh", "ksh", "csh", "tcsh", "dash", "fish", "busybox", "whoami", "uname",
        "ifconfig", "ipconfig", "nslookup", "certutil", "bitsadmin", "wmic", "mshta", "rundll32", "regsvr32", "pwsh", "nmap", "telnet", "tftp", "chmod", "chown", "useradd", "passwd", "crontab", "sudo",
        "systemctl", "base64", "xxd", "openssl", "nohup", "traceroute", "netstat", "lsof", "pkill", "killall",
        "ls", "awk", "grep", "printenv", "irb", "gunzip", "zcat", "vim", "scp", "ssh", "sftp", "rsync", "mkfifo", "mknod",
        "visudo", "lastlog", "regedit", "bcdboot", "bcdedit", "aptitude", "strace", "ltrace", "iwr", "iex", "iwmi",
    ]
    static let programs = WordSet(wordPrograms.union(neverProse).union([
        "mkfifo", "mknod", "printenv", "rundll32", "bash", "curl", "powershell", "cmd", "python", "perl", "ruby", "php", "lua", "regsvr32", "zsh", "ksh", "csh", "tcsh", "dash", "fish", "nc", "ncat", "netcat", "socat",
        "uname", "ifconfig", "wget", "curl", "lwp-download", "lwp-request", "fetch", "aria2c", "axel", "links", "lynx", "w3m", "elinks",
        "python2", "python3", "perl5", "jrunscript", "jjs", "rhino", "node", "nodejs", "deno", "bun", "php-cgi", "php-fpm", "gawk", "mawk",
        "nawk", "busybox", "toybox", "ncdu", "htop", "iftop", "iotop", "tcpdump", "tshark", "wireshark", "ngrep", "hping3", "arping",
        "pingsweep", "masscan", "zmap", "nikto", "sqlmap", "hydra", "medusa", "john", "hashcat", "msfconsole", "msfvenom", "mimikatz",
        "perf", "rmt", "c89", "c99", "pipx", "lastlog", "uconv", "bsdtar", "regedit", "bcdboot", "bcdedit", "aptitude", "iwr", "iex", "iwmi", "irm",
        "lastb", "faillog", "chpasswd", "newgrp", "sg", "setsid", "ssh-keygen", "ssh-keyscan", "visudo",
    ]))
}

/// Shell globs (`?`, `*`, `[...]`) matched against the system files and programs attackers
/// reach for, so `/???/?s` and `/et*/pa??wd` are known for what the shell would expand
/// them to.
enum Glob {
    static let systemPaths: [[UInt8]] = [
        "/etc/passwd", "/etc/shadow", "/etc/group", "/etc/hosts", "/etc/issue", "/etc/sudoers", "/etc/crontab", "/etc", "/bin", "/usr/bin", "/usr/sbin",
        "/bin/sh", "/bin/bash", "/bin/dash", "/bin/zsh", "/bin/cat", "/bin/ls", "/bin/nc", "/bin/netcat", "/bin/ping", "/bin/uname", "/bin/id",
        "/usr/bin/id", "/usr/bin/whoami", "/usr/bin/uname", "/usr/bin/wget", "/usr/bin/curl", "/usr/bin/nc", "/usr/bin/python", "/usr/bin/python3",
        "/usr/bin/perl", "/usr/bin/cat", "/usr/bin/bash", "/usr/bin/env", "/usr/sbin/sh", "/proc/self/environ", "/proc/self/cmdline",
    ].map { Array($0.utf8) }

    /// Whether `token` (quotes and backslashes removed) is an absolute path with a glob that
    /// matches one of `systemPaths`.
    static func expandsToSystemPath(_ token: [UInt8]) -> Bool {
        let pattern = token.filter { $0 != UInt8(ascii: "'") && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }
        guard pattern.count <= 64, pattern.first == UInt8(ascii: "/"),
              pattern.contains(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "[") }) else { return false }
        // `//` collapses, as in a path.
        var collapsed: [UInt8] = []
        for b in pattern where !(b == UInt8(ascii: "/") && collapsed.last == UInt8(ascii: "/")) { collapsed.append(b) }
        return systemPaths.contains { matches(collapsed[...], $0[...]) }
    }

    /// Shell pattern matching: `?` one byte, `*` any run within a path segment, `[...]` a
    /// class with ranges and `!`/`^` negation. Patterns are at most 64 bytes.
    static func matches(_ pattern: ArraySlice<UInt8>, _ path: ArraySlice<UInt8>) -> Bool {
        guard let p = pattern.first else { return path.isEmpty }
        switch p {
        case UInt8(ascii: "*"):
            let rest = pattern.dropFirst()
            var candidate = path
            while true {
                if matches(rest, candidate) { return true }
                guard let next = candidate.first, next != UInt8(ascii: "/") else { return false }
                candidate = candidate.dropFirst()
            }
        case UInt8(ascii: "?"):
            guard let c = path.first, c != UInt8(ascii: "/") else { return false }
            return matches(pattern.dropFirst(), path.dropFirst())
        case UInt8(ascii: "["):
            guard let c = path.first, let close = pattern.dropFirst(2).firstIndex(of: UInt8(ascii: "]")) else {
                return path.first == p && matches(pattern.dropFirst(), path.dropFirst())
            }
            var set = pattern[(pattern.startIndex + 1)..<close]
            let negated = set.first == UInt8(ascii: "!") || set.first == UInt8(ascii: "^")
            if negated { set = set.dropFirst() }
            var member = false
            var i = set.startIndex
            while i < set.endIndex {
                if i + 2 < set.endIndex, set[i + 1] == UInt8(ascii: "-") {
                    if c >= set[i] && c <= set[i + 2] { member = true }
                    i += 3
                } else {
                    if c == set[i] { member = true }
                    i += 1
                }
            }
            return member != negated && c != UInt8(ascii: "/") && matches(pattern[(close + 1)...], path.dropFirst())
        default:
            return path.first == p && matches(pattern.dropFirst(), path.dropFirst())
        }
    }
}
