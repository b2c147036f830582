import RampartCore

/// Remote file inclusion and server-side request forgery: URLs in parameters that point
/// at loopback, link-local (cloud metadata), private or otherwise internal addresses —
/// including the numeric disguises (`http://2130706433/`, `http://0x7f.1/`,
/// `http://[::ffff:127.0.0.1]/`) and names that resolve there (`localhost`,
/// `metadata.google.internal`) — URLs whose host is a bare IP address, and schemes that
/// only reach files or internal services (`file:`, `gopher:`, `dict:`, `jar:`, `ldap:`).
/// Also URLs in parameters named for a file-system path or an include (`_CONF[path]=`),
/// URLs ending in `?` (which cuts off the suffix a server appends before including),
/// explicit ports other than the web's own (port probing), and userinfo hidden in a path
/// (`http://a.example/:x@b.example/`) to confuse URL parsers.
public struct RemoteInclusionDetector: ThreatDetector {
    public let kind = ThreatKind.remoteInclusion

    public init() {}

    public func inspect(_ value: InspectedValue, into findings: inout [Finding]) {
        guard value.location.part != .path else { return }
        let bytes = value.normalized
        // Everything this detector finds has a scheme's colon or a host's dot with no space
        // before it, or is a scheme ending in `?`.
        guard Self.mayHoldURL(bytes, present: value.present) else { return }
        let text = String(decoding: bytes, as: UTF8.self)
        let isReferer = value.location.name.hasPrefix("referer")
        let inclusion = !isReferer && (Bytes.find(Self.schemeSeparator, in: bytes) != nil || bytes.last == UInt8(ascii: "?"))
        if let rule = Self.analyse(text, isReferer: isReferer) ?? (inclusion ? Self.inclusion(text, parameter: value.location) : nil) {
            report("rfi.\(rule)", .critical, value, into: &findings)
        }
    }

    private static let schemeSeparator = Array("://".utf8)

    /// Whether a URL or bare host could be in `bytes`: a `:` anywhere, or a `.` or `/` in
    /// the first word (a host with no scheme starts the value), or a scheme and `?` alone.
    static func mayHoldURL(_ bytes: [UInt8], present: ByteSet) -> Bool {
        if present.contains(UInt8(ascii: ":")) || (bytes.last == UInt8(ascii: "?") && bytes.count <= 6) { return true }
        guard present.contains(UInt8(ascii: ".")) || present.contains(UInt8(ascii: "/")) else { return false }
        for b in bytes {
            if b == UInt8(ascii: ".") || b == UInt8(ascii: "/") { return true }
            if Bytes.isSpace(b) { return false }
        }
        return false
    }

    /// The inclusion shapes that need more than the URL's host: a URL in an include or path
    /// parameter, a trailing `?`, an explicit port, userinfo in a path.
    static func inclusion(_ text: String, parameter: InputLocation) -> String? {
        let schemes = ["http", "https", "ftp", "ftps", "file"]
        // `http://x/shell.txt?` or just `ftp?`: the value starts with a scheme and ends in `?`.
        if text.hasSuffix("?"), let scheme = schemes.first(where: { text.hasPrefix($0 + "://") || text == $0 + "?" }) { return "trailing-question-mark.\(scheme)" }
        guard let separator = text.firstRange(of: "://"), schemes.contains(String(text[..<separator.lowerBound])) else { return nil }
        if !parameter.isName, [.query, .form, .json, .multipart, .cookie].contains(parameter.part) {
            let words = parameter.name.lowercased().split { !($0.isLetter || $0.isNumber) }
            if words.contains(where: { includeWords.contains(String($0)) }) { return "include-parameter" }
        }
        let afterScheme = text[separator.upperBound...]
        let authority = afterScheme.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        if let colon = authority.lastIndex(of: ":"), !authority.contains("@"), !authority.hasSuffix("]") {
            let port = authority[authority.index(after: colon)...]
            if !port.isEmpty, port.allSatisfy(\.isNumber), port != "80", port != "443" { return "explicit-port" }
        }
        // `/:x@host/`: a path segment that reads as userinfo.
        let path = afterScheme.dropFirst(authority.count)
        for segment in path.split(separator: "/") where segment.hasPrefix(":") && segment.contains("@") { return "userinfo-in-path" }
        // `/@evil.example/`: a segment that is `@` and a host name, for parsers that take the
        // last `@` as the end of userinfo. (`/@user` handles have no dot.)
        for segment in path.split(separator: "/") where segment.hasPrefix("@") {
            let host = segment.dropFirst()
            if host.contains("."), host.last?.isLetter == true, host.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" }) { return "userinfo-in-path" }
        }
        return nil
    }

    /// Parameter name words that say the value is a local path or something to include.
    static let includeWords: Set<String> = ["path", "abspath", "include", "inc", "require", "dir", "basedir", "root", "docroot", "template", "tpl"]

    static func analyse(_ text: String, isReferer: Bool) -> String? {
        // Scanning Characters is slow; most values have no colon, which bytes tell at once.
        var searchFrom = Bytes.contains(text, ":") ? text.startIndex : text.endIndex
        while let colon = text[searchFrom...].firstIndex(of: ":") {
            searchFrom = text.index(after: colon)
            // The scheme: letters (and `+.-`) right before the colon.
            var schemeStart = colon
            while schemeStart > text.startIndex {
                let previous = text[text.index(before: schemeStart)]
                guard previous.isLetter || previous.isNumber || previous == "+" || previous == "." || previous == "-" else { break }
                schemeStart = text.index(before: schemeStart)
            }
            let scheme = String(text[schemeStart..<colon])
            guard !scheme.isEmpty else { continue }
            let rest = text[searchFrom...]
            if internalSchemes.contains(scheme), !isReferer {
                if scheme == "file" || scheme == "jar" || scheme == "netdoc" || rest.hasPrefix("//") || scheme == "url" { return "scheme.\(scheme)" }
            }
            // Data URLs of anything but media carry code or text to include.
            if scheme == "data", Bytes.contains(rest, ";base64,"), !isReferer, !["image/", "audio/", "video/", "font/"].contains(where: rest.hasPrefix) { return "data-url" }
            guard networkSchemes.contains(scheme) || internalSchemes.contains(scheme),
                  rest.hasPrefix("/") || rest.hasPrefix("\\") || rest.first?.isNumber == true || rest.hasPrefix("[") else { continue }
            var authority = rest.drop { $0 == "/" || $0 == "\\" }.prefix { $0 != "/" && $0 != "?" && $0 != "#" && $0 != " " && $0 != "\"" && $0 != "'" && $0 != "<" && $0 != ">" }
            if let at = authority.lastIndex(of: "@") {
                authority = authority[authority.index(after: at)...]
                if !isReferer { return "url-credentials" }
            }
            let host = hostPart(String(authority)).filter { $0 != "\\" }
            if let reason = internalHost(host) { return isReferer ? nil : "internal-host.\(reason)" }
            if !isReferer, IPAddress(host) != nil { return "ip-host" }
        }
        // A bare host with no scheme (`host.docker.internal/`, `localhost:8080/x`).
        if !isReferer, let first = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).first,
           !first.isEmpty, first.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == ":" }), first.contains(where: \.isLetter),
           first.contains(".") || first.contains("-") || first.hasPrefix("localhost"), let reason = internalHost(hostPart(String(first))) {
            return "internal-host.\(reason)"
        }
        return nil
    }

    static func hostPart(_ authority: String) -> String {
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            return String(authority[authority.index(after: authority.startIndex)..<close])
        }
        if let colon = authority.lastIndex(of: ":"), authority[authority.index(after: colon)...].allSatisfy(\.isNumber) {
            return String(authority[..<colon])
        }
        return authority
    }

    /// Why `host` is internal: loopback, private, link-local/metadata, unspecified, or a
    /// name for one of those; nil for an ordinary public name.
    static func internalHost(_ host: String) -> String? {
        let name = host.hasSuffix(".") ? String(host.dropLast()) : host
        if name == "localhost" || name.hasSuffix(".localhost") || ["ip6-localhost", "ip6-loopback", "localhost4", "localhost6", "localhost.localdomain"].contains(name) { return "loopback" }
        if internalNames.contains(name) || internalNameSuffixes.contains(where: name.hasSuffix) { return "internal-name" }
        if let address = IPAddress(name) ?? numericIPv4(name) {
            return classify(address)
        }
        return nil
    }

    static func classify(_ address: IPAddress) -> String? {
        for (range, reason) in internalRanges where range.contains(address) { return reason }
        return nil
    }

    static let internalRanges: [(CIDRBlock, String)] = [
        ("127.0.0.0/8", "loopback"), ("0.0.0.0/8", "unspecified"), ("10.0.0.0/8", "private"), ("172.16.0.0/12", "private"),
        ("192.168.0.0/16", "private"), ("169.254.0.0/16", "link-local"), ("100.64.0.0/10", "shared"), ("::1/128", "loopback"),
        ("::/128", "unspecified"), ("fc00::/7", "private"), ("fe80::/10", "link-local"), ("::ffff:0:0/96", "mapped"), ("fd00:ec2::254/128", "link-local"),
    ].compactMap { text, reason in CIDRBlock(text).map { ($0, reason) } }

    /// The forms inet_aton accepts besides dotted decimal: one to four parts, each decimal,
    /// octal (`0177`) or hexadecimal (`0x7f`): `2130706433`, `0x7f000001`, `127.1`, `0177.0.0.01`.
    static func numericIPv4(_ text: String) -> IPAddress? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...4).contains(parts.count) else { return nil }
        var values: [UInt64] = []
        for part in parts {
            guard !part.isEmpty else { return nil }
            let value: UInt64?
            if part.hasPrefix("0x") { value = UInt64(part.dropFirst(2), radix: 16) } else if part.hasPrefix("0"), part.count > 1 { value = UInt64(part.dropFirst(), radix: 8) } else { value = UInt64(part) }
            guard let value else { return nil }
            values.append(value)
        }
        var address: UInt64 = 0
        for (index, value) in values.enumerated() {
            if index == values.count - 1 {
                let bits = 8 * (4 - index)
                guard value < (1 << bits) else { return nil }
                address |= value
            } else {
                guard value < 256 else { return nil }
                address |= value << (8 * (3 - index))
            }
        }
        return IPAddress(v4: UInt32(truncatingIfNeeded: address))
    }

    static let networkSchemes: Set<String> = ["http", "https", "ftp", "ftps", "sftp", "ws", "wss", "tftp", "smb", "ssh", "telnet", "rtsp", "irc", "imap", "pop3", "smtp", "mysql", "redis", "mongodb", "postgres", "postgresql", "memcached", "ssh2.exec", "ssh2.shell"]
    static let internalSchemes: Set<String> = ["file", "gopher", "dict", "jar", "netdoc", "ldap", "ldaps", "ldapi", "tftp", "url", "php", "phar", "expect", "rar", "ogg", "glob", "compress.zlib", "compress.bzip2", "zlib", "jrt"]
    static let internalNames: Set<String> = [
        "metadata.google.internal", "metadata", "metadata.goog", "instance-data", "kubernetes.default", "kubernetes.default.svc",
        "lvh.me", "localtest.me", "vcap.me", "lacolhost.com", "localh.st",
    ]
    static let internalNameSuffixes: [String] = [".internal", ".local", ".lvh.me", ".localtest.me", ".nip.io", ".xip.io", ".sslip.io", ".vcap.me", ".svc.cluster.local", ".oast.fun", ".burpcollaborator.net", ".interact.sh", ".oastify.com"]
}
