import Testing

@testable import RampartGraphQL

@Suite("GraphQL lexer")
struct LexerTests {
    func kinds(_ text: String) throws -> [Token.Kind] {
        try Lexer(Array(text.utf8)).tokenize(maxTokens: nil, maxNesting: 100, maxValueNesting: 100).tokens.map(\.kind)
    }

    @Test("punctuators, names, numbers and strings are tokens; whitespace, commas, comments and BOMs are not")
    func tokens() throws {
        #expect(try kinds("\u{FEFF}query Q($a: [Int!] = -1.5e3) { f(x: $a, y: \"s\", z: \"\"\"b\"\"\") @d ...on T { g } } # note")
            == [.name, .name, .parenOpen, .dollar, .name, .colon, .bracketOpen, .name, .bang, .bracketClose, .equals, .float, .parenClose,
                .braceOpen, .name, .parenOpen, .name, .colon, .dollar, .name, .name, .colon, .string, .name, .colon, .blockString, .parenClose,
                .at, .name, .spread, .name, .name, .braceOpen, .name, .braceClose, .braceClose])
        #expect(try kinds(",,, \t\r\n#only a comment") == [])
        #expect(try kinds("0 -0 12 3.0 4e5 6E-7") == [.int, .int, .int, .float, .float, .float])
        #expect(try kinds(#""a \" b" """x \""" y""""#) == [.string, .blockString])
        #expect(try kinds("union U = A | B & C") == [.name, .name, .equals, .name, .pipe, .name, .ampersand, .name])
    }

    @Test("lexical errors say what and where", arguments: [
        ("{ a ? }", "Unexpected character \"?\"", 4), ("{ a .. }", "did you mean \"...\"", 4), ("{ f(x: 01) }", "unexpected digit after 0", 8),
        ("{ f(x: 1.) }", "expected digit after", 9), ("{ f(x: 1e) }", "expected digit in exponent", 9), ("{ f(x: 12abc) }", "unexpected \"a\"", 9),
        ("{ f(x: \"abc", "Unterminated string", 11), ("{ f(x: \"a\nb\") }", "Unterminated string", 9), ("{ f(x: \"\\q\") }", "Invalid character escape", 9),
        ("{ f(x: \"\\u12G4\") }", "Invalid Unicode escape", 12), ("{ f(x: \"\"\"abc", "Unterminated string", 13),
    ])
    func errors(text: String, message: String, offset: Int) {
        #expect {
            _ = try Lexer(Array(text.utf8)).tokenize(maxTokens: nil, maxNesting: 100, maxValueNesting: 100)
        } throws: { error in
            guard case .syntax(let found, let at) = error as? LexicalFailure else { return false }
            return found.contains(message) && at == offset
        }
    }

    @Test("counting stops at the first token over the limit")
    func tokenLimit() throws {
        let lexer = Lexer(Array("{ a b c d }".utf8))
        #expect(try lexer.tokenize(maxTokens: 6, maxNesting: 10, maxValueNesting: 10).measure.tokens == 6)
        #expect(throws: LexicalFailure.tooManyTokens(limit: 5)) { try lexer.tokenize(maxTokens: 5, maxNesting: 10, maxValueNesting: 10) }
    }

    @Test("nesting counts every bracket; value nesting only lists and objects opened inside parentheses")
    func nesting() throws {
        let measure = try Lexer(Array("query($v: [[Int]]) { a { b(x: [{y: [1]}], z: {w: 2}) { c } } }".utf8))
            .tokenize(maxTokens: nil, maxNesting: 100, maxValueNesting: 100).measure
        #expect(measure.nesting == 6)  // { { ( [ { [
        #expect(measure.valueNesting == 3)
        #expect(throws: LexicalFailure.tooDeep(limit: 2, value: true)) {
            try Lexer(Array("{ a(x: [[[1]]]) }".utf8)).tokenize(maxTokens: nil, maxNesting: 100, maxValueNesting: 2)
        }
        #expect(throws: LexicalFailure.tooDeep(limit: 3, value: false)) {
            try Lexer(Array("{ a { b { c { d } } } }".utf8)).tokenize(maxTokens: nil, maxNesting: 3, maxValueNesting: 100)
        }
        // Brackets in strings and comments are not tokens.
        let quiet = try Lexer(Array("{ a(x: \"[[[{{{\") # ((((\n }".utf8)).tokenize(maxTokens: nil, maxNesting: 2, maxValueNesting: 0).measure
        #expect(quiet.nesting == 2 && quiet.valueNesting == 0)
    }
}

@Suite("GraphQL parser")
struct ParserTests {
    func parse(_ text: String) throws -> Document {
        let bytes = Array(text.utf8)
        let tokens = try Lexer(bytes).tokenize(maxTokens: nil, maxNesting: 128, maxValueNesting: 128).tokens
        var parser = Parser(bytes: bytes, tokens: tokens)
        return try parser.document()
    }

    @Test("operations, variables, fragments, aliases, arguments and directives are read as written")
    func document() throws {
        let document = try parse("""
        query Books($first: Int = 10, $tags: [String!]! @deprecated) @live {
          list: books(first: $first, where: {tag: $tags, sold: true, rating: 4.5, kind: PAPER, note: null}) {
            ...BookParts @include(if: true)
            ... on Novel { plot }
            ... @skip(if: false) { isbn }
          }
        }
        fragment BookParts on Book @cached { title }
        mutation { like(id: "b1") }
        """)
        #expect(document.operations.count == 2 && document.fragments.count == 1 && document.typeSystemDefinitions.isEmpty)
        let query = document.operations[0]
        #expect(query.kind == .query && query.name == "Books" && query.directives.map(\.name) == ["live"])
        #expect(query.variables.map(\.name) == ["first", "tags"])
        #expect(query.variables[0].defaultValue == .int("10") && query.variables[0].type == .named("Int"))
        #expect(query.variables[1].type == .nonNull(.list(.nonNull(.named("String")))) && query.variables[1].directives.count == 1)
        guard case .field(let books) = query.selections[0] else { Issue.record("not a field"); return }
        #expect(books.alias == "list" && books.name == "books" && books.responseKey == "list")
        #expect(books.arguments[0] == Argument(name: "first", value: .variable("first")))
        #expect(books.arguments[1].value == .object([
            .init(name: "tag", value: .variable("tags")), .init(name: "sold", value: .boolean(true)), .init(name: "rating", value: .float("4.5")),
            .init(name: "kind", value: .enumValue("PAPER")), .init(name: "note", value: .null),
        ]))
        #expect(books.selections?.count == 3)
        guard case .fragmentSpread(let spread) = books.selections?[0], case .inlineFragment(let novel) = books.selections?[1],
              case .inlineFragment(let bare) = books.selections?[2] else { Issue.record("selections"); return }
        #expect(spread.name == "BookParts" && spread.directives[0].name == "include")
        #expect(novel.typeCondition == "Novel" && bare.typeCondition == nil && bare.directives[0].name == "skip")
        #expect(document.fragments[0].typeCondition == "Book" && document.fragments[0].directives.map(\.name) == ["cached"])
        #expect(document.operations[1].kind == .mutation && document.operations[1].name == nil)
        #expect(try parse("{ a }").operations[0].kind == .query)
    }

    @Test("strings are decoded: escapes, Unicode (with surrogate pairs) and block strings")
    func strings() throws {
        func value(_ literal: String) throws -> Value? {
            guard case .field(let field) = try parse("{ f(x: \(literal)) }").operations[0].selections[0] else { return nil }
            return field.arguments[0].value
        }
        #expect(try value(#""a\"b\\c\/d\n\t""#) == .string("a\"b\\c/d\n\t"))
        #expect(try value(#""\u00e9\u{1F600}\uD83D\uDE00""#) == .string("é😀😀"))
        #expect(try value("\"\"\"\n    first\n      second\n    \\\"\"\" third\n  \"\"\"") == .string("first\n  second\n\"\"\" third"))
        #expect(try value("\"naïve ✓\"") == .string("naïve ✓"))
    }

    @Test("type system definitions are read past and counted, not executed")
    func typeSystem() throws {
        let document = try parse("""
        "described" type Book implements Node & Item { id: ID! tags(first: Int = 1): [String] }
        scalar Date
        union Result = Book | Film
        query { a }
        extend type Book { more: Int }
        """)
        #expect(document.typeSystemDefinitions == ["type", "scalar", "union", "extend"])
        #expect(document.operations.count == 1)
    }

    @Test("syntax errors name what was expected", arguments: [
        ("", "Unexpected <EOF>"), ("{ }", "Expected Name, found \"}\""), ("{ a", "Expected Name, found <EOF>"),
        ("query Q( { a }", "Expected \"$\""), ("fragment on on T { a }", "Unexpected Name \"on\""), ("fragment F T { a }", "Expected \"on\""),
        ("{ a(x: ) }", "Unexpected \")\""), ("subscriptions { a }", "Unexpected Name \"subscriptions\""), ("{ a } }", "Unexpected \"}\""),
        ("query { a(x: $v) } query Q($v: Int = $w) { b }", "Unexpected \"$\""),
    ])
    func syntaxErrors(text: String, message: String) {
        #expect {
            _ = try parse(text)
        } throws: { error in
            (error as? SyntaxError)?.message.contains(message) == true
        }
    }
}
