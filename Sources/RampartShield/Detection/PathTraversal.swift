/// Path traversal and local file inclusion: `..` segments climbing out of a directory
/// (any separator, after decoding), well-known sensitive files named in a parameter, and
/// requests for hidden files or backups in the path itself.
public struct PathTraversalDetector: ThreatDetector {
    public let kind = ThreatKind.pathTraversal

    public init() {}

    public func inspect(_ value: InspectedValue, into findings: inout [Finding]) {
        var present = value.present
        var bytes = value.normalized
        if present.contains(UInt8(ascii: "\\")) {
            bytes = bytes.map { $0 == UInt8(ascii: "\\") ? UInt8(ascii: "/") : $0 }
            present.insert(UInt8(ascii: "/"))
        }
        let mayBeSensitive = Self.sensitiveFiles.mayMatch(present)
        let isPath = value.location.part == .path
        // Climbing needs a dot; a restricted path a dot or a `~`.
        guard present.contains(UInt8(ascii: ".")) || mayBeSensitive || (isPath && present.contains(UInt8(ascii: "~"))) else { return }
        let climbs = present.contains(UInt8(ascii: ".")) ? Self.climbs(bytes) : 0
        let sensitive = mayBeSensitive ? Self.sensitiveFiles.wordMatches(in: bytes).first.map { Self.sensitiveFiles.needles[$0.needle] } : nil
        if climbs >= 2 || (climbs == 1 && sensitive != nil) {
            report("lfi.traversal", .critical, value, into: &findings)
        } else if let sensitive {
            report("lfi.sensitive-file.\(sensitive)", .critical, value, into: &findings)
        } else if climbs >= 1, value.location.namesAFile {
            // A file name is a name, never a path.
            report("lfi.traversal-in-file-name", .critical, value, into: &findings)
        } else if climbs == 1, value.location.part != .path, bytes.first == UInt8(ascii: ".") || bytes.first == UInt8(ascii: "/") {
            report("lfi.traversal", .error, value, into: &findings)
        }
        if isPath, present.contains(UInt8(ascii: ".")) || present.contains(UInt8(ascii: "~")), let rule = Self.restrictedPath(bytes) {
            report("lfi.\(rule)", .critical, value, into: &findings)
        }
    }

    /// How many `..` segments the value has (`../`, `/..`, `..` alone between separators).
    static func climbs(_ bytes: [UInt8]) -> Int {
        var count = 0
        var i = 0
        let n = bytes.count
        while i + 1 < n {
            if bytes[i] == UInt8(ascii: "."), bytes[i + 1] == UInt8(ascii: ".") {
                var j = i + 2
                while j < n, bytes[j] == UInt8(ascii: ".") { j += 1 }  // `....//` collapses to `../` in naive filters
                let before = i == 0 || bytes[i - 1] == UInt8(ascii: "/") || Bytes.isSpace(bytes[i - 1]) || bytes[i - 1] == UInt8(ascii: "=") || bytes[i - 1] == UInt8(ascii: "\"") || bytes[i - 1] == UInt8(ascii: "'") || bytes[i - 1] == UInt8(ascii: ":")
                let after = j == n || bytes[j] == UInt8(ascii: "/") || bytes[j] == UInt8(ascii: ";") || bytes[j] == 0x00
                if before && after { count += 1 }
                i = j
            } else {
                i += 1
            }
        }
        return count
    }

    /// A hidden file or directory (`/.env`, `/.git/config`) other than `/.well-known`, or a
    /// file type that only backups, logs, databases and keys have.
    static func restrictedPath(_ bytes: [UInt8]) -> String? {
        let slash = UInt8(ascii: "/"), dot = UInt8(ascii: ".")
        var lastSegment = 0..<0
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count, bytes[end] != slash { end += 1 }
            if end > start {
                lastSegment = start..<end
                if bytes[start] == dot, end - start > 1, Self.isHidden(bytes[start..<end]) { return "hidden-file" }
            }
            start = end + 1
        }
        if let dotAt = bytes[lastSegment].lastIndex(of: dot), restrictedExtensions.contains(bytes[(dotAt + 1)..<lastSegment.upperBound]) {
            return "restricted-extension"
        }
        if bytes.last == UInt8(ascii: "~") { return "restricted-extension" }
        return nil
    }

    /// A segment starting with a dot names a hidden file when a letter follows the dot, other
    /// than in `..` and `.well-known`.
    private static func isHidden(_ segment: ArraySlice<UInt8>) -> Bool {
        let second = segment[segment.startIndex + 1]
        if second < 0x80 {
            let lower = second | 0x20
            guard lower >= UInt8(ascii: "a"), lower <= UInt8(ascii: "z") else { return false }
            return !segment.elementsEqual(".well-known".utf8)
        }
        // A non-ASCII letter after the dot.
        return String(decoding: segment.dropFirst(), as: UTF8.self).first?.isLetter == true
    }

    static let restrictedExtensions = WordSet([
        "bak", "backup", "old", "orig", "swp", "swo", "sav", "save", "tmp", "temp", "log", "sql", "dump", "db", "sqlite", "sqlite3", "mdb",
        "pem", "key", "crt", "p12", "pfx", "jks", "keystore", "ini", "conf", "cfg", "config", "env", "htpasswd", "htaccess", "passwd", "git",
        "svn", "hg", "bzr", "idea", "history", "kdbx", "ovpn", "rdp", "ppk", "npmrc", "yarnrc", "dockercfg", "tfstate", "tfvars",
    ])

    static let sensitiveFiles = KeywordMatcher([
        "etc/passwd", "etc/shadow", "etc/group", "etc/hosts", "etc/issue", "etc/master.passwd", "etc/sudoers", "etc/crontab", "etc/fstab",
        "etc/httpd", "etc/apache", "etc/nginx", "etc/mysql", "etc/ssh", "etc/security", "etc/pam.d", "etc/profile", "etc/resolv.conf", "etc/motd",
        "proc/self", "proc/version", "proc/cpuinfo", "proc/meminfo", "proc/net/", "proc/sys/", "proc/mounts", "proc/1/", "proc/sched_debug",
        ".ssh/id_", ".ssh/authorized_keys", ".ssh/known_hosts", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", ".htaccess", ".htpasswd",
        "web.config", "boot.ini", "win.ini", "system.ini", "windows/system32", "winnt/system32", "system32/config", "autoexec.bat",
        "wp-config.php", "config.php", "localsettings.php", "configuration.php", ".git/config", ".git/head", ".git/index", ".svn/entries", ".aws/credentials", ".aws/config",
        ".docker/", ".kube/config", ".npmrc", ".pgpass", ".my.cnf", ".bash_history", ".zsh_history", ".bashrc", ".profile", ".netrc",
        ".env", "var/log/", "var/run/secrets", "var/lib/mysql", "root/.ssh", "root/.bash", "usr/local/etc", "/dev/tcp/", "/dev/udp/", "/bin/sh", "/bin/bash",
        "inetpub/", "wwwroot/", "php.ini", "my.ini", "httpd.conf", "nginx.conf", "tomcat-users.xml", "web-inf/", "meta-inf/", "application.properties", "appsettings.json",
        "docker-compose", "dockerfile", ".gitconfig", ".git-credentials", "credentials.json", "secrets.yml", "secrets.json", "shadow.bak", "passwd.bak",
    ])
}
