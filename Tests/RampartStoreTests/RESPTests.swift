import NIOCore
import PropertyBased
import RampartStore
import Testing

/// The RESP2/RESP3 codec: fixed vectors from the protocol's own examples, every value type
/// round-tripped through the wire form cut at every byte, and refusal of malformed input.
@Suite struct RESPTests {
    func decode(_ text: String) throws -> RESPValue? {
        var buffer = ByteBuffer(string: text)
        return try RESPDecoder().next(from: &buffer)
    }

    @Test func decodesEachType() throws {
        #expect(try decode("+OK\r\n") == .simpleString("OK"))
        #expect(try decode("-ERR unknown command\r\n") == .error("ERR unknown command"))
        #expect(try decode(":-42\r\n") == .integer(-42))
        #expect(try decode("$5\r\nhe\r\no\r\n") == .bulkString(Array("he\r\no".utf8)))
        #expect(try decode("$0\r\n\r\n") == .bulkString([]))
        #expect(try decode("$-1\r\n") == .null)
        #expect(try decode("*-1\r\n") == .null)
        #expect(try decode("*2\r\n:1\r\n$1\r\nx\r\n") == .array([.integer(1), .bulkString([UInt8(ascii: "x")])]))
        #expect(try decode("_\r\n") == .null)
        #expect(try decode("#t\r\n") == .boolean(true))
        #expect(try decode(",1.5\r\n") == .double(1.5))
        #expect(try decode(",-inf\r\n") == .double(-.infinity))
        #expect(try decode(",nan\r\n") == .double(.nan))
        #expect(try decode("(-3492890328409238509324850943850943825024385\r\n") == .bigNumber("-3492890328409238509324850943850943825024385"))
        #expect(try decode("!21\r\nSYNTAX invalid syntax\r\n") == .bulkError("SYNTAX invalid syntax"))
        #expect(try decode("=15\r\ntxt:Some string\r\n") == .verbatim(format: "txt", text: "Some string"))
        #expect(try decode("%1\r\n+first\r\n:1\r\n") == .map([RESPPair(.simpleString("first"), .integer(1))]))
        #expect(try decode("~2\r\n:1\r\n:2\r\n") == .set([.integer(1), .integer(2)]))
        #expect(try decode(">2\r\n+message\r\n$2\r\nhi\r\n") == .push([.simpleString("message"), .bulkString(Array("hi".utf8))]))
        // An attribute describes the value after it, which is what comes back.
        #expect(try decode("|1\r\n+ttl\r\n:3600\r\n:7\r\n") == .integer(7))
    }

    @Test func waitsForWholeValuesAndLeavesTheRest() throws {
        var buffer = ByteBuffer(string: "*2\r\n$3\r\nfoo\r\n$3\r\nba")
        let decoder = RESPDecoder()
        #expect(try decoder.next(from: &buffer) == nil)
        #expect(buffer.readableBytes == 19)  // nothing consumed
        buffer.writeString("r\r\n+OK\r\n")
        #expect(try decoder.next(from: &buffer) == .array([.bulkString(Array("foo".utf8)), .bulkString(Array("bar".utf8))]))
        #expect(try decoder.next(from: &buffer) == .simpleString("OK"))
        #expect(try decoder.next(from: &buffer) == nil)
        #expect(buffer.readableBytes == 0)
    }

    @Test func commandsAreArraysOfBulkStrings() {
        var buffer = ByteBuffer()
        RESPValue.command(["SET", "key", "välue"]).write(into: &buffer)
        #expect(String(buffer: buffer) == "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$6\r\nvälue\r\n")
    }

    /// A value built from a list of numbers (so the property library's plain integer
    /// generators give every type, nested up to `depth`).
    static func value(from numbers: inout [Int], depth: Int) -> RESPValue {
        guard !numbers.isEmpty else { return .null }
        let n = numbers.removeFirst()
        let text = String(n, radix: 36)
        switch n % (depth > 0 ? 13 : 9) {
        case 0: return .integer(Int64(n) * (n % 2 == 0 ? -1 : 1) * 1_000_003)
        case 1: return .bulkString((0..<(n % 12)).map { UInt8(truncatingIfNeeded: $0 &* n) })
        case 2: return .simpleString(text)
        case 3: return .error("ERR " + text)
        case 4: return .boolean(n % 2 == 0)
        case 5: return .double(Double(n) / 7 - 50)
        case 6: return .verbatim(format: "txt", text: text)
        case 7: return .bulkError(text)
        case 8: return .null
        default:
            var children: [RESPValue] = []
            for _ in 0..<(n % 4) { children.append(value(from: &numbers, depth: depth - 1)) }
            switch n % 13 {
            case 9: return .array(children)
            case 10: return .set(children)
            case 11: return .push(children)
            default: return .map(stride(from: 0, to: children.count - 1, by: 2).map { RESPPair(children[$0], children[$0 + 1]) })
            }
        }
    }

    /// Any value, written and read back from any split of its bytes: nothing until the last
    /// byte, then the same value, with nothing left over.
    @Test func everyValueRoundTripsAcrossEverySplit() async {
        await propertyCheck(input: Gen.int(in: 0...10_000).array(of: 1...24)) { numbers in
            var numbers = numbers
            let value = Self.value(from: &numbers, depth: 2)
            var wire = ByteBuffer()
            value.write(into: &wire)
            let bytes = Array(wire.readableBytesView)
            let decoder = RESPDecoder()
            for cut in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 16)) {
                var partial = ByteBuffer(bytes: bytes[..<cut])
                #expect((try? decoder.next(from: &partial)) == .some(nil), "cut at \(cut)")
            }
            var whole = ByteBuffer(bytes: bytes)
            #expect((try? decoder.next(from: &whole)) == .some(value))
            #expect(whole.readableBytes == 0)
        }
    }

    @Test func malformedInputIsRefusedWithAReason() {
        let cases: [(String, String)] = [
            ("?x\r\n", "unknown type byte 0x3f"),
            (":12a\r\n", "integer expected"),
            ("$abc\r\n", "length expected after $"),
            ("$3\r\nabcd\r\n", "bulk not ended by CRLF"),
            ("+OK\rX", "CR without LF"),
            ("#x\r\n", "boolean expected"),
            ("(12x\r\n", "big number expected"),
            ("=2\r\nab\r\n", "verbatim string without a format"),
            ("!-1\r\n", "negative length for !"),
        ]
        for (input, reason) in cases {
            #expect(throws: RESPProtocolError.self) { try decode(input) }
            do {
                _ = try decode(input)
            } catch let error as RESPProtocolError {
                #expect(error.message.hasPrefix(reason), "\(input.debugDescription): \(error.message)")
            } catch {
                Issue.record("unexpected \(error)")
            }
        }
        // Hostile sizes and nesting are refused before anything is allocated or recursed into.
        var huge = ByteBuffer(string: "$999999999999\r\n")
        #expect(throws: RESPProtocolError.self) { try RESPDecoder(maximumBulkBytes: 1024).next(from: &huge) }
        var deep = ByteBuffer(string: String(repeating: "*1\r\n", count: 100) + ":1\r\n")
        #expect(throws: RESPProtocolError.self) { try RESPDecoder().next(from: &deep) }
    }

    /// Random bytes never crash the decoder: they decode, wait for more, or are refused.
    @Test func arbitraryBytesNeverCrashTheDecoder() async {
        await propertyCheck(input: Gen.uint8().array(of: 0...64)) { bytes in
            var buffer = ByteBuffer(bytes: bytes)
            _ = try? RESPDecoder(maximumBulkBytes: 4096, maximumElements: 64).next(from: &buffer)
        }
    }
}
