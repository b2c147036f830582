import RampartCore
import Testing

@testable import RampartGraphQL

@Suite("GraphQL cost")
struct CostTests {
    func cost(_ text: String, variables: JSONValue? = nil, schema: Schema? = nil, operationName: String? = nil) -> GuardAnalysis {
        var limits = GuardLimits()
        limits.maxCost = nil
        limits.introspection = .allow
        return GraphQLGuard(limits: limits, schema: schema).analyze(document: text, variables: variables, operationName: operationName)
    }

    @Test("without a schema: objects 1, leaves 0, slicing arguments size lists, connections size their edges")
    func withoutSchema() {
        #expect(cost("{ a { b } c }").cost == 1)
        #expect(cost("{ list(first: 5) { x } }").cost == 5)
        #expect(cost("{ list(first: 5, last: 8) { x { y } } }").cost == 16)  // the largest, times (1 + 1)
        #expect(cost("{ users(first: 3) { edges { node { id } } pageInfo { end } } }").cost == 8)  // 1 × (1 + 3 × 2 + 1)
        #expect(cost("{ list(first: -4) { x } }").cost == 0)
        #expect(cost("{ list(first: 2.5) { x } }").cost == 1, "not an integer: ignored")
        #expect(cost("mutation { like(id: 1) { count } }").cost == 11)
        #expect(cost("{ __typename __schema { types { name } } a { __typename } }").cost == 1)
    }

    @Test("variables: the request's value, else the definition's default; an explicit null stays null")
    func variables() {
        let text = "query Q($n: Int = 4) { list(first: $n) { x } }"
        #expect(cost(text).cost == 4)
        #expect(cost(text, variables: .object(["n": .number(7)])).cost == 7)
        #expect(cost(text, variables: .object(["n": .null])).cost == 1)
        #expect(cost(text, variables: .object(["undeclared": .number(100)])).cost == 4)
    }

    @Test("skipped and not-included branches cost nothing, with literals or variables")
    func conditions() {
        let text = "query Q($s: Boolean!) { a @skip(if: $s) { b } c @include(if: false) { d } ...F @include(if: true) } fragment F on Query { e { f } }"
        #expect(cost(text, variables: .object(["s": .bool(true)])).cost == 1)
        #expect(cost(text, variables: .object(["s": .bool(false)])).cost == 2)
    }

    @Test("fragments and inline fragments add their selections wherever they are spread")
    func fragments() {
        #expect(cost("{ a { ...F ...F ... on T { g { h } } } } fragment F on T { x { y } }").cost == 4)
        // A connection's edges reached through a fragment are still sized.
        #expect(cost("{ users(first: 4) { ...Edges } } fragment Edges on UserConnection { edges { id } }").cost == 5)
    }

    static let sdl = """
    \"\"\"The root.\"\"\"
    type Query {
      search(limit: Int = 20, filter: Filter): [Item] @listSize(slicingArguments: ["limit"])
      products(first: Int, after: String): ProductConnection @listSize(slicingArguments: ["first"], sizedFields: ["edges"])
      anyProducts(first: Int, last: Int): ProductConnection @listSize(slicingArguments: ["first", "last"], sizedFields: ["edges"], requireOneSlicingArgument: false)
      expensive: Int @cost(weight: "2.5")
      tags: [String]
      me: User
    }
    type Item @cost(weight: 3) { name: String }
    type ProductConnection { edges: [ProductEdge] }
    type ProductEdge { node: Product }
    type Product implements Node & Thing { id: ID }
    interface Node { id: ID }
    union Thing = Product | Item
    enum Color { RED GREEN }
    scalar Date @cost(weight: 2)
    input Filter { tags: [String] @cost(weight: 1), color: Color, nested: Filter }
    type User { born: Date, friends: [User] }
    type Mutation { buy(id: ID!): Product }
    schema { query: Query mutation: Mutation }
    extend type User { nickname: String }
    directive @cost(weight: String!) on FIELD_DEFINITION | OBJECT | SCALAR | INPUT_FIELD_DEFINITION | ARGUMENT_DEFINITION
    """

    @Test("with a schema: @cost on fields and types, @listSize slicing and sized fields, argument costs")
    func withSchema() throws {
        let schema = try Schema(sdl: Self.sdl)
        #expect(cost("{ search { name } }", schema: schema).cost == 60)  // the argument's default 20 × Item's 3
        #expect(cost("{ search(limit: 2, filter: {tags: [\"a\", \"b\"], color: RED}) { name } }", schema: schema).cost == 10)  // 6 + 1 + (1 + 1 + 1)
        #expect(cost("{ products(first: 5) { edges { node { id } } } }", schema: schema).cost == 11)
        #expect(cost("{ anyProducts(first: 2, last: 6) { edges { node { id } } } }", schema: schema).cost == 13)
        #expect(cost("{ anyProducts { edges { node { id } } } }", schema: schema).cost == 21, "no slicing value: the default list size")
        #expect(cost("{ expensive tags }", schema: schema).cost == 3)
        #expect(cost("{ me { born nickname friends { born } } }", schema: schema).cost == 1 + 2 + 10 * (1 + 2))
        #expect(cost("mutation { buy(id: 1) { id } }", schema: schema).cost == 11)
        let missing = cost("{ products { edges { node { id } } } }", schema: schema).rejection
        #expect(missing?.code == "GRAPHQL_VALIDATION_FAILED" && missing?.message.contains("exactly one") == true)
    }

    @Test("over maxCost is refused with the cost found")
    func limit() {
        var limits = GuardLimits()
        limits.maxCost = 4
        let rejection = GraphQLGuard(limits: limits).analyze(document: "{ list(first: 5) { x } }").rejection
        #expect(rejection == GuardRejection(code: "COST_ESTIMATED_TOO_EXPENSIVE", status: 400, message: "Query Cost limit of 4 exceeded, found 5.",
                                            limit: 4, found: 5))
    }

    @Test("a schema that is not SDL, or weighs something below zero, is refused saying why", arguments: [
        ("type Query { a: Int @cost(weight: -1) }", "must not be negative"), ("type Query { a: }", "Expected Name"),
        ("query { a }", "Expected a type system definition"), ("type Query { a: Int", "Expected Name, found <EOF>"),
    ])
    func badSchemas(sdl: String, problem: String) {
        #expect {
            _ = try Schema(sdl: sdl)
        } throws: { error in
            "\(error)".contains(problem)
        }
    }
}

@Suite("GraphQL guard documentation")
struct DocumentationExampleTests {
    @Test("the example in docs/graphql.md answers what the page says")
    func example() throws {
        var limits = GuardLimits()
        limits.maxDepth = 8
        limits.introspection = .allow
        let schema = try Schema(sdl: """
          type Query { books(first: Int): [Book] }
          type Book { title: String author: Author }
          type Author { name: String }
          """)
        let analysis = GraphQLGuard(limits: limits, schema: schema)
            .analyze(document: "query Books($n: Int = 5) { books(first: $n) { title author { name } } }",
                     variables: ["n": 3], operationName: "Books")
        #expect(analysis.isAccepted)
        #expect(analysis.worst?.depth == 3)
        #expect(analysis.lexical?.tokens == 26)
        #expect(analysis.cost == 6)
    }
}
