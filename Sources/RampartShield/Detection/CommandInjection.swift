/// OS command injection, found by reading the input as a shell would: the value is split
/// into commands at `;`, `|`, `&`, newlines, backticks and `$(`, each command's first word
/// is de-obfuscated the way the shell would (quotes, backslashes, empty `$@`/`$?`
/// expansions and path prefixes removed), and a finding is made when a command position
/// holds a real program. A program named at the very start of a value counts only with
/// shell syntax after it, so "cat pictures" is prose and `cat /etc/hosts` is not. Also
/// `${IFS}`-style evasions, brace expansion, Windows batch syntax (`for %a in (..) do`,
/// `if /i ... echo`) and `cmd /c` / PowerShell invocations.
public struct CommandInjectionDetector: ThreatDetector {
    public let kind = ThreatKind.commandInjection

    public init() {}

    public func inspect(_ value: InspectedValue, into findings: inout [Finding]) {
        let bytes = value.normalized
        guard bytes.count >= 2 else { return }
        if let rule = Self.analyse(bytes) { report("rce.\(rule)", .critical, value, into: &findings) }
    }

    static func analyse(_ bytes: [UInt8]) -> String? {
        // The string forms are only made when a value has what they look for.
        if bytes.contains(UInt8(ascii: "$")) || bytes.contains(UInt8(ascii: "{")) || bytes.contains(UInt8(ascii: "/")),
           let rule = evasion(String(decoding: bytes, as: UTF8.self)) { return rule }
        if windowsHints.firstMatch(in: bytes) != nil || (Bytes.contains(bytes, "cmd") && bytes.contains(UInt8(ascii: "/"))),
           let rule = windows(String(decoding: bytes, as: UTF8.self)) { return rule }
        // Command positions: the start, and after each separator. Pipes, `&&`, backticks and
        // substitutions are shell and nothing else; `;`, a lone `&` and line breaks also
        // occur in prose, so after those a program needs shell-like arguments.
        var starts: [(offset: Int, hard: Bool)] = [(0, false)]
        var i = 0
        let n = bytes.count
        while i < n {
            let b = bytes[i]
            switch b {
            case UInt8(ascii: ";"), UInt8(ascii: "|"), UInt8(ascii: "&"), 0x0A, 0x0D, UInt8(ascii: "`"):
                var j = i + 1
                while j < n, bytes[j] == b || bytes[j] == UInt8(ascii: "|") || bytes[j] == UInt8(ascii: "&") { j += 1 }
                let hard = b == UInt8(ascii: "|") || b == UInt8(ascii: "`") || (b == UInt8(ascii: "&") && j - i > 1)
                starts.append((j, hard))
                i = j
            case UInt8(ascii: "$") where i + 1 < n && bytes[i + 1] == UInt8(ascii: "("):
                starts.append((i + 2, true))
                i += 2
            case UInt8(ascii: "<") where i + 1 < n && bytes[i + 1] == UInt8(ascii: "("):
                starts.append((i + 2, true))
                i += 2
            default:
                i += 1
            }
        }
        for start in starts {
            guard let (word, end) = commandWord(bytes, from: start.offset), programs.contains(word) else { continue }
            if start.hard, end >= n || followedByArgument(bytes, at: end) { return "command.\(word)" }
            if shellArgument(bytes, at: end) { return "command.\(word)" }
            if start.offset > 0, neverProse.contains(word), followedByArgument(bytes, at: end) { return "command.\(word)" }
        }
        return nil
    }

    /// The command word at `from`, as the shell would run it: quotes, backslashes and empty
    /// expansions removed, and a directory prefix (`/usr/bin/`) dropped.
    static func commandWord(_ bytes: [UInt8], from start: Int) -> (String, Int)? {
        var i = start
        let n = bytes.count
        while i < n, Bytes.isSpace(bytes[i]) || bytes[i] == UInt8(ascii: "(") || bytes[i] == UInt8(ascii: "!") { i += 1 }
        // Leading variable assignments and `sudo`/`env`-style wrappers.
        var word: [UInt8] = []
        var raw = i
        while raw < n {
            let b = bytes[raw]
            if Bytes.isSpace(b) || b == UInt8(ascii: ";") || b == UInt8(ascii: "|") || b == UInt8(ascii: "&") || b == UInt8(ascii: ">") || b == UInt8(ascii: "<") || b == UInt8(ascii: ")") || b == UInt8(ascii: "`") || b == UInt8(ascii: ",") || b == UInt8(ascii: "}") { break }
            if b == UInt8(ascii: "'") || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") || b == UInt8(ascii: "^") {
                raw += 1
                continue
            }
            if b == UInt8(ascii: "$"), raw + 1 < n, bytes[raw + 1] == UInt8(ascii: "@") || bytes[raw + 1] == UInt8(ascii: "?") || bytes[raw + 1] == UInt8(ascii: "*") || bytes[raw + 1] == UInt8(ascii: "!") {
                raw += 2
                continue
            }
            if b == UInt8(ascii: "$"), raw + 2 < n, bytes[raw + 1] == UInt8(ascii: "{"), bytes[raw + 2] == UInt8(ascii: "}") {
                raw += 3
                continue
            }
            if b == UInt8(ascii: "$"), raw + 2 < n, bytes[raw + 1] == UInt8(ascii: "("), bytes[raw + 2] == UInt8(ascii: ")") {
                raw += 3
                continue
            }
            word.append(b)
            raw += 1
        }
        guard !word.isEmpty, word.count < 64 else { return nil }
        var slice = word[...]
        if let slash = slice.lastIndex(of: UInt8(ascii: "/")) { slice = slice[(slash + 1)...] }
        if slice.count >= 4, slice.suffix(4).elementsEqual(".exe".utf8) { slice = slice.dropLast(4) }
        // `python3.10`, `php7` -> `python`, `php`
        while let last = slice.last, Bytes.isDigit(last) || last == UInt8(ascii: ".") { slice = slice.dropLast() }
        guard !slice.isEmpty else { return nil }
        var name = String(decoding: slice, as: UTF8.self)
        // `ansible-galaxy`, `chef-shell`, `git-upload-pack`: a program's own subcommands.
        if !programs.contains(name), let dash = slice.firstIndex(of: UInt8(ascii: "-")) {
            let stem = String(decoding: slice[..<dash], as: UTF8.self)
            if programs.contains(stem) { name = stem }
        }
        if name == "sudo" || name == "env" || name == "nohup" || name == "exec" || name == "command" || name == "busybox" || name == "timeout" || name == "xargs" {
            var next = raw
            while next < n, Bytes.isSpace(bytes[next]) { next += 1 }
            if next < n, bytes[next] != UInt8(ascii: "-"), let inner = commandWord(bytes, from: next), programs.contains(inner.0) { return inner }
        }
        return (name, raw)
    }

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
        if b == UInt8(ascii: "-"), i + 1 < bytes.count, Bytes.isLetter(bytes[i + 1]) || bytes[i + 1] == UInt8(ascii: "-") { return true }
        if b == UInt8(ascii: "/") || b == UInt8(ascii: "~") || b == UInt8(ascii: "$") || b == UInt8(ascii: ">") || b == UInt8(ascii: "<") || b == UInt8(ascii: "|") || b == UInt8(ascii: "`") { return true }
        if b == UInt8(ascii: "."), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "/") || bytes[i + 1] == UInt8(ascii: ".") { return true }
        return false
    }

    /// `${IFS}`, `$IFS$9`, `{cat,/etc/passwd}`, `$'\x63at'`, `<<<`, shellshock `() { :; };`.
    static func evasion(_ text: String) -> String? {
        if Bytes.contains(text, "${ifs") || Bytes.contains(text, "$ifs") { return "ifs-evasion" }
        if Bytes.contains(text, "() {") && (Bytes.contains(text, ":;") || Bytes.contains(text, ": ;")) { return "shellshock" }
        if Bytes.contains(text, "/dev/tcp/") || Bytes.contains(text, "/dev/udp/") { return "dev-tcp" }
        if let brace = text.firstIndex(of: "{"), let comma = text[brace...].firstIndex(of: ","), let close = text[comma...].firstIndex(of: "}") {
            let first = text[text.index(after: brace)..<comma].filter { $0 != "'" && $0 != "\"" && $0 != "\\" }
            let inner = text[text.index(after: brace)..<close]
            if programs.contains(String(first)) && !inner.contains(" ") { return "brace-expansion" }
        }
        return nil
    }

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
            if word == "for", next.hasPrefix("%") || (next.hasPrefix("/") && next.count == 2), text.contains(" in ("), text.contains(" do ") || text.hasSuffix(" do") {
                return "batch-for"
            }
            if word == "if" {
                let rest = words[(index + 1)...].prefix(6).map(String.init)
                let batchWord = rest.contains { ["/i", "not", "exist", "defined", "errorlevel", "%errorlevel%", "cmdextversion"].contains($0) || $0.hasPrefix("%") || $0.hasPrefix("\"%") || $0.contains("==") }
                let batchCompare = text.contains("==") || [" equ ", " neq ", " lss ", " leq ", " gtr ", " geq "].contains(where: text.contains)
                if batchWord && (batchCompare || rest.contains { ["exist", "defined", "errorlevel"].contains($0) }) { return "batch-if" }
            }
        }
        if text.contains("%comspec%") || text.contains("%systemroot%") || text.contains("%windir%") { return "windows-variable" }
        return nil
    }

    /// Something each of `windows`' checks needs besides `cmd` and a slash (a variable, a
    /// PowerShell name, a batch `for ... in (`, an `if` comparison or test); values without
    /// any are not read as batch.
    static let windowsHints = KeywordMatcher(["%", "powershell", "pwsh", " in (", "==", " equ ", " neq ", " lss ", " leq ", " gtr ", " geq ",
                                              "exist", "defined", "errorlevel"])

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
    ]
    static let programs: Set<String> = wordPrograms.union(neverProse).union([
        "mkfifo", "mknod", "printenv", "rundll32", "bash", "curl", "powershell", "cmd", "python", "perl", "ruby", "php", "lua", "regsvr32", "zsh", "ksh", "csh", "tcsh", "dash", "fish", "nc", "ncat", "netcat", "socat",
        "uname", "ifconfig", "wget", "curl", "lwp-download", "lwp-request", "fetch", "aria2c", "axel", "links", "lynx", "w3m", "elinks",
        "python2", "python3", "perl5", "jrunscript", "jjs", "rhino", "node", "nodejs", "deno", "bun", "php-cgi", "php-fpm", "gawk", "mawk",
        "nawk", "busybox", "toybox", "ncdu", "htop", "iftop", "iotop", "tcpdump", "tshark", "wireshark", "ngrep", "hping3", "arping",
        "pingsweep", "masscan", "zmap", "nikto", "sqlmap", "hydra", "medusa", "john", "hashcat", "msfconsole", "msfvenom", "mimikatz",
    ])
}
