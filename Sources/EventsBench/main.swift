// Event delivery, measured in one run (scripts/bench-events.sh runs it next to its anchors):
//   publish   ns per EventBus.publish (the request path's cost) and the spool's write rate
//             draining that queue; publishDurably latency for one event (a SQLite commit).
//   webhook   events per second from the spool to a webhook URL (nginx answering 204).
//   kafka     events per second from the spool to a Kafka topic (acks=all, idempotence);
//             needs the Kafka trait.
// Usage: EventsBench publish N | webhook URL N | kafka BROKERS N
import AsyncHTTPClient
import Foundation
import Logging
import RampartCore
import RampartEvents
import RampartStore

let arguments = CommandLine.arguments.dropFirst().map { $0 }
guard arguments.count >= 2, let count = Int(arguments.last!) else {
    print("usage: EventsBench publish N | webhook URL N | kafka BROKERS N")
    exit(2)
}
let logger: Logger = {
    var logger = Logger(label: "events-bench")
    logger.logLevel = .error
    return logger
}()
let clock: @Sendable () -> Double = { Date().timeIntervalSince1970 }

func spoolFile() throws -> SQLiteEventSpool {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("events-bench-\(UUID().uuidString).sqlite").path
    return SQLiteEventSpool(database: try SQLiteDatabase(path: path))
}

func events(_ count: Int, keys: Int = 64) -> [Event] {
    (0..<count).map { n in
        Event(id: "e\(n)-\(UUID().uuidString.prefix(8))", type: "bench.event", time: clock(), source: "bench", partitionKey: "user-\(n % keys)",
              payload: ["quiz": .string("q\(n % 1000)"), "score": .number(Double(n % 100)), "tags": ["a", "b"]])
    }
}

/// Seconds from the first publish until every event is delivered.
func drain(_ sink: any EventSink, _ count: Int) async throws -> Double {
    let spool = try spoolFile()
    let delivery = EventDelivery(spool: spool, routes: [SinkRoute(sink: sink, batchSize: 1_000)], queueCapacity: count, clock: clock, logger: logger)
    let task = Task { await delivery.run() }
    let prepared = events(count)
    let started = ContinuousClock.now
    for event in prepared { delivery.bus.publish(event) }
    while try delivery.bus.queued > 0 || spool.depth(sink: nil) > 0 {
        try await Task.sleep(for: .milliseconds(5))
    }
    let seconds = (ContinuousClock.now - started).secondsValue
    task.cancel()
    await task.value
    return seconds
}

func webhook(_ url: String, _ count: Int) async throws -> Double {
    let client = HTTPClient(eventLoopGroupProvider: .singleton)
    let sink = WebhookSink(name: "hook", url: url, secret: "bench-secret", concurrency: 64, client: client, now: clock)
    let seconds = try await drain(sink, count)
    try await client.shutdown()
    return seconds
}

switch arguments[0] {
case "publish":
    let spool = try spoolFile()
    let bus = EventBus(spool: spool, capacity: count, overflow: .dropNewest, route: { _ in ["sink"] }, clock: clock, logger: logger)
    let prepared = events(count)
    let started = ContinuousClock.now
    for event in prepared { bus.publish(event) }
    let publishing = (ContinuousClock.now - started).secondsValue
    let writer = Task { await bus.run() }
    while bus.queued > 0 { try await Task.sleep(for: .milliseconds(2)) }
    let written = (ContinuousClock.now - started).secondsValue
    // One event at a time, each acknowledged after its commit.
    var latencies: [Double] = []
    for event in events(2_000) {
        let one = ContinuousClock.now
        try await bus.publishDurably([event])
        latencies.append((ContinuousClock.now - one).secondsValue)
    }
    writer.cancel()
    latencies.sort()
    print(String(format: "publish: %.0f ns per event (%d events, queue only)", publishing / Double(count) * 1e9, count))
    print(String(format: "spool writes: %.0f events/s (queue drained %.2f s after the first publish)", Double(count) / written, written))
    print(String(format: "publishDurably, one event: p50 %.0f µs, p99 %.0f µs", latencies[latencies.count / 2] * 1e6, latencies[latencies.count * 99 / 100] * 1e6))
case "webhook":
    let seconds = try await webhook(arguments[1], count)
    print(String(format: "webhook: %d events in %.2f s, %.0f events/s", count, seconds, Double(count) / seconds))
case "kafka":
    #if Kafka
    let sink = try KafkaSink(name: "kafka", topic: "bench-\(UUID().uuidString.prefix(8))", brokers: arguments[1])
    try await sink.createTopic(partitions: 4)
    let seconds = try await drain(sink, count)
    sink.close()
    print(String(format: "kafka: %d events in %.2f s, %.0f events/s", count, seconds, Double(count) / seconds))
    #else
    print("kafka: this build has no Kafka support (build with --traits Kafka)")
    exit(2)
    #endif
default:
    print("usage: EventsBench publish N | webhook URL N | kafka BROKERS N")
    exit(2)
}
