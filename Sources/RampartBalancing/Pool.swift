public import RampartCore
import Synchronization
import CoreMetrics

/// A named set of upstream instances and the policy for choosing among them.
///
/// `select(for:)` is the library entry point: it picks a priority group (failing over when a
/// group's available share drops below the threshold, and back when it recovers), then an
/// instance in it by the pool's strategy. The gateway reports each request's outcome with
/// `finish`, which feeds latency estimates and passive health. Thread-safe.
public final class Pool: Sendable {
    public let name: String
    private let time: any TimeSource
    private let state: Mutex<State>
    private let answered = Atomic<Int>(0)
    private let failed = Atomic<Int>(0)
    private let latencyNanoseconds = Atomic<Int64>(0)
    /// What every request reads of the configuration, published when one is applied (under the
    /// lock) and read without it: with several event loops, taking the lock per request would
    /// move its line between their cores. Whether the strategy hashes consistently (other pools'
    /// requests then have no affinity key to look up), the peak-EWMA decay (10 s for other
    /// strategies, whose estimates are only shown), and whether passive ejection runs (the rest
    /// of its settings are read under the lock, after a failure).
    private let hashesConsistently = Atomic<Bool>(false)
    private let decayNanoseconds = Atomic<Int64>(0)
    private let ejects = Atomic<Bool>(false)
    /// Counts the changes of what selecting reads (members, groups, settings, selector), made
    /// under the lock with them: a `SelectionView` of an earlier generation is made again.
    private let generation = Atomic<Int>(0)
    private let retired = Atomic<Bool>(false)

    /// Running totals of what the pool's instances answered, for load signals read by
    /// difference (the rate limiter's controller): attempts that got a response or failed,
    /// those that failed (5xx, refused, timed out), and their summed latency.
    public struct Totals: Sendable, Equatable {
        public var answered: Int
        public var failed: Int
        public var latencyNanoseconds: Int64
        public init(answered: Int = 0, failed: Int = 0, latencyNanoseconds: Int64 = 0) {
            self.answered = answered
            self.failed = failed
            self.latencyNanoseconds = latencyNanoseconds
        }
    }

    public var totals: Totals {
        Totals(answered: answered.load(ordering: .relaxed), failed: failed.load(ordering: .relaxed),
               latencyNanoseconds: latencyNanoseconds.load(ordering: .relaxed))
    }

    /// Requests in flight to the pool's instances now.
    public var inFlight: Int { instances.reduce(0) { $0 + $1.activeRequests } }

    struct State {
        var configuration: PoolConfiguration
        var members: [Instance]
        /// Members grouped by priority, lowest first; rebuilt when membership changes.
        var groups: [[Instance]]
        var selector: any Selector
    }

    public init(name: String, configuration: PoolConfiguration, time: any TimeSource = SystemTimeSource()) {
        self.name = name
        self.time = time
        let startsHealthy = configuration.healthCheck == nil
        let members = configuration.instances.compactMap { c in
            UpstreamURL(c.url).map {
                Instance(url: $0, weight: c.weight, region: c.region, priority: c.priority,
                         startsHealthy: startsHealthy, pool: name)
            }
        }
        self.state = Mutex(State(configuration: configuration, members: members,
                                 groups: Pool.groups(of: members), selector: Pool.selector(for: configuration.strategy)))
        publish(configuration)
    }

    static func selector(for strategy: BalancingStrategy) -> any Selector {
        switch strategy {
        case .roundRobin: RoundRobin()
        case .smoothWeightedRoundRobin: SmoothWeightedRoundRobin()
        case .leastConnections: LeastConnections()
        case .peakEWMA: PeakEWMA()
        case .geographic(let routing): Geographic(routing: routing)
        case .consistentHash: ConsistentHash()
        }
    }

    static func groups(of members: [Instance]) -> [[Instance]] {
        Dictionary(grouping: members, by: \.priority).sorted { $0.key < $1.key }.map(\.value)
    }

    public var configuration: PoolConfiguration { state.withLock { $0.configuration } }

    private func publish(_ configuration: PoolConfiguration) {
        let decay: Duration
        if case .peakEWMA(let configured) = configuration.strategy { decay = configured.duration } else { decay = .seconds(10) }
        hashesConsistently.store(configuration.strategy.hashSource != nil, ordering: .relaxed)
        decayNanoseconds.store(decay.nanoseconds, ordering: .relaxed)
        ejects.store(configuration.outlierDetection.enabled, ordering: .relaxed)
    }

    /// Where the affinity key comes from, when the pool balances by consistent hashing: read
    /// for every request, without the lock for the other pools.
    public var affinity: HashSource? {
        guard hashesConsistently.load(ordering: .relaxed) else { return nil }
        return state.withLock { $0.configuration.strategy.hashSource }
    }

    public var instances: [Instance] { state.withLock { $0.members } }

    public func instance(id: String) -> Instance? { state.withLock { s in s.members.first { $0.id == id } } }

    // MARK: - Selection

    /// Chooses an instance for a request, or nil when none is available.
    /// `now`: the time the caller read for the request, if it did (else the pool reads it).
    public func select(for input: SelectionInput = SelectionInput(), at now: Instant? = nil) -> Instance? {
        let now = now ?? time.now()
        let (groups, threshold, selector) = state.withLock { ($0.groups, $0.configuration.failoverThreshold, $0.selector) }
        return Self.choose(from: groups, threshold: threshold, selector: selector, input: input, now: now)
    }

    /// What selecting reads of a pool (its priority groups, failover threshold and selector), as
    /// of one generation of its members and settings, in arrays of the view's own. A caller that
    /// selects from one event loop for many requests keeps one (see `select(for:at:view:)`). Not
    /// for sharing between threads: that is what it avoids.
    public final class SelectionView {
        /// Held, so that no other pool can take its place (and its identity) while the view exists.
        private let pool: Pool
        fileprivate let poolID: ObjectIdentifier
        fileprivate let generation: Int
        fileprivate let groups: [[Instance]]
        fileprivate let threshold: Double
        fileprivate let selector: any Selector

        fileprivate init(pool: Pool, generation: Int, groups: [[Instance]], threshold: Double, selector: any Selector) {
            self.pool = pool
            poolID = ObjectIdentifier(pool)
            self.generation = generation
            self.groups = groups
            self.threshold = threshold
            self.selector = selector
        }

        /// Whether this is a view of `pool` (of any generation).
        public func isView(of pool: Pool) -> Bool { poolID == ObjectIdentifier(pool) }

        /// The pool has left the gateway (see `Pool.retire()`): a holder keeping views of
        /// several pools may drop this one (only requests that began before the reload that
        /// dropped it still select from it, and they can do without a view).
        public var isRetired: Bool { pool.retired.load(ordering: .relaxed) }
    }

    /// `select(for:at:)` from `view`, made or made again when it is not this pool's current
    /// one: while the pool's members and settings stay as they are, selecting takes no lock and
    /// counts no reference to the pool's arrays, which every event loop's requests would
    /// otherwise do in turn. The instances are the pool's; their availability is read as always.
    public func select(for input: SelectionInput, at now: Instant? = nil, view: inout SelectionView?) -> Instance? {
        let now = now ?? time.now()
        if let current = view, current.poolID == ObjectIdentifier(self), current.generation == generation.load(ordering: .acquiring) {
            return Self.choose(from: current.groups, threshold: current.threshold, selector: current.selector, input: input, now: now)
        }
        let made = state.withLock { s in
            // Copied element by element: a copy of the arrays would share their storage.
            SelectionView(pool: self, generation: generation.load(ordering: .relaxed), groups: s.groups.map { group in group.map { $0 } },
                          threshold: s.configuration.failoverThreshold, selector: s.selector)
        }
        view = made
        return Self.choose(from: made.groups, threshold: made.threshold, selector: made.selector, input: input, now: now)
    }

    private static func choose(from groups: [[Instance]], threshold: Double, selector: any Selector, input: SelectionInput,
                               now: Instant) -> Instance? {
        var fallback: (candidates: [Instance], group: [Instance])?
        for group in groups {
            // Usually every instance is: the group itself then, rather than a copy of it.
            let available = group.allSatisfy { $0.isAvailable(at: now) } ? group : group.filter { $0.isAvailable(at: now) }
            let candidates = input.excluding.isEmpty ? available : available.filter { !input.excluding.contains($0.id) }
            if candidates.isEmpty { continue }
            // A group takes traffic while enough of it is up; otherwise the next group does,
            // and this one is used only if no group qualifies.
            if Double(available.count) >= threshold * Double(group.count) {
                return selector.select(from: candidates, group: group, input: input, now: now)
            }
            if fallback == nil { fallback = (candidates, group) }
        }
        guard let fallback else { return nil }
        return selector.select(from: fallback.candidates, group: fallback.group, input: input, now: now)
    }

    /// Marks the start of a request to `instance`; pair with `finish`.
    public func begin(_ instance: Instance) { instance.beginRequest() }

    /// How a forwarded request ended, for latency and passive health.
    public enum Outcome: Sendable {
        /// An answer with this status; 5xx counts as a failure for passive health.
        case response(status: Int)
        /// No usable answer: connect error, reset or timeout.
        case failure
        /// The client went away or the request was refused before reaching the upstream;
        /// says nothing about the instance.
        case abandoned
    }

    /// Records the end of a request started with `begin`.
    /// `now`: the time the caller read as the attempt ended, if it did (else the pool reads it).
    public func finish(_ instance: Instance, outcome: Outcome, latency: Duration, at now: Instant? = nil) {
        instance.endRequest()
        let now = now ?? time.now()
        let decay = decayNanoseconds.load(ordering: .relaxed)
        let ejects = self.ejects.load(ordering: .relaxed)
        // Converted once: each conversion of a `Duration` is a 128-bit division.
        let nanoseconds = latency.nanoseconds
        let seconds = Double(nanoseconds) / 1e9
        var failed = false
        defer {
            if case .abandoned = outcome {} else {
                answered.wrappingAdd(1, ordering: .relaxed)
                if failed { self.failed.wrappingAdd(1, ordering: .relaxed) }
                latencyNanoseconds.wrappingAdd(nanoseconds, ordering: .relaxed)
            }
        }
        switch outcome {
        case .response(let status):
            instance.metrics.recordRequest(status: status)
            instance.metrics.duration.recordNanoseconds(nanoseconds)
            failed = status >= 500
            // A success's latency and its note for outlier detection under one lock.
            let succeeded = !failed && ejects
            instance.withLiveState { state in
                state.latency.record(latency: seconds, at: now, decayNanoseconds: decay)
                if succeeded { state.ejection.recordSuccess(at: now) }
            }
            if succeeded { return }
        case .failure:
            instance.metrics.recordRequest(status: nil)
            // A failed attempt counts as slow, so peak-EWMA steers away even before ejection.
            instance.withLiveState { $0.latency.record(latency: max(seconds, 1), at: now, decayNanoseconds: decay) }
            failed = true
        case .abandoned:
            return
        }
        // Here only failures remain (a success has returned above).
        guard ejects, failed else { return }
        let outlier = state.withLock { $0.configuration.outlierDetection }
        let reachedThreshold = instance.withLiveState { $0.ejection.recordFailure(threshold: outlier.consecutiveFailures, at: now) }
        if reachedThreshold { ejectIfAllowed(instance, outlier: outlier, now: now) }
    }

    /// Counts a retry away from `instance`.
    public func recordRetry(from instance: Instance) { instance.metrics.retries.increment() }

    private func ejectIfAllowed(_ instance: Instance, outlier: OutlierDetectionConfiguration, now: Instant) {
        // Decide under the pool lock so two concurrent ejections cannot both pass the cap.
        state.withLock { s in
            let ejected = s.members.filter { $0.isEjected(at: now) }.count
            guard Double(ejected + 1) <= outlier.maxEjectedShare * Double(s.members.count) else { return }
            _ = instance.withLiveState {
                $0.ejection.eject(at: now, base: outlier.baseEjectionTime.duration, max: outlier.maxEjectionTime.duration)
            }
            instance.metrics.ejections.increment()
        }
    }

    // MARK: - Health checks

    /// Records an active health check result; returns the new state when it changed.
    ///
    /// An instance the checks saw go down and come back has been restarted or repaired, so
    /// an outlier ejection earned while it was down ends with it (as Envoy's
    /// `successful_active_health_check_uneject_host`, but only on that transition: an
    /// instance ejected for errors on real traffic while its health endpoint kept passing
    /// stays ejected for its time).
    @discardableResult
    public func recordHealthCheck(_ instance: Instance, result: HealthCheckResult) -> InstanceHealth.State? {
        let check = configuration.healthCheck ?? HealthCheckConfiguration()
        let changed = instance.withLiveState { s -> InstanceHealth.State? in
            s.lastCheck = result
            let wasUnhealthy = s.health.state == .unhealthy
            let changed = s.health.record(success: result.success, healthyThreshold: check.healthyThreshold,
                                          unhealthyThreshold: check.unhealthyThreshold)
            if wasUnhealthy, changed == .healthy { s.ejection.endEjection() }
            return changed
        }
        if let changed { instance.metrics.healthy.record(changed == .healthy ? 1 : 0) }
        return changed
    }

    // MARK: - Membership

    /// Adds an instance at run time (admin API). Throws when one with the same address exists.
    @discardableResult
    public func register(_ configuration: InstanceConfiguration) throws(MembershipError) -> Instance {
        guard let url = UpstreamURL(configuration.url) else { throw .invalidURL(configuration.url) }
        if let issue = configuration.validate(at: "").first { throw .invalid(issue.description) }
        return try state.withLock { s throws(MembershipError) in
            guard !s.members.contains(where: { $0.id == url.authority }) else { throw .duplicate(url.authority) }
            let instance = Instance(url: url, weight: configuration.weight, region: configuration.region,
                                    priority: configuration.priority, startsHealthy: s.configuration.healthCheck == nil,
                                    isDynamic: true, pool: name)
            s.members.append(instance)
            s.groups = Pool.groups(of: s.members)
            generation.wrappingAdd(1, ordering: .releasing)
            return instance
        }
    }

    /// Stops sending new requests to the instance; in-flight ones go on. The caller removes it
    /// with `remove` once it is idle or the drain timeout passed.
    public func drain(id: String) throws(MembershipError) -> Instance {
        guard let instance = instance(id: id) else { throw .unknown(id) }
        instance.startDraining()
        return instance
    }

    /// Removes an instance at once.
    public func remove(id: String) {
        removeMembers { $0.id == id }
    }

    /// Removes `instance` itself, if it is still a member: not another one a reload has put in
    /// its place under the same address since (a drain that ends removes what it drained).
    public func remove(_ instance: Instance) {
        removeMembers { $0 === instance }
    }

    private func removeMembers(where leaves: (Instance) -> Bool) {
        state.withLock { s in
            let before = s.members
            s.members.removeAll(where: leaves)
            s.groups = Pool.groups(of: s.members)
            generation.wrappingAdd(1, ordering: .releasing)
            Pool.retireSeries(of: before, keeping: s.members)
        }
    }

    /// The pool leaves the gateway (a reload dropped it): its instances' metric series go, and
    /// holders of views of it may let them go (see `SelectionView.isRetired`).
    public func retire() {
        state.withLock { Pool.retireSeries(of: $0.members, keeping: []) }
        retired.store(true, ordering: .relaxed)
    }

    /// Ends the metric series of the instances in `before` whose address no member of `kept`
    /// has: series are named by pool and address, so an instance replaced under the same
    /// address (another scheme or base path) shares them with its replacement, and they stay.
    /// Without this, every instance that ever came and went would stay in the exposition.
    private static func retireSeries(of before: [Instance], keeping kept: [Instance]) {
        for instance in before where !kept.contains(where: { $0.id == instance.id }) {
            instance.metrics.destroy()
        }
    }

    /// Sets an instance's weight.
    public func setWeight(id: String, weight: Int) throws(MembershipError) {
        guard (1...1000).contains(weight) else { throw .invalid("weight must be between 1 and 1000, got \(weight)") }
        guard let instance = instance(id: id) else { throw .unknown(id) }
        instance.setWeight(weight)
    }

    /// Applies a reloaded configuration: instances that stay keep their live state (health,
    /// connections, latency); new ones are added; file instances no longer listed are removed;
    /// instances registered through the API stay.
    public func apply(_ configuration: PoolConfiguration) {
        state.withLock { s in
            let startsHealthy = configuration.healthCheck == nil
            var members: [Instance] = []
            for c in configuration.instances {
                guard let url = UpstreamURL(c.url) else { continue }
                // Kept with its live state when only its weight changed; another scheme, base
                // path, region or priority makes it another instance.
                if let existing = s.members.first(where: { $0.id == url.authority }), existing.url == url,
                   existing.region == c.region, existing.priority == c.priority {
                    existing.setWeight(c.weight)
                    members.append(existing)
                } else {
                    members.append(Instance(url: url, weight: c.weight, region: c.region, priority: c.priority,
                                            startsHealthy: startsHealthy, pool: name))
                }
            }
            for dynamic in s.members where dynamic.isDynamic && !members.contains(where: { $0.id == dynamic.id }) {
                members.append(dynamic)
            }
            if s.configuration.strategy != configuration.strategy {
                s.selector = Pool.selector(for: configuration.strategy)
            }
            // Health checks taken away: the states they set (starting, unhealthy) would never
            // change again, and would keep those instances out for good.
            if startsHealthy, s.configuration.healthCheck != nil {
                for member in members { member.forgetHealthChecks() }
            }
            s.configuration = configuration
            publish(configuration)
            Pool.retireSeries(of: s.members, keeping: members)
            s.members = members
            s.groups = Pool.groups(of: members)
            generation.wrappingAdd(1, ordering: .releasing)
        }
    }

    // MARK: - Status

    /// Whether at least one instance can take a request now.
    public var hasAvailableInstance: Bool {
        let now = time.now()
        return instances.contains { $0.isAvailable(at: now) }
    }

    /// A snapshot for the admin API.
    public var status: PoolStatus {
        let now = time.now()
        let (configuration, members) = state.withLock { ($0.configuration, $0.members) }
        return PoolStatus(name: name, strategy: configuration.strategy.name, required: configuration.required,
                          instances: members.map { $0.status(at: now) })
    }
}

/// Why a membership change was refused.
public enum MembershipError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidURL(String)
    case invalid(String)
    case duplicate(String)
    case unknown(String)

    public var description: String {
        switch self {
        case .invalidURL(let url): "\"\(url)\" is not an http or https URL with a host (and optional port)"
        case .invalid(let why): why
        case .duplicate(let id): "instance \(id) is already in the pool"
        case .unknown(let id): "no instance \(id) in the pool"
        }
    }
}

/// What the admin API shows of a pool.
public struct PoolStatus: Sendable, Codable, Equatable {
    public let name: String
    public let strategy: String
    public let required: Bool
    public let instances: [InstanceStatus]
}
