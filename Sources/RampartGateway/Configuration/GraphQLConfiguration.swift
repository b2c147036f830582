public import RampartCore
public import RampartGraphQL

/// `routes[i].graphql`: the route carries GraphQL over HTTP, and every operation is analysed
/// before it reaches the upstream (see docs/graphql.md). Each limit takes a number or `off`;
/// the two nesting limits are always on.
///
/// ```yaml
/// graphql:
///   schema: schema.graphql      # SDL: types, @cost and @listSize for cost
///   mode: enforce               # or measure: analyse and log, refuse nothing
///   maxDepth: 10
///   maxCost: 1000
///   introspection: deny
/// ```
public struct GraphQLRouteConfiguration: Codable, Sendable, Equatable {
    public enum Mode: String, Codable, Sendable, CaseIterable { case enforce, measure }

    /// An SDL file: with it, cost uses the schema's types, `@cost` and `@listSize`.
    public var schema: String?
    public var mode: Mode = .enforce
    /// Larger POST bodies are refused with 413 before they are analysed.
    public var maxBodyBytes: ByteCount = .mebibytes(1)
    public var limits = GuardLimits()
    public var cost = CostSettings()
    /// Test only: take each request's limits and schema from its `Rampart-Conformance`
    /// header (the shared conformance runner's protocol), schemas named from this folder.
    /// Refused unless the traffic listener is on loopback.
    public var conformanceTesting: ConformanceTesting?

    public struct ConformanceTesting: Codable, Sendable, Equatable {
        public var schemaDirectory: String

        public init(schemaDirectory: String) { self.schemaDirectory = schemaDirectory }
    }

    public init(schema: String? = nil) { self.schema = schema }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case schema, mode, maxBodyBytes, maxCharacters, maxTokens, maxNesting, maxValueNesting, maxDepth, maxFields, maxAliases
        case aliasExemptFields, maxDirectives, introspection, maxIntrospectionListDepth, maxCost, exposeLimits, errorMessage
        case defaultListSize, mutationBaseCost, slicingArguments, sizedFields, conformanceTesting
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schema = try c.decodeIfPresent(String.self, forKey: .schema)
        mode = try c.decodeIfPresent(Mode.self, forKey: .mode) ?? .enforce
        maxBodyBytes = try c.decodeIfPresent(ByteCount.self, forKey: .maxBodyBytes) ?? .mebibytes(1)
        var limits = GuardLimits()
        func limit(_ key: CodingKeys, _ fallback: Int?) throws -> Int? {
            guard c.contains(key) else { return fallback }
            // A number first: YAML reads any scalar as a string too.
            if let number = try? c.decode(Int.self, forKey: key) { return number }
            let text = try c.decode(String.self, forKey: key)
            guard text == "off" else {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "a whole number or off, got \"\(text)\"")
            }
            return nil
        }
        limits.maxCharacters = try limit(.maxCharacters, limits.maxCharacters)
        limits.maxTokens = try limit(.maxTokens, limits.maxTokens)
        limits.maxNesting = try c.decodeIfPresent(Int.self, forKey: .maxNesting) ?? limits.maxNesting
        limits.maxValueNesting = try c.decodeIfPresent(Int.self, forKey: .maxValueNesting) ?? limits.maxValueNesting
        limits.maxDepth = try limit(.maxDepth, limits.maxDepth)
        limits.maxFields = try limit(.maxFields, limits.maxFields)
        limits.maxAliases = try limit(.maxAliases, limits.maxAliases)
        if let exempt = try c.decodeIfPresent([String].self, forKey: .aliasExemptFields) { limits.aliasExemptFields = Set(exempt) }
        limits.maxDirectives = try limit(.maxDirectives, limits.maxDirectives)
        limits.introspection = try c.decodeIfPresent(GuardLimits.Introspection.self, forKey: .introspection) ?? limits.introspection
        limits.maxIntrospectionListDepth = try limit(.maxIntrospectionListDepth, limits.maxIntrospectionListDepth)
        limits.maxCost = try limit(.maxCost, limits.maxCost)
        limits.exposeLimits = try c.decodeIfPresent(Bool.self, forKey: .exposeLimits) ?? limits.exposeLimits
        limits.errorMessage = try c.decodeIfPresent(String.self, forKey: .errorMessage) ?? limits.errorMessage
        self.limits = limits
        var cost = CostSettings()
        cost.defaultListSize = try c.decodeIfPresent(Int.self, forKey: .defaultListSize) ?? cost.defaultListSize
        cost.mutationBaseCost = try c.decodeIfPresent(Int.self, forKey: .mutationBaseCost) ?? cost.mutationBaseCost
        cost.slicingArguments = try c.decodeIfPresent([String].self, forKey: .slicingArguments) ?? cost.slicingArguments
        cost.sizedFields = try c.decodeIfPresent([String].self, forKey: .sizedFields) ?? cost.sizedFields
        self.cost = cost
        conformanceTesting = try c.decodeIfPresent(ConformanceTesting.self, forKey: .conformanceTesting)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(schema, forKey: .schema)
        try c.encode(mode, forKey: .mode)
        try c.encode(maxBodyBytes, forKey: .maxBodyBytes)
        func limit(_ value: Int?, _ key: CodingKeys) throws {
            if let value { try c.encode(value, forKey: key) } else { try c.encode("off", forKey: key) }
        }
        try limit(limits.maxCharacters, .maxCharacters)
        try limit(limits.maxTokens, .maxTokens)
        try c.encode(limits.maxNesting, forKey: .maxNesting)
        try c.encode(limits.maxValueNesting, forKey: .maxValueNesting)
        try limit(limits.maxDepth, .maxDepth)
        try limit(limits.maxFields, .maxFields)
        try limit(limits.maxAliases, .maxAliases)
        try c.encode(limits.aliasExemptFields.sorted(), forKey: .aliasExemptFields)
        try limit(limits.maxDirectives, .maxDirectives)
        try c.encode(limits.introspection, forKey: .introspection)
        try limit(limits.maxIntrospectionListDepth, .maxIntrospectionListDepth)
        try limit(limits.maxCost, .maxCost)
        try c.encode(limits.exposeLimits, forKey: .exposeLimits)
        try c.encode(limits.errorMessage, forKey: .errorMessage)
        try c.encode(cost.defaultListSize, forKey: .defaultListSize)
        try c.encode(cost.mutationBaseCost, forKey: .mutationBaseCost)
        try c.encode(cost.slicingArguments, forKey: .slicingArguments)
        try c.encode(cost.sizedFields, forKey: .sizedFields)
        try c.encodeIfPresent(conformanceTesting, forKey: .conformanceTesting)
    }

    /// Every problem, at its path; the schema file is read and parsed.
    func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        let counts: [(String, Int?)] = [
            ("maxCharacters", limits.maxCharacters), ("maxTokens", limits.maxTokens), ("maxDepth", limits.maxDepth),
            ("maxFields", limits.maxFields), ("maxAliases", limits.maxAliases), ("maxDirectives", limits.maxDirectives),
            ("maxIntrospectionListDepth", limits.maxIntrospectionListDepth), ("maxCost", limits.maxCost),
            ("defaultListSize", cost.defaultListSize), ("mutationBaseCost", cost.mutationBaseCost),
        ]
        for (name, value) in counts {
            if let value, value < 0 { issues.append(.init(path: "\(path).\(name)", "must not be negative, got \(value)")) }
        }
        if !(1...GuardLimits.nestingCeiling).contains(limits.maxNesting) {
            issues.append(.init(path: "\(path).maxNesting", "must be 1 to \(GuardLimits.nestingCeiling) (the parser recurses once per level), got \(limits.maxNesting)"))
        }
        if !(0...limits.maxNesting).contains(limits.maxValueNesting) {
            issues.append(.init(path: "\(path).maxValueNesting", "must be 0 to maxNesting, got \(limits.maxValueNesting)"))
        }
        if maxBodyBytes.bytes < 1 { issues.append(.init(path: "\(path).maxBodyBytes", "must be at least 1 byte")) }
        do {
            _ = try compile()
        } catch let issue as ConfigurationIssue {
            issues.append(ConfigurationIssue(path: "\(path).\(issue.path)", issue.problem))
        } catch {
            issues.append(.init(path: "\(path).schema", "\(error)"))
        }
        return issues
    }

    /// The guard this route runs, its schema read.
    func compile() throws -> GraphQLGuard {
        var schema: Schema?
        if let file = self.schema {
            let text: String
            do {
                text = try FileText.read(file)
            } catch {
                throw ConfigurationIssue(path: "schema", "\(error)")
            }
            do throws(Schema.Problem) {
                schema = try Schema(sdl: text)
            } catch {
                throw ConfigurationIssue(path: "schema", "\(file): \(error)")
            }
        }
        return GraphQLGuard(limits: limits, schema: schema, costSettings: cost)
    }
}
