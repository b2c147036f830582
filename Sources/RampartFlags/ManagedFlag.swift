public import RampartCore

/// A flag created through the admin API: the document as it was sent (the simple form, or
/// `{"key": ..., "definition": {flagd flag}}`), compiled, with who changed it last and when.
public struct ManagedFlag: Sendable {
    public let key: String
    /// What was sent, for the admin API to show back.
    public let document: JSONValue
    public let flag: Flag
    /// The simple form, when that is what was sent.
    public let simple: SimpleFlag?
    public let updatedBy: String
    /// Seconds since 1970.
    public let updatedAt: Double

    /// The source name of flags made through the admin API.
    public static let source = "admin"

    /// Compiles a document from the admin API.
    /// - Throws: `ConfigurationError` whose paths name the fields of the document.
    public init(document: JSONValue, updatedBy: String, updatedAt: Double) throws(ConfigurationError) {
        if case .object(let members) = document, let definition = members["definition"] {
            var issues: [ConfigurationIssue] = []
            for name in members.keys.sorted() where name != "key" && name != "definition" {
                issues.append(.init(path: name, "unknown field (a flagd definition is sent as {\"key\", \"definition\"})"))
            }
            let key = members["key"]?.stringValue ?? ""
            if !SimpleFlag.isValidKey(key) { issues.append(.init(path: "key", "required: 1 to 128 letters, digits, '-', '_' and '.'")) }
            let flag = FlagDefinitions.flag(key, definition, path: "definition", source: Self.source, issues: &issues)
            if case .invalid(let error)? = flag?.targeting {
                issues.append(.init(path: "definition.targeting", "\(error)"))
            }
            guard issues.isEmpty, let flag else { throw ConfigurationError(issues: issues) }
            self.key = key
            self.flag = flag
            self.simple = nil
        } else {
            let simple = try SimpleFlag(document)
            var issues: [ConfigurationIssue] = []
            guard let flag = FlagDefinitions.flag(simple.key, simple.definition, path: "definition", source: Self.source, issues: &issues) else {
                throw ConfigurationError(issues: issues)
            }
            if case .invalid(let error) = flag.targeting {
                throw ConfigurationError(issues: [.init(path: "", "the simple form compiled to a rule that cannot run: \(error)")])
            }
            self.key = simple.key
            self.flag = flag
            self.simple = simple
        }
        self.document = document
        self.updatedBy = updatedBy
        self.updatedAt = updatedAt
    }
}
