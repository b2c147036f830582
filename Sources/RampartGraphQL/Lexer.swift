/// One lexical token of a GraphQL document: its kind and where its bytes are. Ignored tokens
/// (whitespace, line terminators, commas, comments, a BOM) are never produced.
public struct Token: Sendable, Equatable {
    public enum Kind: UInt8, Sendable {
        case bang, dollar, ampersand, parenOpen, parenClose, spread, colon, equals, at
        case bracketOpen, bracketClose, braceOpen, pipe, braceClose
        case name, int, float, string, blockString
    }

    public var kind: Kind
    /// Byte offsets into the document: `start..<end`.
    public var start: Int
    public var end: Int
}

/// What the lexing pass found besides the tokens: the deepest bracket nesting, and the deepest
/// nesting of list and object brackets opened inside arguments or variable definitions.
public struct LexicalMeasure: Sendable, Equatable {
    public var tokens = 0
    public var nesting = 0
    public var valueNesting = 0
}

/// Why the lexing pass stopped.
public enum LexicalFailure: Error, Sendable, Equatable {
    /// More than the allowed tokens; counting stopped there.
    case tooManyTokens(limit: Int)
    /// Brackets nested deeper than allowed (`value` for list and object values).
    case tooDeep(limit: Int, value: Bool)
    /// Not GraphQL: the message and the byte offset.
    case syntax(String, offset: Int)
}

/// GraphQL's lexical grammar (October 2021 edition) over UTF-8 bytes, in one pass that also
/// counts tokens and bracket nesting, so a hostile document is refused before it is parsed
/// and costs no more than the limits allow.
public struct Lexer {
    let bytes: [UInt8]

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Every token, or the first limit crossed or lexical error met.
    /// - Parameters:
    ///   - maxTokens: nil for no limit.
    ///   - maxNesting: `{ [ (` open at once.
    ///   - maxValueNesting: `[ {` open at once that were opened inside `(`.
    public func tokenize(maxTokens: Int?, maxNesting: Int, maxValueNesting: Int) throws(LexicalFailure) -> (tokens: [Token], measure: LexicalMeasure) {
        var tokens: [Token] = []
        tokens.reserveCapacity(min(bytes.count / 3 + 4, (maxTokens ?? Int.max / 2) + 1))
        var measure = LexicalMeasure()
        // One entry per open bracket: whether it counts as value nesting.
        var open: [Bool] = []
        var parens = 0
        var valueDepth = 0
        var index = 0
        let count = bytes.count
        if count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { index = 3 }

        func add(_ kind: Token.Kind, _ start: Int, _ end: Int) throws(LexicalFailure) {
            if let maxTokens, tokens.count >= maxTokens { throw .tooManyTokens(limit: maxTokens) }
            tokens.append(Token(kind: kind, start: start, end: end))
        }
        func opening(_ kind: Token.Kind, at start: Int) throws(LexicalFailure) {
            try add(kind, start, start + 1)
            let isValue = kind != .parenOpen && parens > 0
            open.append(isValue)
            if kind == .parenOpen { parens += 1 }
            if open.count > maxNesting { throw .tooDeep(limit: maxNesting, value: false) }
            measure.nesting = max(measure.nesting, open.count)
            if isValue {
                valueDepth += 1
                if valueDepth > maxValueNesting { throw .tooDeep(limit: maxValueNesting, value: true) }
                measure.valueNesting = max(measure.valueNesting, valueDepth)
            }
        }
        func closing(_ kind: Token.Kind, at start: Int) throws(LexicalFailure) {
            try add(kind, start, start + 1)
            // A closer with nothing open, or the wrong one, is the parser's to report.
            if let isValue = open.popLast(), isValue { valueDepth -= 1 }
            if kind == .parenClose, parens > 0 { parens -= 1 }
        }

        while index < count {
            let byte = bytes[index]
            switch byte {
            case 0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: ","):
                index += 1
            case UInt8(ascii: "#"):
                while index < count, bytes[index] != 0x0A, bytes[index] != 0x0D { index += 1 }
            case 0xEF where index + 2 < count && bytes[index + 1] == 0xBB && bytes[index + 2] == 0xBF:
                index += 3  // a BOM is ignored anywhere
            case UInt8(ascii: "!"): try add(.bang, index, index + 1); index += 1
            case UInt8(ascii: "$"): try add(.dollar, index, index + 1); index += 1
            case UInt8(ascii: "&"): try add(.ampersand, index, index + 1); index += 1
            case UInt8(ascii: ":"): try add(.colon, index, index + 1); index += 1
            case UInt8(ascii: "="): try add(.equals, index, index + 1); index += 1
            case UInt8(ascii: "@"): try add(.at, index, index + 1); index += 1
            case UInt8(ascii: "|"): try add(.pipe, index, index + 1); index += 1
            case UInt8(ascii: "("): try opening(.parenOpen, at: index); index += 1
            case UInt8(ascii: "["): try opening(.bracketOpen, at: index); index += 1
            case UInt8(ascii: "{"): try opening(.braceOpen, at: index); index += 1
            case UInt8(ascii: ")"): try closing(.parenClose, at: index); index += 1
            case UInt8(ascii: "]"): try closing(.bracketClose, at: index); index += 1
            case UInt8(ascii: "}"): try closing(.braceClose, at: index); index += 1
            case UInt8(ascii: "."):
                guard index + 2 < count, bytes[index + 1] == UInt8(ascii: "."), bytes[index + 2] == UInt8(ascii: ".") else {
                    throw .syntax("Unexpected \".\", did you mean \"...\"?", offset: index)
                }
                try add(.spread, index, index + 3)
                index += 3
            case UInt8(ascii: "_"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"):
                let start = index
                index += 1
                while index < count, Self.isNameContinue(bytes[index]) { index += 1 }
                try add(.name, start, index)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                let start = index
                let kind = try number(&index)
                try add(kind, start, index)
            case UInt8(ascii: "\""):
                let start = index
                if index + 2 < count, bytes[index + 1] == UInt8(ascii: "\""), bytes[index + 2] == UInt8(ascii: "\"") {
                    try blockString(&index)
                    try add(.blockString, start, index)
                } else {
                    try string(&index)
                    try add(.string, start, index)
                }
            default:
                throw .syntax("Unexpected character \(Self.describe(byte)).", offset: index)
            }
        }
        measure.tokens = tokens.count
        return (tokens, measure)
    }

    static func isNameContinue(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "_"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: false
        }
    }

    static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    static func describe(_ byte: UInt8) -> String {
        byte >= 0x20 && byte < 0x7F ? "\"\(Character(Unicode.Scalar(byte)))\"" : "0x" + String(byte, radix: 16, uppercase: true)
    }

    /// IntValue or FloatValue; a number may not be followed by a name start, a digit or `.`.
    private func number(_ index: inout Int) throws(LexicalFailure) -> Token.Kind {
        let count = bytes.count
        var isFloat = false
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < count, Self.isDigit(bytes[index]) else { throw .syntax("Invalid number, expected digit.", offset: index) }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
            if index < count, Self.isDigit(bytes[index]) { throw .syntax("Invalid number, unexpected digit after 0.", offset: index) }
        } else {
            while index < count, Self.isDigit(bytes[index]) { index += 1 }
        }
        if index < count, bytes[index] == UInt8(ascii: ".") {
            isFloat = true
            index += 1
            guard index < count, Self.isDigit(bytes[index]) else { throw .syntax("Invalid number, expected digit after \".\".", offset: index) }
            while index < count, Self.isDigit(bytes[index]) { index += 1 }
        }
        if index < count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            isFloat = true
            index += 1
            if index < count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < count, Self.isDigit(bytes[index]) else { throw .syntax("Invalid number, expected digit in exponent.", offset: index) }
            while index < count, Self.isDigit(bytes[index]) { index += 1 }
        }
        if index < count, bytes[index] == UInt8(ascii: ".") || Self.isNameContinue(bytes[index]) {
            throw .syntax("Invalid number, unexpected \(Self.describe(bytes[index])).", offset: index)
        }
        return isFloat ? .float : .int
    }

    /// A `"..."` string: no line terminators, valid escapes.
    private func string(_ index: inout Int) throws(LexicalFailure) {
        let count = bytes.count
        index += 1
        while index < count {
            switch bytes[index] {
            case UInt8(ascii: "\""):
                index += 1
                return
            case 0x0A, 0x0D:
                throw .syntax("Unterminated string.", offset: index)
            case UInt8(ascii: "\\"):
                index += 1
                guard index < count else { break }
                switch bytes[index] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    index += 1
                case UInt8(ascii: "u"):
                    index += 1
                    if index < count, bytes[index] == UInt8(ascii: "{") {
                        let start = index
                        index += 1
                        var digits = 0
                        while index < count, Self.hexValue(bytes[index]) != nil, digits < 8 { index += 1; digits += 1 }
                        guard digits > 0, index < count, bytes[index] == UInt8(ascii: "}") else {
                            throw .syntax("Invalid Unicode escape sequence.", offset: start)
                        }
                        index += 1
                    } else {
                        for _ in 0..<4 {
                            guard index < count, Self.hexValue(bytes[index]) != nil else {
                                throw .syntax("Invalid Unicode escape sequence.", offset: index)
                            }
                            index += 1
                        }
                    }
                default:
                    throw .syntax("Invalid character escape sequence.", offset: index)
                }
            case let byte where byte < 0x20 && byte != 0x09:
                throw .syntax("Invalid character within String: \(Self.describe(byte)).", offset: index)
            default:
                index += 1
            }
        }
        throw .syntax("Unterminated string.", offset: index)
    }

    /// A `"""..."""` block string; `\"""` does not end it.
    private func blockString(_ index: inout Int) throws(LexicalFailure) {
        let count = bytes.count
        index += 3
        while index < count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\""), index + 2 < count, bytes[index + 1] == UInt8(ascii: "\""), bytes[index + 2] == UInt8(ascii: "\"") {
                index += 3
                return
            }
            if byte == UInt8(ascii: "\\"), index + 3 < count, bytes[index + 1] == UInt8(ascii: "\""),
               bytes[index + 2] == UInt8(ascii: "\""), bytes[index + 3] == UInt8(ascii: "\"") {
                index += 4
                continue
            }
            if byte < 0x20, byte != 0x09, byte != 0x0A, byte != 0x0D {
                throw .syntax("Invalid character within String: \(Self.describe(byte)).", offset: index)
            }
            index += 1
        }
        throw .syntax("Unterminated string.", offset: index)
    }

    static func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(byte - UInt8(ascii: "A") + 10)
        default: nil
        }
    }
}
