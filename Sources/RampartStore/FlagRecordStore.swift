import GRDB
import Synchronization

/// A flag made through the admin API, as stored: the document that was sent (JSON text) and
/// who changed it last, when.
public struct FlagRecord: Sendable, Equatable {
    public var key: String
    public var document: String
    public var updatedBy: String
    /// Seconds since 1970.
    public var updatedAt: Double

    public init(key: String, document: String, updatedBy: String, updatedAt: Double) {
        self.key = key
        self.document = document
        self.updatedBy = updatedBy
        self.updatedAt = updatedAt
    }
}

/// One change to a managed flag: who, when, what. Deletions carry no document.
public struct FlagAuditEntry: Sendable, Equatable {
    public enum Action: String, Sendable { case create, update, delete }

    /// Assigned by the store, increasing.
    public var id: Int64
    public var key: String
    public var action: Action
    public var actor: String
    public var time: Double
    public var document: String?

    public init(id: Int64 = 0, key: String, action: Action, actor: String, time: Double, document: String?) {
        self.id = id
        self.key = key
        self.action = action
        self.actor = actor
        self.time = time
        self.document = document
    }
}

/// Where managed flags and their audit trail live. A change and its audit entry are written
/// together or not at all.
public protocol FlagRecordStore: Sendable {
    func all() async throws -> [FlagRecord]
    /// Stores `record` (create or update) with its audit entry; returns the action taken.
    @discardableResult
    func put(_ record: FlagRecord) async throws -> FlagAuditEntry.Action
    /// Removes `key` with an audit entry; false if there was no such flag.
    @discardableResult
    func remove(_ key: String, actor: String, time: Double) async throws -> Bool
    /// Audit entries, newest first, of one flag or all; at most `limit`.
    func audit(key: String?, limit: Int) async throws -> [FlagAuditEntry]
    /// Changes whenever a change is stored, by this process or another sharing the store:
    /// a replica that sees a new revision reads the flags again.
    func revision() async throws -> FlagStoreRevision
}

/// How far a flag store's audit trail has come: the number of entries and the newest id.
/// Both are needed: ids are taken when a change starts and may become visible out of order,
/// so a change committed late behind a newer id still moves the count.
public struct FlagStoreRevision: Sendable, Hashable, CustomStringConvertible {
    public var changes: Int64
    public var newest: Int64

    public init(changes: Int64, newest: Int64) {
        self.changes = changes
        self.newest = newest
    }

    public var description: String { "\(changes) changes, newest \(newest)" }
}

/// Managed flags in the embedded SQLite database.
public final class SQLiteFlagRecordStore: FlagRecordStore {
    private let database: any DatabaseWriter

    public init(database: SQLiteDatabase) { self.database = database.queue }

    public func all() async throws -> [FlagRecord] {
        try await database.read { db in
            try Row.fetchAll(db, sql: "SELECT key, document, updated_by, updated_at FROM feature_flag ORDER BY key").map { row in
                FlagRecord(key: row["key"], document: row["document"], updatedBy: row["updated_by"], updatedAt: row["updated_at"])
            }
        }
    }

    public func put(_ record: FlagRecord) async throws -> FlagAuditEntry.Action {
        try await database.write { db in
            let exists = try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM feature_flag WHERE key = ?)", arguments: [record.key]) ?? false
            try db.execute(sql: """
                INSERT INTO feature_flag (key, document, updated_by, updated_at) VALUES (?, ?, ?, ?)
                ON CONFLICT(key) DO UPDATE SET document = excluded.document, updated_by = excluded.updated_by, updated_at = excluded.updated_at
                """, arguments: [record.key, record.document, record.updatedBy, record.updatedAt])
            let action: FlagAuditEntry.Action = exists ? .update : .create
            try db.execute(sql: "INSERT INTO feature_flag_audit (key, action, actor, time, document) VALUES (?, ?, ?, ?, ?)",
                           arguments: [record.key, action.rawValue, record.updatedBy, record.updatedAt, record.document])
            return action
        }
    }

    public func remove(_ key: String, actor: String, time: Double) async throws -> Bool {
        try await database.write { db in
            try db.execute(sql: "DELETE FROM feature_flag WHERE key = ?", arguments: [key])
            guard db.changesCount > 0 else { return false }
            try db.execute(sql: "INSERT INTO feature_flag_audit (key, action, actor, time, document) VALUES (?, 'delete', ?, ?, NULL)",
                           arguments: [key, actor, time])
            return true
        }
    }

    public func audit(key: String?, limit: Int) async throws -> [FlagAuditEntry] {
        try await database.read { db in
            let rows = if let key {
                try Row.fetchAll(db, sql: "SELECT * FROM feature_flag_audit WHERE key = ? ORDER BY id DESC LIMIT ?", arguments: [key, limit])
            } else {
                try Row.fetchAll(db, sql: "SELECT * FROM feature_flag_audit ORDER BY id DESC LIMIT ?", arguments: [limit])
            }
            return rows.map { row in
                FlagAuditEntry(id: row["id"], key: row["key"], action: FlagAuditEntry.Action(rawValue: row["action"]) ?? .update,
                               actor: row["actor"], time: row["time"], document: row["document"])
            }
        }
    }
}

extension SQLiteFlagRecordStore {
    public func revision() async throws -> FlagStoreRevision {
        try await database.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT count(*) AS changes, COALESCE(max(id), 0) AS newest FROM feature_flag_audit")
            return FlagStoreRevision(changes: row?["changes"] ?? 0, newest: row?["newest"] ?? 0)
        }
    }
}

/// Managed flags for one process only (no `flags.database`).
public final class MemoryFlagRecordStore: FlagRecordStore {
    private let state = Mutex<(records: [String: FlagRecord], audit: [FlagAuditEntry])>(([:], []))

    public init() {}

    public func all() async throws -> [FlagRecord] { state.withLock { $0.records.values.sorted { $0.key < $1.key } } }

    public func put(_ record: FlagRecord) async throws -> FlagAuditEntry.Action {
        state.withLock { state in
            let action: FlagAuditEntry.Action = state.records[record.key] == nil ? .create : .update
            state.records[record.key] = record
            state.audit.append(FlagAuditEntry(id: Int64(state.audit.count + 1), key: record.key, action: action, actor: record.updatedBy,
                                              time: record.updatedAt, document: record.document))
            return action
        }
    }

    public func remove(_ key: String, actor: String, time: Double) async throws -> Bool {
        state.withLock { state in
            guard state.records.removeValue(forKey: key) != nil else { return false }
            state.audit.append(FlagAuditEntry(id: Int64(state.audit.count + 1), key: key, action: .delete, actor: actor, time: time, document: nil))
            return true
        }
    }

    public func audit(key: String?, limit: Int) async throws -> [FlagAuditEntry] {
        state.withLock { state in Array(state.audit.reversed().filter { key == nil || $0.key == key }.prefix(limit)) }
    }

    public func revision() async throws -> FlagStoreRevision {
        state.withLock { state in FlagStoreRevision(changes: Int64(state.audit.count), newest: state.audit.last?.id ?? 0) }
    }
}
