import Logging
import Metrics
import RampartCore
public import RampartFlags
import RampartStore
import Synchronization

/// The gateway's feature flags: the catalog (files and managed flags), the store behind the
/// managed ones, and what every evaluation the gateway makes leaves behind: metrics, usage
/// counts for the admin API, and exposure events for experiments.
public final class FlagRuntime: Sendable {
    public let catalog: FlagCatalog
    let store: any FlagRecordStore
    /// The PostgreSQL pool behind `store`, which must run while the gateway does.
    let postgres: PostgresDatabase?
    let usage = FlagUsage()
    let exposures: ExposureLog?
    /// Where flag changes are published (`audit.flag_changed`), when events are on.
    let audit: (any EventPublishing)?
    let logger: Logger
    let now: @Sendable () -> Double
    /// What the store held when last read: its revision, and the stored flags not served
    /// with why (they no longer compile, say after an upgrade, or a file now defines the
    /// key). They stay in the store and are shown by the admin API.
    private let loaded = Mutex<(revision: FlagStoreRevision?, unreadable: [(key: String, problem: String)])>((nil, []))
    /// Whether the last read of the store failed (logged once per outage).
    private let storeFailing = Atomic<Bool>(false)

    public var flags: FeatureFlags { catalog.flags }

    var unreadable: [(key: String, problem: String)] { loaded.withLock { $0.unreadable } }

    /// Whether other processes may change the store (a database, not memory), so it is
    /// watched for their changes.
    var isStoreShared: Bool { !(store is MemoryFlagRecordStore) }

    /// Reads the flag files; managed flags are read from the store by `start()`.
    /// - Throws: `ConfigurationError` when the database cannot be opened, or a flag file is
    ///   broken or a key is defined twice.
    /// - Parameters:
    ///   - exposureEvents: where exposures go (`flag.exposure`); without it, to the `exposures` log.
    ///   - audit: where flag changes are published.
    init(_ configuration: FlagsConfiguration, logger: Logger, now: @escaping @Sendable () -> Double,
         exposureEvents: (any EventPublishing)? = nil, audit: (any EventPublishing)? = nil) throws(ConfigurationError) {
        let store: any FlagRecordStore
        var postgres: PostgresDatabase?
        do {
            if let database = configuration.database, PostgresDatabase.isURL(database) {
                let pool = try PostgresDatabase(url: database, path: "flags.database", logger: logger)
                postgres = pool
                store = PostgresFlagRecordStore(database: pool)
            } else if let database = configuration.database {
                store = SQLiteFlagRecordStore(database: try SQLiteDatabase(path: database))
            } else {
                store = MemoryFlagRecordStore()
            }
        } catch let issue as ConfigurationIssue {
            throw ConfigurationError(issues: [issue])
        } catch {
            throw ConfigurationError(issues: [.init(path: "flags.database", "cannot open \(configuration.database ?? "") (\(error))")])
        }
        self.catalog = try FlagCatalog(sources: configuration.sources, flags: FeatureFlags(now: now), now: now)
        self.store = store
        self.postgres = postgres
        self.exposures = configuration.exposures ? ExposureLog(logger: logger, events: exposureEvents) : nil
        self.audit = audit
        self.logger = logger
        self.now = now
    }

    /// Reads the managed flags before the gateway serves.
    /// - Throws: `ConfigurationError` at `flags.database` when the store cannot be read.
    func start() async throws(ConfigurationError) {
        do {
            try await load()
        } catch {
            throw ConfigurationError(issues: [.init(path: "flags.database", "cannot read the stored flags: \(await explain(error))")])
        }
    }

    /// The store's error, with why no connection can be made when that is the cause.
    private func explain(_ error: any Error) async -> String {
        guard let postgres, let reason = await postgres.diagnose() else { return "\(error)" }
        return "\(error); connecting says: \(reason)"
    }

    /// Reads the managed flags again if the store changed since the last read (another
    /// replica, or this one, stored a change). A failing store is logged once per outage and
    /// the flags last read stay in force.
    func sync() async {
        do {
            try await load()
            if storeFailing.exchange(false, ordering: .relaxed) {
                logger.notice("feature flags: the flag store answers again")
            }
        } catch {
            // Stopping cancels a read in flight; that is no outage.
            if Task.isCancelled { return }
            if !storeFailing.exchange(true, ordering: .relaxed) {
                let explanation = await explain(error)
                logger.error("feature flags: the flag store cannot be read; the flags last read stay in force",
                             metadata: ["error": "\(explanation)"])
            }
        }
    }

    private func load() async throws {
        let revision = try await store.revision()
        guard revision != loaded.withLock({ $0.revision }) else { return }
        let records = try await store.all()
        var managed: [ManagedFlag] = []
        var unreadable: [(key: String, problem: String)] = []
        for record in records {
            do {
                let document = try JSONValue(parsing: record.document)
                managed.append(try ManagedFlag(document: document, updatedBy: record.updatedBy, updatedAt: record.updatedAt))
            } catch {
                unreadable.append((record.key, "\(error)"))
            }
        }
        for (key, path) in catalog.setManaged(managed) {
            unreadable.append((key, "\(path) defines this key; the file's flag is served"))
        }
        let known = loaded.withLock { loaded in
            defer { loaded = (revision, unreadable) }
            return Set(loaded.unreadable.map(\.key))
        }
        for (key, problem) in unreadable where !known.contains(key) {
            logger.error("feature flags: a stored flag is not served", metadata: ["flag": "\(key)", "error": "\(problem)"])
        }
    }

    /// Resolves a flag for a caller and records the evaluation.
    func resolve(_ key: String, context: JSONValue) -> Resolution {
        let resolution = flags.resolve(key, context: context)
        record(resolution, context: context)
        return resolution
    }

    /// Every flag for a caller, recorded.
    func resolveAll(context: JSONValue) -> (version: String, resolutions: [Resolution]) {
        let all = flags.resolveAll(context: context)
        for resolution in all.resolutions { record(resolution, context: context) }
        return all
    }

    private func record(_ resolution: Resolution, context: JSONValue) {
        let known = resolution.errorCode != .flagNotFound
        usage.count(flag: known ? resolution.key : FlagUsage.unknownFlag, variant: resolution.variant, reason: resolution.reason)
        if let exposures, resolution.metadata["experiment"] == .bool(true), let variant = resolution.variant,
           case .string(let subject)? = context["targetingKey"] {
            exposures.expose(flag: resolution.key, variant: variant, subject: subject, at: now())
        }
    }

    // MARK: - Managed flags

    /// Why a managed flag change was refused.
    enum ChangeError: Error {
        case invalid(ConfigurationError)
        case conflict(String)
        case store(String)
    }

    /// Creates or updates a flag from an admin API document.
    func put(document: JSONValue, actor: String) async throws(ChangeError) -> (flag: ManagedFlag, action: FlagAuditEntry.Action) {
        let flag: ManagedFlag
        do {
            flag = try ManagedFlag(document: document, updatedBy: actor, updatedAt: now())
        } catch {
            throw .invalid(error)
        }
        if let path = catalog.file(defining: flag.key) {
            throw .conflict("flag \"\(flag.key)\" is defined in \(path); change it there")
        }
        let action: FlagAuditEntry.Action
        do {
            action = try await store.put(FlagRecord(key: flag.key, document: document.jsonText, updatedBy: actor, updatedAt: flag.updatedAt))
        } catch {
            throw .store("the flag store failed: \(error)")
        }
        do {
            try catalog.put(flag)
        } catch {
            // A file took the key between the check and the store; the file wins, the record
            // stays for the operator to see.
            throw .conflict(error.description)
        }
        logger.notice("feature flag \(action.rawValue)d", metadata: ["flag": "\(flag.key)", "actor": "\(actor)"])
        publishChange(flag.key, action: action.rawValue, actor: actor, document: document)
        return (flag, action)
    }

    /// Deletes a flag made through the admin API.
    func delete(_ key: String, actor: String) async throws(ChangeError) -> Bool {
        if catalog.managed(key) == nil, let path = catalog.file(defining: key) {
            throw .conflict("flag \"\(key)\" is defined in \(path); remove it there")
        }
        let removed: Bool
        do {
            removed = try await store.remove(key, actor: actor, time: now())
        } catch {
            throw .store("the flag store failed: \(error)")
        }
        let wasServed = catalog.remove(key)
        if removed || wasServed {
            logger.notice("feature flag deleted", metadata: ["flag": "\(key)", "actor": "\(actor)"])
            publishChange(key, action: "delete", actor: actor, document: nil)
        }
        return removed || wasServed
    }

    /// `audit.flag_changed`, keyed by flag so one flag's changes stay in order.
    private func publishChange(_ key: String, action: String, actor: String, document: JSONValue?) {
        guard let audit else { return }
        var payload: [String: JSONValue] = ["flag": .string(key), "action": .string(action), "actor": .string(actor)]
        if let document { payload["document"] = document }
        audit.publish(Event(type: "audit.flag_changed", time: now(), source: "rampart/flags", partitionKey: key,
                            payload: .object(payload)))
    }
}

/// Evaluation counts by flag, variant and reason: a Prometheus counter
/// (`feature_flag_evaluations_total`) and the same numbers for the admin API. Flag keys that
/// do not exist are counted under one label, so callers cannot grow the label set.
final class FlagUsage: Sendable {
    struct Key: Hashable, Sendable {
        let flag: String
        let variant: String
        let reason: String
    }

    static let unknownFlag = "(unknown)"

    private let counters = MetricHandles<Key, Counter> { key in
        Counter(label: "feature_flag_evaluations_total", dimensions: [("flag", key.flag), ("variant", key.variant), ("reason", key.reason)])
    }
    private let counts = Mutex<[Key: Int]>([:])

    func count(flag: String, variant: String?, reason: Resolution.Reason) {
        let key = Key(flag: flag, variant: variant ?? "", reason: reason.rawValue)
        counters[key].increment()
        counts.withLock { $0[key, default: 0] += 1 }
    }

    /// Counts for one flag: variant -> reason -> count.
    func counts(for flag: String) -> [String: [String: Int]] {
        counts.withLock { counts in
            var out: [String: [String: Int]] = [:]
            for (key, count) in counts where key.flag == flag { out[key.variant.isEmpty ? "(none)" : key.variant, default: [:]][key.reason] = count }
            return out
        }
    }

    func total(for flag: String) -> Int { counts.withLock { $0.filter { $0.key.flag == flag }.values.reduce(0, +) } }
}

/// Experiment exposures: the first time a subject is served a variant of an experiment, one
/// `flag.exposure` event on the event bus (keyed by subject), or one JSON line on the
/// `exposures` log when events are off. Repeats are remembered in a bounded set, forgotten all
/// at once when it fills.
final class ExposureLog: Sendable {
    private let logger: Logger
    private let events: (any EventPublishing)?
    private let seen = Mutex<Set<Int>>([])
    static let capacity = 100_000

    init(logger: Logger, events: (any EventPublishing)? = nil) {
        self.events = events
        var log = logger
        log[metadataKey: "log"] = "exposures"
        self.logger = log
    }

    /// Returns whether the exposure was new (and so emitted).
    @discardableResult
    func expose(flag: String, variant: String, subject: String, at time: Double) -> Bool {
        var hasher = Hasher()
        hasher.combine(flag)
        hasher.combine(variant)
        hasher.combine(subject)
        let fingerprint = hasher.finalize()
        let fresh = seen.withLock { seen -> Bool in
            if seen.count >= Self.capacity { seen.removeAll(keepingCapacity: true) }
            return seen.insert(fingerprint).inserted
        }
        guard fresh else { return false }
        if let events {
            events.publish(Event(type: "flag.exposure", time: time, source: "rampart/flags", partitionKey: subject,
                                 payload: ["flag": .string(flag), "variant": .string(variant), "subject": .string(subject)]))
            return true
        }
        logger.info("experiment exposure", metadata: [
            "event": "flag_exposure", "flag": "\(flag)", "variant": "\(variant)", "subject": "\(subject)", "time": "\(time)",
        ])
        return true
    }
}
