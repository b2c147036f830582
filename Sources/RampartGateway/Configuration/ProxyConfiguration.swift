public import RampartCore

/// How the traffic listener receives, checks and forwards requests.
public struct ProxyConfiguration: Codable, Sendable, Equatable {
    /// Peers whose `X-Forwarded-For` / `Forwarded` are believed. Default: none.
    public var trustedProxies: CIDRSet
    /// Pass the client's `Host` upstream (true, like Envoy) or the instance's address (false,
    /// like nginx's default). Default true.
    public var preserveHost: Bool
    /// A header carrying the client's country (for example `CF-IPCountry`), read only from
    /// trusted proxies.
    public var countryHeader: String?
    /// Address ranges to countries, used when no country header is present.
    public var countries: [String: String]
    public var limits: LimitsConfiguration
    public var timeouts: TimeoutsConfiguration
    public var retries: RetryConfiguration
    /// Serve plain HTTP/1.1 `GET` and `HEAD` requests on the event loop, without a task per
    /// request (docs/proxy.md#direct-path). Default true; read at start.
    public var directPath: Bool

    public init(trustedProxies: CIDRSet = CIDRSet([]), preserveHost: Bool = true, countryHeader: String? = nil,
                countries: [String: String] = [:], limits: LimitsConfiguration = .init(), timeouts: TimeoutsConfiguration = .init(),
                retries: RetryConfiguration = .init(), directPath: Bool = true) {
        self.trustedProxies = trustedProxies
        self.preserveHost = preserveHost
        self.countryHeader = countryHeader
        self.countries = countries
        self.limits = limits
        self.timeouts = timeouts
        self.retries = retries
        self.directPath = directPath
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case trustedProxies, preserveHost, countryHeader, countries, limits, timeouts, retries, directPath
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ProxyConfiguration()
        trustedProxies = try c.decodeIfPresent(CIDRSet.self, forKey: .trustedProxies) ?? d.trustedProxies
        preserveHost = try c.decodeIfPresent(Bool.self, forKey: .preserveHost) ?? d.preserveHost
        countryHeader = try c.decodeIfPresent(String.self, forKey: .countryHeader)
        countries = try c.decodeIfPresent([String: String].self, forKey: .countries) ?? [:]
        limits = try c.decodeIfPresent(LimitsConfiguration.self, forKey: .limits) ?? d.limits
        timeouts = try c.decodeIfPresent(TimeoutsConfiguration.self, forKey: .timeouts) ?? d.timeouts
        retries = try c.decodeIfPresent(RetryConfiguration.self, forKey: .retries) ?? d.retries
        directPath = try c.decodeIfPresent(Bool.self, forKey: .directPath) ?? d.directPath
    }

    func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        for (range, country) in countries.sorted(by: { $0.key < $1.key }) {
            if CIDRBlock(range) == nil {
                issues.append(.init(path: "\(path).countries.\(range)", "\"\(range)\" is not an address or CIDR range"))
            }
            if country.count != 2 || !country.allSatisfy({ $0.isLetter && $0.isASCII }) {
                issues.append(.init(path: "\(path).countries.\(range)", "\"\(country)\" is not a two-letter country code"))
            }
        }
        issues += limits.validate(at: "\(path).limits")
        issues += timeouts.validate(at: "\(path).timeouts")
        issues += retries.validate(at: "\(path).retries")
        return issues
    }

    /// The country table compiled for lookups.
    public var countryTable: CIDRTable<String> {
        var table = CIDRTable<String>()
        for (range, country) in countries { if let block = CIDRBlock(range) { table.insert(block, value: country.uppercased()) } }
        return table
    }
}

/// Size limits on what clients send.
public struct LimitsConfiguration: Codable, Sendable, Equatable {
    /// All request header lines together; larger heads get 431. Default 32KiB.
    public var maxHeaderBytes: ByteCount
    /// The request target; longer ones get 414. Default 8KiB.
    public var maxURIBytes: ByteCount
    /// A request body, declared or chunked; larger ones get 413. Default 100MiB.
    public var maxBodyBytes: ByteCount

    public init(maxHeaderBytes: ByteCount = .kibibytes(32), maxURIBytes: ByteCount = .kibibytes(8), maxBodyBytes: ByteCount = .mebibytes(100)) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxURIBytes = maxURIBytes
        self.maxBodyBytes = maxBodyBytes
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case maxHeaderBytes, maxURIBytes, maxBodyBytes }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = LimitsConfiguration()
        maxHeaderBytes = try c.decodeIfPresent(ByteCount.self, forKey: .maxHeaderBytes) ?? d.maxHeaderBytes
        maxURIBytes = try c.decodeIfPresent(ByteCount.self, forKey: .maxURIBytes) ?? d.maxURIBytes
        maxBodyBytes = try c.decodeIfPresent(ByteCount.self, forKey: .maxBodyBytes) ?? d.maxBodyBytes
    }

    func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        if maxHeaderBytes.bytes < 1024 { issues.append(.init(path: "\(path).maxHeaderBytes", "must be at least 1KiB")) }
        if maxURIBytes.bytes < 256 { issues.append(.init(path: "\(path).maxURIBytes", "must be at least 256B")) }
        if maxURIBytes > maxHeaderBytes {
            issues.append(.init(path: "\(path).maxURIBytes", "\(maxURIBytes) is larger than maxHeaderBytes (\(maxHeaderBytes))"))
        }
        return issues
    }
}

/// Timeouts on both sides of the proxy.
public struct TimeoutsConfiguration: Codable, Sendable, Equatable {
    /// A client must send a complete request head within this time. Default 10s.
    public var clientHeader: ConfigDuration
    /// A client sending a body must send something at least this often. Default 30s.
    public var clientBody: ConfigDuration
    /// Keep-alive connections with no request are closed after this. Default 60s.
    public var clientIdle: ConfigDuration
    /// Connecting to an instance. Default 2s.
    public var connect: ConfigDuration
    /// From sending a request without a body to its response head. Default 30s.
    public var firstByte: ConfigDuration
    /// Longest silence while reading an upstream response. Default 60s.
    public var idle: ConfigDuration
    /// Whole exchange with the upstream, body included. Default 5m.
    public var total: ConfigDuration
    /// On shutdown, how long in-flight requests may finish. Default 20s.
    public var shutdown: ConfigDuration

    public init(clientHeader: ConfigDuration = .seconds(10), clientBody: ConfigDuration = .seconds(30),
                clientIdle: ConfigDuration = .seconds(60), connect: ConfigDuration = .seconds(2),
                firstByte: ConfigDuration = .seconds(30), idle: ConfigDuration = .seconds(60),
                total: ConfigDuration = .seconds(300), shutdown: ConfigDuration = .seconds(20)) {
        self.clientHeader = clientHeader
        self.clientBody = clientBody
        self.clientIdle = clientIdle
        self.connect = connect
        self.firstByte = firstByte
        self.idle = idle
        self.total = total
        self.shutdown = shutdown
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case clientHeader, clientBody, clientIdle, connect, firstByte, idle, total, shutdown
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TimeoutsConfiguration()
        clientHeader = try c.decodeIfPresent(ConfigDuration.self, forKey: .clientHeader) ?? d.clientHeader
        clientBody = try c.decodeIfPresent(ConfigDuration.self, forKey: .clientBody) ?? d.clientBody
        clientIdle = try c.decodeIfPresent(ConfigDuration.self, forKey: .clientIdle) ?? d.clientIdle
        connect = try c.decodeIfPresent(ConfigDuration.self, forKey: .connect) ?? d.connect
        firstByte = try c.decodeIfPresent(ConfigDuration.self, forKey: .firstByte) ?? d.firstByte
        idle = try c.decodeIfPresent(ConfigDuration.self, forKey: .idle) ?? d.idle
        total = try c.decodeIfPresent(ConfigDuration.self, forKey: .total) ?? d.total
        shutdown = try c.decodeIfPresent(ConfigDuration.self, forKey: .shutdown) ?? d.shutdown
    }

    func validate(at path: String) -> [ConfigurationIssue] {
        let all: [(String, ConfigDuration)] = [("clientHeader", clientHeader), ("clientBody", clientBody), ("clientIdle", clientIdle),
                                               ("connect", connect), ("firstByte", firstByte), ("idle", idle), ("total", total),
                                               ("shutdown", shutdown)]
        var issues = all.filter { $0.1.duration <= .zero }.map { ConfigurationIssue(path: "\(path).\($0.0)", "must be positive") }
        if firstByte > total { issues.append(.init(path: "\(path).firstByte", "\(firstByte) is longer than total (\(total))")) }
        return issues
    }
}

/// Retrying a failed request on another instance.
public struct RetryConfiguration: Codable, Sendable, Equatable {
    /// Further attempts after the first; 0 turns retries off. Default 2.
    public var attempts: Int
    /// Upstream statuses that are retried (idempotent requests only). Default 502, 503, 504.
    public var statuses: [Int]
    /// Retries may add at most this share of the recent request rate. Default 0.2.
    public var budgetRatio: Double
    /// Retries always allowed per second, so a quiet gateway can still retry. Default 10.
    public var minRetriesPerSecond: Int

    public init(attempts: Int = 2, statuses: [Int] = [502, 503, 504], budgetRatio: Double = 0.2, minRetriesPerSecond: Int = 10) {
        self.attempts = attempts
        self.statuses = statuses
        self.budgetRatio = budgetRatio
        self.minRetriesPerSecond = minRetriesPerSecond
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case attempts, statuses, budgetRatio, minRetriesPerSecond }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = RetryConfiguration()
        attempts = try c.decodeIfPresent(Int.self, forKey: .attempts) ?? d.attempts
        statuses = try c.decodeIfPresent([Int].self, forKey: .statuses) ?? d.statuses
        budgetRatio = try c.decodeIfPresent(Double.self, forKey: .budgetRatio) ?? d.budgetRatio
        minRetriesPerSecond = try c.decodeIfPresent(Int.self, forKey: .minRetriesPerSecond) ?? d.minRetriesPerSecond
    }

    func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        if !(0...10).contains(attempts) { issues.append(.init(path: "\(path).attempts", "must be between 0 and 10")) }
        for (i, s) in statuses.enumerated() where !(500...599).contains(s) {
            issues.append(.init(path: "\(path).statuses[\(i)]", "only 5xx statuses can be retried, got \(s)"))
        }
        if !(0...1).contains(budgetRatio) { issues.append(.init(path: "\(path).budgetRatio", "must be between 0 and 1")) }
        if minRetriesPerSecond < 0 { issues.append(.init(path: "\(path).minRetriesPerSecond", "cannot be negative")) }
        return issues
    }
}
