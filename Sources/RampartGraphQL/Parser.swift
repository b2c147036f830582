/// Why a document is not GraphQL: the message and the byte offset where it was noticed.
public struct SyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var offset: Int

    public var description: String { "Syntax Error: \(message)" }
}

/// A recursive-descent parser over the lexer's tokens. Its recursion follows bracket nesting,
/// which the lexing pass has already bounded (`maxNesting`), so no document can exhaust the
/// stack.
public struct Parser {
    let bytes: [UInt8]
    let tokens: [Token]
    var position = 0

    static let typeSystemKeywords: Set<String> = ["schema", "scalar", "type", "interface", "union", "enum", "input", "directive", "extend"]

    public init(bytes: [UInt8], tokens: [Token]) {
        self.bytes = bytes
        self.tokens = tokens
    }

    public mutating func document() throws(SyntaxError) -> Document {
        var document = Document()
        guard !tokens.isEmpty else { throw SyntaxError(message: "Unexpected <EOF>.", offset: 0) }
        while position < tokens.count {
            let token = tokens[position]
            switch token.kind {
            case .braceOpen:
                document.operations.append(Operation(kind: .query, name: nil, variables: [], directives: [], selections: try selectionSet()))
            case .name:
                let keyword = text(token)
                if let kind = OperationKind(rawValue: keyword) {
                    document.operations.append(try operation(kind))
                } else if keyword == "fragment" {
                    document.fragments.append(try fragment())
                } else if Self.typeSystemKeywords.contains(keyword) {
                    document.typeSystemDefinitions.append(try skipTypeSystemDefinition())
                } else {
                    throw unexpected(token)
                }
            case .string, .blockString:
                // A description: only type system definitions carry one.
                position += 1
                guard position < tokens.count, tokens[position].kind == .name, Self.typeSystemKeywords.contains(text(tokens[position])) else {
                    throw unexpected(position < tokens.count ? tokens[position] : nil)
                }
            default:
                throw unexpected(token)
            }
        }
        return document
    }

    // MARK: - Definitions

    private mutating func operation(_ kind: OperationKind) throws(SyntaxError) -> Operation {
        position += 1
        var name: String?
        if peek(.name) { name = try self.name() }
        var variables: [VariableDefinition] = []
        if peek(.parenOpen) {
            position += 1
            repeat { variables.append(try variableDefinition()) } while !peek(.parenClose)
            position += 1
        }
        let directives = try self.directives(const: false)
        return Operation(kind: kind, name: name, variables: variables, directives: directives, selections: try selectionSet())
    }

    private mutating func variableDefinition() throws(SyntaxError) -> VariableDefinition {
        try expect(.dollar)
        let name = try self.name()
        try expect(.colon)
        let type = try typeReference()
        var defaultValue: Value?
        if peek(.equals) {
            position += 1
            defaultValue = try value(const: true)
        }
        return VariableDefinition(name: name, type: type, defaultValue: defaultValue, directives: try directives(const: true))
    }

    mutating func typeReference() throws(SyntaxError) -> TypeReference {
        var type: TypeReference
        if peek(.bracketOpen) {
            position += 1
            type = .list(try typeReference())
            try expect(.bracketClose)
        } else {
            type = .named(try name())
        }
        if peek(.bang) {
            position += 1
            type = .nonNull(type)
        }
        return type
    }

    private mutating func fragment() throws(SyntaxError) -> Fragment {
        position += 1
        let name = try self.name()
        if name == "on" { throw SyntaxError(message: "Unexpected Name \"on\".", offset: tokens[position - 1].start) }
        try expectKeyword("on")
        let typeCondition = try self.name()
        let directives = try self.directives(const: false)
        return Fragment(name: name, typeCondition: typeCondition, directives: directives, selections: try selectionSet())
    }

    /// Steps over a type system definition (its header, and its body in braces if it has
    /// one); returns its keyword.
    private mutating func skipTypeSystemDefinition() throws(SyntaxError) -> String {
        let keyword = text(tokens[position])
        position += 1
        var depth = 0
        while position < tokens.count {
            let token = tokens[position]
            switch token.kind {
            case .braceOpen:
                depth += 1
            case .parenOpen, .bracketOpen:
                depth += 1
            case .braceClose, .parenClose, .bracketClose:
                depth -= 1
                if depth < 0 { throw unexpected(token) }
                if depth == 0, token.kind == .braceClose {
                    // The body closed: the definition ends here.
                    position += 1
                    return keyword
                }
            case .name where depth == 0:
                let word = text(token)
                let isKeyword = word == "fragment" || OperationKind(rawValue: word) != nil || Self.typeSystemKeywords.contains(word)
                if isKeyword, isDefinitionStart(position) { return keyword }
            case .string where depth == 0, .blockString where depth == 0:
                return keyword
            default:
                break
            }
            position += 1
        }
        if depth != 0 { throw unexpected(nil) }
        return keyword
    }

    /// Whether a keyword at `index` begins a new definition rather than naming something in the
    /// one before (`union U = A | type` is not worth telling apart: it is refused either way).
    private func isDefinitionStart(_ index: Int) -> Bool {
        let previous = tokens[index - 1]
        guard previous.kind == .name else { return previous.kind == .braceClose || previous.kind == .parenClose }
        let word = text(previous)
        return !Self.typeSystemKeywords.contains(word) && word != "on" && word != "implements"
    }

    // MARK: - Selections

    private mutating func selectionSet() throws(SyntaxError) -> [Selection] {
        try expect(.braceOpen)
        var selections: [Selection] = []
        repeat { selections.append(try selection()) } while !peek(.braceClose)
        position += 1
        return selections
    }

    private mutating func selection() throws(SyntaxError) -> Selection {
        if peek(.spread) {
            position += 1
            if peek(.name), text(tokens[position]) != "on" {
                let name = try self.name()
                return .fragmentSpread(FragmentSpread(name: name, directives: try directives(const: false)))
            }
            var typeCondition: String?
            if peek(.name) {
                position += 1
                typeCondition = try name()
            }
            let directives = try self.directives(const: false)
            return .inlineFragment(InlineFragment(typeCondition: typeCondition, directives: directives, selections: try selectionSet()))
        }
        var name = try self.name()
        var alias: String?
        if peek(.colon) {
            position += 1
            alias = name
            name = try self.name()
        }
        let arguments = try self.arguments(const: false)
        let directives = try self.directives(const: false)
        let selections = peek(.braceOpen) ? try selectionSet() : nil
        return .field(Field(alias: alias, name: name, arguments: arguments, directives: directives, selections: selections))
    }

    mutating func arguments(const: Bool) throws(SyntaxError) -> [Argument] {
        guard peek(.parenOpen) else { return [] }
        position += 1
        var arguments: [Argument] = []
        repeat {
            let name = try self.name()
            try expect(.colon)
            arguments.append(Argument(name: name, value: try value(const: const)))
        } while !peek(.parenClose)
        position += 1
        return arguments
    }

    mutating func directives(const: Bool) throws(SyntaxError) -> [Directive] {
        var directives: [Directive] = []
        while peek(.at) {
            position += 1
            let name = try self.name()
            directives.append(Directive(name: name, arguments: try arguments(const: const)))
        }
        return directives
    }

    // MARK: - Values

    mutating func value(const: Bool) throws(SyntaxError) -> Value {
        guard position < tokens.count else { throw unexpected(nil) }
        let token = tokens[position]
        switch token.kind {
        case .dollar where !const:
            position += 1
            return .variable(try name())
        case .int:
            position += 1
            return .int(text(token))
        case .float:
            position += 1
            return .float(text(token))
        case .string:
            position += 1
            return .string(StringValue.decode(bytes[(token.start + 1)..<(token.end - 1)]))
        case .blockString:
            position += 1
            return .string(StringValue.blockValue(bytes[(token.start + 3)..<(token.end - 3)]))
        case .name:
            position += 1
            switch text(token) {
            case "true": return .boolean(true)
            case "false": return .boolean(false)
            case "null": return .null
            case let name: return .enumValue(name)
            }
        case .bracketOpen:
            position += 1
            var items: [Value] = []
            while !peek(.bracketClose) { items.append(try value(const: const)) }
            position += 1
            return .list(items)
        case .braceOpen:
            position += 1
            var fields: [Value.ObjectField] = []
            while !peek(.braceClose) {
                let name = try self.name()
                try expect(.colon)
                fields.append(Value.ObjectField(name: name, value: try value(const: const)))
            }
            position += 1
            return .object(fields)
        default:
            throw unexpected(token)
        }
    }

    // MARK: - Tokens

    func text(_ token: Token) -> String { String(decoding: bytes[token.start..<token.end], as: UTF8.self) }

    func peek(_ kind: Token.Kind) -> Bool { position < tokens.count && tokens[position].kind == kind }

    mutating func expect(_ kind: Token.Kind) throws(SyntaxError) {
        guard peek(kind) else { throw expected(kind) }
        position += 1
    }

    mutating func expectKeyword(_ word: String) throws(SyntaxError) {
        guard peek(.name), text(tokens[position]) == word else {
            throw SyntaxError(message: "Expected \"\(word)\", found \(found()).", offset: offset())
        }
        position += 1
    }

    mutating func name() throws(SyntaxError) -> String {
        guard peek(.name) else { throw expected(.name) }
        position += 1
        return text(tokens[position - 1])
    }

    func expected(_ kind: Token.Kind) -> SyntaxError {
        SyntaxError(message: "Expected \(Self.describe(kind)), found \(found()).", offset: offset())
    }

    func unexpected(_ token: Token?) -> SyntaxError {
        SyntaxError(message: "Unexpected \(found()).", offset: token?.start ?? offset())
    }

    private func offset() -> Int { position < tokens.count ? tokens[position].start : bytes.count }

    private func found() -> String {
        guard position < tokens.count else { return "<EOF>" }
        let token = tokens[position]
        switch token.kind {
        case .name: return "Name \"\(text(token))\""
        case .int: return "Int \"\(text(token))\""
        case .float: return "Float \"\(text(token))\""
        case .string, .blockString: return "String"
        default: return "\"\(text(token))\""
        }
    }

    static func describe(_ kind: Token.Kind) -> String {
        switch kind {
        case .bang: "\"!\""
        case .dollar: "\"$\""
        case .ampersand: "\"&\""
        case .parenOpen: "\"(\""
        case .parenClose: "\")\""
        case .spread: "\"...\""
        case .colon: "\":\""
        case .equals: "\"=\""
        case .at: "\"@\""
        case .bracketOpen: "\"[\""
        case .bracketClose: "\"]\""
        case .braceOpen: "\"{\""
        case .pipe: "\"|\""
        case .braceClose: "\"}\""
        case .name: "Name"
        case .int: "Int"
        case .float: "Float"
        case .string, .blockString: "String"
        }
    }
}

/// String values: escapes resolved, block strings dedented as the spec's BlockStringValue.
enum StringValue {
    static func decode(_ raw: ArraySlice<UInt8>) -> String {
        guard raw.contains(UInt8(ascii: "\\")) else { return String(decoding: raw, as: UTF8.self) }
        var scalars = String.UnicodeScalarView()
        var bytes: [UInt8] = []
        func flush() {
            if !bytes.isEmpty {
                scalars.append(contentsOf: String(decoding: bytes, as: UTF8.self).unicodeScalars)
                bytes.removeAll(keepingCapacity: true)
            }
        }
        var index = raw.startIndex
        var pendingHigh: UInt32?
        while index < raw.endIndex {
            let byte = raw[index]
            guard byte == UInt8(ascii: "\\"), index + 1 < raw.endIndex else {
                bytes.append(byte)
                index += 1
                continue
            }
            flush()
            let escape = raw[index + 1]
            index += 2
            var code: UInt32?
            switch escape {
            case UInt8(ascii: "n"): code = 0x0A
            case UInt8(ascii: "r"): code = 0x0D
            case UInt8(ascii: "t"): code = 0x09
            case UInt8(ascii: "b"): code = 0x08
            case UInt8(ascii: "f"): code = 0x0C
            case UInt8(ascii: "u"):
                var value: UInt32 = 0
                if index < raw.endIndex, raw[index] == UInt8(ascii: "{") {
                    index += 1
                    while index < raw.endIndex, let digit = Lexer.hexValue(raw[index]) { value = value &* 16 &+ digit; index += 1 }
                    index += 1  // "}"
                } else {
                    for _ in 0..<4 where index < raw.endIndex {
                        value = value * 16 + (Lexer.hexValue(raw[index]) ?? 0)
                        index += 1
                    }
                }
                code = value
            default: code = UInt32(escape)
            }
            guard var value = code else { continue }
            // A surrogate pair written as two \u escapes is one scalar.
            if (0xD800...0xDBFF).contains(value) {
                pendingHigh = value
                continue
            }
            if (0xDC00...0xDFFF).contains(value), let high = pendingHigh {
                value = 0x10000 + ((high - 0xD800) << 10) + (value - 0xDC00)
            }
            pendingHigh = nil
            scalars.append(Unicode.Scalar(value) ?? "\u{FFFD}")
        }
        flush()
        return String(scalars)
    }

    /// The spec's BlockStringValue: common indentation removed, blank first and last lines
    /// dropped, `\"""` unescaped.
    static func blockValue(_ raw: ArraySlice<UInt8>) -> String {
        let text = String(decoding: raw, as: UTF8.self).replacingEscapedQuotes()
        var lines = text.splitLines()
        var common: Int?
        for line in lines.dropFirst() {
            let indent = line.prefix { $0 == " " || $0 == "\t" }.count
            if indent < line.count, common.map({ indent < $0 }) ?? true { common = indent }
        }
        if let common {
            for i in lines.indices.dropFirst() { lines[i] = String(lines[i].dropFirst(common)) }
        }
        while let first = lines.first, first.allSatisfy({ $0 == " " || $0 == "\t" }) { lines.removeFirst() }
        while let last = lines.last, last.allSatisfy({ $0 == " " || $0 == "\t" }) { lines.removeLast() }
        return lines.joined(separator: "\n")
    }
}

extension String {
    fileprivate func replacingEscapedQuotes() -> String {
        guard contains("\\\"\"\"") else { return self }
        var out = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: "\\\"\"\"") {
            out += rest[..<range.lowerBound]
            out += "\"\"\""
            rest = rest[range.upperBound...]
        }
        return out + rest
    }

    /// Split at \r\n, \n and \r.
    fileprivate func splitLines() -> [String] {
        var lines: [String] = []
        var current = ""
        var iterator = unicodeScalars.makeIterator()
        var pending = iterator.next()
        while let scalar = pending {
            pending = iterator.next()
            if scalar == "\r" {
                lines.append(current)
                current = ""
                if pending == "\n" { pending = iterator.next() }
            } else if scalar == "\n" {
                lines.append(current)
                current = ""
            } else {
                current.unicodeScalars.append(scalar)
            }
        }
        lines.append(current)
        return lines
    }
}
