public import RampartCore
import Synchronization

/// Remembers who keeps being refused. A key refused `threshold` times within `window` has
/// committed an offence: it is refused outright for `penalty`, doubled for each earlier
/// offence (up to `maxPenalty`), and the offence is reported. Offences are forgotten after
/// a quiet `maxPenalty`.
public final class ViolationTracker: Sendable {
    struct Record {
        var windowStart: Instant
        var refusals = 0
        var offences = 0
        var lastOffence: Instant?
        var penaltyUntil: Instant?
    }

    /// A key's standing, for the admin API.
    public struct Violator: Sendable, Equatable {
        public var key: String
        public var policy: String
        public var refusals: Int
        public var offences: Int
        public var penalisedFor: Duration?
    }

    struct Table {
        var entries: [String: (policy: String, record: Record)] = [:]
        /// Swept when it reaches this size; then twice what survived, so sweeping stays
        /// amortised even when every record is still live.
        var sweepAt = ViolationTracker.firstSweep
    }

    private let records = Mutex(Table())
    private let settings: Mutex<RateLimitsConfiguration.Violations>
    static let firstSweep = 4096

    public init(settings: RateLimitsConfiguration.Violations = .init()) {
        self.settings = Mutex(settings)
    }

    public func apply(_ settings: RateLimitsConfiguration.Violations) { self.settings.withLock { $0 = settings } }

    /// How long `key` is still penalised, if it is.
    public func penalty(for key: String, now: Instant) -> Duration? {
        records.withLock { table in
            guard let until = table.entries[key]?.record.penaltyUntil, until > now else { return nil }
            return until - now
        }
    }

    /// Counts one refusal; returns the offence's penalty and the number of offences when
    /// this refusal made one.
    public func refused(_ key: String, policy: String, now: Instant) -> (penalty: Duration, offences: Int)? {
        let settings = self.settings.withLock { $0 }
        return records.withLock { table in
            var record = table.entries[key]?.record ?? Record(windowStart: now)
            if let last = record.lastOffence, now - last > settings.maxPenalty.duration { record.offences = 0 }
            if now - record.windowStart > settings.window.duration {
                record.windowStart = now
                record.refusals = 0
            }
            record.refusals += 1
            var offence: (Duration, Int)?
            if record.refusals >= settings.threshold {
                let doubled = settings.penalty.duration * (1 << min(record.offences, 20))
                let penalty = min(doubled, settings.maxPenalty.duration)
                record.offences += 1
                record.lastOffence = now
                record.penaltyUntil = now + penalty
                record.refusals = 0
                record.windowStart = now
                offence = (penalty, record.offences)
            }
            table.entries[key] = (policy, record)
            if table.entries.count >= table.sweepAt {
                Self.sweep(&table.entries, now: now, settings: settings)
                table.sweepAt = max(Self.firstSweep, table.entries.count * 2)
            }
            return offence
        }
    }

    /// The keys with the most offences, then refusals, at most `limit` of them.
    public func top(_ limit: Int, now: Instant) -> [Violator] {
        records.withLock { table in
            table.entries.map { key, entry in
                Violator(key: key, policy: entry.policy, refusals: entry.record.refusals, offences: entry.record.offences,
                         penalisedFor: entry.record.penaltyUntil.flatMap { $0 > now ? $0 - now : nil })
            }
            .sorted { ($0.offences, $0.refusals, $1.key) > ($1.offences, $1.refusals, $0.key) }
            .prefix(limit).map { $0 }
        }
    }

    public var count: Int { records.withLock { $0.entries.count } }

    /// Drops records with nothing left to remember: no penalty running, no recent refusal
    /// and no offence young enough to escalate the next one.
    private static func sweep(_ table: inout [String: (policy: String, record: Record)], now: Instant, settings: RateLimitsConfiguration.Violations) {
        table = table.filter { _, entry in
            let r = entry.record
            if let until = r.penaltyUntil, until > now { return true }
            if now - r.windowStart <= settings.window.duration, r.refusals > 0 { return true }
            if let last = r.lastOffence, now - last <= settings.maxPenalty.duration { return true }
            return false
        }
    }
}
