// A measuring stick, not product code: the least an HTTP/1.1 reverse proxy written directly
// on Swift NIO does per request (parse the request, add X-Forwarded-For, forward on one kept-
// alive upstream connection per client connection, relay the response), with nothing else.
// scripts/bench-proxy.sh --ceiling runs it beside nginx, HAProxy and Rampart, to show how much
// of Rampart's gap to nginx belongs to the platform and how much to Rampart.
//
// Two modes. `codec` goes through NIO's HTTP/1 codecs (NIOHTTP1 on both sides, messages as
// head, body and end parts). `raw` handles bytes: it finds the end of the request head, adds
// the header before its last CRLF, and relays the answer as it comes, counting its
// Content-Length to know when to flush. It only understands bodiless requests and sized
// answers, which is all the benchmark sends; it shows what NIO's channels and event loop cost
// without the codecs.
//
// Usage: nio-proxy-ceiling LISTEN_PORT UPSTREAM_PORT THREADS [codec|raw]
import NIOCore
import NIOPosix
import NIOHTTP1

final class UpstreamHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    var client: (any Channel)?
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let client else { return }
        switch unwrapInboundIn(data) {
        case .head(let h):
            var headers = h.headers
            headers.add(name: "Via", value: "1.1 ceiling")
            client.write(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: h.status, headers: headers)), promise: nil)
        case .body(let b): client.write(HTTPServerResponsePart.body(.byteBuffer(b)), promise: nil)
        case .end: client.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
        }
    }
}

final class ProxyHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    let port: Int
    var upstream: (any Channel)?
    var pending: [HTTPClientRequestPart] = []
    var connecting = false
    init(port: Int) { self.port = port }

    func send(_ part: HTTPClientRequestPart, context: ChannelHandlerContext, flush: Bool) {
        if let upstream { flush ? upstream.writeAndFlush(part, promise: nil) : upstream.write(part, promise: nil); return }
        pending.append(part)
        guard !connecting else { return }
        connecting = true
        let client = context.channel
        let handler = UpstreamHandler()
        handler.client = client
        ClientBootstrap(group: context.eventLoop)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    try ch.pipeline.syncOperations.addHTTPClientHandlers()
                    try ch.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(host: "127.0.0.1", port: port).whenSuccess { ch in
                self.upstream = ch
                for p in self.pending { ch.write(p, promise: nil) }
                ch.flush()
                self.pending = []
            }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(var head):
            let peer = context.channel.remoteAddress?.ipAddress ?? "unknown"
            head.headers.add(name: "X-Forwarded-For", value: peer)
            head.headers.replaceOrAdd(name: "Host", value: "127.0.0.1:\(port)")
            send(.head(head), context: context, flush: false)
        case .body(let b): send(.body(.byteBuffer(b)), context: context, flush: false)
        case .end: send(.end(nil), context: context, flush: true)
        }
    }
    func channelInactive(context: ChannelHandlerContext) { upstream?.close(promise: nil) }
}

// MARK: - raw

extension ByteBuffer {
    /// The length of the head (through its blank line) at the start of the readable bytes.
    func headLength() -> Int? {
        readableBytesView.withContiguousStorageIfAvailable { bytes -> Int? in
            var i = 3
            while i < bytes.count {
                if bytes[i] == 10, bytes[i - 1] == 13, bytes[i - 2] == 10, bytes[i - 3] == 13 { return i + 1 }
                i += 1
            }
            return nil
        } ?? nil
    }

    /// The Content-Length of the head of `length` bytes at the start of the readable bytes (0 without one).
    func contentLength(headLength length: Int) -> Int {
        let name = Array("\r\ncontent-length:".utf8)
        return readableBytesView.withContiguousStorageIfAvailable { bytes -> Int in
            var i = 0
            search: while i + name.count < length {
                for j in 0..<name.count where bytes[i + j] | (bytes[i + j] >= 65 && bytes[i + j] <= 90 ? 0x20 : 0) != name[j] {
                    i += 1
                    continue search
                }
                var k = i + name.count, n = 0
                while bytes[k] == 32 { k += 1 }
                while bytes[k] >= 48 && bytes[k] <= 57 { n = n * 10 + Int(bytes[k] - 48); k += 1 }
                return n
            }
            return 0
        } ?? 0
    }
}

final class RawUpstreamHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    var client: (any Channel)?
    /// Body bytes still to come of the answer being relayed; nil between answers.
    var remaining: Int?
    var partialHead: ByteBuffer?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let client else { return }
        var bytes = unwrapInboundIn(data)
        if let left = remaining {
            remaining = left - bytes.readableBytes
        } else {
            if var partial = partialHead { partial.writeBuffer(&bytes); bytes = partial; partialHead = nil }
            guard let head = bytes.headLength() else { partialHead = bytes; return }
            remaining = bytes.contentLength(headLength: head) - (bytes.readableBytes - head)
        }
        if remaining! <= 0 {
            remaining = nil
            client.writeAndFlush(bytes, promise: nil)
        } else {
            client.write(bytes, promise: nil)
        }
    }
}

final class RawProxyHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let port: Int
    var upstream: (any Channel)?
    var pending: [ByteBuffer] = []
    var connecting = false
    var partialHead: ByteBuffer?
    init(port: Int) { self.port = port }

    func send(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        if let upstream { upstream.writeAndFlush(bytes, promise: nil); return }
        pending.append(bytes)
        guard !connecting else { return }
        connecting = true
        let handler = RawUpstreamHandler()
        handler.client = context.channel
        ClientBootstrap(group: context.eventLoop)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(handler) } }
            .connect(host: "127.0.0.1", port: port).whenSuccess { ch in
                self.upstream = ch
                for p in self.pending { ch.write(p, promise: nil) }
                ch.flush()
                self.pending = []
            }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if var partial = partialHead { partial.writeBuffer(&bytes); bytes = partial; partialHead = nil }
        while let length = bytes.headLength() {
            let peer = context.channel.remoteAddress?.ipAddress ?? "unknown"
            var head = bytes.readSlice(length: length - 2)!
            bytes.moveReaderIndex(forwardBy: 2)
            var out = context.channel.allocator.buffer(capacity: length + 48)
            out.writeBuffer(&head)
            out.writeString("X-Forwarded-For: \(peer)\r\n\r\n")
            send(out, context: context)
        }
        if bytes.readableBytes > 0 { partialHead = bytes }
    }
    func channelInactive(context: ChannelHandlerContext) { upstream?.close(promise: nil) }
}

let args = CommandLine.arguments
let listen = Int(args[1])!, upstreamPort = Int(args[2])!, threads = Int(args[3])!
let raw = args.count > 4 && args[4] == "raw"
let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
let server = try ServerBootstrap(group: group)
    .serverChannelOption(ChannelOptions.backlog, value: 1024)
    .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { ch in
        ch.eventLoop.makeCompletedFuture {
            if raw {
                try ch.pipeline.syncOperations.addHandler(RawProxyHandler(port: upstreamPort))
            } else {
                try ch.pipeline.syncOperations.configureHTTPServerPipeline()
                try ch.pipeline.syncOperations.addHandler(ProxyHandler(port: upstreamPort))
            }
        }
    }
    .bind(host: "127.0.0.1", port: listen).wait()
try server.closeFuture.wait()
