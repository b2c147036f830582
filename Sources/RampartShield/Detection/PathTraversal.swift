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
        if isPath, let rule = Self.restrictedPath(bytes) {
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
        let path = String(decoding: bytes, as: UTF8.self)
        for segment in path.split(separator: "/") {
            if segment.hasPrefix("."), segment.count > 1, segment != ".well-known", segment != "..", segment.dropFirst().first?.isLetter == true {
                return "hidden-file"
            }
        }
        if let last = path.split(separator: "/").last, let dot = last.lastIndex(of: ".") {
            let ext = last[last.index(after: dot)...]
            if restrictedExtensions.contains(String(ext)) { return "restricted-extension" }
        }
        if path.hasSuffix("~") { return "restricted-extension" }
        return nil
    }

    static let restrictedExtensions: Set<String> = [
        "bak", "backup", "old", "orig", "swp", "swo", "sav", "save", "tmp", "temp", "log", "sql", "dump", "db", "sqlite", "sqlite3", "mdb",
        "pem", "key", "crt", "p12", "pfx", "jks", "keystore", "ini", "conf", "cfg", "config", "env", "htpasswd", "htaccess", "passwd", "git",
        "svn", "hg", "bzr", "idea", "history", "kdbx", "ovpn", "rdp", "ppk", "npmrc", "yarnrc", "dockercfg", "tfstate", "tfvars",
    ]

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
