/// The health of one instance as active checks see it, a state machine fed with check
/// results: starting -> healthy | unhealthy, then between healthy and unhealthy by
/// consecutive thresholds.
public struct InstanceHealth: Sendable, Equatable {
    public enum State: String, Sendable, Codable {
        /// Added, not yet checked; takes no traffic when active checks are on.
        case starting
        case healthy
        case unhealthy
    }

    public private(set) var state: State
    public private(set) var consecutiveSuccesses = 0
    public private(set) var consecutiveFailures = 0

    public init(state: State) { self.state = state }

    /// Records one check result and returns the new state when it changed.
    ///
    /// A starting instance takes its first result at once (as Envoy does for a newly added
    /// host), so a fresh gateway routes after one check interval rather than several.
    public mutating func record(success: Bool, healthyThreshold: Int, unhealthyThreshold: Int) -> State? {
        if success {
            consecutiveSuccesses += 1
            consecutiveFailures = 0
        } else {
            consecutiveFailures += 1
            consecutiveSuccesses = 0
        }
        let next: State
        switch state {
        case .starting:
            next = success ? .healthy : .unhealthy
        case .healthy:
            next = consecutiveFailures >= unhealthyThreshold ? .unhealthy : .healthy
        case .unhealthy:
            next = consecutiveSuccesses >= healthyThreshold ? .healthy : .unhealthy
        }
        guard next != state else { return nil }
        state = next
        return next
    }
}
