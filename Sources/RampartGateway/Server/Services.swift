import RampartIdentity
import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import RampartBalancing
import RampartCore
import RampartLimits
import RampartShield
import RampartStore
import ServiceLifecycle
import RampartFlags
import Synchronization
import UnixSignals

/// Runs active health checks for every pool, picking up pools added by a reload.
struct HealthCheckService: Service {
    let pools: PoolRegistry
    let probe: any HealthProbe

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                // The pools being checked, held: a pool a reload dropped leaves the list, and
                // only then may a new pool take its address (and its identifier).
                var running: [ObjectIdentifier: Pool] = [:]
                while !Task.isCancelled {
                    let current = pools.all
                    running = running.filter { _, pool in current.contains { $0 === pool } }
                    for pool in current where running[ObjectIdentifier(pool)] == nil {
                        running[ObjectIdentifier(pool)] = pool
                        let registry = pools
                        group.addTask {
                            // Ends when the pool is dropped by a reload.
                            await withTaskGroup(of: Void.self) { inner in
                                inner.addTask { await HealthChecker(pool: pool, probe: probe).run() }
                                while !Task.isCancelled, registry.pool(named: pool.name) === pool {
                                    try? await Task.sleep(for: .seconds(1))
                                }
                                inner.cancelAll()
                            }
                        }
                    }
                    try? await Task.sleep(for: .seconds(1))
                }
                group.cancelAll()
            }
        }
    }
}

/// Health checks over the gateway's HTTP client.
struct HTTPHealthProbe: HealthProbe {
    let client: HTTPClient

    func check(_ instance: UpstreamURL, path: String, timeout: Duration) async -> HealthProbeAnswer {
        var request = HTTPClientRequest(url: "\(instance.scheme.rawValue)://\(instance.authority)\(instance.basePath)\(path)")
        request.headers.add(name: "User-Agent", value: "rampart-health-check")
        do {
            let response = try await client.execute(request, timeout: .nanoseconds(timeout.nanoseconds))
            // Read (and discard) the body so the connection goes back to the pool.
            for try await _ in response.body {}
            return .status(Int(response.status.code))
        } catch let error as HTTPClientError where error == .deadlineExceeded {
            return .failed("timeout")
        } catch {
            return .failed("\(error)")
        }
    }
}

/// An instance leaving its pool: no new requests; removed once idle or at the timeout.
struct DrainJob: Sendable {
    let pool: String
    let instance: Instance
    let timeout: Duration
}

/// Hands drain jobs to the drain service.
final class DrainQueue: Sendable {
    let stream: AsyncStream<DrainJob>
    private let continuation: AsyncStream<DrainJob>.Continuation

    init() { (stream, continuation) = AsyncStream.makeStream(of: DrainJob.self) }

    func enqueue(_ job: DrainJob) { continuation.yield(job) }
}

/// Waits for draining instances to finish their in-flight requests, then removes them.
struct DrainService: Service {
    let queue: DrainQueue
    let pools: PoolRegistry
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for await job in queue.stream {
                    group.addTask {
                        let clock = ContinuousClock()
                        let deadline = clock.now + job.timeout
                        while job.instance.activeRequests > 0, clock.now < deadline, !Task.isCancelled {
                            try? await Task.sleep(for: .milliseconds(50))
                        }
                        pools.pool(named: job.pool)?.remove(job.instance)
                        logger.info("instance removed", metadata: [
                            "pool": "\(job.pool)", "instance": "\(job.instance.id)",
                            "unfinished": "\(job.instance.activeRequests)",
                        ])
                    }
                }
            }
        }
    }
}

/// Reloads the configuration on SIGHUP.
struct SignalReloadService: Service {
    let gateway: Gateway

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                do {
                    try gateway.reload()
                } catch {
                    gateway.logger.error("reload refused; the running configuration stays", metadata: ["errors": "\(error)"])
                }
            }
        }
    }
}

/// The shield's background work: closes flood-counting intervals (recording spikes and
/// drops), writes buffered threat events to the store, and delivers alerts.
struct ShieldService: Service {
    let gateway: Gateway

    func run() async throws {
        let gateway = self.gateway
        await withDiscardingTaskGroup { group in
            group.addTask { await gateway.alerts.run() }
            await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    let flood = gateway.live.snapshot.configuration.shield.flood
                    for anomaly in gateway.flood.tick(flood) { gateway.responder.record(Self.event(anomaly, interval: flood.interval, at: gateway.responder.now)) }
                    gateway.responder.flush()
                    try? await Task.sleep(for: min(flood.interval.duration / 4, .milliseconds(250)))
                }
            }
            gateway.responder.flush()
            group.cancelAll()
        }
    }

    static func event(_ anomaly: FloodDetector.Anomaly, interval: ConfigDuration, at time: Double) -> ThreatEvent {
        let (rule, rate, baseline, deviation) = switch anomaly {
        case .spike(let rate, let baseline, let deviation): ("spike", rate, baseline, deviation)
        case .drop(let rate, let baseline, let deviation): ("drop", rate, baseline, deviation)
        }
        return ThreatEvent(time: time, kind: "traffic_anomaly", rule: rule, location: "global", severity: ThreatSeverity.warning.name,
                           action: "logged", detail: "\(rate) requests per \(interval) against a baseline of \(Int(baseline.rounded())) ± \(Int(deviation.rounded()))")
    }
}

/// Alert webhooks over the gateway's HTTP client.
struct HTTPAlertTransport: AlertTransport {
    let client: HTTPClient

    func post(_ body: [UInt8], to url: String, timeout: Duration) async throws -> Int {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "rampart-alerts")
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await client.execute(request, timeout: .nanoseconds(timeout.nanoseconds))
        _ = try await response.body.collect(upTo: 64 * 1024)
        return Int(response.status.code)
    }
}

/// The rate limiter's adaptive controller: on each `limits.adaptation.interval`, the load
/// the pools saw since the last tick (answers, failures, mean latency, requests in flight)
/// and the shield's threat level move the factors every adaptive limit is scaled by.
/// Applies the purges other replicas publish to this replica's memory layer of the GraphQL
/// cache, for as long as the gateway runs.
struct GraphQLCachePurgeService: Service {
    let store: GraphQLCacheStore

    func run() async throws {
        guard let redis = store.redis else { return }
        let store = self.store
        await cancelWhenGracefulShutdown {
            for await message in redis.subscribe(channels: [store.purgeChannel]) {
                store.apply(message: message.payload)
            }
        }
    }
}

struct LimitsService: Service {
    let gateway: Gateway

    func run() async throws {
        let gateway = self.gateway
        await cancelWhenGracefulShutdown {
            var previous: [String: Pool.Totals] = [:]
            while !Task.isCancelled {
                let configuration = gateway.live.snapshot.configuration
                let interval = configuration.limits?.adaptation.interval.duration ?? .seconds(1)
                if configuration.limits != nil {
                    let sample = Self.sample(gateway.pools.all, since: &previous)
                    let factors = gateway.limiter.adapt(sample)
                    gateway.limitMetrics.adapted(factors, limits: gateway.limiter.effectiveLimits())
                }
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// What the pools answered since `previous` (updated to now), and what is in flight.
    static func sample(_ pools: [Pool], since previous: inout [String: Pool.Totals]) -> LoadSample {
        var answered = 0, failed = 0, latency: Int64 = 0, inFlight = 0
        var next: [String: Pool.Totals] = [:]
        for pool in pools {
            let totals = pool.totals
            // A pool rebuilt by a reload starts its totals again.
            let before = previous[pool.name].flatMap { $0.answered <= totals.answered ? $0 : nil } ?? Pool.Totals()
            answered += totals.answered - before.answered
            failed += totals.failed - before.failed
            latency += totals.latencyNanoseconds - before.latencyNanoseconds
            inFlight += pool.inFlight
            next[pool.name] = totals
        }
        previous = next
        let mean: Duration? = answered > 0 ? .nanoseconds(latency / Int64(answered)) : nil
        return LoadSample(inFlight: inFlight, responses: answered, errors: failed, latency: mean)
    }
}

/// Reads the JWKS at start and every `identity.jwt.jwks.refresh`, so rotated keys are known
/// before tokens signed with them arrive (an unknown `kid` also triggers a read).
struct KeySetRefreshService: Service {
    let authenticator: Authenticator
    let interval: Duration
    let logger: Logger

    func run() async throws {
        let (authenticator, interval, logger) = (self.authenticator, self.interval, self.logger)
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let read = await authenticator.refreshKeys(force: true)
                let problems = authenticator.keySetProblems
                if !read || !problems.isEmpty {
                    logger.warning("identity: the JWKS was not read cleanly; the keys already known stay in use",
                                   metadata: ["problems": "\(problems.joined(separator: "; "))"])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}

/// Looks again on `flags.watchInterval`, either at the flag sources (a changed file is put in
/// force, a broken one is refused and its last good version stays) or at the store of
/// managed flags (what another replica changed). Two services, so a slow store does not hold
/// up the files.
struct FlagWatchService: Service {
    enum Watched: Sendable { case files, store }

    let watched: Watched
    let runtime: FlagRuntime
    let live: LiveConfiguration
    let logger: Logger

    func run() async throws {
        let (watched, runtime, live, logger) = (self.watched, self.runtime, self.live, self.logger)
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let interval = live.snapshot.configuration.flags?.watchInterval.duration ?? .seconds(2)
                try? await Task.sleep(for: interval)
                let before = runtime.flags.flagSet.version
                switch watched {
                case .files:
                    let problems = runtime.catalog.refresh()
                    if !problems.isEmpty {
                        logger.error("feature flags: a changed flag file was refused; its last good version stays in force",
                                     metadata: ["errors": "\(problems.map(\.description).joined(separator: "; "))"])
                    }
                case .store:
                    await runtime.sync()
                }
                let after = runtime.flags.flagSet.version
                if after != before {
                    logger.notice("feature flags: flags changed", metadata: [
                        "version": "\(after)", "flags": "\(runtime.flags.flagSet.flags.count)", "by": "\(watched)",
                    ])
                }
            }
        }
    }
}
