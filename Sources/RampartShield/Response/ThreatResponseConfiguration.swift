public import RampartCore

/// `shield.response`: what the shield does about what it finds, besides refusing the request:
/// keep the events, block the client, alert someone.
public struct ThreatResponseConfiguration: Codable, Sendable, Equatable {
    /// Block the client's address when a request it sent is refused with a critical finding
    /// (`THREAT_BLOCK_ON_CRITICAL`). Off by default: a false positive would lock a user out.
    public var blockOnCritical: Bool
    /// How long such an automatic block lasts.
    public var blockDuration: ConfigDuration
    /// Alert on findings and defences of severity error or critical (`THREAT_ALERT_ON_HIGH`).
    public var alertOnHigh: Bool
    /// Where alerts go; without one, alerts are only logged.
    public var alertWebhook: AlertWebhookConfiguration?
    /// At most one alert per client and kind within this interval; the rest are counted in it.
    public var alertInterval: ConfigDuration
    /// How many threat events the database keeps (the oldest go first).
    public var keepEvents: Int

    public init(blockOnCritical: Bool = false, blockDuration: ConfigDuration = .seconds(900), alertOnHigh: Bool = true,
                alertWebhook: AlertWebhookConfiguration? = nil, alertInterval: ConfigDuration = .seconds(60), keepEvents: Int = 100_000) {
        self.blockOnCritical = blockOnCritical
        self.blockDuration = blockDuration
        self.alertOnHigh = alertOnHigh
        self.alertWebhook = alertWebhook
        self.alertInterval = alertInterval
        self.keepEvents = keepEvents
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case blockOnCritical, blockDuration, alertOnHigh, alertWebhook, alertInterval, keepEvents }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ThreatResponseConfiguration()
        blockOnCritical = try c.decodeIfPresent(Bool.self, forKey: .blockOnCritical) ?? d.blockOnCritical
        blockDuration = try c.decodeIfPresent(ConfigDuration.self, forKey: .blockDuration) ?? d.blockDuration
        alertOnHigh = try c.decodeIfPresent(Bool.self, forKey: .alertOnHigh) ?? d.alertOnHigh
        alertWebhook = try c.decodeIfPresent(AlertWebhookConfiguration.self, forKey: .alertWebhook)
        alertInterval = try c.decodeIfPresent(ConfigDuration.self, forKey: .alertInterval) ?? d.alertInterval
        keepEvents = try c.decodeIfPresent(Int.self, forKey: .keepEvents) ?? d.keepEvents
    }

    public func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        if blockDuration.duration <= .zero { issues.append(.init(path: "\(path).blockDuration", "must be positive")) }
        if keepEvents < 100 { issues.append(.init(path: "\(path).keepEvents", "must be at least 100, got \(keepEvents)")) }
        return issues + (alertWebhook?.validate(at: "\(path).alertWebhook") ?? [])
    }
}

/// `shield.response.alertWebhook`: an HTTP endpoint that receives alerts as JSON POSTs,
/// retried with exponential backoff a bounded number of times.
public struct AlertWebhookConfiguration: Codable, Sendable, Equatable {
    public var url: String
    public var timeout: ConfigDuration
    /// Tries per alert, the first included.
    public var attempts: Int
    /// The wait before the first retry; each further retry waits twice as long.
    public var backoff: ConfigDuration
    /// Alerts waiting beyond this many are refused (and counted), so a dead webhook cannot
    /// grow memory.
    public var queueLimit: Int

    public init(url: String, timeout: ConfigDuration = .seconds(5), attempts: Int = 4, backoff: ConfigDuration = .seconds(1), queueLimit: Int = 1000) {
        self.url = url
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self.queueLimit = queueLimit
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case url, timeout, attempts, backoff, queueLimit }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let url = try c.decode(String.self, forKey: .url)
        let d = AlertWebhookConfiguration(url: url)
        self.url = url
        timeout = try c.decodeIfPresent(ConfigDuration.self, forKey: .timeout) ?? d.timeout
        attempts = try c.decodeIfPresent(Int.self, forKey: .attempts) ?? d.attempts
        backoff = try c.decodeIfPresent(ConfigDuration.self, forKey: .backoff) ?? d.backoff
        queueLimit = try c.decodeIfPresent(Int.self, forKey: .queueLimit) ?? d.queueLimit
    }

    public func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        let lower = url.lowercased()
        if !(lower.hasPrefix("http://") || lower.hasPrefix("https://")) || url.count < 10 {
            issues.append(.init(path: "\(path).url", "must be an http:// or https:// URL, got \"\(url)\""))
        }
        if !(1...20).contains(attempts) { issues.append(.init(path: "\(path).attempts", "must be between 1 and 20, got \(attempts)")) }
        if timeout.duration <= .zero { issues.append(.init(path: "\(path).timeout", "must be positive")) }
        if backoff.duration < .zero { issues.append(.init(path: "\(path).backoff", "must not be negative")) }
        if queueLimit < 1 { issues.append(.init(path: "\(path).queueLimit", "must be at least 1, got \(queueLimit)")) }
        return issues
    }
}
