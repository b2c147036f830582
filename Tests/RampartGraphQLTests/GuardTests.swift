import PropertyBased
import Testing

@testable import RampartGraphQL

@Suite("GraphQL guard")
struct GuardTests {
    func analyze(_ text: String, operationName: String? = nil, isGet: Bool = false, _ change: (inout GuardLimits) -> Void = { _ in }) -> GuardAnalysis {
        var limits = GuardLimits()
        change(&limits)
        return GraphQLGuard(limits: limits).analyze(document: text, operationName: operationName, isGet: isGet)
    }

    @Test("structural validation refuses what no server could execute", arguments: [
        ("type T { a: Int }", "The \"type\" definition is not executable."),
        ("query Q { a } query Q { b }", "There can be only one operation named \"Q\"."),
        ("{ a } query Q { b }", "This anonymous operation must be the only defined operation."),
        ("{ ...F } fragment F on T { a } fragment F on T { b }", "There can be only one fragment named \"F\"."),
        ("{ ...Missing }", "Unknown fragment \"Missing\"."),
        ("{ ...A } fragment A on T { ...B } fragment B on T { ...A }", "Cannot spread fragment \"A\" within itself."),
        ("{ ...A } fragment A on T { a ...A }", "Cannot spread fragment \"A\" within itself."),
        ("{ a } fragment Unused on T { b }", "Fragment \"Unused\" is never used."),
        ("query Q($a: Int, $a: Int) { f(x: $a) }", "There can be only one variable named \"$a\"."),
        ("query Q { f(x: $a) }", "Variable \"$a\" is not defined by operation \"Q\"."),
        ("query Q { ...F } fragment F on T { f(x: $deep) }", "Variable \"$deep\" is not defined by operation \"Q\"."),
        ("query Q($a: Int) { f }", "Variable \"$a\" is never used in operation \"Q\"."),
    ])
    func validation(text: String, message: String) {
        let rejection = analyze(text).rejection
        #expect(rejection?.code == "GRAPHQL_VALIDATION_FAILED" && rejection?.status == 400)
        #expect(rejection?.message == message, "\(String(describing: rejection))")
    }

    @Test("variables used through fragments and directives count as used")
    func variablesThroughFragments() {
        #expect(analyze("query Q($a: Int, $b: Boolean) { ...F @include(if: $b) } fragment F on T { f(x: {y: [$a]}) }").isAccepted)
    }

    @Test("operations are chosen by name; without one the document holds exactly one")
    func selection() {
        let text = "query A { a } query B { b { c } }"
        #expect(analyze(text, operationName: "B").selected?.name == "B")
        #expect(analyze(text).rejection?.code == "OPERATION_RESOLUTION_FAILURE")
        #expect(analyze(text, operationName: "C").rejection?.message == "Unknown operation named \"C\".")
        #expect(analyze("mutation M { m }", isGet: true).rejection?.status == 405)
        #expect(analyze("query { q }", isGet: true).isAccepted)
    }

    @Test("depth counts fields on a path after fragments are flattened; introspection is not counted")
    func depth() {
        let text = """
        query { a { b { c } ...F ... on T { d { e { f } } } } __schema { types { fields { name } } } }
        fragment F on T { g { h } }
        """
        let worst = analyze(text) { $0.introspection = .allow }.worst
        #expect(worst?.depth == 4)  // a d e f
        #expect(worst?.fields == 8)  // a b c d e f g h, nothing of __schema
        #expect(worst?.usesIntrospection == true && worst?.introspectionListDepth == 1)
        #expect(analyze("{ __typename a { __typename } }").worst?.fields == 3)
    }

    @Test("aliases: every aliased field after expansion, id: id too, __typename exempt")
    func aliases() {
        let worst = analyze("{ x: a { id: id t: __typename ...F ...F } } fragment F on T { y: b }").worst
        #expect(worst?.aliases == 4)  // x, id, y twice
        #expect(analyze("{ t: __typename }") { $0.aliasExemptFields = [] }.worst?.aliases == 1)
    }

    @Test("directives: on the operation, its variables, fields, fragments, spreads, and a fragment's definition once per spread")
    func directives() {
        let worst = analyze("query Q($v: Int @a) @b { f(x: $v) @c ...F @d ...F ... @e { g } } fragment F on T @f { h @g }").worst
        // a b c e; per spread: d (once) + f + g, twice: 4 + 1 + 2 + 2 = 9
        #expect(worst?.directives == 9)
    }

    @Test("limits are checked in the spec's order and say the limit and what was found")
    func limitOrder() {
        let deepAndAliased = "{ a: x { b: y { c: z } } }"
        let both = analyze(deepAndAliased) { $0.maxDepth = 2; $0.maxAliases = 1 }.rejection
        #expect(both == GuardRejection(code: "MAX_DEPTH_EXCEEDED", status: 400, message: "Query depth limit of 2 exceeded, found 3.", limit: 2, found: 3))
        #expect(analyze(deepAndAliased) { $0.maxAliases = 1 }.rejection?.found == 3)
        #expect(analyze("{ a @x @y }") { $0.maxDirectives = 1 }.rejection?.code == "MAX_DIRECTIVES_EXCEEDED")
        #expect(analyze("{ a b c }") { $0.maxFields = 2 }.rejection?.code == "MAX_FIELDS_EXCEEDED")
        let hidden = analyze(deepAndAliased) { $0.maxDepth = 2; $0.exposeLimits = false }.rejection
        #expect(hidden == GuardRejection(code: "MAX_DEPTH_EXCEEDED", status: 400, message: "Query validation error."))
        #expect(analyze("{ a }") { $0.maxCharacters = 4 }.rejection?.found == 5)
        #expect(analyze("{ a }") { $0.maxCharacters = nil; $0.maxTokens = 2 }.rejection?.code == "MAX_TOKENS_EXCEEDED")
        // Structural limits hold for every operation, not only the one selected.
        #expect(analyze("query A { a } query B { b { c { d } } }", operationName: "A") { $0.maxDepth = 2 }.rejection?.code == "MAX_DEPTH_EXCEEDED")
    }

    @Test("introspection: refused when denied, and its list depth is bounded when allowed")
    func introspection() {
        #expect(analyze("{ __type(name: \"T\") { name } }").rejection?.code == "INTROSPECTION_DISABLED")
        #expect(analyze("{ __typename }").isAccepted)
        let nested = "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }"
        let rejection = analyze(nested) { $0.introspection = .allow }.rejection
        #expect(rejection?.code == "MAX_INTROSPECTION_DEPTH_EXCEEDED" && rejection?.found == 3)
        // A fragment or operation *named* __schema is not introspection.
        #expect(analyze("query __schema { ...__type } fragment __type on Query { a }").isAccepted)
    }

    // MARK: - Hostile documents

    @Test("hostile documents are refused by the cheap limits, or measured in linear time with the limits off")
    func hostile() {
        let deep = String(repeating: "{a", count: 10_000) + String(repeating: "}", count: 10_000)
        #expect(analyze(deep) { $0.maxCharacters = nil; $0.maxTokens = nil }.rejection?.code == "MAX_NESTING_EXCEEDED")
        let aliases = "{" + (0..<100_000).map { "a\($0): f" }.joined(separator: " ") + "}"
        #expect(analyze(aliases).rejection?.code == "MAX_CHARACTERS_EXCEEDED")
        let unbounded = analyze(aliases) { $0.maxCharacters = nil; $0.maxTokens = nil; $0.maxAliases = nil; $0.maxFields = nil }
        #expect(unbounded.isAccepted && unbounded.worst?.aliases == 100_000)
        let huge = String(repeating: "{ a }", count: 2 * 1024 * 1024)
        #expect(analyze(huge).rejection?.code == "MAX_CHARACTERS_EXCEEDED")
        let values = "{ f(x: " + String(repeating: "[", count: 5_000) + String(repeating: "]", count: 5_000) + ") }"
        #expect(analyze(values) { $0.maxCharacters = nil; $0.maxTokens = nil }.rejection?.code == "MAX_NESTING_EXCEEDED")
        // A chain of 20,000 fragments, each spreading the next: no recursion from one into another.
        var chain = "{ ...F0 }"
        for i in 0..<20_000 { chain += " fragment F\(i) on T { a\(i) " + (i < 19_999 ? "...F\(i + 1) }" : "}") }
        let long = analyze(chain) { $0.maxCharacters = nil; $0.maxTokens = nil; $0.maxFields = nil }
        #expect(long.isAccepted && long.worst?.fields == 20_000 && long.worst?.depth == 1)
        // Each fragment spreading the next twice: 2^40 - 1 fields if expanded, counted by memo;
        // 70 levels would be past 2^53 - 1, where counts saturate.
        var doubling = "{ ...G0 }"
        for i in 0..<40 { doubling += " fragment G\(i) on T { a " + (i < 39 ? "...G\(i + 1) ...G\(i + 1) }" : "}") }
        let counted = analyze(doubling) { $0.maxFields = nil }
        #expect(counted.worst?.fields == (1 << 40) - 1)
        var overflowing = "{ ...H0 }"
        for i in 0..<70 { overflowing += " fragment H\(i) on T { a " + (i < 69 ? "...H\(i + 1) ...H\(i + 1) }" : "}") }
        #expect(analyze(overflowing) { $0.maxFields = nil; $0.maxTokens = nil }.worst?.fields == OperationMetrics.saturation)
    }

    @Test("the guard never crashes and always answers, whatever the bytes")
    func fuzz() async {
        let alphabet = Array("{}[]()!$&:=@|.\"\\# \n,aon_019-eE".utf8) + [0xEF, 0xBB, 0xBF, 0x00, 0xC3]
        await propertyCheck(count: 2_000, input: Gen.int(in: 0...(alphabet.count - 1)).array(of: 0...200)) { picks in
            let bytes = picks.map { alphabet[$0] }
            let analysis = GraphQLGuard().analyze(bytes: bytes)
            #expect(analysis.characters == bytes.count)
            #expect(analysis.isAccepted == (analysis.worst != nil && analysis.rejection == nil))
        }
    }

    @Test("depth and fields of a generated chain are what was generated")
    func generatedDepth() async {
        await propertyCheck(count: 300, input: Gen.int(in: 1...120), Gen.int(in: 1...5)) { depth, width in
            var text = ""
            for level in 0..<depth { text += "f\(level) { " + (0..<(width - 1)).map { "s\(level)_\($0) " }.joined() }
            text += "leaf" + String(repeating: " }", count: depth)
            let analysis = GraphQLGuard(limits: { var l = GuardLimits(); l.maxDepth = nil; l.maxFields = nil; l.maxTokens = nil; return l }())
                .analyze(document: "{ \(text) }")
            #expect(analysis.worst?.depth == depth + 1)
            #expect(analysis.worst?.fields == depth * width + 1)
        }
    }
}
