public import RampartCore

/// One upstream pool as written in `pools.<name>` of `rampart.yml`.
public struct PoolConfiguration: Codable, Sendable, Equatable {
    /// How an instance is chosen. Default: round-robin.
    public var strategy: BalancingStrategy
    /// The instances known from the file. Instances registered through the admin API are
    /// added to these and survive a reload.
    public var instances: [InstanceConfiguration]
    /// Active health checks; without them every instance counts as healthy until passive
    /// health (outlier detection) says otherwise.
    public var healthCheck: HealthCheckConfiguration?
    /// Passive health: ejection after consecutive failures.
    public var outlierDetection: OutlierDetectionConfiguration
    /// Share of a priority group's instances that must be available for the group to take
    /// traffic; below it, traffic moves to the next priority. Default 0.5.
    public var failoverThreshold: Double
    /// How long an instance being removed may finish its in-flight requests. Default 30s.
    public var drainTimeout: ConfigDuration
    /// Whether `/ready` requires a healthy instance in this pool. Default true.
    public var required: Bool

    public init(
        strategy: BalancingStrategy = .roundRobin,
        instances: [InstanceConfiguration] = [],
        healthCheck: HealthCheckConfiguration? = nil,
        outlierDetection: OutlierDetectionConfiguration = .init(),
        failoverThreshold: Double = 0.5,
        drainTimeout: ConfigDuration = .seconds(30),
        required: Bool = true
    ) {
        self.strategy = strategy
        self.instances = instances
        self.healthCheck = healthCheck
        self.outlierDetection = outlierDetection
        self.failoverThreshold = failoverThreshold
        self.drainTimeout = drainTimeout
        self.required = required
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case strategy, instances, healthCheck, outlierDetection, failoverThreshold, drainTimeout, required
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = PoolConfiguration()
        strategy = try c.decodeIfPresent(BalancingStrategy.self, forKey: .strategy) ?? d.strategy
        instances = try c.decodeIfPresent([InstanceConfiguration].self, forKey: .instances) ?? d.instances
        healthCheck = try c.decodeIfPresent(HealthCheckConfiguration.self, forKey: .healthCheck)
        outlierDetection = try c.decodeIfPresent(OutlierDetectionConfiguration.self, forKey: .outlierDetection) ?? d.outlierDetection
        failoverThreshold = try c.decodeIfPresent(Double.self, forKey: .failoverThreshold) ?? d.failoverThreshold
        drainTimeout = try c.decodeIfPresent(ConfigDuration.self, forKey: .drainTimeout) ?? d.drainTimeout
        required = try c.decodeIfPresent(Bool.self, forKey: .required) ?? d.required
    }

    /// Cross-field checks; every issue is reported, each naming its path under `path`.
    public func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        if instances.isEmpty {
            issues.append(.init(path: configurationPath(path, "instances"),
                                "a pool needs at least one instance (more can be registered through the admin API later, but the file must name one)"))
        }
        var seen: [String: Int] = [:]
        for (index, instance) in instances.enumerated() {
            let at = "\(configurationPath(path, "instances"))[\(index)]"
            issues += instance.validate(at: at)
            if let url = UpstreamURL(instance.url) {
                if let first = seen[url.authority] {
                    issues.append(.init(path: at + ".url", "\(url.authority) is already instances[\(first)]"))
                }
                seen[url.authority] = index
            }
        }
        if !(0...1).contains(failoverThreshold) {
            issues.append(.init(path: configurationPath(path, "failoverThreshold"), "must be between 0 and 1, got \(failoverThreshold)"))
        }
        issues += strategy.validate(at: configurationPath(path, "strategy"), instances: instances, instancesPath: configurationPath(path, "instances"))
        if let healthCheck { issues += healthCheck.validate(at: configurationPath(path, "healthCheck")) }
        issues += outlierDetection.validate(at: configurationPath(path, "outlierDetection"))
        return issues
    }
}

/// One instance in a pool.
public struct InstanceConfiguration: Codable, Sendable, Equatable {
    /// `http://host:port[/base]` or `https://…`.
    public var url: String
    /// Relative share for weighted strategies; 1 to 1000. Default 1.
    public var weight: Int
    /// Region name for the geographic strategy.
    public var region: String?
    /// Priority group: 0 takes traffic first; higher numbers are failover groups.
    public var priority: Int

    public init(url: String, weight: Int = 1, region: String? = nil, priority: Int = 0) {
        self.url = url
        self.weight = weight
        self.region = region
        self.priority = priority
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case url, weight, region, priority }

    public init(from decoder: any Decoder) throws {
        if let single = try? decoder.singleValueContainer(), let text = try? single.decode(String.self) {
            self.init(url: text)
            return
        }
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(url: try c.decode(String.self, forKey: .url),
                  weight: try c.decodeIfPresent(Int.self, forKey: .weight) ?? 1,
                  region: try c.decodeIfPresent(String.self, forKey: .region),
                  priority: try c.decodeIfPresent(Int.self, forKey: .priority) ?? 0)
    }

    public func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        if UpstreamURL(url) == nil {
            issues.append(.init(path: configurationPath(path, "url"), "\"\(url)\" is not an http or https URL with a host (and optional port)"))
        }
        if !(1...1000).contains(weight) {
            issues.append(.init(path: configurationPath(path, "weight"), "must be between 1 and 1000, got \(weight)"))
        }
        if !(0...100).contains(priority) {
            issues.append(.init(path: configurationPath(path, "priority"), "must be between 0 and 100, got \(priority)"))
        }
        return issues
    }
}

/// Active health checking of a pool's instances.
public struct HealthCheckConfiguration: Codable, Sendable, Equatable {
    /// Path requested with GET. Default `/health`.
    public var path: String
    /// Time between checks of one instance; each check is jittered by up to 10%. Default 5s.
    public var interval: ConfigDuration
    /// Time allowed for one check. Default 2s.
    public var timeout: ConfigDuration
    /// Statuses that count as healthy. Default 200-299 (written as a list: [200, 204]).
    public var expectedStatuses: [Int]
    /// Consecutive successes that make an unhealthy instance healthy. Default 2.
    public var healthyThreshold: Int
    /// Consecutive failures that make a healthy instance unhealthy. Default 3.
    public var unhealthyThreshold: Int

    public init(path: String = "/health", interval: ConfigDuration = .seconds(5), timeout: ConfigDuration = .seconds(2),
                expectedStatuses: [Int] = [], healthyThreshold: Int = 2, unhealthyThreshold: Int = 3) {
        self.path = path
        self.interval = interval
        self.timeout = timeout
        self.expectedStatuses = expectedStatuses
        self.healthyThreshold = healthyThreshold
        self.unhealthyThreshold = unhealthyThreshold
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case path, interval, timeout, expectedStatuses, healthyThreshold, unhealthyThreshold
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = HealthCheckConfiguration()
        path = try c.decodeIfPresent(String.self, forKey: .path) ?? d.path
        interval = try c.decodeIfPresent(ConfigDuration.self, forKey: .interval) ?? d.interval
        timeout = try c.decodeIfPresent(ConfigDuration.self, forKey: .timeout) ?? d.timeout
        expectedStatuses = try c.decodeIfPresent([Int].self, forKey: .expectedStatuses) ?? d.expectedStatuses
        healthyThreshold = try c.decodeIfPresent(Int.self, forKey: .healthyThreshold) ?? d.healthyThreshold
        unhealthyThreshold = try c.decodeIfPresent(Int.self, forKey: .unhealthyThreshold) ?? d.unhealthyThreshold
    }

    /// Whether a check answered with `status` counts as a success.
    public func accepts(status: Int) -> Bool {
        expectedStatuses.isEmpty ? (200..<300).contains(status) : expectedStatuses.contains(status)
    }

    public func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        if !self.path.hasPrefix("/") {
            issues.append(.init(path: configurationPath(path, "path"), "must start with /, got \"\(self.path)\""))
        }
        if interval.duration < .milliseconds(100) {
            issues.append(.init(path: configurationPath(path, "interval"), "must be at least 100ms, got \(interval)"))
        }
        if timeout.duration <= .zero {
            issues.append(.init(path: configurationPath(path, "timeout"), "must be positive"))
        } else if timeout > interval {
            issues.append(.init(path: configurationPath(path, "timeout"), "\(timeout) is longer than the interval (\(interval))"))
        }
        for (i, s) in expectedStatuses.enumerated() where !(100...599).contains(s) {
            issues.append(.init(path: "\(configurationPath(path, "expectedStatuses"))[\(i)]", "\(s) is not an HTTP status"))
        }
        if !(1...100).contains(healthyThreshold) {
            issues.append(.init(path: configurationPath(path, "healthyThreshold"), "must be between 1 and 100"))
        }
        if !(1...100).contains(unhealthyThreshold) {
            issues.append(.init(path: configurationPath(path, "unhealthyThreshold"), "must be between 1 and 100"))
        }
        return issues
    }
}

/// Passive health: an instance that fails repeatedly is ejected for a while.
public struct OutlierDetectionConfiguration: Codable, Sendable, Equatable {
    /// Whether passive ejection runs at all. Default true.
    public var enabled: Bool
    /// Consecutive failures (connect errors, resets, timeouts or 5xx answers) that eject. Default 5.
    public var consecutiveFailures: Int
    /// First ejection time; the n-th consecutive ejection lasts n times as long. Default 10s.
    public var baseEjectionTime: ConfigDuration
    /// Longest ejection. Default 5m.
    public var maxEjectionTime: ConfigDuration
    /// Never eject more than this share of a pool's instances at once. Default 0.5.
    public var maxEjectedShare: Double

    public init(enabled: Bool = true, consecutiveFailures: Int = 5, baseEjectionTime: ConfigDuration = .seconds(10),
                maxEjectionTime: ConfigDuration = .seconds(300), maxEjectedShare: Double = 0.5) {
        self.enabled = enabled
        self.consecutiveFailures = consecutiveFailures
        self.baseEjectionTime = baseEjectionTime
        self.maxEjectionTime = maxEjectionTime
        self.maxEjectedShare = maxEjectedShare
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case enabled, consecutiveFailures, baseEjectionTime, maxEjectionTime, maxEjectedShare
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = OutlierDetectionConfiguration()
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? d.enabled
        consecutiveFailures = try c.decodeIfPresent(Int.self, forKey: .consecutiveFailures) ?? d.consecutiveFailures
        baseEjectionTime = try c.decodeIfPresent(ConfigDuration.self, forKey: .baseEjectionTime) ?? d.baseEjectionTime
        maxEjectionTime = try c.decodeIfPresent(ConfigDuration.self, forKey: .maxEjectionTime) ?? d.maxEjectionTime
        maxEjectedShare = try c.decodeIfPresent(Double.self, forKey: .maxEjectedShare) ?? d.maxEjectedShare
    }

    public func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        if consecutiveFailures < 1 {
            issues.append(.init(path: configurationPath(path, "consecutiveFailures"), "must be at least 1"))
        }
        if baseEjectionTime.duration <= .zero {
            issues.append(.init(path: configurationPath(path, "baseEjectionTime"), "must be positive"))
        }
        if maxEjectionTime < baseEjectionTime {
            issues.append(.init(path: configurationPath(path, "maxEjectionTime"), "\(maxEjectionTime) is shorter than baseEjectionTime (\(baseEjectionTime))"))
        }
        if !(0...1).contains(maxEjectedShare) {
            issues.append(.init(path: configurationPath(path, "maxEjectedShare"), "must be between 0 and 1"))
        }
        return issues
    }
}
