import AsyncHTTPClient
import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import RampartCore
import RampartGateway
import RampartTesting
import Testing

/// HTTP/2 (clear text by prior knowledge, and through ALPN over TLS) and protocol upgrades
/// (WebSocket) through the gateway, spoken by independent clients: curl (nghttp2) for HTTP/2,
/// AsyncHTTPClient for TLS, and a WebSocket client.
@Suite(.serialized) struct ProtocolTests {
    @Test func h2cPriorKnowledgeAndHTTP1ShareThePort() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "a")
        var configuration = LoopbackHarness.configuration(pool: [upstream])
        configuration.proxy.limits.maxURIBytes = .init(1024)
        try await LoopbackHarness.withGateway(configuration) { _, port, _ in
            let h2 = try await curl(["--http2-prior-knowledge", "http://127.0.0.1:\(port)/two?x=1"])
            #expect(h2.version == "2")
            #expect(h2.status == 200)
            let echoed = try #require(try JSONSerialization.jsonObject(with: Data(h2.body.utf8)) as? [String: Any])
            #expect(echoed["path"] as? String == "/two")
            #expect((echoed["headers"] as? [String: String])?["x-forwarded-proto"] == "http")
            let h1 = try await curl(["--http1.1", "http://127.0.0.1:\(port)/one"])
            #expect(h1.version == "1.1")
            #expect(h1.status == 200)
            // A refusal shaped for HTTP/1 (with Connection: close) is still a valid HTTP/2 answer.
            let long = try await curl(["--http2-prior-knowledge", "http://127.0.0.1:\(port)/\(String(repeating: "a", count: 2000))"])
            #expect(long.version == "2")
            #expect(long.status == 414)
        }
        #expect(upstream.server.requests.paths.contains("/two"))
        await upstream.stop()
    }

    @Test func tlsNegotiatesHTTP2AndHTTP1ThroughALPN() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "a")
        let files = try SelfSignedCertificate.make()
        var configuration = LoopbackHarness.configuration(pool: [upstream])
        configuration.listeners.traffic.tls = .init(certificate: files.certificate, key: files.key)
        try await LoopbackHarness.withGateway(configuration) { _, port, _ in
            let h2 = try await curl(["--http2", "-k", "https://127.0.0.1:\(port)/secure"])
            #expect(h2.version == "2")
            #expect(h2.status == 200)
            let echoed = try #require(try JSONSerialization.jsonObject(with: Data(h2.body.utf8)) as? [String: Any])
            #expect((echoed["headers"] as? [String: String])?["x-forwarded-proto"] == "https")
            let h1 = try await curl(["--http1.1", "-k", "https://127.0.0.1:\(port)/secure"])
            #expect(h1.version == "1.1")
            #expect(h1.status == 200)

            var tls = TLSConfiguration.makeClientConfiguration()
            tls.certificateVerification = .none
            var clientConfiguration = HTTPClient.Configuration(tlsConfiguration: tls)
            clientConfiguration.httpVersion = .automatic
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
            defer { _ = client.shutdown() }
            let response = try await client.execute(HTTPClientRequest(url: "https://127.0.0.1:\(port)/ahc"), timeout: .seconds(10))
            #expect(response.version == .http2)
            #expect(response.status == .ok)
            _ = try await response.body.collect(upTo: 1 << 20)
        }
        await upstream.stop()
    }

    @Test func webSocketEchoesThroughTheProxy() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "a")
        try await LoopbackHarness.withGateway(LoopbackHarness.configuration(pool: [upstream])) { _, port, _ in
            let replies = ReplyLog()
            try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/ws", configuration: .init(maxFrameSize: 1 << 20), logger: LoopbackHarness.logger) { inbound, outbound, _ in
                var messages = inbound.messages(maxSize: 1 << 20).makeAsyncIterator()
                for text in ["hello", "second", String(repeating: "z", count: 200_000)] {
                    try await outbound.write(.text(text))
                    if case .text(let reply) = try await messages.next() { replies.append(reply) }
                }
                var bytes = ByteBuffer()
                bytes.writeBytes([0, 1, 2, 255])
                try await outbound.write(.binary(bytes))
                if case .binary(let reply) = try await messages.next() { replies.append("binary \(Array(reply.readableBytesView))") }
            }
            let seen = replies.all
            #expect(seen.count == 4)
            #expect(seen.first == "a: hello")
            #expect(seen.dropFirst().first == "a: second")
            #expect(seen.dropFirst(2).first?.count == 200_003)
            #expect(seen.dropFirst(2).first?.hasSuffix("zzz") == true)
            #expect(seen.last == "binary [0, 1, 2, 255]")
            // The tunnel holds the connection in the balancer's count while open, not after.
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(upstream.server.requests.paths.contains("/ws"))
        await upstream.stop()
    }

    @Test func refusedUpgradeIsRelayedAndTheConnectionCloses() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "a")
        try await LoopbackHarness.withGateway(LoopbackHarness.configuration(pool: [upstream])) { _, port, _ in
            // The echo upstream upgrades only /ws; elsewhere it refuses the upgrade with a 400 of
            // its own (no JSON error body, which would be the gateway's).
            let answer = try await rawExchange(port: port, "GET /plain HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                                         + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                                         + "GET /behind HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(answer.hasPrefix("HTTP/1.1 400"))
            #expect(answer.lowercased().contains("connection: close"))
            #expect(answer.contains("Via: 1.1 rampart"))
            #expect(!answer.contains("\"error\""))
            // Nothing pipelined behind a refused upgrade is forwarded.
            #expect(!answer.contains("/behind"))
        }
        #expect(!upstream.server.requests.paths.contains("/behind"))
        await upstream.stop()
    }
}

final class ReplyLog: Sendable {
    private let lock = NSLock()
    nonisolated(unsafe) private var replies: [String] = []
    func append(_ reply: String) { lock.withLock { replies.append(reply) } }
    var all: [String] { lock.withLock { replies } }
}

/// Runs curl and reads the answer's status, HTTP version and body.
func curl(_ arguments: [String]) async throws -> (status: Int, version: String, body: String) {
    try await offPool { try blockingCurl(arguments) }
}

private func blockingCurl(_ arguments: [String]) throws -> (status: Int, version: String, body: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
    process.arguments = ["-sS", "--max-time", "10", "-w", "\n%{http_code} %{http_version}"] + arguments
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    let lastLine = text.split(separator: "\n").last.map(String.init) ?? ""
    let parts = lastLine.split(separator: " ")
    let body = text.count > lastLine.count ? String(text.dropLast(lastLine.count + 1)) : ""
    return (Int(parts.first ?? "") ?? 0, parts.count > 1 ? String(parts[1]) : "", body)
}

/// A throwaway certificate and key for 127.0.0.1, made with openssl.
enum SelfSignedCertificate {
    static func make() throws -> (certificate: String, key: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let certificate = directory.appendingPathComponent("cert.pem").path
        let key = directory.appendingPathComponent("key.pem").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                             "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                             "-keyout", key, "-out", certificate]
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw POSIXError(.EIO) }
        return (certificate, key)
    }
}
