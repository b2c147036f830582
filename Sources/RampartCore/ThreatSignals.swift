/// Where the shield and the rate limiter meet without importing each other: the limiter
/// reads the shield's threat level to tighten limits, and reports the callers who keep
/// exceeding them, who then become threats. Wired in the gateway.
public protocol ThreatSignals: Sendable {
    /// How much attack traffic the shield sees now: 0 when calm, approaching 1 under attack.
    var threatLevel: Double { get }

    /// A caller kept exceeding its rate limit.
    func reportRateLimitAbuse(_ abuse: RateLimitAbuse)
}

/// A repeat rate-limit violator, as the limiter saw it.
public struct RateLimitAbuse: Sendable, Equatable {
    /// The real client address, when the limit was keyed by it or it is known.
    public var client: IPAddress?
    /// What the limit was keyed on (`user:42`, `ip:192.0.2.1`, ...).
    public var key: String
    /// The policy that was exceeded.
    public var policy: String
    /// Violations in the limiter's tracking window.
    public var violations: Int
    /// The request that tipped it, when there was one.
    public var requestID: String?

    public init(client: IPAddress?, key: String, policy: String, violations: Int, requestID: String? = nil) {
        self.client = client
        self.key = key
        self.policy = policy
        self.violations = violations
        self.requestID = requestID
    }
}
