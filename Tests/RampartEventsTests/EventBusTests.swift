import Foundation
import RampartCore
@testable import RampartEvents
import RampartStore
import RampartTesting
import Synchronization
import Testing

/// A spool whose appends fail while `failing` is set.
final class FlakySpool: EventSpoolStore {
    let inner: SQLiteEventSpool
    let failing = Atomic<Bool>(true)
    let refused = Atomic<Int>(0)

    init() throws { inner = try memorySpool() }

    struct Down: Error {}

    func append(_ entries: [(event: Event, sinks: [String])], now: Double) throws {
        if failing.load(ordering: .relaxed) {
            refused.add(1, ordering: .relaxed)
            throw Down()
        }
        try inner.append(entries, now: now)
    }

    func due(sink: String, now: Double, limit: Int) throws -> [SpooledDelivery] { try inner.due(sink: sink, now: now, limit: limit) }
    func settle(_ settlements: [DeliverySettlement], sink: String, now: Double) throws { try inner.settle(settlements, sink: sink, now: now) }
    func nextDue(sink: String, after now: Double) throws -> Double? { try inner.nextDue(sink: sink, after: now) }
    func deadLetters(_ filter: DeadLetterFilter, after: Int64, limit: Int) throws -> [SpooledDelivery] { try inner.deadLetters(filter, after: after, limit: limit) }
    func replay(_ filter: DeadLetterFilter, now: Double) throws -> Int { try inner.replay(filter, now: now) }
    func purge(_ filter: DeadLetterFilter) throws -> Int { try inner.purge(filter) }
    func depth(sink: String?) throws -> Int { try inner.depth(sink: sink) }
}

@Suite("Event bus")
struct EventBusTests {
    func bus(_ spool: any EventSpoolStore, capacity: Int, overflow: OverflowPolicy) -> EventBus {
        EventBus(spool: spool, capacity: capacity, overflow: overflow, route: { _ in ["hook"] }, clock: { 0 }, logger: quietLogger)
    }

    func pendingIDs(_ spool: SQLiteEventSpool) throws -> [String] {
        try spool.due(sink: "hook", now: 0, limit: 100).map(\.event.id)
    }

    @Test("a full queue refuses the newest event under drop-newest, and says so")
    func dropNewest() async throws {
        let spool = try memorySpool()
        let bus = bus(spool, capacity: 3, overflow: .dropNewest)
        let accepted = (0..<5).map { bus.publish(testEvent("e\($0)")) }
        #expect(accepted == [true, true, true, false, false])
        await #expect(throws: EventBusError.queueFull) { try await bus.publishDurably([testEvent("late")]) }
        let task = Task { await bus.run() }
        #expect(await waitUntil { bus.queued == 0 })
        task.cancel()
        #expect(try pendingIDs(spool) == ["e0", "e1", "e2"])
    }

    @Test("a full queue drops its oldest event under drop-oldest")
    func dropOldest() async throws {
        let spool = try memorySpool()
        let bus = bus(spool, capacity: 3, overflow: .dropOldest)
        #expect((0..<5).allSatisfy { bus.publish(testEvent("e\($0)")) })
        let task = Task { await bus.run() }
        #expect(await waitUntil { bus.queued == 0 })
        task.cancel()
        #expect(try pendingIDs(spool) == ["e2", "e3", "e4"])
    }

    @Test("publishDurably returns once the events are in the spool")
    func durable() async throws {
        let spool = try memorySpool()
        let bus = bus(spool, capacity: 100, overflow: .dropNewest)
        let task = Task { await bus.run() }
        defer { task.cancel() }
        try await bus.publishDurably((0..<50).map { testEvent("d\($0)") })
        #expect(try spool.depth(sink: "hook") == 50, "no wait: written when publishDurably returned")
    }

    @Test("stopping writes what is still queued, then refuses")
    func stopDrains() async throws {
        let spool = try memorySpool()
        let bus = bus(spool, capacity: 10_000, overflow: .dropNewest)
        for n in 0..<2_000 { bus.publish(testEvent("s\(n)")) }
        let task = Task { await bus.run() }
        task.cancel()
        await task.value
        #expect(try spool.depth(sink: "hook") == 2_000)
        #expect(bus.publish(testEvent("after")) == false)
    }

    @Test("events wait in the queue while the spool fails, and are written when it recovers")
    func spoolOutage() async throws {
        let spool = try FlakySpool()
        let bus = bus(spool, capacity: 100, overflow: .dropNewest)
        let task = Task { await bus.run() }
        defer { task.cancel() }
        let waiter = Task { try await bus.publishDurably([testEvent("w")]) }
        for n in 0..<10 { bus.publish(testEvent("q\(n)")) }
        #expect(await waitUntil { spool.refused.load(ordering: .relaxed) >= 1 })
        #expect(bus.queued == 11 || bus.queued == 10, "held, not dropped")
        spool.failing.store(false, ordering: .relaxed)
        try await waiter.value
        #expect(await waitUntil { bus.queued == 0 })
        #expect(try spool.depth(sink: "hook") == 11)
    }
}

@Suite("Wakeup")
struct WakeupTests {
    @Test("a signal ends one wait only: the next wait lasts until its time")
    func oneSignalOneWake() async {
        let wakeup = Wakeup()
        wakeup.signal()
        await wakeup.wait(upTo: .seconds(5))
        let clock = ContinuousClock()
        let started = clock.now
        await wakeup.wait(upTo: .milliseconds(200))
        #expect(clock.now - started >= .milliseconds(190), "a spent signal woke the second wait early")
    }
}

@Suite("Event metrics")
struct EventMetricsTests {
    @Test("past the bound, new event types are counted under other")
    func boundedTypes() {
        for n in 0..<(EventMetrics.typeLabels + 50) { EventMetrics.published("metrics-test-\(n)") }
        EventMetrics.published("metrics-test-0")
        let labels = EventMetrics.publishedLabels
        #expect(labels.count <= EventMetrics.typeLabels + 1)
        #expect(labels.contains("other"))
        #expect(labels.contains("metrics-test-0"))
    }
}
