/// One SQL token. Words keep their text; everything else keeps its class and, for
/// operators, the operator.
struct SQLToken: Equatable {
    enum Kind: Equatable {
        case word, number, string, variable, op, lparen, rparen, comma, semicolon, dot, comment, other
    }

    let kind: Kind
    let text: String
    /// For strings: whether the closing quote was found.
    var closed = true

    static func == (a: SQLToken, b: SQLToken) -> Bool { a.kind == b.kind && a.text == b.text }
}

/// Splits text into SQL tokens the way a SQL lexer (MySQL, PostgreSQL, SQL Server, SQLite)
/// would: quoted strings and identifiers, numbers (hex and binary too), `@`variables,
/// multi-character operators, and comments (`--`, `#`, `/* */`; MySQL's executable
/// `/*! */` comments are read as code). Bounded by the input: each byte is looked at a
/// constant number of times.
enum SQLTokenizer {
    static let maximumTokens = 4096

    static func tokenize(_ bytes: ArraySlice<UInt8>) -> [SQLToken] {
        var tokens: [SQLToken] = []
        var i = bytes.startIndex
        let end = bytes.endIndex
        func text(_ from: Int, _ to: Int) -> String { String(decoding: bytes[from..<to], as: UTF8.self) }
        while i < end, tokens.count < maximumTokens {
            let b = bytes[i]
            if Bytes.isSpace(b) {
                i += 1
                continue
            }
            switch b {
            case UInt8(ascii: "/") where i + 1 < end && bytes[i + 1] == UInt8(ascii: "*"):
                if i + 2 < end, bytes[i + 2] == UInt8(ascii: "!") {
                    // Executable comment: its body is code; skip an optional version number.
                    i += 3
                    while i < end, Bytes.isDigit(bytes[i]) { i += 1 }
                    continue
                }
                var j = i + 2
                while j + 1 < end, !(bytes[j] == UInt8(ascii: "*") && bytes[j + 1] == UInt8(ascii: "/")) { j += 1 }
                tokens.append(SQLToken(kind: .comment, text: "/*"))
                i = min(j + 2, end)
            case UInt8(ascii: "*") where i + 1 < end && bytes[i + 1] == UInt8(ascii: "/"):
                i += 2  // the end of an executable comment
            case UInt8(ascii: "-") where i + 1 < end && bytes[i + 1] == UInt8(ascii: "-"), UInt8(ascii: "#"):
                tokens.append(SQLToken(kind: .comment, text: b == UInt8(ascii: "#") ? "#" : "--"))
                while i < end, bytes[i] != 0x0A { i += 1 }
            case UInt8(ascii: "'"), UInt8(ascii: "\""), UInt8(ascii: "`"):
                var j = i + 1
                var closed = false
                while j < end {
                    if bytes[j] == UInt8(ascii: "\\"), j + 1 < end {
                        j += 2
                        continue
                    }
                    if bytes[j] == b {
                        if j + 1 < end, bytes[j + 1] == b { j += 2; continue }
                        closed = true
                        break
                    }
                    j += 1
                }
                let body = text(i + 1, min(j, end))
                tokens.append(SQLToken(kind: b == UInt8(ascii: "`") ? .word : .string, text: body, closed: closed))
                i = min(j + 1, end)
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                var j = i + 1
                while j < end, Bytes.isWordByte(bytes[j]) || bytes[j] == UInt8(ascii: ".") { j += 1 }
                let body = text(i, j)
                // `1union` reads as the number 1 and the word union in MySQL.
                if let letter = body.firstIndex(where: { $0.isLetter && $0 != "x" && $0 != "b" && $0 != "e" }),
                   !body.hasPrefix("0x") {
                    tokens.append(SQLToken(kind: .number, text: String(body[..<letter])))
                    tokens.append(SQLToken(kind: .word, text: String(body[letter...])))
                } else {
                    tokens.append(SQLToken(kind: .number, text: body))
                }
                i = j
            case UInt8(ascii: "@"):
                var j = i + 1
                while j < end, bytes[j] == UInt8(ascii: "@") { j += 1 }
                let nameStart = j
                while j < end, Bytes.isWordByte(bytes[j]) || bytes[j] == UInt8(ascii: "$") { j += 1 }
                if j > nameStart {
                    tokens.append(SQLToken(kind: .variable, text: text(i, j)))
                } else if j < end, bytes[j] == UInt8(ascii: ">") {
                    tokens.append(SQLToken(kind: .op, text: "@>"))
                    j += 1
                } else {
                    tokens.append(SQLToken(kind: .other, text: "@"))
                }
                i = j
            case UInt8(ascii: "("): tokens.append(SQLToken(kind: .lparen, text: "(")); i += 1
            case UInt8(ascii: ")"): tokens.append(SQLToken(kind: .rparen, text: ")")); i += 1
            case UInt8(ascii: ","): tokens.append(SQLToken(kind: .comma, text: ",")); i += 1
            case UInt8(ascii: ";"): tokens.append(SQLToken(kind: .semicolon, text: ";")); i += 1
            case UInt8(ascii: "."): tokens.append(SQLToken(kind: .dot, text: ".")); i += 1
            case UInt8(ascii: "="), UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "!"), UInt8(ascii: "|"), UInt8(ascii: "&"),
                 UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "*"), UInt8(ascii: "/"), UInt8(ascii: "%"), UInt8(ascii: "^"),
                 UInt8(ascii: "~"), UInt8(ascii: ":"):
                var j = i + 1
                while j < end, j - i < 3, operatorBytes.contains(bytes[j]), !(bytes[j] == UInt8(ascii: "-") && j + 1 < end && bytes[j + 1] == UInt8(ascii: "-")) { j += 1 }
                var op = text(i, j)
                while op.count > 1, !operators.contains(op) { op.removeLast() }
                tokens.append(SQLToken(kind: .op, text: op))
                i += op.utf8.count
            default:
                if Bytes.isWordByte(b) || b == UInt8(ascii: "$") {
                    var j = i + 1
                    while j < end, Bytes.isWordByte(bytes[j]) || bytes[j] == UInt8(ascii: "$") { j += 1 }
                    tokens.append(SQLToken(kind: .word, text: text(i, j)))
                    i = j
                } else {
                    tokens.append(SQLToken(kind: .other, text: text(i, i + 1)))
                    i += 1
                }
            }
        }
        return tokens
    }

    private static let operatorBytes: Set<UInt8> = Set("=<>!|&+-*/%^~:".utf8)
    private static let operators: Set<String> = [
        "<=>", "<>", "!=", "<=", ">=", "||", "&&", "::", "<<", ">>", ":=", "!<", "!>", "<@", "->", "->>",
    ]
}

/// SQL injection, found by reading the input as SQL (in the spirit of libinjection): the
/// value is tokenized as it stands and as it would continue after breaking out of a quoted
/// string, and the token streams are checked for the shapes injections take — a union
/// select, a stacked statement, a boolean or tautology after a logical operator, a comment
/// cutting a query short, time-delay and error-based functions, system catalogues, and SQL
/// statements. English that merely uses SQL words ("select the best union plan") has none of
/// those shapes. Also NoSQL operator injection (`$ne`, `$where`) in names.
public struct SQLInjectionDetector: ThreatDetector {
    public let kind = ThreatKind.sqlInjection
    public let inspectsPlainText = true

    public init() {}

    public func inspect(_ value: InspectedValue, into findings: inout [Finding]) {
        let bytes = value.normalized
        if value.present.contains(UInt8(ascii: "$")), value.location.isName || value.location.part == .json || value.present.contains(UInt8(ascii: "[")) {
            if let operatorName = Self.nosqlOperator(bytes, bracketedOnly: !(value.location.isName || value.location.part == .json)) {
                report("sqli.nosql-operator.\(operatorName)", .critical, value, into: &findings)
                return
            }
        }
        // A value that is nothing but a database's system object (`information_schema`,
        // `xp_cmdshell`, `pg_catalog`); as a name, the `*_name` columns are everyday words.
        if bytes.count <= 24, !value.present.contains(0x20), Self.standaloneSystemObjects.contains(bytes),
           !(value.location.isName && bytes.reversed().starts(with: "eman_".utf8)) {
            report("sqli.system-object", .critical, value, into: &findings)
            return
        }
        guard bytes.contains(where: { !Bytes.isWordByte($0) && $0 != 0x20 && $0 != UInt8(ascii: ".") && $0 != UInt8(ascii: "-") }) || bytes.count > 12 else { return }
        guard Self.maySQL(bytes) else { return }
        if let rule = Self.analyse(bytes) {
            report("sqli.\(rule)", .critical, value, into: &findings)
        }
    }

    private static let optimizerHint = Array("/*+".utf8)

    /// Whether `bytes` has anything an injection shape is made of: a quote, SQL punctuation
    /// or operator, a comment, `1.e`, or a SQL word. "What is the capital of Norway?" has
    /// none and is not tokenized.
    static func maySQL(_ bytes: [UInt8]) -> Bool {
        var previous: UInt8 = 0x20
        for (i, b) in bytes.enumerated() {
            switch b {
            case UInt8(ascii: "'"), UInt8(ascii: "\""), UInt8(ascii: "`"), UInt8(ascii: ";"), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "="),
                 UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "|"), UInt8(ascii: "&"), UInt8(ascii: "#"), UInt8(ascii: "@"):
                return true
            case UInt8(ascii: "-") where previous == UInt8(ascii: "-"), UInt8(ascii: "*") where previous == UInt8(ascii: "/"),
                 UInt8(ascii: ":") where previous == UInt8(ascii: ":"):
                return true
            case UInt8(ascii: "e") where previous == UInt8(ascii: ".") && i >= 2 && Bytes.isDigit(bytes[i - 2]):
                return true
            default:
                break
            }
            previous = b
        }
        return sqlWords.containsWord(in: bytes) || sqlPrefixes.firstMatch(in: bytes) != nil
    }

    /// Every word `check` reacts to without punctuation beside it.
    static let sqlWords = KeywordMatcher(Array(Set([
        "union", "except", "intersect", "minus", "as", "when", "procedure", "from", "select", "insert", "replace", "delete", "drop", "create", "alter",
        "truncate", "update", "exec", "execute", "declare", "waitfor", "into", "load", "case", "having", "where", "or", "and", "xor", "div", "not",
        "mysql", "sys", "master", "pg_catalog",
    ]).union(systemObjects)))
    /// Procedure prefixes, matched anywhere.
    static let sqlPrefixes = KeywordMatcher(["xp_", "sp_"])

    /// The first injection shape found, as a rule name; nil for text that is not SQL.
    static func analyse(_ bytes: [UInt8]) -> String? {
        // `/*+ ... */`: an optimizer hint, which only a database reads.
        if Bytes.find(optimizerHint, in: bytes) != nil { return "optimizer-hint" }
        let asIs = SQLTokenizer.tokenize(bytes[...])
        if let rule = check(asIs, brokeOut: false) { return rule }
        for quote in [UInt8(ascii: "'"), UInt8(ascii: "\""), UInt8(ascii: "`")] {
            guard let at = bytes.firstIndex(of: quote) else { continue }
            let after = SQLTokenizer.tokenize(bytes[(at + 1)...])
            if let rule = check(after, brokeOut: true) { return rule }
        }
        return nil
    }

    static func check(_ all: [SQLToken], brokeOut: Bool) -> String? {
        let hasComment = all.contains { $0.kind == .comment }
        let tokens = hasComment ? all.filter { $0.kind != .comment } : all
        func word(_ i: Int) -> String? { i < tokens.count && tokens[i].kind == .word ? tokens[i].text : nil }
        func isCall(_ i: Int) -> Bool { i + 1 < tokens.count && tokens[i].kind == .word && tokens[i + 1].kind == .lparen }

        if brokeOut {
            // What follows the closing quote.
            var k = 0
            while k < tokens.count, tokens[k].kind == .rparen { k += 1 }
            if k == tokens.count, hasComment, all.first(where: { $0.kind != .rparen })?.kind == .comment { return "quote-comment" }
            if k < tokens.count {
                let t = tokens[k]
                if t.kind == .semicolon, k + 1 == tokens.count || word(k + 1) != nil { return "quote-terminate" }
                if t.kind == .op, comparison.contains(t.text) || concatenation.contains(t.text), k + 1 < tokens.count,
                   operand(tokens[k + 1]) { return "quote-expression" }
                if let w = word(k), logical.contains(w), k + 1 < tokens.count,
                   operand(tokens[k + 1]) || tokens[k + 1].kind == .lparen || (word(k + 1).map(logical.contains) ?? false) {
                    return "quote-boolean"
                }
                if t.kind == .op, t.text == "||" || t.text == "&&", k + 1 < tokens.count, tokens[k + 1].kind == .lparen { return "quote-boolean" }
                if let w = word(k), ["order", "group"].contains(w), word(k + 1) == "by" { return "quote-order-by" }
                if let w = word(k), quoteStatements.contains(w) { return "quote-statement" }
                if let w = word(k), ["having", "limit", "procedure", "into", "waitfor", "rlike", "regexp", "like", "sounds", "div", "is", "in", "between", "collate", "escape", "not"].contains(w),
                   k + 1 < tokens.count { return "quote-clause" }
            }
        }

        for i in tokens.indices {
            let t = tokens[i]
            if t.kind == .word {
                switch wordRoles[t.text] {
                case .setOperation?:
                    var j = i + 1
                    while j < tokens.count, tokens[j].kind == .lparen || word(j) == "all" || word(j) == "distinct" { j += 1 }
                    if word(j) == "select" || word(j) == "values" { return "union-select" }
                case .alias?:
                    // `1234 as "x" from`, `) as total from`: a select list's last column.
                    if i > 0, [.number, .string, .rparen].contains(tokens[i - 1].kind), i + 2 < tokens.count, operand(tokens[i + 1]), word(i + 2) == "from" { return "select-list" }
                case .when?:
                    if i + 2 < tokens.count, tokens[i + 1].kind == .number || tokens[i + 1].kind == .string, word(i + 2) == "then" { return "case-when" }
                case .procedure?:
                    if word(i + 1) == "analyse" { return "procedure-analyse" }
                case .from?:
                    // `from t group by x`, `from t order by x`.
                    var j = i + 2
                    while j + 1 < tokens.count, tokens[j].kind == .dot { j += 2 }
                    if word(i + 1) != nil, let clause = word(j), clause == "group" || clause == "order", word(j + 1) == "by" { return "from-clause" }
                case .select?:
                    if selectsSomething(tokens, from: i + 1) { return "select-statement" }
                case .insert?:
                    if word(i + 1) == "into" { return "insert-statement" }
                case .delete?:
                    if word(i + 1) == "from" { return "delete-statement" }
                case .ddl?:
                    // `drop users;--`: a statement cut short by a comment.
                    if t.text == "drop" || t.text == "truncate", hasComment, word(i + 1) != nil, i + 2 >= tokens.count || tokens[i + 2].kind == .semicolon { return "ddl-statement" }
                    // `drop table users`, ending there or in SQL punctuation, not in prose.
                    if let next = word(i + 1), schemaObjects.contains(next), i + 2 < tokens.count, tokens[i + 2].kind == .word || tokens[i + 2].kind == .variable {
                        var j = i + 3
                        while j + 1 < tokens.count, tokens[j].kind == .dot { j += 2 }
                        if word(i + 2) == "if" || j >= tokens.count || [.semicolon, .comma, .lparen, .rparen].contains(tokens[j].kind) || word(j).map({ ["add", "drop", "modify", "change", "set", "with", "cascade", "as", "to", "owner", "rename", "column", "engine", "from", "values"].contains($0) }) == true {
                            return "ddl-statement"
                        }
                    }
                case .update?:
                    if word(i + 2) == "set", word(i + 1) != nil { return "update-statement" }
                case .exec?:
                    if let next = word(i + 1), next.hasPrefix("xp_") || next.hasPrefix("sp_") || next == "master" || next == "immediate" { return "exec-procedure" }
                    if i + 1 < tokens.count, tokens[i + 1].kind == .lparen || tokens[i + 1].kind == .variable { return "exec-procedure" }
                case .declare?:
                    if i + 1 < tokens.count, tokens[i + 1].kind == .variable { return "declare-variable" }
                case .waitfor?:
                    if word(i + 1) == "delay" || word(i + 1) == "time" { return "time-delay" }
                case .into?:
                    if word(i + 1) == "outfile" || word(i + 1) == "dumpfile" { return "into-outfile" }
                case .load?:
                    if (word(i + 1) == "data" || word(i + 1) == "xml") && (word(i + 2) == "infile" || word(i + 2) == "local") { return "load-data" }
                case .caseWord?:
                    if word(i + 1) == "when" { return "case-when" }
                case .clause?:
                    if i > 0 || t.text == "having", comparisonExpression(tokens, at: i + 1) { return "\(t.text)-clause" }
                case .logical?:
                    if booleanInjection(tokens, at: i, brokeOut: brokeOut, hasComment: hasComment) { return "boolean-expression" }
                    if i > 0, brokeOut || i == 1, isCall(i + 1), sqlFunctions.contains(tokens[i + 1].text), !ambiguousFunctions.contains(tokens[i + 1].text) { return "boolean-function" }
                case .systemObject?:
                    return "system-catalogue"
                case .catalogue?:
                    if i + 2 < tokens.count, tokens[i + 1].kind == .dot, let table = word(i + 2), systemTables.contains(table) {
                        return "system-catalogue"
                    }
                case nil:
                    if t.text.hasPrefix("xp_") || t.text.hasPrefix("sp_"), isCall(i) || word(i - 1) == "exec" { return "exec-procedure" }
                    if isCall(i) {
                        if timeFunctions.contains(t.text) { return "time-function" }
                        if errorFunctions.contains(t.text) { return "error-function" }
                    }
                }
            } else if t.kind == .number, t.text.hasSuffix("e"), i + 1 < tokens.count, tokens[i + 1].kind == .lparen || tokens[i + 1].kind == .dot {
                // `1.e(ascii)`, `1.e.tables`: MySQL reads a number in scientific notation
                // with no exponent and goes on parsing what follows.
                return "scientific-notation"
            } else if t.kind == .op, t.text == "::", i > 0, tokens[i - 1].kind == .string || tokens[i - 1].kind == .rparen || tokens[i - 1].kind == .word, let type = word(i + 1), ["json", "jsonb", "text", "int", "integer", "varchar", "regclass", "oid", "bytea", "xml", "numeric"].contains(type) {
                return "type-cast"
            } else if t.kind == .semicolon, let next = word(i + 1), statements.contains(next), i + 2 < tokens.count || hasComment || brokeOut || i == 0 {
                return "stacked-query"
            } else if t.kind == .op, t.text == "||" || t.text == "&&", booleanInjection(tokens, at: i, brokeOut: brokeOut, hasComment: hasComment) {
                return "boolean-expression"
            } else if t.kind == .variable, t.text.hasPrefix("@@"), i > 0 || tokens.count > 1 {
                return "system-variable"
            }
        }
        // A value that is nothing but SQL: function calls among SQL tokens, no prose.
        let calls = tokens.indices.filter { isCall($0) && sqlFunctions.contains(tokens[$0].text) }
        if tokens.count == 2, calls.count == 1 { return "function-call" }
        if !calls.isEmpty {
            let prose = tokens.indices.filter { i in
                tokens[i].kind == .word && !isCall(i) && !keywords.contains(tokens[i].text)
            }.count
            if brokeOut || prose * 3 <= tokens.count - calls.count * 2 && tokens.count >= 3 && !calls.allSatisfy({ ambiguousFunctions.contains(tokens[$0].text) }) {
                return "function-call"
            }
        }
        return nil
    }

    /// What `check` does with a word, found with one lookup rather than a comparison per case.
    enum WordRole {
        case setOperation, alias, when, procedure, from, select, insert, delete, ddl, update, exec, declare, waitfor, into, load, caseWord, clause, logical
        /// A system table or procedure (`information_schema`, `xp_cmdshell`).
        case systemObject
        /// A schema whose tables are system tables (`mysql.user`).
        case catalogue
    }

    static let wordRoles: [String: WordRole] = {
        var roles: [String: WordRole] = [:]
        for word in ["mysql", "sys", "master", "pg_catalog"] { roles[word] = .catalogue }
        for word in systemObjects { roles[word] = .systemObject }
        let explicit: [WordRole: [String]] = [
            .setOperation: ["union", "except", "intersect", "minus"], .alias: ["as"], .when: ["when"], .procedure: ["procedure"], .from: ["from"],
            .select: ["select"], .insert: ["insert", "replace"], .delete: ["delete"], .ddl: ["drop", "create", "alter", "truncate"], .update: ["update"],
            .exec: ["exec", "execute"], .declare: ["declare"], .waitfor: ["waitfor"], .into: ["into"], .load: ["load"], .caseWord: ["case"],
            .clause: ["having", "where"], .logical: ["or", "and", "xor", "div", "not"],
        ]
        for (role, words) in explicit { for word in words { roles[word] = role } }
        return roles
    }()

    /// A logical operator at `i` joining an injected condition: after a broken-out quote any
    /// comparison will do; in a value as it stands (a numeric parameter: `1 or 1=1`) the
    /// operator must follow the value's first literal, or the comparison must be a tautology
    /// (`x=x`) or be cut short by a comment. "2 < 3 and 3 > 2" and "true or false" are prose.
    static func booleanInjection(_ tokens: [SQLToken], at i: Int, brokeOut: Bool, hasComment: Bool) -> Bool {
        if brokeOut { return comparisonExpression(tokens, at: i + 1) }
        var first = 0
        while first < i, tokens[first].kind == .lparen { first += 1 }
        var afterLiteral = first + 1
        while afterLiteral < i, tokens[afterLiteral].kind == .rparen { afterLiteral += 1 }
        let leadsWithLiteral = i > first && afterLiteral == i && (tokens[first].kind == .number || tokens[first].kind == .string)
        if i == 0 || leadsWithLiteral || hasComment {
            return comparisonExpression(tokens, at: i + 1) && (strictComparison(tokens, at: i + 1) || hasComment)
        }
        return tautology(tokens, at: i + 1)
    }

    /// A comparison with an operator (not a bare literal).
    static func strictComparison(_ tokens: [SQLToken], at start: Int) -> Bool {
        tokens[start...].prefix(6).contains { ($0.kind == .op && comparison.contains($0.text)) || ($0.kind == .word && comparisonWords.contains($0.text) && $0.text != "not") }
    }

    /// `1=1`, `'a'='a'`, `x=x`, `2>1`: a condition that is always true.
    static func tautology(_ tokens: [SQLToken], at start: Int) -> Bool {
        var i = start
        while i < tokens.count, tokens[i].kind == .lparen { i += 1 }
        guard i + 2 < tokens.count, operand(tokens[i]), tokens[i + 1].kind == .op, ["=", "<=>", "like", ">=", "<="].contains(tokens[i + 1].text) || tokens[i + 1].text == "=",
              operand(tokens[i + 2]) else { return false }
        return tokens[i].text == tokens[i + 2].text && tokens[i].kind == tokens[i + 2].kind
    }

    static func operand(_ t: SQLToken) -> Bool {
        t.kind == .number || t.kind == .string || t.kind == .variable || t.kind == .word
    }

    /// `a = b`, `x like 'y'`, `1 between 0 and 2`, `f(x) > 0` starting at `i`, with at least one
    /// side a literal or a function, or both sides the same.
    static func comparisonExpression(_ tokens: [SQLToken], at start: Int) -> Bool {
        var i = start
        while i < tokens.count, tokens[i].kind == .lparen || (tokens[i].kind == .word && tokens[i].text == "not") { i += 1 }
        guard i < tokens.count, operand(tokens[i]) || tokens[i].kind == .op else { return false }
        if tokens[i].kind == .op, tokens[i].text != "!" && tokens[i].text != "-" && tokens[i].text != "~" { return false }
        if tokens[i].kind == .op { i += 1 }
        guard i < tokens.count, operand(tokens[i]) else { return false }
        let left = tokens[i]
        var j = i + 1
        if left.kind == .word, j < tokens.count, tokens[j].kind == .lparen {
            // A function call on the left: skip to its closing parenthesis.
            var depth = 0
            while j < tokens.count {
                if tokens[j].kind == .lparen { depth += 1 }
                if tokens[j].kind == .rparen { depth -= 1; if depth == 0 { j += 1; break } }
                j += 1
            }
            return j < tokens.count && (tokens[j].kind == .op && comparison.contains(tokens[j].text) || (tokens[j].kind == .word && comparisonWords.contains(tokens[j].text)))
        }
        guard j < tokens.count else {
            return left.kind == .number || left.kind == .string || left.text == "true" || left.text == "false" || left.text == "null"
        }
        let op = tokens[j]
        guard (op.kind == .op && comparison.contains(op.text)) || (op.kind == .word && comparisonWords.contains(op.text)) else {
            // `or 1`, `and true` closing a clause.
            return (left.kind == .number || left.text == "true" || left.text == "false" || left.text == "null")
                && (op.kind == .rparen || op.kind == .semicolon || (op.kind == .word && ["limit", "order", "group", "union", "having", "into"].contains(op.text)))
        }
        j += 1
        if op.text == "is", j < tokens.count, tokens[j].kind == .word, tokens[j].text == "not" { j += 1 }
        if op.text == "not", j < tokens.count, tokens[j].kind == .word, ["like", "in", "between", "regexp", "rlike"].contains(tokens[j].text) { j += 1 }
        while j < tokens.count, tokens[j].kind == .lparen { j += 1 }
        guard j < tokens.count else { return left.kind != .word }
        let right = tokens[j]
        if right.kind == .op, right.text == "-" || right.text == "!" || right.text == "~" { return true }
        guard operand(right) || right.kind == .lparen else { return false }
        let literal: (SQLToken) -> Bool = { $0.kind == .number || $0.kind == .string || $0.kind == .variable }
        if literal(left) || literal(right) { return true }
        if left.text == right.text { return true }
        if right.kind == .word, j + 1 < tokens.count, tokens[j + 1].kind == .lparen { return true }
        return ["null", "true", "false"].contains(right.text) || ["null", "true", "false"].contains(left.text)
    }

    /// `select` followed by what a query selects: `*`, a literal, a call, a column list, a
    /// subquery, ending in `from` or the end of the value.
    static func selectsSomething(_ tokens: [SQLToken], from start: Int) -> Bool {
        guard start < tokens.count else { return false }
        let first = tokens[start]
        if first.kind == .op && first.text == "*" { return true }
        if first.kind == .number || first.kind == .string || first.kind == .variable || first.kind == .lparen { return true }
        if first.kind == .word {
            if ["distinct", "top", "case", "null", "count", "concat", "char", "version", "user", "database", "if", "sleep", "benchmark"].contains(first.text)
                || timeFunctions.contains(first.text) || errorFunctions.contains(first.text) { return true }
            if start + 1 < tokens.count {
                let next = tokens[start + 1]
                if next.kind == .lparen || next.kind == .comma || next.kind == .dot { return true }
                if next.kind == .word, next.text == "from" { return true }
            }
        }
        return false
    }

    static func nosqlOperator(_ bytes: [UInt8], bracketedOnly: Bool = false) -> String? {
        guard let dollar = bytes.firstIndex(of: UInt8(ascii: "$")) else { return nil }
        var j = dollar + 1
        while j < bytes.count, Bytes.isLetter(bytes[j]) { j += 1 }
        let name = String(decoding: bytes[(dollar + 1)..<j], as: UTF8.self)
        guard nosqlOperators.contains(name) else { return nil }
        // The whole name (`$ne`) or a bracketed one (`user[$ne]`).
        let bracketed = dollar > 0 && bytes[dollar - 1] == UInt8(ascii: "[") && j < bytes.count && bytes[j] == UInt8(ascii: "]")
        if bracketedOnly { return bracketed ? name : nil }
        let before = dollar == 0 || bytes[dollar - 1] == UInt8(ascii: "[")
        let after = j == bytes.count || bytes[j] == UInt8(ascii: "]")
        return before && after ? name : nil
    }

    static let nosqlOperators: Set<String> = [
        "ne", "eq", "gt", "gte", "lt", "lte", "in", "nin", "regex", "where", "exists", "or", "and", "nor", "not", "expr", "elemmatch", "function", "accumulator", "lookup", "type", "mod", "all", "size", "text",
    ]
    static let comparison: Set<String> = ["=", "<>", "!=", "<", ">", "<=", ">=", "<=>", "!<", "!>", "@>", "<@", "::", ":=", "->", "->>"]
    static let concatenation: Set<String> = ["||", "+", "&&", "|", "&", "^", "-", "*", "/", "%", "<<", ">>", "~"]
    static let comparisonWords: Set<String> = ["like", "rlike", "regexp", "is", "in", "between", "sounds", "not", "glob", "match", "similar", "ilike", "div", "mod"]
    static let logical: Set<String> = ["or", "and", "xor", "not", "div", "mod", "like", "rlike", "regexp"]
    static let statements: Set<String> = [
        "select", "insert", "update", "delete", "drop", "create", "alter", "truncate", "exec", "execute", "declare", "shutdown",
        "waitfor", "set", "grant", "revoke", "use", "begin", "load", "rename", "call", "handler", "replace", "merge", "if", "copy", "pragma", "attach", "kill", "dbcc", "backup", "restore", "open", "fetch", "print", "lock", "show", "describe", "desc",
    ]
    /// Statements that follow a closing quote in injections; not the ones that are also
    /// everyday words after an apostrophe ("it's set", "what's open").
    static let quoteStatements: Set<String> = statements.subtracting(["if", "set", "open", "print", "show", "use", "call"]).union(["union"])
    static let schemaObjects: Set<String> = [
        "table", "database", "schema", "view", "procedure", "function", "user", "index", "trigger", "login", "role", "column", "temporary", "event", "sequence",
    ]
    static let keywords: Set<String> = statements.union(logical).union(comparisonWords).union([
        "from", "where", "having", "group", "order", "by", "limit", "offset", "union", "all", "distinct", "as", "on", "join", "into", "values",
        "null", "true", "false", "case", "when", "then", "else", "end", "asc", "top", "with", "table", "exists", "any", "some", "char", "varchar", "int", "nvarchar", "collate", "binary", "escape", "procedure",
    ])
    static let timeFunctions: Set<String> = [
        "sleep", "benchmark", "pg_sleep", "pg_sleep_for", "randomblob", "dbms_lock", "dbms_pipe", "get_lock", "release_lock", "pg_sleep_until",
    ]
    static let errorFunctions: Set<String> = [
        "extractvalue", "updatexml", "load_file", "utl_inaddr", "utl_http", "ctxsys", "dbms_xmlgen", "xmltype", "geometrycollection",
        "multipoint", "polygon", "multipolygon", "linestring", "multilinestring", "name_const", "json_keys", "gtid_subset", "uuid_to_bin",
        "pg_read_file", "pg_ls_dir", "lo_import", "lo_export", "lo_get", "lo_put", "lo_from_bytea", "xp_cmdshell", "sys_eval", "sys_exec", "dbms_java", "openrowset", "opendatasource", "openquery",
    ]
    /// Function names that are also everyday mathematics or programming; alone they say nothing.
    static let ambiguousFunctions: Set<String> = [
        "sin", "cos", "tan", "log", "ln", "exp", "abs", "sqrt", "min", "max", "avg", "sum", "count", "floor", "ceil", "round", "pow", "power", "if",
        "left", "right", "mod", "rand", "random", "len", "length", "date", "time", "now", "year", "month", "day", "format", "replace", "trim", "lower", "upper", "sign", "pi",
    ]
    static let sqlFunctions: Set<String> = timeFunctions.union(errorFunctions).union(ambiguousFunctions).union([
        "ascii", "char", "chr", "nchar", "concat", "concat_ws", "group_concat", "string_agg", "listagg", "substring", "substr", "mid", "hex", "unhex",
        "bin", "oct", "ord", "conv", "version", "database", "schema", "user", "current_user", "system_user", "session_user", "user_name", "db_name",
        "is_srvrolemember", "cast", "convert", "coalesce", "ifnull", "isnull", "nullif", "iif", "elt", "field", "find_in_set", "instr", "locate", "position",
        "lpad", "rpad", "reverse", "repeat", "space", "strcmp", "md5", "sha1", "sha2", "compress", "uncompress", "encode", "decode", "aes_encrypt", "aes_decrypt",
        "des_encrypt", "des_decrypt", "from_base64", "to_base64", "make_set", "export_set", "row_count", "found_rows", "last_insert_id", "connection_id",
        "unicode", "quotename", "stuff", "charindex", "patindex", "soundex", "difference", "datalength", "object_id", "object_name", "col_name",
        "has_dbaccess", "host_name", "suser_sname", "current_database", "current_schema", "pg_backend_pid", "inet_server_addr", "json_extract",
        "json_object", "xmlelement", "xmlagg", "regexp_substr", "regexp_replace", "regexp_like", "bit_length", "char_length", "character_length",
        "octet_length", "crc32", "uuid", "sysdate", "current_timestamp", "localtime", "utc_time", "weight_string", "collation", "charset", "coercibility",
        "master_pos_wait", "procedure_analyse", "row", "exists", "sqlite_version", "typeof", "zeroblob", "glob", "printf", "quote", "substring_index",
        "asin", "acos", "atan", "atan2", "cot", "degrees", "radians", "truncate", "decode", "nvl", "nvl2", "rawtohex", "to_char", "to_number", "bitand",
        "sys_context", "banner", "dump", "vsize", "xmlquery", "xmlserialize",
    ])
    static let systemObjects: Set<String> = [
        "information_schema", "sysobjects", "syscolumns", "sysusers", "sysdatabases", "sysprocesses", "syslogins", "sysfiles", "sysxlogins",
        "pg_shadow", "pg_user", "pg_database", "pg_tables", "pg_namespace", "pg_class", "pg_attribute", "pg_roles", "pg_authid", "sqlite_master",
        "sqlite_schema", "sqlite_temp_master", "msysaccessobjects", "msysobjects", "msysqueries", "msysrelationships", "all_tables", "user_tables",
        "all_tab_columns", "user_tab_columns", "dba_users", "all_users", "user_objects", "v$version", "xp_cmdshell", "xp_regread", "xp_dirtree",
        "schema_name", "table_name", "column_name", "table_schema", "northwind", "msdb", "tempdb", "mysql.user",
        "sp_executesql", "sp_password", "sp_oacreate", "sp_makewebtask", "sp_addlogin", "sp_configure", "sys_context", "utl_http",
    ]
    /// System objects that only name themselves when they stand alone.
    /// What a value may be on its own to be a finding: a system object or one of these.
    static let standaloneSystemObjects = WordSet(systemObjects.union(bareSystemNames))
    static let bareSystemNames: Set<String> = ["pg_catalog", "mysql.db", "mysql.user", "openrowset", "opendatasource", "utl_http", "utl_inaddr", "dbms_java"]
    static let systemTables: Set<String> = [
        "user", "db", "tables_priv", "columns_priv", "proc", "host", "objects", "tables", "columns", "databases", "sysdatabases", "sql_logins", "syslogins", "pg_user", "pg_shadow",
    ]
}
