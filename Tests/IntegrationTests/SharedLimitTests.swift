import Foundation
import RampartBalancing
import RampartCore
import RampartGateway
import RampartLimits
import RampartStore
import RampartTesting
import Synchronization
import Testing

/// Gateways sharing limits through a real redis-server: one limit across four replicas
/// under concurrent load, and Redis killed and restarted mid-run.
@Suite(.serialized, .enabled(if: RedisServerProcess.isAvailable, "redis-server is not installed: run scripts/services.sh install"))
struct SharedLimitTests {
    func configuration(_ upstream: LoopbackHarness.Upstream, redis: String, base: Int, replicas: Int) -> GatewayConfiguration {
        var configuration = LoopbackHarness.configuration(pool: [upstream])
        configuration.proxy.trustedProxies = CIDRSet([CIDRBlock("127.0.0.1")!])
        // An hour-long window: the quota refills by 1/12 of a request per second of test.
        var limits = RateLimitsConfiguration(defaults: .init(base: base, window: .seconds(3600), adaptive: false))
        limits.shared.replicas = replicas
        limits.shared.probeInterval = .milliseconds(50)
        limits.violations.threshold = 1_000_000
        configuration.limits = limits
        var store = RedisConfiguration(url: redis)
        store.reconnectDelay = .milliseconds(20)
        store.maxReconnectDelay = .milliseconds(100)
        // Killing Redis refuses connections at once; a generous timeout keeps a loaded
        // machine from looking like a Redis outage.
        store.commandTimeout = .seconds(2)
        configuration.redis = store
        return configuration
    }

    /// Counts answers by status.
    final class Tally: Sendable {
        let counts = Mutex<[Int: Int]>([:])
        func add(_ status: Int) { counts.withLock { $0[status, default: 0] += 1 } }
        subscript(status: Int) -> Int { counts.withLock { $0[status] ?? 0 } }
        var total: Int { counts.withLock { $0.values.reduce(0, +) } }
    }

    @Test func fourGatewaysEnforceOneLimitUnderConcurrentLoad() async throws {
        let server = try await RedisServerProcess()
        let upstream = await LoopbackHarness.startEcho(name: "a")
        let limit = 300
        let configurations = (0..<4).map { _ in configuration(upstream, redis: server.url, base: limit, replicas: 4) }
        let tally = Tally()
        try await LoopbackHarness.withGateways(configurations) { gateways in
            // 1,200 requests from one client, 4 workers per gateway, all at once.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for gateway in gateways {
                    for _ in 0..<4 {
                        group.addTask {
                            for _ in 0..<75 {
                                let answer = try await fetch("http://127.0.0.1:\(gateway.trafficPort)/api", headers: [("X-Forwarded-For", "198.51.100.7")])
                                tally.add(answer.status)
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        #expect(tally.total == 1200)
        #expect(tally[200] + tally[429] == 1200, "only admissions and refusals: \(tally.counts.withLock { $0 })")
        let admitted = tally[200]
        #expect(abs(admitted - limit) <= limit * 2 / 100, "admitted \(admitted) against a shared limit of \(limit)")
        #expect(upstream.server.requests.count == admitted)
        await upstream.stop()
        await server.stop()
    }

    @Test func redisKilledMidRunFallsBackWithoutFailingRequestsThenRecovers() async throws {
        let server = try await RedisServerProcess()
        let upstream = await LoopbackHarness.startEcho(name: "a")
        let configurations = (0..<2).map { _ in configuration(upstream, redis: server.url, base: 100_000, replicas: 2) }
        try await LoopbackHarness.withGateways(configurations) { gateways in
            /// The quota each answer was decided against, and the admin view of the store.
            func round() async throws -> (statuses: Set<Int>, quotas: Set<String>) {
                var statuses = Set<Int>()
                var quotas = Set<String>()
                for gateway in gateways {
                    for _ in 0..<10 {
                        let answer = try await fetch("http://127.0.0.1:\(gateway.trafficPort)/api", headers: [("X-Forwarded-For", "198.51.100.8")])
                        statuses.insert(answer.status)
                        quotas.insert(answer.headers.first { $0.0.lowercased() == "ratelimit-policy" }?.1 ?? "none")
                    }
                }
                return (statuses, quotas)
            }
            func storeState(_ gateway: LoopbackHarness.RunningGateway) async throws -> String? {
                let report = try await fetch("http://127.0.0.1:\(gateway.adminPort)/api/system/rate-limits")
                let json = try JSONSerialization.jsonObject(with: Data(report.body.utf8)) as? [String: Any]
                return (json?["store"] as? [String: Any])?["state"] as? String
            }

            let before = try await round()
            #expect(before.statuses == [200] && before.quotas == ["\"default\";q=100000;w=3600"])
            #expect(try await storeState(gateways[0]) == "shared")

            await server.stop()
            // Every request still answered; each replica now enforces its half.
            let during = try await round()
            #expect(during.statuses == [200])
            #expect(during.quotas == ["\"default\";q=50000;w=3600"])
            for gateway in gateways { #expect(try await storeState(gateway) == "fallback") }

            try await server.start()
            var statuses: Set<Int> = []
            let recovered = await waitUntil(every: .milliseconds(50)) {
                let after = try await round()
                statuses.formUnion(after.statuses)
                return after.quotas == ["\"default\";q=100000;w=3600"]
            }
            #expect(statuses == [200])
            #expect(recovered, "limits did not return to Redis")
            for gateway in gateways { #expect(try await storeState(gateway) == "shared") }
        }
        await upstream.stop()
        await server.stop()
    }

    /// Metrics and the log need the process's own registry and output: checked on the
    /// `rampart` binary, failing closed while its Redis is down, then recovering.
    @Test func storeFailuresAreLoggedOnceAndCountedInTheMetrics() async throws {
        let server = try await RedisServerProcess(password: "hunter2pw")
        await server.stop()
        let upstream = await LoopbackHarness.startEcho(name: "u")
        let file = try TemporaryConfiguration()
        let port = try freePort(), admin = try freePort()
        try file.writeRaw("""
        listeners:
          traffic: {address: "127.0.0.1:\(port)"}
          admin: {address: "127.0.0.1:\(admin)"}
        log: {level: info, accessLog: false}
        pools:
          app: {instances: ["\(upstream.url)"]}
        routes:
          - {name: health, match: {pathPrefix: /health}, pool: app, limit: "off"}
          - {name: app, match: {pathPrefix: /}, pool: app}
        limits: {base: 1000, window: 1h, adaptive: false, shared: {onStoreFailure: closed, probeInterval: 50ms}}
        redis: {url: "\(server.url)", reconnectDelay: 20ms, maxReconnectDelay: 100ms, commandTimeout: 2s}

        """)
        let process = try RampartProcess(arguments: ["serve", "--config", file.path])
        defer { process.stop() }
        try await waitUntilListening(port: port)
        let refused = try await (0..<3).asyncMap { _ in try await fetch("http://127.0.0.1:\(port)/x") }
        #expect(refused.map(\.status) == [503, 503, 503])
        #expect(refused.first?.body.contains("rate_limit_store_unavailable") == true)
        try await eventually {
            let metrics = try await fetch("http://127.0.0.1:\(admin)/metrics").body
            return metrics.contains("rate_limit_store_degraded 1")
                && metrics.contains("rate_limit_decisions_total{policy=\"default\",result=\"unavailable\"} 3")
                && metrics.split(separator: "\n").contains { $0.hasPrefix("rate_limit_store_errors_total ") && !$0.hasSuffix(" 0") }
        }
        try await server.start()
        try await eventually { try await fetch("http://127.0.0.1:\(port)/x").status == 200 }
        try await eventually { try await fetch("http://127.0.0.1:\(admin)/metrics").body.contains("rate_limit_store_degraded 0") }
        let log = process.standardError
        #expect(log.components(separatedBy: "falling back until it answers again").count == 2, "\(log)")
        #expect(log.components(separatedBy: "limits are shared once more").count == 2, "\(log)")
        #expect(log.contains("redis://:***@127.0.0.1:\(server.port)") && !log.contains("hunter2pw"), "\(log)")
        process.signal(SIGTERM)
        #expect(await process.exitStatus() == 0)
        await upstream.stop()
        await server.stop()
    }
}
