public import RampartCore
import RampartStore
import Synchronization

/// What happened to the shared store, for the gateway's log and metrics.
public enum SharedStoreEvent: Sendable, Equatable {
    /// One decision or probe failed (every failure, for `rate_limit_store_errors_total`).
    case error(String)
    /// The first failure after a healthy spell: decisions now fall back (logged once).
    case fellBack(reason: String, mode: RateLimitsConfiguration.Shared.FailureMode, replicas: Int)
    /// A probe reached the store again; decisions are shared once more.
    case recovered(after: Duration)
}

/// The shared store and whether it can be used now. While it fails, decisions do not wait
/// for it: they fall back at once, and one probe (a PING, off the request path) per
/// `probeInterval` asks whether it is back.
public final class SharedLimits: Sendable {
    enum Health {
        case healthy
        case degraded(since: Instant, nextProbe: Instant, probing: Bool)
    }

    public let store: RedisRateLimitStore
    private let health = Mutex(Health.healthy)
    private let time: any TimeSource
    private let events: @Sendable (SharedStoreEvent) -> Void

    public init(store: RedisRateLimitStore, time: any TimeSource, events: @escaping @Sendable (SharedStoreEvent) -> Void) {
        self.store = store
        self.time = time
        self.events = events
    }

    /// Whether decisions go to the store now. While degraded, answers false and, once per
    /// `probeInterval`, starts a probe in the background.
    func isUsable(probeInterval: Duration) -> Bool {
        let now = time.now()
        let (usable, probe): (Bool, Bool) = health.withLock { health in
            switch health {
            case .healthy:
                return (true, false)
            case .degraded(let since, let nextProbe, let probing):
                guard !probing, now >= nextProbe else { return (false, false) }
                health = .degraded(since: since, nextProbe: now + probeInterval, probing: true)
                return (false, true)
            }
        }
        if probe { startProbe() }
        return usable
    }

    public var isHealthy: Bool {
        health.withLock { if case .healthy = $0 { true } else { false } }
    }

    /// A decision failed: falls back (and says so once).
    func failed(_ error: RedisError, settings: RateLimitsConfiguration.Shared) {
        events(.error("\(error)"))
        let now = time.now()
        let first: Bool = health.withLock { health in
            guard case .healthy = health else { return false }
            health = .degraded(since: now, nextProbe: now + settings.probeInterval.duration, probing: false)
            return true
        }
        if first { events(.fellBack(reason: "\(error)", mode: settings.onStoreFailure, replicas: settings.replicas)) }
    }

    private func startProbe() {
        let client = store.client
        Task {
            do {
                try await client.ping()
                let now = time.now()
                let since: Instant? = health.withLock { health in
                    guard case .degraded(let since, _, _) = health else { return nil }
                    health = .healthy
                    return since
                }
                if let since { events(.recovered(after: now - since)) }
            } catch {
                events(.error("\(error)"))
                health.withLock { health in
                    if case .degraded(let since, let nextProbe, _) = health { health = .degraded(since: since, nextProbe: nextProbe, probing: false) }
                }
            }
        }
    }

    /// The limit each replica enforces alone while the store fails: its 1/N share, at
    /// least one request.
    static func share(of limit: RateLimit, replicas: Int) -> RateLimit {
        guard replicas > 1 else { return limit }
        func part(_ value: Int) -> Int { max(1, (value + replicas - 1) / replicas) }
        return RateLimit(limit: part(limit.limit), window: limit.window, burst: part(limit.burst))
    }
}
