import GRDB
import Synchronization

/// Something the shield saw and what it did about it: a detector's finding, a lockout, a
/// flood, a rate-limit abuser, a CSP violation report.
public struct ThreatEvent: Sendable, Equatable, Codable {
    /// Assigned by the store, increasing; nil until stored.
    public var id: Int64?
    /// Seconds since 1970.
    public var time: Double
    public var requestID: String?
    public var client: String?
    /// `sql_injection`, `brute_force`, `flood`, `csp_violation`, ...
    public var kind: String
    /// What fired: a detector rule, a lockout key, a directive.
    public var rule: String
    /// Where in the request (`query:q`), or what it concerned (an account, a document URL).
    public var location: String?
    /// `notice`, `warning`, `error` or `critical`.
    public var severity: String
    /// `blocked`, `logged`, `locked_out`, `alerted`, `reported`, ...
    public var action: String
    /// The anomaly score it added (0 for events outside the detectors).
    public var score: Int
    /// More about it, as compact JSON or text.
    public var detail: String?

    public init(id: Int64? = nil, time: Double, requestID: String? = nil, client: String? = nil, kind: String, rule: String,
                location: String? = nil, severity: String, action: String, score: Int = 0, detail: String? = nil) {
        self.id = id
        self.time = time
        self.requestID = requestID
        self.client = client
        self.kind = kind
        self.rule = rule
        self.location = location
        self.severity = severity
        self.action = action
        self.score = score
        self.detail = detail
    }
}

/// How many stored events share a kind and severity.
public struct ThreatEventTotal: Sendable, Equatable, Codable {
    public var kind: String
    public var severity: String
    public var count: Int

    public init(kind: String, severity: String, count: Int) {
        self.kind = kind
        self.severity = severity
        self.count = count
    }
}

/// Which stored events to list: newest first, optionally of one kind or client, older than
/// an id (the previous page's last).
public struct ThreatEventQuery: Sendable, Equatable {
    public var kind: String?
    public var client: String?
    public var before: Int64?
    public var limit: Int

    public init(kind: String? = nil, client: String? = nil, before: Int64? = nil, limit: Int = 50) {
        self.kind = kind
        self.client = client
        self.before = before
        self.limit = limit
    }
}

/// Where threat events are kept: SQLite by default, memory for a process without a file.
public protocol ThreatEventStore: Sendable {
    /// Stores `events` in order, assigning ids.
    func append(_ events: [ThreatEvent]) throws
    func events(_ query: ThreatEventQuery) throws -> [ThreatEvent]
    func totals() throws -> [ThreatEventTotal]
    /// Deletes all but the newest `keeping` events.
    func prune(keeping: Int) throws
}

/// Threat events in the embedded SQLite database.
public final class SQLiteThreatEventStore: ThreatEventStore {
    private let database: any DatabaseWriter

    public init(database: SQLiteDatabase) { self.database = database.queue }

    public func append(_ events: [ThreatEvent]) throws {
        guard !events.isEmpty else { return }
        try database.write { db in
            let statement = try db.makeStatement(sql: """
                INSERT INTO threat_event (time, request_id, client, kind, rule, location, severity, action, score, detail)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for event in events {
                try statement.execute(arguments: [event.time, event.requestID, event.client, event.kind, event.rule, event.location,
                                                  event.severity, event.action, event.score, event.detail])
            }
        }
    }

    public func events(_ query: ThreatEventQuery) throws -> [ThreatEvent] {
        var conditions: [String] = []
        var arguments: [(any DatabaseValueConvertible)?] = []
        if let kind = query.kind { conditions.append("kind = ?"); arguments.append(kind) }
        if let client = query.client { conditions.append("client = ?"); arguments.append(client) }
        if let before = query.before { conditions.append("id < ?"); arguments.append(before) }
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        arguments.append(query.limit)
        return try database.read { db in
            try Row.fetchAll(db, sql: """
                SELECT id, time, request_id, client, kind, rule, location, severity, action, score, detail
                FROM threat_event \(filter) ORDER BY id DESC LIMIT ?
                """, arguments: StatementArguments(arguments)).map { row in
                ThreatEvent(id: row["id"], time: row["time"], requestID: row["request_id"], client: row["client"], kind: row["kind"],
                            rule: row["rule"], location: row["location"], severity: row["severity"], action: row["action"],
                            score: row["score"], detail: row["detail"])
            }
        }
    }

    public func totals() throws -> [ThreatEventTotal] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT kind, severity, COUNT(*) AS n FROM threat_event GROUP BY kind, severity ORDER BY kind, severity")
                .map { ThreatEventTotal(kind: $0["kind"], severity: $0["severity"], count: $0["n"]) }
        }
    }

    public func prune(keeping: Int) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM threat_event WHERE id <= (SELECT MAX(id) FROM threat_event) - ?", arguments: [keeping])
        }
    }
}

/// Threat events for one process only.
public final class MemoryThreatEventStore: ThreatEventStore {
    private let state = Mutex<(next: Int64, events: [ThreatEvent])>((1, []))

    public init() {}

    public func append(_ events: [ThreatEvent]) throws {
        state.withLock { s in
            for var event in events {
                event.id = s.next
                s.next += 1
                s.events.append(event)
            }
        }
    }

    public func events(_ query: ThreatEventQuery) throws -> [ThreatEvent] {
        let all = state.withLock { $0.events }
        return Array(all.reversed().lazy.filter { event in
            (query.kind.map { event.kind == $0 } ?? true) && (query.client.map { event.client == $0 } ?? true)
                && (query.before.map { event.id! < $0 } ?? true)
        }.prefix(query.limit))
    }

    public func totals() throws -> [ThreatEventTotal] {
        var counts: [String: [String: Int]] = [:]
        for event in state.withLock({ $0.events }) { counts[event.kind, default: [:]][event.severity, default: 0] += 1 }
        return counts.keys.sorted().flatMap { kind in
            counts[kind]!.keys.sorted().map { ThreatEventTotal(kind: kind, severity: $0, count: counts[kind]![$0]!) }
        }
    }

    public func prune(keeping: Int) throws {
        state.withLock { s in
            if s.events.count > keeping { s.events.removeFirst(s.events.count - keeping) }
        }
    }
}
