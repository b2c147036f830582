public import RampartCore

/// One flag as flagd defines it: a state, named variants, an optional default variant, and
/// an optional targeting rule compiled at load.
public final class Flag: Sendable {
    public enum State: String, Sendable { case enabled = "ENABLED", disabled = "DISABLED" }

    public struct Variant: Sendable {
        public let name: String
        public let value: JSONValue
    }

    /// The targeting as loaded: none, a compiled rule, or a rule that cannot be evaluated
    /// (an unknown operator, a dangling `$ref`), which flagd loads and answers `PARSE_ERROR`.
    public enum Targeting: Sendable {
        case none
        case rule(Rule)
        case invalid(RuleError)
    }

    public let key: String
    public let state: State
    public let variants: [Variant]
    public let defaultVariant: String?
    public let targeting: Targeting
    /// The flag set's metadata overlaid by the flag's own.
    public let metadata: [String: JSONValue]
    /// Where the flag came from: a file path, or `admin` for flags made through the API.
    public let source: String
    /// The definition as written (after `$ref` substitution), for the admin API and ETags.
    public let definition: JSONValue

    /// The default variant, looked up once at load.
    public let defaultVariantEntry: Variant?

    public init(key: String, state: State, variants: [Variant], defaultVariant: String?, targeting: Targeting,
                metadata: [String: JSONValue], source: String, definition: JSONValue) {
        self.key = key
        self.state = state
        self.variants = variants
        self.defaultVariant = defaultVariant
        self.targeting = targeting
        self.metadata = metadata
        self.source = source
        self.definition = definition
        self.defaultVariantEntry = defaultVariant.flatMap { name in variants.first { JsonLogic.sameText($0.name, name) } }
    }

    /// The variant named `name`, matched byte for byte (variant names are not normalised).
    public func variant(named name: String) -> Variant? {
        variants.first { JsonLogic.sameText($0.name, name) }
    }
}

/// Reads flagd's flag definition format (flags.json): `flags` (a map, or flagd's array of
/// objects with `key`), `$evaluators` referenced by `{"$ref": name}`, and `metadata`.
public enum FlagDefinitions {
    /// - Parameters:
    ///   - source: names the document in errors (a file path).
    /// - Throws: `ConfigurationError` naming every problem; nothing of a refused document is used.
    public static func parse(_ bytes: some Collection<UInt8>, source: String) throws(ConfigurationError) -> [Flag] {
        let document: JSONValue
        do {
            document = try JSONValue(parsing: bytes)
        } catch {
            throw ConfigurationError(issues: [ConfigurationIssue(path: source, "\(error)")])
        }
        return try parse(document, source: source)
    }

    public static func parse(_ document: JSONValue, source: String) throws(ConfigurationError) -> [Flag] {
        var issues: [ConfigurationIssue] = []
        guard case .object(let root) = document else {
            throw ConfigurationError(issues: [ConfigurationIssue(path: source, "a flag file is a JSON object with \"flags\"")])
        }
        let evaluators = root["$evaluators"]?.objectValue ?? [:]
        if let raw = root["$evaluators"], raw.objectValue == nil {
            issues.append(ConfigurationIssue(path: "\(source): $evaluators", "must be an object, not \(raw.typeName)"))
        }
        var setMetadata: [String: JSONValue] = [:]
        if let raw = root["metadata"] {
            setMetadata = checkedMetadata(raw, path: "\(source): metadata", issues: &issues)
        }
        var entries: [(key: String, body: JSONValue, path: String)] = []
        switch root["flags"] {
        case .object(let members)?:
            for key in members.keys.sorted() { entries.append((key, members[key]!, "\(source): flags.\(key)")) }
        case .array(let items)?:
            for (index, item) in items.enumerated() {
                guard case .string(let key)? = item["key"] else {
                    issues.append(ConfigurationIssue(path: "\(source): flags[\(index)].key", "required (a string)"))
                    continue
                }
                entries.append((key, item, "\(source): flags[\(index)]"))
            }
        case let other?:
            issues.append(ConfigurationIssue(path: "\(source): flags", "must be an object of flags, not \(other.typeName)"))
        case nil:
            issues.append(ConfigurationIssue(path: "\(source): flags", "required"))
        }
        var flags: [Flag] = []
        for entry in entries {
            let body = substitutingReferences(entry.body, evaluators: evaluators)
            if let flag = flag(entry.key, body, path: entry.path, setMetadata: setMetadata, source: source, issues: &issues) {
                flags.append(flag)
            }
        }
        guard issues.isEmpty else { throw ConfigurationError(issues: issues) }
        return flags
    }

    /// One flag's definition checked and compiled; nil (with issues) when it is refused.
    public static func flag(_ key: String, _ body: JSONValue, path: String, setMetadata: [String: JSONValue] = [:],
                            source: String, issues: inout [ConfigurationIssue]) -> Flag? {
        let before = issues.count
        guard case .object(let members) = body else {
            issues.append(ConfigurationIssue(path: path, "a flag is an object, not \(body.typeName)"))
            return nil
        }
        if key.isEmpty { issues.append(ConfigurationIssue(path: path, "the flag key is empty")) }
        var state = Flag.State.enabled
        switch members["state"] {
        case .string(let text)?:
            if let parsed = Flag.State(rawValue: text) { state = parsed } else {
                issues.append(ConfigurationIssue(path: "\(path).state", "must be ENABLED or DISABLED, not \"\(text)\""))
            }
        case let other?: issues.append(ConfigurationIssue(path: "\(path).state", "must be ENABLED or DISABLED, not \(other.typeName)"))
        case nil: issues.append(ConfigurationIssue(path: "\(path).state", "required (ENABLED or DISABLED)"))
        }
        var variants: [Flag.Variant] = []
        switch members["variants"] {
        case .object(let entries)? where !entries.isEmpty:
            for name in entries.keys.sorted() { variants.append(Flag.Variant(name: name, value: entries[name]!)) }
            let types = Set(variants.map { $0.value.typeName })
            if types.count > 1 {
                issues.append(ConfigurationIssue(path: "\(path).variants", "all variants must share one JSON type; found \(types.sorted().joined(separator: ", "))"))
            }
        case .object?: issues.append(ConfigurationIssue(path: "\(path).variants", "needs at least one variant"))
        case let other?: issues.append(ConfigurationIssue(path: "\(path).variants", "must be an object of variants, not \(other.typeName)"))
        case nil: issues.append(ConfigurationIssue(path: "\(path).variants", "required"))
        }
        var defaultVariant: String?
        switch members["defaultVariant"] {
        case .string(let name)?:
            defaultVariant = name
            if !variants.isEmpty, !variants.contains(where: { JsonLogic.sameText($0.name, name) }) {
                issues.append(ConfigurationIssue(path: "\(path).defaultVariant", "\"\(name)\" names no variant (have \(variants.map(\.name).joined(separator: ", ")))"))
            }
        case .null?, nil: defaultVariant = nil
        case let other?: issues.append(ConfigurationIssue(path: "\(path).defaultVariant", "must be a variant name or null, not \(other.typeName)"))
        }
        var targeting = Flag.Targeting.none
        switch members["targeting"] {
        case .object(let rule)? where rule.isEmpty: break
        case .object?:
            do {
                targeting = .rule(try Rule(compiling: members["targeting"]!))
            } catch {
                targeting = .invalid(error)
            }
        case .null?, nil: break
        case let other?: issues.append(ConfigurationIssue(path: "\(path).targeting", "must be a JsonLogic object, not \(other.typeName)"))
        }
        var metadata = setMetadata
        if let raw = members["metadata"] {
            for (name, value) in checkedMetadata(raw, path: "\(path).metadata", issues: &issues) { metadata[name] = value }
        }
        guard issues.count == before else { return nil }
        return Flag(key: key, state: state, variants: variants, defaultVariant: defaultVariant, targeting: targeting,
                    metadata: metadata, source: source, definition: body)
    }

    private static func checkedMetadata(_ raw: JSONValue, path: String, issues: inout [ConfigurationIssue]) -> [String: JSONValue] {
        guard case .object(let entries) = raw else {
            issues.append(ConfigurationIssue(path: path, "must be an object, not \(raw.typeName)"))
            return [:]
        }
        for (name, value) in entries {
            switch value {
            case .string, .number, .bool: continue
            default: issues.append(ConfigurationIssue(path: "\(path).\(name)", "must be a string, number or boolean, not \(value.typeName)"))
            }
        }
        return entries
    }

    /// Replaces every object that is exactly `{"$ref": name}` by the named evaluator. An
    /// unknown name stays, and evaluates as an unknown operator, as in flagd.
    static func substitutingReferences(_ value: JSONValue, evaluators: [String: JSONValue]) -> JSONValue {
        guard !evaluators.isEmpty else { return value }
        switch value {
        case .object(let members):
            if members.count == 1, case .string(let name)? = members["$ref"], let evaluator = evaluators[name] { return evaluator }
            return .object(members.mapValues { substitutingReferences($0, evaluators: evaluators) })
        case .array(let items):
            return .array(items.map { substitutingReferences($0, evaluators: evaluators) })
        default:
            return value
        }
    }
}
