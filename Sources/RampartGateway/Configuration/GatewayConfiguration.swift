public import RampartCore
public import RampartBalancing
public import RampartShield
public import RampartLimits
public import RampartStore
public import RampartIdentity
public import RampartFlags
public import RampartEvents

/// The root of `rampart.yml`: every module's configuration, composed.
public struct GatewayConfiguration: Codable, Sendable, Equatable {
    /// Where the gateway listens. Changing it needs a restart.
    public var listeners: ListenersConfiguration
    public var log: LogConfiguration
    /// How requests are received, checked and forwarded.
    public var proxy: ProxyConfiguration
    /// Upstream pools by name.
    public var pools: [String: PoolConfiguration]
    /// Routes, matched most specific first. Without routes, a single pool takes everything.
    public var routes: [RouteConfiguration]
    /// IP rules and security headers.
    public var shield: ShieldConfiguration
    /// Rate limiting; off when absent.
    public var limits: RateLimitsConfiguration?
    /// The Redis replicas share (rate limits); none when absent. Changing it needs a restart.
    public var redis: RedisConfiguration?
    /// How callers prove who they are (JWT, API keys); everyone is anonymous when absent.
    /// Changing it needs a restart (JWKS keys rotate by themselves).
    public var identity: IdentityConfiguration?
    /// Feature flags: flag files, the OFREP endpoints, flags made through the admin API.
    public var flags: FlagsConfiguration?
    /// Where GraphQL routes keep cached answers (memory, and Redis when asked).
    public var graphqlCache: GraphQLCacheStoreConfiguration
    /// Event delivery (spool, sinks); off when absent. Changing it needs a restart.
    public var events: EventsConfiguration?

    public init(listeners: ListenersConfiguration = .init(), log: LogConfiguration = .init(), proxy: ProxyConfiguration = .init(),
                pools: [String: PoolConfiguration] = [:], routes: [RouteConfiguration] = [], shield: ShieldConfiguration = .init(),
                limits: RateLimitsConfiguration? = nil, redis: RedisConfiguration? = nil, identity: IdentityConfiguration? = nil,
                flags: FlagsConfiguration? = nil, graphqlCache: GraphQLCacheStoreConfiguration = .init(), events: EventsConfiguration? = nil) {
        self.listeners = listeners
        self.log = log
        self.proxy = proxy
        self.pools = pools
        self.routes = routes
        self.shield = shield
        self.limits = limits
        self.redis = redis
        self.identity = identity
        self.flags = flags
        self.graphqlCache = graphqlCache
        self.events = events
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case listeners, log, proxy, pools, routes, shield, limits, redis, identity, flags, graphqlCache, events }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        listeners = try c.decodeIfPresent(ListenersConfiguration.self, forKey: .listeners) ?? .init()
        log = try c.decodeIfPresent(LogConfiguration.self, forKey: .log) ?? .init()
        proxy = try c.decodeIfPresent(ProxyConfiguration.self, forKey: .proxy) ?? .init()
        pools = try c.decodeIfPresent([String: PoolConfiguration].self, forKey: .pools) ?? [:]
        routes = try c.decodeIfPresent([RouteConfiguration].self, forKey: .routes) ?? []
        shield = try c.decodeIfPresent(ShieldConfiguration.self, forKey: .shield) ?? .init()
        limits = try c.decodeIfPresent(RateLimitsConfiguration.self, forKey: .limits)
        redis = try c.decodeIfPresent(RedisConfiguration.self, forKey: .redis)
        identity = try c.decodeIfPresent(IdentityConfiguration.self, forKey: .identity)
        flags = try c.decodeIfPresent(FlagsConfiguration.self, forKey: .flags)
        graphqlCache = try c.decodeIfPresent(GraphQLCacheStoreConfiguration.self, forKey: .graphqlCache) ?? .init()
        events = try c.decodeIfPresent(EventsConfiguration.self, forKey: .events)
    }

    /// Every cross-field problem, each naming its path.
    public func validate() -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        issues += listeners.validate(at: "listeners")
        issues += proxy.validate(at: "proxy")
        issues += shield.validate(at: "shield")
        issues += limits?.validate(at: "limits") ?? []
        issues += redis?.validate(at: "redis") ?? []
        issues += identity?.validate(at: "identity") ?? []
        issues += flags?.validate(at: "flags") ?? []
        issues += events?.validate(at: "events") ?? []
        if let database = flags?.database, PostgresDatabase.isURL(database) {
            issues += PostgresDatabase.validate(url: database, path: "flags.database")
        }
        if flags?.ofrep.auth == .identity, identity?.jwt == nil, identity?.apiKeys == nil {
            issues.append(.init(path: "flags.ofrep.auth", "is identity, but the identity section has neither jwt nor apiKeys"))
        }
        if graphqlCache.redis, redis == nil {
            issues.append(.init(path: "graphqlCache.redis", "is true, but there is no redis section"))
        }
        if graphqlCache.memory.bytes < 1 { issues.append(.init(path: "graphqlCache.memory", "must be at least 1 byte")) }
        if pools.isEmpty {
            issues.append(.init(path: "pools", "name at least one pool"))
        }
        for name in pools.keys.sorted() {
            if !name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) {
                issues.append(.init(path: "pools.\(name)", "pool names use letters, digits, - and _"))
            }
            issues += pools[name]!.validate(at: "pools.\(name)")
        }
        for (index, route) in routes.enumerated() where route.graphql?.conformanceTesting != nil {
            if ListenAddress(listeners.traffic.address)?.isLoopback != true {
                issues.append(.init(path: "routes[\(index)].graphql.conformanceTesting",
                                    "is for tests only and needs a loopback traffic listener, not \(listeners.traffic.address)"))
            }
        }
        if routes.isEmpty, pools.count > 1 {
            issues.append(.init(path: "routes", "with more than one pool, routes must say which requests go where"))
        }
        for (index, route) in routes.enumerated() {
            issues += route.validate(at: "routes[\(index)]", pools: Set(pools.keys))
            if route.identity == .required, identity?.jwt == nil, identity?.apiKeys == nil {
                issues.append(.init(path: "routes[\(index)].identity", "is required, but the identity section has neither jwt nor apiKeys"))
            }
            if flags == nil, route.match.flag != nil || route.forwardFlags != nil {
                issues.append(.init(path: "routes[\(index)]", "uses feature flags, but there is no flags section"))
            }
            if let policy = route.limit, policy != RouteConfiguration.noLimit {
                if let limits {
                    if !limits.policyNames.contains(policy) {
                        issues.append(.init(path: "routes[\(index)].limit", "no policy is named \"\(policy)\" (limits.policies has \(limits.policyNames.joined(separator: ", ")))"))
                    }
                } else {
                    issues.append(.init(path: "routes[\(index)].limit", "names a rate-limit policy, but there is no limits section"))
                }
            }
        }
        let routeNames = Set(routes.compactMap(\.name))
        for (index, name) in (shield.bruteForce?.routes ?? []).enumerated() where !routeNames.contains(name) {
            issues.append(.init(path: "shield.bruteForce.routes[\(index)]", "no route is named \"\(name)\""))
        }
        return issues
    }
}

/// The two listeners.
public struct ListenersConfiguration: Codable, Sendable, Equatable {
    public var traffic: TrafficListenerConfiguration
    public var admin: AdminListenerConfiguration

    public init(traffic: TrafficListenerConfiguration = .init(), admin: AdminListenerConfiguration = .init()) {
        self.traffic = traffic
        self.admin = admin
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case traffic, admin }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        traffic = try c.decodeIfPresent(TrafficListenerConfiguration.self, forKey: .traffic) ?? .init()
        admin = try c.decodeIfPresent(AdminListenerConfiguration.self, forKey: .admin) ?? .init()
    }

    func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        if ListenAddress(traffic.address) == nil {
            issues.append(.init(path: "\(path).traffic.address", "\"\(traffic.address)\" is not host:port"))
        }
        if let tls = traffic.tls {
            issues += ServerTLS.problems(with: tls, at: "\(path).traffic.tls")
        }
        if let admin = ListenAddress(self.admin.address) {
            if !admin.isLoopback, (self.admin.token ?? "").isEmpty {
                issues.append(.init(path: "\(path).admin.token",
                                    "the admin listener on \(self.admin.address) is not loopback-only; set a token (or RAMPART_ADMIN_TOKEN)"))
            }
        } else {
            issues.append(.init(path: "\(path).admin.address", "\"\(self.admin.address)\" is not host:port"))
        }
        if let token = self.admin.token, !token.isEmpty, token.count < 16 {
            issues.append(.init(path: "\(path).admin.token", "use at least 16 characters"))
        }
        return issues
    }
}

/// The traffic listener: HTTP/1.1 and HTTP/2 on one port, in clear text or over TLS.
public struct TrafficListenerConfiguration: Codable, Sendable, Equatable {
    /// `host:port`. Default `127.0.0.1:8080`.
    public var address: String
    /// Offer HTTP/2: by prior knowledge in clear text (h2c), through ALPN with TLS. Default true.
    public var http2: Bool
    /// Serve TLS with this certificate and key; clear text without.
    public var tls: TLSFilesConfiguration?

    public init(address: String = "127.0.0.1:8080", http2: Bool = true, tls: TLSFilesConfiguration? = nil) {
        self.address = address
        self.http2 = http2
        self.tls = tls
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case address, http2, tls }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        address = try c.decodeIfPresent(String.self, forKey: .address) ?? "127.0.0.1:8080"
        http2 = try c.decodeIfPresent(Bool.self, forKey: .http2) ?? true
        tls = try c.decodeIfPresent(TLSFilesConfiguration.self, forKey: .tls)
    }
}

/// A certificate chain and its private key, PEM files. Relative paths are taken from the
/// working directory.
public struct TLSFilesConfiguration: Codable, Sendable, Equatable {
    /// The certificate chain, leaf first.
    public var certificate: String
    /// The private key of the leaf certificate.
    public var key: String

    public init(certificate: String, key: String) {
        self.certificate = certificate
        self.key = key
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case certificate, key }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        certificate = try c.decode(String.self, forKey: .certificate)
        key = try c.decode(String.self, forKey: .key)
    }
}

/// The admin listener.
public struct AdminListenerConfiguration: Codable, Sendable, Equatable {
    /// `host:port`. Default `127.0.0.1:9901`.
    public var address: String
    /// Bearer token required on every admin request. Required off loopback.
    public var token: String?

    public init(address: String = "127.0.0.1:9901", token: String? = nil) {
        self.address = address
        self.token = token
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case address, token }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        address = try c.decodeIfPresent(String.self, forKey: .address) ?? "127.0.0.1:9901"
        token = try c.decodeIfPresent(String.self, forKey: .token)
    }
}

/// Logging.
public struct LogConfiguration: Codable, Sendable, Equatable {
    /// `trace`, `debug`, `info`, `notice`, `warning`, `error`, `critical`. Default `info`.
    public var level: String
    /// One JSON line per request on standard output. Default true.
    public var accessLog: Bool

    public init(level: String = "info", accessLog: Bool = true) {
        self.level = level
        self.accessLog = accessLog
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case level, accessLog }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let level = try c.decodeIfPresent(String.self, forKey: .level) ?? "info"
        let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
        guard levels.contains(level) else {
            throw DecodingError.dataCorruptedError(forKey: .level, in: c,
                debugDescription: "unknown level \"\(level)\"; one of \(levels.joined(separator: ", "))")
        }
        self.level = level
        accessLog = try c.decodeIfPresent(Bool.self, forKey: .accessLog) ?? true
    }
}

/// A listen address: `host:port`, `[v6]:port` or `:port` (all interfaces).
public struct ListenAddress: Hashable, Sendable {
    public let host: String
    public let port: Int

    public init?(_ text: String) {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let port = Int(portText), (0...65535).contains(port) else { return nil }
        self.host = host.isEmpty ? "0.0.0.0" : String(host)
        self.port = port
    }

    /// Whether only this machine can connect.
    public var isLoopback: Bool {
        if host == "localhost" { return true }
        guard let address = IPAddress(host) else { return false }
        return CIDRBlock("127.0.0.0/8")!.contains(address) || CIDRBlock("::1/128")!.contains(address)
    }
}
