#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Hummingbird
import HTTPTypes
import NIOCore
import Prometheus
import RampartBalancing
import RampartCore
import RampartGraphQL
import RampartLimits
import RampartShield
import RampartStore
import Logging

/// The admin listener's routes: load-balancer state and membership, configuration reload,
/// health, readiness and metrics. Every request needs the bearer token when one is set.
struct AdminRouter {
    let gateway: Gateway
    let token: String?
    let registry: PrometheusCollectorRegistry?

    func build() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.middlewares.add(BearerTokenCheck(token: token))
        router.get("/health") { _, _ in jsonResponse(["status": "ok"]) }
        router.get("/ready") { _, _ -> Response in
            let missing = gateway.pools.all.filter { (pool: Pool) in pool.configuration.required && !pool.hasAvailableInstance }.map { (pool: Pool) in pool.name }
            if missing.isEmpty { return jsonResponse(ReadyAnswer(ready: true, poolsWithoutInstances: [])) }
            return jsonResponse(ReadyAnswer(ready: false, poolsWithoutInstances: missing), status: .serviceUnavailable)
        }
        router.get("/metrics") { _, _ -> Response in
            var bytes: [UInt8] = []
            registry?.emit(into: &bytes)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        router.get("/api/system/load-balancer") { _, _ in
            jsonResponse(LoadBalancerAnswer(pools: gateway.pools.all.map { (pool: Pool) in pool.status }))
        }
        router.post("/api/system/load-balancer") { request, _ -> Response in
            let usage = "{\"action\": \"register|unregister|drain|weight\", \"pool\": ..., ...}"
            switch try await decodeCommand(MembershipCommand.self, from: request, usage: usage) {
            case .success(let command): return await gateway.apply(command)
            case .failure(let answer): return answer.response
            }
        }
        router.get("/api/system/threat-detection") { request, _ -> Response in
            let query: ThreatEventQuery
            do throws(BadParameter) {
                query = try ThreatDetectionAnswer.query(from: request.uri.queryParameters)
            } catch {
                return errorAnswer(.badRequest, error.message)
            }
            do {
                return jsonResponse(try ThreatDetectionAnswer(gateway, query: query))
            } catch {
                return errorAnswer(.internalServerError, "the threat event store failed: \(error)")
            }
        }
        router.get("/api/system/rate-limits") { _, _ -> Response in
            jsonResponse(RateLimitReport(gateway))
        }
        router.post("/api/system/threat-detection") { request, _ -> Response in
            let usage = "{\"action\": \"block|unblock\", \"address\": \"ip or cidr\", \"reason\": ..., \"duration\": \"1h\"}"
            switch try await decodeCommand(BlockCommand.self, from: request, usage: usage) {
            case .success(let command): return gateway.apply(command)
            case .failure(let answer): return answer.response
            }
        }
        router.get("/api/system/graphql/cache") { _, _ -> Response in
            jsonResponse(GraphQLCacheReport(gateway.graphqlCache))
        }
        router.post("/api/system/graphql/cache") { request, _ -> Response in
            let usage = "{\"action\": \"purge\", \"tags\": [\"Product\", \"Product:1\"]} or {\"action\": \"purge\", \"key\": ...} or {\"action\": \"purge\", \"all\": true}"
            switch try await decodeCommand(CachePurgeCommand.self, from: request, usage: usage) {
            case .success(let command): return await command.apply(to: gateway.graphqlCache, usage: usage)
            case .failure(let answer): return answer.response
            }
        }
        FlagsAdmin(runtime: gateway.flagRuntime).register(on: router)
        EventsAdmin(runtime: gateway.events).register(on: router)
        router.post("/api/system/config/reload") { _, _ -> Response in
            do {
                let generation = try gateway.reload()
                return jsonResponse(ReloadAnswer(reloaded: true, generation: generation, errors: []))
            } catch {
                let issues = (error as? ConfigurationError)?.issues.map { (issue: ConfigurationIssue) in issue.description } ?? ["\(error)"]
                return jsonResponse(ReloadAnswer(reloaded: false, generation: gateway.live.snapshot.generation, errors: issues),
                                    status: .unprocessableContent)
            }
        }
        return router
    }
}

/// Refuses admin requests without the right bearer token, comparing in constant time.
struct BearerTokenCheck: RouterMiddleware {
    typealias Context = BasicRequestContext
    let token: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token, !token.isEmpty else { return try await next(request, context) }
        let presented = request.headers[.authorization].flatMap { value -> Substring? in
            value.lowercased().hasPrefix("bearer ") ? value.dropFirst(7) : nil
        }
        guard let presented, constantTimeEqual(Array(presented.utf8), Array(token.utf8)) else {
            var response = errorAnswer(.unauthorized, "a valid bearer token is required")
            response.headers[.wwwAuthenticate] = "Bearer realm=\"rampart-admin\""
            return response
        }
        return try await next(request, context)
    }
}


/// A change to a pool's membership.
struct MembershipCommand: Codable, Sendable {
    enum Action: String, Codable, Sendable { case register, unregister, drain, weight }
    let action: Action
    let pool: String
    /// For register: the instance URL. For the others: the instance id (`host:port`) or URL.
    let instance: String
    let weight: Int?
    let region: String?
    let priority: Int?
}

struct LoadBalancerAnswer: Codable { let pools: [PoolStatus] }
struct ReadyAnswer: Codable { let ready: Bool; let poolsWithoutInstances: [String] }
struct ReloadAnswer: Codable { let reloaded: Bool; let generation: Int; let errors: [String] }
struct ErrorAnswer: Codable { let error: String }

func jsonResponse<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

/// A JSON document built as a value (the flag and event endpoints), one line.
func jsonResponse(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
    Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: value.jsonText + "\n")))
}

func errorAnswer(_ status: HTTPResponse.Status, _ message: String) -> Response {
    jsonResponse(ErrorAnswer(error: message), status: status)
}

/// A query parameter that is not what the endpoint takes: `"<name>: <expected>, got "<text>""`.
struct BadParameter: Error {
    let message: String
}

extension Parameters {
    /// The parameter `name` as an integer in `range`; nil when absent.
    func integer(_ name: String, in range: ClosedRange<Int64>, expected: String) throws(BadParameter) -> Int64? {
        guard let text = get(name) else { return nil }
        guard let value = Int64(text), range.contains(value) else { throw BadParameter(message: "\(name): \(expected), got \"\(text)\"") }
        return value
    }
}

/// A refusal of an admin request body, as an error so it can travel in a `Result`.
struct BadCommand: Error {
    let response: Response
}

/// Reads a JSON command of at most 64 KiB; a body that does not decode gets a 400 naming the
/// expected shape.
func decodeCommand<T: Decodable>(_ type: T.Type, from request: Request, usage: String) async throws -> Result<T, BadCommand> {
    let buffer = try await request.body.collect(upTo: 64 * 1024)
    do {
        return .success(try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView)))
    } catch {
        return .failure(BadCommand(response: errorAnswer(.badRequest, "invalid JSON: expected \(usage)")))
    }
}

/// `POST /api/system/threat-detection`.
struct BlockCommand: Codable, Sendable {
    enum Action: String, Codable, Sendable { case block, unblock }
    var action: Action
    /// An address or CIDR range.
    var address: String
    var reason: String?
    /// How long, with a unit (`30m`, `24h`); absent blocks until unblocked.
    var duration: String?
}

/// `GET /api/system/threat-detection`: the threat level, stored events by type and severity,
/// a page of recent events, blocked addresses, lockouts, the flood detector's baselines.
struct ThreatDetectionAnswer: Encodable {
    struct Block: Encodable {
        let range: String
        let reason: String
        let created: Double
        let expires: Double?
    }

    struct Rules: Encodable {
        let allow: [String]
        let deny: [String]
    }

    struct Totals: Encodable {
        let byType: [String: Int]
        let bySeverity: [String: Int]
        let byTypeAndSeverity: [ThreatEventTotal]
    }

    struct Lockout: Encodable {
        let key: String
        let remainingSeconds: Double
    }

    let threatLevel: Double
    let totals: Totals
    let events: [ThreatEvent]
    /// Pass as `before` for the next (older) page; absent on the last page.
    let nextBefore: Int64?
    let blocked: [Block]
    let ipRules: Rules
    let lockouts: [Lockout]
    let flood: FloodDetector.Status
    let alerts: [String: Int]

    /// `limit` (1-500, default 50), `before` (an event id), `kind`, `client`.
    static func query(from parameters: Parameters) throws(BadParameter) -> ThreatEventQuery {
        var query = ThreatEventQuery()
        if let limit = try parameters.integer("limit", in: 1...500, expected: "expected 1 to 500") { query.limit = Int(limit) }
        query.before = try parameters.integer("before", in: 1...Int64.max, expected: "expected an event id")
        query.kind = parameters.get("kind")
        query.client = parameters.get("client")
        return query
    }

    init(_ gateway: Gateway, query: ThreatEventQuery = .init()) throws {
        let responder = gateway.responder
        threatLevel = responder.threatLevel
        let totals = try responder.totals()
        self.totals = Totals(byType: totals.reduce(into: [:]) { $0[$1.kind, default: 0] += $1.count },
                             bySeverity: totals.reduce(into: [:]) { $0[$1.severity, default: 0] += $1.count }, byTypeAndSeverity: totals)
        events = try responder.events(query)
        nextBefore = events.count == query.limit ? events.last?.id : nil
        blocked = gateway.blocklist.active.map { Block(range: $0.range.description, reason: $0.reason, created: $0.created, expires: $0.expires) }
        let rules = gateway.live.snapshot.configuration.shield.ipRules
        ipRules = Rules(allow: rules.allow.map(\.description), deny: rules.deny.map(\.description))
        lockouts = gateway.bruteForce.lockouts.map { Lockout(key: $0.key, remainingSeconds: $0.remaining.secondsValue) }
        flood = gateway.flood.status(gateway.live.snapshot.configuration.shield.flood)
        alerts = gateway.alerts.totals
    }
}

extension Gateway {
    func apply(_ command: BlockCommand) -> Response {
        guard let range = CIDRBlock(command.address) else {
            return errorAnswer(.badRequest, "address: \"\(command.address)\" is not an IP address or CIDR range")
        }
        do {
            switch command.action {
            case .block:
                var seconds: Double?
                if let text = command.duration {
                    guard let duration = ConfigDuration(parsing: text), duration.duration > .zero else {
                        return errorAnswer(.badRequest, "duration: \"\(text)\" is not a positive duration (write it with a unit: 30m, 24h)")
                    }
                    seconds = Double(duration.duration.components.seconds) + Double(duration.duration.components.attoseconds) / 1e18
                }
                let reason = command.reason ?? "blocked through the admin API"
                try blocklist.add(range, reason: reason, duration: seconds)
                logger.notice("address blocked", metadata: ["range": "\(range)", "reason": "\(reason)"])
                return jsonResponse(try ThreatDetectionAnswer(self), status: .created)
            case .unblock:
                guard try blocklist.remove(range) else { return errorAnswer(.notFound, "no block for \(range)") }
                logger.notice("address unblocked", metadata: ["range": "\(range)"])
                return jsonResponse(try ThreatDetectionAnswer(self))
            }
        } catch {
            return errorAnswer(.internalServerError, "the block store failed: \(error)")
        }
    }
}

/// `GET /api/system/rate-limits`: each policy's configured and effective limit, the
/// adaptive factors, and the keys with the most violations.
struct RateLimitReport: Encodable {
    struct Policy: Encodable {
        let name: String
        let algorithm: String
        let base: Int
        let windowSeconds: Double
        let min: Int
        let max: Int
        let adaptive: Bool
        let roles: [String: Double]
        let classes: [String: Double]
        let key: [String]
        /// For a caller with no listed role on an endpoint of no listed class, now.
        let effectiveLimit: Int
        let effectiveBurst: Int
    }

    struct Violator: Encodable {
        let key: String
        let policy: String
        let refusals: Int
        let offences: Int
        let penaltySeconds: Double?
    }

    /// Where decisions are made: `memory` (this replica), or `redis` (shared) with its state.
    struct Store: Encodable {
        let kind: String
        let url: String?
        /// `shared` while Redis answers, `fallback` while it does not.
        let state: String
        let replicas: Int
        let onStoreFailure: String
    }

    let enabled: Bool
    let store: Store
    let loadFactor: Double
    let threatFactor: Double
    let threatLevel: Double
    let baselineLatencySeconds: Double?
    let policies: [Policy]
    let topViolators: [Violator]

    init(_ gateway: Gateway) {
        let limiter = gateway.limiter
        let configuration = limiter.configuration
        enabled = gateway.live.snapshot.configuration.limits != nil
        let shared = configuration.shared
        if let limits = gateway.sharedLimits {
            store = Store(kind: "redis", url: limits.store.client.configuration.redactedURL, state: limits.isHealthy ? "shared" : "fallback",
                          replicas: shared.replicas, onStoreFailure: shared.onStoreFailure.rawValue)
        } else {
            store = Store(kind: "memory", url: nil, state: "local", replicas: shared.replicas, onStoreFailure: shared.onStoreFailure.rawValue)
        }
        let factors = limiter.controller.factors
        loadFactor = factors.load
        threatFactor = factors.threat
        threatLevel = gateway.responder.threatLevel
        baselineLatencySeconds = factors.baselineLatency?.secondsValue
        policies = limiter.effectiveLimits().map { policy, limit in
            Policy(name: policy.name, algorithm: policy.algorithm.rawValue, base: policy.base, windowSeconds: policy.window.secondsValue,
                   min: policy.minimum, max: policy.maximum, adaptive: policy.isAdaptive, roles: policy.roles, classes: policy.classes,
                   key: configuration.keyParts(of: policy.name).map(\.rawValue), effectiveLimit: limit.limit, effectiveBurst: limit.burst)
        }
        topViolators = limiter.violations.top(20, now: gateway.time.now()).map {
            Violator(key: $0.key, policy: $0.policy, refusals: $0.refusals, offences: $0.offences, penaltySeconds: $0.penalisedFor?.secondsValue)
        }
    }
}

/// `GET /api/system/graphql/cache`: the memory layer's counts and the cache's hit rate,
/// and whether Redis is layer two.
struct GraphQLCacheReport: Encodable {
    let statistics: MemoryResponseCache.Statistics
    let redis: Bool

    init(_ store: GraphQLCacheStore) {
        statistics = store.memory.statistics
        redis = store.redis != nil
    }

    enum CodingKeys: String, CodingKey { case redis }

    /// One flat object: the statistics' members and `redis`.
    func encode(to encoder: any Encoder) throws {
        try statistics.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(redis, forKey: .redis)
    }
}

/// `POST /api/system/graphql/cache`: purge by tags, by key, or everything.
struct CachePurgeCommand: Codable, Sendable {
    enum Action: String, Codable, Sendable { case purge }
    var action: Action
    var tags: [String]?
    var key: String?
    var all: Bool?

    func apply(to store: GraphQLCacheStore, usage: String) async -> Response {
        switch (tags, key, all) {
        case (let tags?, nil, nil) where !tags.isEmpty:
            return jsonResponse(["purged": await store.purge(tags: Set(tags))])
        case (nil, let key?, nil):
            return jsonResponse(["purged": await store.purge(key: key) ? 1 : 0])
        case (nil, nil, true?):
            // Memory here; Redis entries expire on their own (they are found by key only).
            return jsonResponse(["purged": store.memory.purgeAll()])
        default:
            return errorAnswer(.badRequest, "name exactly one of tags (not empty), key or all: true; expected \(usage)")
        }
    }
}
