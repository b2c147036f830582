public import Logging
public import RampartCore

/// Writes each event as one log line (`"log": "events"`, the event under `event`), for
/// development and for log pipelines that already ship the gateway's JSON log.
public struct LogSink: EventSink {
    public let name: String
    private let logger: Logger

    public init(name: String = "log", logger: Logger) {
        self.name = name
        var logger = logger
        logger[metadataKey: "log"] = "events"
        self.logger = logger
    }

    public func deliver(_ events: [Event]) async -> [DeliveryOutcome] {
        events.map { event in
            logger.info("event", metadata: ["sink": "\(name)", "event": "\(event.json.jsonText)"])
            return .delivered
        }
    }
}
