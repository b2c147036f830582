public import RampartCore

/// `events:` in rampart.yml.
///
/// ```yaml
/// events:
///   spool: /var/lib/rampart/events.sqlite   # the durable spool (SQLite, WAL); default rampart-events.sqlite
///   queue: 10000                  # events held in memory in front of the spool
///   overflow: drop-newest         # or drop-oldest: what a full queue does (counted and logged)
///   publish: [threats, flags, audit, deployments]   # what the gateway publishes; default all
///   sinks:
///     - name: siem
///       type: webhook
///       url: https://siem.example.com/hooks/rampart
///       secretEnv: RAMPART_SIEM_SECRET    # or secret: ...; signs Rampart-Signature
///       types: ["threat.*", "audit.*"]
///       retry: {initialDelay: 1s, multiplier: 2, maxDelay: 5m, maxAttempts: 8}
///     - name: stream
///       type: kafka                       # needs a build with the Kafka trait
///       brokers: [kafka-1:9092, kafka-2:9092]
///       topic: rampart-events
///     - name: dev
///       type: log
/// ```
public struct EventsConfiguration: Codable, Sendable, Equatable {
    /// What the gateway itself publishes.
    public enum Publisher: String, Codable, Sendable, CaseIterable {
        /// `threat.detected` for every threat event the shield records, and `alert.raised` for
        /// every alert it raises.
        case threats
        /// `flag.exposure` the first time a subject is served a variant of an experiment.
        case flags
        /// `audit.flag_changed` and `audit.config_reloaded`.
        case audit
        /// `deployment.instance_changed`: instances registered, drained, unregistered or
        /// re-weighted through the admin API.
        case deployments
    }

    public struct Sink: Codable, Sendable, Equatable {
        public enum Kind: String, Codable, Sendable, CaseIterable { case webhook, kafka, log }

        public var name: String
        public var type: Kind
        /// Event types it takes: exact, `prefix.*`, or `*` (the default).
        public var types: [String] = ["*"]
        public var retry = RetryPolicy()
        /// Events handed to the sink at once. Default 256.
        public var batchSize = 256

        // webhook
        public var url: String?
        /// The HMAC-SHA256 key for `Rampart-Signature`; `secretEnv` names a variable holding it.
        public var secret: String?
        public var secretEnv: String?
        public var timeout = ConfigDuration.seconds(10)
        /// Requests in flight at once (different partition keys). Default 8.
        public var concurrency = 8
        public var headers: [String: String] = [:]

        // kafka
        public var brokers: [String] = []
        public var topic: String?
        /// Create the topic with this many partitions at start when it does not exist.
        public var partitions: Int?
        /// librdkafka settings (`compression.type: lz4`, `message.timeout.ms: "30000"`, TLS
        /// and SASL); `enable.idempotence` and `acks` are always `true` and `all`.
        public var properties: [String: String] = [:]

        public init(name: String, type: Kind) {
            self.name = name
            self.type = type
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case name, type, types, retry, batchSize, url, secret, secretEnv, timeout, concurrency, headers, brokers, topic, partitions, properties
        }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(name: try c.decode(String.self, forKey: .name), type: try c.decode(Kind.self, forKey: .type))
            let d = self
            types = try c.decodeIfPresent([String].self, forKey: .types) ?? d.types
            retry = try c.decodeIfPresent(RetryPolicy.self, forKey: .retry) ?? d.retry
            batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
            url = try c.decodeIfPresent(String.self, forKey: .url)
            secret = try c.decodeIfPresent(String.self, forKey: .secret)
            secretEnv = try c.decodeIfPresent(String.self, forKey: .secretEnv)
            timeout = try c.decodeIfPresent(ConfigDuration.self, forKey: .timeout) ?? d.timeout
            concurrency = try c.decodeIfPresent(Int.self, forKey: .concurrency) ?? d.concurrency
            headers = try c.decodeIfPresent([String: String].self, forKey: .headers) ?? d.headers
            brokers = try c.decodeIfPresent([String].self, forKey: .brokers) ?? d.brokers
            topic = try c.decodeIfPresent(String.self, forKey: .topic)
            partitions = try c.decodeIfPresent(Int.self, forKey: .partitions)
            properties = try c.decodeIfPresent([String: String].self, forKey: .properties) ?? d.properties
        }

        func validate(at path: String) -> [ConfigurationIssue] {
            var issues = retry.validate(at: "\(path).retry")
            if name.isEmpty || !name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) {
                issues.append(.init(path: "\(path).name", "must be letters, digits, - and _, got \"\(name)\""))
            }
            if types.isEmpty { issues.append(.init(path: "\(path).types", "must name at least one type (\"*\" for all)")) }
            if !(1...10_000).contains(batchSize) { issues.append(.init(path: "\(path).batchSize", "must be 1 to 10000, got \(batchSize)")) }
            switch type {
            case .webhook:
                if let url {
                    if !(url.hasPrefix("http://") || url.hasPrefix("https://")) {
                        issues.append(.init(path: "\(path).url", "must be an http:// or https:// URL, got \"\(url)\""))
                    }
                } else {
                    issues.append(.init(path: "\(path).url", "is required for a webhook sink"))
                }
                if secret != nil && secretEnv != nil { issues.append(.init(path: "\(path).secret", "give secret or secretEnv, not both")) }
                if timeout.duration <= .zero { issues.append(.init(path: "\(path).timeout", "must be positive, got \(timeout)")) }
                if !(1...1_000).contains(concurrency) { issues.append(.init(path: "\(path).concurrency", "must be 1 to 1000, got \(concurrency)")) }
            case .kafka:
                if !EventsConfiguration.kafkaAvailable {
                    issues.append(.init(path: "\(path).type", "kafka sinks need a build with the Kafka trait (swift build --traits Kafka, with librdkafka-dev installed)"))
                }
                if brokers.isEmpty { issues.append(.init(path: "\(path).brokers", "is required for a kafka sink (host:port, ...)")) }
                if (topic ?? "").isEmpty { issues.append(.init(path: "\(path).topic", "is required for a kafka sink")) }
                if let partitions, partitions < 1 { issues.append(.init(path: "\(path).partitions", "must be at least 1, got \(partitions)")) }
                for key in ["enable.idempotence", "acks", "bootstrap.servers"] where properties[key] != nil {
                    issues.append(.init(path: "\(path).properties.\(key)", "is set by Rampart (idempotence on, acks=all, brokers from brokers:)"))
                }
            case .log:
                break
            }
            return issues
        }
    }

    /// The spool file; `:memory:` keeps it in memory (lost on restart: for tests and demos).
    public var spool = "rampart-events.sqlite"
    public var queue = 10_000
    public var overflow = OverflowPolicy.dropNewest
    public var publish = Set(Publisher.allCases)
    public var sinks: [Sink] = []

    public init(sinks: [Sink] = []) { self.sinks = sinks }

    enum CodingKeys: String, CodingKey, CaseIterable { case spool, queue, overflow, publish, sinks }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = EventsConfiguration()
        spool = try c.decodeIfPresent(String.self, forKey: .spool) ?? d.spool
        queue = try c.decodeIfPresent(Int.self, forKey: .queue) ?? d.queue
        overflow = try c.decodeIfPresent(OverflowPolicy.self, forKey: .overflow) ?? d.overflow
        publish = try c.decodeIfPresent(Set<Publisher>.self, forKey: .publish) ?? d.publish
        sinks = try c.decodeIfPresent([Sink].self, forKey: .sinks) ?? d.sinks
    }

    /// Every problem, at its path.
    public func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        if spool.isEmpty { issues.append(.init(path: "\(path).spool", "must be a file path or :memory:")) }
        if !(1...10_000_000).contains(queue) { issues.append(.init(path: "\(path).queue", "must be 1 to 10000000, got \(queue)")) }
        if sinks.isEmpty { issues.append(.init(path: "\(path).sinks", "must name at least one sink (webhook, kafka or log)")) }
        var names = Set<String>()
        for (index, sink) in sinks.enumerated() {
            issues += sink.validate(at: "\(path).sinks[\(index)]")
            if !names.insert(sink.name).inserted {
                issues.append(.init(path: "\(path).sinks[\(index)].name", "\"\(sink.name)\" is used by an earlier sink"))
            }
        }
        return issues
    }

    /// Whether this build can run Kafka sinks (the `Kafka` package trait).
    public static var kafkaAvailable: Bool {
        #if Kafka
        true
        #else
        false
        #endif
    }
}
