public import RampartCore

/// The limits a GraphQL route enforces (GRAPHQL-GUARD.md section 7 gives the defaults). Nil
/// switches a limit off; the two nesting limits are always on, since they protect the parser.
public struct GuardLimits: Sendable, Equatable {
    public enum Introspection: String, Sendable, Codable { case allow, deny }

    public var maxCharacters: Int? = 15_000
    public var maxTokens: Int? = 2_000
    public var maxNesting = 128
    public var maxValueNesting = 12
    public var maxDepth: Int? = 10
    public var maxFields: Int? = 2_000
    public var maxAliases: Int? = 15
    public var aliasExemptFields: Set<String> = ["__typename"]
    public var maxDirectives: Int? = 50
    public var introspection = Introspection.deny
    public var maxIntrospectionListDepth: Int? = 2
    public var maxCost: Int? = 1_000
    /// Whether rejections say the limit and the value found.
    public var exposeLimits = true
    /// The message of every rejection when `exposeLimits` is off.
    public var errorMessage = "Query validation error."
    /// Whether `Did you mean ...?` clauses in error messages, the gateway's and the
    /// upstream's, are replaced by `suggestionMask` (an empty mask removes them).
    public var maskSuggestions = true
    public var suggestionMask = "[Suggestion hidden]"
    /// With a schema: whether documents are validated against it (step 10); off, the schema
    /// only gives cost its types (the upstream validates).
    public var schemaValidation = true
    /// Batched requests (a JSON array of operations) and the most entries one may hold;
    /// off by default.
    public var batching = false
    public var maxBatchSize = 10

    /// The most `maxNesting` may be: the parser recurses once per level.
    public static let nestingCeiling = 512

    public init() {}

    /// Every limit that can be switched off is off, introspection allowed; the nesting
    /// guards stay on at their defaults.
    public static var off: GuardLimits {
        var limits = GuardLimits()
        limits.maxCharacters = nil
        limits.maxTokens = nil
        limits.maxDepth = nil
        limits.maxFields = nil
        limits.maxAliases = nil
        limits.maxDirectives = nil
        limits.introspection = .allow
        limits.maxIntrospectionListDepth = nil
        limits.maxCost = nil
        return limits
    }
}

/// Why the guard refused an operation: a GraphQL-over-HTTP request error.
public struct GuardRejection: Error, Sendable, Equatable, CustomStringConvertible {
    /// `extensions.code`, for example `MAX_DEPTH_EXCEEDED`.
    public var code: String
    public var status: Int
    public var message: String
    /// `extensions.limit` and `extensions.found`, when they are shown.
    public var limit: Int?
    public var found: Int?

    public var description: String { "\(code): \(message)" }

    public init(code: String, status: Int, message: String, limit: Int? = nil, found: Int? = nil) {
        self.code = code
        self.status = status
        self.message = message
        self.limit = limit
        self.found = found
    }
}

/// What the guard measured of a document, and its verdict.
public struct GuardAnalysis: Sendable, Equatable {
    /// UTF-8 bytes of the document.
    public var characters = 0
    /// Tokens and nesting, when the lexing pass ran to the end.
    public var lexical: LexicalMeasure?
    /// Structural metrics of every operation, by position, once the document parsed and validated.
    public var operations: [OperationMetrics] = []
    /// The structural metrics that limits are checked against: the largest over operations
    /// (nil until the document parsed and validated).
    public var worst: OperationMetrics? {
        guard !operations.isEmpty else { return nil }
        var worst = OperationMetrics()
        for metrics in operations { worst.add(metrics) }
        return worst
    }
    /// The parsed document, once it parsed and passed structural validation.
    public var document: Document?
    /// The operation `operationName` selected.
    public var selected: Operation?
    /// The selected operation's variables as the server will see them: declared ones only,
    /// the request's value, else the definition's default.
    public var variables: [String: JSONValue] = [:]
    /// The selected operation's estimated cost, once the structural limits passed.
    public var cost: Int?
    /// Nil when the document is accepted.
    public var rejection: GuardRejection?

    public var isAccepted: Bool { rejection == nil }
}

/// The GraphQL guard's analysis: the checks of GRAPHQL-GUARD.md section 1 in that order, the
/// first failing one answering. With a schema, the document is validated against it (step 10)
/// and cost uses its types; without one, cost follows the rules for no schema.
public struct GraphQLGuard: Sendable {
    public var limits: GuardLimits
    public var schema: Schema?
    public var costSettings: CostSettings

    public init(limits: GuardLimits = GuardLimits(), schema: Schema? = nil, costSettings: CostSettings = CostSettings()) {
        self.limits = limits
        self.schema = schema
        self.costSettings = costSettings
    }

    /// Analyses `document`; `isGet` applies the rule that only queries go over GET.
    public func analyze(document: String, variables: JSONValue? = nil, operationName: String? = nil, isGet: Bool = false) -> GuardAnalysis {
        analyze(bytes: Array(document.utf8), variables: variables, operationName: operationName, isGet: isGet)
    }

    public func analyze(bytes: [UInt8], variables: JSONValue? = nil, operationName: String? = nil, isGet: Bool = false) -> GuardAnalysis {
        var analysis = GuardAnalysis()
        analysis.characters = bytes.count
        if let max = limits.maxCharacters, bytes.count > max {
            analysis.rejection = reject("MAX_CHARACTERS_EXCEEDED", "Query characters limit of \(max) exceeded, found \(bytes.count).", limit: max, found: bytes.count)
            return analysis
        }
        let tokens: [Token]
        do throws(LexicalFailure) {
            let maxNesting = min(limits.maxNesting, GuardLimits.nestingCeiling)
            let lexed = try Lexer(bytes).tokenize(maxTokens: limits.maxTokens, maxNesting: maxNesting, maxValueNesting: limits.maxValueNesting)
            tokens = lexed.tokens
            analysis.lexical = lexed.measure
        } catch {
            switch error {
            case .tooManyTokens(let limit):
                analysis.rejection = reject("MAX_TOKENS_EXCEEDED", "Token limit of \(limit) exceeded.", limit: limit, found: nil)
            case .tooDeep(let limit, let value):
                analysis.rejection = reject("MAX_NESTING_EXCEEDED", "\(value ? "Value nesting" : "Nesting") limit of \(limit) exceeded.",
                                            limit: limit, found: nil)
            case .syntax(let message, _):
                analysis.rejection = failure("GRAPHQL_PARSE_FAILED", "Syntax Error: \(message)")
            }
            return analysis
        }
        var parser = Parser(bytes: bytes, tokens: tokens)
        let document: Document
        do throws(SyntaxError) {
            document = try parser.document()
        } catch {
            analysis.rejection = failure("GRAPHQL_PARSE_FAILED", error.description)
            return analysis
        }
        let validation = StructuralValidation(document)
        if let first = validation.errors.first {
            analysis.rejection = failure("GRAPHQL_VALIDATION_FAILED", first)
            return analysis
        }
        let selected: Operation
        if let operationName {
            guard let named = document.operations.first(where: { $0.name == operationName }) else {
                analysis.rejection = failure("OPERATION_RESOLUTION_FAILURE", "Unknown operation named \"\(operationName)\".")
                return analysis
            }
            selected = named
        } else {
            guard document.operations.count == 1 else {
                analysis.rejection = failure("OPERATION_RESOLUTION_FAILURE", "Must provide operation name if query contains multiple operations.")
                return analysis
            }
            selected = document.operations[0]
        }
        analysis.document = document
        analysis.selected = selected
        analysis.variables = CostCalculator.effectiveVariables(of: selected, request: variables)
        if isGet, selected.kind != .query {
            analysis.rejection = GuardRejection(code: "METHOD_NOT_ALLOWED", status: 405,
                                                message: "Only query operations can be sent with GET; use POST for a \(selected.kind.rawValue).")
            return analysis
        }

        let calculator = MetricsCalculator(document: document, fragmentOrder: validation.fragmentOrder, aliasExemptFields: limits.aliasExemptFields)
        analysis.operations = document.operations.map(calculator.metrics(of:))
        guard let worst = analysis.worst else { return analysis }

        if worst.usesIntrospection, limits.introspection == .deny {
            analysis.rejection = failure("INTROSPECTION_DISABLED", "Introspection is disabled.")
            return analysis
        }
        if let max = limits.maxIntrospectionListDepth, worst.introspectionListDepth > max {
            analysis.rejection = reject("MAX_INTROSPECTION_DEPTH_EXCEEDED", "Introspection list depth limit of \(max) exceeded, found \(worst.introspectionListDepth).",
                                        limit: max, found: worst.introspectionListDepth)
            return analysis
        }
        let checks: [(code: String, what: String, limit: Int?, found: Int)] = [
            ("MAX_DEPTH_EXCEEDED", "Query depth", limits.maxDepth, worst.depth),
            ("MAX_ALIASES_EXCEEDED", "Aliases", limits.maxAliases, worst.aliases),
            ("MAX_DIRECTIVES_EXCEEDED", "Directives", limits.maxDirectives, worst.directives),
            ("MAX_FIELDS_EXCEEDED", "Fields", limits.maxFields, worst.fields),
        ]
        for check in checks {
            if let max = check.limit, check.found > max {
                analysis.rejection = reject(check.code, "\(check.what) limit of \(max) exceeded, found \(check.found).", limit: max, found: check.found)
                return analysis
            }
        }

        if let schema, limits.schemaValidation {
            let validation = SchemaValidation(schema: schema, document: document)
            if let first = validation.errors.first {
                analysis.rejection = failure("GRAPHQL_VALIDATION_FAILED", limits.masking(first))
                return analysis
            }
        }

        var costs = CostCalculator(document: document, fragmentOrder: validation.fragmentOrder, schema: schema, settings: costSettings,
                                   variables: analysis.variables)
        let cost = costs.cost(of: selected)
        analysis.cost = cost
        if let error = costs.error {
            analysis.rejection = failure("GRAPHQL_VALIDATION_FAILED", error.message)
            return analysis
        }
        if let max = limits.maxCost, cost > max {
            analysis.rejection = reject("COST_ESTIMATED_TOO_EXPENSIVE", "Query Cost limit of \(max) exceeded, found \(cost).", limit: max, found: cost)
        }
        return analysis
    }

    /// A limit crossed: its numbers shown or hidden as configured.
    func reject(_ code: String, _ message: String, limit: Int, found: Int?) -> GuardRejection {
        guard limits.exposeLimits else { return GuardRejection(code: code, status: 400, message: limits.errorMessage) }
        return GuardRejection(code: code, status: 400, message: message, limit: limit, found: found)
    }

    /// A document that is not valid: the reason is always said.
    func failure(_ code: String, _ message: String) -> GuardRejection {
        GuardRejection(code: code, status: 400, message: message)
    }
}

extension GuardLimits {
    /// The limits a conformance vector asks for: its options over the vectors' baseline,
    /// where every limit not listed is off but the nesting guards, and introspection is
    /// allowed. Used by the test-only conformance mode and the unit tests.
    public init(conformanceOptions options: JSONValue) {
        self = .off
        self.maxIntrospectionListDepth = 2
        func int(_ key: String) -> Int? { if case .number(let n)? = options[key], n == n.rounded() { Int(n) } else { nil } }
        if let n = int("maxCharacters") { maxCharacters = n }
        if let n = int("maxTokens") { maxTokens = n }
        if let n = int("maxNesting") { maxNesting = n }
        if let n = int("maxValueNesting") { maxValueNesting = n }
        if let n = int("maxDepth") { maxDepth = n }
        if let n = int("maxFields") { maxFields = n }
        if let n = int("maxAliases") { maxAliases = n }
        if let n = int("maxDirectives") { maxDirectives = n }
        if let n = int("maxCost") { maxCost = n }
        if let n = int("maxIntrospectionListDepth") { maxIntrospectionListDepth = n }
        if case .bool(let expose)? = options["exposeLimits"] { exposeLimits = expose }
        if case .string(let message)? = options["errorMessage"] { errorMessage = message }
        if case .bool(let mask)? = options["maskSuggestions"] { maskSuggestions = mask }
        if case .string(let mask)? = options["suggestionMask"] { suggestionMask = mask }
        if case .bool(let on)? = options["batching"] { batching = on }
        if let n = int("maxBatchSize") { maxBatchSize = n }
        if case .string(let mode)? = options["introspection"], let value = Introspection(rawValue: mode) { introspection = value }
        if case .array(let names)? = options["aliasExemptFields"] {
            aliasExemptFields = Set(names.compactMap { if case .string(let s) = $0 { s } else { nil } })
        }
    }
}

extension GuardLimits {
    /// `message` with every `Did you mean ...?` clause replaced by `suggestionMask` (when
    /// `maskSuggestions` is on), then trimmed: field suggestions tell a prober the schema.
    public func masking(_ message: String) -> String {
        guard maskSuggestions, message.contains("Did you mean") else { return message }
        var out = Substring()
        var rest = Substring(message)
        while let start = rest.firstRange(of: "Did you mean") {
            out += rest[..<start.lowerBound]
            out += suggestionMask
            let tail = rest[start.upperBound...]
            // The clause ends at its question mark; one without runs to the end.
            rest = tail.firstIndex(of: "?").map { tail[tail.index(after: $0)...] } ?? Substring()
        }
        out += rest
        return String(out.trimmingASCIIWhitespace())
    }

    /// A GraphQL answer (or a batch of them) with every error message masked; nil when
    /// nothing changed, so an answer without suggestions is sent as it came.
    public func masking(answer json: JSONValue) -> JSONValue? {
        guard maskSuggestions else { return nil }
        switch json {
        case .array(let entries):
            let masked = entries.map { masking(answer: $0) }
            guard masked.contains(where: { $0 != nil }) else { return nil }
            return .array(zip(entries, masked).map { $1 ?? $0 })
        case .object(var members):
            guard case .array(let errors)? = members["errors"] else { return nil }
            var changed = false
            members["errors"] = .array(errors.map { error in
                guard case .object(var fields) = error, case .string(let message)? = fields["message"] else { return error }
                let masked = masking(message)
                guard masked != message else { return error }
                changed = true
                fields["message"] = .string(masked)
                return .object(fields)
            })
            return changed ? .object(members) : nil
        default:
            return nil
        }
    }
}
