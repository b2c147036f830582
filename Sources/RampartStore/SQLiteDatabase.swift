import GRDB

/// The embedded store: one SQLite file (WAL mode, so reading the admin API's lists never
/// waits for a write) shared by every table the gateway keeps, created if missing and
/// migrated on open. `:memory:` keeps everything in memory.
public final class SQLiteDatabase: Sendable {
    let queue: any DatabaseWriter

    /// Opens (or creates) the database at `path`.
    public init(path: String) throws {
        queue = path == ":memory:" ? try DatabaseQueue() : try DatabasePool(path: path)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("blocks-1") { db in
            try db.create(table: "address_block", ifNotExists: true) { table in
                table.column("range", .text).primaryKey()
                table.column("reason", .text).notNull()
                table.column("created", .double).notNull()
                table.column("expires", .double)
            }
        }
        migrator.registerMigration("threat-events-1") { db in
            try db.create(table: "threat_event") { table in
                table.autoIncrementedPrimaryKey("id")
                table.column("time", .double).notNull()
                table.column("request_id", .text)
                table.column("client", .text)
                table.column("kind", .text).notNull()
                table.column("rule", .text).notNull()
                table.column("location", .text)
                table.column("severity", .text).notNull()
                table.column("action", .text).notNull()
                table.column("score", .integer).notNull()
                table.column("detail", .text)
            }
            try db.create(index: "threat_event_kind", on: "threat_event", columns: ["kind", "id"])
            try db.create(index: "threat_event_client", on: "threat_event", columns: ["client", "id"])
        }
        migrator.registerMigration("feature-flags-1") { db in
            try db.create(table: "feature_flag") { table in
                table.column("key", .text).primaryKey()
                table.column("document", .text).notNull()
                table.column("updated_by", .text).notNull()
                table.column("updated_at", .double).notNull()
            }
            try db.create(table: "feature_flag_audit") { table in
                table.autoIncrementedPrimaryKey("id")
                table.column("key", .text).notNull()
                table.column("action", .text).notNull()
                table.column("actor", .text).notNull()
                table.column("time", .double).notNull()
                table.column("document", .text)
            }
            try db.create(index: "feature_flag_audit_key", on: "feature_flag_audit", columns: ["key", "id"])
        }
        migrator.registerMigration("event-spool-1") { db in
            try db.create(table: "event") { table in
                table.autoIncrementedPrimaryKey("sequence")
                table.column("id", .text).notNull().unique()
                table.column("type", .text).notNull()
                table.column("time", .double).notNull()
                table.column("source", .text).notNull()
                table.column("partition_key", .text)
                table.column("payload", .text).notNull()
            }
            try db.create(index: "event_partition", on: "event", columns: ["partition_key", "sequence"])
            try db.create(table: "event_delivery") { table in
                table.column("sequence", .integer).notNull()
                table.column("sink", .text).notNull()
                table.column("state", .text).notNull()
                table.column("attempts", .integer).notNull()
                table.column("next_attempt", .double).notNull()
                table.column("first_failure", .double)
                table.column("last_error", .text)
                table.primaryKey(["sequence", "sink"])
            }
            try db.create(index: "event_delivery_due", on: "event_delivery", columns: ["sink", "state", "sequence"])
        }
        migrator.registerMigration("event-spool-2") { db in
            // Deliveries waiting for a retry, which hold back the later events of their keys.
            try db.create(index: "event_delivery_waiting", on: "event_delivery", columns: ["sink", "state", "next_attempt"])
        }
        try migrator.migrate(queue)
    }
}
