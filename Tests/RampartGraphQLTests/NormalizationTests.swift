import PropertyBased
import RampartCore
import Testing

@testable import RampartGraphQL

@Suite("GraphQL normalization")
struct NormalizationTests {
    /// The canonical text of `text`'s selected operation, through the guard as the gateway runs it.
    func normalized(_ text: String, operationName: String? = nil) throws -> String {
        let analysis = GraphQLGuard(limits: .off).analyze(document: text, operationName: operationName)
        let document = try #require(analysis.document, "\(analysis.rejection?.description ?? "")")
        return Normalizer(document: document).normalize(try #require(analysis.selected))
    }

    @Test("one canonical text", arguments: [
        ("{ a }", "query{a}"),
        ("query   Q { a , b }", "query Q{a b}"),
        // arguments and input-object fields sorted; string values printed by value
        (#"{ f(z: 1, a: {y: "x\u0041", b: [1, 2.5]}) }"#, #"query{f(a:{b:[1,2.5],y:"xA"},z:1)}"#),
        (#"{ f(s: """block "quoted" text""") }"#, #"query{f(s:"block \"quoted\" text")}"#),
        // `x: x` loses its alias; other aliases stay
        ("{ a: a b: c }", "query{a b:c}"),
        // spreads become inline fragments; inline fragments without type condition or directives splice
        ("{ ...F ... { b } } fragment F on T { a }", "query{...on T{a} b}"),
        // duplicates merge into the first position, their selections concatenated
        ("{ u { a } b u { c a } }", "query{u{a c} b}"),
        // adjacent inline fragments with the same condition merge; separated ones stay apart
        ("{ ... on A { x } ... on A { y } z ... on A { w } }", "query{...on A{x y} z ...on A{w}}"),
        // variables, defaults and directives keep their order; directive arguments are sorted
        ("query Q($b: Int = 2, $a: [String!]!) @o { f(x: $a) @d(z: 1, a: 2) g(y: $b) }", "query Q($b:Int=2,$a:[String!]!)@o{f(x:$a)@d(a:2,z:1) g(y:$b)}"),
        // a fragment whose definition carries directives stays a spread, and its definition stays
        ("{ ...F } fragment F on T @d { a }", "query{...F} fragment F on T@d{a}"),
        ("mutation { create(input: {name: \"n\"}) { id } }", "mutation{create(input:{name:\"n\"}){id}}"),
    ])
    func canonical(text: String, expected: String) throws {
        #expect(try normalized(text) == expected)
    }

    @Test("the same meaning gives the same text")
    func equivalent() throws {
        let variants = [
            "query Q { user(id: 1, active: true) { id name } }",
            "query Q {\n  user(active: true, id: 1) {\n    id\n    name\n  }\n}",
            "query Q { user(active: true, id: 1) { id: id ... { name } } }",
            "query Q { user(active: true, id: 1) { id } user(id: 1, active: true) { name } }",
            "query Q { ... { user(id: 1, active: true) { id } } user(active: true, id: 1) { name name } } # comment",
        ]
        let canonical = try normalized(variants[0])
        for variant in variants.dropFirst() {
            #expect(try normalized(variant) == canonical, "\(variant)")
        }
    }

    @Test("what differs in meaning stays apart", arguments: [
        ("{ a b }", "{ b a }"),
        ("{ f(x: 1) }", "{ f(x: 2) }"),
        ("{ f(x: 1) }", "{ f(x: 1.0) }"),
        ("{ a: f }", "{ b: f }"),
        ("{ f @skip(if: $s) }", "{ f }"),
        ("{ f @a @b }", "{ f @b @a }"),
        ("{ ... on A { x } }", "{ ... on B { x } }"),
        ("{ u { a } u(x: 1) { b } }", "{ u { a b } }"),
    ])
    func distinct(left: String, right: String) throws {
        func wrapped(_ text: String) -> String { text.contains("$s") ? "query Q($s: Boolean) " + text : text }
        #expect(try normalized(wrapped(left)) != normalized(wrapped(right)))
    }

    @Test("only the selected operation and the fragments it reaches remain")
    func selection() throws {
        let text = "query A { ...X } query B { ...Y } fragment X on T { x } fragment Y on T @keep { y }"
        #expect(try normalized(text, operationName: "A") == "query A{...on T{x}}")
        #expect(try normalized(text, operationName: "B") == "query B{...Y} fragment Y on T@keep{y}")
    }

    @Test("normalizing twice changes nothing, and the text means what the original did")
    func idempotent() async {
        // Picks drive a small builder: selection sets of up to three levels with aliases,
        // arguments, fragments and directives over three names, so duplicates are common.
        struct Builder {
            var picks: [Int]
            var index = 0
            mutating func next(_ range: Int) -> Int {
                defer { index += 1 }
                return index < picks.count ? picks[index] % range : 0
            }
            mutating func selections(_ depth: Int) -> String {
                var fields: [String] = []
                for _ in 0...next(4) {
                    let name = ["a", "b", "c"][next(3)]
                    switch next(6) {
                    case 0: fields.append(name)
                    case 1: fields.append("\(name): \(name)")
                    case 2: fields.append("z: \(name)(n: 1)")
                    case 3 where depth > 0: fields.append("u " + selections(depth - 1))
                    case 4 where depth > 0: fields.append("... on T " + selections(depth - 1))
                    case 5 where depth > 0: fields.append("... @include(if: true) " + selections(depth - 1))
                    default: fields.append("\(name) @skip(if: false)")
                    }
                }
                return "{ " + fields.joined(separator: " ") + " }"
            }
        }
        await propertyCheck(count: 500, input: Gen.int(in: 0...719).array(of: 1...80)) { picks in
            var builder = Builder(picks: picks)
            let text = builder.selections(3)
            let analysis = GraphQLGuard(limits: .off).analyze(document: text)
            guard let document = analysis.document, let operation = analysis.selected else { return }
            let once = Normalizer(document: document).normalize(operation)
            let again = GraphQLGuard(limits: .off).analyze(document: once)
            #expect(again.isAccepted, "\(once)")
            guard let document2 = again.document, let operation2 = again.selected else { return }
            #expect(Normalizer(document: document2).normalize(operation2) == once, "\(text)")
            // Merging never loses a path: the deepest one is as deep as before.
            #expect(again.worst?.depth == analysis.worst?.depth)
        }
    }
}
