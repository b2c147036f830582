public import RampartCore

/// When a failed delivery is tried again: exponential backoff with full jitter (each delay
/// drawn uniformly between zero and the exponential ceiling, so that many failing senders
/// spread out rather than retry in step), up to `maxAttempts` attempts in all.
public struct RetryPolicy: Sendable, Equatable {
    /// The ceiling of the first retry's delay.
    public var initialDelay: ConfigDuration
    /// How much the ceiling grows per attempt.
    public var multiplier: Double
    /// The largest ceiling.
    public var maxDelay: ConfigDuration
    /// Attempts in all, the first included; then the delivery is a dead letter.
    public var maxAttempts: Int

    public init(initialDelay: ConfigDuration = .seconds(1), multiplier: Double = 2, maxDelay: ConfigDuration = .seconds(300), maxAttempts: Int = 8) {
        self.initialDelay = initialDelay
        self.multiplier = multiplier
        self.maxDelay = maxDelay
        self.maxAttempts = maxAttempts
    }

    /// The ceiling of the delay after `failures` failed attempts (1 for the first retry):
    /// `min(maxDelay, initialDelay × multiplier^(failures - 1))`, in seconds.
    public func ceiling(afterFailures failures: Int) -> Double {
        let exponent = Double(max(failures, 1) - 1)
        let grown = initialDelay.seconds * pow(multiplier, exponent)
        return grown.isFinite ? min(maxDelay.seconds, grown) : maxDelay.seconds
    }

    /// The delay before the next attempt after `failures` failed ones, or nil when the
    /// delivery has used its attempts.
    public func delay(afterFailures failures: Int, using random: inout some RandomNumberGenerator) -> Double? {
        guard failures < maxAttempts else { return nil }
        let ceiling = ceiling(afterFailures: failures)
        return ceiling > 0 ? Double.random(in: 0...ceiling, using: &random) : 0
    }

    /// `base^exponent` for a non-negative whole exponent, saturating at infinity.
    func pow(_ base: Double, _ exponent: Double) -> Double {
        var result = 1.0
        var remaining = Int(exponent)
        while remaining > 0, result.isFinite {
            result *= base
            remaining -= 1
        }
        return result
    }

    /// Every problem, at its path.
    public func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        if initialDelay.seconds < 0.001 { issues.append(.init(path: "\(path).initialDelay", "must be at least 1ms, got \(initialDelay)")) }
        if !(multiplier >= 1) { issues.append(.init(path: "\(path).multiplier", "must be at least 1, got \(multiplier)")) }
        if maxDelay < initialDelay { issues.append(.init(path: "\(path).maxDelay", "must not be below initialDelay (\(initialDelay)), got \(maxDelay)")) }
        if maxAttempts < 1 { issues.append(.init(path: "\(path).maxAttempts", "must be at least 1, got \(maxAttempts)")) }
        return issues
    }
}

extension RetryPolicy: Codable {
    enum CodingKeys: String, CodingKey, CaseIterable { case initialDelay, multiplier, maxDelay, maxAttempts }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = RetryPolicy()
        self.init(initialDelay: try c.decodeIfPresent(ConfigDuration.self, forKey: .initialDelay) ?? d.initialDelay,
                  multiplier: try c.decodeIfPresent(Double.self, forKey: .multiplier) ?? d.multiplier,
                  maxDelay: try c.decodeIfPresent(ConfigDuration.self, forKey: .maxDelay) ?? d.maxDelay,
                  maxAttempts: try c.decodeIfPresent(Int.self, forKey: .maxAttempts) ?? d.maxAttempts)
    }
}
