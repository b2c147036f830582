import HTTPTypes
import Hummingbird
import Logging
import NIOEmbedded
import RampartShield
import NIOCore
import PropertyBased
import RampartCore
import Testing

@testable import RampartGateway

/// The direct path's recognizer: it must serve only plain heads and leave everything else,
/// legitimate or not, to the full parser.
@Suite struct DirectRequestHeadTests {
    static let plain = "GET /quiz/42?lang=en HTTP/1.1\r\nHost: quiz.example:8080\r\nAccept: application/json\r\nX-Trace: a b\r\n\r\n"

    static func parse(_ text: String, maxHead: Int = 8192, maxTarget: Int = 1024) -> DirectRequestHead.Outcome {
        DirectRequestHead.parse(ByteBuffer(string: text), maxHeadBytes: maxHead, maxTargetBytes: maxTarget)
    }

    @Test func recognizesAPlainGet() throws {
        let pipelined = Self.plain + "GET /next HTTP/1.1\r\n"
        guard case .complete(let head, let length, let keepAlive) = Self.parse(pipelined) else {
            Issue.record("not recognized")
            return
        }
        #expect(length == Self.plain.utf8.count)
        #expect(keepAlive)
        #expect(head.method == .get)
        #expect(head.path == "/quiz/42?lang=en")
        #expect(head.authority == "quiz.example:8080")
        // As the HTTP/1 codec gives it: Host is the authority, not a field.
        #expect(head.headerFields[HTTPField.Name("Host")!] == nil)
        #expect(head.headerFields[.accept] == "application/json")
        #expect(head.headerFields[HTTPField.Name("X-Trace")!] == "a b")
    }

    @Test func connectionCloseEndsKeepAliveAndHeadIsServed() {
        guard case .complete(let head, _, let keepAlive) = Self.parse("HEAD / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, close\r\n\r\n") else {
            Issue.record("not recognized")
            return
        }
        #expect(head.method == .head)
        #expect(!keepAlive)
    }

    @Test func everyPrefixOfAPlainHeadWaitsForMore() {
        let bytes = Array(Self.plain.utf8)
        for end in 0..<bytes.count {
            var buffer = ByteBuffer()
            buffer.writeBytes(bytes[..<end])
            let outcome = DirectRequestHead.parse(buffer, maxHeadBytes: 8192, maxTargetBytes: 1024)
            guard case .incomplete = outcome else {
                Issue.record("prefix of \(end) bytes: \(outcome)")
                return
            }
        }
    }

    @Test(arguments: [
        "POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi",
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Secret\r\n\r\n",
        "GET / HTTP/1.0\r\nHost: a\r\n\r\n",
        "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
        "get / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-A : 1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\nX-A: 1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r2\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-A: \u{01}\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-A: caf\u{e9}\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1 \r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX(A): 1\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ])
    func declinesWhatItDoesNotServe(_ text: String) {
        guard case .declined = Self.parse(text) else {
            Issue.record("\(text.debugDescription): \(Self.parse(text))")
            return
        }
    }

    @Test func headsOverTheLimitsGoToTheFullParser() {
        // The full parser answers these 431 and 414.
        let outcomes = [Self.parse(Self.plain, maxHead: 40), Self.parse(Self.plain, maxTarget: 8),
                        // A head still arriving is declined once it cannot fit any more.
                        Self.parse(String(Self.plain.prefix(60)), maxHead: 50)]
        for outcome in outcomes {
            guard case .declined = outcome else {
                Issue.record("\(outcome)")
                continue
            }
        }
    }

    /// Whatever bytes arrive, a recognized head is one the full pipeline would have accepted
    /// in the same shape: a bodiless GET or HEAD, origin-form, one valid Host, no framing fields,
    /// ending in a blank line at the reported length.
    @Test func mutatedHeadsAreRecognizedOnlyWhenPlain() async {
        let base = Array(Self.plain.utf8)
        let edits = zip(Gen.int(in: 0...(base.count - 1)), Gen.uint8()).array(of: 1...4)
        await propertyCheck(count: 2000, input: edits) { edits in
            var bytes = base
            for (position, value) in edits { bytes[position] = value }
            var buffer = ByteBuffer()
            buffer.writeBytes(bytes)
            guard case .complete(let head, let length, _) = DirectRequestHead.parse(buffer, maxHeadBytes: 8192, maxTargetBytes: 1024) else {
                return
            }
            #expect(head.method == .get || head.method == .head)
            #expect(head.path?.hasPrefix("/") == true)
            #expect(head.authority.map(HostCheck.isValidAuthority) == true)
            #expect(head.headerFields[.contentLength] == nil && head.headerFields[.transferEncoding] == nil)
            #expect(length <= bytes.count && Array(bytes[(length - 4)..<length]) == Array("\r\n\r\n".utf8))
            for field in head.headerFields {
                #expect(field.value.utf8.allSatisfy { ($0 >= 0x20 && $0 < 0x7F) || $0 == 0x09 })
            }
        }
    }
}

/// The direct path writes an answer's head shaped as phase 9 shapes it, in one pass.
@Suite struct DirectAnswerHeadTests {
    static func context(close: Bool = false, security: SecurityHeadersConfiguration? = nil) -> GatewayRequestContext {
        var context = GatewayRequestContext(source: .init(channel: EmbeddedChannel(), logger: Logger(label: "test")))
        context.state.isSecure = false
        context.record.note {
            $0.requestID = "rid-1"
            $0.route = "app"
            $0.closeConnection = close
            $0.securityHeaders = SecurityHeaders(security ?? SecurityHeadersConfiguration(contentTypeOptions: true, frameOptions: "DENY"))
        }
        return context
    }

    /// `fields` written by the direct path: as its own answer's, or (`relayed`) as an upstream's
    /// head that sent them, read by the upstream client's parser.
    static func written(_ fields: HTTPFields, relayed: Bool = false, bodyLength: Int?, keepAlive: Bool, close: Bool = false,
                        security: SecurityHeadersConfiguration? = nil) throws -> (text: String, keepAlive: Bool) {
        let context = context(close: close, security: security)
        var upstream: UpstreamHead?
        if relayed {
            var parser = UpstreamResponseParser()
            parser.expectAnswer(toHead: false)
            var bytes = ByteBuffer(string: "HTTP/1.1 200 OK\r\n" + fields.map { "\($0.name.rawName): \($0.value)\r\n" }.joined() + "\r\n")
            guard case .head(let head, _, _)? = try parser.next(&bytes) else { throw UpstreamResponseParser.Malformed("no head") }
            upstream = head
        }
        var out = ByteBuffer()
        let stays = DirectForwarding.writeHead(status: .ok, headers: relayed ? [:] : fields, relayed: upstream, bodyLength: bodyLength,
                                               isHead: false, facts: context.record.current, context: context, keepAlive: keepAlive,
                                               date: Self.date, to: &out)
        return (String(buffer: out), stays)
    }

    static func lines(_ text: String) -> [String] { text.split(separator: "\r\n").dropFirst().map(String.init) }

    /// The `Date` the tests' answers are written with.
    static let date = "Sat, 05 Dec 2026 10:00:00 GMT"

    @Test func relayedUpstreamFieldsLoseTheirHopByHopFieldsAndGainVia() throws {
        let (text, keepAlive) = try Self.written([.connection: "keep-alive, X-Hop", HTTPField.Name("X-Hop")!: "1", .keepAlive: "timeout=5",
                                              .via: "1.0 cache", .xRequestID: "upstream-id", .contentType: "text/plain", .date: "yesterday",
                                              HTTPField.Name("X-Frame-Options")!: "SAMEORIGIN", .contentLength: "5"],
                                             relayed: true, bodyLength: 5, keepAlive: true)
        #expect(keepAlive)
        #expect(Set(Self.lines(text)) == ["Content-Type: text/plain", "X-Frame-Options: SAMEORIGIN", "Content-Length: 5",
                                          "Via: 1.0 cache, 1.1 rampart", "X-Request-Id: rid-1", "X-Content-Type-Options: nosniff",
                                          "Date: \(Self.date)"], "\(text)")
        #expect(Self.lines(text).count == 7)
    }

    /// The direct path writes the head the full pipeline would send: the upstream's fields
    /// rewritten for the client, then shaped (phase 9).
    @Test(arguments: [false, true])
    func relayedHeadsAgreeWithTheFullPipeline(override: Bool) throws {
        let security = SecurityHeadersConfiguration(contentSecurityPolicy: "default-src 'self'", contentTypeOptions: true, frameOptions: "DENY",
                                                    referrerPolicy: "no-referrer", override: override)
        let upstreams: [HTTPFields] = [
            [.contentType: "text/html", .contentLength: "5", .date: "Fri, 04 Dec 2026 09:00:00 GMT"],
            [.connection: "close", HTTPField.Name("Content-Security-Policy")!: "script-src 'none'", .contentLength: "5"],
            [.connection: "X-A, Via", HTTPField.Name("X-A")!: "a", .via: "1.0 x", HTTPField.Name("X-B")!: "b", .contentLength: "5",
             .transferEncoding: "chunked", .te: "trailers", HTTPField.Name("Referrer-Policy")!: "origin", .xRequestID: "theirs"],
            // The usual token in any case, beside a field naming another.
            HTTPFields([HTTPField(name: .connection, value: "Keep-Alive"), HTTPField(name: .connection, value: "x-c"),
                        HTTPField(name: HTTPField.Name("X-C")!, value: "c"), HTTPField(name: .contentLength, value: "5")]),
        ]
        for upstream in upstreams {
            let direct = try Self.written(upstream, relayed: true, bodyLength: 5, keepAlive: true, security: security)
            var full = HeaderRewriting.clientResponseHeaders(upstream)
            ShapePhase.shape(&full, context: Self.context(security: security))
            full[.date] = Self.date  // as Hummingbird's responder sets it on every answer
            #expect(direct.keepAlive)
            #expect(Set(Self.lines(direct.text)) == Set(full.map { "\($0.name.rawName): \($0.value)" }), "\(upstream)")
            #expect(Self.lines(direct.text).count == full.count)
        }
    }

    @Test func replacesTheRequestIDKeepsTheUpstreamsOwnHeadersAndFrames() throws {
        let (text, keepAlive) = try Self.written([.xRequestID: "upstream-id", HTTPField.Name("X-Frame-Options")!: "SAMEORIGIN",
                                              .contentType: "text/plain"], bodyLength: 5, keepAlive: true)
        #expect(keepAlive)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(text.hasSuffix("\r\n\r\n"))
        let lines = Self.lines(text)
        #expect(Set(lines) == ["X-Frame-Options: SAMEORIGIN", "Content-Type: text/plain", "X-Request-Id: rid-1",
                               "X-Content-Type-Options: nosniff", "Content-Length: 5", "Date: \(Self.date)"], "\(lines)")
        #expect(lines.count == 6)
    }

    /// The upstream head's names the direct path recognizes are hop-by-hop exactly when the
    /// full pipeline's rewriting says so.
    @Test func recognizedNamesAgreeOnHopByHop() {
        for known in KnownField.allCases {
            #expect(known.isHopByHop == HeaderRewriting.isHopByHop(known.name.canonicalName), "\(known.name)")
        }
    }

    /// Each recognized name is found in its own spelling and in any case, and names of the
    /// same length that are not it are not taken for it.
    @Test func knownNamesAreRecognizedInAnyCase() {
        func recognized(_ text: String) -> KnownField? {
            Array(text.utf8).withUnsafeBytes { KnownField($0[...]) }
        }
        for known in KnownField.allCases {
            let name = known.name.canonicalName
            #expect(recognized(name) == known)
            #expect(recognized(name.uppercased()) == known)
            #expect(recognized(known.name.rawName) == known)
            #expect(recognized("x" + name.dropFirst()) == (name.first == "x" ? known : nil), "\(name)")
            // Each other token byte in each place (compared eight bytes at a time, with the
            // case bit set): only the name's own letters in either case match.
            let bytes = Array(name.utf8)
            for index in bytes.indices {
                for byte in UInt8(0x21)...UInt8(0x7E) where DirectRequestHead.isTokenByte(byte) {
                    var changed = bytes
                    changed[index] = byte
                    let same = byte == bytes[index] || (bytes[index] >= 0x61 && bytes[index] <= 0x7A && byte == bytes[index] - 0x20)
                    let found = changed.withUnsafeBytes { KnownField($0[...]) }
                    if (found == known) != same { Issue.record("\(String(decoding: changed, as: UTF8.self)) taken for \(name): \(found == known)") }
                }
            }
        }
    }

    @Test func fieldsAreWrittenWhole() {
        var out = ByteBuffer(string: "x")
        out.writeField(name: "X-Empty", value: "")
        out.writeField(name: "X-Text", value: "grüße, \(String(repeating: "a", count: 300))")
        #expect(String(buffer: out) == "xX-Empty: \r\nX-Text: grüße, \(String(repeating: "a", count: 300))\r\n")
    }

    @Test func linesAndLengthsAreWrittenWhole() {
        var out = ByteBuffer(string: "x")
        out.writeRequestLine(method: "GET", target: "/quiz?id=\(String(repeating: "7", count: 200))")
        out.writeStatusLine(code: 404, reason: "Not Found")
        out.writeStatusLine(code: 200, reason: "")
        out.writeStatusLine(code: 7, reason: "Odd")
        for length in [0, 9, 10, 1024, 99_999, Int.max] { out.writeContentLength(length) }
        // Lines whose length is a power of two, each into an empty buffer: the room reserved
        // must be the line's length, not one byte short.
        for targetLength in [49, 50, 51, 113, 114, 115] {
            var line = ByteBuffer()
            let target = "/" + String(repeating: "t", count: targetLength - 1)
            line.writeRequestLine(method: "GET", target: target)
            #expect(String(buffer: line) == "GET \(target) HTTP/1.1\r\n")
        }
        #expect(String(buffer: out) == "xGET /quiz?id=\(String(repeating: "7", count: 200)) HTTP/1.1\r\n"
            + "HTTP/1.1 404 Not Found\r\nHTTP/1.1 200 \r\nHTTP/1.1 007 Odd\r\n"
            + "Content-Length: 0\r\nContent-Length: 9\r\nContent-Length: 10\r\nContent-Length: 1024\r\n"
            + "Content-Length: 99999\r\nContent-Length: \(Int.max)\r\n")
    }

    @Test func closesWhenAskedOrWhenTheRequestEndsTheConnection() throws {
        let closing = try Self.written([.contentType: "text/plain"], bodyLength: nil, keepAlive: true, close: true)
        #expect(!closing.keepAlive)
        #expect(closing.text.contains("Connection: close\r\n"))
        #expect(closing.text.contains("Transfer-Encoding: chunked\r\n"))
        #expect(closing.text.split(separator: "\r\n").filter { $0.hasPrefix("Connection:") }.count == 1)
        let last = try Self.written([.contentLength: "3"], bodyLength: 3, keepAlive: false)
        #expect(!last.keepAlive)
        #expect(last.text.contains("Connection: close\r\n"))
        #expect(last.text.split(separator: "\r\n").filter { $0.hasPrefix("Content-Length:") }.count == 1)
    }
}

@Suite struct RequestRecordReuseTests {
    /// A connection's next request takes the last one's record, emptied, only when nothing else
    /// holds it: a record still held (a streamed answer's task logging it) is left alone.
    @Test func aRecordIsReusedEmptyOnlyWhenNothingElseHoldsIt() {
        var kept: RequestRecord?
        // One request: its record is kept by the connection, and its facts noted.
        func serve(_ id: String) -> ObjectIdentifier {
            let record = RequestRecord.reused(&kept)
            #expect(kept === record)
            #expect(record.current.requestID.isEmpty && record.current.route == nil && record.current.attempts == 0)
            record.note {
                $0.requestID = id
                $0.route = "app"
                $0.attempts = 2
            }
            return ObjectIdentifier(record)
        }
        let first = serve("r1")
        #expect(serve("r2") == first)
        // Held elsewhere as the next request comes: the next one gets a record of its own.
        let stillHeld = kept!
        let third = serve("r3")
        #expect(third != ObjectIdentifier(stillHeld))
        #expect(stillHeld.current.requestID == "r2")
    }
}
