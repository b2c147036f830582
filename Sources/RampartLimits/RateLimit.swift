import RampartCore

/// How much a key may do: `limit` requests per `window`, of which up to `burst` may arrive
/// at once (GCRA only; the sliding window has no separate burst).
public struct RateLimit: Sendable, Hashable, CustomStringConvertible {
    public var limit: Int
    public var window: Duration
    public var burst: Int

    /// `burst` defaults to `limit`: a fresh key may spend its whole window's quota at once.
    public init(limit: Int, window: Duration, burst: Int? = nil) {
        precondition(limit > 0 && window > .zero, "a rate limit needs a positive limit and window")
        self.limit = limit
        self.window = window
        self.burst = max(1, burst ?? limit)
    }

    /// The time one request's share of the window takes to come back (GCRA's emission interval).
    public var interval: Int64 { max(1, window.nanoseconds / Int64(limit)) }

    /// The quota a caller sees under `algorithm`: what GCRA lets through at once (the burst),
    /// or what the sliding window allows per window.
    public func quota(under algorithm: RateLimitAlgorithm) -> Int { algorithm == .gcra ? burst : limit }

    public var description: String { "\(limit) per \(window.secondsValue) s (burst \(burst))" }
}

/// Which algorithm decides a policy.
public enum RateLimitAlgorithm: String, Sendable, Hashable, Codable, CaseIterable {
    /// The generic cell rate algorithm: token-bucket semantics with one timestamp per key.
    case gcra
    /// A sliding window estimated from the current and previous fixed windows' counts.
    case slidingWindow = "sliding-window"
}

/// One answer: admitted or not, and what the caller may still do (for the `RateLimit` and
/// `Retry-After` headers).
public struct RateLimitDecision: Sendable, Equatable {
    public var isAllowed: Bool
    /// The quota the decision was made against.
    public var limit: Int
    /// Requests the key may still make now.
    public var remaining: Int
    /// Until the key's quota is whole again.
    public var resetAfter: Duration
    /// When refused: until one more request would be admitted.
    public var retryAfter: Duration?

    public init(isAllowed: Bool, limit: Int, remaining: Int, resetAfter: Duration, retryAfter: Duration?) {
        self.isAllowed = isAllowed
        self.limit = limit
        self.remaining = remaining
        self.resetAfter = resetAfter
        self.retryAfter = retryAfter
    }
}
