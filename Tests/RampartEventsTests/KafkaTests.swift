#if Kafka
import Foundation
import RampartCore
import RampartEvents
import RampartStore
import RampartTesting
import Synchronization
import Testing

let kafkaBrokers = ProcessInfo.processInfo.environment["RAMPART_TEST_KAFKA_BROKERS"]

/// Consumer settings that make a group join take about three seconds on Tansu (its join waits
/// half the session timeout) and that a real broker also accepts.
let testConsumerProperties = ["session.timeout.ms": "6000", "heartbeat.interval.ms": "500", "max.poll.interval.ms": "10000"]

/// A value shared by test tasks.
final class Locked<Value: Sendable>: Sendable {
    private let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
    func withLock<T>(_ body: (inout Value) -> T) -> T { value.withLock { body(&$0) } }
}

func uniqueName(_ prefix: String) -> String { "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())" }

/// Reads `topic` from the start until `count` distinct values came or `limit` passed.
func consume(_ topic: String, brokers: String, count: Int, within limit: Duration = .seconds(60)) async throws -> [KafkaRecord] {
    let consumer = try KafkaConsumer(brokers: brokers, group: uniqueName("reader"), topics: [topic], properties: testConsumerProperties)
    var records: [KafkaRecord] = []
    var values = Set<[UInt8]>()
    let deadline = ContinuousClock.now + limit
    while values.count < count, ContinuousClock.now < deadline {
        if let record = try await consumer.poll() {
            records.append(record)
            values.insert(record.value)
        }
    }
    await consumer.close()
    return records
}

@Suite("Kafka", .enabled(if: kafkaBrokers != nil, "set RAMPART_TEST_KAFKA_BROKERS (scripts/services.sh start kafka)"), .serialized)
struct KafkaTests {
    init() throws {
        try #require(Librdkafka.isAtLeast2_2, "librdkafka \(Librdkafka.version) < 2.2.0: source the services env file (LD_LIBRARY_PATH)")
    }

    @Test("the sink produces every event with its key and headers, in order per key")
    func sink() async throws {
        let brokers = try #require(kafkaBrokers)
        let topic = uniqueName("events")
        let sink = try KafkaSink(name: "kafka", topic: topic, brokers: brokers, properties: ["message.timeout.ms": "10000"])
        defer { sink.close() }
        try await sink.createTopic(partitions: 3)
        let delivery = EventDelivery(spool: try memorySpool(), routes: [SinkRoute(sink: sink)],
                                     clock: { Date().timeIntervalSince1970 }, logger: quietLogger)
        let events = (0..<600).map { testEvent("k\($0)", key: "user-\($0 % 7)") }
        await running(delivery) {
            for event in events { delivery.bus.publish(event) }
            #expect(await waitUntil { (try? delivery.spool.depth(sink: nil)) == 0 && delivery.bus.queued == 0 })
        }
        let records = try await consume(topic, brokers: brokers, count: events.count)
        #expect(records.count == events.count)
        var byKey: [String: [Int]] = [:]
        for record in records {
            let event = try #require(Event(json: try JSONValue(parsing: String(decoding: record.value, as: UTF8.self))))
            #expect(record.key.map { String(decoding: $0, as: UTF8.self) } == event.partitionKey)
            #expect(record.header("rampart-event-id") == event.id && record.header("rampart-event-type") == event.type)
            byKey[event.partitionKey!, default: []].append(Int(event.id.dropFirst())!)
        }
        for (key, numbers) in byKey { #expect(numbers == numbers.sorted(), "\(key) in order") }
    }

    @Test("a failing handler sends a record through each retry topic after its delay, then to the dead-letter topic; replay brings it back")
    func retryTopics() async throws {
        let brokers = try #require(kafkaBrokers)
        let topics = KafkaRetryTopics(topic: uniqueName("orders"), delays: [.milliseconds(1_000), .milliseconds(2_000)])
        let producer = try KafkaProducer(brokers: brokers, properties: ["message.timeout.ms": "10000"])
        defer { producer.close() }
        try await producer.createTopics([topics.topic])
        let consumer = KafkaRetryingConsumer(brokers: brokers, group: uniqueName("group"), topics: topics, producer: producer,
                                             properties: testConsumerProperties, logger: quietLogger)
        let healed = Atomic<Bool>(false)
        let seen = Mutex<[(value: String, topic: String, at: ContinuousClock.Instant)]>([])
        let task = Task {
            try await consumer.run { record in
                let value = String(decoding: record.value, as: UTF8.self)
                seen.withLock { $0.append((value, record.topic, .now)) }
                if value == "poison", !healed.load(ordering: .relaxed) { throw DeliveryFailure(kind: "test", message: "cannot handle poison", retryable: true) }
            }
        }
        defer { task.cancel() }
        let original = try await producer.send(KafkaRecord(topic: topics.topic, key: Array("k".utf8), value: Array("poison".utf8),
                                                           headers: [KafkaHeader("trace", "abc")]))
        try await producer.send(KafkaRecord(topic: topics.topic, key: Array("k".utf8), value: Array("fine".utf8)))
        // The main topic does not wait for the failing record.
        #expect(await waitUntil(within: .seconds(30)) { seen.withLock { $0.contains { $0.value == "fine" } } })
        let dead = try await consume(topics.deadLetterTopic, brokers: brokers, count: 1)
        let letter = try #require(dead.first)
        let attempts = seen.withLock { $0.filter { $0.value == "poison" } }
        #expect(attempts.map(\.topic) == [topics.topic, topics.retryTopic(1), topics.retryTopic(2)])
        if attempts.count == 3 {
            // The due time is wall-clock milliseconds; the gaps here are on the monotonic clock.
            #expect(attempts[1].at - attempts[0].at >= .milliseconds(995))
            #expect(attempts[2].at - attempts[1].at >= .milliseconds(1_995))
            #expect(attempts[2].at - attempts[0].at < .seconds(20))
        }
        #expect(letter.header("rampart-original-topic") == topics.topic)
        #expect(letter.header("rampart-original-partition") == String(original.partition))
        #expect(letter.header("rampart-original-offset") == String(original.offset))
        #expect(letter.header("rampart-attempt") == "3")
        #expect(letter.header("rampart-last-error") == "cannot handle poison")
        #expect(letter.header("rampart-first-failure").flatMap(Int64.init) != nil)
        #expect(letter.header("trace") == "abc" && letter.key == Array("k".utf8) && letter.value == Array("poison".utf8))
        healed.store(true, ordering: .relaxed)
        #expect(try await consumer.replayDeadLetters(idle: .seconds(2)) == 1)
        #expect(await waitUntil(within: .seconds(30)) { seen.withLock { $0.filter { $0.value == "poison" }.count == 4 } })
        #expect(seen.withLock { $0.last { $0.value == "poison" }?.topic } == topics.topic)
    }

    @Test("a consumer stopped in the middle resumes where its group committed: no record lost or skipped")
    func resumes() async throws {
        let brokers = try #require(kafkaBrokers)
        let topics = KafkaRetryTopics(topic: uniqueName("resume"), delays: [])
        let group = uniqueName("group")
        let producer = try KafkaProducer(brokers: brokers, properties: ["message.timeout.ms": "10000"])
        defer { producer.close() }
        try await producer.createTopics([topics.topic], partitions: 2)
        let results = await producer.send((0..<300).map { KafkaRecord(topic: topics.topic, key: Array("k\($0 % 5)".utf8), value: Array("\($0)".utf8)) })
        #expect(results.allSatisfy { if case .success = $0 { true } else { false } })
        let handled = Locked<[Int]>([])
        let consumer: @Sendable () -> KafkaRetryingConsumer = {
            KafkaRetryingConsumer(brokers: brokers, group: group, topics: topics, producer: producer, properties: testConsumerProperties,
                                  commitEvery: 25, logger: quietLogger)
        }
        // The first stops in its 121st handler, which never finishes.
        let first = Task {
            try await consumer().run { record in
                let count = handled.withLock { $0.count }
                if count >= 120 { try await Task.sleep(for: .seconds(3_600)) }
                handled.withLock { $0.append(Int(String(decoding: record.value, as: UTF8.self))!) }
            }
        }
        #expect(await waitUntil(within: .seconds(60)) { handled.withLock { $0.count } >= 120 })
        first.cancel()
        _ = try? await first.value
        let second = Task {
            try await consumer().run { record in handled.withLock { $0.append(Int(String(decoding: record.value, as: UTF8.self))!) } }
        }
        defer { second.cancel() }
        #expect(await waitUntil(within: .seconds(60)) { Set(handled.withLock { $0 }).count == 300 })
        let all = handled.withLock { $0 }
        #expect(Set(all) == Set(0..<300), "none lost or skipped")
        #expect(all.count - 300 <= 25, "at most the uncommitted ones again: \(all.count - 300)")
    }
}
#endif

#if Kafka
@Suite("Kafka broker outage", .enabled(if: KafkaBrokerProcess.executable != nil, "set RAMPART_TANSU_BIN (scripts/services.sh start kafka)"))
struct KafkaOutageTests {
    @Test("the broker frozen for 30 seconds under a steady publish rate: nothing lost, all delivered after, in order per key")
    func brokerStopped() async throws {
        try #require(Librdkafka.isAtLeast2_2, "librdkafka \(Librdkafka.version) < 2.2.0: source the services env file (LD_LIBRARY_PATH)")
        let broker = try await KafkaBrokerProcess()
        defer { broker.signal(SIGCONT) }
        let topic = uniqueName("outage")
        let sink = try KafkaSink(name: "kafka", topic: topic, brokers: broker.brokers, properties: ["message.timeout.ms": "5000"])
        defer { sink.close() }
        try await sink.createTopic(partitions: 3)
        let spool = try memorySpool()
        let retry = RetryPolicy(initialDelay: .milliseconds(200), multiplier: 2, maxDelay: .seconds(2), maxAttempts: 1_000)
        let delivery = EventDelivery(spool: spool, routes: [SinkRoute(sink: sink, retry: retry)],
                                     clock: { Date().timeIntervalSince1970 }, logger: quietLogger)
        let published = Locked(0)
        try await running(delivery) {
            // 40 events a second over five keys: 5 s before the outage, 30 s during it, 5 s after.
            let clock = ContinuousClock()
            let start = clock.now
            var frozen = false, thawed = false
            while clock.now - start < .seconds(40) {
                let n = published.withLock { count -> Int in
                    defer { count += 1 }
                    return count
                }
                #expect(delivery.bus.publish(testEvent("o\(n)", key: "key-\(n % 5)")))
                if !frozen, clock.now - start >= .seconds(5) {
                    broker.signal(SIGSTOP)
                    frozen = true
                }
                if !thawed, clock.now - start >= .seconds(35) {
                    broker.signal(SIGCONT)
                    thawed = true
                }
                try await Task.sleep(until: start + .milliseconds(25 * (n + 1)))
            }
            #expect(await waitUntil(within: .seconds(90)) { delivery.bus.queued == 0 && (try? spool.depth(sink: nil)) == 0 })
        }
        let count = published.withLock { $0 }
        let records = try await consume(topic, brokers: broker.brokers, count: count, within: .seconds(60))
        var seen = Set<Int>()
        var order: [String: [Int]] = [:]
        for record in records {
            let event = try #require(Event(json: try JSONValue(parsing: String(decoding: record.value, as: UTF8.self))))
            let n = Int(event.id.dropFirst())!
            if seen.insert(n).inserted { order[event.partitionKey!, default: []].append(n) }
        }
        let missing = Set(0..<count).subtracting(seen)
        #expect(missing.isEmpty, "every published event is on the topic: \(missing.count) of \(count) missing, first \(missing.sorted().prefix(5))")
        for (key, numbers) in order { #expect(numbers == numbers.sorted(), "\(key) in order") }
        print("broker outage: \(count) published, \(records.count) records on the topic, \(records.count - seen.count) duplicates")
        await broker.stop()
    }
}
#endif
