/// Validation against the schema (GRAPHQL-GUARD.md section 1, step 10): the rules of the
/// GraphQL specification's section 5 that catch what a prober or a typo sends, checked in one
/// walk, each fragment once against its own type condition:
///
/// - the operation's root type exists; fields exist on their parent type (with suggestions);
/// - arguments exist on their field or directive (with suggestions); required ones are given;
/// - leaf fields have no selections, and composite ones have some;
/// - type conditions and variable types name known types of the right kind;
/// - directives are known, and a non-repeatable one appears once per location.
///
/// Messages follow graphql-js's wording, suggestions included ("Did you mean ...?"), so the
/// masking of suggestions applies to them as to the upstream's. Introspection fields are not
/// checked against the schema (the introspection types are not modelled).
struct SchemaValidation {
    let schema: Schema
    let document: Document
    private(set) var errors: [String] = []

    static let builtInDirectives: [String: Schema.DirectiveDefinition] = [
        "skip": .init(arguments: ["if": .init(type: .nonNull(.named("Boolean")))]),
        "include": .init(arguments: ["if": .init(type: .nonNull(.named("Boolean")))]),
        "deprecated": .init(arguments: ["reason": .init(type: .named("String"))]),
        "specifiedBy": .init(arguments: ["url": .init(type: .nonNull(.named("String")))]),
        "oneOf": .init(),
        "defer": .init(arguments: ["if": .init(type: .named("Boolean")), "label": .init(type: .named("String"))]),
        "stream": .init(arguments: ["if": .init(type: .named("Boolean")), "label": .init(type: .named("String")),
                                    "initialCount": .init(type: .named("Int"))]),
    ]

    init(schema: Schema, document: Document) {
        self.schema = schema
        self.document = document
        for operation in document.operations { check(operation) }
        for fragment in document.fragments {
            directives(fragment.directives)
            guard knownComposite(fragment.typeCondition) else { continue }
            selections(fragment.selections, on: fragment.typeCondition)
        }
    }

    mutating func check(_ operation: Operation) {
        let root = schema.rootType(for: operation.kind)
        directives(operation.directives)
        for variable in operation.variables {
            directives(variable.directives)
            let name = variable.type.namedType
            if let kind = schema.index.kinds[name] {
                if ![.scalar, .enumeration, .input].contains(kind) {
                    errors.append("Variable \"$\(variable.name)\" cannot be non-input type \"\(variable.type)\".")
                }
            } else if !Schema.builtInScalars.contains(name) {
                errors.append("Unknown type \"\(name)\".\(Self.didYouMean(name, among: Array(schema.types.keys) + Schema.builtInScalars))")
            }
        }
        guard schema.index.kinds[root] != nil else {
            errors.append("Schema is not configured to execute \(operation.kind.rawValue) operation.")
            return
        }
        selections(operation.selections, on: root)
    }

    mutating func selections(_ selections: [Selection], on parent: String) {
        // The schema's index: one lookup per selection set, one per field.
        guard let kind = schema.index.kinds[parent] else { return }
        let fields = schema.index.fields[parent] ?? [:]
        // Only the first problem is reported: stop there.
        for selection in selections where errors.isEmpty {
            switch selection {
            case .field(let field):
                directives(field.directives)
                check(field, on: parent, kind, fields)
            case .inlineFragment(let inline):
                directives(inline.directives)
                let condition = inline.typeCondition ?? parent
                if knownComposite(condition) { self.selections(inline.selections, on: condition) }
            case .fragmentSpread(let spread):
                directives(spread.directives)
            }
        }
    }

    mutating func check(_ field: Field, on parent: String, _ kind: Schema.Kind, _ fields: [String: CostIndex.FieldInfo]) {
        if field.name == "__typename" {
            if field.selections != nil {
                errors.append("Field \"__typename\" must not have a selection since type \"String!\" has no subfields.")
            }
            return
        }
        // The introspection schema is not modelled: its subtrees are not checked.
        if field.name == "__schema" || field.name == "__type" { return }
        guard let info = fields[field.name], kind == .object || kind == .interface else {
            let candidates = kind == .union ? [] : Array(fields.keys)
            errors.append("Cannot query field \"\(field.name)\" on type \"\(parent)\".\(Self.didYouMean(field.name, among: candidates))")
            return
        }
        if !field.arguments.isEmpty { arguments(field.arguments, defined: info.arguments, owner: "field \"\(parent).\(field.name)\"") }
        for name in info.requiredArguments where !field.arguments.contains(where: { $0.name == name }) {
            errors.append("Field \"\(parent).\(field.name)\" argument \"\(name)\" of type \"\(info.arguments[name]!.type)\" is required, but it was not provided.")
        }
        let isLeaf = info.namedKind == .scalar || info.namedKind == .enumeration
        let isComposite = info.namedKind == .object || info.namedKind == .interface || info.namedKind == .union
        if isLeaf, field.selections != nil {
            errors.append("Field \"\(field.name)\" must not have a selection since type \"\(info.type)\" has no subfields.")
        } else if isComposite, field.selections == nil {
            errors.append("Field \"\(field.name)\" of type \"\(info.type)\" must have a selection of subfields. Did you mean \"\(field.name) { ... }\"?")
        } else if let children = field.selections {
            selections(children, on: info.namedType)
        }
    }

    mutating func arguments(_ given: [Argument], defined: [String: Schema.InputValueDefinition], owner: String) {
        for argument in given where defined[argument.name] == nil {
            errors.append("Unknown argument \"\(argument.name)\" on \(owner).\(Self.didYouMean(argument.name, among: Array(defined.keys)))")
        }
    }

    mutating func directives(_ applied: [Directive]) {
        var seen: Set<String> = []
        for directive in applied {
            guard let definition = schema.directives[directive.name] ?? Self.builtInDirectives[directive.name] else {
                errors.append("Unknown directive \"@\(directive.name)\".")
                continue
            }
            if !seen.insert(directive.name).inserted, !definition.repeatable {
                errors.append("The directive \"@\(directive.name)\" can only be used once at this location.")
            }
            arguments(directive.arguments, defined: definition.arguments, owner: "directive \"@\(directive.name)\"")
            for (name, argument) in definition.arguments.sorted(by: { $0.key < $1.key })
            where argument.isRequired && !directive.arguments.contains(where: { $0.name == name }) {
                errors.append("Directive \"@\(directive.name)\" argument \"\(name)\" of type \"\(argument.type)\" is required, but it was not provided.")
            }
        }
    }

    /// Whether `name` is a type fields can be selected on; says why not otherwise.
    mutating func knownComposite(_ name: String) -> Bool {
        // An introspection type (`__Type`, `__Field`, ...): not modelled, not checked.
        if name.hasPrefix("__") { return false }
        guard let kind = schema.index.kinds[name] else {
            errors.append("Unknown type \"\(name)\".\(Self.didYouMean(name, among: Array(schema.types.keys)))")
            return false
        }
        guard [.object, .interface, .union].contains(kind) else {
            errors.append("Fragment cannot condition on non composite type \"\(name)\".")
            return false
        }
        return true
    }

    // MARK: - Suggestions

    /// ` Did you mean "a", "b", or "c"?` for the names close to `input` (at most five), as
    /// graphql-js words it; empty when none is close.
    static func didYouMean(_ input: String, among options: [String]) -> String {
        let threshold = input.count * 4 / 10 + 1
        let close = options.compactMap { option -> (Int, String)? in
            let distance = Self.distance(input, option, limit: threshold)
            return distance <= threshold ? (distance, option) : nil
        }.sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }.prefix(5).map { "\"\($0.1)\"" }
        switch close.count {
        case 0: return ""
        case 1: return " Did you mean \(close[0])?"
        case 2: return " Did you mean \(close[0]) or \(close[1])?"
        default: return " Did you mean \(close.dropLast().joined(separator: ", ")), or \(close.last!)?"
        }
    }

    /// Edit distance with adjacent transpositions, a change of case alone counting 1; more
    /// than `limit` is reported as `limit + 1` without being worked out.
    static func distance(_ a: String, _ b: String, limit: Int = .max) -> Int {
        if a == b { return 0 }
        let x = Array(a.lowercased().unicodeScalars), y = Array(b.lowercased().unicodeScalars)
        if x == y { return 1 }
        // The distance is at least the difference in length.
        if abs(x.count - y.count) > limit { return limit + 1 }
        if x.isEmpty || y.isEmpty { return max(x.count, y.count) }
        var table = [[Int]](repeating: [Int](repeating: 0, count: y.count + 1), count: x.count + 1)
        for i in 0...x.count { table[i][0] = i }
        for j in 0...y.count { table[0][j] = j }
        for i in 1...x.count {
            for j in 1...y.count {
                let cost = x[i - 1] == y[j - 1] ? 0 : 1
                table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                if i > 1, j > 1, x[i - 1] == y[j - 2], x[i - 2] == y[j - 1] { table[i][j] = min(table[i][j], table[i - 2][j - 2] + 1) }
            }
        }
        return table[x.count][y.count]
    }
}

extension Schema.InputValueDefinition {
    /// Non-null without a default: the caller must give it.
    var isRequired: Bool {
        if case .nonNull = type { return defaultValue == nil }
        return false
    }
}

extension Schema.DirectiveDefinition {
    init(arguments: [String: Schema.InputValueDefinition]) {
        self.arguments = arguments
    }
}

extension Schema.InputValueDefinition {
    init(type: TypeReference) {
        self.init(type: type, defaultValue: nil, cost: nil)
    }
}
