public import NIOCore

/// One value of the Redis serialization protocol, RESP2 and RESP3
/// (https://redis.io/docs/latest/develop/reference/protocol-spec/).
public indirect enum RESPValue: Sendable, Hashable {
    case simpleString(String)
    case error(String)
    case integer(Int64)
    /// A bulk string: binary-safe bytes.
    case bulkString([UInt8])
    case array([RESPValue])
    /// RESP2's null bulk string and null array, and RESP3's `_`.
    case null
    case boolean(Bool)
    case double(Double)
    /// Digits, with an optional sign.
    case bigNumber(String)
    /// A RESP3 bulk error (`!`): an error whose text may hold any bytes.
    case bulkError(String)
    /// A RESP3 verbatim string: a three-letter format (`txt`, `mkd`) and the text.
    case verbatim(format: String, text: String)
    case map([RESPPair])
    case set([RESPValue])
    /// A RESP3 out-of-band message (pub/sub, invalidation).
    case push([RESPValue])

    /// The text of a simple or bulk string, when the value is one and it is UTF-8.
    public var string: String? {
        switch self {
        case .simpleString(let text): text
        case .bulkString(let bytes): String(validating: bytes, as: UTF8.self)
        case .verbatim(_, let text): text
        default: nil
        }
    }

    public static func == (a: RESPValue, b: RESPValue) -> Bool {
        switch (a, b) {
        // NaN is one value on the wire.
        case (.double(let x), .double(let y)): x == y || (x.isNaN && y.isNaN)
        case (.simpleString(let x), .simpleString(let y)): x == y
        case (.error(let x), .error(let y)): x == y
        case (.integer(let x), .integer(let y)): x == y
        case (.bulkString(let x), .bulkString(let y)): x == y
        case (.array(let x), .array(let y)): x == y
        case (.null, .null): true
        case (.boolean(let x), .boolean(let y)): x == y
        case (.bigNumber(let x), .bigNumber(let y)): x == y
        case (.bulkError(let x), .bulkError(let y)): x == y
        case (.verbatim(let f, let t), .verbatim(let g, let u)): f == g && t == u
        case (.map(let x), .map(let y)): x == y
        case (.set(let x), .set(let y)): x == y
        case (.push(let x), .push(let y)): x == y
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .double(let x): hasher.combine(x.isNaN ? .nan : x)
        case .simpleString(let x), .error(let x), .bigNumber(let x), .bulkError(let x): hasher.combine(x)
        case .integer(let x): hasher.combine(x)
        case .bulkString(let x): hasher.combine(x)
        case .array(let x), .set(let x), .push(let x): hasher.combine(x)
        case .null: hasher.combine(0)
        case .boolean(let x): hasher.combine(x)
        case .verbatim(let f, let t): hasher.combine(f); hasher.combine(t)
        case .map(let x): hasher.combine(x)
        }
    }
}

/// A key and its value in a RESP3 map.
public struct RESPPair: Sendable, Hashable {
    public var key: RESPValue
    public var value: RESPValue
    public init(_ key: RESPValue, _ value: RESPValue) {
        self.key = key
        self.value = value
    }
}

/// What is wrong with bytes that claim to be RESP. The connection that sent them cannot be
/// trusted any further.
public struct RESPProtocolError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public var description: String { "RESP protocol error: \(message)" }
}

extension RESPValue {
    /// A command as clients send it: an array of bulk strings.
    public static func command(_ arguments: [String]) -> RESPValue { .array(arguments.map { .bulkString(Array($0.utf8)) }) }

    /// Writes the value in its wire form.
    public func write(into buffer: inout ByteBuffer) {
        switch self {
        case .simpleString(let text): line("+", text, into: &buffer)
        case .error(let text): line("-", text, into: &buffer)
        case .integer(let value): line(":", String(value), into: &buffer)
        case .bulkString(let bytes):
            line("$", String(bytes.count), into: &buffer)
            buffer.writeBytes(bytes)
            buffer.writeStaticString("\r\n")
        case .array(let values): aggregate("*", values, into: &buffer)
        case .null: buffer.writeStaticString("_\r\n")
        case .boolean(let value): buffer.writeStaticString(value ? "#t\r\n" : "#f\r\n")
        case .double(let value):
            let text = value.isNaN ? "nan" : value == .infinity ? "inf" : value == -.infinity ? "-inf" : "\(value)"
            line(",", text, into: &buffer)
        case .bigNumber(let digits): line("(", digits, into: &buffer)
        case .bulkError(let text):
            line("!", String(text.utf8.count), into: &buffer)
            buffer.writeString(text)
            buffer.writeStaticString("\r\n")
        case .verbatim(let format, let text):
            line("=", String(format.utf8.count + 1 + text.utf8.count), into: &buffer)
            buffer.writeString(format + ":" + text)
            buffer.writeStaticString("\r\n")
        case .map(let pairs):
            line("%", String(pairs.count), into: &buffer)
            for pair in pairs {
                pair.key.write(into: &buffer)
                pair.value.write(into: &buffer)
            }
        case .set(let values): aggregate("~", values, into: &buffer)
        case .push(let values): aggregate(">", values, into: &buffer)
        }
    }

    private func line(_ type: String, _ text: String, into buffer: inout ByteBuffer) {
        buffer.writeString(type)
        buffer.writeString(text)
        buffer.writeStaticString("\r\n")
    }

    private func aggregate(_ type: String, _ values: [RESPValue], into buffer: inout ByteBuffer) {
        line(type, String(values.count), into: &buffer)
        for value in values { value.write(into: &buffer) }
    }
}

/// Reads RESP values from bytes as they arrive: `next(from:)` answers nil, consuming
/// nothing, until a whole value is there. Nesting and sizes are bounded so that a hostile or
/// broken server cannot make the client recurse without end or allocate without limit.
public struct RESPDecoder: Sendable {
    public var maximumDepth: Int
    public var maximumBulkBytes: Int
    public var maximumElements: Int

    public init(maximumDepth: Int = 32, maximumBulkBytes: Int = 512 * 1024 * 1024, maximumElements: Int = 1 << 24) {
        self.maximumDepth = maximumDepth
        self.maximumBulkBytes = maximumBulkBytes
        self.maximumElements = maximumElements
    }

    /// The next whole value in `buffer` (consumed), or nil when more bytes are needed.
    public func next(from buffer: inout ByteBuffer) throws(RESPProtocolError) -> RESPValue? {
        var cursor = buffer.readerIndex
        guard let value = try parse(buffer, at: &cursor, depth: 0) else { return nil }
        buffer.moveReaderIndex(to: cursor)
        return value
    }

    private func parse(_ buffer: ByteBuffer, at cursor: inout Int, depth: Int) throws(RESPProtocolError) -> RESPValue? {
        guard depth <= maximumDepth else { throw RESPProtocolError(message: "nesting deeper than \(maximumDepth)") }
        guard let type = buffer.getInteger(at: cursor, as: UInt8.self) else { return nil }
        var at = cursor + 1
        guard let text = try line(buffer, at: &at) else { return nil }
        let value: RESPValue
        switch type {
        case UInt8(ascii: "+"): value = .simpleString(text)
        case UInt8(ascii: "-"): value = .error(text)
        case UInt8(ascii: ":"):
            guard let number = Int64(text) else { throw RESPProtocolError(message: "integer expected, got \"\(text.prefix(40))\"") }
            value = .integer(number)
        case UInt8(ascii: "$"), UInt8(ascii: "!"), UInt8(ascii: "="):
            let length = try count(text, type: type)
            if length < 0 {
                guard type == UInt8(ascii: "$") else { throw RESPProtocolError(message: "negative length for \(Character(Unicode.Scalar(type)))") }
                value = .null
                break
            }
            guard length <= maximumBulkBytes else { throw RESPProtocolError(message: "bulk of \(length) bytes is over the \(maximumBulkBytes) allowed") }
            guard buffer.writerIndex - at >= length + 2 else { return nil }
            let bytes = buffer.getBytes(at: at, length: length)!
            guard buffer.getInteger(at: at + length, as: UInt16.self) == 0x0D0A else { throw RESPProtocolError(message: "bulk not ended by CRLF") }
            at += length + 2
            switch type {
            case UInt8(ascii: "$"): value = .bulkString(bytes)
            case UInt8(ascii: "!"): value = .bulkError(String(decoding: bytes, as: UTF8.self))
            default:
                guard bytes.count >= 4, bytes[3] == UInt8(ascii: ":") else { throw RESPProtocolError(message: "verbatim string without a format") }
                value = .verbatim(format: String(decoding: bytes[..<3], as: UTF8.self), text: String(decoding: bytes[4...], as: UTF8.self))
            }
        case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"), UInt8(ascii: "%"), UInt8(ascii: "|"):
            let elements = try count(text, type: type)
            if elements < 0 {
                guard type == UInt8(ascii: "*") else { throw RESPProtocolError(message: "negative count for \(Character(Unicode.Scalar(type)))") }
                value = .null
                break
            }
            let isPairs = type == UInt8(ascii: "%") || type == UInt8(ascii: "|")
            guard elements <= maximumElements else { throw RESPProtocolError(message: "\(elements) elements is over the \(maximumElements) allowed") }
            var items: [RESPValue] = []
            items.reserveCapacity(min(elements * (isPairs ? 2 : 1), 1024))
            for _ in 0..<(elements * (isPairs ? 2 : 1)) {
                guard let item = try parse(buffer, at: &at, depth: depth + 1) else { return nil }
                items.append(item)
            }
            let pairs = isPairs ? stride(from: 0, to: items.count, by: 2).map { RESPPair(items[$0], items[$0 + 1]) } : []
            switch type {
            case UInt8(ascii: "*"): value = .array(items)
            case UInt8(ascii: "~"): value = .set(items)
            case UInt8(ascii: ">"): value = .push(items)
            case UInt8(ascii: "%"): value = .map(pairs)
            default:
                // Attributes describe the value that follows; that value is what is returned.
                guard let described = try parse(buffer, at: &at, depth: depth + 1) else { return nil }
                value = described
            }
        case UInt8(ascii: "_"):
            guard text.isEmpty else { throw RESPProtocolError(message: "null with content") }
            value = .null
        case UInt8(ascii: "#"):
            guard text == "t" || text == "f" else { throw RESPProtocolError(message: "boolean expected, got \"\(text.prefix(40))\"") }
            value = .boolean(text == "t")
        case UInt8(ascii: ","):
            switch text {
            case "inf", "+inf": value = .double(.infinity)
            case "-inf": value = .double(-.infinity)
            case "nan": value = .double(.nan)
            default:
                guard let number = Double(text) else { throw RESPProtocolError(message: "double expected, got \"\(text.prefix(40))\"") }
                value = .double(number)
            }
        case UInt8(ascii: "("):
            let digits = text.hasPrefix("-") || text.hasPrefix("+") ? text.dropFirst() : Substring(text)
            guard !digits.isEmpty, digits.allSatisfy(\.isASCIIDigit) else { throw RESPProtocolError(message: "big number expected, got \"\(text.prefix(40))\"") }
            value = .bigNumber(text)
        default:
            throw RESPProtocolError(message: "unknown type byte 0x\(String(type, radix: 16))")
        }
        cursor = at
        return value
    }

    /// The text up to CRLF at `at`, moving past it; nil when the CRLF has not arrived.
    private func line(_ buffer: ByteBuffer, at: inout Int) throws(RESPProtocolError) -> String? {
        let end = buffer.writerIndex
        var i = at
        while i + 1 < end {
            if buffer.getInteger(at: i, as: UInt8.self) == 0x0D {
                guard buffer.getInteger(at: i + 1, as: UInt8.self) == 0x0A else { throw RESPProtocolError(message: "CR without LF") }
                let text = buffer.getString(at: at, length: i - at) ?? ""
                at = i + 2
                return text
            }
            i += 1
            // A header line is short; a server sending megabytes without CRLF is broken.
            if i - at > 64 * 1024 { throw RESPProtocolError(message: "line longer than 64 KiB") }
        }
        return nil
    }

    private func count(_ text: String, type: UInt8) throws(RESPProtocolError) -> Int {
        guard let value = Int(text), value >= -1 else {
            throw RESPProtocolError(message: "length expected after \(Character(Unicode.Scalar(type))), got \"\(text.prefix(40))\"")
        }
        return value
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
