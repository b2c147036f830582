import Synchronization

/// One problem found in a configuration, located by its path in the document
/// (`pools.api.instances[1].url`), printed as `path: problem`.
public struct ConfigurationIssue: Error, Hashable, Sendable, CustomStringConvertible {
    public let path: String
    public let problem: String

    public init(path: String, _ problem: String) {
        self.path = path
        self.problem = problem
    }

    public var description: String { path.isEmpty ? problem : "\(path): \(problem)" }
}

/// A configuration refused with every issue found in it.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public let issues: [ConfigurationIssue]

    public init(issues: [ConfigurationIssue]) { self.issues = issues }

    public var description: String { issues.map(\.description).joined(separator: "\n") }
}

/// Renders a coding path the way configuration issues name places: `a.b[2].c`.
public func configurationPath(_ codingPath: [any CodingKey]) -> String {
    var path = ""
    for key in codingPath {
        if let index = key.intValue {
            path += "[\(index)]"
        } else {
            if !path.isEmpty { path += "." }
            path += key.stringValue
        }
    }
    return path
}

/// Joins a path and a child key: `join("pools", "api")` is `pools.api`.
public func configurationPath(_ parent: String, _ child: String) -> String {
    parent.isEmpty ? child : "\(parent).\(child)"
}

/// Collects issues found while decoding, so one pass reports every unknown key rather
/// than stopping at the first. Handed to decoders through `userInfo[.configurationIssues]`.
public final class IssueCollector: Sendable {
    private let found = Mutex<[ConfigurationIssue]>([])

    public init() {}

    public func add(_ issue: ConfigurationIssue) { found.withLock { $0.append(issue) } }

    public var issues: [ConfigurationIssue] { found.withLock { $0 } }
}

extension CodingUserInfoKey {
    /// Where an `IssueCollector` travels during configuration decoding.
    public static let configurationIssues = CodingUserInfoKey(rawValue: "rampart.configurationIssues")!
}

/// A coding key for any string, used to list the keys a document actually holds.
public struct AnyCodingKey: CodingKey, Hashable {
    public let stringValue: String
    public let intValue: Int?
    public init(stringValue: String) { self.stringValue = stringValue; self.intValue = nil }
    public init(intValue: Int) { self.stringValue = "\(intValue)"; self.intValue = intValue }
    public init(_ string: String) { self.init(stringValue: string) }
}

extension Decoder {
    /// Reports every key in the current object that `Keys` does not name, with the nearest
    /// known key as a suggestion. Issues go to the decoder's `IssueCollector` when there is one
    /// (so decoding continues and all of them are reported); otherwise the first one is thrown.
    public func rejectUnknownKeys<Keys: CodingKey & CaseIterable>(_ keys: Keys.Type) throws {
        guard let container = try? self.container(keyedBy: AnyCodingKey.self) else { return }
        let known = Keys.allCases.map(\.stringValue)
        for key in container.allKeys where !known.contains(key.stringValue) {
            var problem = "unknown key \"\(key.stringValue)\""
            if let suggestion = nearest(to: key.stringValue, in: known) {
                problem += " (did you mean \"\(suggestion)\"?)"
            }
            let issue = ConfigurationIssue(path: configurationPath(codingPath + [key]), problem)
            if let collector = userInfo[.configurationIssues] as? IssueCollector {
                collector.add(issue)
            } else {
                throw issue
            }
        }
    }
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a likely typo.
public func nearest(to word: String, in candidates: [String]) -> String? {
    let lowered = word.lowercased()
    var best: (String, Int)?
    for candidate in candidates {
        let d = editDistance(lowered, candidate.lowercased())
        if d <= max(2, candidate.count / 3), d < (best?.1 ?? .max) { best = (candidate, d) }
    }
    return best?.0
}

func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.utf8), b = Array(b.utf8)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = previous
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
