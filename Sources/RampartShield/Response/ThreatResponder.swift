#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import Logging
import Metrics
public import RampartCore
public import RampartStore
import Synchronization

/// What the shield does once it has found something: records the event (buffered, then
/// written to the event store off the request path), blocks the client when the policy says
/// so, alerts on high severities, and keeps the threat level the rate limiter reads.
public final class ThreatResponder: ThreatSignals {
    private struct State {
        var pending: [ThreatEvent] = []
        var written = 0
        /// Severity points, decayed with `levelHalfLife`.
        var level = 0.0
        var levelAt: Instant
        /// When each client and kind was last alerted on, and what was held back since.
        var alerted: [String: (at: Instant, suppressed: Int)] = [:]
    }

    /// Events waiting to be written beyond this many are refused (counted and logged).
    public static let pendingLimit = 50_000
    /// The threat level halves in this long without new events.
    public static let levelHalfLife: Duration = .seconds(60)
    /// Severity points (critical 5, error 4, ...) at which the level reaches one half.
    public static let levelHalfPoint = 50.0

    private let state: Mutex<State>
    public let blocklist: Blocklist
    private let store: any ThreatEventStore
    private let alerts: AlertDispatcher?
    private let time: any TimeSource
    private let wallClock: @Sendable () -> Double
    private let logger: Logger
    /// Where each recorded event is also published (`threat.detected`), when events are on.
    private let events: (any EventPublishing)?

    private let currentConfiguration: @Sendable () -> ThreatResponseConfiguration

    /// - Parameter configuration: reads the configuration in force (the gateway's live one),
    ///   so a reload needs no hand-over.
    public init(configuration: @escaping @Sendable () -> ThreatResponseConfiguration, blocklist: Blocklist, store: any ThreatEventStore, alerts: AlertDispatcher?,
                time: any TimeSource, wallClock: @escaping @Sendable () -> Double, logger: Logger, events: (any EventPublishing)? = nil) {
        self.currentConfiguration = configuration
        self.events = events
        self.state = Mutex(State(levelAt: time.now()))
        self.blocklist = blocklist
        self.store = store
        self.alerts = alerts
        self.time = time
        self.wallClock = wallClock
        self.logger = logger
    }

    public var configuration: ThreatResponseConfiguration { currentConfiguration() }

    /// The wall clock events are stamped with.
    public var now: Double { wallClock() }

    // MARK: - Recording

    /// Records `event`; alerts when it is high and alerts are on.
    public func record(_ event: ThreatEvent) {
        let severity = Self.points(event.severity)
        let at = time.now()
        let policy = configuration
        let (accepted, alert) = state.withLock { s -> (Bool, ThreatAlert?) in
            s.level = Self.decayed(s.level, from: s.levelAt, to: at) + Double(severity)
            s.levelAt = at
            guard s.pending.count < Self.pendingLimit else { return (false, nil) }
            s.pending.append(event)
            guard policy.alertOnHigh, severity >= ThreatSeverity.error.rawValue else { return (true, nil) }
            let key = "\(event.client ?? "-")|\(event.kind)"
            if let last = s.alerted[key], at - last.at < policy.alertInterval.duration {
                s.alerted[key] = (last.at, last.suppressed + 1)
                return (true, nil)
            }
            let suppressed = s.alerted[key]?.suppressed ?? 0
            s.alerted[key] = (at, 0)
            if s.alerted.count > 10_000 {
                let horizon = policy.alertInterval.duration
                s.alerted = s.alerted.filter { at - $0.value.at < horizon }
            }
            return (true, ThreatAlert(event: event, suppressed: suppressed))
        }
        if !accepted {
            Counter(label: "threat_detection_events_unrecorded_total").increment()
            logger.error("threat event buffer full; event not recorded", metadata: ["kind": "\(event.kind)", "client": "\(event.client ?? "-")"])
        }
        if let alert { raise(alert, to: policy.alertWebhook) }
        events?.publish(Self.published(event))
    }

    /// A threat event as the event bus carries it (as `type`, with `extra` members), keyed by
    /// client so one client's events stay in order.
    static func published(_ event: ThreatEvent, as type: String = "threat.detected", extra: [String: JSONValue] = [:]) -> Event {
        var payload: [String: JSONValue] = extra.merging([
            "kind": .string(event.kind), "rule": .string(event.rule), "severity": .string(event.severity), "action": .string(event.action),
            "score": .number(Double(event.score)),
        ]) { $1 }
        if let client = event.client { payload["client"] = .string(client) }
        if let requestID = event.requestID { payload["requestId"] = .string(requestID) }
        if let location = event.location { payload["location"] = .string(location) }
        if let detail = event.detail { payload["detail"] = .string(detail) }
        return Event(type: type, time: event.time, source: "rampart/shield", partitionKey: event.client,
                     payload: .object(payload))
    }

    /// Records what threat detection found in one request, and blocks the client when the
    /// request was refused with a critical finding and `blockOnCritical` is on. `exempt`
    /// clients (allow-listed) are never blocked.
    public func detected(_ report: InspectionReport, refused: Bool, requestID: String?, client: IPAddress?, exempt: Bool) {
        let at = wallClock()
        let action = refused ? "blocked" : "logged"
        for finding in report.findings {
            record(ThreatEvent(time: at, requestID: requestID, client: client?.description, kind: finding.kind.rawValue, rule: finding.rule,
                               location: finding.location.description, severity: finding.severity.name, action: action,
                               score: finding.severity.rawValue))
        }
        let policy = configuration
        if refused, policy.blockOnCritical, !exempt, let client, let worst = report.worst, worst.severity == .critical {
            block(client, for: policy.blockDuration.duration, kind: worst.kind.rawValue, reason: "critical \(worst.kind.rawValue) finding",
                  requestID: requestID)
        }
    }

    /// Blocks `client` for `duration` and records it as a critical event of `kind`.
    public func block(_ client: IPAddress, for duration: Duration, kind: String, reason: String, requestID: String? = nil, detail: String? = nil) {
        let range = CIDRBlock(address: client, prefixLength: client.family.bitWidth)
        do {
            try blocklist.add(range, reason: reason, duration: duration.secondsValue)
        } catch {
            logger.error("automatic block not stored", metadata: ["client": "\(client)", "error": "\(error)"])
        }
        logger.warning("address blocked automatically", metadata: ["client": "\(client)", "reason": "\(reason)", "for": "\(duration)"])
        record(ThreatEvent(time: wallClock(), requestID: requestID, client: client.description, kind: kind, rule: "auto_block",
                           location: range.description, severity: ThreatSeverity.critical.name, action: "client_blocked",
                           detail: "\(reason); for \(Int(duration.secondsValue))s"))
    }

    // MARK: - ThreatSignals

    public var threatLevel: Double {
        let at = time.now()
        let points = state.withLock { Self.decayed($0.level, from: $0.levelAt, to: at) }
        return points / (points + Self.levelHalfPoint)
    }

    /// A repeat rate-limit violator becomes a threat event (error; critical from ten
    /// violations on, which blocks it when `blockOnCritical` is on).
    public func reportRateLimitAbuse(_ abuse: RateLimitAbuse) {
        let critical = abuse.violations >= 10
        let event = ThreatEvent(time: wallClock(), requestID: abuse.requestID, client: abuse.client?.description, kind: "rate_limit_abuse",
                                rule: abuse.policy, location: abuse.key, severity: (critical ? ThreatSeverity.critical : .error).name,
                                action: "reported", detail: "\(abuse.violations) violations")
        record(event)
        let policy = configuration
        if critical, policy.blockOnCritical, let client = abuse.client {
            block(client, for: policy.blockDuration.duration, kind: "rate_limit_abuse",
                  reason: "\(abuse.violations) rate-limit violations of \(abuse.policy)", requestID: abuse.requestID)
        }
    }

    // MARK: - Store

    /// Writes the buffered events to the store and trims it to `keepEvents`; run often, off
    /// the request path. Events a failing store refused stay buffered for the next try.
    public func flush() {
        let batch = state.withLock { s -> [ThreatEvent] in
            defer { s.pending = [] }
            return s.pending
        }
        guard !batch.isEmpty else { return }
        do {
            try store.append(batch)
            let written = state.withLock { s -> Int in
                s.written += batch.count
                return s.written
            }
            // Trimming costs a scan; do it once per thousand events written.
            if written / 1000 != (written - batch.count) / 1000 { try store.prune(keeping: configuration.keepEvents) }
        } catch {
            state.withLock { s in s.pending = batch + s.pending }
            logger.error("threat events not written; will retry", metadata: ["count": "\(batch.count)", "error": "\(error)"])
        }
    }

    /// Stored events (after writing the buffered ones), newest first.
    public func events(_ query: ThreatEventQuery) throws -> [ThreatEvent] {
        flush()
        return try store.events(query)
    }

    /// Stored events by kind and severity.
    public func totals() throws -> [ThreatEventTotal] {
        flush()
        return try store.totals()
    }

    // MARK: -

    private func raise(_ alert: ThreatAlert, to webhook: AlertWebhookConfiguration?) {
        let event = alert.event
        logger.warning("threat alert", metadata: ["kind": "\(event.kind)", "rule": "\(event.rule)", "severity": "\(event.severity)",
                                                  "client": "\(event.client ?? "-")", "suppressed": "\(alert.suppressed)"])
        if let alerts, let webhook { alerts.send(alert, to: webhook) }
        events?.publish(Self.published(event, as: "alert.raised", extra: ["suppressed": .number(Double(alert.suppressed))]))
    }

    static func points(_ severity: String) -> Int {
        ThreatSeverity.allCases.first { $0.name == severity }?.rawValue ?? 0
    }

    static func decayed(_ points: Double, from: Instant, to: Instant) -> Double {
        let elapsed = max(0, (to - from).secondsValue)
        return points * exp2(-elapsed / levelHalfLife.secondsValue)
    }
}
