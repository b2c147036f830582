import AsyncHTTPClient
import HummingbirdCore
public import Logging
public import Prometheus
public import RampartCore
import Hummingbird
import HTTPTypes
import HummingbirdHTTP2
import NIOCore
import NIOPosix
import NIOHTTP1
import RampartBalancing
import RampartEvents
import RampartFlags
import RampartIdentity
public import RampartLimits
public import RampartShield
import RampartStore
public import ServiceLifecycle
import Synchronization
import UnixSignals

/// The assembled gateway: the traffic listener with its phases, the admin listener, active
/// health checks, draining and configuration reloads, run together as one `Service`.
///
/// Configuration becomes objects here and nowhere else.
public final class Gateway: Service, Sendable {
    public let live: LiveConfiguration
    public let pools: PoolRegistry
    /// Resolves to the traffic listener's port once it is bound (useful with port 0).
    public let trafficPort = PortAnnouncement()
    /// Resolves to the admin listener's port once it is bound.
    public let adminPort = PortAnnouncement()
    let configurationPath: String?
    let loader: ConfigurationLoader
    let logger: Logger
    let registry: PrometheusCollectorRegistry?
    let time: any TimeSource
    /// For health checks, alerts, events and fetched keys.
    let client: HTTPClient
    /// For proxied requests.
    let upstreams: UpstreamClient
    let budget: RetryBudget
    let drains: DrainQueue
    /// Temporary blocks (admin API and automatic), persisted in `shield.blocks.database`.
    public let blocklist: Blocklist
    /// Threat events, automatic blocks, alerts and the threat level; also the gateway's
    /// `ThreatSignals` for the rate limiter.
    public let responder: ThreatResponder
    let alerts: AlertDispatcher
    let bruteForce: BruteForceGuard
    let flood: FloodDetector
    let cspReports: CSPReportIntake
    /// Rate limits (`limits:`); kept through reloads, so counters survive them.
    public let limiter: AdaptiveRateLimiter
    let limitMetrics = LimitMetrics()
    /// Limits shared through Redis (`redis:` configured and `limits.shared.enabled`).
    let sharedLimits: SharedLimits?
    /// JWT and API-key checks (`identity:`).
    let authenticator: Authenticator?
    /// Feature flags (`flags:`): nil without the section.
    public let flagRuntime: FlagRuntime?
    /// Cached GraphQL answers (`graphqlCache:`), for every GraphQL route with a cache.
    let graphqlCache: GraphQLCacheStore
    /// Event delivery (`events:`): nil without the section.
    public let events: EventsRuntime?

    /// - Parameters:
    ///   - configuration: a validated configuration.
    ///   - configurationPath: the file reloads read again; without one, reload is refused.
    ///   - registry: where `/metrics` reads from (the one `Telemetry.bootstrap` returned).
    /// - Throws: `ConfigurationError` when the block database cannot be opened.
    public init(configuration: GatewayConfiguration, configurationPath: String? = nil, environment: [String: String] = [:],
                logger: Logger, registry: PrometheusCollectorRegistry? = nil, time: any TimeSource = SystemTimeSource(),
                wallClock: @escaping @Sendable () -> Double = wallClockSeconds) throws(ConfigurationError) {
        // First, so that a failure leaves nothing (like the HTTP client below) to shut down.
        let eventStore: any ThreatEventStore
        do {
            let database = try configuration.shield.blocks.database.map { try SQLiteDatabase(path: $0) }
            eventStore = database.map { SQLiteThreatEventStore(database: $0) } ?? MemoryThreatEventStore()
            let store: any BlockStore = database.map { SQLiteBlockStore(database: $0) } ?? MemoryBlockStore()
            self.blocklist = try Blocklist(store: store, now: wallClock)
        } catch {
            throw ConfigurationError(issues: [.init(path: "shield.blocks.database",
                                                    "cannot open \(configuration.shield.blocks.database ?? "") (\(error))")])
        }
        self.pools = PoolRegistry(time: time)
        self.pools.apply(configuration.pools)
        // After the pools, which its snapshots resolve the routes' pools in.
        self.live = LiveConfiguration(configuration, pools: pools)
        self.configurationPath = configurationPath
        self.loader = ConfigurationLoader(environment: environment)
        self.logger = logger
        self.registry = registry
        self.time = time
        self.budget = RetryBudget(ratio: configuration.proxy.retries.budgetRatio,
                                  minRetriesPerSecond: configuration.proxy.retries.minRetriesPerSecond, time: time)
        let timeouts = configuration.proxy.timeouts
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.timeout = .init(connect: .nanoseconds(timeouts.connect.duration.nanoseconds),
                                            read: .nanoseconds(timeouts.idle.duration.nanoseconds))
        clientConfiguration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 512)
        // A refused connection must fail at once so the request moves to another instance,
        // not be retried against the same one until the connect timeout.
        clientConfiguration.connectionPool.retryConnectionEstablishment = false
        clientConfiguration.redirectConfiguration = .disallow
        clientConfiguration.decompression = .disabled
        clientConfiguration.httpVersion = .http1Only
        let client = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: clientConfiguration)
        self.client = client
        self.upstreams = UpstreamClient(settings: .init(connectTimeout: .nanoseconds(timeouts.connect.duration.nanoseconds),
                                                        idleTimeout: .nanoseconds(timeouts.idle.duration.nanoseconds)))
        // From here on a failure must shut the client down, or it is freed while open.
        do throws(ConfigurationError) {
            self.drains = DrainQueue()
            self.alerts = AlertDispatcher(transport: HTTPAlertTransport(client: client), logger: logger)
            self.events = try configuration.events.map { events throws(ConfigurationError) in
                try EventsRuntime(events, client: client, logger: logger, now: wallClock)
            }
            let live = self.live
            self.responder = ThreatResponder(configuration: { live.snapshot.configuration.shield.response }, blocklist: blocklist,
                                             store: eventStore, alerts: alerts, time: time, wallClock: wallClock, logger: logger,
                                             events: events?.publisher(.threats))
            self.bruteForce = BruteForceGuard(time: time)
            self.flood = FloodDetector(time: time)
            self.cspReports = CSPReportIntake(time: time)
            let limits = configuration.limits ?? RateLimitsConfiguration()
            var shared: SharedLimits?
            if let redis = configuration.redis, limits.shared.enabled {
                do {
                    let client = try RedisClient(redis)
                    let metrics = limitMetrics
                    shared = SharedLimits(store: RedisRateLimitStore(client: client, prefix: limits.shared.keyPrefix), time: time) { event in
                        metrics.storeEvent(event)
                        switch event {
                        case .error: break
                        case .fellBack(let reason, let mode, let replicas):
                            logger.warning("rate limits: Redis (\(redis.redactedURL)) failed, falling back until it answers again",
                                           metadata: ["reason": "\(reason)", "onStoreFailure": "\(mode.rawValue)", "replicas": "\(replicas)"])
                        case .recovered(let after):
                            logger.notice("rate limits: Redis answers again; limits are shared once more",
                                          metadata: ["after": "\(after.secondsValue)s"])
                        }
                    }
                } catch {
                    throw ConfigurationError(issues: [error])
                }
            }
            self.sharedLimits = shared
            if let identity = configuration.identity {
                let client = self.client
                do {
                    self.authenticator = try Authenticator(identity, fetch: { location in
                        guard location.hasPrefix("http://") || location.hasPrefix("https://") else { return try await Authenticator.readFile(location) }
                        let response = try await client.execute(HTTPClientRequest(url: location), timeout: .seconds(10))
                        guard response.status == .ok else { throw KeyError("JWKS \(location) answered \(response.status.code)") }
                        return Array(buffer: try await response.body.collect(upTo: 1 << 20))
                    }, now: wallClock)
                } catch {
                    throw ConfigurationError(issues: [.init(path: "identity", "\(error)")])
                }
            } else {
                self.authenticator = nil
            }
            self.limiter = AdaptiveRateLimiter(limits, time: time, signals: responder, shared: shared)
            var cacheRedis: RedisClient?
            if let redis = configuration.redis, configuration.graphqlCache.redis {
                do {
                    cacheRedis = try RedisClient(redis)
                } catch {
                    throw ConfigurationError(issues: [error])
                }
            }
            var cacheLogger = logger
            cacheLogger[metadataKey: "component"] = "graphql-cache"
            self.graphqlCache = GraphQLCacheStore(configuration.graphqlCache, redis: cacheRedis, logger: cacheLogger, now: wallClock)
            if let flags = configuration.flags {
                var flagLogger = logger
                flagLogger[metadataKey: "component"] = "flags"
                self.flagRuntime = try FlagRuntime(flags, logger: flagLogger, now: wallClock, exposureEvents: events?.publisher(.flags),
                                                   audit: events?.publisher(.audit))
            } else {
                self.flagRuntime = nil
            }
        } catch {
            try? client.syncShutdown()
            throw error
        }
    }

    public func run() async throws {
        // Stored flags are read before anything is served; a PostgreSQL pool behind them
        // runs for as long as the gateway does.
        // The clients are shut down however it ends, a failed start included.
        do {
            try await withThrowingTaskGroup(of: Void.self) { background in
                if let postgres = flagRuntime?.postgres { background.addTask { await postgres.run() } }
                defer { background.cancelAll() }
                try await flagRuntime?.start()
                try await runServices()
            }
        } catch {
            await sharedLimits?.store.client.shutdown()
            await graphqlCache.redis?.shutdown()
            await upstreams.shutdown()
            try? await client.shutdown()
            throw error
        }
        await sharedLimits?.store.client.shutdown()
        await graphqlCache.redis?.shutdown()
        await upstreams.shutdown()
        try await client.shutdown()
    }

    private func runServices() async throws {
        let configuration = live.snapshot.configuration
        let traffic = try trafficApplication(configuration)
        let admin = try adminApplication(configuration)
        var services: [any Service] = [traffic, admin, HealthCheckService(pools: pools, probe: HTTPHealthProbe(client: client)),
                                       DrainService(queue: drains, pools: pools, logger: logger),
                                       ShieldService(gateway: self), LimitsService(gateway: self)]
        if let events { services.append(EventsService(runtime: events)) }
        if let authenticator, let jwks = configuration.identity?.jwt?.jwks {
            services.append(KeySetRefreshService(authenticator: authenticator, interval: jwks.refresh.duration, logger: logger))
        }
        if let flagRuntime {
            services.append(FlagWatchService(watched: .files, runtime: flagRuntime, live: live, logger: logger))
            if flagRuntime.isStoreShared {
                services.append(FlagWatchService(watched: .store, runtime: flagRuntime, live: live, logger: logger))
            }
        }
        if graphqlCache.redis != nil { services.append(GraphQLCachePurgeService(store: graphqlCache)) }
        if configurationPath != nil { services.append(SignalReloadService(gateway: self)) }
        // However the gateway is embedded, a graceful shutdown (SIGTERM in the binary, or the
        // caller's service group) gives in-flight requests `proxy.timeouts.shutdown` to finish;
        // then whatever still runs is cancelled, so a stuck connection cannot hold the exit.
        var groupConfiguration = ServiceGroupConfiguration(services: services, logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = configuration.proxy.timeouts.shutdown.duration
        try await ServiceGroup(configuration: groupConfiguration).run()
    }

    private func trafficApplication(_ configuration: GatewayConfiguration) throws -> some Service {
        let listener = configuration.listeners.traffic
        guard let address = ListenAddress(listener.address) else { throw ConfigurationError(issues: [.init(path: "listeners.traffic.address", "invalid")]) }
        let proxy = configuration.proxy
        let router = Router(context: GatewayRequestContext.self)
        // The order of the phases; see ARCHITECTURE.md. Record is listed early because it acts last.
        // The phase values are shared with the direct path (DirectForwarding), which runs them
        // synchronously for the requests it serves.
        let record = RecordPhase(accessLog: configuration.log.accessLog ? accessLogger() : nil, time: time)
        let admit = AdmitPhase(blocklist: blocklist, flood: flood, responder: responder)
        let endpoints = EndpointPhase(cspReports: cspReports, responder: responder, ofrep: flagRuntime.map(OFREPEndpoint.init))
        let route = RoutePhase(flags: flagRuntime)
        let inspect = InspectPhase(time: time, responder: responder, bruteForce: bruteForce)
        let forward = ForwardPhase(pools: pools, client: upstreams, budget: budget, time: time)
        router.middlewares.add(SnapshotPinner(live: live, isSecure: listener.tls != nil))
        router.middlewares.add(record)
        router.middlewares.add(ShapePhase())
        router.middlewares.add(admit)
        router.middlewares.add(IdentifyPhase(authenticator: authenticator,
                                             apiKeyHeader: configuration.identity?.apiKeys.flatMap { HTTPField.Name($0.header) }))
        router.middlewares.add(endpoints)
        router.middlewares.add(route)
        router.middlewares.add(RequireIdentityPhase())
        router.middlewares.add(inspect)
        router.middlewares.add(LimitPhase(limiter: limiter, metrics: limitMetrics))
        router.middlewares.add(GraphQLPhase(logger: logger, cache: graphqlCache))
        router.middlewares.add(forward)
        let headerBytes = proxy.limits.maxHeaderBytes.bytes
        let headerTimeout = TimeAmount.nanoseconds(proxy.timeouts.clientHeader.duration.nanoseconds)
        let bodyTimeout = TimeAmount.nanoseconds(proxy.timeouts.clientBody.duration.nanoseconds)
        let idle = Duration.nanoseconds(proxy.timeouts.clientIdle.duration.nanoseconds)
        let http1 = HTTP1Channel.Configuration(
            additionalChannelHandlers: [ConnectionGuard(headerTimeout: headerTimeout, bodyTimeout: bodyTimeout)],
            idleTimeout: .nanoseconds(proxy.timeouts.clientIdle.duration.nanoseconds),
            httpDecoderConfiguration: .init(maxHeaderFieldSize: headerBytes, maxHeaderListSize: headerBytes, maxHeaderFieldCount: 200))
        let http2 = HTTP2ChannelConfiguration(
            idleTimeout: idle,
            streamConfiguration: .init(additionalChannelHandlers: [ConnectionGuard(headerTimeout: headerTimeout, bodyTimeout: bodyTimeout, isStream: true),
                                                                   HTTP2ResponseSanitizer()]))
        var options = TrafficChannel.Options(http2: listener.http2, prefaceTimeout: headerTimeout)
        options.direct = DirectPhases(live: live, isSecure: listener.tls != nil, record: record, admit: admit, endpoints: endpoints,
                                      route: route, inspect: inspect, forward: forward, authenticates: authenticator != nil,
                                      headerTimeout: headerTimeout, idleTimeout: .nanoseconds(proxy.timeouts.clientIdle.duration.nanoseconds),
                                      logger: logger)
        if let tls = listener.tls {
            do {
                options.tls = try ServerTLS.context(tls, protocols: TrafficChannel.applicationProtocols(http2: listener.http2),
                                                    at: "listeners.traffic.tls")
            } catch {
                throw ConfigurationError(issues: [.init(path: error.path, error.message)])
            }
        }
        let channelOptions = options
        let server = HTTPServerBuilder { responder in
            TrafficChannel(responder: responder, http1: http1, http2: http2, options: channelOptions)
        }
        let port = trafficPort
        return Application(
            router: router, server: server,
            configuration: .init(address: .hostname(address.host, port: address.port)),
            onServerRunning: { channel in port.announce(channel.localAddress?.port ?? 0) },
            logger: logger)
    }

    private func adminApplication(_ configuration: GatewayConfiguration) throws -> some Service {
        let listener = configuration.listeners.admin
        guard let address = ListenAddress(listener.address) else { throw ConfigurationError(issues: [.init(path: "listeners.admin.address", "invalid")]) }
        let router = AdminRouter(gateway: self, token: listener.token, registry: registry).build()
        let port = adminPort
        return Application(
            router: router, configuration: .init(address: .hostname(address.host, port: address.port)),
            onServerRunning: { channel in port.announce(channel.localAddress?.port ?? 0) },
            logger: logger)
    }

    private func accessLogger() -> Logger {
        var log = Logger(label: "access")
        log.logLevel = .info
        return log
    }

    // MARK: - Reload

    /// Reads the configuration file again and swaps it in atomically. An invalid file, or one
    /// that changes what cannot change while running, is refused and the running configuration
    /// stays. Returns the new generation.
    @discardableResult
    public func reload() throws(ConfigurationError) -> Int {
        guard let path = configurationPath else {
            throw ConfigurationError(issues: [.init(path: "", "this gateway was started without a configuration file; nothing to reload")])
        }
        let next = try loader.load(path: path)
        let current = live.snapshot.configuration
        var issues: [ConfigurationIssue] = []
        if next.shield.blocks != current.shield.blocks {
            issues.append(.init(path: "shield.blocks.database", "the block database cannot change while running; restart to apply"))
        }
        if next.listeners != current.listeners {
            issues.append(.init(path: "listeners", "listener addresses, TLS and the admin token cannot change while running; restart to apply"))
        }
        if next.proxy.limits.maxHeaderBytes != current.proxy.limits.maxHeaderBytes || next.proxy.timeouts.clientHeader != current.proxy.timeouts.clientHeader
            || next.proxy.timeouts.clientBody != current.proxy.timeouts.clientBody || next.proxy.timeouts.clientIdle != current.proxy.timeouts.clientIdle
            || next.proxy.timeouts.connect != current.proxy.timeouts.connect || next.proxy.timeouts.idle != current.proxy.timeouts.idle {
            issues.append(.init(path: "proxy", "header limits and connection-level timeouts (clientHeader, clientBody, clientIdle, connect, idle) cannot change while running; restart to apply"))
        }
        if next.events != current.events {
            issues.append(.init(path: "events", "event delivery (spool, sinks, what is published) cannot change while running; restart to apply"))
        }
        if (next.flags == nil) != (current.flags == nil) || next.flags?.database != current.flags?.database {
            issues.append(.init(path: "flags", "adding or removing the flags section, or changing flags.database, needs a restart"))
        }
        if !issues.isEmpty { throw ConfigurationError(issues: issues) }
        if let flagRuntime, let flags = next.flags {
            let problems = flagRuntime.catalog.setSources(flags.sources)
            if !problems.isEmpty {
                logger.error("feature flags: flag files were refused on reload; their last good versions stay in force",
                             metadata: ["errors": "\(problems.map(\.description).joined(separator: "; "))"])
            }
        }
        pools.apply(next.pools)
        budget.update(ratio: next.proxy.retries.budgetRatio, minRetriesPerSecond: next.proxy.retries.minRetriesPerSecond)
        if let limits = next.limits { limiter.apply(limits) }
        let snapshot = live.replace(with: next)
        logger.info("configuration reloaded", metadata: ["generation": "\(snapshot.generation)"])
        events?.publisher(.audit)?.publish(Event(type: "audit.config_reloaded", time: wallClockSeconds(),
                                                 source: "rampart/gateway", payload: ["generation": .number(Double(snapshot.generation)),
                                                                                      "file": .string(path)]))
        return snapshot.generation
    }

    // MARK: - Membership

    /// `deployment.instance_changed`, keyed by pool so one pool's changes stay in order.
    private func publishMembership(pool: String, instance: String, action: String, weight: Int?) {
        guard let publisher = events?.publisher(.deployments) else { return }
        var payload: [String: JSONValue] = ["pool": .string(pool), "instance": .string(instance), "action": .string(action)]
        if let weight { payload["weight"] = .number(Double(weight)) }
        publisher.publish(Event(type: "deployment.instance_changed", time: wallClockSeconds(), source: "rampart/gateway",
                                partitionKey: pool, payload: .object(payload)))
    }

    func apply(_ command: MembershipCommand) async -> Response {
        guard let pool = pools.pool(named: command.pool) else {
            return errorAnswer(.notFound, "no pool named \"\(command.pool)\"")
        }
        let id = UpstreamURL(command.instance)?.authority ?? command.instance
        do {
            switch command.action {
            case .register:
                let instance = try pool.register(InstanceConfiguration(url: command.instance, weight: command.weight ?? 1,
                                                                       region: command.region, priority: command.priority ?? 0))
                logger.info("instance registered", metadata: ["pool": "\(pool.name)", "instance": "\(instance.id)"])
                publishMembership(pool: pool.name, instance: instance.id, action: "register", weight: command.weight ?? 1)
                return jsonResponse(pool.status, status: .created)
            case .unregister, .drain:
                let instance = try pool.drain(id: id)
                if command.action == .unregister {
                    drains.enqueue(DrainJob(pool: pool.name, instance: instance, timeout: pool.configuration.drainTimeout.duration))
                }
                logger.info("instance draining", metadata: ["pool": "\(pool.name)", "instance": "\(id)"])
                publishMembership(pool: pool.name, instance: id, action: command.action.rawValue, weight: nil)
                return jsonResponse(pool.status, status: .accepted)
            case .weight:
                guard let weight = command.weight else { return errorAnswer(.badRequest, "weight: required for action weight") }
                try pool.setWeight(id: id, weight: weight)
                publishMembership(pool: pool.name, instance: id, action: "weight", weight: weight)
                return jsonResponse(pool.status)
            }
        } catch {
            switch error {
            case .unknown: return errorAnswer(.notFound, error.description)
            case .duplicate: return errorAnswer(.conflict, error.description)
            case .invalid, .invalidURL: return errorAnswer(.badRequest, error.description)
            }
        }
    }
}

/// A port learned once a listener is bound.
public final class PortAnnouncement: Sendable {
    private let state = Mutex<(port: Int?, waiters: [CheckedContinuation<Int, Never>])>((nil, []))

    func announce(_ port: Int) {
        let waiters = state.withLock { s -> [CheckedContinuation<Int, Never>] in
            s.port = port
            defer { s.waiters = [] }
            return s.waiters
        }
        for waiter in waiters { waiter.resume(returning: port) }
    }

    /// Waits until the listener is bound.
    public var port: Int {
        get async {
            await withCheckedContinuation { continuation in
                let known = state.withLock { s -> Int? in
                    if let port = s.port { return port }
                    s.waiters.append(continuation)
                    return nil
                }
                if let known { continuation.resume(returning: known) }
            }
        }
    }
}

