/// What cost analysis needs of a schema, read from SDL: the root types, each type's kind and
/// fields, field and argument types, and the `@cost` and `@listSize` directives (IBM's
/// GraphQL Cost Directives, as Apollo uses them).
public struct Schema: Sendable, Equatable {
    public enum Kind: String, Sendable { case object, interface, union, enumeration, scalar, input }

    public struct TypeDefinition: Sendable, Equatable {
        public var kind: Kind
        public var cost: Int?
        public var fields: [String: FieldDefinition] = [:]
        public var cacheControl: CacheControl?
    }

    /// `@cacheControl(maxAge:, scope:)` (Apollo's directive) on a type or a field.
    public struct CacheControl: Sendable, Equatable {
        public var maxAge: Int?
        public var isPrivate = false
    }

    public struct FieldDefinition: Sendable, Equatable {
        public var type: TypeReference
        public var arguments: [String: InputValueDefinition] = [:]
        public var cost: Int?
        public var listSize: ListSize?
        public var cacheControl: CacheControl?
    }

    public struct InputValueDefinition: Sendable, Equatable {
        public var type: TypeReference
        public var defaultValue: Value?
        public var cost: Int?
    }

    /// A `directive @name(...) repeatable on ...` definition: what validation checks uses against.
    public struct DirectiveDefinition: Sendable, Equatable {
        public var arguments: [String: InputValueDefinition] = [:]
        public var repeatable = false
    }

    public struct ListSize: Sendable, Equatable {
        public var assumedSize: Int?
        public var slicingArguments: [String] = []
        public var sizedFields: [String] = []
        public var requireOneSlicingArgument = true
    }

    public internal(set) var types: [String: TypeDefinition] = [:]
    /// Directives the schema defines (the built-in ones are not listed).
    public internal(set) var directives: [String: DirectiveDefinition] = [:]
    public internal(set) var queryType = "Query"
    public internal(set) var mutationType = "Mutation"
    public internal(set) var subscriptionType = "Subscription"
    /// What cost needs of each field, worked out once when the schema is read.
    var index = CostIndex(types: [:])

    public static func == (a: Schema, b: Schema) -> Bool {
        a.types == b.types && a.directives == b.directives && a.queryType == b.queryType && a.mutationType == b.mutationType && a.subscriptionType == b.subscriptionType
    }

    /// A problem with an SDL document: where, and what.
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Reads SDL. Type extensions add to their type; executable definitions are refused.
    public init(sdl: String) throws(Problem) {
        let bytes = Array(sdl.utf8)
        let tokens: [Token]
        do throws(LexicalFailure) {
            tokens = try Lexer(bytes).tokenize(maxTokens: nil, maxNesting: GuardLimits.nestingCeiling, maxValueNesting: GuardLimits.nestingCeiling).tokens
        } catch {
            throw Problem(message: "the schema is not GraphQL: \(error)")
        }
        var reader = SchemaReader(parser: Parser(bytes: bytes, tokens: tokens))
        do throws(SyntaxError) {
            try reader.read(into: &self)
        } catch {
            throw Problem(message: "the schema is not GraphQL SDL at byte \(error.offset): \(error.message)")
        }
        index = CostIndex(types: types)
    }

    public init() {}

    /// An empty schema: the default root type names, for cost without a schema.
    static let defaultRootTypes = Schema()

    /// The scalars every schema has without defining them.
    public static let builtInScalars: Set<String> = ["String", "Int", "Float", "Boolean", "ID"]

    /// The root type operations of `kind` start at (`Query`, `Mutation`, `Subscription`
    /// unless the schema names others).
    public func rootType(for kind: OperationKind) -> String {
        switch kind {
        case .query: queryType
        case .mutation: mutationType
        case .subscription: subscriptionType
        }
    }

    /// The `@cacheControl` hints an operation's answer falls under: the smallest `maxAge` on
    /// the fields it selects and on their types, and whether any says `PRIVATE`; nil when
    /// none applies. Each fragment is read once (a smallest value and an "any" do not
    /// change when read again).
    public func cacheHint(for operation: Operation, in document: Document) -> CacheFreshness? {
        var hint: CacheFreshness?
        var seen: Set<String> = []
        var pending: [(selections: [Selection], parent: String)] = [(operation.selections, rootType(for: operation.kind))]
        func note(_ found: CacheControl?) {
            guard let found else { return }
            var next = hint ?? CacheFreshness()
            if let age = found.maxAge { next.lifetime = min(next.lifetime ?? age, age) }
            next.isPrivate = next.isPrivate || found.isPrivate
            hint = next
        }
        while let (selections, parent) = pending.popLast() {
            for selection in selections {
                switch selection {
                case .field(let field):
                    guard let definition = types[parent]?.fields[field.name] else { continue }
                    let named = definition.type.namedType
                    note(definition.cacheControl ?? types[named]?.cacheControl)
                    if let children = field.selections { pending.append((children, named)) }
                case .inlineFragment(let inline):
                    pending.append((inline.selections, inline.typeCondition ?? parent))
                case .fragmentSpread(let spread):
                    guard seen.insert(spread.name).inserted, let fragment = document.fragment(named: spread.name) else { continue }
                    pending.append((fragment.selections, fragment.typeCondition))
                }
            }
        }
        return hint
    }
}

/// Per type and field, what cost analysis reads on every request, resolved once: the named
/// type, whether it is a list, the type cost, the list-size rules. Classes, so a lookup
/// hands on one reference rather than copying a definition.
final class CostIndex: Sendable {
    final class FieldInfo: Sendable {
        let arguments: [String: Schema.InputValueDefinition]
        let listSize: Schema.ListSize?
        let namedType: String
        let isList: Bool
        let typeCost: Int
        let sizedFields: Set<String>
        /// Whether an argument has a default, which may size the list without being sent.
        let hasArgumentDefaults: Bool
        /// For validation: the declared type, the kind of its named type (built-in scalars
        /// included; nil when the schema does not define it), the arguments a caller must give.
        let type: TypeReference
        let namedKind: Schema.Kind?
        let requiredArguments: [String]

        init(_ definition: Schema.FieldDefinition, types: [String: Schema.TypeDefinition]) {
            arguments = definition.arguments
            type = definition.type
            namedKind = types[definition.type.namedType]?.kind
                ?? (Schema.builtInScalars.contains(definition.type.namedType) ? .scalar : nil)
            requiredArguments = definition.arguments.filter { $0.value.isRequired }.keys.sorted()
            listSize = definition.listSize
            namedType = definition.type.namedType
            isList = definition.type.isList
            let type = types[namedType]
            typeCost = definition.cost ?? type?.cost ?? {
                switch type?.kind {
                case .object?, .interface?, .union?: 1
                default: 0
                }
            }()
            sizedFields = Set(definition.listSize?.sizedFields ?? [])
            hasArgumentDefaults = definition.arguments.values.contains { $0.defaultValue != nil }
        }
    }

    let fields: [String: [String: FieldInfo]]
    /// Every name some `@listSize(sizedFields:)` names.
    let sizedFieldNames: Set<String>
    /// The kind of every type.
    let kinds: [String: Schema.Kind]

    init(types: [String: Schema.TypeDefinition]) {
        kinds = types.mapValues(\.kind)
        var fields: [String: [String: FieldInfo]] = [:]
        var sized: Set<String> = []
        for (name, type) in types where type.kind != .input {
            fields[name] = type.fields.mapValues { FieldInfo($0, types: types) }
            for field in type.fields.values { sized.formUnion(field.listSize?.sizedFields ?? []) }
        }
        self.fields = fields
        self.sizedFieldNames = sized
    }

}

extension TypeReference {
    /// The named type inside any list and non-null wrappers.
    var namedType: String {
        switch self {
        case .named(let name): name
        case .list(let inner), .nonNull(let inner): inner.namedType
        }
    }

    /// Whether the type is a list (behind a non-null or not).
    var isList: Bool {
        switch self {
        case .named: false
        case .list: true
        case .nonNull(let inner): inner.isList
        }
    }

    /// The element type of a list, else the type itself without non-null.
    var element: TypeReference {
        switch self {
        case .named: self
        case .list(let inner): inner
        case .nonNull(let inner): inner.element
        }
    }
}

/// The type system grammar, over the same tokens as the executable grammar.
struct SchemaReader {
    var parser: Parser

    mutating func read(into schema: inout Schema) throws(SyntaxError) {
        while parser.position < parser.tokens.count {
            skipDescription()
            let keyword = try parser.name()
            // An extension adds to its type the same way a definition makes it.
            let kindWord = keyword == "extend" ? try parser.name() : keyword
            switch kindWord {
            case "schema":
                _ = try parser.directives(const: true)
                try parser.expect(.braceOpen)
                while !parser.peek(.braceClose) {
                    let operation = try parser.name()
                    try parser.expect(.colon)
                    let type = try parser.name()
                    switch operation {
                    case "query": schema.queryType = type
                    case "mutation": schema.mutationType = type
                    case "subscription": schema.subscriptionType = type
                    default: throw SyntaxError(message: "Unknown operation type \"\(operation)\".", offset: offset)
                    }
                }
                parser.position += 1
            case "scalar":
                _ = try definition(.scalar, in: &schema)
            case "type", "interface", "input":
                let name = try parser.name()
                if parser.peek(.name), parser.text(parser.tokens[parser.position]) == "implements" {
                    parser.position += 1
                    try skipNames(separatedBy: .ampersand)
                }
                let directives = try parser.directives(const: true)
                let kind: Schema.Kind = kindWord == "type" ? .object : kindWord == "interface" ? .interface : .input
                define(name, kind, cost: try Self.cost(directives), cacheControl: Self.cacheControl(directives), in: &schema)
                if parser.peek(.braceOpen) {
                    parser.position += 1
                    while !parser.peek(.braceClose) {
                        skipDescription()
                        let field = try parser.name()
                        if kind == .input {
                            let value = try inputValue()
                            schema.types[name]?.fields[field] = Schema.FieldDefinition(type: value.type, cost: value.cost)
                        } else {
                            schema.types[name]?.fields[field] = try fieldDefinition()
                        }
                    }
                    parser.position += 1
                }
            case "union":
                _ = try definition(.union, in: &schema)
                if parser.peek(.equals) {
                    parser.position += 1
                    try skipNames(separatedBy: .pipe)
                }
            case "enum":
                _ = try definition(.enumeration, in: &schema)
                if parser.peek(.braceOpen) {
                    parser.position += 1
                    while !parser.peek(.braceClose) {
                        skipDescription()
                        _ = try parser.name()
                        _ = try parser.directives(const: true)
                    }
                    parser.position += 1
                }
            case "directive":
                try parser.expect(.at)
                let name = try parser.name()
                var directive = Schema.DirectiveDefinition()
                if parser.peek(.parenOpen) {
                    parser.position += 1
                    while !parser.peek(.parenClose) {
                        skipDescription()
                        let argument = try parser.name()
                        directive.arguments[argument] = try inputValue()
                    }
                    parser.position += 1
                }
                if parser.peek(.name), parser.text(parser.tokens[parser.position]) == "repeatable" {
                    parser.position += 1
                    directive.repeatable = true
                }
                schema.directives[name] = directive
                try parser.expectKeyword("on")
                try skipNames(separatedBy: .pipe)
            default:
                throw SyntaxError(message: "Expected a type system definition, found \"\(kindWord)\".", offset: offset)
            }
        }
    }

    var offset: Int { parser.position < parser.tokens.count ? parser.tokens[parser.position].start : parser.bytes.count }

    /// `A & B & C` or `A | B`, a leading separator allowed.
    mutating func skipNames(separatedBy separator: Token.Kind) throws(SyntaxError) {
        if parser.peek(separator) { parser.position += 1 }
        _ = try parser.name()
        while parser.peek(separator) {
            parser.position += 1
            _ = try parser.name()
        }
    }

    mutating func skipDescription() {
        if parser.peek(.string) || parser.peek(.blockString) { parser.position += 1 }
    }

    /// A definition's name and directives, the type made or its cost updated; returns the name.
    mutating func definition(_ kind: Schema.Kind, in schema: inout Schema) throws(SyntaxError) -> String {
        let name = try parser.name()
        let directives = try parser.directives(const: true)
        define(name, kind, cost: try Self.cost(directives), cacheControl: Self.cacheControl(directives), in: &schema)
        return name
    }

    func define(_ name: String, _ kind: Schema.Kind, cost: Int?, cacheControl: Schema.CacheControl?, in schema: inout Schema) {
        if schema.types[name] == nil {
            schema.types[name] = Schema.TypeDefinition(kind: kind, cost: cost, cacheControl: cacheControl)
        } else {
            if let cost { schema.types[name]?.cost = cost }
            if let cacheControl { schema.types[name]?.cacheControl = cacheControl }
        }
    }

    /// `@cacheControl(maxAge: Int, scope: PUBLIC | PRIVATE)`.
    static func cacheControl(_ directives: [Directive]) -> Schema.CacheControl? {
        guard let directive = directives.first(where: { $0.name == "cacheControl" }) else { return nil }
        var hint = Schema.CacheControl()
        for argument in directive.arguments {
            switch (argument.name, argument.value) {
            case ("maxAge", .int(let text)): hint.maxAge = Int(text).map { max($0, 0) }
            case ("scope", .enumValue(let scope)): hint.isPrivate = scope == "PRIVATE"
            default: break
            }
        }
        return hint
    }

    /// `name(args): Type @directives`, the name already read.
    mutating func fieldDefinition() throws(SyntaxError) -> Schema.FieldDefinition {
        var arguments: [String: Schema.InputValueDefinition] = [:]
        if parser.peek(.parenOpen) {
            parser.position += 1
            while !parser.peek(.parenClose) {
                skipDescription()
                let name = try parser.name()
                arguments[name] = try inputValue()
            }
            parser.position += 1
        }
        try parser.expect(.colon)
        let type = try parser.typeReference()
        let directives = try parser.directives(const: true)
        return Schema.FieldDefinition(type: type, arguments: arguments, cost: try Self.cost(directives), listSize: try Self.listSize(directives),
                                      cacheControl: Self.cacheControl(directives))
    }

    /// `: Type = default @directives`, the name already read.
    mutating func inputValue() throws(SyntaxError) -> Schema.InputValueDefinition {
        try parser.expect(.colon)
        let type = try parser.typeReference()
        var defaultValue: Value?
        if parser.peek(.equals) {
            parser.position += 1
            defaultValue = try parser.value(const: true)
        }
        return Schema.InputValueDefinition(type: type, defaultValue: defaultValue, cost: try Self.cost(parser.directives(const: true)))
    }

    /// `@cost(weight:)`: an Int, or a numeric String (IBM's form) rounded up; never negative.
    static func cost(_ directives: [Directive]) throws(SyntaxError) -> Int? {
        guard let directive = directives.first(where: { $0.name == "cost" }),
              let weight = directive.arguments.first(where: { $0.name == "weight" })?.value else { return nil }
        let number: Double? = switch weight {
        case .int(let text), .float(let text), .string(let text): Double(text)
        default: nil
        }
        guard let number, number.isFinite else { throw SyntaxError(message: "@cost(weight:) must be a number", offset: 0) }
        guard number >= 0 else { throw SyntaxError(message: "@cost(weight:) must not be negative, got \(number)", offset: 0) }
        return Int(min(number.rounded(.up), Double(OperationMetrics.saturation)))
    }

    static func listSize(_ directives: [Directive]) throws(SyntaxError) -> Schema.ListSize? {
        guard let directive = directives.first(where: { $0.name == "listSize" }) else { return nil }
        var listSize = Schema.ListSize()
        for argument in directive.arguments {
            switch (argument.name, argument.value) {
            case ("assumedSize", .int(let text)): listSize.assumedSize = Int(text)
            case ("slicingArguments", .list(let items)): listSize.slicingArguments = items.compactMap { if case .string(let s) = $0 { s } else { nil } }
            case ("sizedFields", .list(let items)): listSize.sizedFields = items.compactMap { if case .string(let s) = $0 { s } else { nil } }
            case ("requireOneSlicingArgument", .boolean(let flag)): listSize.requireOneSlicingArgument = flag
            default: break
            }
        }
        return listSize
    }
}
