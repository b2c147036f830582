public import RampartCore
import Synchronization
import CoreMetrics
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One upstream instance of a pool, with the live state the balancer and health checks keep
/// for it. Thread-safe: counters are atomics, the rest sits behind one mutex.
public final class Instance: Sendable, Identifiable, CustomStringConvertible {
    /// `host:port`; unique within a pool.
    public let id: String
    public let url: UpstreamURL
    public let region: String?
    /// Priority group: 0 first.
    public let priority: Int
    /// Whether it came from the admin API rather than the configuration file.
    public let isDynamic: Bool

    private let weightValue: Atomic<Int>
    private let inFlight = Atomic<Int>(0)
    private let live: Mutex<LiveState>
    /// From when (nanoseconds of an `Instant`) new requests may come here, derived from the live
    /// state whenever it changes: `Int64.max` while not healthy or draining, the end of an
    /// ejection, else `Int64.min`. Every pick reads it; taking the mutex instead would make
    /// every event loop write the mutex's line on every request.
    private let availableFrom = Atomic<Int64>(.max)
    let metrics: InstanceMetrics

    struct LiveState {
        var health: InstanceHealth
        var ejection = Ejection()
        var isDraining = false
        var latency: PeakEWMAValue
        var lastCheck: HealthCheckResult?

        var availableFrom: Int64 {
            guard health.state == .healthy, !isDraining else { return .max }
            return ejection.ejectedUntil?.nanoseconds ?? .min
        }
    }

    public init(url: UpstreamURL, weight: Int = 1, region: String? = nil, priority: Int = 0,
                startsHealthy: Bool, isDynamic: Bool = false, pool: String = "") {
        self.id = url.authority
        self.url = url
        self.region = region
        self.priority = priority
        self.isDynamic = isDynamic
        self.weightValue = Atomic(weight)
        let state = LiveState(health: InstanceHealth(state: startsHealthy ? .healthy : .starting), latency: PeakEWMAValue())
        self.live = Mutex(state)
        availableFrom.store(state.availableFrom, ordering: .relaxed)
        self.metrics = InstanceMetrics(pool: pool, instance: url.authority)
        metrics.healthy.record(startsHealthy ? 1 : 0)
    }

    /// Relative share for weighted strategies.
    public var weight: Int { weightValue.load(ordering: .relaxed) }

    public func setWeight(_ weight: Int) { weightValue.store(weight, ordering: .relaxed) }

    /// Requests currently being forwarded to this instance.
    public var activeRequests: Int { inFlight.load(ordering: .relaxed) }

    public var health: InstanceHealth.State { live.withLock { $0.health.state } }

    public var isDraining: Bool { live.withLock { $0.isDraining } }

    public func isEjected(at now: Instant) -> Bool { live.withLock { $0.ejection.isEjected(at: now) } }

    /// Whether new requests may go here: healthy, not ejected, not draining.
    public func isAvailable(at now: Instant) -> Bool {
        now.nanoseconds >= availableFrom.load(ordering: .relaxed)
    }

    /// Peak-EWMA latency estimate in seconds (decayed to `now`).
    public func latencyEstimate(at now: Instant) -> Double { live.withLock { $0.latency.estimate } }

    /// A snapshot for the admin API.
    public func status(at now: Instant) -> InstanceStatus {
        live.withLock { s in
            InstanceStatus(id: id, url: url.description, weight: weight, region: region, priority: priority,
                           state: s.health.state, isDraining: s.isDraining, isEjected: s.ejection.isEjected(at: now),
                           ejections: s.ejection.totalEjections, activeRequests: activeRequests,
                           latencyEWMASeconds: s.latency.estimate, lastHealthCheck: s.lastCheck, isDynamic: isDynamic)
        }
    }

    public var description: String { id }

    // MARK: - Updates (called by the pool)

    func beginRequest() {
        let now = inFlight.wrappingAdd(1, ordering: .relaxed).newValue
        metrics.activeConnections.record(now)
    }

    func endRequest() {
        let now = inFlight.wrappingSubtract(1, ordering: .relaxed).newValue
        metrics.activeConnections.record(now)
    }

    /// Changes the live state, and what availability derives from it, under the mutex.
    func withLiveState<T>(_ body: (inout LiveState) -> T) -> T {
        live.withLock { state in
            let result = body(&state)
            // Stored only when it changes: most changes (a latency noted per request) leave it,
            // and a store would take the line from every other core reading it.
            let available = state.availableFrom
            if availableFrom.load(ordering: .relaxed) != available { availableFrom.store(available, ordering: .relaxed) }
            return result
        }
    }

    func startDraining() { withLiveState { $0.isDraining = true } }

    /// The pool no longer checks its instances: what earlier checks found no longer counts, and
    /// the instance is healthy (as one added without checks starts). An ejection stays.
    func forgetHealthChecks() {
        withLiveState { s in
            s.health = InstanceHealth(state: .healthy)
            s.lastCheck = nil
        }
        metrics.healthy.record(1)
    }
}

/// What the admin API shows of an instance.
public struct InstanceStatus: Sendable, Codable, Equatable {
    public let id: String
    public let url: String
    public let weight: Int
    public let region: String?
    public let priority: Int
    public let state: InstanceHealth.State
    public let isDraining: Bool
    public let isEjected: Bool
    public let ejections: Int
    public let activeRequests: Int
    public let latencyEWMASeconds: Double
    public let lastHealthCheck: HealthCheckResult?
    public let isDynamic: Bool
}

/// The outcome of the latest active check of an instance.
public struct HealthCheckResult: Sendable, Codable, Equatable {
    /// Status received, when the check got an answer.
    public let status: Int?
    public let success: Bool
    /// Why it failed, in a few words (`connect refused`, `timeout`, `status 500`).
    public let detail: String?
    public let durationSeconds: Double

    public init(status: Int?, success: Bool, detail: String?, durationSeconds: Double) {
        self.status = status
        self.success = success
        self.detail = detail
        self.durationSeconds = durationSeconds
    }
}

/// A peak-sensitive EWMA of latency (Finagle's PeakEwma): a sample above the estimate
/// replaces it at once, a sample below pulls it down with weight exp(-elapsed / decay).
struct PeakEWMAValue: Sendable, Equatable {
    /// Seconds; starts at zero so a new instance is tried soon and measured.
    private(set) var estimate: Double = 0
    private var lastUpdate: Instant?

    /// `decayNanoseconds` is the time constant. Times arrive as nanoseconds: a `Duration`'s
    /// seconds cost a 128-bit division each, and a request's end records one.
    mutating func record(latency: Double, at now: Instant, decayNanoseconds: Int64) {
        defer { lastUpdate = now }
        guard let last = lastUpdate, estimate > 0 else {
            estimate = latency
            return
        }
        if latency > estimate {
            estimate = latency
            return
        }
        let elapsed = Double(max(0, now.nanoseconds - last.nanoseconds))
        let tau = Double(max(decayNanoseconds, 1))
        let w = exp(-elapsed / tau)
        estimate = estimate * w + latency * (1 - w)
    }
}
