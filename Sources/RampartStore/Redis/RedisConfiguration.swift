public import RampartCore

/// `redis:` in rampart.yml (or `REDIS_URL`): where the shared Redis is and how the client
/// talks to it.
///
/// ```yaml
/// redis:
///   url: redis://:secret@127.0.0.1:6379/0
///   poolSize: 4
///   commandTimeout: 250ms
/// ```
public struct RedisConfiguration: Codable, Sendable, Equatable {
    /// `redis://[[user]:password@]host[:port][/db]`. A password here is a secret: it is
    /// never printed (see `redactedURL`).
    public var url: String
    /// Connections kept open; commands are spread over them and pipelined on each.
    public var poolSize = 4
    public var connectTimeout = ConfigDuration.milliseconds(500)
    /// A command not answered within this fails, and its connection is closed (a late
    /// answer would otherwise be taken for the next command's).
    public var commandTimeout = ConfigDuration.milliseconds(250)
    /// After a failed connection attempt the next waits this long, doubling up to
    /// `maxReconnectDelay`; commands meanwhile fail at once rather than wait.
    public var reconnectDelay = ConfigDuration.milliseconds(100)
    public var maxReconnectDelay = ConfigDuration.seconds(5)
    /// 2 (RESP2, every Redis) or 3 (RESP3 through HELLO, Redis 6 and later).
    public var `protocol` = 2

    public init(url: String) { self.url = url }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case url, poolSize, connectTimeout, commandTimeout, reconnectDelay, maxReconnectDelay, `protocol`
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var d = RedisConfiguration(url: try c.decode(String.self, forKey: .url))
        d.poolSize = try c.decodeIfPresent(Int.self, forKey: .poolSize) ?? d.poolSize
        d.connectTimeout = try c.decodeIfPresent(ConfigDuration.self, forKey: .connectTimeout) ?? d.connectTimeout
        d.commandTimeout = try c.decodeIfPresent(ConfigDuration.self, forKey: .commandTimeout) ?? d.commandTimeout
        d.reconnectDelay = try c.decodeIfPresent(ConfigDuration.self, forKey: .reconnectDelay) ?? d.reconnectDelay
        d.maxReconnectDelay = try c.decodeIfPresent(ConfigDuration.self, forKey: .maxReconnectDelay) ?? d.maxReconnectDelay
        d.protocol = try c.decodeIfPresent(Int.self, forKey: .protocol) ?? d.protocol
        self = d
    }

    /// The parts of `url`.
    public struct Endpoint: Sendable, Equatable {
        public var host: String
        public var port: Int
        public var username: String?
        public var password: String?
        public var database: Int

        public init(host: String, port: Int, username: String?, password: String?, database: Int) {
            self.host = host
            self.port = port
            self.username = username
            self.password = password
            self.database = database
        }
    }

    /// Parses `url`, or says what is wrong with it.
    public func endpoint() throws(ConfigurationIssue) -> Endpoint {
        try Self.parse(url)
    }

    static func parse(_ url: String) throws(ConfigurationIssue) -> Endpoint {
        func issue(_ message: String) -> ConfigurationIssue { ConfigurationIssue(path: "redis.url", message) }
        guard url.hasPrefix("redis://") else {
            if url.hasPrefix("rediss://") { throw issue("TLS to Redis (rediss://) is not supported yet; use redis:// on a trusted network") }
            throw issue("must start with redis://, got \"\(Self.redact(url))\"")
        }
        let parts: ServiceURL
        do throws(ServiceURLProblem) {
            parts = try ServiceURL.parse(url)
        } catch {
            throw issue(error.problem)
        }
        guard parts.query.isEmpty else { throw issue("takes no query parameters") }
        // `redis://secret@host`: a bare credential is the password, as redis-cli takes it.
        let (username, password) = parts.password == nil ? (nil, parts.username) : (parts.username, parts.password)
        var database = 0
        if !parts.path.isEmpty {
            guard let number = Int(parts.path), number >= 0 else { throw issue("database must be a number, got \"\(parts.path)\"") }
            database = number
        }
        return Endpoint(host: parts.host, port: parts.port ?? 6379, username: username, password: password, database: database)
    }

    /// `url` with any password replaced by `***`, for logs and `rampart check`.
    public var redactedURL: String { Self.redact(url) }

    static func redact(_ url: String) -> String { ServiceURL.redact(url) }

    public func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        do { _ = try endpoint() } catch { issues.append(ConfigurationIssue(path: "\(path).url", error.problem)) }
        if !(1...256).contains(poolSize) { issues.append(.init(path: "\(path).poolSize", "must be 1-256, got \(poolSize)")) }
        if connectTimeout.duration <= .zero { issues.append(.init(path: "\(path).connectTimeout", "must be longer than zero")) }
        if commandTimeout.duration <= .zero { issues.append(.init(path: "\(path).commandTimeout", "must be longer than zero")) }
        if reconnectDelay.duration <= .zero { issues.append(.init(path: "\(path).reconnectDelay", "must be longer than zero")) }
        if maxReconnectDelay < reconnectDelay { issues.append(.init(path: "\(path).maxReconnectDelay", "must be at least reconnectDelay (\(reconnectDelay)), got \(maxReconnectDelay)")) }
        if self.protocol != 2 && self.protocol != 3 { issues.append(.init(path: "\(path).protocol", "must be 2 or 3, got \(self.protocol)")) }
        return issues
    }
}
