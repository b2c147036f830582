import Foundation
import RampartCore
import RampartStore
import RampartTesting
import Synchronization
import Testing

@testable import RampartLimits

let sharedRedisURL = ProcessInfo.processInfo.environment["RAMPART_TEST_REDIS_URL"]

/// The memory store and the Redis store answer the same: each case below runs against
/// both (Redis when `RAMPART_TEST_REDIS_URL` is set). Windows are long, so the real clock
/// both use moves nothing within a case.
@Suite("Rate-limit store contract")
struct StoreContractTests {
    enum Kind: String, CaseIterable, CustomTestStringConvertible {
        case memory, redis
        var testDescription: String { rawValue }
    }

    struct Store: Sendable {
        let decide: @Sendable (String, Int, RateLimit, RateLimitAlgorithm) async throws -> RateLimitDecision
    }

    static var kinds: [Kind] {
        if sharedRedisURL == nil {
            print("StoreContractTests: RAMPART_TEST_REDIS_URL is not set, the Redis store is skipped (scripts/services.sh start redis)")
            return [.memory]
        }
        return Kind.allCases
    }

    func store(_ kind: Kind) throws -> Store {
        switch kind {
        case .memory:
            let memory = MemoryRateLimitStore()
            return Store { memory.decide(key: $0, cost: $1, limit: $2, algorithm: $3) }
        case .redis:
            // A generous timeout: the whole suite at once loads the machine.
            var configuration = RedisConfiguration(url: sharedRedisURL!)
            configuration.commandTimeout = .seconds(5)
            configuration.connectTimeout = .seconds(5)
            let redis = RedisRateLimitStore(client: try RedisClient(configuration), prefix: "rampart-test:\(UUID().uuidString):")
            return Store { try await redis.decide(key: $0, cost: $1, limit: $2, algorithm: $3) }
        }
    }

    @Test("GCRA: the burst at once, then refusal with the interval to wait", arguments: kinds)
    func gcraBurst(kind: Kind) async throws {
        let store = try store(kind)
        // A day-long window: an interval of 4.8 h, so the seconds a loaded machine takes
        // between calls cannot refill anything.
        let limit = RateLimit(limit: 5, window: .seconds(86_400))
        var remaining: [Int] = []
        for _ in 0..<5 {
            let decision = try await store.decide("k", 1, limit, .gcra)
            #expect(decision.isAllowed)
            remaining.append(decision.remaining)
        }
        #expect(remaining == [4, 3, 2, 1, 0])
        let refused = try await store.decide("k", 1, limit, .gcra)
        #expect(!refused.isAllowed && refused.remaining == 0 && refused.limit == 5)
        // One interval (17,280 s) from the first request, less the time that has passed.
        let retry = try #require(refused.retryAfter)
        #expect(retry > .seconds(17_280 - 60) && retry <= .seconds(17_280))
        #expect(refused.resetAfter > .seconds(86_400 - 60) && refused.resetAfter <= .seconds(86_400))
    }

    @Test("GCRA: a smaller burst than the limit", arguments: kinds)
    func gcraSmallBurst(kind: Kind) async throws {
        let store = try store(kind)
        // 1,000 a day (one per 86.4 s), two at once.
        let limit = RateLimit(limit: 1000, window: .seconds(86_400), burst: 2)
        #expect(try await store.decide("k", 1, limit, .gcra).isAllowed)
        #expect(try await store.decide("k", 1, limit, .gcra).isAllowed)
        let refused = try await store.decide("k", 1, limit, .gcra)
        #expect(!refused.isAllowed)
        #expect(try #require(refused.retryAfter) <= .milliseconds(86_400))
    }

    @Test("sliding window: the limit per window, then refusal", arguments: kinds)
    func slidingWindow(kind: Kind) async throws {
        let store = try store(kind)
        // A day-long window: a boundary falls inside the case once in 86 400 s of runs.
        let limit = RateLimit(limit: 4, window: .seconds(86_400))
        var remaining: [Int] = []
        for _ in 0..<4 {
            let decision = try await store.decide("k", 1, limit, .slidingWindow)
            #expect(decision.isAllowed)
            remaining.append(decision.remaining)
        }
        #expect(remaining == [3, 2, 1, 0])
        let refused = try await store.decide("k", 1, limit, .slidingWindow)
        #expect(!refused.isAllowed && refused.remaining == 0 && refused.limit == 4)
        #expect(try #require(refused.retryAfter) > .zero)
    }

    @Test("costs count as several requests; a cost over the quota never fits", arguments: kinds, RateLimitAlgorithm.allCases)
    func costs(kind: Kind, algorithm: RateLimitAlgorithm) async throws {
        let store = try store(kind)
        let limit = RateLimit(limit: 5, window: .seconds(86_400))
        #expect(try await store.decide("k", 3, limit, algorithm).remaining == 2)
        #expect(try await !store.decide("k", 3, limit, algorithm).isAllowed)
        #expect(try await store.decide("k", 2, limit, algorithm).isAllowed)
        #expect(try await !store.decide("other", 6, limit, algorithm).isAllowed)
    }

    @Test("keys are independent", arguments: kinds, RateLimitAlgorithm.allCases)
    func independentKeys(kind: Kind, algorithm: RateLimitAlgorithm) async throws {
        let store = try store(kind)
        let limit = RateLimit(limit: 1, window: .seconds(86_400))
        #expect(try await store.decide("a", 1, limit, algorithm).isAllowed)
        #expect(try await !store.decide("a", 1, limit, algorithm).isAllowed)
        #expect(try await store.decide("b", 1, limit, algorithm).isAllowed)
    }

    @Test("concurrent decisions admit exactly the quota", arguments: kinds, RateLimitAlgorithm.allCases)
    func concurrency(kind: Kind, algorithm: RateLimitAlgorithm) async throws {
        let store = try store(kind)
        let limit = RateLimit(limit: 100, window: .seconds(86_400))
        let admitted = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<400 { group.addTask { try await store.decide("k", 1, limit, algorithm).isAllowed } }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(admitted == 100)
    }
}

/// Shared limits when Redis fails: the fallback each mode gives, said once, and the way back.
@Suite("Shared limits falling back", .enabled(if: RedisServerProcess.isAvailable, "redis-server is not installed: run scripts/services.sh install"))
struct SharedFallbackTests {
    final class Events: Sendable {
        let list = Mutex<[SharedStoreEvent]>([])
        func record(_ event: SharedStoreEvent) { list.withLock { $0.append(event) } }
        var fellBack: Int { list.withLock { $0.filter { if case .fellBack = $0 { true } else { false } }.count } }
        var recovered: Int { list.withLock { $0.filter { if case .recovered = $0 { true } else { false } }.count } }
        var errors: Int { list.withLock { $0.filter { if case .error = $0 { true } else { false } }.count } }
    }

    func limiter(_ server: RedisServerProcess, mode: RateLimitsConfiguration.Shared.FailureMode, events: Events) throws -> AdaptiveRateLimiter {
        var redis = RedisConfiguration(url: server.url)
        redis.commandTimeout = .seconds(2)
        redis.reconnectDelay = .milliseconds(10)
        redis.maxReconnectDelay = .milliseconds(50)
        let store = RedisRateLimitStore(client: try RedisClient(redis))
        let shared = SharedLimits(store: store, time: SystemTimeSource()) { events.record($0) }
        var configuration = RateLimitsConfiguration(defaults: .init(base: 8, window: .seconds(3600), burst: 1, adaptive: false))
        configuration.shared.replicas = 4
        configuration.shared.onStoreFailure = mode
        configuration.shared.probeInterval = .milliseconds(20)
        return AdaptiveRateLimiter(configuration, shared: shared)
    }

    func decide(_ limiter: AdaptiveRateLimiter, client: String) async -> AdaptiveRateLimiter.Outcome {
        await limiter.decide(policy: "default", caller: .init(client: IPAddress(client)), route: nil, endpointClass: nil)!
    }

    @Test("local: each replica enforces its 1/N share until Redis is back")
    func local() async throws {
        let server = try await RedisServerProcess()
        let events = Events()
        let limiter = try limiter(server, mode: .local, events: events)
        let shared = await decide(limiter, client: "192.0.2.1")
        #expect(shared.source == .shared && shared.decision.isAllowed && shared.decision.remaining == 7)
        await server.stop()
        // 8 / 4 replicas = 2 per replica while Redis is down.
        var outcomes: [AdaptiveRateLimiter.Outcome] = []
        for _ in 0..<3 { outcomes.append(await decide(limiter, client: "192.0.2.2")) }
        #expect(outcomes.allSatisfy { $0.source == .fallback })
        #expect(outcomes.map(\.decision.isAllowed) == [true, true, false])
        #expect(outcomes.first?.limit.limit == 2)
        #expect(events.fellBack == 1)
        try await server.start()
        let back = await waitUntil(every: .milliseconds(10)) { await decide(limiter, client: "192.0.2.3").source == .shared }
        #expect(back)
        #expect(events.recovered == 1 && events.fellBack == 1)
        #expect(events.errors >= 1)
        await server.stop()
    }

    @Test("open admits and closed refuses while Redis is down, neither counting an offence")
    func openAndClosed() async throws {
        let server = try await RedisServerProcess()
        await server.stop()
        let events = Events()
        let open = try limiter(server, mode: .open, events: events)
        let closed = try limiter(server, mode: .closed, events: events)
        for _ in 0..<20 {
            let admitted = await decide(open, client: "192.0.2.4")
            #expect(admitted.decision.isAllowed && admitted.source == .fallback)
            let refused = await decide(closed, client: "192.0.2.4")
            #expect(!refused.decision.isAllowed && refused.isStoreUnavailable && !refused.isPenalty)
        }
        #expect(closed.violations.top(5, now: SystemTimeSource().now()).isEmpty)
        #expect(events.fellBack == 2)
    }
}
