public import RampartCore

/// `limits:` in rampart.yml. Its presence turns rate limiting on: the top-level settings
/// are the default policy, applied to every route that does not name another (`limit:` on
/// a route, or `off`). `RATE_LIMIT_BASE`, `RATE_LIMIT_WINDOW`, `RATE_LIMIT_MIN`,
/// `RATE_LIMIT_MAX` and `RATE_LIMIT_ADAPTIVE` override the default policy's fields.
public struct RateLimitsConfiguration: Codable, Sendable, Equatable {
    /// What a limit is keyed on; parts a caller lacks (an anonymous caller has no user)
    /// fall back to its client address.
    public enum KeyPart: String, Codable, Sendable, CaseIterable {
        case client, user, tenant, apiKey, route
    }

    /// One policy's settings; the named ones inherit every field they leave out from the
    /// default policy.
    public struct Policy: Codable, Sendable, Equatable {
        public var algorithm: RateLimitAlgorithm?
        public var base: Int?
        public var window: ConfigDuration?
        public var burst: Double?
        public var min: Int?
        public var max: Int?
        public var adaptive: Bool?
        public var key: [KeyPart]?
        public var roles: [String: Double]?
        public var classes: [String: Double]?

        public init(algorithm: RateLimitAlgorithm? = nil, base: Int? = nil, window: ConfigDuration? = nil, burst: Double? = nil,
                    min: Int? = nil, max: Int? = nil, adaptive: Bool? = nil, key: [KeyPart]? = nil,
                    roles: [String: Double]? = nil, classes: [String: Double]? = nil) {
            self.algorithm = algorithm
            self.base = base
            self.window = window
            self.burst = burst
            self.min = min
            self.max = max
            self.adaptive = adaptive
            self.key = key
            self.roles = roles
            self.classes = classes
        }

        enum CodingKeys: String, CodingKey, CaseIterable { case algorithm, base, window, burst, min, max, adaptive, key, roles, classes }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            try self.init(fields: decoder.container(keyedBy: CodingKeys.self))
        }

        /// The fields, from a named policy's own mapping or from `limits:` itself.
        init(fields c: KeyedDecodingContainer<CodingKeys>) throws {
            algorithm = try c.decodeIfPresent(RateLimitAlgorithm.self, forKey: .algorithm)
            base = try c.decodeIfPresent(Int.self, forKey: .base)
            window = try c.decodeIfPresent(ConfigDuration.self, forKey: .window)
            burst = try c.decodeIfPresent(Double.self, forKey: .burst)
            min = try c.decodeIfPresent(Int.self, forKey: .min)
            max = try c.decodeIfPresent(Int.self, forKey: .max)
            adaptive = try c.decodeIfPresent(Bool.self, forKey: .adaptive)
            key = try c.decodeIfPresent([KeyPart].self, forKey: .key)
            roles = try c.decodeIfPresent([String: Double].self, forKey: .roles)
            classes = try c.decodeIfPresent([String: Double].self, forKey: .classes)
        }

        /// This policy's fields over `defaults`'.
        func over(_ defaults: Policy) -> Policy {
            Policy(algorithm: algorithm ?? defaults.algorithm, base: base ?? defaults.base, window: window ?? defaults.window,
                   burst: burst ?? defaults.burst, min: min ?? defaults.min, max: max ?? defaults.max, adaptive: adaptive ?? defaults.adaptive,
                   key: key ?? defaults.key, roles: roles ?? defaults.roles, classes: classes ?? defaults.classes)
        }
    }

    /// The adaptive controller: how often it runs and what it takes as normal.
    public struct Adaptation: Codable, Sendable, Equatable {
        public var interval = ConfigDuration.seconds(1)
        public var latencyTolerance = 1.5
        public var errorThreshold = 0.05
        public var concurrency: Int?
        public var minimumFactor = 0.1
        public var calmFactor = 1.0
        public var threatFloor = 0.25
        public var baselineRiseTime = ConfigDuration.seconds(60)

        public init() {}

        enum CodingKeys: String, CodingKey, CaseIterable {
            case interval, latencyTolerance, errorThreshold, concurrency, minimumFactor, calmFactor, threatFloor, baselineRiseTime
        }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = Adaptation()
            interval = try c.decodeIfPresent(ConfigDuration.self, forKey: .interval) ?? d.interval
            latencyTolerance = try c.decodeIfPresent(Double.self, forKey: .latencyTolerance) ?? d.latencyTolerance
            errorThreshold = try c.decodeIfPresent(Double.self, forKey: .errorThreshold) ?? d.errorThreshold
            concurrency = try c.decodeIfPresent(Int.self, forKey: .concurrency)
            minimumFactor = try c.decodeIfPresent(Double.self, forKey: .minimumFactor) ?? d.minimumFactor
            calmFactor = try c.decodeIfPresent(Double.self, forKey: .calmFactor) ?? d.calmFactor
            threatFloor = try c.decodeIfPresent(Double.self, forKey: .threatFloor) ?? d.threatFloor
            baselineRiseTime = try c.decodeIfPresent(ConfigDuration.self, forKey: .baselineRiseTime) ?? d.baselineRiseTime
        }

        public var settings: AdaptiveSettings {
            var s = AdaptiveSettings()
            s.latencyTolerance = latencyTolerance
            s.errorThreshold = errorThreshold
            s.concurrency = concurrency
            s.minimumFactor = minimumFactor
            s.calmFactor = calmFactor
            s.threatFloor = threatFloor
            s.interval = interval.duration
            s.baselineRiseTime = baselineRiseTime.duration
            return s
        }

        func validate(at path: String) -> [ConfigurationIssue] {
            var issues: [ConfigurationIssue] = []
            if interval.duration < .milliseconds(10) { issues.append(.init(path: "\(path).interval", "must be at least 10ms, got \(interval)")) }
            if !(latencyTolerance >= 1) { issues.append(.init(path: "\(path).latencyTolerance", "must be at least 1, got \(latencyTolerance)")) }
            if !(errorThreshold > 0 && errorThreshold < 1) { issues.append(.init(path: "\(path).errorThreshold", "must be between 0 and 1, got \(errorThreshold)")) }
            if let concurrency, concurrency < 1 { issues.append(.init(path: "\(path).concurrency", "must be at least 1, got \(concurrency)")) }
            if !(minimumFactor > 0 && minimumFactor <= 1) { issues.append(.init(path: "\(path).minimumFactor", "must be above 0 and at most 1, got \(minimumFactor)")) }
            if !(calmFactor >= 1 && calmFactor <= 10) { issues.append(.init(path: "\(path).calmFactor", "must be between 1 and 10, got \(calmFactor)")) }
            if !(threatFloor > 0 && threatFloor <= 1) { issues.append(.init(path: "\(path).threatFloor", "must be above 0 and at most 1, got \(threatFloor)")) }
            if baselineRiseTime < interval { issues.append(.init(path: "\(path).baselineRiseTime", "must be at least interval (\(interval)), got \(baselineRiseTime)")) }
            return issues
        }
    }

    /// Repeat violators: refused this many times within `window`, a key is refused outright
    /// for `penalty`, doubling with each further offence up to `maxPenalty`, and reported to
    /// the shield as rate-limit abuse.
    public struct Violations: Codable, Sendable, Equatable {
        public var threshold = 20
        public var window = ConfigDuration.seconds(60)
        public var penalty = ConfigDuration.seconds(30)
        public var maxPenalty = ConfigDuration.seconds(3600)

        public init() {}

        enum CodingKeys: String, CodingKey, CaseIterable { case threshold, window, penalty, maxPenalty }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = Violations()
            threshold = try c.decodeIfPresent(Int.self, forKey: .threshold) ?? d.threshold
            window = try c.decodeIfPresent(ConfigDuration.self, forKey: .window) ?? d.window
            penalty = try c.decodeIfPresent(ConfigDuration.self, forKey: .penalty) ?? d.penalty
            maxPenalty = try c.decodeIfPresent(ConfigDuration.self, forKey: .maxPenalty) ?? d.maxPenalty
        }

        func validate(at path: String) -> [ConfigurationIssue] {
            var issues: [ConfigurationIssue] = []
            if threshold < 1 { issues.append(.init(path: "\(path).threshold", "must be at least 1, got \(threshold)")) }
            if window.duration <= .zero { issues.append(.init(path: "\(path).window", "must be longer than zero")) }
            if penalty.duration <= .zero { issues.append(.init(path: "\(path).penalty", "must be longer than zero")) }
            if maxPenalty < penalty { issues.append(.init(path: "\(path).maxPenalty", "must be at least penalty (\(penalty)), got \(maxPenalty)")) }
            return issues
        }
    }

    /// Limits shared by replicas through Redis (when the gateway has a `redis:` section),
    /// and what each replica does while Redis cannot be reached.
    public struct Shared: Codable, Sendable, Equatable {
        /// While the shared store fails: `local` limits scaled by 1/`replicas` (each
        /// replica enforces its share), `open` (admit everything), or `closed` (refuse
        /// everything with 503).
        public enum FailureMode: String, Codable, Sendable, CaseIterable { case local, open, closed }

        /// Off: limits stay per replica even with Redis configured.
        public var enabled = true
        /// How many replicas share the limits (N in the 1/N fallback).
        public var replicas = 1
        public var onStoreFailure = FailureMode.local
        /// While falling back, how often Redis is asked whether it is back.
        public var probeInterval = ConfigDuration.seconds(1)
        /// Prepended to every key in Redis, so several gateways' limits can share one Redis.
        public var keyPrefix = "rampart:rl:"

        public init() {}

        enum CodingKeys: String, CodingKey, CaseIterable { case enabled, replicas, onStoreFailure, probeInterval, keyPrefix }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = Shared()
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? d.enabled
            replicas = try c.decodeIfPresent(Int.self, forKey: .replicas) ?? d.replicas
            onStoreFailure = try c.decodeIfPresent(FailureMode.self, forKey: .onStoreFailure) ?? d.onStoreFailure
            probeInterval = try c.decodeIfPresent(ConfigDuration.self, forKey: .probeInterval) ?? d.probeInterval
            keyPrefix = try c.decodeIfPresent(String.self, forKey: .keyPrefix) ?? d.keyPrefix
        }

        func validate(at path: String) -> [ConfigurationIssue] {
            var issues: [ConfigurationIssue] = []
            if !(1...10_000).contains(replicas) { issues.append(.init(path: "\(path).replicas", "must be 1-10000, got \(replicas)")) }
            if probeInterval.duration < .milliseconds(10) { issues.append(.init(path: "\(path).probeInterval", "must be at least 10ms, got \(probeInterval)")) }
            if keyPrefix.isEmpty { issues.append(.init(path: "\(path).keyPrefix", "must not be empty")) }
            return issues
        }
    }

    /// The default policy (the top-level fields).
    public var defaults: Policy
    /// Named policies routes can choose.
    public var policies: [String: Policy]
    public var adaptation: Adaptation
    public var violations: Violations
    public var shared: Shared

    public static let defaultName = "default"
    static let builtIn = Policy(algorithm: .gcra, base: 600, window: .seconds(60), burst: 1, min: 1, max: 1_000_000, adaptive: true,
                                key: [.client], roles: [:], classes: [:])

    public init(defaults: Policy = Policy(), policies: [String: Policy] = [:], adaptation: Adaptation = .init(), violations: Violations = .init(),
                shared: Shared = .init()) {
        self.defaults = defaults
        self.policies = policies
        self.adaptation = adaptation
        self.violations = violations
        self.shared = shared
    }

    enum ExtraKeys: String, CodingKey, CaseIterable { case policies, adaptation, violations, shared }
    enum AllKeys: String, CodingKey, CaseIterable {
        case algorithm, base, window, burst, min, max, adaptive, key, roles, classes, policies, adaptation, violations, shared
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(AllKeys.self)
        defaults = try Policy(fields: decoder.container(keyedBy: Policy.CodingKeys.self))
        let c = try decoder.container(keyedBy: ExtraKeys.self)
        policies = try c.decodeIfPresent([String: Policy].self, forKey: .policies) ?? [:]
        adaptation = try c.decodeIfPresent(Adaptation.self, forKey: .adaptation) ?? .init()
        violations = try c.decodeIfPresent(Violations.self, forKey: .violations) ?? .init()
        shared = try c.decodeIfPresent(Shared.self, forKey: .shared) ?? .init()
    }

    /// The default policy's fields and the other sections side by side, as in the file.
    public func encode(to encoder: any Encoder) throws {
        try defaults.encode(to: encoder)
        var c = encoder.container(keyedBy: ExtraKeys.self)
        try c.encode(policies, forKey: .policies)
        try c.encode(adaptation, forKey: .adaptation)
        try c.encode(violations, forKey: .violations)
        try c.encode(shared, forKey: .shared)
    }

    /// The policy called `name` (`default` for the top-level one), every field filled.
    public func policy(named name: String) -> RateLimitPolicy? {
        let settings: Policy
        if name == Self.defaultName {
            settings = defaults.over(Self.builtIn)
        } else if let own = policies[name] {
            settings = own.over(defaults.over(Self.builtIn))
        } else {
            return nil
        }
        return RateLimitPolicy(name: name, algorithm: settings.algorithm!, base: settings.base!, window: settings.window!.duration,
                               burstRatio: settings.burst!, minimum: settings.min!, maximum: settings.max!, roles: settings.roles!,
                               classes: settings.classes!, isAdaptive: settings.adaptive!)
    }

    /// The key parts of the policy called `name`.
    public func keyParts(of name: String) -> [KeyPart] {
        (name == Self.defaultName ? nil : policies[name]?.key) ?? defaults.key ?? Self.builtIn.key!
    }

    public var policyNames: [String] { [Self.defaultName] + policies.keys.sorted() }

    public func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        if policies[Self.defaultName] != nil {
            issues.append(.init(path: "\(path).policies.\(Self.defaultName)", "is the top-level policy's name; set its fields on \(path) itself"))
        }
        for name in policyNames {
            let at = name == Self.defaultName ? path : "\(path).policies.\(name)"
            issues += policy(named: name)?.validate(at: at) ?? []
            if keyParts(of: name).isEmpty { issues.append(.init(path: "\(at).key", "must name at least one of client, user, tenant, apiKey, route")) }
        }
        return issues + adaptation.validate(at: "\(path).adaptation") + violations.validate(at: "\(path).violations")
            + shared.validate(at: "\(path).shared")
    }
}
