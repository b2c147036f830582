import Foundation
import Logging
import RampartCore
import RampartEvents
import RampartStore
import RampartTesting
import Synchronization
import Testing

/// A sink that answers from a script: `fail(event, attemptsSoFar)` decides each event's outcome.
final class ScriptedSink: EventSink {
    let name: String
    private let log = Mutex<[(id: String, at: Double)]>([])
    private let fail: @Sendable (Event, Int) -> DeliveryFailure?
    private let started = ContinuousClock.now

    init(name: String = "scripted", fail: @escaping @Sendable (Event, Int) -> DeliveryFailure? = { _, _ in nil }) {
        self.name = name
        self.fail = fail
    }

    /// Every attempt, in order, with the time since the sink was made.
    var attempts: [(id: String, at: Double)] { log.withLock { $0 } }
    var delivered: [String] { attempts.map(\.id) }

    func deliver(_ events: [Event]) async -> [DeliveryOutcome] {
        await OrderedDelivery(concurrency: 4).deliver(events) { event in
            let previous = self.log.withLock { log in
                defer { log.append((event.id, (ContinuousClock.now - self.started).secondsValue)) }
                return log.count { $0.id == event.id }
            }
            return self.fail(event, previous).map(DeliveryOutcome.failed) ?? .delivered
        }
    }
}

func testEvent(_ id: String, key: String? = nil, type: String = "test.event") -> Event {
    Event(id: id, type: type, time: Date().timeIntervalSince1970, source: "tests", partitionKey: key, payload: ["n": .string(id)])
}

let quietLogger: Logger = {
    var logger = Logger(label: "events-tests")
    logger.logLevel = .critical
    return logger
}()

/// Runs `delivery` while `body` runs.
func running<T: Sendable>(_ delivery: EventDelivery, _ body: () async throws -> T) async rethrows -> T {
    let task = Task { await delivery.run() }
    defer { task.cancel() }
    return try await body()
}

func memorySpool() throws -> SQLiteEventSpool { SQLiteEventSpool(database: try SQLiteDatabase(path: ":memory:")) }

let fast = RetryPolicy(initialDelay: .milliseconds(20), multiplier: 2, maxDelay: .milliseconds(200), maxAttempts: 4)

@Suite("Event delivery")
struct EventDeliveryTests {
    @Test("published events reach every sink whose types match, in order per key")
    func routesAndOrder() async throws {
        let all = ScriptedSink(name: "all")
        let threats = ScriptedSink(name: "threats")
        let spool = try memorySpool()
        let delivery = EventDelivery(spool: spool, routes: [SinkRoute(sink: all), SinkRoute(sink: threats, types: EventTypeFilter(["threat.*"]))],
                                     clock: { Date().timeIntervalSince1970 }, logger: quietLogger)
        await running(delivery) {
            for n in 0..<200 { delivery.bus.publish(testEvent("e\(n)", key: "k\(n % 3)", type: n % 10 == 0 ? "threat.detected" : "flag.exposure")) }
            #expect(await waitUntil { all.delivered.count == 200 && threats.delivered.count == 20 })
            for key in 0..<3 {
                let ids = all.delivered.filter { Int($0.dropFirst())! % 3 == key }
                #expect(ids == ids.sorted { Int($0.dropFirst())! < Int($1.dropFirst())! }, "key k\(key) in order")
            }
            #expect(Set(threats.delivered) == Set(stride(from: 0, to: 200, by: 10).map { "e\($0)" }))
            #expect(await waitUntil { (try? spool.depth(sink: nil)) == 0 })
        }
    }

    @Test("a retryable failure is tried again after a backoff, holding back its key; others go on")
    func retries() async throws {
        // e0 fails twice; e1 (same key) must wait for it; e2 (another key) does not.
        let sink = ScriptedSink { event, previous in
            event.id == "e0" && previous < 2 ? DeliveryFailure(kind: "http_503", message: "HTTP 503", retryable: true) : nil
        }
        let delivery = EventDelivery(spool: try memorySpool(), routes: [SinkRoute(sink: sink, retry: fast)],
                                     clock: { Date().timeIntervalSince1970 }, logger: quietLogger)
        try await running(delivery) {
            try await delivery.bus.publishDurably([testEvent("e0", key: "a"), testEvent("e1", key: "a"), testEvent("e2", key: "b")])
            #expect(await waitUntil { sink.delivered.count == 5 })
            let attempts = sink.attempts
            #expect(attempts.map(\.id).filter { $0 != "e2" } == ["e0", "e0", "e0", "e1"])
            let e2 = try #require(attempts.firstIndex { $0.id == "e2" })
            let e0Last = try #require(attempts.lastIndex { $0.id == "e0" })
            #expect(e2 < e0Last, "the other key was not held back")
            // The second retry waited no longer than the policy's ceilings allow (plus scheduling).
            let e0 = attempts.filter { $0.id == "e0" }.map(\.at)
            #expect(e0[2] - e0[0] < 2)
        }
    }

    @Test("a permanent failure and used-up attempts make dead letters; replay delivers them")
    func deadLettersAndReplay() async throws {
        let healed = Atomic<Bool>(false)
        let sink = ScriptedSink { event, _ in
            if healed.load(ordering: .relaxed) { return nil }
            switch event.id {
            case "bad": return DeliveryFailure(kind: "http_400", message: "HTTP 400 from hook", retryable: false)
            case "down": return DeliveryFailure(kind: "http_503", message: "HTTP 503 from hook", retryable: true)
            default: return nil
            }
        }
        let spool = try memorySpool()
        let delivery = EventDelivery(spool: spool, routes: [SinkRoute(sink: sink, retry: fast)],
                                     clock: { Date().timeIntervalSince1970 }, logger: quietLogger)
        try await running(delivery) {
            try await delivery.bus.publishDurably([testEvent("bad", type: "a.b"), testEvent("down", type: "c.d"), testEvent("fine")])
            #expect(await waitUntil { (try? delivery.deadLetters(.init(), after: 0, limit: 10).count) == 2 })
            let dead = try delivery.deadLetters(.init(), after: 0, limit: 10)
            let bad = try #require(dead.first { $0.event.id == "bad" })
            let down = try #require(dead.first { $0.event.id == "down" })
            #expect(bad.attempts == 1 && bad.lastError == "HTTP 400 from hook")
            #expect(down.attempts == fast.maxAttempts && down.lastError == "HTTP 503 from hook")
            #expect(sink.attempts.count { $0.id == "down" } == fast.maxAttempts)
            #expect(try delivery.deadLetters(.init(error: "400"), after: 0, limit: 10).map(\.event.id) == ["bad"])
            healed.store(true, ordering: .relaxed)
            #expect(try delivery.replay(.init(type: "c.d")) == 1)
            #expect(await waitUntil { sink.delivered.count { $0 == "down" } == fast.maxAttempts + 1 })
            #expect(try delivery.deadLetters(.init(), after: 0, limit: 10).map(\.event.id) == ["bad"])
            #expect(try delivery.purge(.init()) == 1)
            #expect(await waitUntil { (try? spool.depth(sink: nil)) == 0 })
        }
    }

    @Test("a receiver's Retry-After is honoured over a shorter backoff")
    func retryAfter() async throws {
        let sink = ScriptedSink { _, previous in
            previous == 0 ? DeliveryFailure(kind: "http_429", message: "HTTP 429", retryable: true, retryAfter: 1) : nil
        }
        let delivery = EventDelivery(spool: try memorySpool(), routes: [SinkRoute(sink: sink, retry: RetryPolicy(initialDelay: .milliseconds(10), maxDelay: .seconds(5)))],
                                     clock: { Date().timeIntervalSince1970 }, logger: quietLogger)
        await running(delivery) {
            delivery.bus.publish(testEvent("x"))
            #expect(await waitUntil { sink.attempts.count == 2 })
            let times = sink.attempts.map(\.at)
            #expect(times[1] - times[0] >= 0.9)
        }
    }
}
