import Logging
import PostgresNIO
import Synchronization

/// Managed flags in PostgreSQL, shared by every replica: each replica polls `revision()` and
/// reloads when another changed something. The tables are made on first use, so a
/// database that is down at that moment is tried again on the next call.
public final class PostgresFlagRecordStore: FlagRecordStore {
    private let database: PostgresDatabase
    private let isPrepared = Atomic<Bool>(false)

    static let migrations: [(name: String, statements: [String])] = [
        ("feature-flags-1", [
            """
            CREATE TABLE feature_flag (
                key text PRIMARY KEY, document text NOT NULL, updated_by text NOT NULL, updated_at double precision NOT NULL)
            """,
            """
            CREATE TABLE feature_flag_audit (
                id bigserial PRIMARY KEY, key text NOT NULL, action text NOT NULL, actor text NOT NULL,
                time double precision NOT NULL, document text)
            """,
            "CREATE INDEX feature_flag_audit_key ON feature_flag_audit (key, id)",
        ]),
    ]

    public init(database: PostgresDatabase) { self.database = database }

    private func prepared() async throws(PostgresStoreError) -> PostgresDatabase {
        if !isPrepared.load(ordering: .acquiring) {
            try await database.migrate(Self.migrations)
            isPrepared.store(true, ordering: .releasing)
        }
        return database
    }

    public func all() async throws -> [FlagRecord] {
        try await prepared().bounded("reading flags") { client in
            var records: [FlagRecord] = []
            let rows = try await client.query("SELECT key, document, updated_by, updated_at FROM feature_flag ORDER BY key")
            for try await (key, document, updatedBy, updatedAt) in rows.decode((String, String, String, Double).self) {
                records.append(FlagRecord(key: key, document: document, updatedBy: updatedBy, updatedAt: updatedAt))
            }
            return records
        }
    }

    public func put(_ record: FlagRecord) async throws -> FlagAuditEntry.Action {
        let database = try await prepared()
        let logger = database.logger
        return try await database.bounded("storing flag \(record.key)") { client in
            try await client.withTransaction(logger: logger) { connection in
                // xmax is 0 on a row this statement inserted: create, else update. Two replicas
                // creating one key together get one create and one update.
                let rows = try await connection.query("""
                    INSERT INTO feature_flag (key, document, updated_by, updated_at)
                    VALUES (\(record.key), \(record.document), \(record.updatedBy), \(record.updatedAt))
                    ON CONFLICT (key) DO UPDATE SET document = excluded.document, updated_by = excluded.updated_by,
                        updated_at = excluded.updated_at
                    RETURNING (xmax = 0)
                    """, logger: logger)
                var created = false
                for try await inserted in rows.decode(Bool.self) { created = inserted }
                let action: FlagAuditEntry.Action = created ? .create : .update
                try await connection.query("""
                    INSERT INTO feature_flag_audit (key, action, actor, time, document)
                    VALUES (\(record.key), \(action.rawValue), \(record.updatedBy), \(record.updatedAt), \(record.document))
                    """, logger: logger)
                return action
            }
        }
    }

    public func remove(_ key: String, actor: String, time: Double) async throws -> Bool {
        let database = try await prepared()
        let logger = database.logger
        return try await database.bounded("deleting flag \(key)") { client in
            try await client.withTransaction(logger: logger) { connection in
                let rows = try await connection.query("DELETE FROM feature_flag WHERE key = \(key) RETURNING key", logger: logger)
                var removed = false
                for try await _ in rows { removed = true }
                guard removed else { return false }
                try await connection.query("""
                    INSERT INTO feature_flag_audit (key, action, actor, time, document)
                    VALUES (\(key), 'delete', \(actor), \(time), NULL)
                    """, logger: logger)
                return true
            }
        }
    }

    public func audit(key: String?, limit: Int) async throws -> [FlagAuditEntry] {
        try await prepared().bounded("reading the flag audit") { client in
            let rows = if let key {
                try await client.query("""
                    SELECT id, key, action, actor, time, document FROM feature_flag_audit
                    WHERE key = \(key) ORDER BY id DESC LIMIT \(limit)
                    """)
            } else {
                try await client.query("SELECT id, key, action, actor, time, document FROM feature_flag_audit ORDER BY id DESC LIMIT \(limit)")
            }
            var entries: [FlagAuditEntry] = []
            for try await (id, key, action, actor, time, document) in rows.decode((Int64, String, String, String, Double, String?).self) {
                entries.append(FlagAuditEntry(id: id, key: key, action: FlagAuditEntry.Action(rawValue: action) ?? .update,
                                              actor: actor, time: time, document: document))
            }
            return entries
        }
    }

    public func revision() async throws -> FlagStoreRevision {
        try await prepared().bounded("reading the flag revision") { client in
            let rows = try await client.query("SELECT count(*), COALESCE(max(id), 0) FROM feature_flag_audit")
            for try await (count, newest) in rows.decode((Int64, Int64).self) {
                return FlagStoreRevision(changes: count, newest: newest)
            }
            throw UnexpectedAnswer("an aggregate query returned no row")
        }
    }
}

/// PostgreSQL answered in a way it never should.
struct UnexpectedAnswer: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
