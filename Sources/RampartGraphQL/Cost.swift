import RampartCore

/// Cost settings (GRAPHQL-GUARD.md section 3).
public struct CostSettings: Sendable, Equatable {
    public var defaultListSize = 10
    public var mutationBaseCost = 10
    /// Arguments that size a list when no `@listSize` says otherwise.
    public var slicingArguments = ["first", "last", "limit"]
    /// Children of a connection (a non-list field with a slicing argument) that it sizes.
    public var sizedFields = ["edges", "nodes"]

    public init() {}
}

/// The static cost estimate of one operation: `m × (typeCost + Σ children) + argumentsCost`
/// per field, fragments summed, skipped branches free, introspection and `__typename` free.
///
/// A selection set is summarized as a fixed part plus, per field name a parent may size, the
/// summed inner cost of those fields (and the same each times its own size), so the same summary answers whether or not the
/// parent sizes some of its children; fragments are summarized once each, in an order where
/// every fragment comes after those it spreads, so nothing recurses from one fragment into
/// another.
struct CostCalculator {
    struct EntryKey: Hashable {
        var name: String
        var multiplier: Int
        var sizable: Bool
    }

    struct Summary {
        /// For the fields of one sizable name: their inner costs summed, and summed each times
        /// its own list size (the cost when the parent does not size them).
        struct Sizable {
            var inner = 0
            var weighted = 0
        }

        var fixed = 0
        var entries: [String: Sizable] = [:]

        mutating func merge(_ other: Summary) {
            fixed = Self.add(fixed, other.fixed)
            for (name, entry) in other.entries { add(name, inner: entry.inner, weighted: entry.weighted) }
        }

        mutating func add(_ name: String, inner: Int, weighted: Int) {
            var entry = entries[name] ?? Sizable()
            entry.inner = Self.add(entry.inner, inner)
            entry.weighted = Self.add(entry.weighted, weighted)
            entries[name] = entry
        }

        /// The cost under a parent that sizes the children named in `sizing`.
        func cost(sizing: (names: Set<String>, size: Int)?) -> Int {
            var total = fixed
            for (name, entry) in entries {
                if let sizing, sizing.names.contains(name) {
                    total = Self.add(total, Self.multiply(sizing.size, entry.inner))
                } else {
                    total = Self.add(total, entry.weighted)
                }
            }
            return total
        }

        func selects(anyOf names: Set<String>) -> Bool { entries.keys.contains { names.contains($0) } }

        static func add(_ a: Int, _ b: Int) -> Int { min(a + b, OperationMetrics.saturation) }
        static func multiply(_ a: Int, _ b: Int) -> Int {
            guard a > 0, b > 0 else { return 0 }
            let (product, overflow) = a.multipliedReportingOverflow(by: b)
            return overflow ? OperationMetrics.saturation : min(product, OperationMetrics.saturation)
        }
    }

    /// `@listSize` asked for exactly one slicing argument and did not get it.
    struct SlicingError: Error {
        let message: String
    }

    let schema: Schema?
    let index: CostIndex?
    let settings: CostSettings
    let variables: [String: JSONValue]
    let implicitSlicing: Set<String>
    let implicitSized: Set<String>
    /// The names a parent may size: only fields so named are kept apart in a summary, so
    /// a summary stays small however many fields a fragment gathers.
    let sizableNames: Set<String>
    private var fragments: [String: Summary] = [:]
    private(set) var error: SlicingError?

    /// - Parameter variables: the operation's variables as the server will see them.
    init(document: Document, fragmentOrder: [String], schema: Schema?, settings: CostSettings, variables: [String: JSONValue]) {
        self.schema = schema
        self.index = schema?.index
        self.settings = settings
        self.variables = variables
        self.implicitSlicing = Set(settings.slicingArguments)
        self.implicitSized = Set(settings.sizedFields)
        self.sizableNames = Set(settings.sizedFields).union(schema?.index.sizedFieldNames ?? [])
        let byName = Dictionary(document.fragments.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for name in fragmentOrder {
            guard let fragment = byName[name] else { continue }
            fragments[name] = summarize(fragment.selections, on: fragment.typeCondition)
        }
    }

    /// The variables the server will use: declared ones only, the request's value if present
    /// (an explicit null stays null), else the definition's default.
    static func effectiveVariables(of operation: Operation, request: JSONValue?) -> [String: JSONValue] {
        var values: [String: JSONValue] = [:]
        let given: [String: JSONValue] = if case .object(let members)? = request { members } else { [:] }
        for definition in operation.variables {
            if let value = given[definition.name] {
                values[definition.name] = value
            } else if let fallback = definition.defaultValue {
                values[definition.name] = json(fallback, variables: [:])
            }
        }
        return values
    }

    mutating func cost(of operation: Operation) -> Int {
        let root = schema?.rootType(for: operation.kind) ?? Schema.defaultRootTypes.rootType(for: operation.kind)
        let base = operation.kind == .mutation ? settings.mutationBaseCost : 0
        return Summary.add(base, summarize(operation.selections, on: root).cost(sizing: nil))
    }

    mutating func summarize(_ selections: [Selection], on parentType: String?) -> Summary {
        var summary = Summary()
        // The parent's fields, looked up once for all its selections.
        let parentFields = parentType.flatMap { index?.fields[$0] }
        for selection in selections {
            switch selection {
            case .field(let field):
                switch field.name {
                case "__typename", "__schema", "__type": continue
                default: break
                }
                guard field.directives.isEmpty || !isSkipped(field.directives) else { continue }
                let (key, inner, argumentsCost) = fieldCost(field, info: parentFields?[field.name])
                summary.fixed = Summary.add(summary.fixed, argumentsCost)
                if key.sizable, sizableNames.contains(key.name) {
                    summary.add(key.name, inner: inner, weighted: Summary.multiply(key.multiplier, inner))
                } else {
                    summary.fixed = Summary.add(summary.fixed, Summary.multiply(key.multiplier, inner))
                }
            case .fragmentSpread(let spread):
                guard spread.directives.isEmpty || !isSkipped(spread.directives), let fragment = fragments[spread.name] else { continue }
                summary.merge(fragment)
            case .inlineFragment(let inline):
                guard inline.directives.isEmpty || !isSkipped(inline.directives) else { continue }
                summary.merge(summarize(inline.selections, on: inline.typeCondition ?? parentType))
            }
        }
        return summary
    }

    /// - Parameter info: the field's definition, if the schema knows it.
    private mutating func fieldCost(_ field: Field, info: CostIndex.FieldInfo?) -> (EntryKey, Int, Int) {
        guard let info else {
            // No schema, or a field it does not know: the rules without a schema.
            let children = field.selections.map { summarize($0, on: nil) }
            var multiplier = 1
            var sizing: (names: Set<String>, size: Int)?
            if let children, !field.arguments.isEmpty, let size = implicitSize(field, definition: nil) {
                if children.selects(anyOf: implicitSized) { sizing = (implicitSized, size) } else { multiplier = size }
            }
            let inner = children.map { Summary.add(1, $0.cost(sizing: sizing)) } ?? 0
            return (EntryKey(name: field.name, multiplier: multiplier, sizable: true), inner, 0)
        }
        var expected: Int?
        var sizing: (names: Set<String>, size: Int)?
        if let listSize = info.listSize {
            let values = listSize.slicingArguments.compactMap { slicingValue(field, $0, definition: info) }
            if listSize.requireOneSlicingArgument, !listSize.slicingArguments.isEmpty, values.count != 1, error == nil {
                error = SlicingError(message: "Field \"\(field.name)\" must have exactly one of the slicing arguments \(listSize.slicingArguments.joined(separator: ", ")); it has \(values.count).")
            }
            expected = values.max() ?? listSize.assumedSize
            if !info.sizedFields.isEmpty { sizing = (info.sizedFields, expected ?? settings.defaultListSize) }
        } else if info.hasArgumentDefaults || !field.arguments.isEmpty {
            expected = implicitSize(field, definition: info)
            if !info.isList, let expected { sizing = (implicitSized, expected) }
        }
        let multiplier = info.isList ? (expected ?? settings.defaultListSize) : 1
        let children = field.selections.map { summarize($0, on: info.namedType) }?.cost(sizing: sizing) ?? 0
        var argumentsCost = 0
        for argument in field.arguments {
            let definitionOfArgument = info.arguments[argument.name]
            argumentsCost = Summary.add(argumentsCost, score(Self.json(argument.value, variables: variables), as: definitionOfArgument?.type,
                                                             cost: definitionOfArgument?.cost))
        }
        return (EntryKey(name: field.name, multiplier: multiplier, sizable: info.isList), Summary.add(info.typeCost, children), argumentsCost)
    }

    /// The largest of the implicit slicing arguments that have a value.
    private func implicitSize(_ field: Field, definition: CostIndex.FieldInfo?) -> Int? {
        var sizes: [Int] = []
        for name in implicitSlicing {
            if let size = slicingValue(field, name, definition: definition) { sizes.append(size) }
        }
        return sizes.max()
    }

    /// An argument's integer value: the literal, the variable's value, else the schema's
    /// default. Negative sizes count as 0; anything not an integer is ignored.
    private func slicingValue(_ field: Field, _ name: String, definition: CostIndex.FieldInfo?) -> Int? {
        let value: JSONValue? = if let argument = field.arguments.first(where: { $0.name == name }) {
            Self.json(argument.value, variables: variables)
        } else {
            definition?.arguments[name]?.defaultValue.map { Self.json($0, variables: [:]) }
        }
        guard case .number(let number)? = value, number == number.rounded(), number.isFinite else { return nil }
        return number < 0 ? 0 : Int(min(number, Double(OperationMetrics.saturation)))
    }

    /// `argumentsCost` for one value: an input object costs its `@cost` or 1 plus its fields,
    /// a list its `@cost` or 0 plus its elements, null nothing, anything else its `@cost` or 0.
    private func score(_ value: JSONValue, as type: TypeReference?, cost: Int?) -> Int {
        switch value {
        case .null:
            return 0
        case .object(let members):
            var total = cost ?? 1
            let inputType = type.flatMap { schema?.types[$0.namedType] }
            for (name, member) in members {
                let field = inputType?.fields[name]
                total = Summary.add(total, score(member, as: field?.type, cost: field?.cost))
            }
            return total
        case .array(let items):
            var total = cost ?? 0
            let element = type?.element
            for item in items { total = Summary.add(total, score(item, as: element, cost: cost)) }
            return total
        default:
            return cost ?? 0
        }
    }

    /// Whether `@skip(if: true)` or `@include(if: false)` removes the selection.
    private func isSkipped(_ directives: [Directive]) -> Bool {
        for directive in directives where directive.name == "skip" || directive.name == "include" {
            guard let condition = directive.arguments.first(where: { $0.name == "if" })?.value else { continue }
            let flag: Bool? = switch Self.json(condition, variables: variables) {
            case .bool(let b): b
            default: nil
            }
            if directive.name == "skip", flag == true { return true }
            if directive.name == "include", flag == false { return true }
        }
        return false
    }

    /// A document value as JSON, variables replaced by their values (absent ones by null).
    static func json(_ value: Value, variables: [String: JSONValue]) -> JSONValue {
        switch value {
        case .variable(let name): variables[name] ?? .null
        case .int(let text), .float(let text): .number(Double(text) ?? 0)
        case .string(let text), .enumValue(let text): .string(text)
        case .boolean(let flag): .bool(flag)
        case .null: .null
        case .list(let items): .array(items.map { json($0, variables: variables) })
        case .object(let fields): .object(Dictionary(fields.map { ($0.name, json($0.value, variables: variables)) }, uniquingKeysWith: { _, last in last }))
        }
    }
}
