import RampartBalancing
import RampartCore
import RampartTesting
import Synchronization
import Testing
@testable import RampartGateway

/// The gateway's health checks across reloads that drop a pool and add one again.
@Suite struct HealthCheckServiceTests {
    /// Answers every check with 200 and counts them.
    final class Probe: HealthProbe {
        let checks = Atomic<Int>(0)
        func check(_ instance: UpstreamURL, path: String, timeout: Duration) async -> HealthProbeAnswer {
            checks.add(1, ordering: .relaxed)
            return .status(200)
        }
    }

    /// A pool added by a reload is checked, whatever pool came and went before it. A dropped
    /// pool's memory is soon free, and the next pool made is likely to be placed at its
    /// address: the service must not take the new pool for the old one (whose checks ended).
    @Test func aPoolAddedAgainAfterOneWasDroppedIsChecked() async throws {
        let registry = PoolRegistry(time: SystemTimeSource())
        let service = HealthCheckService(pools: registry, probe: Probe())
        let running = Task { try await service.run() }
        defer { running.cancel() }
        let configuration = PoolConfiguration(strategy: .roundRobin, instances: [InstanceConfiguration(url: "http://127.0.0.1:9000")],
                                              healthCheck: HealthCheckConfiguration(interval: .milliseconds(100), healthyThreshold: 1))
        for round in 1...4 {
            registry.apply(["b": configuration])
            let pool = try #require(registry.pool(named: "b"))
            #expect(await waitUntil(within: .seconds(10)) { pool.instances.first?.health == .healthy }, "round \(round): never checked")
            registry.apply([:])
            // Long enough for the dropped pool's checks to notice and end, letting it go.
            try await Task.sleep(for: .milliseconds(2500))
        }
    }
}
