import RampartCore

/// Where an instance listens: `http://host:port` or `https://host:port`, optionally with a
/// base path that is prefixed to every forwarded path.
public struct UpstreamURL: Hashable, Sendable, CustomStringConvertible {
    public enum Scheme: String, Sendable { case http, https }

    public let scheme: Scheme
    public let host: String
    public let port: Int
    public let basePath: String
    /// `host:port`, with IPv6 hosts in brackets.
    public let authority: String
    /// `scheme://host:port`: which connections can serve it.
    public let origin: String

    public init(scheme: Scheme, host: String, port: Int, basePath: String = "") {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.basePath = basePath
        // Made once: every request to the instance needs them.
        authority = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        origin = "\(scheme.rawValue)://\(authority)"
    }

    /// Parses an absolute http(s) URL; the port defaults to 80 or 443. Queries, fragments and
    /// user information are refused: they have no meaning for an upstream.
    public init?(_ text: String) {
        let scheme: Scheme
        var rest: Substring
        if text.hasPrefix("http://") {
            scheme = .http
            rest = text.dropFirst(7)
        } else if text.hasPrefix("https://") {
            scheme = .https
            rest = text.dropFirst(8)
        } else {
            return nil
        }
        guard !rest.contains("?"), !rest.contains("#"), !rest.contains("@") else { return nil }
        let authority = rest.prefix { $0 != "/" }
        rest = rest.dropFirst(authority.count)
        var host = Substring(authority)
        var port = scheme == .http ? 80 : 443
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            guard IPAddress(host) != nil else { return nil }
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let p = Int(after.dropFirst()), (1...65535).contains(p) else { return nil }
                port = p
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            guard let p = Int(authority[authority.index(after: colon)...]), (1...65535).contains(p) else { return nil }
            port = p
        }
        guard !host.isEmpty, host.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == ":" }) else {
            return nil
        }
        var base = String(rest)
        while base.hasSuffix("/") { base.removeLast() }
        self.init(scheme: scheme, host: String(host), port: port, basePath: base)
    }

    public var description: String { "\(origin)\(basePath)" }
}
