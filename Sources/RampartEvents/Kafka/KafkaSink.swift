#if Kafka
import Foundation
public import RampartCore
import Synchronization

/// Produces each event to a Kafka topic: the partition key as the record key (so one key's
/// events stay in one partition, in order), `Event.json` as the value, and the id, type and
/// source as headers. Idempotence and `acks=all` come from `KafkaProducer`. A record the
/// broker refuses for itself (too large, not allowed) is permanent; everything else (the
/// broker unreachable, `message.timeout.ms` passed) is retried by the spool.
///
/// The sink replaces its producer when the producer reports a fatal error, or when every send
/// has failed for `resetAfter` (twice `message.timeout.ms` by default): an idempotent producer
/// whose messages timed out must bump its epoch with the broker before it sends again, and a
/// broker that cannot do that (Tansu, for one) would otherwise never get another message.
public final class KafkaSink: EventSink {
    public let name: String
    public let topic: String
    let brokers: String
    let properties: [String: String]
    let resetAfter: Duration
    private struct State {
        var producer: KafkaProducer
        var failingSince: ContinuousClock.Instant?
    }
    private let state: Mutex<State>

    public init(name: String, topic: String, brokers: String, properties: [String: String] = [:], resetAfter: Duration? = nil) throws {
        self.name = name
        self.topic = topic
        self.brokers = brokers
        self.properties = properties
        let timeout = Int(properties["message.timeout.ms"] ?? KafkaProducer.defaults["message.timeout.ms"] ?? "") ?? 30_000
        self.resetAfter = resetAfter ?? .milliseconds(2 * timeout)
        state = Mutex(State(producer: try KafkaProducer(brokers: brokers, properties: properties)))
    }

    /// Creates the sink's topic if it does not exist (`partitions` partitions).
    public func createTopic(partitions: Int) async throws {
        try await state.withLock { $0.producer }.createTopics([topic], partitions: partitions)
    }

    public static func record(_ event: Event, topic: String) -> KafkaRecord {
        KafkaRecord(topic: topic, key: event.partitionKey.map { Array($0.utf8) }, value: Array(event.json.jsonText.utf8), headers: [
            KafkaHeader("rampart-event-id", event.id), KafkaHeader("rampart-event-type", event.type),
            KafkaHeader("rampart-event-source", event.source), KafkaHeader("content-type", "application/json"),
        ])
    }

    public func deliver(_ events: [Event]) async -> [DeliveryOutcome] {
        let producer = state.withLock { $0.producer }
        let outcomes = await producer.send(events.map { Self.record($0, topic: topic) }).map { result -> DeliveryOutcome in
            switch result {
            case .success: return .delivered
            case .failure(let error as KafkaError):
                return .failed(DeliveryFailure(kind: error.isPermanent ? "rejected" : "broker", message: "Kafka \(topic): \(error.message)",
                                               retryable: !error.isPermanent))
            case .failure(let error):
                return .failed(DeliveryFailure(kind: "broker", message: "Kafka \(topic): \(error)", retryable: true))
            }
        }
        let failedAll = !outcomes.contains(.delivered)
        let now = ContinuousClock.now
        let replace = state.withLock { s -> Bool in
            guard s.producer === producer else { return false }
            if !failedAll {
                s.failingSince = nil
                return false
            }
            let since = s.failingSince ?? now
            s.failingSince = since
            return producer.fatalError != nil || now - since >= resetAfter
        }
        if replace { replaceProducer(producer) }
        return outcomes
    }

    private func replaceProducer(_ old: KafkaProducer) {
        guard let fresh = try? KafkaProducer(brokers: brokers, properties: properties) else { return }
        let swapped = state.withLock { s -> Bool in
            guard s.producer === old else { return false }
            s.producer = fresh
            s.failingSince = nil
            return true
        }
        // Closing blocks (a flush, then joining the report thread): off the concurrency pool.
        let retired = swapped ? old : fresh
        Thread.detachNewThread { retired.close(timeout: .seconds(1)) }
    }

    /// Flushes and frees the producer; the sink must not be used after.
    public func close() {
        state.withLock { $0.producer }.close()
    }
}
#endif
