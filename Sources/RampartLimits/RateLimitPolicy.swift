public import RampartCore

/// A named rule for how much callers may do: a base quota per window, scaled by the
/// caller's role and the endpoint's class, then by the adaptive factors, and always kept
/// within `minimum...maximum`.
///
/// With base 100 per minute, roles `admin: 10, user: 1, viewer: 0.5` and classes
/// `read: 1, write: 0.2`, a viewer writing gets 100 x 0.5 x 0.2 = 10 per minute; under an
/// adaptive factor of 0.5 it gets 5, or `minimum` if that is higher.
public struct RateLimitPolicy: Sendable, Equatable {
    public var name: String
    public var algorithm: RateLimitAlgorithm
    /// Requests per `window` at multiplier 1.
    public var base: Int
    public var window: Duration
    /// Burst for GCRA as a share of the effective limit (1: the whole quota at once).
    public var burstRatio: Double
    /// The bounds every effective limit stays within, after every multiplier and factor.
    public var minimum: Int
    public var maximum: Int
    /// Multipliers per role; a caller with several roles gets the largest. Callers with no
    /// listed role get `defaultRoleMultiplier`.
    public var roles: [String: Double]
    public var defaultRoleMultiplier: Double
    /// Multipliers per endpoint class (`read`, `write`, or a route's own class name).
    public var classes: [String: Double]
    /// Whether the adaptive factors apply.
    public var isAdaptive: Bool

    public init(name: String, algorithm: RateLimitAlgorithm = .gcra, base: Int, window: Duration, burstRatio: Double = 1,
                minimum: Int = 1, maximum: Int = .max, roles: [String: Double] = [:], defaultRoleMultiplier: Double = 1,
                classes: [String: Double] = [:], isAdaptive: Bool = true) {
        self.name = name
        self.algorithm = algorithm
        self.base = base
        self.window = window
        self.burstRatio = burstRatio
        self.minimum = minimum
        self.maximum = maximum
        self.roles = roles
        self.defaultRoleMultiplier = defaultRoleMultiplier
        self.classes = classes
        self.isAdaptive = isAdaptive
    }

    /// The multiplier for a caller with `roles`: the largest listed, else the default.
    public func roleMultiplier(for roles: [String]) -> Double {
        roles.compactMap { self.roles[$0] }.max() ?? defaultRoleMultiplier
    }

    /// The quota for one caller and endpoint class under an adaptive `factor` (1 when calm),
    /// never below `minimum` nor above `maximum`.
    public func effectiveLimit(roles: [String] = [], endpointClass: String? = nil, factor: Double = 1) -> RateLimit {
        let classMultiplier = endpointClass.flatMap { classes[$0] } ?? 1
        let adaptive = isAdaptive ? factor : 1
        let scaled = Double(base) * roleMultiplier(for: roles) * classMultiplier * adaptive
        let bounded = min(Double(maximum), max(Double(minimum), scaled.rounded(.down)))
        let limit = max(1, Int(bounded))
        return RateLimit(limit: limit, window: window, burst: max(1, Int((Double(limit) * burstRatio).rounded(.down))))
    }

    /// Problems with this policy, each naming its place under `path`.
    public func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        if base < 1 { issues.append(ConfigurationIssue(path: "\(path).base", "must be at least 1, got \(base)")) }
        if window <= .zero { issues.append(ConfigurationIssue(path: "\(path).window", "must be longer than zero")) }
        if minimum < 1 { issues.append(ConfigurationIssue(path: "\(path).min", "must be at least 1, got \(minimum)")) }
        if maximum < minimum { issues.append(ConfigurationIssue(path: "\(path).max", "must be at least min (\(minimum)), got \(maximum)")) }
        if !(burstRatio > 0 && burstRatio <= 100) { issues.append(ConfigurationIssue(path: "\(path).burst", "must be above 0 and at most 100, got \(burstRatio)")) }
        for (role, multiplier) in roles.sorted(by: { $0.key < $1.key }) where !(multiplier > 0 && multiplier.isFinite) {
            issues.append(ConfigurationIssue(path: "\(path).roles.\(role)", "must be a positive number, got \(multiplier)"))
        }
        for (name, multiplier) in classes.sorted(by: { $0.key < $1.key }) where !(multiplier > 0 && multiplier.isFinite) {
            issues.append(ConfigurationIssue(path: "\(path).classes.\(name)", "must be a positive number, got \(multiplier)"))
        }
        return issues
    }
}
