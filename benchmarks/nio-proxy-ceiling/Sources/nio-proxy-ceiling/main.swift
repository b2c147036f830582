// A measuring stick, not product code: the least an HTTP/1.1 reverse proxy written directly
// on Swift NIO does per request (parse the request, add X-Forwarded-For, forward on one kept-
// alive upstream connection per client connection, relay the response parts), with nothing
// else. scripts/bench-proxy.sh --ceiling runs it beside nginx, HAProxy and Rampart, to show
// how much of Rampart's gap to nginx belongs to the platform and how much to Rampart.
//
// Usage: nio-proxy-ceiling LISTEN_PORT UPSTREAM_PORT THREADS
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

let args = CommandLine.arguments
let listen = Int(args[1])!, upstreamPort = Int(args[2])!, threads = Int(args[3])!
let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
let server = try ServerBootstrap(group: group)
    .serverChannelOption(ChannelOptions.backlog, value: 1024)
    .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { ch in
        ch.eventLoop.makeCompletedFuture {
            try ch.pipeline.syncOperations.configureHTTPServerPipeline()
            try ch.pipeline.syncOperations.addHandler(ProxyHandler(port: upstreamPort))
        }
    }
    .bind(host: "127.0.0.1", port: listen).wait()
try server.closeFuture.wait()
