import RampartCore
@testable import RampartFlags
import Testing

/// Evaluates `rule` against `data` (both JSON text) as flag `flag-a` at time 1700000000.
func evaluate(_ rule: String, _ data: String = "{}") throws -> JSONValue {
    let compiled = try Rule(compiling: try JSONValue(parsing: rule))
    return try compiled.evaluate(in: RuleEnvironment(context: try JSONValue(parsing: data), flagKey: "flag-a", timestamp: 1_700_000_000))
}

struct Case: CustomTestStringConvertible, Sendable {
    let rule: String
    let data: String
    let expected: String
    init(_ rule: String, _ data: String = "{}", _ expected: String) {
        self.rule = rule
        self.data = data
        self.expected = expected
    }
    var testDescription: String { "\(rule) on \(data) = \(expected)" }
}

@Suite struct OperatorTests {
    static let cases: [Case] = [
        // var: paths, array indices, defaults, the whole context, $flagd
        Case(#"{"var": "user.plan"}"#, #"{"user": {"plan": "pro"}}"#, #""pro""#),
        Case(#"{"var": "items.1"}"#, #"{"items": [10, 20]}"#, "20"),
        Case(#"{"var": "nope.deeper"}"#, #"{"nope": 3}"#, "null"),
        Case(#"{"var": ["missing", "fallback"]}"#, "{}", #""fallback""#),
        Case(#"{"var": ["present", "fallback"]}"#, #"{"present": null}"#, #""fallback""#),
        Case(#"{"var": ["present", "fallback"]}"#, #"{"present": 0}"#, "0"),
        Case(#"{"var": "$flagd.flagKey"}"#, #"{"$flagd": {"flagKey": "spoofed"}}"#, #""flag-a""#),
        Case(#"{"var": "$flagd.timestamp"}"#, "{}", "1700000000"),
        Case(#"{"var": ""}"#, #"{"a": 1}"#, #"{"$flagd": {"flagKey": "flag-a", "timestamp": 1700000000}, "a": 1}"#),
        Case(#"{"var": {"cat": ["us", "er"]}}"#, #"{"user": "u1"}"#, #""u1""#),
        // truthiness, !, !!
        Case(#"{"!": [[]]}"#, "{}", "true"),
        Case(#"{"!!": ["0"]}"#, "{}", "true"),
        Case(#"{"!!": [[0]]}"#, "{}", "true"),
        Case(#"{"!!": [0]}"#, "{}", "false"),
        Case(#"{"!!": [""]}"#, "{}", "false"),
        Case(#"{"!": {"var": "x"}}"#, "{}", "true"),
        // if: chains, odd and even counts
        Case(#"{"if": [false, 1, true, 2, 3]}"#, "{}", "2"),
        Case(#"{"if": [false, 1, false, 2, 3]}"#, "{}", "3"),
        Case(#"{"if": [false, 1]}"#, "{}", "null"),
        Case(#"{"?:": [true, "a", "b"]}"#, "{}", #""a""#),
        // and / or return the deciding operand
        Case(#"{"and": [1, "x", 0, "never"]}"#, "{}", "0"),
        Case(#"{"and": [1, "x"]}"#, "{}", #""x""#),
        Case(#"{"and": []}"#, "{}", "null"),
        Case(#"{"or": [null, false]}"#, "{}", "false"),
        Case(#"{"or": [0, "", "y"]}"#, "{}", #""y""#),
        // == coerces, === does not
        Case(#"{"==": ["2", 2]}"#, "{}", "true"),
        Case(#"{"==": [true, 1]}"#, "{}", "true"),
        Case(#"{"==": [null, 0]}"#, "{}", "false"),
        Case(#"{"==": [null, null]}"#, "{}", "true"),
        Case(#"{"==": ["a", "a"]}"#, "{}", "true"),
        Case(#"{"!=": ["1.0", 1]}"#, "{}", "false"),
        Case(#"{"===": [1, 1.0]}"#, "{}", "true"),
        Case(#"{"===": ["1", 1]}"#, "{}", "false"),
        Case(#"{"!==": [true, 1]}"#, "{}", "true"),
        Case(#"{"===": [[1, "a"], [1, "a"]]}"#, "{}", "true"),
        // no Unicode normalisation: composed and decomposed are different strings
        Case(#"{"==": ["Z\u00fcrich", "Zu\u0308rich"]}"#, "{}", "false"),
        Case(#"{"starts_with": ["Zu\u0308rich", "Zu"]}"#, "{}", "true"),
        // ordering: strings by code point, the rest numerically, "between"
        Case(#"{"<": ["a", "b"]}"#, "{}", "true"),
        Case(#"{"<": ["B", "a"]}"#, "{}", "true"),
        Case(#"{"<": ["10", 9]}"#, "{}", "false"),
        Case(#"{"<": [null, 1]}"#, "{}", "true"),
        Case(#"{"<": ["abc", 1]}"#, "{}", "false"),
        Case(#"{">=": ["abc", 1]}"#, "{}", "false"),
        Case(#"{">": [2, 1.5]}"#, "{}", "true"),
        Case(#"{"<=": [1, 1]}"#, "{}", "true"),
        Case(#"{"<": [0, {"var": "x"}, 10]}"#, #"{"x": 5}"#, "true"),
        Case(#"{"<": [0, {"var": "x"}, 10]}"#, #"{"x": 10}"#, "false"),
        Case(#"{"<=": [0, {"var": "x"}, 10]}"#, #"{"x": 10}"#, "true"),
        // in: substring or membership
        Case(#"{"in": ["pro", "professional"]}"#, "{}", "true"),
        Case(#"{"in": [1, "123"]}"#, "{}", "false"),
        Case(#"{"in": ["DE", ["FR", "DE"]]}"#, "{}", "true"),
        Case(#"{"in": [2, [1, 2.0]]}"#, "{}", "true"),
        Case(#"{"in": ["x", null]}"#, "{}", "false"),
        Case(#"{"in": ["", "abc"]}"#, "{}", "true"),
        // cat and substr
        Case(#"{"cat": ["a", 1, 1.5, null, true]}"#, "{}", #""a11.5true""#),
        Case(#"{"cat": " single "}"#, "{}", #"" single ""#),
        Case(#"{"substr": ["jsonlogic", 4]}"#, "{}", #""logic""#),
        Case(#"{"substr": ["jsonlogic", -5]}"#, "{}", #""logic""#),
        Case(#"{"substr": ["jsonlogic", 1, 3]}"#, "{}", #""son""#),
        Case(#"{"substr": ["jsonlogic", 4, -2]}"#, "{}", #""log""#),
        Case(#"{"substr": ["héllo", 1, 1]}"#, "{}", #""é""#),
        // arithmetic
        Case(#"{"+": [1, "2", 3.5]}"#, "{}", "6.5"),
        Case(#"{"+": "3"}"#, "{}", "3"),
        Case(#"{"-": [10, 4]}"#, "{}", "6"),
        Case(#"{"-": 2}"#, "{}", "-2"),
        Case(#"{"*": [2, 3, 4]}"#, "{}", "24"),
        Case(#"{"/": [7, 2]}"#, "{}", "3.5"),
        Case(#"{"%": [7, 3]}"#, "{}", "1"),
        Case(#"{"min": [3, 1, 2]}"#, "{}", "1"),
        Case(#"{"max": [3, 1, 2]}"#, "{}", "3"),
        Case(#"{"max": []}"#, "{}", "null"),
        // merge, missing, missing_some
        Case(#"{"merge": [[1, 2], 3, [[4]]]}"#, "{}", "[1,2,3,[4]]"),
        Case(#"{"missing": ["a", "b.c", "d"]}"#, #"{"a": 1, "b": {"c": ""}}"#, #"["b.c","d"]"#),
        Case(#"{"missing": {"merge": ["a", ["z"]]}}"#, #"{"a": 1}"#, #"["z"]"#),
        Case(#"{"missing_some": [1, ["a", "b"]]}"#, #"{"b": 2}"#, "[]"),
        Case(#"{"missing_some": [2, ["a", "b"]]}"#, #"{"b": 2}"#, #"["a"]"#),
        // array operators; var inside reads the item
        Case(#"{"map": [{"var": "xs"}, {"*": [{"var": ""}, 2]}]}"#, #"{"xs": [1, 2]}"#, "[2,4]"),
        Case(#"{"filter": [{"var": "xs"}, {">": [{"var": ""}, 1]}]}"#, #"{"xs": [1, 2, 3]}"#, "[2,3]"),
        Case(#"{"reduce": [{"var": "xs"}, {"+": [{"var": "current"}, {"var": "accumulator"}]}, 10]}"#, #"{"xs": [1, 2]}"#, "13"),
        Case(#"{"all": [[1, 2], {">": [{"var": ""}, 0]}]}"#, "{}", "true"),
        Case(#"{"all": [[], true]}"#, "{}", "false"),
        Case(#"{"some": [{"var": "items"}, {">": [{"var": "a"}, 3]}]}"#, #"{"items": [{"a": 1}, {"a": 5}]}"#, "true"),
        Case(#"{"none": [[1, 2], {">": [{"var": ""}, 5]}]}"#, "{}", "true"),
        Case(#"{"map": [null, 1]}"#, "{}", "[]"),
        // flagd's string operators: null (not false) on bad input
        Case(#"{"starts_with": [{"var": "email"}, "admin@"]}"#, #"{"email": "admin@x.org"}"#, "true"),
        Case(#"{"ends_with": [{"var": "email"}, "@x.org"]}"#, #"{"email": "admin@x.org"}"#, "true"),
        Case(#"{"ends_with": [{"var": "email"}, "@y.org"]}"#, #"{"email": "admin@x.org"}"#, "false"),
        Case(#"{"starts_with": [1, "1"]}"#, "{}", "null"),
        Case(#"{"starts_with": ["abc"]}"#, "{}", "null"),
        // literals: arrays of literals and objects with several keys are data
        Case(#"[1, {"var": "a"}]"#, #"{"a": 2}"#, "[1,2]"),
        Case(#"{"a": 1, "b": 2}"#, "{}", #"{"a":1,"b":2}"#),
    ]

    @Test(arguments: cases) func operatorsFollowFlagdsJsonLogic(_ c: Case) throws {
        let expected = try JSONValue(parsing: c.expected)
        let actual = try evaluate(c.rule, c.data)
        #expect(JsonLogic.strictlyEqual(actual, expected), "got \(actual.jsonText)")
    }

    @Test func catTrimsAMultiArgumentResultOnly() throws {
        #expect(try evaluate(#"{"cat": [" a", "b "]}"#) == .string("ab"))
        #expect(try evaluate(#"{"cat": [" a "]}"#) == .string(" a "))
    }

    @Test func unknownOperatorsFailToCompile() {
        #expect(throws: RuleError("unknown operator \"nope\"")) { try Rule(compiling: try JSONValue(parsing: #"{"nope": [1]}"#)) }
        #expect(throws: RuleError.self) { try Rule(compiling: try JSONValue(parsing: #"{"and": [{"$ref": "x"}]}"#)) }
        #expect(throws: RuleError.self) { try Rule(compiling: try JSONValue(parsing: #"{"var": true}"#)) }
    }

    @Test func numbersAreOneTypeButBooleansAreNot() throws {
        #expect(try evaluate(#"{"===": [{"var": "n"}, 3]}"#, #"{"n": 3.0}"#) == .bool(true))
        #expect(try evaluate(#"{"===": [{"var": "b"}, 1]}"#, #"{"b": true}"#) == .bool(false))
        #expect(try evaluate(#"{"in": [true, [1]]}"#) == .bool(false))
    }
}
