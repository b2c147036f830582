// graphql-bench: how long the GraphQL guard's analysis takes (lex, parse, validation, every
// metric and cost against a schema) for a small, a medium and a large operation, for
// docs/performance.md. scripts/bench-graphql.sh runs it beside graphql-core parsing and
// validating the same documents.
//
//   graphql-bench [--iterations N]     times each document
//   graphql-bench write DIR            writes schema.graphql and small/medium/large.graphql
import Foundation
import RampartCore
import RampartGraphQL

let schemaText = """
directive @listSize(assumedSize: Int, slicingArguments: [String!], sizedFields: [String!], requireOneSlicingArgument: Boolean = true) on FIELD_DEFINITION
type Query {
  books(first: Int, after: String, filter: BookFilter): BookConnection @listSize(slicingArguments: ["first"], sizedFields: ["edges"])
  book(id: ID!): Book
  author(id: ID!): Author
  search(text: String!, limit: Int = 10): [SearchResult]
}
type BookConnection { edges: [BookEdge] pageInfo: PageInfo totalCount: Int }
type BookEdge { cursor: String node: Book }
type PageInfo { hasNextPage: Boolean endCursor: String }
type Book { id: ID! title: String isbn: String published: Int price(currency: Currency = EUR): Float author: Author reviews(first: Int): [Review] tags: [String] }
type Author { id: ID! name: String bio: String books(first: Int): [Book] }
type Review { id: ID! rating: Int text: String author: Author }
union SearchResult = Book | Author
enum Currency { EUR USD GBP }
input BookFilter { tag: String publishedAfter: Int authors: [ID!] }
"""

let small = """
query Book($id: ID!) {
  book(id: $id) {
    id title isbn published price(currency: USD)
    author { id name bio }
    reviews(first: 3) { id rating text }
    tags
  }
}
"""

/// A block of selections under a unique alias prefix, valid against the schema.
func block(_ n: Int) -> String {
    """
      page\(n): books(first: 10, filter: {tag: "t\(n)", publishedAfter: 2000}) {
        totalCount
        pageInfo { hasNextPage endCursor }
        edges {
          cursor
          node {
            ...BookCard
            reviews(first: 2) { id rating text author { id name } }
          }
        }
      }
      find\(n): search(text: "swift \(n)", limit: 5) {
        __typename
        ... on Book { id title }
        ... on Author { id name books(first: 2) { id title } }
      }

    """
}

func document(blocks: Int) -> String {
    var text = "query Catalogue($id: ID!, $currency: Currency = EUR) {\n  book(id: $id) { ...BookCard price(currency: $currency) }\n"
    for n in 0..<blocks { text += block(n) }
    text += "}\n\nfragment BookCard on Book {\n  id title isbn published tags\n  author { id name bio }\n}\n"
    return text
}

let medium = document(blocks: 4)
let large = document(blocks: 46)
let documents = [("small", small), ("medium", medium), ("large", large)]

let arguments = CommandLine.arguments
if arguments.count >= 3, arguments[1] == "write" {
    let folder = URL(fileURLWithPath: arguments[2])
    try schemaText.write(to: folder.appendingPathComponent("schema.graphql"), atomically: true, encoding: .utf8)
    for (name, text) in documents {
        try text.write(to: folder.appendingPathComponent("\(name).graphql"), atomically: true, encoding: .utf8)
    }
    exit(0)
}
let iterations = arguments.firstIndex(of: "--iterations").flatMap { Int(arguments[$0 + 1]) } ?? 20_000

let schema = try Schema(sdl: schemaText)
let analyzer = GraphQLGuard(limits: .off, schema: schema)
// The issue's definition of analysis (lex, parse, all metrics, cost): the schema used for
// cost only, not validated against.
var costOnlyLimits = GuardLimits.off
costOnlyLimits.schemaValidation = false
let costOnly = GraphQLGuard(limits: costOnlyLimits, schema: schema)

/// The best of three rounds of `runs` analyses, in microseconds, after a warm-up.
func bestTime(_ analyzer: GraphQLGuard, _ bytes: [UInt8], _ variables: JSONValue, runs count: Int) -> Double {
    var accepted = 0
    var best = Double.infinity
    for round in 0..<4 {
        let runs = round == 0 ? count / 10 : count
        let start = ContinuousClock.now
        for _ in 0..<runs where analyzer.analyze(bytes: bytes, variables: variables).isAccepted { accepted += 1 }
        let elapsed = ContinuousClock.now - start
        if round > 0 {
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            best = min(best, seconds / Double(runs) * 1e6)
        }
    }
    precondition(accepted > 0)
    return best
}

print("document,bytes,tokens,fields,cost,iterations_per_round,us_per_analysis_best_of_3,us_without_schema_validation")
for (name, text) in documents {
    let bytes = Array(text.utf8)
    let variables: JSONValue = ["id": "b1"]
    let check = analyzer.analyze(bytes: bytes, variables: variables)
    guard check.isAccepted, let worst = check.worst, let cost = check.cost else {
        print("\(name): refused: \(String(describing: check.rejection))")
        exit(1)
    }
    let count = max(10, iterations * 200 / max(bytes.count, 200))
    // A warm-up, then three measured rounds; the best is reported (the others only add the
    // machine's noise).
    let whole = bestTime(analyzer, bytes, variables, runs: count)
    let withoutValidation = bestTime(costOnly, bytes, variables, runs: count)
    print("\(name),\(bytes.count),\(check.lexical?.tokens ?? 0),\(worst.fields),\(cost),\(count),\(String(format: "%.2f", whole)),\(String(format: "%.2f", withoutValidation))")
}
