import RampartCore
import Synchronization

/// What the gateway saw over one controller interval.
public struct LoadSample: Sendable, Equatable {
    /// Requests in flight at the end of the interval.
    public var inFlight: Int
    /// Upstream answers and, of those, failures (5xx, timeouts, refused connections).
    public var responses: Int
    public var errors: Int
    /// Mean upstream latency over the interval; nil when nothing was answered.
    public var latency: Duration?

    public init(inFlight: Int, responses: Int, errors: Int, latency: Duration?) {
        self.inFlight = inFlight
        self.responses = responses
        self.errors = errors
        self.latency = latency
    }
}

/// The two factors every adaptive limit is multiplied by, and what they came from.
public struct AdaptiveFactors: Sendable, Equatable {
    /// From the gateway's own signals: 1 when the upstream keeps up, lower when it struggles.
    public var load: Double
    /// From the shield's threat level: 1 when calm, down to `threatFloor` under attack.
    public var threat: Double
    /// The upstream latency the controller takes as normal.
    public var baselineLatency: Duration?

    public var combined: Double { load * threat }

    public init(load: Double = 1, threat: Double = 1, baselineLatency: Duration? = nil) {
        self.load = load
        self.threat = threat
        self.baselineLatency = baselineLatency
    }
}

/// Tunes the adaptive controller; the defaults suit an API upstream.
public struct AdaptiveSettings: Sendable, Equatable {
    /// Latency up to this multiple of the baseline is normal.
    public var latencyTolerance: Double = 1.5
    /// An error rate up to this share is normal; above it the load factor falls in
    /// proportion, reaching `minimumFactor` at five times the threshold.
    public var errorThreshold: Double = 0.05
    /// The in-flight requests the upstream serves well; more scales limits down by the
    /// excess. Nil: not used.
    public var concurrency: Int?
    /// The lowest factor load or threat can bring a limit to (the policy's `min` still holds).
    public var minimumFactor: Double = 0.1
    /// The load factor when everything is calm: 1 keeps the configured limits; above 1 lets
    /// them grow (within each policy's `max`).
    public var calmFactor: Double = 1
    /// The threat factor at threat level 1.
    public var threatFloor: Double = 0.25
    /// The share of the way to its target a factor moves each interval: tightening is quick,
    /// relaxing slow, so a struggling upstream gets room at once and is not flooded again the
    /// moment it recovers.
    public var tightenRate: Double = 0.5
    public var relaxRate: Double = 0.1
    /// How often the controller runs, and how long a higher latency takes to become the new
    /// baseline (about two thirds of the way): a slowness that lasts that long is normal.
    public var interval: Duration = .seconds(1)
    public var baselineRiseTime: Duration = .seconds(60)

    public init() {}
}

/// Computes the load and threat factors on each interval, in the spirit of the gradient
/// limiter in Netflix's concurrency-limits: the ratio of a slowly learned baseline latency
/// to the recent one says how far the upstream is from its comfortable rate. Errors above a
/// threshold and in-flight requests above a concurrency estimate pull the same way; the
/// shield's threat level gives the second factor. Both move smoothly and stay within
/// `minimumFactor...calmFactor` (threat: `threatFloor...1`).
public final class AdaptiveController: Sendable {
    private struct State {
        var settings: AdaptiveSettings
        var factors = AdaptiveFactors()
        var baseline: Double?  // seconds
    }

    private let state: Mutex<State>

    public init(settings: AdaptiveSettings = AdaptiveSettings()) {
        state = Mutex(State(settings: settings))
    }

    /// The settings; changing them (on a reload) keeps the factors and the learned baseline.
    public var settings: AdaptiveSettings {
        get { state.withLock { $0.settings } }
        set { state.withLock { $0.settings = newValue } }
    }

    public var factors: AdaptiveFactors { state.withLock { $0.factors } }

    /// One interval's update; returns the new factors.
    @discardableResult
    public func update(_ sample: LoadSample, threatLevel: Double) -> AdaptiveFactors {
        state.withLock { state in
            let settings = state.settings
            let target = Self.loadTarget(sample, current: state.factors.load, settings: settings, baseline: &state.baseline)
            state.factors.load = Self.approach(state.factors.load, target, settings: settings)
            let level = min(1, max(0, threatLevel.isFinite ? threatLevel : 0))
            state.factors.threat = Self.approach(state.factors.threat, 1 - level * (1 - settings.threatFloor), settings: settings)
            state.factors.baselineLatency = state.baseline.map { .nanoseconds(Int64($0 * 1e9)) }
            return state.factors
        }
    }

    /// Where the load factor should go, given the interval; learns the baseline latency.
    /// Without answers in the interval the factor holds, unless too much is in flight.
    private static func loadTarget(_ sample: LoadSample, current: Double, settings: AdaptiveSettings, baseline: inout Double?) -> Double {
        // An interval without answers says nothing about latency or errors: hold.
        var target = sample.responses > 0 ? settings.calmFactor : current
        if let latency = sample.latency?.secondsValue, latency > 0 {
            if let known = baseline {
                let normal = known * settings.latencyTolerance
                if latency > normal { target = min(target, normal / latency) }
                // The baseline follows falling latency quickly and rising latency slowly, so
                // a slow upstream becomes the new normal only after `baselineRiseTime`.
                let rise = min(1, settings.interval.secondsValue / max(settings.baselineRiseTime.secondsValue, 0.001))
                baseline = known + (latency < known ? 0.3 : rise) * (latency - known)
            } else {
                baseline = latency
            }
        }
        if sample.responses > 0 {
            let rate = Double(sample.errors) / Double(sample.responses)
            if rate > settings.errorThreshold {
                let excess = min(1, (rate - settings.errorThreshold) / (4 * settings.errorThreshold))
                target = min(target, 1 - excess * (1 - settings.minimumFactor))
            }
        }
        if let concurrency = settings.concurrency, sample.inFlight > concurrency {
            target = min(target, Double(concurrency) / Double(sample.inFlight))
        }
        return max(settings.minimumFactor, target)
    }

    private static func approach(_ current: Double, _ target: Double, settings: AdaptiveSettings) -> Double {
        let rate = target < current ? settings.tightenRate : settings.relaxRate
        let next = current + rate * (target - current)
        // Close enough is there: a factor does not creep forever in ever smaller steps.
        return abs(next - target) < 0.001 ? target : next
    }
}
