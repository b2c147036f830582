import Foundation
import RampartCore
import RampartGateway
import RampartTesting
import Testing

/// RFC 9112 §6.3 and §11: malformed or ambiguous requests are refused and the connection
/// closed, never forwarded. Each case is sent on a raw socket; the echo upstream must see none.
@Suite(.serialized) struct StrictParsingTests {
    static let cases: [(String, String)] = [
        ("both Content-Length and Transfer-Encoding", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("two different Content-Lengths", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
        ("malformed Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5x\r\n\r\nhello"),
        ("Transfer-Encoding not ending in chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
        ("malformed chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
        ("obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n"),
        ("bare LF", "GET / HTTP/1.1\nHost: x\n\n"),
        ("whitespace before colon", "GET / HTTP/1.1\r\nHost: x\r\nX-A : one\r\n\r\n"),
        ("control character in a value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: o\u{01}ne\r\n\r\n"),
        ("missing Host", "GET / HTTP/1.1\r\n\r\n"),
        ("two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        ("invalid Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
        ("unsupported version", "GET / HTTP/3.7\r\nHost: x\r\n\r\n"),
    ]

    @Test(arguments: 0..<cases.count) func refusesAndCloses(_ index: Int) async throws {
        let (name, request) = Self.cases[index]
        let upstream = await LoopbackHarness.startEcho(name: "strict")
        try await LoopbackHarness.withGateway(LoopbackHarness.configuration(pool: [upstream])) { _, port, _ in
            // Followed by a valid request on the same connection: it must not be answered, since
            // the connection closes after the refusal.
            let answer = try await rawExchange(port: port, request + "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
            let status = answer.split(separator: " ").dropFirst().first.flatMap { Int($0) }
            #expect(status.map { (400...505).contains($0) } == true, "\(name): \(answer.prefix(80))")
            #expect(answer.components(separatedBy: "HTTP/1.1 ").count == 2, "\(name): more than one response")
        }
        #expect(!upstream.server.requests.paths.contains("/smuggled"), "\(name): the pipelined request was forwarded")
        if name == "malformed chunk size" {
            // The head was valid and streamed on; the body fails mid-way, so the upstream saw an
            // aborted request on a connection that is then closed (no desynchronization).
            #expect(upstream.server.requests.count <= 1)
        } else {
            #expect(upstream.server.requests.count == 0, "\(name) reached the upstream")
        }
        await upstream.stop()
    }

    @Test func oversizedHeadersGet431AndLongTargets414() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "limits")
        var configuration = LoopbackHarness.configuration(pool: [upstream])
        configuration.proxy.limits.maxHeaderBytes = .kibibytes(4)
        configuration.proxy.limits.maxURIBytes = .init(1024)
        try await LoopbackHarness.withGateway(configuration) { _, port, _ in
            let big = try await rawExchange(port: port, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 8192))\r\n\r\n")
            #expect(big.hasPrefix("HTTP/1.1 431"), "\(big.prefix(60))")
            let long = try await rawExchange(port: port, "GET /\(String(repeating: "a", count: 2000)) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(long.hasPrefix("HTTP/1.1 414"), "\(long.prefix(60))")
            let normalized = try await rawExchange(port: port, "GET /a/%2e%2e/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(normalized.contains("\"path\":\"/b\""))
        }
        await upstream.stop()
    }
}
