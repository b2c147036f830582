import Foundation
import Dispatch
import Logging
import RampartCore
import RampartTesting
import Synchronization
import Testing

@testable import RampartStore

/// What every flag store must do, whichever database is behind it.
func flagStoreContract(_ store: any FlagRecordStore) async throws {
    let empty = try await store.revision()
    #expect(try await store.all().isEmpty)
    #expect(try await store.audit(key: nil, limit: 10).isEmpty)

    let b1 = FlagRecord(key: "b", document: #"{"key":"b","enabled":true}"#, updatedBy: "ann", updatedAt: 10)
    let a = FlagRecord(key: "a", document: #"{"key":"a","enabled":false}"#, updatedBy: "bob", updatedAt: 11)
    let b2 = FlagRecord(key: "b", document: #"{"key":"b","enabled":false}"#, updatedBy: "cy", updatedAt: 12.5)
    #expect(try await store.put(b1) == .create)
    let afterCreate = try await store.revision()
    #expect(afterCreate != empty)
    #expect(try await store.put(a) == .create)
    #expect(try await store.put(b2) == .update)
    #expect(try await store.all() == [a, b2])

    let beforeDeletes = try await store.revision()
    #expect(try await store.remove("absent", actor: "dee", time: 13) == false)
    #expect(try await store.revision() == beforeDeletes, "a delete that removed nothing is not a change")
    #expect(try await store.remove("a", actor: "dee", time: 14) == true)
    #expect(try await store.revision() != beforeDeletes)
    #expect(try await store.all() == [b2])

    let audit = try await store.audit(key: nil, limit: 10)
    #expect(audit.map(\.key) == ["a", "b", "a", "b"])
    #expect(audit.map(\.action) == [.delete, .update, .create, .create])
    #expect(audit.map(\.actor) == ["dee", "cy", "bob", "ann"])
    #expect(audit.map(\.time) == [14, 12.5, 11, 10])
    #expect(audit.map(\.document) == [nil, b2.document, a.document, b1.document])
    #expect(zip(audit, audit.dropFirst()).allSatisfy { $0.id > $1.id }, "newest first, ids increasing with time")
    #expect(try await store.audit(key: "b", limit: 10).map(\.actor) == ["cy", "ann"])
    #expect(try await store.audit(key: nil, limit: 2).map(\.actor) == ["dee", "cy"])
    #expect(try await store.audit(key: "absent", limit: 10).isEmpty)

    // Text is stored as sent, whatever it holds.
    let odd = FlagRecord(key: "ünï'; DROP TABLE feature_flag; --", document: "{\"q\":\"'\\\"\\u0000\"}", updatedBy: "o'neil", updatedAt: 15)
    #expect(try await store.put(odd) == .create)
    #expect(try await store.all().first { $0.key == odd.key } == odd)
}

@Suite("Flag record stores")
struct FlagRecordStoreTests {
    @Test("the in-memory store keeps the contract")
    func memory() async throws {
        try await flagStoreContract(MemoryFlagRecordStore())
    }

    @Test("the SQLite store keeps the contract, and its flags survive a reopen")
    func sqlite() async throws {
        try await flagStoreContract(SQLiteFlagRecordStore(database: try SQLiteDatabase(path: ":memory:")))

        let path = FileManager.default.temporaryDirectory.appendingPathComponent("flags-\(UUID().uuidString).sqlite").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let record = FlagRecord(key: "kept", document: "{}", updatedBy: "ann", updatedAt: 1)
        _ = try await SQLiteFlagRecordStore(database: try SQLiteDatabase(path: path)).put(record)
        let reopened = SQLiteFlagRecordStore(database: try SQLiteDatabase(path: path))
        #expect(try await reopened.all() == [record])
        #expect(try await reopened.audit(key: nil, limit: 5).map(\.action) == [.create])
    }
}

@Suite("PostgreSQL URLs")
struct PostgresURLTests {
    @Test("good URLs are accepted", arguments: [
        "postgres://app:pw@db.internal/flags", "postgresql://app@[::1]:5433/flags?sslmode=require",
        "postgres://app:p%40ss@127.0.0.1:15432/flags?sslmode=disable", "postgres://app@h/flags?sslmode=verify-full",
    ])
    func accepted(url: String) {
        #expect(PostgresDatabase.validate(url: url, path: "flags.database").isEmpty)
    }

    @Test("bad URLs are refused at the path given, saying what is wrong", arguments: [
        ("postgres://db.internal/flags", "names no user"),
        ("postgres://app@db.internal", "names no database"),
        ("postgres://app@db.internal/a/b", "names no database"),
        ("postgres://app@h/flags?sslmode=sometimes", "sslmode must be"),
        ("postgres://app@h/flags?search_path=x", "unknown parameter \"search_path\""),
        ("postgres://app@h:0/flags", "port must be 1-65535"),
        ("postgres://app@/flags", "has no host"),
        ("mysql://app@h/flags", "must start with postgres://"),
    ])
    func refused(url: String, problem: String) {
        let issues = PostgresDatabase.validate(url: url, path: "flags.database")
        #expect(issues.count == 1)
        #expect(issues.first?.path == "flags.database")
        #expect(issues.first.map { "\($0)".contains(problem) } == true, "\(issues)")
    }

    @Test("passwords never reach a printed URL or an error")
    func redaction() {
        #expect(PostgresDatabase.redacted("postgres://app:hunter2@h:5432/flags?sslmode=disable") == "postgres://app:***@h:5432/flags?sslmode=disable")
        #expect(PostgresDatabase.redacted("postgres://app@h/flags") == "postgres://:***@h/flags")
        #expect(PostgresDatabase.redacted("postgres://h/flags") == "postgres://h/flags")
        let issues = PostgresDatabase.validate(url: "mysql://app:hunter2@h/flags", path: "flags.database")
        #expect(!"\(issues)".contains("hunter2"))
    }

    @Test("a database nobody answers at fails each call within the time limit, with a clear error")
    func unreachable() async throws {
        // Port 1 on loopback: nothing listens there, so connections are refused at once.
        let database = try PostgresDatabase(url: "postgres://app:hunter2@127.0.0.1:1/flags?sslmode=disable", path: "flags.database",
                                            timeout: .milliseconds(500), logger: Logger(label: "test"))
        let store = PostgresFlagRecordStore(database: database)
        await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await database.run() }
            defer { group.cancelAll() }
            await #expect(throws: PostgresStoreError.self) { try await store.all() }
            do {
                _ = try await store.revision()
                Issue.record("an unreachable database answered")
            } catch {
                #expect("\(error)".contains("PostgreSQL (postgres://app:***@127.0.0.1:1/flags?sslmode=disable)"), "\(error)")
                #expect(!"\(error)".contains("hunter2"))
            }
        }
    }
}

@Suite("PostgreSQL time limits")
struct PostgresTimeLimitTests {
    @Test("a call answers at its limit even when its work ignores cancellation")
    func workThatDoesNotStop() async throws {
        let database = try PostgresDatabase(url: "postgres://app@127.0.0.1:1/flags?sslmode=disable", path: "flags.database",
                                            timeout: .milliseconds(100), logger: Logger(label: "test"))
        let outcome = Mutex<String?>(nil)
        let call = Task {
            do {
                _ = try await database.bounded("waiting") { _ in
                    // Resumes after 60 s whatever happens: cancellation does not reach it.
                    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                        DispatchQueue.global().asyncAfter(deadline: .now() + 60) { continuation.resume() }
                    }
                }
                outcome.withLock { $0 = "answered" }
            } catch {
                outcome.withLock { $0 = "\(error)" }
            }
        }
        // Bounded by far more than the limit, to tell "answers at the limit" from "hangs".
        let answered = await waitUntil(within: .seconds(20), every: .milliseconds(20)) { outcome.withLock { $0 } != nil }
        #expect(answered, "the call hung past its limit")
        #expect(outcome.withLock { $0 }?.contains("no answer within") == true, "\(String(describing: outcome.withLock { $0 }))")
        call.cancel()
    }
}

/// Runs `body` with a flag store on a fresh database of the test PostgreSQL, its pool running.
func withPostgresFlagStore<T: Sendable>(timeout: Duration = .seconds(5),
                                        _ body: (PostgresTestDatabase, PostgresFlagRecordStore) async throws -> T) async throws -> T {
    try await PostgresTestDatabase.with { testDatabase in
        let database = try PostgresDatabase(url: testDatabase.url, path: "flags.database", timeout: timeout, logger: Logger(label: "test"))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await database.run() }
            defer { group.cancelAll() }
            return try await body(testDatabase, PostgresFlagRecordStore(database: database))
        }
    }
}

@Suite("Flag records in a real PostgreSQL", .enabled(if: PostgresTestDatabase.isAvailable, Comment(rawValue: PostgresTestDatabase.skipReason)))
struct PostgresFlagRecordStoreTests {
    @Test("the PostgreSQL store keeps the contract")
    func contract() async throws {
        try await withPostgresFlagStore { _, store in try await flagStoreContract(store) }
    }

    @Test("two stores on one database (two replicas) see each other's changes and revisions")
    func shared() async throws {
        try await withPostgresFlagStore { testDatabase, first in
            let other = try PostgresDatabase(url: testDatabase.url, path: "flags.database", logger: Logger(label: "test"))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await other.run() }
                defer { group.cancelAll() }
                let second = PostgresFlagRecordStore(database: other)
                // Both migrate at once: the lock makes one of them do it.
                async let one = first.revision()
                async let two = second.revision()
                let (r1, r2) = try await (one, two)
                #expect(r1 == r2)

                let record = FlagRecord(key: "shared", document: "{}", updatedBy: "ann", updatedAt: 1)
                #expect(try await first.put(record) == .create)
                #expect(try await second.all() == [record])
                #expect(try await second.revision() == first.revision())
                #expect(try await second.put(FlagRecord(key: "shared", document: "{ }", updatedBy: "bob", updatedAt: 2)) == .update)
                #expect(try await second.remove("shared", actor: "cy", time: 3))
                #expect(try await first.all().isEmpty)
                #expect(try await first.audit(key: "shared", limit: 10).map(\.actor) == ["cy", "bob", "ann"])
            }
        }
    }

    @Test("replicas creating one key together get one create and the rest updates")
    func racingCreates() async throws {
        try await withPostgresFlagStore { _, store in
            let actions = try await withThrowingTaskGroup(of: FlagAuditEntry.Action.self) { group in
                for n in 0..<8 {
                    group.addTask { try await store.put(FlagRecord(key: "race", document: "{}", updatedBy: "r\(n)", updatedAt: Double(n))) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(actions.filter { $0 == .create }.count == 1)
            #expect(actions.filter { $0 == .update }.count == 7)
            #expect(try await store.audit(key: "race", limit: 20).count == 8)
        }
    }
}
