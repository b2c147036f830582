#if Kafka
public import Logging
import Foundation

/// Non-blocking retries for a consumed topic: a record whose handler fails moves to
/// `<topic>.retry.1`, is handled again after `delays[0]`, then `<topic>.retry.2` after
/// `delays[1]`, ..., and after the last retry to `<topic>.dlq`. The main topic never waits for
/// a failing record. Each moved record keeps its key, value and headers and carries:
///
/// | header | value |
/// | --- | --- |
/// | `rampart-original-topic`, `-partition`, `-offset` | where it was first consumed |
/// | `rampart-attempt` | failed attempts so far |
/// | `rampart-first-failure` | milliseconds since 1970 of the first failure |
/// | `rampart-last-error` | the handler's last error |
/// | `rampart-retry-due` | (retry topics) milliseconds since 1970 when it may be handled again |
public struct KafkaRetryTopics: Sendable, Equatable {
    public var topic: String
    /// One per retry topic, in order.
    public var delays: [Duration]

    public init(topic: String, delays: [Duration]) {
        self.topic = topic
        self.delays = delays
    }

    public func retryTopic(_ level: Int) -> String { "\(topic).retry.\(level)" }
    public var deadLetterTopic: String { "\(topic).dlq" }
    /// The main topic, then each retry topic.
    public var stages: [String] { [topic] + delays.indices.map { retryTopic($0 + 1) } }

    public enum Header {
        public static let originalTopic = "rampart-original-topic"
        public static let originalPartition = "rampart-original-partition"
        public static let originalOffset = "rampart-original-offset"
        public static let attempt = "rampart-attempt"
        public static let firstFailure = "rampart-first-failure"
        public static let lastError = "rampart-last-error"
        public static let retryDue = "rampart-retry-due"
        static let all: Set<String> = [originalTopic, originalPartition, originalOffset, attempt, firstFailure, lastError, retryDue]
    }

    /// The record to produce when handling `record`, consumed at `stage` (0 the main topic),
    /// failed with `error` at `now` (milliseconds since 1970).
    public func forward(_ record: KafkaRecord, stage: Int, error: String, now: Int64) -> KafkaRecord {
        let next = stage + 1
        let target = next <= delays.count ? retryTopic(next) : deadLetterTopic
        var headers = record.headers.filter { !Header.all.contains($0.name) }
        headers.append(KafkaHeader(Header.originalTopic, record.header(Header.originalTopic) ?? record.topic))
        headers.append(KafkaHeader(Header.originalPartition, record.header(Header.originalPartition) ?? String(record.partition)))
        headers.append(KafkaHeader(Header.originalOffset, record.header(Header.originalOffset) ?? String(record.offset)))
        headers.append(KafkaHeader(Header.attempt, String((record.header(Header.attempt).flatMap(Int.init) ?? 0) + 1)))
        headers.append(KafkaHeader(Header.firstFailure, record.header(Header.firstFailure) ?? String(now)))
        headers.append(KafkaHeader(Header.lastError, String(error.prefix(1_000))))
        if next <= delays.count {
            let delay = delays[next - 1].components
            headers.append(KafkaHeader(Header.retryDue, String(now + delay.seconds * 1000 + delay.attoseconds / 1_000_000_000_000_000)))
        }
        return KafkaRecord(topic: target, key: record.key, value: record.value, headers: headers)
    }

    /// A dead letter as its original topic gets it back on replay: its own headers only.
    public func replayed(_ record: KafkaRecord) -> KafkaRecord {
        KafkaRecord(topic: record.header(Header.originalTopic) ?? topic, key: record.key, value: record.value,
                    headers: record.headers.filter { !Header.all.contains($0.name) })
    }
}

/// Consumes a topic with a handler and non-blocking retry topics (`KafkaRetryTopics`). One
/// consumer per stage, each in a group of its own (`group`, `group.retry.1`, ...). A record's
/// offset is stored only after its handler succeeded or it was acknowledged on the next topic,
/// and stored offsets are committed every `commitEvery` records or second and when the
/// consumer stops, so a crash or a kill never skips a record (it may hand one over again).
public final class KafkaRetryingConsumer: Sendable {
    public let topics: KafkaRetryTopics
    let brokers: String
    let group: String
    let producer: KafkaProducer
    let properties: [String: String]
    let commitEvery: Int
    let logger: Logger

    public init(brokers: String, group: String, topics: KafkaRetryTopics, producer: KafkaProducer, properties: [String: String] = [:],
                commitEvery: Int = 100, logger: Logger) {
        self.brokers = brokers
        self.group = group
        self.topics = topics
        self.producer = producer
        self.properties = properties
        self.commitEvery = max(1, commitEvery)
        self.logger = logger
    }

    /// Rounded up, so that a due time made from it is never early.
    static func nowMilliseconds() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.up)) }

    /// Runs every stage until cancelled (or a stage fails to start), handing each record to `handler`.
    public func run(_ handler: @escaping @Sendable (KafkaRecord) async throws -> Void) async throws {
        try await producer.createTopics(topics.stages.dropFirst() + [topics.deadLetterTopic])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (stage, topic) in topics.stages.enumerated() {
                group.addTask { try await self.consume(stage: stage, topic: topic, handler) }
            }
            try await group.waitForAll()
        }
    }

    private func consume(stage: Int, topic: String, _ handler: @escaping @Sendable (KafkaRecord) async throws -> Void) async throws {
        let consumer = try KafkaConsumer(brokers: brokers, group: stage == 0 ? group : "\(group).retry.\(stage)", topics: [topic],
                                         properties: properties)
        var stored = 0
        var lastCommit = ContinuousClock.now
        func commit() async {
            guard stored > 0 else { return }
            do {
                try await consumer.commit()
                stored = 0
                lastCommit = .now
            } catch {
                logger.warning("Kafka commit failed; will retry", metadata: ["topic": "\(topic)", "error": "\(error)"])
            }
        }
        while !Task.isCancelled {
            let record: KafkaRecord?
            do {
                record = try await consumer.poll()
            } catch {
                // An error answers at once (an unknown topic, a broker down): wait before asking again.
                logger.warning("Kafka poll failed", metadata: ["topic": "\(topic)", "error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            guard let record else {
                await commit()
                continue
            }
            // A retry topic's records all wait the same delay, so they are due in their order:
            // waiting for the head holds back nothing that is due earlier.
            if let due = record.header(KafkaRetryTopics.Header.retryDue).flatMap(Int64.init) {
                let wait = due - Self.nowMilliseconds()
                if wait > 0 {
                    do { try await Task.sleep(for: .milliseconds(wait)) } catch { break }
                }
            }
            guard await handle(record, stage: stage, handler) else { break }
            do {
                try consumer.store(record)
                stored += 1
            } catch {
                logger.error("Kafka offset not stored; the record will be handed over again", metadata: ["topic": "\(topic)", "error": "\(error)"])
            }
            if stored >= commitEvery || ContinuousClock.now - lastCommit > .seconds(1) { await commit() }
        }
        await commit()
        await consumer.close()
    }

    /// Handles `record`, moving it on when the handler fails; false when cancelled before it
    /// was handled or moved (its offset must not be stored).
    private func handle(_ record: KafkaRecord, stage: Int, _ handler: @escaping @Sendable (KafkaRecord) async throws -> Void) async -> Bool {
        do {
            try await handler(record)
            return true
        } catch {
            if Task.isCancelled { return false }
            let forwarded = topics.forward(record, stage: stage, error: "\(error)", now: Self.nowMilliseconds())
            // The record must reach the next topic before its offset is stored: keep trying.
            var pause = Duration.milliseconds(100)
            while !Task.isCancelled {
                do {
                    try await producer.send(forwarded)
                    if forwarded.topic == topics.deadLetterTopic {
                        EventMetrics.kafkaDeadLettered(topic: topics.topic)
                        logger.warning("Kafka record moved to the dead-letter topic", metadata: [
                            "topic": "\(topics.topic)", "attempts": "\(forwarded.header(KafkaRetryTopics.Header.attempt) ?? "?")", "error": "\(error)",
                        ])
                    } else {
                        EventMetrics.kafkaRetried(topic: topics.topic, attempt: stage + 1)
                    }
                    return true
                } catch let sendError {
                    logger.warning("Kafka record not moved on yet; will retry", metadata: ["to": "\(forwarded.topic)", "error": "\(sendError)"])
                    try? await Task.sleep(for: pause)
                    pause = min(pause * 2, .seconds(5))
                }
            }
            return false
        }
    }

    /// Moves dead letters back to their original topic, until none came for `idle` after the
    /// group assigned the topic (nothing is moved if the group never does); returns
    /// how many. `accept` chooses which (the others are skipped and stay committed as read).
    public func replayDeadLetters(idle: Duration = .seconds(5), accept: @Sendable (KafkaRecord) -> Bool = { _ in true }) async throws -> Int {
        let consumer = try KafkaConsumer(brokers: brokers, group: "\(group).replay", topics: [topics.deadLetterTopic], properties: properties)
        var replayed = 0
        let started = ContinuousClock.now
        var quietSince = started
        var failure: (any Error)?
        do {
            while ContinuousClock.now - quietSince < idle, !Task.isCancelled {
                guard let record = try await consumer.poll() else {
                    // Quiet only counts once the group has assigned the topic's partitions.
                    if !consumer.isAssigned {
                        guard ContinuousClock.now - started < .seconds(60) else {
                            throw KafkaError(message: "no partition of \(topics.deadLetterTopic) assigned within 60 seconds")
                        }
                        quietSince = .now
                    }
                    continue
                }
                quietSince = .now
                if accept(record) {
                    try await producer.send(topics.replayed(record))
                    replayed += 1
                }
                try consumer.store(record)
            }
        } catch {
            failure = error
        }
        // What was moved is committed however the loop ended, so it is not moved twice.
        do { try await consumer.commit() } catch { failure = failure ?? error }
        await consumer.close()
        EventMetrics.kafkaReplayed(topic: topics.topic, replayed)
        if let failure { throw failure }
        return replayed
    }
}
#endif
