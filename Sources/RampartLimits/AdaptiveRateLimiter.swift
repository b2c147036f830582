public import RampartCore
import RampartStore
import Synchronization

/// The rate limiter the gateway asks once per request: it picks the policy's effective
/// limit for the caller (role and endpoint class multipliers, adaptive factors, bounds),
/// decides on the key in the store, refuses penalised repeat violators outright, and
/// reports new offences to the shield. No server types; the clock is injected.
public final class AdaptiveRateLimiter: Sendable {
    /// Who is asking, as far as the limiter cares.
    public struct Caller: Sendable {
        public var client: IPAddress?
        public var user: String?
        public var tenant: String?
        public var apiKey: String?
        public var roles: [String]

        public init(client: IPAddress?, user: String? = nil, tenant: String? = nil, apiKey: String? = nil, roles: [String] = []) {
            self.client = client
            self.user = user
            self.tenant = tenant
            self.apiKey = apiKey
            self.roles = roles
        }
    }

    /// One decision and what it was made against.
    public struct Outcome: Sendable, Equatable {
        public var decision: RateLimitDecision
        public var policy: String
        public var limit: RateLimit
        /// Refused because the key is serving a repeat-violation penalty.
        public var isPenalty: Bool
        /// Where the decision was made.
        public var source: Source
        /// Refused because the shared store failed and the policy is to fail closed: not
        /// the caller's doing (a 503, not a 429).
        public var isStoreUnavailable = false

        public enum Source: String, Sendable, Equatable {
            /// This replica's memory (no shared store configured).
            case local
            /// The shared store (Redis).
            case shared
            /// The shared store failed; decided by `limits.shared.onStoreFailure`.
            case fallback
        }
    }

    /// A request's decision as far as it can be made without the store.
    enum Prepared {
        case done(Outcome)
        case ask(key: String, policy: RateLimitPolicy, limit: RateLimit, shared: RateLimitsConfiguration.Shared)
    }

    struct Compiled {
        var configuration: RateLimitsConfiguration
        /// Each policy, filled in from the defaults, with the parts its keys are made of.
        var policies: [String: (policy: RateLimitPolicy, key: [RateLimitsConfiguration.KeyPart])]
    }

    private let compiled: Mutex<Compiled>
    public let store: MemoryRateLimitStore
    public let controller: AdaptiveController
    public let violations: ViolationTracker
    /// The store replicas share (Redis), when one is configured.
    public let shared: SharedLimits?
    private let time: any TimeSource
    private let signals: (any ThreatSignals)?

    public init(_ configuration: RateLimitsConfiguration, time: any TimeSource = SystemTimeSource(), signals: (any ThreatSignals)? = nil,
                shared: SharedLimits? = nil) {
        self.time = time
        self.signals = signals
        self.shared = shared
        self.store = MemoryRateLimitStore(time: time)
        self.controller = AdaptiveController(settings: configuration.adaptation.settings)
        self.violations = ViolationTracker(settings: configuration.violations)
        self.compiled = Mutex(Self.compile(configuration))
    }

    private static func compile(_ configuration: RateLimitsConfiguration) -> Compiled {
        var policies: [String: (policy: RateLimitPolicy, key: [RateLimitsConfiguration.KeyPart])] = [:]
        for name in configuration.policyNames {
            if let policy = configuration.policy(named: name) { policies[name] = (policy, configuration.keyParts(of: name)) }
        }
        return Compiled(configuration: configuration, policies: policies)
    }

    /// A reloaded configuration: new policies and settings; counters, factors and
    /// violation records stay.
    public func apply(_ configuration: RateLimitsConfiguration) {
        compiled.withLock { $0 = Self.compile(configuration) }
        controller.settings = configuration.adaptation.settings
        violations.apply(configuration.violations)
    }

    public var configuration: RateLimitsConfiguration { compiled.withLock { $0.configuration } }

    /// The store key for `caller` under a policy keyed on `parts`; a part the caller lacks
    /// falls back to its client address.
    public static func key(policy: String, parts: [RateLimitsConfiguration.KeyPart], caller: Caller, route: String?) -> String {
        var key = policy
        for part in parts {
            key += "|"
            let client = caller.client.map { "ip:\($0)" } ?? "ip:unknown"
            switch part {
            case .client: key += client
            case .user: key += caller.user.map { "user:\($0)" } ?? client
            case .tenant: key += caller.tenant.map { "tenant:\($0)" } ?? client
            case .apiKey: key += caller.apiKey.map { "key:\($0)" } ?? client
            case .route: key += "route:\(route ?? "-")"
            }
        }
        return key
    }

    /// Decides one request under the policy called `policy` (nil when no such policy): in
    /// the shared store when there is one and it works, else as
    /// `limits.shared.onStoreFailure` says; in this replica's memory when no store is shared.
    public func decide(policy name: String, caller: Caller, route: String?, endpointClass: String?, cost: Int = 1,
                       requestID: String? = nil) async -> Outcome? {
        switch prepare(policy: name, caller: caller, route: route, endpointClass: endpointClass) {
        case nil: return nil
        case .done(let outcome)?: return outcome
        case .ask(let key, let policy, let limit, let settings)?:
            guard let shared else {
                return local(key: key, cost: cost, policy: policy, limit: limit, source: .local, caller: caller, requestID: requestID)
            }
            if shared.isUsable(probeInterval: settings.probeInterval.duration) {
                do {
                    let decision = try await shared.store.decide(key: key, cost: cost, limit: limit, algorithm: policy.algorithm)
                    return finish(decision, key: key, policy: policy.name, limit: limit, source: .shared, caller: caller, requestID: requestID)
                } catch {
                    shared.failed(error, settings: settings)
                }
            }
            let quota = limit.quota(under: policy.algorithm)
            switch settings.onStoreFailure {
            case .local:
                return local(key: key, cost: cost, policy: policy, limit: SharedLimits.share(of: limit, replicas: settings.replicas),
                             source: .fallback, caller: caller, requestID: requestID)
            case .open:
                let decision = RateLimitDecision(isAllowed: true, limit: quota, remaining: quota, resetAfter: .zero, retryAfter: nil)
                return Outcome(decision: decision, policy: policy.name, limit: limit, isPenalty: false, source: .fallback)
            case .closed:
                let decision = RateLimitDecision(isAllowed: false, limit: quota, remaining: 0, resetAfter: .zero,
                                                 retryAfter: settings.probeInterval.duration)
                return Outcome(decision: decision, policy: policy.name, limit: limit, isPenalty: false, source: .fallback, isStoreUnavailable: true)
            }
        }
    }

    /// Decides one request in this replica's memory, whatever is configured.
    public func decideLocally(policy name: String, caller: Caller, route: String?, endpointClass: String?, cost: Int = 1,
                              requestID: String? = nil) -> Outcome? {
        switch prepare(policy: name, caller: caller, route: route, endpointClass: endpointClass) {
        case nil: return nil
        case .done(let outcome)?: return outcome
        case .ask(let key, let policy, let limit, _)?:
            return local(key: key, cost: cost, policy: policy, limit: limit, source: .local, caller: caller, requestID: requestID)
        }
    }

    /// The key, effective limit and shared-store settings, or the answer already when the
    /// key is penalised.
    private func prepare(policy name: String, caller: Caller, route: String?, endpointClass: String?) -> Prepared? {
        guard let (policy, parts, shared) = compiled.withLock({ compiled in
            compiled.policies[name].map { ($0.policy, $0.key, compiled.configuration.shared) }
        }) else { return nil }
        let key = Self.key(policy: name, parts: parts, caller: caller, route: route)
        let limit = policy.effectiveLimit(roles: caller.roles, endpointClass: endpointClass, factor: controller.factors.combined)
        if let remaining = violations.penalty(for: key, now: time.now()) {
            let decision = RateLimitDecision(isAllowed: false, limit: limit.quota(under: policy.algorithm), remaining: 0,
                                             resetAfter: remaining, retryAfter: remaining)
            return .done(Outcome(decision: decision, policy: name, limit: limit, isPenalty: true, source: .local))
        }
        return .ask(key: key, policy: policy, limit: limit, shared: shared)
    }

    /// A decision in this replica's memory store.
    private func local(key: String, cost: Int, policy: RateLimitPolicy, limit: RateLimit, source: Outcome.Source,
                       caller: Caller, requestID: String?) -> Outcome {
        let decision = store.decide(key: key, cost: cost, limit: limit, algorithm: policy.algorithm)
        return finish(decision, key: key, policy: policy.name, limit: limit, source: source, caller: caller, requestID: requestID)
    }

    /// Records a refusal as an offence (reporting new ones to the shield).
    private func finish(_ decision: RateLimitDecision, key: String, policy name: String, limit: RateLimit, source: Outcome.Source,
                        caller: Caller, requestID: String?) -> Outcome {
        if !decision.isAllowed, let offence = violations.refused(key, policy: name, now: time.now()) {
            signals?.reportRateLimitAbuse(RateLimitAbuse(client: caller.client, key: key, policy: name, violations: offence.offences,
                                                         requestID: requestID))
        }
        return Outcome(decision: decision, policy: name, limit: limit, isPenalty: false, source: source)
    }

    /// One controller interval: the gateway's load over it, and the shield's threat level now.
    @discardableResult
    public func adapt(_ sample: LoadSample) -> AdaptiveFactors {
        controller.update(sample, threatLevel: signals?.threatLevel ?? 0)
    }

    /// Each policy's effective limit now for a caller with no role on an endpoint of no class.
    public func effectiveLimits() -> [(policy: RateLimitPolicy, limit: RateLimit)] {
        let factor = controller.factors.combined
        return compiled.withLock { compiled in
            compiled.configuration.policyNames.compactMap { name in compiled.policies[name].map { ($0.policy, $0.policy.effectiveLimit(factor: factor)) } }
        }
    }
}
