import GRDB
public import RampartCore

/// One event's delivery to one sink, as the spool keeps it.
public struct SpooledDelivery: Sendable, Equatable {
    /// The spool's order: the order events were appended in.
    public var sequence: Int64
    public var sink: String
    public var event: Event
    /// Failed attempts so far.
    public var attempts: Int
    public var firstFailure: Double?
    public var lastError: String?
}

/// What became of one attempt to deliver, as the spool records it.
public enum DeliverySettlement: Sendable, Equatable {
    case delivered(Int64)
    /// A failed attempt, to be tried again at `retryAt`.
    case failed(Int64, error: String, retryAt: Double)
    /// The delivery gives up: a dead letter until replayed or purged.
    case dead(Int64, error: String)
}

/// Which dead letters to list, replay or purge; nil matches everything.
public struct DeadLetterFilter: Sendable, Equatable {
    public var sink: String?
    public var type: String?
    /// A part of the last error.
    public var error: String?
    /// One event, by its sequence.
    public var sequence: Int64?

    public init(sink: String? = nil, type: String? = nil, error: String? = nil, sequence: Int64? = nil) {
        self.sink = sink
        self.type = type
        self.error = error
        self.sequence = sequence
    }
}

/// The durable spool under the event bus: an event is written, with one delivery per sink,
/// before its publisher is told it is accepted. Deliveries are handed out in order per
/// partition key (an event waits while an earlier one of its key waits for a retry), retried
/// at their next attempt time, and parked as dead letters when they give up.
public protocol EventSpoolStore: Sendable {
    /// Writes each event with a pending delivery to each of its sinks, all in one
    /// transaction. An event whose id is already spooled is skipped (a publisher's retry); one
    /// with no sink is not written.
    func append(_ entries: [(event: Event, sinks: [String])], now: Double) throws
    /// Up to `limit` deliveries to `sink` that are due at `now`, oldest first, none behind
    /// a pending one of the same partition key that is not due yet (waiting for a retry).
    /// Deliveries of one key come in their order: deliver them in it, and stop at the first
    /// that fails.
    func due(sink: String, now: Double, limit: Int) throws -> [SpooledDelivery]
    /// Records what became of attempts to deliver to `sink`, in one transaction.
    func settle(_ settlements: [DeliverySettlement], sink: String, now: Double) throws
    /// The earliest time after `now` a pending delivery to `sink` is due (a retry), nil when none waits.
    func nextDue(sink: String, after now: Double) throws -> Double?
    /// Dead letters matching `filter`, oldest first, after `afterSequence`.
    func deadLetters(_ filter: DeadLetterFilter, after afterSequence: Int64, limit: Int) throws -> [SpooledDelivery]
    /// Makes matching dead letters pending again, due at `now`, attempts reset; returns how many.
    func replay(_ filter: DeadLetterFilter, now: Double) throws -> Int
    /// Deletes matching dead letters; returns how many.
    func purge(_ filter: DeadLetterFilter) throws -> Int
    /// Pending deliveries (to `sink`, or to every sink).
    func depth(sink: String?) throws -> Int
}

extension EventSpoolStore {
    public func append(_ events: [Event], sinks: [String], now: Double) throws {
        try append(events.map { ($0, sinks) }, now: now)
    }
}

/// The spool in the embedded SQLite database (WAL mode: a committed event survives kill -9).
public final class SQLiteEventSpool: EventSpoolStore {
    private let database: any DatabaseWriter

    public init(database: SQLiteDatabase) { self.database = database.queue }

    public func append(_ entries: [(event: Event, sinks: [String])], now: Double) throws {
        try database.write { db in
            for (event, sinks) in entries where !sinks.isEmpty {
                try db.execute(sql: """
                    INSERT INTO event (id, type, time, source, partition_key, payload) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT(id) DO NOTHING
                    """, arguments: [event.id, event.type, event.time, event.source, event.partitionKey, event.payload.jsonText])
                guard db.changesCount > 0 else { continue }
                let sequence = db.lastInsertedRowID
                for sink in sinks {
                    try db.execute(sql: "INSERT INTO event_delivery (sequence, sink, state, attempts, next_attempt) VALUES (?, ?, 'pending', 0, ?)",
                                   arguments: [sequence, sink, now])
                }
            }
        }
    }

    static let columns = """
        d.sequence, d.sink, d.attempts, d.first_failure, d.last_error, e.id, e.type, e.time, e.source, e.partition_key, e.payload
        """

    static func delivery(_ row: Row) -> SpooledDelivery {
        let payload: String = row["payload"]
        return SpooledDelivery(
            sequence: row["sequence"], sink: row["sink"],
            event: Event(id: row["id"], type: row["type"], time: row["time"], source: row["source"], partitionKey: row["partition_key"],
                         payload: (try? JSONValue(parsing: payload)) ?? .string(payload)),
            attempts: row["attempts"], firstFailure: row["first_failure"], lastError: row["last_error"])
    }

    public func due(sink: String, now: Double, limit: Int) throws -> [SpooledDelivery] {
        try database.read { db in
            // The keys held back: those with a delivery waiting for a retry (few, found through
            // the waiting index), each from its earliest waiting delivery on.
            try Row.fetchAll(db, sql: """
                WITH held AS (
                  SELECT e.partition_key AS key, min(d.sequence) AS since FROM event_delivery d JOIN event e ON e.sequence = d.sequence
                  WHERE d.sink = ?1 AND d.state = 'pending' AND d.next_attempt > ?2 AND e.partition_key IS NOT NULL
                  GROUP BY e.partition_key)
                SELECT \(Self.columns) FROM event_delivery d JOIN event e ON e.sequence = d.sequence LEFT JOIN held h ON h.key = e.partition_key
                WHERE d.sink = ?1 AND d.state = 'pending' AND d.next_attempt <= ?2 AND (h.since IS NULL OR h.since > d.sequence)
                ORDER BY d.sequence LIMIT ?3
                """, arguments: [sink, now, limit]).map(Self.delivery)
        }
    }

    public func settle(_ settlements: [DeliverySettlement], sink: String, now: Double) throws {
        try database.write { db in
            for settlement in settlements {
                switch settlement {
                case .delivered(let sequence):
                    try db.execute(sql: "DELETE FROM event_delivery WHERE sequence = ? AND sink = ?", arguments: [sequence, sink])
                    try Self.prune(sequence, in: db)
                case .failed(let sequence, let error, let retryAt):
                    try db.execute(sql: """
                        UPDATE event_delivery SET attempts = attempts + 1, next_attempt = ?, last_error = ?, first_failure = coalesce(first_failure, ?)
                        WHERE sequence = ? AND sink = ? AND state = 'pending'
                        """, arguments: [retryAt, error, now, sequence, sink])
                case .dead(let sequence, let error):
                    try db.execute(sql: """
                        UPDATE event_delivery SET state = 'dead', attempts = attempts + 1, last_error = ?, first_failure = coalesce(first_failure, ?)
                        WHERE sequence = ? AND sink = ? AND state = 'pending'
                        """, arguments: [error, now, sequence, sink])
                }
            }
        }
    }

    public func nextDue(sink: String, after now: Double) throws -> Double? {
        try database.read { db in
            try Double.fetchOne(db, sql: "SELECT min(next_attempt) FROM event_delivery WHERE sink = ? AND state = 'pending' AND next_attempt > ?",
                                arguments: [sink, now])
        }
    }

    /// The SQL condition and arguments for dead letters matching `filter`.
    static func condition(_ filter: DeadLetterFilter) -> (String, StatementArguments) {
        var clauses = ["d.state = 'dead'"]
        var arguments: StatementArguments = []
        if let sink = filter.sink { clauses.append("d.sink = ?"); arguments += [sink] }
        if let type = filter.type { clauses.append("e.type = ?"); arguments += [type] }
        if let error = filter.error { clauses.append("instr(d.last_error, ?) > 0"); arguments += [error] }
        if let sequence = filter.sequence { clauses.append("d.sequence = ?"); arguments += [sequence] }
        return (clauses.joined(separator: " AND "), arguments)
    }

    public func deadLetters(_ filter: DeadLetterFilter, after afterSequence: Int64, limit: Int) throws -> [SpooledDelivery] {
        let (condition, arguments) = Self.condition(filter)
        return try database.read { db in
            try Row.fetchAll(db, sql: """
                SELECT \(Self.columns) FROM event_delivery d JOIN event e ON e.sequence = d.sequence
                WHERE \(condition) AND d.sequence > ? ORDER BY d.sequence, d.sink LIMIT ?
                """, arguments: arguments + [afterSequence, limit]).map(Self.delivery)
        }
    }

    public func replay(_ filter: DeadLetterFilter, now: Double) throws -> Int {
        let (condition, arguments) = Self.condition(filter)
        return try database.write { db in
            try db.execute(sql: """
                UPDATE event_delivery SET state = 'pending', attempts = 0, next_attempt = ?, first_failure = NULL
                WHERE rowid IN (SELECT d.rowid FROM event_delivery d JOIN event e ON e.sequence = d.sequence WHERE \(condition))
                """, arguments: [now] + arguments)
            return db.changesCount
        }
    }

    public func purge(_ filter: DeadLetterFilter) throws -> Int {
        let (condition, arguments) = Self.condition(filter)
        return try database.write { db in
            let sequences = try Int64.fetchAll(db, sql: "SELECT d.sequence FROM event_delivery d JOIN event e ON e.sequence = d.sequence WHERE \(condition)",
                                               arguments: arguments)
            try db.execute(sql: "DELETE FROM event_delivery WHERE rowid IN (SELECT d.rowid FROM event_delivery d JOIN event e ON e.sequence = d.sequence WHERE \(condition))",
                           arguments: arguments)
            let count = db.changesCount
            for sequence in Set(sequences) { try Self.prune(sequence, in: db) }
            return count
        }
    }

    public func depth(sink: String?) throws -> Int {
        try database.read { db in
            if let sink {
                return try Int.fetchOne(db, sql: "SELECT count(*) FROM event_delivery WHERE state = 'pending' AND sink = ?", arguments: [sink]) ?? 0
            }
            return try Int.fetchOne(db, sql: "SELECT count(*) FROM event_delivery WHERE state = 'pending'") ?? 0
        }
    }

    /// An event no sink still needs is deleted.
    static func prune(_ sequence: Int64, in db: Database) throws {
        try db.execute(sql: "DELETE FROM event WHERE sequence = ? AND NOT EXISTS (SELECT 1 FROM event_delivery WHERE sequence = ?)",
                       arguments: [sequence, sequence])
    }
}
