public import RampartCore
import Synchronization

/// `shield.flood`: request rates, global and per client, compared with an EWMA baseline and
/// its deviation. A client above `mean + threshold × deviation` of what clients usually send
/// (and above `minClientRate`) is flooding; the whole gateway's rate moving outside the
/// same band of its own baseline is a spike or a drop.
public struct FloodConfiguration: Codable, Sendable, Equatable {
    public var enabled: Bool
    /// How many deviations from the baseline count as anomalous (`THREAT_ANOMALY_THRESHOLD`).
    public var threshold: Double
    /// The length of one counting interval; rates are per interval.
    public var interval: ConfigDuration
    /// The EWMA weight of the newest interval (0 < smoothing ≤ 1).
    public var smoothing: Double
    /// Intervals observed before the baselines judge anything (clients included: without a
    /// baseline nothing is a flood).
    public var warmup: Int
    /// Requests per interval below which a client is never flooding. High by default: one
    /// address may be a whole office behind NAT.
    public var minClientRate: Int
    /// A global baseline below this many requests per interval raises no spike or drop.
    public var minGlobalRate: Int
    /// Block flooding clients (allow-listed ones never are).
    public var blockFlooders: Bool
    public var blockDuration: ConfigDuration

    public init(enabled: Bool = true, threshold: Double = 3, interval: ConfigDuration = .seconds(1), smoothing: Double = 0.1, warmup: Int = 30,
                minClientRate: Int = 1000, minGlobalRate: Int = 20, blockFlooders: Bool = true, blockDuration: ConfigDuration = .seconds(300)) {
        self.enabled = enabled
        self.threshold = threshold
        self.interval = interval
        self.smoothing = smoothing
        self.warmup = warmup
        self.minClientRate = minClientRate
        self.minGlobalRate = minGlobalRate
        self.blockFlooders = blockFlooders
        self.blockDuration = blockDuration
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case enabled, threshold, interval, smoothing, warmup, minClientRate, minGlobalRate, blockFlooders, blockDuration
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = FloodConfiguration()
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? d.enabled
        threshold = try c.decodeIfPresent(Double.self, forKey: .threshold) ?? d.threshold
        interval = try c.decodeIfPresent(ConfigDuration.self, forKey: .interval) ?? d.interval
        smoothing = try c.decodeIfPresent(Double.self, forKey: .smoothing) ?? d.smoothing
        warmup = try c.decodeIfPresent(Int.self, forKey: .warmup) ?? d.warmup
        minClientRate = try c.decodeIfPresent(Int.self, forKey: .minClientRate) ?? d.minClientRate
        minGlobalRate = try c.decodeIfPresent(Int.self, forKey: .minGlobalRate) ?? d.minGlobalRate
        blockFlooders = try c.decodeIfPresent(Bool.self, forKey: .blockFlooders) ?? d.blockFlooders
        blockDuration = try c.decodeIfPresent(ConfigDuration.self, forKey: .blockDuration) ?? d.blockDuration
    }

    public func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        if !(threshold > 0) { issues.append(.init(path: "\(path).threshold", "must be a positive number of deviations, got \(threshold)")) }
        if interval.duration < .milliseconds(100) { issues.append(.init(path: "\(path).interval", "must be at least 100ms, got \(interval)")) }
        if !(smoothing > 0 && smoothing <= 1) { issues.append(.init(path: "\(path).smoothing", "must be in (0, 1], got \(smoothing)")) }
        if warmup < 1 { issues.append(.init(path: "\(path).warmup", "must be at least 1, got \(warmup)")) }
        if minClientRate < 1 { issues.append(.init(path: "\(path).minClientRate", "must be at least 1, got \(minClientRate)")) }
        if minGlobalRate < 1 { issues.append(.init(path: "\(path).minGlobalRate", "must be at least 1, got \(minGlobalRate)")) }
        if blockDuration.duration <= .zero { issues.append(.init(path: "\(path).blockDuration", "must be positive")) }
        return issues
    }
}

/// An exponentially weighted mean and variance of one rate.
public struct RateBaseline: Sendable, Equatable {
    public private(set) var mean = 0.0
    public private(set) var variance = 0.0
    public private(set) var samples = 0

    public init() {}

    /// Adds one interval's rate with weight `alpha` (the first sample is taken as it is).
    public mutating func observe(_ x: Double, alpha: Double) {
        samples += 1
        guard samples > 1 else {
            mean = x
            return
        }
        let difference = x - mean
        mean += alpha * difference
        variance = (1 - alpha) * (variance + alpha * difference * difference)
    }

    /// The deviation, never below the Poisson noise of the mean: steady traffic has a near-zero
    /// variance, and one extra request must not look like an anomaly.
    public var deviation: Double { max(variance.squareRoot(), mean.squareRoot(), 1) }

    /// The upper edge of the normal band.
    public func upper(_ threshold: Double) -> Double { mean + threshold * deviation }
    public func lower(_ threshold: Double) -> Double { mean - threshold * deviation }
}

/// Counts requests per interval, globally and per client, and judges them against the
/// baselines. `observe` is on the request path (one lock, one dictionary update); `tick`
/// closes an interval and runs off it. The settings come with each call, from the
/// configuration the caller runs with, so a reload needs no hand-over.
public final class FloodDetector: Sendable {
    /// What a closed interval showed about the whole gateway's traffic.
    public enum Anomaly: Sendable, Equatable {
        case spike(rate: Int, baseline: Double, deviation: Double)
        case drop(rate: Int, baseline: Double, deviation: Double)
    }

    /// A client over the limit: its requests in this interval and the limit it passed.
    public struct Flood: Sendable, Equatable {
        public let rate: Int
        public let limit: Int
    }

    /// The detector's view, for the admin API.
    public struct Status: Sendable, Equatable, Encodable {
        public let currentRate: Int
        public let baselineRate: Double
        public let baselineDeviation: Double
        public let clientBaselineRate: Double
        public let clientLimit: Int
        public let warmedUp: Bool
    }

    struct State {
        var intervalStart: Instant
        var global = 0
        var clients: [IPAddress: Int] = [:]
        var flagged: Set<IPAddress> = []
        var globalBaseline = RateBaseline()
        var clientBaseline = RateBaseline()

        func warmedUp(_ settings: FloodConfiguration) -> Bool { globalBaseline.samples >= settings.warmup }

        /// Per-client requests per interval from which a client is flooding.
        func clientLimit(_ settings: FloodConfiguration) -> Int {
            max(settings.minClientRate, Int(clientBaseline.upper(settings.threshold).rounded(.up)))
        }
    }

    /// At most this many clients are counted per interval; beyond it new clients count only
    /// globally (a spoofed-source storm must not grow memory without bound).
    public static let maximumClientsPerInterval = 200_000

    private let state: Mutex<State>
    private let time: any TimeSource

    public init(time: any TimeSource) {
        self.time = time
        self.state = Mutex(State(intervalStart: time.now()))
    }

    /// Counts one request; returns the flood the first time in an interval a client goes
    /// over the limit, once the baselines have warmed up; nil otherwise.
    public func observe(_ client: IPAddress?, _ settings: FloodConfiguration) -> Flood? {
        guard settings.enabled else { return nil }
        return state.withLock { s -> Flood? in
            s.global += 1
            guard let client else { return nil }
            guard let count = s.clients[client] ?? (s.clients.count < Self.maximumClientsPerInterval ? 0 : nil) else { return nil }
            s.clients[client] = count + 1
            let limit = s.clientLimit(settings)
            guard count + 1 > limit, s.warmedUp(settings), !s.flagged.contains(client) else { return nil }
            s.flagged.insert(client)
            return Flood(rate: count + 1, limit: limit)
        }
    }

    /// Closes the intervals that have ended: judges the global rate and updates both
    /// baselines (flooding clients are left out of theirs). Call at least once per interval;
    /// intervals without a call count as silent.
    @discardableResult
    public func tick(_ settings: FloodConfiguration) -> [Anomaly] {
        let at = time.now()
        let c = settings
        return state.withLock { s -> [Anomaly] in
            let length = c.interval.duration
            var anomalies: [Anomaly] = []
            var closed = 0
            while at - s.intervalStart >= length, closed < 1000 {
                closed += 1
                let rate = s.global
                if c.enabled, s.warmedUp(c), s.globalBaseline.mean >= Double(c.minGlobalRate) {
                    let b = s.globalBaseline
                    if Double(rate) > b.upper(c.threshold) { anomalies.append(.spike(rate: rate, baseline: b.mean, deviation: b.deviation)) }
                    if Double(rate) < b.lower(c.threshold) { anomalies.append(.drop(rate: rate, baseline: b.mean, deviation: b.deviation)) }
                }
                s.globalBaseline.observe(Double(rate), alpha: c.smoothing)
                let ordinary = s.clients.filter { !s.flagged.contains($0.key) }.values
                if !ordinary.isEmpty {
                    // The population's typical per-client rate: the mean over the clients seen.
                    let mean = Double(ordinary.reduce(0, +)) / Double(ordinary.count)
                    s.clientBaseline.observe(mean, alpha: c.smoothing)
                }
                s.global = 0
                s.clients = [:]
                s.flagged = []
                s.intervalStart = s.intervalStart + length
            }
            if at - s.intervalStart >= length { s.intervalStart = at }  // a very long silence
            return anomalies
        }
    }

    public func status(_ settings: FloodConfiguration) -> Status {
        state.withLock { s in
            Status(currentRate: s.global, baselineRate: s.globalBaseline.mean, baselineDeviation: s.globalBaseline.deviation,
                   clientBaselineRate: s.clientBaseline.mean, clientLimit: s.clientLimit(settings), warmedUp: s.warmedUp(settings))
        }
    }
}
