import Foundation
import RampartBalancing
import RampartCore
import RampartGateway
import RampartLimits
import RampartTesting
import Testing

/// Rate limiting in a running gateway: the default policy, a named one, routes without
/// limits, the 429 answer and headers, repeat violators, and the admin view.
@Suite(.serialized) struct RateLimitTests {
    func header(_ name: String, in headers: [(String, String)]) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    func configuration(_ upstream: LoopbackHarness.Upstream) -> GatewayConfiguration {
        var configuration = LoopbackHarness.configuration(pool: [upstream])
        configuration.proxy.trustedProxies = CIDRSet([CIDRBlock("127.0.0.1")!])
        configuration.routes = [
            RouteConfiguration(name: "api", match: .init(pathPrefix: "/api"), pool: "app"),
            RouteConfiguration(name: "login", match: .init(pathPrefix: "/login"), pool: "app", limit: "login"),
            RouteConfiguration(name: "assets", match: .init(pathPrefix: "/assets"), pool: "app", limit: "off"),
        ]
        var limits = RateLimitsConfiguration(defaults: .init(base: 3, window: .seconds(60), adaptive: false))
        limits.policies["login"] = .init(algorithm: .slidingWindow, base: 2)
        limits.violations.threshold = 2
        configuration.limits = limits
        return configuration
    }

    @Test func callersAreLimitedPerPolicyWithHeadersAnd429() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "a")
        try await LoopbackHarness.withGateway(configuration(upstream)) { _, port, _ in
            let client = [("X-Forwarded-For", "198.51.100.10")]
            var remaining: [String] = []
            for _ in 0..<3 {
                let answer = try await fetch("http://127.0.0.1:\(port)/api/quizzes", headers: client)
                #expect(answer.status == 200)
                #expect(header("RateLimit-Policy", in: answer.headers) == "\"default\";q=3;w=60")
                remaining.append(header("RateLimit", in: answer.headers) ?? "")
            }
            // GCRA, 3 per minute: one comes back every 20 s. The clock runs while the test does
            // (seconds, on a loaded machine), so reset times may be a little short.
            func parts(_ value: String) -> (name: String, remaining: Int?, reset: Int?) {
                let fields = value.split(separator: ";")
                func number(_ key: String) -> Int? { fields.first { $0.hasPrefix(key + "=") }.flatMap { Int($0.dropFirst(key.count + 1)) } }
                return (String(fields.first ?? ""), number("r"), number("t"))
            }
            func near(_ value: Int?, _ expected: Int) -> Bool { value.map { $0 <= expected && $0 >= expected - 5 } ?? false }
            #expect(remaining.map { parts($0).name } == Array(repeating: "\"default\"", count: 3))
            #expect(remaining.map { parts($0).remaining } == [2, 1, 0])
            #expect(zip(remaining, [20, 40, 60]).allSatisfy { near(parts($0).reset, $1) }, "\(remaining)")

            let refused = try await fetch("http://127.0.0.1:\(port)/api/quizzes", headers: client)
            #expect(refused.status == 429)
            #expect(near(header("Retry-After", in: refused.headers).flatMap { Int($0) }, 20))
            let refusedLimit = parts(header("RateLimit", in: refused.headers) ?? "")
            #expect(refusedLimit.remaining == 0 && near(refusedLimit.reset, 60))
            let body = try #require(try JSONSerialization.jsonObject(with: Data(refused.body.utf8)) as? [String: Any])
            #expect(body["error"] as? String == "rate_limited")
            #expect((body["requestId"] as? String)?.isEmpty == false)

            // Another client has its own quota; unlimited routes carry no headers.
            #expect(try await fetch("http://127.0.0.1:\(port)/api/quizzes", headers: [("X-Forwarded-For", "198.51.100.11")]).status == 200)
            let asset = try await fetch("http://127.0.0.1:\(port)/assets/app.js", headers: client)
            #expect(asset.status == 200 && header("RateLimit", in: asset.headers) == nil)

            // The named policy: sliding window, 2 per minute, counted apart from the default.
            let login = try await fetch("http://127.0.0.1:\(port)/login", headers: client)
            #expect(login.status == 200 && header("RateLimit-Policy", in: login.headers) == "\"login\";q=2;w=60")
        }
        // Three plus the other client, the asset and the login: the refused one never arrived.
        #expect(upstream.server.requests.count == 6)
        await upstream.stop()
    }

    @Test func repeatViolatorsArePenalisedAndReportedToTheShield() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "a")
        try await LoopbackHarness.withGateway(configuration(upstream)) { _, port, adminPort in
            let client = [("X-Forwarded-For", "198.51.100.20")]
            for _ in 0..<3 { _ = try await fetch("http://127.0.0.1:\(port)/api/x", headers: client) }
            // Two refusals make an offence (threshold 2): penalised for 30 s, reported.
            #expect(try await fetch("http://127.0.0.1:\(port)/api/x", headers: client).status == 429)
            #expect(try await fetch("http://127.0.0.1:\(port)/api/x", headers: client).status == 429)
            let penalised = try await fetch("http://127.0.0.1:\(port)/api/x", headers: client)
            #expect(penalised.status == 429)
            #expect(header("Retry-After", in: penalised.headers) == "30")

            let report = try await fetch("http://127.0.0.1:\(adminPort)/api/system/rate-limits")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(report.body.utf8)) as? [String: Any])
            #expect(json["enabled"] as? Bool == true)
            #expect(json["loadFactor"] as? Double == 1)
            let policies = try #require(json["policies"] as? [[String: Any]])
            #expect(policies.map { $0["name"] as? String } == ["default", "login"])
            #expect(policies.first?["effectiveLimit"] as? Int == 3)
            let violators = try #require(json["topViolators"] as? [[String: Any]])
            #expect(violators.first?["key"] as? String == "default|ip:198.51.100.20")
            #expect(violators.first?["offences"] as? Int == 1)

            try await eventually {
                let threats = try await threatDetection(adminPort, query: "?kind=rate_limit_abuse")
                return events(in: threats).contains { $0["client"] as? String == "198.51.100.20" && $0["rule"] as? String == "default" }
            }
        }
        await upstream.stop()
    }

    /// The metrics need the process's own registry: checked on the `rampart` binary.
    @Test func decisionsAndFactorsAreInTheMetrics() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "u")
        let file = try TemporaryConfiguration()
        let port = try freePort(), admin = try freePort()
        // A loaded machine's slower answers must not move the load factor this test reads.
        try file.write(port: port, admin: admin, poolURL: upstream.url,
                       "limits: {base: 3, window: 1m, adaptation: {interval: 100ms, latencyTolerance: 1000000}}")
        let process = try RampartProcess(arguments: ["serve", "--config", file.path])
        defer { process.stop() }
        try await waitUntilListening(port: port)  // its one request counts too
        let statuses = try await (0..<3).asyncMap { _ in try await fetch("http://127.0.0.1:\(port)/x").status }
        #expect(statuses == [200, 200, 429])
        try await eventually {
            let metrics = try await fetch("http://127.0.0.1:\(admin)/metrics").body
            return metrics.contains("rate_limit_decisions_total{policy=\"default\",result=\"allowed\"} 3")
                && metrics.contains("rate_limit_decisions_total{policy=\"default\",result=\"refused\"} 1")
                && metrics.contains("rate_limit_effective_limit{policy=\"default\"} 3")
                && metrics.contains("rate_limit_load_factor 1") && metrics.contains("rate_limit_threat_factor 1")
        }
        process.signal(SIGTERM)
        #expect(await process.exitStatus() == 0)
        await upstream.stop()
    }
}

extension Range where Bound == Int {
    /// One after another, in order.
    func asyncMap<T>(_ transform: (Int) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for i in self { results.append(try await transform(i)) }
        return results
    }
}

/// The controller in a running gateway: an upstream that turns slow makes the limits
/// tighten; once it is fast again they relax.
@Suite(.serialized) struct AdaptiveLimitTests {
    @Test func aSlowUpstreamTightensLimitsAndARecoveredOneRelaxesThem() async throws {
        let fast = await LoopbackHarness.startEcho(name: "fast")
        let recovered = await LoopbackHarness.startEcho(name: "recovered")
        var configuration = LoopbackHarness.configuration(pool: [fast])
        var limits = RateLimitsConfiguration(defaults: .init(base: 10_000, window: .seconds(60), min: 10))
        limits.adaptation.interval = .milliseconds(50)
        configuration.limits = limits
        try await LoopbackHarness.withGateway(configuration) { gateway, port, _ in
            let pool = try #require(gateway.pools.pool(named: "app"))
            /// Eight callers in a loop until `done` says so (or `limit` passes).
            func traffic(limit: Duration = .seconds(30), until done: @escaping @Sendable () -> Bool) async throws {
                let deadline = ContinuousClock.now + limit
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<8 {
                        group.addTask {
                            while !done(), ContinuousClock.now < deadline {
                                _ = try await fetch("http://127.0.0.1:\(port)/x")
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            let limiter = gateway.limiter
            // Learn the fast upstream's latency as the baseline. The first interval's mean
            // becomes the baseline, and on a loaded machine the first, cold answers can take a
            // second; falling latency is followed at 0.3 an interval, so a second of traffic
            // (twenty intervals) brings the baseline down to the fast upstream's usual latency.
            // A loaded machine's uneven latency keeps the factor from settling at exactly 1.
            let learned = ContinuousClock.now + .seconds(1)
            try await traffic {
                ContinuousClock.now >= learned && limiter.controller.factors.baselineLatency != nil
                    && limiter.controller.factors.load >= 0.95
            }
            try await Task.sleep(for: .milliseconds(300))

            // Far slower than the fast one, even when a loaded machine (the whole suite at once
            // on two cores) puts the fast one's learned baseline at hundreds of milliseconds:
            // eight times the baseline, at least three seconds.
            let baseline = limiter.controller.factors.baselineLatency ?? .zero
            let delay = max(Duration.milliseconds(3000), baseline * 8)
            let slow = await LoopbackHarness.startEcho(name: "slow", delay: delay)
            _ = try pool.register(InstanceConfiguration(url: slow.url))
            _ = try pool.drain(id: fast.url.replacingOccurrences(of: "http://", with: ""))
            // Each answer's interval halves the way to about 0.19 (1.5 x baseline / delay): a few
            // rounds of answers, each taking `delay`.
            try await traffic(limit: delay * 8) { limiter.controller.factors.load < 0.3 }
            let factors = limiter.controller.factors
            #expect(factors.load < 0.3, "baseline \(baseline) at the start, \(factors.baselineLatency.map { "\($0)" } ?? "none") now; slow upstream \(delay)")
            #expect(limiter.effectiveLimits().first!.limit.limit < 3000)

            _ = try pool.register(InstanceConfiguration(url: recovered.url))
            _ = try pool.drain(id: slow.url.replacingOccurrences(of: "http://", with: ""))
            try await traffic { limiter.controller.factors.load > 0.8 }
            #expect(limiter.controller.factors.load > 0.8)
            // Every request finished: nothing counts as in flight any more.
            #expect(pool.inFlight == 0)
            await slow.stop()
        }
        await fast.stop()
        await recovered.stop()
    }
}
