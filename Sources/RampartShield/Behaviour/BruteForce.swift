import Metrics
public import RampartCore
import Synchronization

/// `shield.bruteForce`: failed logins counted per client address and per account in sliding
/// windows; enough failures lock the key out, each lockout twice as long as the one before,
/// up to `maxLockout`. A successful login resets both keys.
public struct BruteForceConfiguration: Codable, Sendable, Equatable {
    /// Names of the routes whose requests are login attempts.
    public var routes: [String]
    /// The request field naming the account: a JSON path (`$.user.email`, or just `email`
    /// for a top-level key) or a form field, URL-encoded or multipart.
    public var accountField: String
    public var window: ConfigDuration
    public var maxFailuresPerClient: Int
    public var maxFailuresPerAccount: Int
    /// The first lockout; each one after it doubles.
    public var lockout: ConfigDuration
    public var maxLockout: ConfigDuration
    /// Upstream statuses that mean the login failed.
    public var failureStatuses: [Int]

    public init(routes: [String] = [], accountField: String = "username", window: ConfigDuration = .seconds(900),
                maxFailuresPerClient: Int = 20, maxFailuresPerAccount: Int = 5, lockout: ConfigDuration = .seconds(60),
                maxLockout: ConfigDuration = .seconds(3600), failureStatuses: [Int] = [401, 403]) {
        self.routes = routes
        self.accountField = accountField
        self.window = window
        self.maxFailuresPerClient = maxFailuresPerClient
        self.maxFailuresPerAccount = maxFailuresPerAccount
        self.lockout = lockout
        self.maxLockout = maxLockout
        self.failureStatuses = failureStatuses
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case routes, accountField, window, maxFailuresPerClient, maxFailuresPerAccount, lockout, maxLockout, failureStatuses
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = BruteForceConfiguration()
        routes = try c.decode([String].self, forKey: .routes)
        accountField = try c.decodeIfPresent(String.self, forKey: .accountField) ?? d.accountField
        window = try c.decodeIfPresent(ConfigDuration.self, forKey: .window) ?? d.window
        maxFailuresPerClient = try c.decodeIfPresent(Int.self, forKey: .maxFailuresPerClient) ?? d.maxFailuresPerClient
        maxFailuresPerAccount = try c.decodeIfPresent(Int.self, forKey: .maxFailuresPerAccount) ?? d.maxFailuresPerAccount
        lockout = try c.decodeIfPresent(ConfigDuration.self, forKey: .lockout) ?? d.lockout
        maxLockout = try c.decodeIfPresent(ConfigDuration.self, forKey: .maxLockout) ?? d.maxLockout
        failureStatuses = try c.decodeIfPresent([Int].self, forKey: .failureStatuses) ?? d.failureStatuses
    }

    /// Checks what can be checked without the routes (the gateway checks the route names).
    public func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        if routes.isEmpty { issues.append(.init(path: "\(path).routes", "name at least one login route")) }
        if accountField.isEmpty { issues.append(.init(path: "\(path).accountField", "must not be empty")) }
        if window.duration <= .zero { issues.append(.init(path: "\(path).window", "must be positive")) }
        if maxFailuresPerClient < 1 { issues.append(.init(path: "\(path).maxFailuresPerClient", "must be at least 1, got \(maxFailuresPerClient)")) }
        if maxFailuresPerAccount < 1 { issues.append(.init(path: "\(path).maxFailuresPerAccount", "must be at least 1, got \(maxFailuresPerAccount)")) }
        if lockout.duration <= .zero { issues.append(.init(path: "\(path).lockout", "must be positive")) }
        if maxLockout < lockout { issues.append(.init(path: "\(path).maxLockout", "must be at least lockout (\(lockout)), got \(maxLockout)")) }
        for (index, status) in failureStatuses.enumerated() where !(400...599).contains(status) {
            issues.append(.init(path: "\(path).failureStatuses[\(index)]", "must be a 4xx or 5xx status, got \(status)"))
        }
        return issues
    }

    /// The account a login request names, read from its body; lower-cased and trimmed so
    /// `Alice ` and `alice` are one account.
    public func account(in body: [UInt8]?, contentType: String?) -> String? {
        guard let body, !body.isEmpty else { return nil }
        var values = RequestInputs.Values(include: isAccountField)
        RequestInputs.body(body, contentType: contentType, into: &values)
        guard let raw = values.found.first?.raw else { return nil }
        let account = String(raw.trimmingASCIIWhitespace().lowercased().prefix(256))
        return account.isEmpty ? nil : account
    }

    /// The location of the account field among the inspected values of a JSON or form body.
    func isAccountField(_ location: InputLocation) -> Bool {
        guard !location.isName else { return false }
        switch location.part {
        case .json:
            let wanted = accountField.hasPrefix("$") ? accountField : "$." + accountField
            return location.name == wanted
        case .form, .multipart:
            return location.name == accountField
        default:
            return false
        }
    }
}

/// The brute-force bookkeeping: per key (`client:192.0.2.1`, `account:alice`), the failures
/// inside the window and the lockout state. Bounded: idle keys are forgotten first.
public final class BruteForceGuard: Sendable {
    /// A key that is locked out, and for how much longer.
    public struct Lockout: Sendable, Equatable {
        public let key: String
        public let remaining: Duration
    }

    /// A lockout that a failure just started.
    public struct Started: Sendable, Equatable {
        public let key: String
        public let failures: Int
        public let duration: Duration
        /// How many lockouts in a row this key has had, this one included.
        public let level: Int
    }

    struct Tracker {
        var failures: [Instant] = []
        var lockouts = 0
        var lockedUntil: Instant?
        var lastSeen: Instant

        func lockout(_ key: String, at: Instant) -> Lockout? {
            guard let until = lockedUntil, at < until else { return nil }
            return Lockout(key: key, remaining: until - at)
        }
    }

    /// At most this many keys are tracked.
    public static let keyLimit = 100_000

    private let state = Mutex<[String: Tracker]>([:])
    private let time: any TimeSource

    /// The settings come with each call that needs them, from the configuration the caller
    /// runs with, so a reload needs no hand-over.
    public init(time: any TimeSource) { self.time = time }

    static func keys(client: IPAddress?, account: String?) -> [String] {
        [client.map { "client:\($0)" }, account.map { "account:\($0)" }].compactMap { $0 }
    }

    /// The longest lockout among the client's and the account's, if either is locked out.
    public func lockout(client: IPAddress?, account: String?) -> Lockout? {
        let at = time.now()
        let keys = Self.keys(client: client, account: account)
        return state.withLock { trackers in
            keys.compactMap { trackers[$0]?.lockout($0, at: at) }.max { $0.remaining < $1.remaining }
        }
    }

    /// Counts a failed login; returns the lockouts it started.
    @discardableResult
    public func failed(client: IPAddress?, account: String?, _ settings: BruteForceConfiguration) -> [Started] {
        let at = time.now()
        let window = settings.window.duration
        var started: [Started] = []
        state.withLock { trackers in
            if trackers.count >= Self.keyLimit { Self.forgetIdle(&trackers, at: at, window: window) }
            for key in Self.keys(client: client, account: account) {
                var tracker = trackers[key] ?? Tracker(lastSeen: at)
                if tracker.lockout(key, at: at) != nil { continue }
                // A quiet window after the last lockout ended forgives the earlier ones.
                if let until = tracker.lockedUntil, at - until >= window { tracker.lockouts = 0 }
                tracker.failures.removeAll { at - $0 >= window }
                tracker.failures.append(at)
                tracker.lastSeen = at
                let limit = key.hasPrefix("client:") ? settings.maxFailuresPerClient : settings.maxFailuresPerAccount
                if tracker.failures.count >= limit {
                    let duration = min(settings.lockout.duration * (1 << min(tracker.lockouts, 30)), settings.maxLockout.duration)
                    tracker.lockouts += 1
                    tracker.lockedUntil = at + duration
                    started.append(Started(key: key, failures: tracker.failures.count, duration: duration, level: tracker.lockouts))
                    tracker.failures = []
                }
                trackers[key] = tracker
            }
        }
        for lockout in started {
            Counter(label: "threat_detection_lockouts_total", dimensions: [("key", lockout.key.hasPrefix("client:") ? "client" : "account")]).increment()
        }
        return started
    }

    /// A successful login: the client and the account start afresh.
    public func succeeded(client: IPAddress?, account: String?) {
        let keys = Self.keys(client: client, account: account)
        state.withLock { trackers in
            for key in keys { trackers[key] = nil }
        }
    }

    /// Keys currently locked out, with the time left, longest first.
    public var lockouts: [Lockout] {
        let at = time.now()
        return state.withLock { trackers in trackers.compactMap { $1.lockout($0, at: at) } }.sorted { $0.remaining > $1.remaining }
    }

    /// Drops keys neither locked out nor seen within the window; if that is not enough, the
    /// least recently seen unlocked half.
    static func forgetIdle(_ trackers: inout [String: Tracker], at: Instant, window: Duration) {
        trackers = trackers.filter { key, tracker in tracker.lockout(key, at: at) != nil || at - tracker.lastSeen < window }
        guard trackers.count >= keyLimit else { return }
        let unlocked = trackers.filter { key, tracker in tracker.lockout(key, at: at) == nil }.sorted { $0.value.lastSeen < $1.value.lastSeen }
        for (key, _) in unlocked.prefix(unlocked.count / 2 + 1) { trackers[key] = nil }
    }
}
