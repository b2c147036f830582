@testable import RampartBalancing
import RampartCore
import RampartTesting
import Synchronization
import Testing

@Suite struct HealthTests {
    @Test func healthStateMachineFollowsThresholds() {
        var health = InstanceHealth(state: .starting)
        #expect(health.record(success: true, healthyThreshold: 2, unhealthyThreshold: 3) == .healthy)
        #expect(health.record(success: false, healthyThreshold: 2, unhealthyThreshold: 3) == nil)
        #expect(health.record(success: false, healthyThreshold: 2, unhealthyThreshold: 3) == nil)
        #expect(health.record(success: false, healthyThreshold: 2, unhealthyThreshold: 3) == .unhealthy)
        #expect(health.record(success: true, healthyThreshold: 2, unhealthyThreshold: 3) == nil)
        #expect(health.record(success: false, healthyThreshold: 2, unhealthyThreshold: 3) == nil)
        #expect(health.record(success: true, healthyThreshold: 2, unhealthyThreshold: 3) == nil)
        #expect(health.record(success: true, healthyThreshold: 2, unhealthyThreshold: 3) == .healthy)
        var fresh = InstanceHealth(state: .starting)
        #expect(fresh.record(success: false, healthyThreshold: 2, unhealthyThreshold: 3) == .unhealthy)
    }

    @Test func startingInstancesTakeNoTrafficUntilChecked() {
        let pool = makePool(.roundRobin, healthCheck: .init())
        #expect(pool.select() == nil)
        pool.recordHealthCheck(pool.instances[1], result: .init(status: 200, success: true, detail: nil, durationSeconds: 0))
        #expect(Set(counts(pool, picks: 10).keys) == ["127.0.0.1:9001"])
    }

    @Test func healthCheckerProbesEveryInstance() async {
        struct FakeProbe: HealthProbe {
            func check(_ instance: UpstreamURL, path: String, timeout: Duration) async -> HealthProbeAnswer {
                #expect(path == "/ping")
                return instance.port == 9000 ? .failed("connect refused") : .status(instance.port == 9001 ? 200 : 503)
            }
        }
        let pool = makePool(.roundRobin, healthCheck: .init(path: "/ping"))
        await HealthChecker(pool: pool, probe: FakeProbe()).checkAll()
        #expect(pool.instances.map(\.health) == [.unhealthy, .healthy, .unhealthy])
        #expect(pool.instances[0].status(at: Instant(nanoseconds: 0)).lastHealthCheck?.detail == "connect refused")
        #expect(pool.instances[2].status(at: Instant(nanoseconds: 0)).lastHealthCheck?.status == 503)
    }

    /// A probe that answers 200 (503 for the ports in `failing`) and counts the checks, by port.
    final class CountingProbe: HealthProbe {
        let counts = Mutex<[Int: Int]>([:])
        let failing = Mutex<Set<Int>>([])
        func check(_ instance: UpstreamURL, path: String, timeout: Duration) async -> HealthProbeAnswer {
            counts.withLock { $0[instance.port, default: 0] += 1 }
            return failing.withLock { $0.contains(instance.port) } ? .status(503) : .status(200)
        }
        func total() -> Int { counts.withLock { $0.values.reduce(0, +) } }
    }

    /// A reload that gives a pool health checks starts them, one that takes them away stops
    /// them (and forgets what they found), and one that gives them back starts them again,
    /// with one loop per instance.
    @Test func theCheckerFollowsReloadsThatAddAndRemoveHealthChecks() async throws {
        var configuration = PoolConfiguration(strategy: .roundRobin, instances: [InstanceConfiguration(url: "http://127.0.0.1:9000")])
        let pool = Pool(name: "test", configuration: configuration, time: SystemTimeSource())
        let probe = CountingProbe()
        let checker = Task { await HealthChecker(pool: pool, probe: probe).run() }
        defer { checker.cancel() }
        try await Task.sleep(for: .milliseconds(300))
        #expect(probe.total() == 0, "no health check configured, none sent")

        // Given health checks by a reload, with a new instance: it starts unchecked and takes
        // no traffic until checked.
        let check = HealthCheckConfiguration(path: "/health", interval: .milliseconds(100), healthyThreshold: 1)
        configuration.healthCheck = check
        configuration.instances.append(InstanceConfiguration(url: "http://127.0.0.1:9001"))
        pool.apply(configuration)
        #expect(await waitUntil(within: .seconds(10)) { pool.instances.allSatisfy { $0.health == .healthy } && probe.total() >= 4 },
                "checks after the reload: \(probe.counts.withLock { $0 })")

        // Taken away: the checks stop, and an instance they had found unhealthy takes traffic
        // again (nothing would ever find it healthy any more).
        probe.failing.withLock { $0 = [9001] }
        #expect(await waitUntil(within: .seconds(10)) { pool.instances[1].health == .unhealthy })
        configuration.healthCheck = nil
        pool.apply(configuration)
        #expect(pool.instances.map(\.health) == [.healthy, .healthy])
        #expect(Set(counts(pool, picks: 4).keys) == ["127.0.0.1:9000", "127.0.0.1:9001"])
        try await Task.sleep(for: .milliseconds(300))
        let stopped = probe.total()
        try await Task.sleep(for: .milliseconds(500))
        #expect(probe.total() == stopped, "checks went on without a health check configured")

        // Given back: they start again, at the interval, one loop per instance (at 100 ms,
        // 1.5 s is about fifteen checks each; two loops for one instance would be thirty).
        configuration.healthCheck = check
        pool.apply(configuration)
        let before = probe.counts.withLock { $0 }
        try await Task.sleep(for: .milliseconds(1500))
        let after = probe.counts.withLock { $0 }
        for port in [9000, 9001] {
            let sent = after[port, default: 0] - before[port, default: 0]
            #expect((5...24).contains(sent), "instance \(port): \(sent) checks in 1.5 s at a 100 ms interval")
        }
    }

    @Test func ejectedInstanceReturnsAfterBaseEjectionTimeAndBacksOff() {
        let time = ManualTimeSource()
        let pool = makePool(.roundRobin, outlier: .init(consecutiveFailures: 3, baseEjectionTime: .seconds(10),
                                                        maxEjectionTime: .seconds(25), maxEjectedShare: 0.5), time: time)
        let bad = pool.instances[0]
        func fail(_ n: Int) {
            for _ in 0..<n {
                pool.begin(bad)
                pool.finish(bad, outcome: .response(status: 503), latency: .milliseconds(1))
            }
        }
        fail(2)
        #expect(!bad.isEjected(at: time.now()))
        fail(1)
        #expect(bad.isEjected(at: time.now()))
        #expect(counts(pool, picks: 30)[bad.id] == nil)
        time.advance(by: .seconds(10))
        #expect(!bad.isEjected(at: time.now()))
        fail(3)
        // Second ejection in a row: twice the base time.
        time.advance(by: .seconds(15))
        #expect(bad.isEjected(at: time.now()))
        time.advance(by: .seconds(5))
        #expect(!bad.isEjected(at: time.now()))
        fail(3)
        // Third: 30s, capped at 25s.
        time.advance(by: .seconds(24))
        #expect(bad.isEjected(at: time.now()))
        time.advance(by: .seconds(1))
        #expect(!bad.isEjected(at: time.now()))
    }

    @Test func anInstanceTheChecksSawComeBackIsNoLongerEjected() {
        let time = ManualTimeSource()
        let pool = makePool(.roundRobin, outlier: .init(consecutiveFailures: 1, baseEjectionTime: .seconds(10), maxEjectedShare: 1),
                            healthCheck: .init(healthyThreshold: 1, unhealthyThreshold: 1), time: time)
        let passed = HealthCheckResult(status: 200, success: true, detail: nil, durationSeconds: 0)
        let failed = HealthCheckResult(status: nil, success: false, detail: "connection refused", durationSeconds: 0)
        for instance in pool.instances { pool.recordHealthCheck(instance, result: passed) }
        let restarted = pool.instances[0], erring = pool.instances[1]
        for instance in [restarted, erring] {
            pool.begin(instance)
            pool.finish(instance, outcome: .failure, latency: .zero)
            #expect(instance.isEjected(at: time.now()))
        }
        // The checks see one go down and come back: its ejection ends with it.
        pool.recordHealthCheck(restarted, result: failed)
        pool.recordHealthCheck(restarted, result: passed)
        #expect(!restarted.isEjected(at: time.now()))
        #expect(counts(pool, picks: 30)[restarted.id] == 15)
        // The other failed real traffic while its health endpoint kept passing: it stays out.
        pool.recordHealthCheck(erring, result: passed)
        #expect(erring.isEjected(at: time.now()))
        #expect(counts(pool, picks: 30)[erring.id] == nil)
    }

    @Test func availabilityFollowsEveryChangeOfTheLiveState() {
        let instance = Instance(url: UpstreamURL("http://127.0.0.1:9000")!, startsHealthy: false)
        let now = Instant(nanoseconds: 1_000_000_000)
        #expect(!instance.isAvailable(at: now))
        _ = instance.withLiveState { $0.health.record(success: true, healthyThreshold: 1, unhealthyThreshold: 1) }
        #expect(instance.isAvailable(at: now))
        _ = instance.withLiveState { $0.ejection.eject(at: now, base: .seconds(5), max: .seconds(60)) }
        #expect(!instance.isAvailable(at: now + .seconds(4)) && instance.isAvailable(at: now + .seconds(5)))
        instance.withLiveState { $0.ejection.endEjection() }
        #expect(instance.isAvailable(at: now))
        instance.startDraining()
        #expect(!instance.isAvailable(at: now + .seconds(3600)))
    }

    @Test func ejectionIsCappedByMaxEjectedShare() {
        let time = ManualTimeSource()
        let pool = makePool(.roundRobin, weights: [1, 1, 1, 1], outlier: .init(consecutiveFailures: 1, maxEjectedShare: 0.5), time: time)
        for instance in pool.instances {
            pool.begin(instance)
            pool.finish(instance, outcome: .failure, latency: .zero)
        }
        #expect(pool.instances.filter { $0.isEjected(at: time.now()) }.count == 2)
        #expect(pool.select() != nil)
    }

    @Test func failoverMovesToTheNextPriorityAndBack() {
        let time = ManualTimeSource()
        let pool = makePool(.roundRobin, weights: [1, 1, 1, 1], priorities: [0, 0, 1, 1],
                            outlier: .init(consecutiveFailures: 1, baseEjectionTime: .seconds(10), maxEjectedShare: 1), time: time)
        #expect(Set(counts(pool, picks: 20).keys) == ["127.0.0.1:9000", "127.0.0.1:9001"])
        let primary = pool.instances[0]
        pool.begin(primary)
        pool.finish(primary, outcome: .failure, latency: .zero)
        // Half the primary group is still up: at the 0.5 threshold it keeps the traffic.
        #expect(Set(counts(pool, picks: 20).keys) == ["127.0.0.1:9001"])
        let other = pool.instances[1]
        pool.begin(other)
        pool.finish(other, outcome: .failure, latency: .zero)
        #expect(Set(counts(pool, picks: 20).keys) == ["127.0.0.1:9002", "127.0.0.1:9003"])
        time.advance(by: .seconds(10))
        #expect(Set(counts(pool, picks: 20).keys) == ["127.0.0.1:9000", "127.0.0.1:9001"])
    }

    @Test func drainingInstanceGetsNothingNew() throws {
        let pool = makePool(.roundRobin)
        let draining = try pool.drain(id: "127.0.0.1:9000")
        #expect(draining.isDraining)
        #expect(counts(pool, picks: 30)[draining.id] == nil)
        pool.remove(id: draining.id)
        #expect(pool.instances.count == 2)
    }

    /// A drain that ends removes the instance it drained, not one a reload has put in its
    /// place under the same address (here: moved to https) while it drained.
    @Test func anEndingDrainRemovesOnlyTheInstanceItDrained() throws {
        let pool = makePool(.roundRobin)
        let draining = try pool.drain(id: "127.0.0.1:9000")
        var configuration = pool.configuration
        configuration.instances[0] = InstanceConfiguration(url: "https://127.0.0.1:9000")
        pool.apply(configuration)
        let replacement = try #require(pool.instance(id: "127.0.0.1:9000"))
        #expect(replacement !== draining && !replacement.isDraining)
        pool.remove(draining)
        #expect(pool.instance(id: "127.0.0.1:9000") === replacement)
        pool.remove(replacement)
        #expect(pool.instances.map(\.id) == ["127.0.0.1:9001", "127.0.0.1:9002"])
    }

    @Test func reloadKeepsLiveStateAndDynamicInstances() throws {
        let pool = makePool(.roundRobin)
        let kept = pool.instances[1]
        pool.begin(kept)
        try pool.register(InstanceConfiguration(url: "http://127.0.0.1:9100"))
        #expect(throws: MembershipError.duplicate("127.0.0.1:9100")) { try pool.register(InstanceConfiguration(url: "http://127.0.0.1:9100")) }
        pool.apply(PoolConfiguration(instances: [InstanceConfiguration(url: "http://127.0.0.1:9001", weight: 4)]))
        #expect(pool.instances.map(\.id) == ["127.0.0.1:9001", "127.0.0.1:9100"])
        #expect(pool.instances[0] === kept)
        #expect(kept.activeRequests == 1)
        #expect(kept.weight == 4)

        // The same address under another scheme or base path is another instance: the reload's.
        pool.apply(PoolConfiguration(instances: [InstanceConfiguration(url: "https://127.0.0.1:9001/v2", weight: 4)]))
        #expect(pool.instances[0] !== kept)
        #expect(pool.instances[0].url.description == "https://127.0.0.1:9001/v2")
    }

    @Test func upstreamURLsParseStrictly() {
        #expect(UpstreamURL("http://10.0.0.1:8080")?.authority == "10.0.0.1:8080")
        #expect(UpstreamURL("https://api.internal")?.port == 443)
        #expect(UpstreamURL("http://[::1]:81/base/")?.basePath == "/base")
        #expect(UpstreamURL("http://[::1]:81")?.authority == "[::1]:81")
        for bad in ["localhost:80", "ftp://x", "http://", "http://x:0", "http://x:99999", "http://u@x", "http://x/?q"] {
            #expect(UpstreamURL(bad) == nil, "\(bad)")
        }
    }
}
