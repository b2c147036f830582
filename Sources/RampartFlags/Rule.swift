public import RampartCore

/// A targeting rule compiled once from its JsonLogic JSON into a tree of Swift values:
/// operators are resolved to cases and `var` paths split at load, so an evaluation walks the
/// tree without looking at strings it has already understood.
public indirect enum Rule: Sendable, Equatable {
    case literal(JSONValue)
    /// An array whose items are rules (`[1, {"var": "x"}]`).
    case list([Rule])
    /// `var` with a path known at load; `default` answers a missing or null value.
    case variable(VariablePath, default: Rule?)
    /// `var` whose path is computed (`{"var": {"cat": [...]}}`).
    case dynamicVariable(Rule, default: Rule?)
    case operation(Operator, [Rule])

    /// The operators flagd evaluates: JsonLogic's and flagd's own.
    public enum Operator: String, Sendable, CaseIterable {
        case `if`, ternary = "?:"
        case equal = "==", strictEqual = "===", notEqual = "!=", strictNotEqual = "!=="
        case less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="
        case and, or, not = "!", truthy = "!!"
        case `in`, cat, substr
        case add = "+", subtract = "-", multiply = "*", divide = "/", modulo = "%", min, max
        case merge, missing, missingSome = "missing_some"
        case map, filter, reduce, all, some, none
        case startsWith = "starts_with", endsWith = "ends_with", semVer = "sem_ver", fractional

        /// Operators whose arguments are evaluated by the operator itself (short circuits,
        /// and the array operators, whose second argument runs once per item).
        var isLazy: Bool {
            switch self {
            case .if, .ternary, .and, .or, .map, .filter, .reduce, .all, .some, .none: true
            default: false
            }
        }
    }

    /// A `var` path split at its dots. `$flagd.*` paths read the evaluation's own values.
    public struct VariablePath: Sendable, Equatable {
        public let components: [String]
        /// True for `$flagd.flagKey` and `$flagd.timestamp` (and `$flagd` itself).
        public let isFlagd: Bool

        public init(_ text: String) {
            components = text.isEmpty ? [] : text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            isFlagd = components.first == "$flagd"
        }
    }

    /// Compiles a JsonLogic rule. An object with one key is an operation; any other object,
    /// and every scalar, is a literal.
    /// - Throws: `RuleError` for an unknown operator or a malformed `var`.
    public init(compiling json: JSONValue) throws(RuleError) {
        switch json {
        case .array(let items):
            var rules: [Rule] = []
            rules.reserveCapacity(items.count)
            var allLiteral = true
            for item in items {
                let rule = try Rule(compiling: item)
                if case .literal = rule {} else { allLiteral = false }
                rules.append(rule)
            }
            self = allLiteral ? .literal(json) : .list(rules)
        case .object(let members) where members.count == 1:
            let (name, argument) = members.first!
            if name == "var" {
                self = try Self.variable(argument)
                return
            }
            guard let op = Operator(rawValue: name) else { throw RuleError("unknown operator \"\(name)\"") }
            let arguments: [JSONValue]
            if case .array(let items) = argument { arguments = items } else { arguments = [argument] }
            var rules: [Rule] = []
            rules.reserveCapacity(arguments.count)
            for item in arguments { rules.append(try Rule(compiling: item)) }
            self = .operation(op, rules)
        default:
            self = .literal(json)
        }
    }

    private static func variable(_ argument: JSONValue) throws(RuleError) -> Rule {
        var pathArgument = argument
        var fallback: Rule?
        if case .array(let items) = argument {
            pathArgument = items.first ?? .string("")
            if items.count > 1 { fallback = try Rule(compiling: items[1]) }
        }
        switch pathArgument {
        case .string(let text): return .variable(VariablePath(text), default: fallback)
        case .number(let n): return .variable(VariablePath(JSONValue.numberText(n)), default: fallback)
        case .null: return .variable(VariablePath(""), default: fallback)
        case .object: return .dynamicVariable(try Rule(compiling: pathArgument), default: fallback)
        default: throw RuleError("var takes a path string, not \(pathArgument.typeName)")
        }
    }
}

/// Why a rule could not be compiled or evaluated; flagd reports it as `PARSE_ERROR`.
public struct RuleError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
