import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import RampartBalancing
import RampartCore
import ServiceLifecycle

// Protocol upgrades (WebSocket and any other `Upgrade` an upstream accepts) pass through as a
// byte tunnel: the request head is forwarded on a connection of its own, and when the upstream
// answers 101 the client's connection and that one are glued together until either closes.
//
//   client socket -> [TLS] -> TunnelSwitch -> HTTP/1 parser -> ... -> phases
//                                 |   ^
//                                 v   |
//   upstream socket -> [TLS] -> UpstreamTunnelEnd
//
// Both connections live on the same event loop, so the two handlers call each other directly.
// Each side reads only while the other can take writes, so a slow reader slows the sender down
// rather than filling memory.

/// What each end of a tunnel offers the other, on their shared event loop.
class TunnelEndpoint {
    fileprivate var context: ChannelHandlerContext?
    fileprivate var readPending = false

    /// Writes bytes from the other side toward this side's socket.
    fileprivate func send(_ bytes: ByteBuffer) { context?.write(NIOAny(bytes), promise: nil) }

    fileprivate func flush() { context?.flush() }

    fileprivate var isWritable: Bool { context?.channel.isWritable ?? false }

    /// The other side can take writes again: read what was held back.
    fileprivate func resumeReading() {
        guard readPending, let context else { return }
        readPending = false
        context.read()
    }

    fileprivate func close() { context.map(closeAfterWrites) }
}

/// Sits in front of the HTTP/1 parser of every HTTP/1 connection. Passive until a tunnel is
/// opened; from then on the client's bytes go to the upstream and never reach the parser,
/// and the upstream's bytes are written straight to the client's socket.
final class TunnelSwitch: TunnelEndpoint, ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    fileprivate var partner: UpstreamTunnelEnd?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let partner else { return context.fireChannelRead(data) }
        partner.send(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard let partner else { return context.fireChannelReadComplete() }
        partner.flush()
        readMore(context)
    }

    /// Once diverted, this handler drives reading itself: the HTTP/1 handlers behind it hold
    /// reads back while a response is in flight, and the 101 stays in flight for the tunnel's
    /// whole life.
    func read(context: ChannelHandlerContext) {
        if partner == nil { context.read() }
    }

    private func readMore(_ context: ChannelHandlerContext) {
        guard let partner else { return }
        if partner.isWritable { context.read() } else { readPending = true }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.resumeReading() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.close()
        context.fireChannelInactive()
    }

    // Called by the upstream end, on this event loop.

    fileprivate func attach(_ upstream: UpstreamTunnelEnd) {
        partner = upstream
        if let context { readMore(context) }
    }

}

/// Closes once what is already written has gone out: the last bytes one side sent before
/// closing (a WebSocket close frame, say) still reach the other.
private func closeAfterWrites(_ context: ChannelHandlerContext) {
    let channel = context.channel
    context.writeAndFlush(NIOAny(channel.allocator.buffer(capacity: 0))).whenComplete { _ in channel.close(promise: nil) }
}

/// The upstream's answer to a forwarded upgrade request.
enum TunnelHandshake: Sendable {
    /// 101: the upstream connection is ready to be glued to the client's.
    case switched(HTTPResponseHead, Tunnel)
    /// Anything else, with its body (small by nature: a refusal), to relay as it is.
    case refused(HTTPResponseHead, ByteBuffer)
}

/// An upstream connection that has switched protocols, not yet joined to a client.
struct Tunnel: Sendable {
    let channel: any Channel
    private let end: NIOLoopBound<UpstreamTunnelEnd>

    fileprivate init(channel: any Channel, end: UpstreamTunnelEnd) {
        self.channel = channel
        self.end = NIOLoopBound(end, eventLoop: channel.eventLoop)
    }

    /// Sends the client's bytes upstream from now on. Call before the 101 reaches the client.
    func divert(client: any Channel) async throws {
        let end = self.end
        try await client.eventLoop.submit {
            let tunnelSwitch = try client.pipeline.syncOperations.handler(type: TunnelSwitch.self)
            tunnelSwitch.attach(end.value)
            end.value.attach(tunnelSwitch)
        }.get()
    }

    /// Starts relaying the upstream's bytes to the client (after the 101 has been written) and
    /// returns when either side has closed. A tunnel is not a request that finishes by itself:
    /// when the gateway shuts down gracefully, or the task is cancelled, it is closed (both
    /// connections end) rather than holding shutdown up.
    func run() async {
        let end = self.end
        let channel = self.channel
        channel.eventLoop.execute { end.value.start() }
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                try? await channel.closeFuture.get()
            } onCancel: {
                channel.close(promise: nil)
            }
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
    }

    func close() { channel.close(promise: nil) }
}

/// The upstream side of a tunnel: reads the answer to the upgrade request, then relays bytes.
final class UpstreamTunnelEnd: TunnelEndpoint, ChannelDuplexHandler {
    typealias InboundIn = Any
    typealias OutboundIn = Any
    typealias OutboundOut = ByteBuffer

    private enum State {
        case awaitingHead
        case readingRefusal(HTTPResponseHead, ByteBuffer)
        case switched
        case done
    }

    static let refusalBodyLimit = 1 << 20

    private var state = State.awaitingHead
    private var client: TunnelSwitch?
    private var started = false
    private var held: [ByteBuffer] = []
    private let promise: EventLoopPromise<TunnelHandshake>
    init(promise: EventLoopPromise<TunnelHandshake>) {
        self.promise = promise
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let value = unwrapInboundIn(data)
        switch state {
        case .awaitingHead, .readingRefusal:
            guard let part = value as? HTTPClientResponsePart else { return }
            handshake(part, context: context)
        case .switched:
            // Raw reads arrive as IOData when the inbound type is Any.
            let bytes: ByteBuffer
            switch value {
            case let buffer as ByteBuffer: bytes = buffer
            case let data as IOData:
                guard case .byteBuffer(let buffer) = data else { return }
                bytes = buffer
            default: return
            }
            if started, let client { client.send(bytes) } else { held.append(bytes) }
        case .done:
            break
        }
    }

    private func handshake(_ part: HTTPClientResponsePart, context: ChannelHandlerContext) {
        switch (state, part) {
        case (.awaitingHead, .head(let head)) where head.status == .switchingProtocols:
            state = .switched
            // Bytes after the 101 belong to the new protocol: the decoder hands them on as it leaves.
            let sync = context.pipeline.syncOperations
            if let encoder = try? sync.handler(type: HTTPRequestEncoder.self) { sync.removeHandler(encoder, promise: nil) }
            if let decoder = try? sync.handler(type: ByteToMessageHandler<HTTPResponseDecoder>.self) { sync.removeHandler(decoder, promise: nil) }
            promise.succeed(.switched(head, Tunnel(channel: context.channel, end: self)))
        case (.awaitingHead, .head(let head)):
            state = .readingRefusal(head, context.channel.allocator.buffer(capacity: 0))
        case (.readingRefusal(let head, var body), .body(var bytes)):
            guard body.readableBytes + bytes.readableBytes <= Self.refusalBodyLimit else {
                state = .done
                promise.fail(RefusalTooLarge())
                context.close(promise: nil)
                return
            }
            body.writeBuffer(&bytes)
            state = .readingRefusal(head, body)
        case (.readingRefusal(let head, let body), .end):
            state = .done
            promise.succeed(.refused(head, body))
            context.close(promise: nil)
        default:
            break
        }
    }

    func read(context: ChannelHandlerContext) {
        if case .switched = state, let client, !client.isWritable {
            readPending = true
            return
        }
        context.read()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if started { client?.flush() }
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { client?.resumeReading() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch state {
        case .awaitingHead, .readingRefusal: promise.fail(ChannelError.eof)
        case .switched, .done: break
        }
        state = .done
        client?.close()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }

    // Called by the client side, on this event loop.

    fileprivate func attach(_ client: TunnelSwitch) { self.client = client }

    fileprivate func start() {
        started = true
        for bytes in held { client?.send(bytes) }
        held = []
        client?.flush()
    }

    struct RefusalTooLarge: Error {}
}

/// Opens upstream connections for upgrade requests.
enum TunnelDialer {
    /// Connects to `instance` on `eventLoop` (the client connection's), sends the request head
    /// and returns the upstream's answer.
    static func open(instance: UpstreamURL, head: HTTPRequestHead, on eventLoop: any EventLoop, connectTimeout: TimeAmount,
                     tls: NIOSSLContext?) async throws -> TunnelHandshake {
        let promise = eventLoop.makePromise(of: TunnelHandshake.self)
        let channel: any Channel
        do {
            // Bytes after the 101 belong to the new protocol: the decoder hands them on as it leaves.
            channel = try await UpstreamDialer.connect(to: instance, on: eventLoop, timeout: connectTimeout, tls: tls) { sync in
                try sync.addHandler(HTTPRequestEncoder())
                try sync.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes)))
                try sync.addHandler(UpstreamTunnelEnd(promise: promise))
            }
        } catch {
            promise.fail(error)
            throw error
        }
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        return try await promise.futureResult.get()
    }
}
