public import RampartCore

/// The generic cell rate algorithm (as in ATM traffic shaping and redis-cell): each key keeps
/// one "theoretical arrival time" (TAT), the instant its bucket would be empty again if
/// requests kept arriving at the permitted rate. A request moves the TAT one interval
/// (`window / limit`) later; it is admitted while the TAT stays within `burst` intervals of
/// now. So a fresh key may send `burst` requests at once, then one per interval.
public enum GCRA {
    /// A key's state: its theoretical arrival time, in the time source's nanoseconds.
    public struct State: Sendable, Equatable {
        public var tat: Int64
        public init(tat: Int64) { self.tat = tat }
    }

    /// Decides one request of `cost` at `now` and returns the state to keep (unchanged when
    /// refused).
    public static func decide(_ state: State?, cost: Int = 1, limit: RateLimit, now: Instant) -> (RateLimitDecision, State?) {
        let interval = limit.interval
        let tolerance = interval * Int64(limit.burst)
        let now = now.nanoseconds
        let tat = max(state?.tat ?? now, now)
        let newTAT = tat + interval * Int64(cost)
        let ahead = newTAT - now
        if ahead > tolerance {
            let remaining = Int(max(0, tolerance - (tat - now)) / interval)
            let decision = RateLimitDecision(isAllowed: false, limit: limit.quota(under: .gcra), remaining: remaining,
                                             resetAfter: .nanoseconds(tat - now), retryAfter: .nanoseconds(ahead - tolerance))
            return (decision, state)
        }
        let decision = RateLimitDecision(isAllowed: true, limit: limit.quota(under: .gcra), remaining: Int((tolerance - ahead) / interval),
                                         resetAfter: .nanoseconds(ahead), retryAfter: nil)
        return (decision, State(tat: newTAT))
    }

    /// When a state no longer says anything (its TAT has passed): it can be forgotten.
    public static func expiry(of state: State) -> Instant { Instant(nanoseconds: state.tat) }
}
