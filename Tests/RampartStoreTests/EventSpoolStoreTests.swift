import Foundation
import RampartCore
import RampartStore
import Testing

@Suite("Event spool (SQLite)")
struct EventSpoolStoreTests {
    func event(_ id: String, key: String? = nil, type: String = "test.event") -> Event {
        Event(id: id, type: type, time: 1_000, source: "tests", partitionKey: key, payload: ["n": .string(id)])
    }

    func spool() throws -> SQLiteEventSpool { SQLiteEventSpool(database: try SQLiteDatabase(path: ":memory:")) }

    @Test("deliveries are due in order; one waiting for a retry holds back the later ones of its key")
    func orderPerKey() throws {
        let spool = try spool()
        try spool.append([event("a1", key: "a"), event("b1", key: "b"), event("a2", key: "a"), event("n1"), event("n2")], sinks: ["hook"], now: 0)
        #expect(try spool.due(sink: "hook", now: 0, limit: 10).map(\.event.id) == ["a1", "b1", "a2", "n1", "n2"])
        // a1 fails: a2 waits behind it even when due, others go on.
        try spool.settle([.failed(1, error: "503", retryAt: 5)], sink: "hook", now: 0)
        try spool.settle([.delivered(2)], sink: "hook", now: 0)
        #expect(try spool.due(sink: "hook", now: 1, limit: 10).map(\.event.id) == ["n1", "n2"])
        let retry = try #require(try spool.due(sink: "hook", now: 5, limit: 10).first)
        #expect(retry.event.id == "a1" && retry.attempts == 1 && retry.lastError == "503" && retry.firstFailure == 0)
        #expect(retry.event.payload == ["n": .string("a1")] && retry.event.partitionKey == "a")
        try spool.settle([.delivered(1)], sink: "hook", now: 0)
        #expect(try spool.due(sink: "hook", now: 5, limit: 10).map(\.event.id) == ["a2", "n1", "n2"])
        #expect(try spool.depth(sink: "hook") == 3)
        #expect(try spool.nextDue(sink: "hook", after: 5) == nil, "all three are due")
        try spool.settle([.delivered(3), .failed(4, error: "timeout", retryAt: 9), .dead(5, error: "HTTP 400")], sink: "hook", now: 6)
        #expect(try spool.nextDue(sink: "hook", after: 6) == 9)
        #expect(try spool.deadLetters(.init(), after: 0, limit: 10).map(\.event.id) == ["n2"])
    }

    @Test("each sink has its own deliveries; a republished id is not spooled twice")
    func sinksAndDuplicates() throws {
        let spool = try spool()
        try spool.append([event("x")], sinks: ["hook", "kafka"], now: 0)
        try spool.append([event("x")], sinks: ["hook", "kafka"], now: 0)
        #expect(try spool.depth(sink: nil) == 2)
        try spool.settle([.delivered(1)], sink: "hook", now: 0)
        #expect(try spool.due(sink: "hook", now: 0, limit: 10).isEmpty)
        #expect(try spool.due(sink: "kafka", now: 0, limit: 10).map(\.event.id) == ["x"])
    }

    @Test("dead letters: listed by sink, type and error, replayed, purged")
    func deadLetters() throws {
        let spool = try spool()
        try spool.append([event("1", type: "threat.detected"), event("2", type: "flag.exposure"), event("3", type: "flag.exposure")], sinks: ["hook"], now: 0)
        try spool.settle([.dead(1, error: "HTTP 400 Bad Request")], sink: "hook", now: 10)
        try spool.settle([.dead(2, error: "HTTP 410 Gone")], sink: "hook", now: 11)
        try spool.settle([.dead(3, error: "HTTP 400 Bad Request")], sink: "hook", now: 12)
        #expect(try spool.depth(sink: "hook") == 0)
        #expect(try spool.deadLetters(.init(), after: 0, limit: 10).map(\.event.id) == ["1", "2", "3"])
        #expect(try spool.deadLetters(.init(type: "flag.exposure"), after: 0, limit: 10).map(\.event.id) == ["2", "3"])
        #expect(try spool.deadLetters(.init(error: "400"), after: 0, limit: 10).map(\.event.id) == ["1", "3"])
        #expect(try spool.deadLetters(.init(), after: 1, limit: 1).map(\.event.id) == ["2"], "paging")
        #expect(try spool.deadLetters(.init(sink: "other"), after: 0, limit: 10).isEmpty)
        // Replay one: pending again, attempts reset.
        #expect(try spool.replay(.init(sequence: 3), now: 20) == 1)
        let replayed = try #require(try spool.due(sink: "hook", now: 20, limit: 10).first)
        #expect(replayed.event.id == "3" && replayed.attempts == 0)
        #expect(try spool.purge(.init(type: "threat.detected")) == 1)
        #expect(try spool.deadLetters(.init(), after: 0, limit: 10).map(\.event.id) == ["2"])
        #expect(try spool.replay(.init(), now: 30) == 1)
        #expect(try spool.depth(sink: "hook") == 2)
    }

    @Test("what was appended is there after the database is opened again")
    func durable() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID().uuidString).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        try SQLiteEventSpool(database: try SQLiteDatabase(path: path)).append((0..<100).map { event("e\($0)", key: "k\($0 % 3)") }, sinks: ["hook"], now: 0)
        let reopened = SQLiteEventSpool(database: try SQLiteDatabase(path: path))
        #expect(try reopened.depth(sink: "hook") == 100)
        #expect(try reopened.due(sink: "hook", now: 0, limit: 4).map(\.event.id) == ["e0", "e1", "e2", "e3"])
    }
}
