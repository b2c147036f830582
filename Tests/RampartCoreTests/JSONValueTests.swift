import PropertyBased
import RampartCore
import Testing

@Suite struct JSONValueTests {
    @Test func readsEveryKindOfValue() throws {
        let value = try JSONValue(parsing: #" {"a": [1, 2.5, -3e2, true, false, null], "b": {"c": "d\u00e9\n\"x\""}, "e": ""} "#)
        #expect(value["a"] == .array([.number(1), .number(2.5), .number(-300), .bool(true), .bool(false), .null]))
        #expect(value["b"]?["c"] == .string("dé\n\"x\""))
        #expect(value["e"] == .string(""))
    }

    @Test func booleansAreNotNumbers() throws {
        let value = try JSONValue(parsing: "[true, 1, false, 0]")
        #expect(value == .array([.bool(true), .number(1), .bool(false), .number(0)]))
        #expect(JSONValue.bool(true) != .number(1))
    }

    @Test func surrogatePairsAndEscapesDecode() throws {
        #expect(try JSONValue(parsing: #""\ud83d\ude00 \u0041\/""#) == .string("😀 A/"))
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: #""\ud83d""#) }
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: #""\ude00x""#) }
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "01", "1.", "-", "tru", "\"a", "\"\u{01}\"", "[1] x", "{\"a\":1,}", "1e", "NaN", "'a'", "1e999"])
    func malformedTextIsRefusedWithAnOffset(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: text) }
    }

    @Test func invalidUTF8IsRefused() {
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: [0x22, 0xC3, 0x28, 0x22]) }
    }

    @Test func depthIsBounded() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        do {
            _ = try JSONValue(parsing: deep)
            Issue.record("100,000 levels were accepted")
        } catch {
            #expect(error.reason.contains("nested deeper than 256"))
            #expect(error.offset == 256)
        }
        #expect(throws: Never.self) { try JSONValue(parsing: String(repeating: "[", count: 200) + String(repeating: "]", count: 200)) }
    }

    @Test func printsCompactlyWithSortedKeysAndWholeNumbers() throws {
        let value = try JSONValue(parsing: #"{"b": 10.0, "a": [1.5, 1e21, "x\u0001"], "c": null}"#)
        #expect(value.jsonText == #"{"a":[1.5,1e+21,"x\u0001"],"b":10,"c":null}"#)
        #expect(JSONValue.number(.nan).jsonText == "null")
        #expect(JSONValue.numberText(-0.25) == "-0.25")
    }

    /// RFC 8785 appendix B's number table, and its key order (UTF-16 code units) and escapes.
    @Test(arguments: [
        ("0", "0"), ("-0", "0"), ("5e-324", "5e-324"), ("1.7976931348623157e308", "1.7976931348623157e+308"),
        ("9007199254740992", "9007199254740992"), ("295147905179352830000", "295147905179352830000"),
        ("1e21", "1e+21"), ("1e15", "1000000000000000"), ("123456789012345680000", "123456789012345680000"),
        ("0.000001", "0.000001"), ("1e-7", "1e-7"), ("-1.5e-9", "-1.5e-9"), ("333333333.3333332", "333333333.3333332"),
        ("4.5", "4.5"), ("0.002", "0.002"), ("1.2345e22", "1.2345e+22"), ("-123.25", "-123.25"),
    ])
    func numbersPrintAsECMAScriptDoes(written: String, text: String) throws {
        // Read from text: the literals are the shortest spellings, not exact binary values.
        #expect(JSONValue.numberText(try #require(Double(written))) == text)
    }

    @Test func canonicalKeyOrderAndEscapes() {
        let value = JSONValue.object(["\u{E000}": .number(1), "\u{1F600}": .number(2), "b": .string("\u{8}\u{C}\u{1F}"), "a": .null])
        // U+1F600 is a surrogate pair (0xD83D...), before U+E000 in UTF-16 though after it in UTF-8.
        #expect(value.jsonText == "{\"a\":null,\"b\":\"\\b\\f\\u001f\",\"\u{1F600}\":2,\"\u{E000}\":1}")
    }

    @Test func printedValuesReadBackEqual() async {
        let scalar = Gen<JSONValue>.oneOf(
            Gen.always(JSONValue.null),
            Gen.bool.map(JSONValue.bool),
            Gen.int(in: -1_000_000...1_000_000).map { JSONValue.number(Double($0) / 8) },
            Gen.character(in: " "..."\u{D7FF}").string(of: 0...8).map(JSONValue.string)
        )
        let nested = Gen<JSONValue>.oneOf(
            scalar,
            scalar.array(of: 0...4).map(JSONValue.array),
            zip(Gen.letterOrNumber.string(of: 1...6), scalar).array(of: 0...4).map { pairs in
                JSONValue.object(Dictionary(pairs, uniquingKeysWith: { a, _ in a }))
            }
        )
        await propertyCheck(input: nested) { value in
            #expect((try? JSONValue(parsing: value.jsonText)) == value)
        }
    }

    @Test func arbitraryBytesNeverCrashTheReader() async {
        let alphabet = Array("{}[],:\"\\-0123456789.eEtrufalsn ".utf8)
        await propertyCheck(count: 2000, input: Gen.int(in: 0...(alphabet.count + 40)).array(of: 0...64)) { picks in
            // Mostly JSON's own characters, some arbitrary bytes.
            let bytes = picks.map { $0 < alphabet.count ? alphabet[$0] : UInt8(truncatingIfNeeded: $0 * 37) }
            _ = try? JSONValue(parsing: bytes)
        }
    }
}
