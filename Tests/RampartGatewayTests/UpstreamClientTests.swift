// The socket calls below: their C types may be attributed to either module, depending on
// which the compiler loads first, so both are imported.
#if canImport(Glibc)
import Glibc
#endif
#if canImport(CNIOLinux)
import CNIOLinux
#endif
import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOPosix
import RampartBalancing
import RampartCore
import RampartTesting
import Synchronization
import Testing
@testable import RampartGateway

/// The proxy's upstream client against a scripted upstream on loopback, which answers each
/// request head with whatever the test says, including silence and closed connections.
@Suite struct UpstreamClientTests {
    let loop = MultiThreadedEventLoopGroup.singleton.next()

    func client(idle: TimeAmount = .seconds(60)) -> UpstreamClient {
        UpstreamClient(settings: .init(connectTimeout: .seconds(2), idleTimeout: idle))
    }

    func get(_ path: String = "/", method: HTTPMethod = .GET) -> UpstreamRequest {
        UpstreamRequest(head: UpstreamRequestHead(HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: ["host": "upstream"])),
                        body: .none,
                        isIdempotent: method == .GET || method == .HEAD)
    }

    func collect(_ response: UpstreamResponse) async throws -> [UInt8] {
        switch response.body {
        case .whole(let bytes): return Array(bytes.readableBytesView)
        case .stream(let stream):
            var all: [UInt8] = []
            for try await chunk in stream { all += chunk.readableBytesView }
            return all
        }
    }

    var soon: NIODeadline { .now() + .seconds(10) }

    /// The head is the bytes that go out: request line, fields in order, the framing fields for
    /// its body, and the blank line once framed.
    @Test func aFramedHeadIsTheBytesWritten() {
        var head = UpstreamRequestHead(method: .POST, uri: "/quiz?x=1")
        head.add(name: "Host", value: "app")
        head.add(name: "X-Request-Id", value: "r1")
        #expect(!head.isEnded)
        let none = UpstreamRequest(head: head, body: .none).framed()
        #expect(none.head.isEnded)
        #expect(String(buffer: none.head.bytes) == "POST /quiz?x=1 HTTP/1.1\r\nHost: app\r\nX-Request-Id: r1\r\ncontent-length: 0\r\n\r\n")
        let whole = UpstreamRequest(head: head, body: .whole(ByteBuffer(string: "abc"))).framed()
        #expect(String(buffer: whole.head.bytes) == "POST /quiz?x=1 HTTP/1.1\r\nHost: app\r\nX-Request-Id: r1\r\ncontent-length: 3\r\n\r\n")
        let streamed = UpstreamRequest(head: head, body: .stream(length: nil) { _ in }).framed()
        #expect(String(buffer: streamed.head.bytes).hasSuffix("X-Request-Id: r1\r\ntransfer-encoding: chunked\r\n\r\n"))
        // Framing one copy leaves the others as they were.
        #expect(!head.isEnded)
        #expect(String(buffer: head.bytes) == "POST /quiz?x=1 HTTP/1.1\r\nHost: app\r\nX-Request-Id: r1\r\n")
        let get = UpstreamRequest(head: UpstreamRequestHead(method: .GET, uri: "/"), body: .none).framed()
        #expect(String(buffer: get.head.bytes) == "GET / HTTP/1.1\r\n\r\n")
        // Framing a framed request adds nothing (the direct path frames before the client does).
        #expect(String(buffer: none.framed().head.bytes) == String(buffer: none.head.bytes))
    }

    /// A head written into a buffer still held elsewhere (by a socket's pending write) leaves
    /// that buffer's bytes as they were; one no longer shared is written over.
    @Test func aHeadReusesABufferOnlyWhenNothingElseHoldsIt() {
        let sent = UpstreamRequest(head: UpstreamRequestHead(method: .GET, uri: "/first"), body: .none).framed().head.bytes
        let next = UpstreamRequest(head: UpstreamRequestHead(method: .GET, uri: "/second", reusing: sent), body: .none).framed()
        #expect(String(buffer: sent) == "GET /first HTTP/1.1\r\n\r\n")
        #expect(String(buffer: next.head.bytes) == "GET /second HTTP/1.1\r\n\r\n")
        var unshared = ByteBufferAllocator().buffer(capacity: 1024)
        unshared.writeString("left over from before")
        unshared.moveReaderIndex(forwardBy: 5)
        let storage = unshared.withUnsafeReadableBytes { $0.baseAddress! - 5 }
        let reused = UpstreamRequestHead(method: .HEAD, uri: "/third", reusing: consume unshared)
        #expect(String(buffer: reused.bytes) == "HEAD /third HTTP/1.1\r\n")
        // Written into the same storage, not a new one.
        #expect(reused.bytes.withUnsafeReadableBytes { $0.baseAddress! } == storage)
    }

    @Test func keepsOneConnectionAliveAcrossExchanges() async throws {
        let upstream = try await ScriptedUpstream.start { request in
            .answer("HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-path: \(request.path)\r\n\r\nhello")
        }
        let client = client()
        for index in 0..<5 {
            let response = try await client.execute(get("/\(index)"), to: upstream.url, on: loop, headDeadline: soon)
            #expect(response.head.status == .ok)
            #expect(response.head.headerFields[HTTPField.Name("x-path")!] == "/\(index)")
            guard case .whole = response.body else { Issue.record("a 5-byte answer should come whole"); continue }
            #expect(try await collect(response) == Array("hello".utf8))
        }
        #expect(upstream.connections == 1)
        #expect(upstream.requests.map(\.path) == ["/0", "/1", "/2", "/3", "/4"])
        await client.shutdown()
        try await upstream.stop()
    }

    @Test func headAnswersComeWholeWithoutTheirDeclaredBody() async throws {
        let upstream = try await ScriptedUpstream.start { _ in .answer("HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n") }
        let client = client()
        let response = try await client.execute(get(method: .HEAD), to: upstream.url, on: loop, headDeadline: soon)
        #expect(response.head.headerFields[.contentLength] == "1000000")
        #expect(try await collect(response).isEmpty)
        // The connection is still in step: a second HEAD on it works too.
        _ = try await client.execute(get(method: .HEAD), to: upstream.url, on: loop, headDeadline: soon)
        #expect(upstream.connections == 1)
        await client.shutdown()
        try await upstream.stop()
    }

    @Test func largeAndUnsizedAnswersStream() async throws {
        let large = String(repeating: "x", count: 300_000)
        let upstream = try await ScriptedUpstream.start { request in
            request.path == "/large"
                ? .answer("HTTP/1.1 200 OK\r\ncontent-length: \(large.utf8.count)\r\n\r\n\(large)")
                : .answer("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end", close: true)
        }
        let client = client()
        let response = try await client.execute(get("/large"), to: upstream.url, on: loop, headDeadline: soon)
        guard case .stream = response.body else { Issue.record("a 300 kB answer should stream"); return }
        #expect(try await collect(response).count == 300_000)
        // Delimited by the connection's end: streamed, and the connection not kept.
        let unsized = try await client.execute(get("/unsized"), to: upstream.url, on: loop, headDeadline: soon)
        #expect(String(decoding: try await collect(unsized), as: UTF8.self) == "until the end")
        _ = try await collect(try await client.execute(get("/large"), to: upstream.url, on: loop, headDeadline: soon))
        #expect(upstream.connections == 2)
        await client.shutdown()
        try await upstream.stop()
    }

    @Test func aSlowReaderHoldsTheUpstreamBackAndTheConnectionStaysUsable() async throws {
        let size = 2_000_000
        let large = String(repeating: "y", count: size)
        let upstream = try await ScriptedUpstream.start { _ in .answer("HTTP/1.1 200 OK\r\ncontent-length: \(size)\r\n\r\n\(large)") }
        let client = client()
        for _ in 0..<2 {
            let response = try await client.execute(get(), to: upstream.url, on: loop, headDeadline: soon)
            guard case .stream(let stream) = response.body else { Issue.record("a 2 MB answer should stream"); return }
            var received = 0
            for try await chunk in stream {
                received += chunk.readableBytes
                try await Task.sleep(for: .milliseconds(1))
            }
            #expect(received == size)
        }
        #expect(upstream.connections == 1)
        await client.shutdown()
        try await upstream.stop()
    }

    /// An upstream that answers any request with a body of `size` bytes, written a megabyte at
    /// a time as the socket takes it, and counts the bytes the socket has taken.
    final class Firehose: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        static let size = 64 << 20
        final class Count: Sendable { let bytes = Atomic<Int>(0) }
        let accepted: Count
        private var answered = false
        init(accepted: Count) { self.accepted = accepted }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !answered else { return }
            answered = true
            context.writeAndFlush(NIOAny(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: \(Self.size)\r\n\r\n")), promise: nil)
            send(context, left: Self.size)
        }

        private func send(_ context: ChannelHandlerContext, left: Int) {
            guard left > 0 else { return }
            let count = min(left, 1 << 20)
            context.writeAndFlush(NIOAny(ByteBuffer(repeating: 0x7A, count: count))).assumeIsolated().whenSuccess { [self] in
                accepted.bytes.wrappingAdd(count, ordering: .relaxed)
                send(context, left: left - count)
            }
        }
    }

    @Test func aConsumerThatStopsReadingStopsTheConnectionReading() async throws {
        let accepted = Firehose.Count()
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Firehose(accepted: accepted)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let client = client()
        let url = try #require(UpstreamURL("http://127.0.0.1:\(server.localAddress!.port!)"))
        let response = try await client.execute(get(), to: url, on: loop, headDeadline: soon)
        guard case .stream(let stream) = response.body else { Issue.record("a 64 MB answer should stream"); return }
        let chunks = stream.makeAsyncIterator()
        var received = try await chunks.next()?.readableBytes ?? 0
        // Not read for a while: the connection stops reading once the stream holds a few
        // chunks, the socket buffers fill, and the upstream can write no more. Without that
        // the whole answer would pass into the stream's buffer.
        try await Task.sleep(for: .milliseconds(300))
        let taken = accepted.bytes.load(ordering: .relaxed)
        #expect(taken < Firehose.size / 2, "the upstream wrote \(taken) bytes while nothing was read")
        while let chunk = try await chunks.next() { received += chunk.readableBytes }
        #expect(received == Firehose.size)
        await client.shutdown()
        try await server.close()
    }

    @Test func aStreamedBodyOfKnownLengthGoesInPieces() async throws {
        let upstream = try await ScriptedUpstream.start { request in
            .answer("HTTP/1.1 200 OK\r\ncontent-length: \(request.body.count)\r\n\r\n\(request.body)")
        }
        let client = client()
        var request = get(method: .PUT)
        request.body = .stream(length: 9) { send in
            for piece in ["one", "two", "six"] { try await send(ByteBuffer(string: piece)) }
        }
        #expect(!request.isReplayable)
        let response = try await client.execute(request, to: upstream.url, on: loop, headDeadline: soon)
        #expect(String(decoding: try await collect(response), as: UTF8.self) == "onetwosix")
        #expect(upstream.requests.first?.headers["content-length"] == "9")
        await client.shutdown()
        try await upstream.stop()
    }

    @Test func aSilentUpstreamRunsIntoTheHeadDeadline() async throws {
        let upstream = try await ScriptedUpstream.start { _ in .silence }
        let client = client()
        await #expect {
            _ = try await client.execute(get(), to: upstream.url, on: loop, headDeadline: .now() + .milliseconds(300))
        } throws: { ($0 as? GatewayError)?.kind == .firstByteTimeout }
        await client.shutdown()
        try await upstream.stop()
    }

    @Test func anUpstreamFallingSilentMidBodyRunsIntoTheIdleTimeout() async throws {
        let upstream = try await ScriptedUpstream.start { _ in
            .answer("HTTP/1.1 200 OK\r\ncontent-length: 200000\r\n\r\nonly the start")
        }
        let client = client(idle: .seconds(1))
        // The silence comes after the head and the first bytes; on a machine so loaded that the
        // head itself takes longer than the idle timeout, that silence counts as well.
        await #expect {
            let response = try await client.execute(get(), to: upstream.url, on: loop, headDeadline: soon)
            _ = try await collect(response)
        } throws: { ($0 as? GatewayError)?.kind == .idleTimeout }
        await client.shutdown()
        try await upstream.stop()
    }

    @Test func aKeptConnectionTheUpstreamClosedIsReplacedOnce() async throws {
        // Every connection answers one request, keep-alive promised, then closes.
        let upstream = try await ScriptedUpstream.start { _ in
            .answer("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", close: true)
        }
        let client = client()
        for _ in 0..<3 {
            // Give the close time to land, so the next request finds the kept connection dead or dying.
            let response = try await client.execute(get(), to: upstream.url, on: loop, headDeadline: soon)
            #expect(try await collect(response) == Array("ok".utf8))
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(upstream.connections == 3)
        await client.shutdown()
        try await upstream.stop()
    }

    @Test func aRequestTheUpstreamReadBeforeHangingUpIsResentOnlyWhenIdempotent() async throws {
        // The second request on each connection is read, then the connection closed unanswered;
        // a request on a new connection is answered.
        let seen = Mutex<[Int: Int]>([:])
        let upstream = try await ScriptedUpstream.start { request in
            let count = seen.withLock { $0[request.connection, default: 0] += 1; return $0[request.connection]! }
            return count == 2 ? .hangUp : .answer("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        }
        let client = client()
        _ = try await client.execute(get(), to: upstream.url, on: loop, headDeadline: soon)
        // GET: sent again on a new connection, and answered there.
        let again = try await client.execute(get("/again"), to: upstream.url, on: loop, headDeadline: soon)
        #expect(try await collect(again) == Array("ok".utf8))
        #expect(upstream.requests.map(\.path) == ["/", "/again", "/again"])
        // POST: the upstream may have acted on it, so it is not sent twice.
        var post = get("/order", method: .POST)
        post.body = .whole(ByteBuffer(string: "{}"))
        await #expect {
            _ = try await client.execute(post, to: upstream.url, on: loop, headDeadline: soon)
        } throws: { ($0 as? GatewayError)?.kind == .upstreamReset }
        #expect(upstream.requests.filter { $0.path == "/order" }.count == 1)
        await client.shutdown()
        try await upstream.stop()
    }

    @Test func informationalAnswersAreSkipped() async throws {
        let upstream = try await ScriptedUpstream.start { _ in
            .answer("HTTP/1.1 103 Early Hints\r\nlink: </app.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        }
        let client = client()
        let response = try await client.execute(get(), to: upstream.url, on: loop, headDeadline: soon)
        #expect(response.head.status == .ok)
        #expect(try await collect(response) == Array("ok".utf8))
        _ = try await client.execute(get(), to: upstream.url, on: loop, headDeadline: soon)
        #expect(upstream.connections == 1)
        await client.shutdown()
        try await upstream.stop()
    }

    @Test func anUnaskedAnswerRetiresTheConnection() async throws {
        let upstream = try await ScriptedUpstream.start { _ in
            .answer("HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        }
        let client = client()
        _ = try await client.execute(get(), to: upstream.url, on: loop, headDeadline: soon)
        // The second answer came unasked: the connection is not used again.
        _ = try await client.execute(get(), to: upstream.url, on: loop, headDeadline: soon)
        #expect(upstream.connections == 2)
        await client.shutdown()
        try await upstream.stop()
    }

    @Test func aWholeBodyGoesWithItsLength() async throws {
        let upstream = try await ScriptedUpstream.start { request in
            .answer("HTTP/1.1 200 OK\r\ncontent-length: \(request.body.count)\r\n\r\n\(request.body)")
        }
        let client = client()
        var request = get(method: .POST)
        request.body = .whole(ByteBuffer(string: "{\"quiz\":1}"))
        let response = try await client.execute(request, to: upstream.url, on: loop, headDeadline: soon)
        #expect(String(decoding: try await collect(response), as: UTF8.self) == "{\"quiz\":1}")
        #expect(upstream.requests.first?.headers["content-length"] == "10")
        await client.shutdown()
        try await upstream.stop()
    }

    @Test func aListenerThatNeverAcceptsRunsIntoTheConnectTimeout() async throws {
        // A listening socket that never accepts, its queue filled: further handshakes go unanswered.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(listener >= 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0 }
        }
        #expect(bound && listen(listener, 0) == 0)
        let url = UpstreamURL(scheme: .http, host: "127.0.0.1", port: Int(UInt16(bigEndian: address.sin_port)))
        var fillers: [Int32] = []
        defer { fillers.forEach { _ = close($0) } }
        for _ in 0..<4 {
            let filler = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = connect(filler, $0, length) } }
            fillers.append(filler)
        }
        let client = UpstreamClient(settings: .init(connectTimeout: .milliseconds(300), idleTimeout: .seconds(60)))
        await #expect {
            _ = try await client.execute(get(), to: url, on: loop, headDeadline: soon)
        } throws: { error in
            if case .connectTimeout = error as? ChannelError { return true }
            return false
        }
        await client.shutdown()
    }

    @Test func aRefusedConnectionFails() async throws {
        let client = client()
        // A port that was just bound and released: nothing listens there.
        let upstream = try await ScriptedUpstream.start { _ in .silence }
        try await upstream.stop()
        let closed = upstream.url
        await #expect(throws: (any Error).self) {
            _ = try await client.execute(get(), to: closed, on: loop, headDeadline: soon)
        }
        await client.shutdown()
    }
}

extension UpstreamRequestHead {
    /// A head with NIO's headers, fields in their order.
    init(_ head: HTTPRequestHead) {
        self.init(method: head.method, uri: head.uri)
        for (name, value) in head.headers { add(name: name, value: value) }
    }
}
