#if Kafka
public import RampartCore

/// Produces each event to a Kafka topic: the partition key as the record key (so one key's
/// events stay in one partition, in order), `Event.json` as the value, and the id, type and
/// source as headers. Idempotence and `acks=all` come from `KafkaProducer`. A record the
/// broker refuses for itself (too large, not allowed) is permanent; everything else (the
/// broker unreachable, `message.timeout.ms` passed) is retried by the spool.
public struct KafkaSink: EventSink {
    public let name: String
    public let topic: String
    let producer: KafkaProducer

    public init(name: String, topic: String, producer: KafkaProducer) {
        self.name = name
        self.topic = topic
        self.producer = producer
    }

    public static func record(_ event: Event, topic: String) -> KafkaRecord {
        KafkaRecord(topic: topic, key: event.partitionKey.map { Array($0.utf8) }, value: Array(event.json.jsonText.utf8), headers: [
            KafkaHeader("rampart-event-id", event.id), KafkaHeader("rampart-event-type", event.type),
            KafkaHeader("rampart-event-source", event.source), KafkaHeader("content-type", "application/json"),
        ])
    }

    public func deliver(_ events: [Event]) async -> [DeliveryOutcome] {
        await producer.send(events.map { Self.record($0, topic: topic) }).map { result in
            switch result {
            case .success: return .delivered
            case .failure(let error as KafkaError):
                return .failed(DeliveryFailure(kind: error.isPermanent ? "rejected" : "broker", message: "Kafka \(topic): \(error.message)",
                                               retryable: !error.isPermanent))
            case .failure(let error):
                return .failed(DeliveryFailure(kind: "broker", message: "Kafka \(topic): \(error)", retryable: true))
            }
        }
    }
}
#endif
