public import RampartCore

/// The sliding-window counter (as Cloudflare describes it): counts per fixed window, and
/// the rate over the last `window` estimated as the current window's count plus the
/// previous window's count weighted by how much of it still lies within the last `window`.
/// Two counters per key, exact at window boundaries, smooth between them.
public enum SlidingWindow {
    public struct State: Sendable, Equatable {
        /// Where the current fixed window began (a multiple of the window length).
        public var start: Int64
        public var current: Int
        public var previous: Int
        public init(start: Int64, current: Int, previous: Int) {
            self.start = start
            self.current = current
            self.previous = previous
        }
    }

    public static func decide(_ state: State?, cost: Int = 1, limit: RateLimit, now: Instant) -> (RateLimitDecision, State?) {
        let length = limit.window.nanoseconds
        let now = now.nanoseconds
        let start = now - ((now % length) + length) % length
        var state = state ?? State(start: start, current: 0, previous: 0)
        if state.start != start {
            // One window on: the current count becomes the previous; further on, both are gone.
            state = State(start: start, current: 0, previous: state.start == start - length ? state.current : 0)
        }
        let elapsed = now - start
        // In units of 1/length requests, so the weighting is exact: the previous window
        // counts for previous * (length - elapsed) / length.
        let scale = Int128(length)
        let weighted = Int128(state.previous) * Int128(length - elapsed)
        let capacity = Int128(limit.limit) * scale
        let allowed = weighted + Int128(state.current + cost) * scale <= capacity
        if allowed { state.current += cost }
        let used = weighted + Int128(state.current) * scale
        let remaining = used >= capacity ? 0 : Int((capacity - used) / scale)
        // The quota is whole again once neither window counts: the end of the next window
        // when this one has requests, the end of this one otherwise.
        let resetAfter = state.current > 0 ? 2 * length - elapsed : length - elapsed
        let decision = RateLimitDecision(isAllowed: allowed, limit: limit.quota(under: .slidingWindow), remaining: remaining, resetAfter: .nanoseconds(resetAfter),
                                         retryAfter: allowed ? nil : .nanoseconds(waitForRoom(state, cost: cost, limit: limit.limit, length: length, elapsed: elapsed)))
        return (decision, state)
    }

    /// Nanoseconds until `cost` more fits: the previous window's weight has to fall far
    /// enough, within this window or, if this window alone is full, in the next one.
    static func waitForRoom(_ state: State, cost: Int, limit: Int, length: Int64, elapsed: Int64) -> Int64 {
        // previous * (length - t) <= room * length  <=>  t >= length - floor(room * length / previous)
        func earliest(room: Int, previous: Int) -> Int64 {
            guard previous > 0 else { return 0 }
            let slack = Int128(room) * Int128(length) / Int128(previous)
            return slack >= Int128(length) ? 0 : length - Int64(slack)
        }
        let room = limit - cost - state.current
        if room >= 0 { return max(1, earliest(room: room, previous: state.previous) - elapsed) }
        // In the next window this one's count becomes the previous.
        guard limit - cost >= 0 else { return .max }
        return max(1, (length - elapsed) + earliest(room: limit - cost, previous: state.current))
    }

    /// After this instant the state counts nothing any more.
    public static func expiry(of state: State, limit: RateLimit) -> Instant {
        Instant(nanoseconds: state.start + 2 * limit.window.nanoseconds)
    }
}
