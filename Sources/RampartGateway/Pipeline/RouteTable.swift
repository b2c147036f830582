import RampartCore
public import HTTPTypes

/// A route as the table matches it. A class of constants: a request holds its route (in the
/// match, the context and the forwarding plan) by reference rather than copying a dozen fields
/// each time.
public final class CompiledRoute: Sendable {
    public enum Target: Sendable {
        case pool(String)
        case respond(FixedResponse)
    }

    public let name: String
    public let target: Target
    let host: HostPattern?
    let pathPrefix: String?
    let methods: Set<String>?
    let headers: [(HTTPField.Name, String)]
    /// A feature flag's answer the caller must get.
    let flag: FlagMatch?
    /// Flags resolved for the caller and sent upstream.
    let forwardFlags: (header: HTTPField.Name, keys: [String])?
    public let stripPrefix: Bool
    /// Higher is more specific: host, then path prefix length, then methods and headers.
    let specificity: (Int, Int, Int, Int)
    let order: Int

    init(name: String, target: Target, host: HostPattern?, pathPrefix: String?, methods: Set<String>?, headers: [(HTTPField.Name, String)],
         flag: FlagMatch?, forwardFlags: (header: HTTPField.Name, keys: [String])?, stripPrefix: Bool, specificity: (Int, Int, Int, Int),
         order: Int) {
        self.name = name
        self.target = target
        self.host = host
        self.pathPrefix = pathPrefix
        self.methods = methods
        self.headers = headers
        self.flag = flag
        self.forwardFlags = forwardFlags
        self.stripPrefix = stripPrefix
        self.specificity = specificity
        self.order = order
    }

    /// The path to forward: the prefix removed when `stripPrefix` is set.
    public func upstreamPath(for path: String) -> String {
        guard stripPrefix, let prefix = pathPrefix, prefix != "/" else { return path }
        let rest = path.dropFirst(prefix.hasSuffix("/") ? prefix.count - 1 : prefix.count)
        return rest.isEmpty ? "/" : String(rest)
    }
}

enum HostPattern: Sendable {
    case exact(String)
    /// `*.example.com` stored as `.example.com`.
    case suffix(String)

    func matches(_ host: String) -> Bool {
        switch self {
        case .exact(let name): host == name
        case .suffix(let suffix): host.count > suffix.count && host.hasSuffix(suffix)
        }
    }
}

/// The routes of one configuration, tried most specific first. Built once per configuration
/// generation; `match` reads only immutable values.
public struct RouteTable: Sendable {
    let routes: [CompiledRoute]

    public init(_ configurations: [RouteConfiguration], pools: [String]) {
        var compiled: [CompiledRoute] = []
        for (index, c) in configurations.enumerated() {
            let target: CompiledRoute.Target = c.respond.map { .respond($0) } ?? .pool(c.pool ?? "")
            let host: HostPattern? = c.match.host.map { h in
                h.hasPrefix("*.") ? .suffix(String(h.dropFirst(1)).lowercased()) : .exact(h.lowercased())
            }
            let hostScore = host.map { if case .exact = $0 { 2 } else { 1 } } ?? 0
            let headers = (c.match.headers ?? [:]).sorted { $0.key < $1.key }.compactMap { name, value in
                HTTPField.Name(name).map { ($0, value) }
            }
            compiled.append(CompiledRoute(
                name: c.name ?? "routes[\(index)]", target: target, host: host, pathPrefix: c.match.pathPrefix,
                methods: c.match.methods.map(Set.init), headers: headers, flag: c.match.flag,
                forwardFlags: c.forwardFlags.flatMap { f in HTTPField.Name(f.header).map { ($0, f.flags) } }, stripPrefix: c.stripPrefix,
                specificity: (hostScore, c.match.pathPrefix?.count ?? 0, c.match.methods == nil ? 0 : 1,
                              headers.count + (c.match.flag == nil ? 0 : 1)),
                order: index))
        }
        if compiled.isEmpty, pools.count == 1 {
            compiled.append(CompiledRoute(name: "default", target: .pool(pools[0]), host: nil, pathPrefix: nil, methods: nil,
                                          headers: [], flag: nil, forwardFlags: nil, stripPrefix: false, specificity: (0, 0, 0, 0), order: 0))
        }
        self.routes = compiled.sorted { a, b in
            a.specificity != b.specificity ? a.specificity > b.specificity : a.order < b.order
        }
    }

    /// The most specific route taking the request, if any. `host` is the request authority
    /// without port, lower case (worked out only if a route names hosts); `path` is normalized.
    /// `flag` answers whether the caller gets a flag value a route asks for; it is called only
    /// for routes that match otherwise.
    public func match(method: String, host: @autoclosure () -> String?, path: String, headers: HTTPFields,
                      flag: (FlagMatch) -> Bool = { _ in false }) -> CompiledRoute? {
        var knownHost: String??
        for route in routes {
            if let pattern = route.host {
                if knownHost == nil { knownHost = .some(host()) }
                guard let host = knownHost!, pattern.matches(host) else { continue }
            }
            if let prefix = route.pathPrefix, !Self.path(path, hasPrefix: prefix) { continue }
            if let methods = route.methods, !methods.contains(method) { continue }
            if route.headers.contains(where: { name, value in headers[name] != value }) { continue }
            if let condition = route.flag, !flag(condition) { continue }
            return route
        }
        return nil
    }

    /// Prefix match on segment boundaries (compared as UTF-8, without counting characters).
    static func path(_ path: String, hasPrefix prefix: String) -> Bool {
        guard path.utf8.starts(with: prefix.utf8) else { return false }
        let rest = path.utf8.dropFirst(prefix.utf8.count)
        return prefix.utf8.last == UInt8(ascii: "/") || rest.isEmpty || rest.first == UInt8(ascii: "/")
    }

    /// `host` of an authority (`Example.com:8080` -> `example.com`, `[::1]:80` -> `::1`).
    public static func hostName(ofAuthority authority: String) -> String {
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            return String(authority[authority.index(after: authority.startIndex)..<close]).lowercased()
        }
        if let colon = authority.lastIndex(of: ":") { return String(authority[..<colon]).lowercased() }
        return authority.lowercased()
    }
}
