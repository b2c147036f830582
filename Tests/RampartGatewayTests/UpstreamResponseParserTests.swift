import HTTPTypes
import NIOCore
import PropertyBased
import Testing
@testable import RampartGateway

/// The upstream client's reading of answers: framing, keep-alive, and what it refuses.
@Suite struct UpstreamResponseParserTests {
    /// What a parser made of some bytes, fed in the given pieces.
    struct Reading: Equatable {
        var heads: [String] = []
        var declared: [Int?] = []
        var keepAlive: [Bool] = []
        var body: [UInt8] = []
        var ends = 0
    }

    static func read(_ pieces: [String], toHead: Bool = false, closeAfter: Bool = false) throws(UpstreamResponseParser.Malformed) -> Reading {
        var parser = UpstreamResponseParser(maxHeadBytes: 4096)
        parser.expectAnswer(toHead: toHead)
        var reading = Reading()
        var buffer = ByteBuffer()
        func record(_ event: UpstreamResponseParser.Event) {
            switch event {
            case .head(let head, let declared, let keepAlive):
                let fields = head.headerFields.map { "\($0.name.canonicalName)=\($0.value)" }.joined(separator: ";")
                reading.heads.append("\(head.status.code) \(head.status.reasonPhrase) [\(fields)]")
                reading.declared.append(declared)
                reading.keepAlive.append(keepAlive)
            case .body(let bytes):
                reading.body += bytes.readableBytesView
            case .end:
                reading.ends += 1
            }
        }
        for piece in pieces {
            buffer.writeString(piece)
            while let event = try parser.next(&buffer) { record(event) }
        }
        if closeAfter, let end = parser.connectionClosed() { record(end) }
        return reading
    }

    /// The parser accepts as a field name exactly what HTTPTypes takes for one, so a name kept
    /// as bytes always becomes an `HTTPField.Name` when the fields are made.
    @Test func tokenBytesAreTheNamesHTTPTypesTakes() {
        for byte in UInt8(0)...UInt8(0x7F) {
            let text = String(UnicodeScalar(byte))
            #expect(DirectRequestHead.isTokenByte(byte) == (HTTPField.Name(text) != nil), "\(byte)")
        }
    }

    @Test func keepsTheHeadsBytesAndMakesItsFieldsOnDemand() throws {
        var parser = UpstreamResponseParser()
        parser.expectAnswer(toHead: false)
        var buffer = ByteBuffer(string: "HTTP/1.1 201 Made\r\nX-Odd: caf\u{E9}\r\nCONTENT-LENGTH: 2\r\nVia: 1.0 a\r\n\r\nok")
        guard case .head(let head, let declared, _)? = try parser.next(&buffer) else {
            Issue.record("no head")
            return
        }
        #expect(declared == 2 && head.code == 201 && head.reason == "Made")
        #expect(head.fields.map(\.known) == [nil, .contentLength, .via])
        #expect(head.headerFields[HTTPField.Name("x-odd")!] == "caf\u{E9}")
        #expect(head.headerFields.map(\.name.rawName) == ["X-Odd", "Content-Length", "Via"])
        #expect(String(buffer: head.bytes).hasPrefix("HTTP/1.1 201 Made\r\n") && String(buffer: head.bytes).hasSuffix("\r\n\r\n"))
    }

    @Test func readsALengthFramedAnswer() throws {
        let reading = try Self.read(["HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-Empty:\r\n\r\nhello"])
        #expect(reading.heads == ["200 OK [content-type=text/plain;content-length=5;x-empty=]"])
        #expect(reading.declared == [5] && reading.keepAlive == [true])
        #expect(String(decoding: reading.body, as: UTF8.self) == "hello" && reading.ends == 1)
    }

    @Test func readsAChunkedAnswerWithExtensionsAndTrailers() throws {
        let bytes = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n"
            + "5;name=value\r\nhello\r\n1 \r\n,\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n"
        let reading = try Self.read([bytes])
        // Transfer-Encoding wins over Content-Length (RFC 9112 §6.3).
        #expect(reading.declared == [nil] && reading.keepAlive == [true])
        #expect(String(decoding: reading.body, as: UTF8.self) == "hello, world" && reading.ends == 1)
    }

    @Test func anAnswerWithoutFramingRunsToTheConnectionsEnd() throws {
        let reading = try Self.read(["HTTP/1.1 200 OK\r\nServer: old\r\n\r\nsome ", "bytes"], closeAfter: true)
        #expect(reading.declared == [nil] && reading.keepAlive == [false])
        #expect(String(decoding: reading.body, as: UTF8.self) == "some bytes" && reading.ends == 1)
        // A final coding other than chunked also runs to the end.
        let gzip = try Self.read(["HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz"], closeAfter: true)
        #expect(gzip.keepAlive == [false] && gzip.body.count == 2 && gzip.ends == 1)
        // Cut short, a framed answer has no end.
        let cut = try Self.read(["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"], closeAfter: true)
        #expect(cut.ends == 0)
    }

    @Test func answersWithoutABody() throws {
        let head = try Self.read(["HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"], toHead: true)
        #expect(head.declared == [0] && head.body.isEmpty && head.ends == 1 && head.keepAlive == [true])
        for status in ["204 No Content", "304 Not Modified"] {
            let reading = try Self.read(["HTTP/1.1 \(status)\r\nETag: \"x\"\r\n\r\n"])
            #expect(reading.declared == [0] && reading.ends == 1 && reading.keepAlive == [true], "\(status)")
        }
    }

    @Test func informationalAnswersAreSkipped() throws {
        let reading = try Self.read(["HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
                                     "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"])
        #expect(reading.heads == ["201 Created [content-length=0]"] && reading.ends == 1)
        #expect(throws: UpstreamResponseParser.Malformed.self) {
            try Self.read(["HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"])
        }
    }

    @Test func keepAliveFollowsVersionAndConnection() throws {
        let cases: [(String, Bool)] = [
            ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true),
            ("HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n", false),
            ("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false),
            ("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", true),
            ("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", true),
        ]
        for (bytes, keepAlive) in cases {
            #expect(try Self.read([bytes]).keepAlive == [keepAlive], "\(bytes)")
        }
    }

    @Test func fieldNamesAreReadWhateverTheirCase() throws {
        let reading = try Self.read(["HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 2\r\nconnection: KEEP-ALIVE\r\nX-Own-Name: v\r\n\r\nok"])
        #expect(reading.heads == ["200 OK [content-length=2;connection=KEEP-ALIVE;x-own-name=v]"])
        #expect(reading.declared == [2] && reading.keepAlive == [true] && reading.body.count == 2)
    }

    @Test func identicalContentLengthsAreOneLength() throws {
        let reading = try Self.read(["HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok"])
        #expect(reading.declared == [2] && reading.body.count == 2)
    }

    @Test(arguments: [
        "HTTP/2 200 OK\r\n\r\n",
        "ICY 200 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 099 Low\r\n\r\n",
        "HTTP/1.1 20x OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-Space : a\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-Bare: a\nX-Other: b\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-Cr: a\rb\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-Nul: a\u{0}b\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-Del: a\u{7F}b\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-Escape: a\u{1B}b\r\n\r\n",
        "HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
        "HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nab\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok and more",
    ])
    func malformedAnswersAreRefused(_ bytes: String) {
        #expect(throws: UpstreamResponseParser.Malformed.self, "\(bytes.debugDescription)") { try Self.read([bytes]) }
    }

    @Test func headsOverTheLimitAreRefused() {
        let long = "HTTP/1.1 200 OK\r\nX-Long: " + String(repeating: "a", count: 5000) + "\r\n\r\n"
        #expect(throws: UpstreamResponseParser.Malformed.self) { try Self.read([long]) }
        // Refused before the end arrives, too.
        #expect(throws: UpstreamResponseParser.Malformed.self) { try Self.read([String(long.prefix(4500))]) }
    }

    @Test func aTabInsideAValueIsKept() throws {
        let reading = try Self.read(["HTTP/1.1 200 OK\r\nX-Tabbed: a\tb\r\nContent-Length: 0\r\n\r\n"])
        #expect(reading.heads == ["200 OK [x-tabbed=a\tb;content-length=0]"])
    }

    @Test func obsoleteTextInAValueIsKeptAsText() throws {
        var parser = UpstreamResponseParser()
        parser.expectAnswer(toHead: false)
        var buffer = ByteBuffer(string: "HTTP/1.1 200 OK\r\nX-Name: caf")
        buffer.writeBytes([0xE9])
        buffer.writeString("\r\nContent-Length: 0\r\n\r\n")
        guard case .head(let head, _, _)? = try parser.next(&buffer) else { Issue.record("no head"); return }
        // Not UTF-8: the byte becomes U+FFFD rather than failing the answer.
        #expect(head.headerFields[HTTPField.Name("x-name")!] == "caf\u{FFFD}")
    }

    @Test func bytesWithNoAnswerDueAreRefused() {
        var parser = UpstreamResponseParser()
        var buffer = ByteBuffer(string: "HTTP/1.1 200 OK\r\n\r\n")
        #expect(throws: UpstreamResponseParser.Malformed.self) { _ = try parser.next(&buffer) }
    }

    /// However the bytes are cut into pieces, the reading is the same.
    @Test func piecesDoNotMatter() async throws {
        let answers = [
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello, world",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n2\r\n, \r\n5\r\nworld\r\n0\r\nTrailer: t\r\n\r\n",
            "HTTP/1.0 404 Not Found\r\nServer: s\r\n\r\nno such thing",
        ]
        let whole = try answers.map { try Self.read([$0], closeAfter: true) }
        let cuts = zip(Gen.int(in: 0...(answers.count - 1)), Gen.int(in: 1...40).array(of: 0...12))
        await propertyCheck(count: 500, input: cuts) { input in
            let (which, sizes) = input
            let text = Array(answers[which].utf8)
            var pieces: [String] = []
            var offset = 0
            for size in sizes where offset < text.count {
                let end = min(offset + size, text.count)
                pieces.append(String(decoding: text[offset..<end], as: UTF8.self))
                offset = end
            }
            if offset < text.count { pieces.append(String(decoding: text[offset...], as: UTF8.self)) }
            #expect((try? Self.read(pieces, closeAfter: true)) == whole[which])
        }
    }
}
