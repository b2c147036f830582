import Testing

@testable import RampartGraphQL

@Suite("GraphQL validation against a schema")
struct SchemaValidationTests {
    static let schema = try! Schema(sdl: """
        directive @tag(name: String!) repeatable on FIELD
        directive @once on FIELD
        interface Node { id: ID! }
        type Author implements Node { id: ID! name: String books(first: Int = 5): [Book!]! }
        type Book implements Node { id: ID! title: String author: Author }
        union Result = Author | Book
        enum Genre { NOVEL POETRY }
        input Filter { genre: Genre }
        type Query { book(id: ID!): Book search(text: String!, filter: Filter): [Result] node(id: ID!): Node genre: Genre }
        """)

    func rejection(_ text: String, mask: Bool = false) -> GuardRejection? {
        var limits = GuardLimits.off
        limits.maskSuggestions = mask
        return GraphQLGuard(limits: limits, schema: Self.schema).analyze(document: text).rejection
    }

    @Test("valid operations pass", arguments: [
        #"{ book(id: "1") { id title author { name books { title } } } }"#,
        #"{ search(text: "x", filter: {genre: NOVEL}) { __typename ... on Author { name } ... on Book { title } } }"#,
        #"{ node(id: "1") { id ... on Book { title } } genre }"#,
        #"query Q($id: ID!, $f: Filter) { book(id: $id) @include(if: true) { title @tag(name: "a") @tag(name: "b") @once } search(text: "", filter: $f) { __typename } }"#,
        #"{ ...F } fragment F on Query { book(id: "1") { id } }"#,
        "{ __schema { types { name } } __type(name: \"Book\") { name } }",
    ])
    func valid(text: String) {
        #expect(rejection(text) == nil)
    }

    @Test("what the schema does not allow is refused, saying why", arguments: [
        (#"{ book(id: "1") { titel } }"#, #"Cannot query field "titel" on type "Book". Did you mean "title"?"#),
        (#"{ bok(id: "1") { id } }"#, #"Cannot query field "bok" on type "Query". Did you mean "book"?"#),
        (#"{ book(id: "1") { zzzzzz } }"#, #"Cannot query field "zzzzzz" on type "Book"."#),
        (#"{ search(text: "x") { id } }"#, #"Cannot query field "id" on type "Result"."#),
        (#"{ book(idd: "1") { id } }"#, #"Unknown argument "idd" on field "Query.book". Did you mean "id"?"#),
        ("{ book { id } }", #"Field "Query.book" argument "id" of type "ID!" is required, but it was not provided."#),
        (#"{ book(id: "1") }"#, #"Field "book" of type "Book" must have a selection of subfields. Did you mean "book { ... }"?"#),
        (#"{ book(id: "1") { title { x } } }"#, #"Field "title" must not have a selection since type "String" has no subfields."#),
        (#"{ book(id: "1") { id @a } }"#, #"Unknown directive "@a"."#),
        (#"{ book(id: "1") { id @once @once } }"#, #"The directive "@once" can only be used once at this location."#),
        (#"{ book(id: "1") { id @tag } }"#, #"Directive "@tag" argument "name" of type "String!" is required, but it was not provided."#),
        (#"{ ... on Boook { id } }"#, #"Unknown type "Boook". Did you mean "Book"?"#),
        ("{ ...F } fragment F on Genre { x }", #"Fragment cannot condition on non composite type "Genre"."#),
        ("query Q($b: Book) { book(id: $b) { id } }", #"Variable "$b" cannot be non-input type "Book"."#),
        ("mutation { x }", "Schema is not configured to execute mutation operation."),
        (#"{ book(id: "1") { author { nmae } } }"#, #"Cannot query field "nmae" on type "Author". Did you mean "name"?"#),
    ])
    func invalid(text: String, message: String) {
        let found = rejection(text)
        #expect(found?.code == "GRAPHQL_VALIDATION_FAILED" && found?.status == 400)
        #expect(found?.message == message)
    }

    @Test("suggestions list the closest names and are masked when asked")
    func suggestions() {
        #expect(SchemaValidation.didYouMean("nme", among: ["name", "names", "id", "title"]) == #" Did you mean "name" or "names"?"#)
        #expect(SchemaValidation.didYouMean("a", among: ["b", "c", "d"]) == #" Did you mean "b", "c", or "d"?"#)
        #expect(SchemaValidation.distance("Title", "title") == 1 && SchemaValidation.distance("tilte", "title") == 1)
        #expect(rejection(#"{ book(id: "1") { titel } }"#, mask: true)?.message == #"Cannot query field "titel" on type "Book". [Suggestion hidden]"#)
    }

    @Test("schemaValidation off: the schema gives cost its types and nothing is validated")
    func off() {
        var limits = GuardLimits.off
        limits.schemaValidation = false
        let analysis = GraphQLGuard(limits: limits, schema: Self.schema).analyze(document: #"{ book(id: "1") { titel author { name } } }"#)
        #expect(analysis.isAccepted && analysis.cost == 2)
    }

    @Test("limits run first: a deep document is refused for its depth before it is validated")
    func order() {
        var limits = GuardLimits.off
        limits.maxDepth = 2
        let analysis = GraphQLGuard(limits: limits, schema: Self.schema).analyze(document: #"{ book(id: "1") { author { nmae } } }"#)
        #expect(analysis.rejection?.code == "MAX_DEPTH_EXCEEDED")
    }
}
