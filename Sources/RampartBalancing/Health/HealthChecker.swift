public import RampartCore

/// Sends one health check request. The gateway implements it over its HTTP client; tests
/// implement it in memory.
public protocol HealthProbe: Sendable {
    /// Requests `path` from `instance` within `timeout`.
    func check(_ instance: UpstreamURL, path: String, timeout: Duration) async -> HealthProbeAnswer
}

/// What one probe learned.
public enum HealthProbeAnswer: Sendable, Equatable {
    case status(Int)
    case failed(String)
}

/// Runs active health checks for one pool until cancelled: every instance is checked at the
/// pool's interval, each with its own random phase and ±10% jitter so checks never align.
public struct HealthChecker: Sendable {
    public let pool: Pool
    public let probe: any HealthProbe
    let time: any TimeSource

    public init(pool: Pool, probe: any HealthProbe, time: any TimeSource = SystemTimeSource()) {
        self.pool = pool
        self.probe = probe
        self.time = time
    }

    /// Checks every current instance once, concurrently, and records the results.
    public func checkAll() async {
        guard let check = pool.configuration.healthCheck else { return }
        await withTaskGroup(of: Void.self) { group in
            for instance in pool.instances {
                group.addTask { await self.check(instance, with: check) }
            }
        }
    }

    func check(_ instance: Instance, with check: HealthCheckConfiguration) async {
        let started = time.now()
        let answer = await probe.check(instance.url, path: check.path, timeout: check.timeout.duration)
        let elapsed = (time.now() - started).secondsValue
        let result: HealthCheckResult
        switch answer {
        case .status(let status):
            let ok = check.accepts(status: status)
            result = HealthCheckResult(status: status, success: ok, detail: ok ? nil : "status \(status)", durationSeconds: elapsed)
        case .failed(let why):
            result = HealthCheckResult(status: nil, success: false, detail: why, durationSeconds: elapsed)
        }
        pool.recordHealthCheck(instance, result: result)
    }

    /// Loops until the task is cancelled. Each instance gets its own loop in a task group, so
    /// a slow instance never delays the others' checks; instances added later are picked up
    /// within a second, and a removed instance's loop ends by itself. The pool's health check
    /// is read again every second: a reload that takes it away stops the loops, one that gives
    /// it (back) starts them.
    public func run() async {
        while !Task.isCancelled {
            if pool.configuration.healthCheck == nil {
                try? await Task.sleep(for: .seconds(1))
            } else {
                await checkWhileConfigured()
            }
        }
    }

    /// The instances' loops, while the pool has a health check; returns once they have all
    /// ended, so that loops started again later never run beside old ones.
    private func checkWhileConfigured() async {
        await withDiscardingTaskGroup { group in
            // The instances being checked, held: one removed leaves the list before another
            // can be placed at its address and taken for it.
            var looping: [String: Instance] = [:]
            while !Task.isCancelled, let check = pool.configuration.healthCheck {
                let current = pool.instances
                looping = looping.filter { id, instance in current.contains { $0 === instance } }
                for instance in current where looping[instance.id] == nil {
                    looping[instance.id] = instance
                    group.addTask { await self.loop(instance) }
                }
                try? await Task.sleep(for: min(check.interval.duration, .seconds(1)))
            }
            group.cancelAll()
        }
    }

    private func loop(_ instance: Instance) async {
        // The first check runs at once so a fresh instance is usable after one round trip.
        var first = true
        while !Task.isCancelled, pool.instance(id: instance.id) === instance {
            guard let check = pool.configuration.healthCheck else { return }
            if !first {
                let jittered = check.interval.duration.secondsValue * Double.random(in: 0.9...1.1)
                try? await Task.sleep(for: .milliseconds(Int64(jittered * 1000)))
                if Task.isCancelled { return }
            }
            first = false
            await self.check(instance, with: check)
        }
    }
}
