public import RampartShield
import RampartCore
import RampartFlags
import HTTPTypes

/// One route: which requests it takes and where they go.
public struct RouteConfiguration: Codable, Sendable, Equatable {
    /// A name for logs and metrics; defaults to `routes[i]`.
    public var name: String?
    public var match: RouteMatch
    /// The pool requests go to; exactly one of `pool` and `respond`.
    public var pool: String?
    /// A fixed answer instead of a pool.
    public var respond: FixedResponse?
    /// Remove the matched path prefix before forwarding (`/api/users` -> `/users`). Default false.
    public var stripPrefix: Bool
    /// Security headers for this route, field by field over `shield.securityHeaders`.
    public var securityHeaders: SecurityHeadersConfiguration?
    /// `false` exempts this route from `shield.csrf` (webhooks signed some other way, say).
    public var csrf: Bool?
    /// Threat detection for this route: its own mode and the values it legitimately carries
    /// code in, over `shield.waf`.
    public var waf: RouteWAFConfiguration?
    /// The rate-limit policy for this route (a name under `limits.policies`, or `off`);
    /// the default policy when absent and `limits` is configured.
    public var limit: String?
    /// The endpoint class for the policy's class multipliers; `read` for GET, HEAD and
    /// OPTIONS and `write` for the other methods when absent.
    public var limitClass: String?

    /// `required`: callers without a valid token or API key get 401. `optional` (the
    /// default): a bad credential makes the caller anonymous.
    public var identity: IdentityRequirement?

    public enum IdentityRequirement: String, Codable, Sendable, CaseIterable { case required, optional }

    /// Resolve these flags for the caller and send them upstream in one header.
    public var forwardFlags: ForwardFlags?
    /// The route carries GraphQL: operations are analysed and limited before they are forwarded.
    public var graphql: GraphQLRouteConfiguration?

    /// `limit: off`.
    public static let noLimit = "off"

    public init(name: String? = nil, match: RouteMatch = .init(), pool: String? = nil, respond: FixedResponse? = nil, stripPrefix: Bool = false,
                securityHeaders: SecurityHeadersConfiguration? = nil, csrf: Bool? = nil, waf: RouteWAFConfiguration? = nil,
                limit: String? = nil, limitClass: String? = nil, identity: IdentityRequirement? = nil,
                forwardFlags: ForwardFlags? = nil, graphql: GraphQLRouteConfiguration? = nil) {
        self.name = name
        self.match = match
        self.pool = pool
        self.respond = respond
        self.stripPrefix = stripPrefix
        self.securityHeaders = securityHeaders
        self.csrf = csrf
        self.waf = waf
        self.limit = limit
        self.limitClass = limitClass
        self.identity = identity
        self.forwardFlags = forwardFlags
        self.graphql = graphql
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, match, pool, respond, stripPrefix, securityHeaders, csrf, waf, limit, limitClass, identity, forwardFlags, graphql
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        match = try c.decodeIfPresent(RouteMatch.self, forKey: .match) ?? .init()
        pool = try c.decodeIfPresent(String.self, forKey: .pool)
        respond = try c.decodeIfPresent(FixedResponse.self, forKey: .respond)
        stripPrefix = try c.decodeIfPresent(Bool.self, forKey: .stripPrefix) ?? false
        securityHeaders = try c.decodeIfPresent(SecurityHeadersConfiguration.self, forKey: .securityHeaders)
        csrf = try c.decodeIfPresent(Bool.self, forKey: .csrf)
        waf = try c.decodeIfPresent(RouteWAFConfiguration.self, forKey: .waf)
        limit = try c.decodeIfPresent(String.self, forKey: .limit)
        limitClass = try c.decodeIfPresent(String.self, forKey: .limitClass)
        identity = try c.decodeIfPresent(IdentityRequirement.self, forKey: .identity)
        forwardFlags = try c.decodeIfPresent(ForwardFlags.self, forKey: .forwardFlags)
        graphql = try c.decodeIfPresent(GraphQLRouteConfiguration.self, forKey: .graphql)
    }

    func validate(at path: String, pools: Set<String>) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = securityHeaders?.validate(at: "\(path).securityHeaders") ?? []
        issues += waf?.validate(at: "\(path).waf") ?? []
        switch (pool, respond) {
        case (nil, nil): issues.append(.init(path: path, "give either pool or respond"))
        case (.some, .some): issues.append(.init(path: path, "give either pool or respond, not both"))
        case (.some(let name), nil) where !pools.contains(name):
            var problem = "no pool named \"\(name)\""
            if let guess = nearest(to: name, in: pools.sorted()) { problem += " (did you mean \"\(guess)\"?)" }
            issues.append(.init(path: "\(path).pool", problem))
        default: break
        }
        if let respond, !(200...599).contains(respond.status) {
            issues.append(.init(path: "\(path).respond.status", "\(respond.status) is not a final HTTP status"))
        }
        issues += match.validate(at: "\(path).match")
        issues += forwardFlags?.validate(at: "\(path).forwardFlags") ?? []
        if let graphql {
            if respond != nil { issues.append(.init(path: "\(path).graphql", "needs a pool to send operations to, not respond")) }
            issues += graphql.validate(at: "\(path).graphql")
        }
        if stripPrefix, match.pathPrefix == nil {
            issues.append(.init(path: "\(path).stripPrefix", "needs match.pathPrefix"))
        }
        return issues
    }
}

/// What a request must look like to take a route; absent fields match anything.
public struct RouteMatch: Codable, Sendable, Equatable {
    /// `api.example.com`, or a wildcard for one or more labels: `*.example.com`.
    public var host: String?
    /// A path prefix matched on segment boundaries: `/api` takes `/api` and `/api/x`, not `/apix`.
    public var pathPrefix: String?
    /// Methods, upper case.
    public var methods: [String]?
    /// Header names to exact values; every one must be present.
    public var headers: [String: String]?
    /// A feature flag's answer for the caller.
    public var flag: FlagMatch?

    public init(host: String? = nil, pathPrefix: String? = nil, methods: [String]? = nil, headers: [String: String]? = nil,
                flag: FlagMatch? = nil) {
        self.host = host
        self.pathPrefix = pathPrefix
        self.methods = methods
        self.headers = headers
        self.flag = flag
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case host, pathPrefix, methods, headers, flag }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        host = try c.decodeIfPresent(String.self, forKey: .host)
        pathPrefix = try c.decodeIfPresent(String.self, forKey: .pathPrefix)
        methods = try c.decodeIfPresent([String].self, forKey: .methods)
        headers = try c.decodeIfPresent([String: String].self, forKey: .headers)
        flag = try c.decodeIfPresent(FlagMatch.self, forKey: .flag)
    }

    func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        if let host {
            let bare = host.hasPrefix("*.") ? String(host.dropFirst(2)) : host
            if bare.isEmpty || bare.contains("*") || !bare.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" }) {
                issues.append(.init(path: "\(path).host", "\"\(host)\" is not a host name or *.suffix wildcard"))
            }
        }
        if let prefix = pathPrefix, !prefix.hasPrefix("/") {
            issues.append(.init(path: "\(path).pathPrefix", "must start with /, got \"\(prefix)\""))
        }
        issues += flag?.validate(at: "\(path).flag") ?? []
        for (i, method) in (methods ?? []).enumerated() where method.isEmpty || method != method.uppercased() || !method.allSatisfy({ $0.isLetter }) {
            issues.append(.init(path: "\(path).methods[\(i)]", "\"\(method)\" is not an upper-case method name"))
        }
        return issues
    }
}

/// A response the gateway gives itself.
public struct FixedResponse: Codable, Sendable, Equatable {
    public var status: Int
    public var body: String?
    /// Default `text/plain; charset=utf-8` when there is a body.
    public var contentType: String?
    /// Extra response headers (for example `location` for a redirect).
    public var headers: [String: String]?

    public init(status: Int, body: String? = nil, contentType: String? = nil, headers: [String: String]? = nil) {
        self.status = status
        self.body = body
        self.contentType = contentType
        self.headers = headers
    }
}

/// `match.flag`: the route takes a request when the flag, resolved for the caller, has this
/// value or this variant (`{key: new-checkout, value: true}`, `{key: banner, variant: blue}`).
public struct FlagMatch: Codable, Sendable, Equatable {
    /// A flag value a route can compare with.
    public enum Value: Codable, Sendable, Equatable {
        case bool(Bool)
        case number(Double)
        case string(String)

        public init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) { self = .bool(b) } else if let n = try? c.decode(Double.self) { self = .number(n) } else {
                self = .string(try c.decode(String.self))
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .bool(let b): try c.encode(b)
            case .number(let n): try c.encode(n)
            case .string(let s): try c.encode(s)
            }
        }
    }

    public var key: String
    public var value: Value?
    public var variant: String?

    public init(key: String, value: Value? = nil, variant: String? = nil) {
        self.key = key
        self.value = value
        self.variant = variant
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case key, value, variant }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        key = try c.decode(String.self, forKey: .key)
        value = try c.decodeIfPresent(Value.self, forKey: .value)
        variant = try c.decodeIfPresent(String.self, forKey: .variant)
    }

    func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        if key.isEmpty { issues.append(.init(path: "\(path).key", "required")) }
        if (value == nil) == (variant == nil) { issues.append(.init(path: path, "give either value or variant")) }
        return issues
    }
}

/// `forwardFlags`: flags resolved for the caller and sent upstream as
/// `header: key=variant, key=variant` (a flag without a variant for the caller is left out).
public struct ForwardFlags: Codable, Sendable, Equatable {
    /// Default `X-Feature-Flags`.
    public var header: String
    public var flags: [String]

    public init(header: String = "X-Feature-Flags", flags: [String]) {
        self.header = header
        self.flags = flags
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case header, flags }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        header = try c.decodeIfPresent(String.self, forKey: .header) ?? "X-Feature-Flags"
        flags = try c.decode([String].self, forKey: .flags)
    }

    func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        if HTTPField.Name(header) == nil { issues.append(.init(path: "\(path).header", "\"\(header)\" is not a header name")) }
        if flags.isEmpty { issues.append(.init(path: "\(path).flags", "name at least one flag")) }
        for (index, key) in flags.enumerated() where !SimpleFlag.isValidKey(key) {
            issues.append(.init(path: "\(path).flags[\(index)]", "\"\(key)\" cannot be sent in a header (letters, digits, '-', '_', '.')"))
        }
        return issues
    }
}
