public import RampartCore

/// Passive health of one instance: consecutive failures counted from real traffic, and the
/// ejection they lead to. The pool decides whether an ejection is allowed (the cap on the
/// ejected share); this value only does the bookkeeping.
public struct Ejection: Sendable, Equatable {
    public private(set) var consecutiveFailures = 0
    /// Ejections since the instance last completed a request successfully after returning.
    public private(set) var ejectionCount = 0
    public private(set) var ejectedUntil: Instant?
    public private(set) var totalEjections = 0

    public init() {}

    public func isEjected(at now: Instant) -> Bool {
        guard let until = ejectedUntil else { return false }
        return now < until
    }

    /// Records a success: the failure streak ends. A success after an ejection expired also
    /// resets the backoff multiplier.
    public mutating func recordSuccess(at now: Instant) {
        consecutiveFailures = 0
        if let until = ejectedUntil, now >= until {
            ejectedUntil = nil
            ejectionCount = 0
        }
    }

    /// Ends an ejection now and forgets the streak and the backoff: the instance came back
    /// (its active health checks passed again after failing).
    public mutating func endEjection() {
        ejectedUntil = nil
        ejectionCount = 0
        consecutiveFailures = 0
    }

    /// Records a failure; returns true when the streak reached `threshold` and the instance
    /// should now be ejected (the caller then calls `eject` if the pool allows it).
    public mutating func recordFailure(threshold: Int, at now: Instant) -> Bool {
        guard !isEjected(at: now) else { return false }
        consecutiveFailures += 1
        return consecutiveFailures >= threshold
    }

    /// Ejects for `base` times the number of consecutive ejections, capped at `max`.
    public mutating func eject(at now: Instant, base: Duration, max: Duration) -> Duration {
        ejectionCount += 1
        totalEjections += 1
        let time = Swift.min(base * ejectionCount, max)
        ejectedUntil = now + time
        consecutiveFailures = 0
        return time
    }
}
