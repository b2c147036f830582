import AsyncHTTPClient
import Logging
import RampartCore
public import RampartEvents
import RampartStore
import ServiceLifecycle

/// Event delivery as the gateway runs it (`events:`): the spool, the configured sinks, and
/// which of the gateway's own events are published.
public final class EventsRuntime: Sendable {
    public let delivery: EventDelivery
    let configuration: EventsConfiguration
    /// Runs before delivery starts (Kafka topics to create).
    private let preparations: [@Sendable () async throws -> Void]
    /// Runs once delivery has stopped (Kafka producers to flush and free).
    private let closers: [@Sendable () -> Void]
    private let logger: Logger

    /// - Throws: `ConfigurationError` naming `events.spool` or the sink that cannot be set up.
    init(_ configuration: EventsConfiguration, client: HTTPClient, logger: Logger, now: @escaping @Sendable () -> Double) throws(ConfigurationError) {
        var logger = logger
        logger[metadataKey: "component"] = "events"
        self.logger = logger
        self.configuration = configuration
        let spool: SQLiteEventSpool
        do {
            spool = SQLiteEventSpool(database: try SQLiteDatabase(path: configuration.spool))
        } catch {
            throw ConfigurationError(issues: [.init(path: "events.spool", "cannot open \(configuration.spool) (\(error))")])
        }
        var routes: [SinkRoute] = []
        var preparations: [@Sendable () async throws -> Void] = []
        var closers: [@Sendable () -> Void] = []
        for (index, sink) in configuration.sinks.enumerated() {
            let made: any EventSink
            switch sink.type {
            case .log:
                made = LogSink(name: sink.name, logger: logger)
            case .webhook:
                made = WebhookSink(name: sink.name, url: sink.url ?? "", secret: sink.secret, timeout: sink.timeout.duration,
                                   concurrency: sink.concurrency, headers: sink.headers, client: client, now: now)
            case .kafka:
                #if Kafka
                let kafka: KafkaSink
                do {
                    kafka = try KafkaSink(name: sink.name, topic: sink.topic ?? "", brokers: sink.brokers.joined(separator: ","), properties: sink.properties)
                } catch {
                    throw ConfigurationError(issues: [.init(path: "events.sinks[\(index)]", "cannot create the Kafka producer: \(error)")])
                }
                if let partitions = sink.partitions { preparations.append { try await kafka.createTopic(partitions: partitions) } }
                closers.append { kafka.close() }
                made = kafka
                #else
                throw ConfigurationError(issues: [.init(path: "events.sinks[\(index)].type", "kafka sinks need a build with the Kafka trait")])
                #endif
            }
            routes.append(SinkRoute(sink: made, types: EventTypeFilter(sink.types), retry: sink.retry, batchSize: sink.batchSize))
        }
        self.preparations = preparations
        self.closers = closers
        delivery = EventDelivery(spool: spool, routes: routes, queueCapacity: configuration.queue, overflow: configuration.overflow,
                                 clock: now, logger: logger)
        if configuration.spool == ":memory:" {
            logger.warning("events: the spool is in memory; events not yet delivered are lost when the gateway stops")
        }
    }

    /// The bus, when the gateway publishes `publisher`'s events.
    func publisher(_ publisher: EventsConfiguration.Publisher) -> (any EventPublishing)? {
        configuration.publish.contains(publisher) ? delivery.bus : nil
    }

    func run() async {
        for prepare in preparations {
            do { try await prepare() } catch { logger.error("events: a sink could not be prepared; delivery will retry", metadata: ["error": "\(error)"]) }
        }
        await delivery.run()
        for close in closers { close() }
    }
}

/// Runs event delivery for as long as the gateway runs; on shutdown the bus writes what it
/// still holds to the spool.
struct EventsService: Service {
    let runtime: EventsRuntime

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await runtime.run()
        }
    }
}
