public import RampartCore
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
    private let time: any TimeSource
    private let signals: (any ThreatSignals)?

    public init(_ configuration: RateLimitsConfiguration, time: any TimeSource = SystemTimeSource(), signals: (any ThreatSignals)? = nil) {
        self.time = time
        self.signals = signals
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

    /// Decides one request under the policy called `policy` (nil when no such policy).
    public func decide(policy name: String, caller: Caller, route: String?, endpointClass: String?, cost: Int = 1,
                       requestID: String? = nil) -> Outcome? {
        guard let (policy, parts) = compiled.withLock({ $0.policies[name] }) else { return nil }
        let key = Self.key(policy: name, parts: parts, caller: caller, route: route)
        let limit = policy.effectiveLimit(roles: caller.roles, endpointClass: endpointClass, factor: controller.factors.combined)
        let now = time.now()
        if let remaining = violations.penalty(for: key, now: now) {
            let decision = RateLimitDecision(isAllowed: false, limit: limit.quota(under: policy.algorithm), remaining: 0,
                                             resetAfter: remaining, retryAfter: remaining)
            return Outcome(decision: decision, policy: name, limit: limit, isPenalty: true)
        }
        let decision = store.decide(key: key, cost: cost, limit: limit, algorithm: policy.algorithm)
        if !decision.isAllowed, let offence = violations.refused(key, policy: name, now: now) {
            signals?.reportRateLimitAbuse(RateLimitAbuse(client: caller.client, key: key, policy: name, violations: offence.offences,
                                                         requestID: requestID))
        }
        return Outcome(decision: decision, policy: name, limit: limit, isPenalty: false)
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
