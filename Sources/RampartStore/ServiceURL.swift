/// A server's URL as Redis and PostgreSQL write them:
/// `scheme://[[user][:password]@]host[:port][/path][?name=value&...]`, with `[v6]` hosts and
/// percent-encoded credentials. The password is a secret: `redact` hides it for logs.
struct ServiceURL: Sendable {
    var scheme: String
    var username: String?
    var password: String?
    var host: String
    var port: Int?
    /// After the first `/`, without it; empty when there is none.
    var path: String
    var query: [(name: String, value: String)]

    /// The value of the last `name=` in the query.
    func parameter(_ name: String) -> String? { query.last { $0.name == name }?.value }

    /// Parses `url`; the error is the problem, for the caller to place at its path.
    static func parse(_ url: String) throws(ServiceURLProblem) -> ServiceURL {
        guard let separator = url.firstRange(of: "://"), !url[..<separator.lowerBound].isEmpty else {
            throw ServiceURLProblem("must be a URL such as scheme://host:port, got \"\(redact(url))\"")
        }
        let scheme = String(url[..<separator.lowerBound]).lowercased()
        var rest = Substring(url[separator.upperBound...])
        var query: [(name: String, value: String)] = []
        if let mark = rest.firstIndex(of: "?") {
            for pair in rest[rest.index(after: mark)...].split(separator: "&") where !pair.isEmpty {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                query.append((String(parts[0]).removingPercentEncoding(), parts.count > 1 ? String(parts[1]).removingPercentEncoding() : ""))
            }
            rest = rest[..<mark]
        }
        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                let user = String(credentials[..<colon])
                username = user.isEmpty ? nil : user.removingPercentEncoding()
                password = String(credentials[credentials.index(after: colon)...]).removingPercentEncoding()
            } else {
                // `redis://secret@host`: a bare credential; what it means is the scheme's to say.
                username = String(credentials).removingPercentEncoding()
            }
        }
        var path = ""
        if let slash = rest.firstIndex(of: "/") {
            path = String(rest[rest.index(after: slash)...]).removingPercentEncoding()
            rest = rest[..<slash]
        }
        var host = String(rest)
        var port: Int?
        func portNumber<S: StringProtocol>(_ text: S) throws(ServiceURLProblem) -> Int {
            guard let number = Int(text), (1...65535).contains(number) else { throw ServiceURLProblem("port must be 1-65535, got \"\(text)\"") }
            return number
        }
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { throw ServiceURLProblem("unclosed [ in the host") }
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") { port = try portNumber(after.dropFirst()) }
            host = String(host[host.index(after: host.startIndex)..<close])
        } else if let colon = host.lastIndex(of: ":") {
            port = try portNumber(host[host.index(after: colon)...])
            host = String(host[..<colon])
        }
        guard !host.isEmpty else { throw ServiceURLProblem("has no host") }
        return ServiceURL(scheme: scheme, username: username, password: password, host: host, port: port, path: path, query: query)
    }

    /// `url` with any password replaced by `***`, for logs and `rampart check`.
    static func redact(_ url: String) -> String {
        let prefix = url.prefix { $0 != ":" }
        guard url.dropFirst(prefix.count).hasPrefix("://") else { return url }
        let start = url.index(prefix.endIndex, offsetBy: 3)
        let end = url[start...].firstIndex(of: "?") ?? url.endIndex
        guard let at = url[start..<end].lastIndex(of: "@") else { return url }
        let credentials = url[start..<at]
        let user = credentials.firstIndex(of: ":").map { credentials[..<$0] } ?? ""
        return url[..<start] + user + ":***" + url[at...]
    }
}

/// What is wrong with a server URL.
struct ServiceURLProblem: Error {
    let problem: String
    init(_ problem: String) { self.problem = problem }
}

extension String {
    /// `%XX` sequences decoded (for credentials in a URL); the text itself when one is broken.
    func removingPercentEncoding() -> String {
        var bytes: [UInt8] = []
        var utf8 = Array(self.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "%"), utf8.count >= 2, let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(value)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
