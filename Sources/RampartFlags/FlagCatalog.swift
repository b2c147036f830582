import Foundation
public import RampartCore
import Synchronization

/// Where the flags in force come from: flag files and folders of them (read again on
/// `refresh`), and flags managed through the admin API. Every change publishes one new set
/// to `flags` at once.
///
/// A flag key lives in one place. A file that fails to parse, or whose new version defines a
/// key another file or the admin API already has, is refused with its errors and its last
/// good version stays in force.
public final class FlagCatalog: Sendable {
    /// How one source stands, for the admin API.
    public struct SourceStatus: Sendable {
        public let path: String
        public let flags: [String]
        /// When its current version was put in force (seconds since 1970); nil if never.
        public let loadedAt: Double?
        /// Why its newest version was refused; empty when it is in force.
        public let errors: [String]
    }

    /// Why a managed flag cannot be stored.
    public enum Conflict: Error, Sendable, CustomStringConvertible {
        case definedInFile(key: String, path: String)

        public var description: String {
            switch self {
            case .definedInFile(let key, let path): "flag \"\(key)\" is defined in \(path); change it there"
            }
        }
    }

    private struct FileState: Sendable {
        var digest: UInt64
        /// The version in force (the last good one).
        var flags: [Flag]
        var loadedAt: Double?
        var errors: [ConfigurationIssue]
    }

    private struct State: Sendable {
        var sources: [String]
        var files: [String: FileState] = [:]
        /// Files named by no source any more, or unreadable, with why.
        var sourceErrors: [String: [ConfigurationIssue]] = [:]
        var managed: [String: ManagedFlag] = [:]
    }

    public let flags: FeatureFlags
    private let state: Mutex<State>
    private let now: @Sendable () -> Double

    /// Loads every source. At start nothing may be wrong: a broken file or a key defined twice
    /// refuses the whole catalog.
    /// - Throws: `ConfigurationError` naming each file and problem.
    public init(sources: [String], managed: [ManagedFlag] = [], flags: FeatureFlags = FeatureFlags(),
                now: @escaping @Sendable () -> Double = wallClockSeconds) throws(ConfigurationError) {
        self.flags = flags
        self.now = now
        var initial = State(sources: sources)
        for flag in managed { initial.managed[flag.key] = flag }
        self.state = Mutex(initial)
        let issues = refresh()
        if !issues.isEmpty { throw ConfigurationError(issues: issues) }
    }

    /// Reads the sources again and puts whatever changed in force. Returns the problems found
    /// in changed files (the files keep their last good version).
    @discardableResult
    public func refresh() -> [ConfigurationIssue] {
        let sources = state.withLock { $0.sources }
        let (paths, listing) = Self.files(in: sources)
        var contents: [String: (digest: UInt64, bytes: [UInt8]?, error: ConfigurationIssue?)] = [:]
        for path in paths {
            do {
                let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
                contents[path] = (Self.digest(bytes), bytes, nil)
            } catch {
                contents[path] = (0, nil, ConfigurationIssue(path: path, "cannot be read (\(error.localizedDescription))"))
            }
        }
        let at = now()
        return state.withLock { state -> [ConfigurationIssue] in
            var issues = listing
            state.sourceErrors = [:]
            for issue in listing { state.sourceErrors[issue.path, default: []].append(issue) }
            // Files that are gone leave with their flags.
            var dirty = false
            for path in state.files.keys where contents[path] == nil {
                state.files[path] = nil
                dirty = true
            }
            // Unchanged files keep their keys; changed ones are checked against them.
            var owners: [String: String] = [:]
            for (key, _) in state.managed { owners[key] = ManagedFlag.source }
            var changed: [String] = []
            for path in paths.sorted() {
                let read = contents[path]!
                if let known = state.files[path], known.digest == read.digest, read.error == nil {
                    for flag in known.flags { owners[flag.key] = path }
                } else {
                    changed.append(path)
                }
            }
            for path in changed {
                let read = contents[path]!
                var refused: [ConfigurationIssue] = []
                var parsed: [Flag] = []
                if let error = read.error {
                    refused = [error]
                } else {
                    do throws(ConfigurationError) {
                        parsed = try FlagDefinitions.parse(read.bytes!, source: path)
                    } catch {
                        refused = error.issues
                    }
                }
                if refused.isEmpty {
                    for flag in parsed {
                        if let owner = owners[flag.key] {
                            let place = owner == ManagedFlag.source ? "the admin API" : owner
                            refused.append(ConfigurationIssue(path: "\(path): flags.\(flag.key)", "is already defined in \(place)"))
                        }
                    }
                }
                if refused.isEmpty {
                    dirty = true
                    state.files[path] = FileState(digest: read.digest, flags: parsed, loadedAt: at, errors: [])
                    for flag in parsed { owners[flag.key] = path }
                } else {
                    issues += refused
                    // The last good version stays; the digest is kept so the same broken bytes
                    // are reported once, not on every refresh.
                    var kept = state.files[path] ?? FileState(digest: read.digest, flags: [], loadedAt: nil, errors: [])
                    kept.digest = read.digest
                    kept.errors = refused
                    state.files[path] = kept
                    for flag in kept.flags where owners[flag.key] == nil { owners[flag.key] = path }
                }
            }
            if dirty { publish(state) }
            return issues
        }
    }

    /// Changes the list of sources (a configuration reload) and reads them.
    @discardableResult
    public func setSources(_ sources: [String]) -> [ConfigurationIssue] {
        let differs = state.withLock { state -> Bool in
            defer { state.sources = sources }
            return state.sources != sources
        }
        if differs { state.withLock { publish($0) } }
        return refresh()
    }

    /// Stores or replaces a flag made through the admin API.
    public func put(_ flag: ManagedFlag) throws(Conflict) {
        try state.withLock { state throws(Conflict) in
            if let path = Self.fileOwning(flag.key, in: state) { throw .definedInFile(key: flag.key, path: path) }
            state.managed[flag.key] = flag
            publish(state)
        }
    }

    /// Replaces every flag made through the admin API with `flags` (as read from the store,
    /// which another replica may have changed). A key a file defines stays the file's: those
    /// keys are returned and not served from the store.
    @discardableResult
    public func setManaged(_ flags: [ManagedFlag]) -> [(key: String, path: String)] {
        state.withLock { state in
            var shadowed: [(key: String, path: String)] = []
            var managed: [String: ManagedFlag] = [:]
            for flag in flags {
                if let path = Self.fileOwning(flag.key, in: state) { shadowed.append((flag.key, path)) } else { managed[flag.key] = flag }
            }
            state.managed = managed
            publish(state)
            return shadowed
        }
    }

    /// Removes a flag made through the admin API; false if there was none.
    @discardableResult
    public func remove(_ key: String) -> Bool {
        state.withLock { state in
            guard state.managed.removeValue(forKey: key) != nil else { return false }
            publish(state)
            return true
        }
    }

    /// The file defining `key`, if a file does.
    public func file(defining key: String) -> String? { state.withLock { Self.fileOwning(key, in: $0) } }

    public func managed(_ key: String) -> ManagedFlag? { state.withLock { $0.managed[key] } }

    public var managedFlags: [ManagedFlag] { state.withLock { $0.managed.values.sorted { $0.key < $1.key } } }

    public var sourceStatus: [SourceStatus] {
        state.withLock { state in
            var out = state.files.keys.sorted().map { path in
                let file = state.files[path]!
                return SourceStatus(path: path, flags: file.flags.map(\.key).sorted(), loadedAt: file.loadedAt,
                                    errors: file.errors.map(\.description))
            }
            for path in state.sourceErrors.keys.sorted() {
                out.append(SourceStatus(path: path, flags: [], loadedAt: nil, errors: state.sourceErrors[path]!.map(\.description)))
            }
            return out
        }
    }

    private static func fileOwning(_ key: String, in state: State) -> String? {
        state.files.keys.sorted().first { path in state.files[path]!.flags.contains { $0.key == key } }
    }

    private func publish(_ state: State) {
        var all: [Flag] = []
        for path in state.files.keys.sorted() { all += state.files[path]!.flags }
        all += state.managed.keys.sorted().map { state.managed[$0]!.flag }
        flags.replace(all)
    }

    /// The flag files of `sources`: files as given, folders as their `*.json` files (not
    /// recursive), in name order; a missing path is a problem.
    static func files(in sources: [String]) -> (paths: [String], problems: [ConfigurationIssue]) {
        var paths: [String] = []
        var problems: [ConfigurationIssue] = []
        let manager = FileManager.default
        for source in sources {
            var isFolder: ObjCBool = false
            guard manager.fileExists(atPath: source, isDirectory: &isFolder) else {
                problems.append(ConfigurationIssue(path: source, "no such file or folder"))
                continue
            }
            if isFolder.boolValue {
                do {
                    let names = try manager.contentsOfDirectory(atPath: source).filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }.sorted()
                    paths += names.map { source.hasSuffix("/") ? source + $0 : source + "/" + $0 }
                } catch {
                    problems.append(ConfigurationIssue(path: source, "cannot be listed (\(error.localizedDescription))"))
                }
            } else {
                paths.append(source)
            }
        }
        var seen = Set<String>()
        return (paths.filter { seen.insert($0).inserted }, problems)
    }

    /// FNV-1a of a file's bytes: enough to notice a change.
    static func digest(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}
