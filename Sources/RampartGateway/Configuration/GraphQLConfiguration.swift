public import RampartCore
public import RampartGraphQL
import HTTPTypes

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
    /// Send the normalized document upstream instead of the client's text (POST only).
    public var forwardNormalized = false
    /// The response cache for this route's queries; off when absent.
    public var cache: GraphQLCacheConfiguration?
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
        case maskSuggestions, suggestionMask, batching, maxBatchSize, normalization, cache, schemaValidation
    }

    /// `normalization:`: what the upstream receives.
    struct Normalization: Codable {
        var forward = false

        enum CodingKeys: String, CodingKey, CaseIterable { case forward }

        init(forward: Bool) { self.forward = forward }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            forward = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(Bool.self, forKey: .forward) ?? false
        }
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
        limits.maskSuggestions = try c.decodeIfPresent(Bool.self, forKey: .maskSuggestions) ?? limits.maskSuggestions
        limits.suggestionMask = try c.decodeIfPresent(String.self, forKey: .suggestionMask) ?? limits.suggestionMask
        limits.batching = try c.decodeIfPresent(Bool.self, forKey: .batching) ?? limits.batching
        limits.schemaValidation = try c.decodeIfPresent(Bool.self, forKey: .schemaValidation) ?? limits.schemaValidation
        limits.maxBatchSize = try c.decodeIfPresent(Int.self, forKey: .maxBatchSize) ?? limits.maxBatchSize
        self.limits = limits
        forwardNormalized = try c.decodeIfPresent(Normalization.self, forKey: .normalization)?.forward ?? false
        cache = try c.decodeIfPresent(GraphQLCacheConfiguration.self, forKey: .cache)
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
        try c.encode(limits.maskSuggestions, forKey: .maskSuggestions)
        try c.encode(limits.suggestionMask, forKey: .suggestionMask)
        try c.encode(limits.batching, forKey: .batching)
        try c.encode(limits.schemaValidation, forKey: .schemaValidation)
        try c.encode(limits.maxBatchSize, forKey: .maxBatchSize)
        try c.encode(Normalization(forward: forwardNormalized), forKey: .normalization)
        try c.encodeIfPresent(cache, forKey: .cache)
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
        if limits.maxBatchSize < 1 { issues.append(.init(path: "\(path).maxBatchSize", "must be at least 1, got \(limits.maxBatchSize)")) }
        issues += cache?.validate(at: "\(path).cache") ?? []
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

/// `routes[i].graphql.cache`: query answers kept and served again (GRAPHQL-GUARD.md section 5,
/// docs/graphql.md). Entries live in the gateway's cache (`graphqlCache:`).
///
/// ```yaml
/// cache:
///   scope: credential        # public | credential | tenant | user
///   defaultTtl: 30s          # when the upstream says nothing
///   maxTtl: 5m
///   mutationInvalidates: {createProduct: [Product]}
/// ```
public struct GraphQLCacheConfiguration: Codable, Sendable, Equatable {
    /// Who may be served an entry stored for another request.
    public enum Scope: String, Codable, Sendable, CaseIterable {
        /// Everyone shares entries, credentials or not.
        case `public`
        /// Requests without credentials share; one with `Authorization` or cookies gets its
        /// own entries, keyed by a hash of the credential.
        case credential
        /// Per tenant of the identity layer (credential scoping for callers without one).
        case tenant
        /// Per user of the identity layer (credential scoping for callers without one).
        case user
    }

    public var enabled = true
    public var scope = Scope.credential
    /// Request headers whose values join the scope (`Accept-Language`, ...).
    public var varyHeaders: [String] = []
    /// How long to keep an answer the upstream gave no lifetime for; none keeps nothing.
    public var defaultTtl: ConfigDuration?
    /// The most any answer is kept, whatever the upstream says.
    public var maxTtl = ConfigDuration.seconds(300)
    /// Larger answers are neither stored nor rewritten.
    public var maxEntryBytes: ByteCount = .mebibytes(1)
    /// Type tags a mutation's root field purges (`createProduct: [Product]`).
    public var mutationInvalidates: [String: [String]] = [:]
    /// Also purge every type seen in a mutation's answer.
    public var invalidateReturnedTypes = false
    /// The fields that identify an object per type, for entity tags (`id` otherwise).
    public var keyFields: [String: [String]] = [:]

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case enabled, scope, varyHeaders, defaultTtl, maxTtl, maxEntryBytes, mutationInvalidates, invalidateReturnedTypes, keyFields
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? true
        scope = try c.decodeIfPresent(Scope.self, forKey: .scope) ?? .credential
        varyHeaders = try c.decodeIfPresent([String].self, forKey: .varyHeaders) ?? []
        defaultTtl = try c.decodeIfPresent(ConfigDuration.self, forKey: .defaultTtl)
        maxTtl = try c.decodeIfPresent(ConfigDuration.self, forKey: .maxTtl) ?? .seconds(300)
        maxEntryBytes = try c.decodeIfPresent(ByteCount.self, forKey: .maxEntryBytes) ?? .mebibytes(1)
        mutationInvalidates = try c.decodeIfPresent([String: [String]].self, forKey: .mutationInvalidates) ?? [:]
        invalidateReturnedTypes = try c.decodeIfPresent(Bool.self, forKey: .invalidateReturnedTypes) ?? false
        keyFields = try c.decodeIfPresent([String: [String]].self, forKey: .keyFields) ?? [:]
    }

    func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        for (index, name) in varyHeaders.enumerated() where HTTPField.Name(name) == nil {
            issues.append(.init(path: "\(path).varyHeaders[\(index)]", "\"\(name)\" is not a header name"))
        }
        if maxTtl.seconds < 1 { issues.append(.init(path: "\(path).maxTtl", "must be at least 1s, got \(maxTtl)")) }
        if let ttl = defaultTtl, ttl.seconds < 1 { issues.append(.init(path: "\(path).defaultTtl", "must be at least 1s, got \(ttl)")) }
        if maxEntryBytes.bytes < 1 { issues.append(.init(path: "\(path).maxEntryBytes", "must be at least 1 byte")) }
        for type in keyFields.keys.sorted() where keyFields[type]!.isEmpty {
            issues.append(.init(path: "\(path).keyFields.\(type)", "names no field"))
        }
        return issues
    }
}

/// `graphqlCache:`: the gateway's one store for every GraphQL route's cached answers.
/// Changing it needs a restart.
///
/// ```yaml
/// graphqlCache:
///   memory: 64MiB      # layer one, least recently used evicted first
///   redis: true        # layer two in the gateway's redis:, shared by replicas
/// ```
public struct GraphQLCacheStoreConfiguration: Codable, Sendable, Equatable {
    public var memory: ByteCount = .mebibytes(64)
    /// Keep entries in the `redis:` server too, and tell the other replicas what was purged.
    public var redis = false
    public var keyPrefix = "rampart:graphql:"

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable { case memory, redis, keyPrefix }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        memory = try c.decodeIfPresent(ByteCount.self, forKey: .memory) ?? .mebibytes(64)
        redis = try c.decodeIfPresent(Bool.self, forKey: .redis) ?? false
        keyPrefix = try c.decodeIfPresent(String.self, forKey: .keyPrefix) ?? "rampart:graphql:"
    }
}
