public import RampartCore
import RampartBalancing
import RampartShield
import RampartLimits
import RampartFlags
import RampartGraphQL
import Synchronization

/// One configuration generation, compiled: what a request reads for its whole life. Immutable.
public final class GatewaySnapshot: Sendable {
    public let generation: Int
    public let configuration: GatewayConfiguration
    public let routes: RouteTable
    public let clientAddresses: ClientAddressResolver
    let countries: CIDRTable<String>
    let countryHeader: HTTPFieldNameBox?
    let ipRules: IPRules
    /// Security headers of routes that override the global ones, by position in `routes`.
    let routeHeaders: [Int: SecurityHeaders]
    let defaultHeaders: SecurityHeaders?
    let csrf: CSRFGuard?
    /// Routes (by position) exempt from the CSRF check.
    let csrfExempt: Set<Int>
    /// Threat detection; nil when `shield.waf.mode` is off.
    let inspector: ThreatInspector?
    /// Routes (by position) with their own threat-detection mode or exclusions.
    let routeWAF: [Int: (mode: WAFConfiguration.Mode, exclusions: ExclusionList)]
    /// Routes (by position) whose requests are login attempts (`shield.bruteForce.routes`).
    let loginRoutes: Set<Int>
    /// The rate-limit policy and endpoint class (nil: by method) of each limited route, by
    /// position; empty without `limits`.
    let limits: [Int: (policy: String, endpointClass: String?)]
    /// Routes (by position) that answer 401 without a valid credential.
    let identityRequired: Set<Int>
    /// SHA-256 digests of the OFREP tokens (`flags.ofrep.tokens`).
    let ofrepTokens: [[UInt8]]
    /// GraphQL routes (by position): their guard, or why it could not be built (a schema
    /// file that became unreadable after validation).
    let graphql: [Int: Result<GraphQLRoute, ConfigurationIssue>]
    /// The pool of each route that forwards, by position, as the registry held it when the
    /// snapshot was made (a reload updates the pools before it makes the next snapshot): a
    /// request finds its pool without the registry's lock, which every event loop shares, or
    /// hashing the pool's name.
    private let routePools: [Pool?]
    /// Whether each route (by position) can be decided without waiting: no flags to forward,
    /// no credential required, no login counting, no rate limit, no GraphQL guard (see
    /// `DirectPhases.route(serving:snapshot:)`). Worked out once, rather than by four lookups
    /// per request.
    private let decidedAtOnce: [Bool]

    /// - Parameter pools: the registry the routes' pools are found in; without one, each request
    ///   asks the gateway's.
    init(generation: Int, configuration: GatewayConfiguration, pools: PoolRegistry? = nil) {
        self.generation = generation
        self.configuration = configuration
        self.routes = RouteTable(configuration.routes, pools: configuration.pools.keys.sorted())
        var routePools = [Pool?](repeating: nil, count: (routes.routes.map(\.order).max() ?? -1) + 1)
        if let pools {
            for route in routes.routes {
                if case .pool(let name) = route.target { routePools[route.order] = pools.pool(named: name) }
            }
        }
        self.routePools = routePools
        self.clientAddresses = ClientAddressResolver(trustedProxies: configuration.proxy.trustedProxies)
        self.countries = configuration.proxy.countryTable
        self.countryHeader = configuration.proxy.countryHeader.flatMap(HTTPFieldNameBox.init)
        self.ipRules = configuration.shield.ipRules.rules
        let global = configuration.shield.securityHeaders
        self.defaultHeaders = global.map(SecurityHeaders.init)
        var routeHeaders: [Int: SecurityHeaders] = [:]
        for (index, route) in configuration.routes.enumerated() {
            if let own = route.securityHeaders { routeHeaders[index] = SecurityHeaders((global ?? .init()).merged(with: own)) }
        }
        self.routeHeaders = routeHeaders
        self.csrf = configuration.shield.csrf.map(CSRFGuard.init)
        self.csrfExempt = Set(configuration.routes.indices.filter { configuration.routes[$0].csrf == false })
        let waf = configuration.shield.waf
        var routeWAF: [Int: (mode: WAFConfiguration.Mode, exclusions: ExclusionList)] = [:]
        for (index, route) in configuration.routes.enumerated() {
            if let own = route.waf { routeWAF[index] = (own.mode ?? waf.mode, ExclusionList(own.exclude)) }
        }
        self.routeWAF = routeWAF
        let anyOn = waf.mode != .off || routeWAF.values.contains { $0.mode != .off }
        self.inspector = anyOn ? ThreatInspector(waf) : nil
        let logins = Set(configuration.shield.bruteForce?.routes ?? [])
        self.loginRoutes = Set(configuration.routes.indices.filter { configuration.routes[$0].name.map(logins.contains) ?? false })
        var limits: [Int: (policy: String, endpointClass: String?)] = [:]
        if configuration.limits != nil {
            for (index, route) in configuration.routes.enumerated() where route.limit != RouteConfiguration.noLimit {
                limits[index] = (route.limit ?? RateLimitsConfiguration.defaultName, route.limitClass)
            }
            // Without routes, the one pool takes everything under the default policy.
            if configuration.routes.isEmpty { limits[0] = (RateLimitsConfiguration.defaultName, nil) }
        }
        self.limits = limits
        self.identityRequired = Set(configuration.routes.indices.filter { configuration.routes[$0].identity == .required })
        var graphql: [Int: Result<GraphQLRoute, ConfigurationIssue>] = [:]
        for (index, route) in configuration.routes.enumerated() {
            guard let settings = route.graphql else { continue }
            do {
                let conformance = settings.conformanceTesting.map { ConformanceOverrides(directory: $0.schemaDirectory, costSettings: settings.cost) }
                graphql[index] = .success(GraphQLRoute(guard: try settings.compile(), mode: settings.mode, maxBodyBytes: settings.maxBodyBytes.bytes,
                                                       upstream: (route.pool ?? "") + " " + (route.match.pathPrefix ?? "/"),
                                                       cache: settings.cache.flatMap { $0.enabled ? $0 : nil },
                                                       forwardNormalized: settings.forwardNormalized, conformance: conformance))
            } catch let issue as ConfigurationIssue {
                graphql[index] = .failure(issue)
            } catch {
                graphql[index] = .failure(ConfigurationIssue(path: "schema", "\(error)"))
            }
        }
        self.graphql = graphql
        var decidedAtOnce = [Bool](repeating: false, count: routePools.count)
        for route in routes.routes {
            decidedAtOnce[route.order] = route.forwardFlags == nil && !identityRequired.contains(route.order)
                && !loginRoutes.contains(route.order) && limits[route.order] == nil && graphql[route.order] == nil
        }
        self.decidedAtOnce = decidedAtOnce
        self.ofrepTokens = (configuration.flags?.ofrep.tokens ?? []).compactMap { token in
            let hex = Array(token.sha256.lowercased().utf8)
            guard hex.count == 64 else { return nil }
            return stride(from: 0, to: 64, by: 2).compactMap { UInt8(String(decoding: hex[$0..<$0 + 2], as: UTF8.self), radix: 16) }
        }
    }

    func requiresIdentity(_ route: CompiledRoute) -> Bool { identityRequired.contains(route.order) }

    /// Whether `route`'s phases can all be decided on the event loop, without waiting.
    func decidesAtOnce(_ route: CompiledRoute) -> Bool { route.order < decidedAtOnce.count && decidedAtOnce[route.order] }

    /// The pool `route` forwards to, as resolved when the snapshot was made.
    func pool(of route: CompiledRoute) -> Pool? { route.order < routePools.count ? routePools[route.order] : nil }

    /// The rate-limit policy on `route` and the endpoint class it sets, if it is limited.
    func limit(for route: CompiledRoute) -> (policy: String, endpointClass: String?)? { limits[route.order] }

    /// The threat-detection mode and exclusions on `route`.
    func waf(for route: CompiledRoute?) -> (mode: WAFConfiguration.Mode, exclusions: ExclusionList) {
        if let route, let own = routeWAF[route.order] { return own }
        return (configuration.shield.waf.mode, ExclusionList([]))
    }

    /// The security headers for responses on `route` (or with no route).
    func securityHeaders(for route: CompiledRoute?) -> SecurityHeaders? {
        guard let route else { return defaultHeaders }
        return routeHeaders[route.order] ?? defaultHeaders
    }
}

/// The live configuration: requests pin the current snapshot; a reload swaps it atomically.
public final class LiveConfiguration: Sendable {
    private let current: Mutex<GatewaySnapshot>
    /// The current snapshot's generation, readable without the lock: a reader that kept a
    /// snapshot checks it is still current by a load that writes nothing shared, where taking
    /// the lock would (each event loop's requests would take turns to own the lock's line).
    private let currentGeneration = Atomic<Int>(1)
    /// Where each snapshot finds its routes' pools.
    private let pools: PoolRegistry?

    init(_ configuration: GatewayConfiguration, pools: PoolRegistry? = nil) {
        self.pools = pools
        current = Mutex(GatewaySnapshot(generation: 1, configuration: configuration, pools: pools))
    }

    public var snapshot: GatewaySnapshot { current.withLock { $0 } }

    /// `kept` when it is still the current snapshot, else the current one.
    func snapshot(keeping kept: GatewaySnapshot?) -> GatewaySnapshot {
        if let kept, kept.generation == currentGeneration.load(ordering: .acquiring) { return kept }
        return snapshot
    }

    @discardableResult
    func replace(with configuration: GatewayConfiguration) -> GatewaySnapshot {
        current.withLock { old in
            let next = GatewaySnapshot(generation: old.generation + 1, configuration: configuration, pools: pools)
            old = next
            currentGeneration.store(next.generation, ordering: .releasing)
            return next
        }
    }
}
