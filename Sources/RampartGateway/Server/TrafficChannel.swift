import HummingbirdCore
import HummingbirdHTTP2
import Logging
import NIOCore
import NIOSSL
import NIOTLS

/// The traffic listener's connections: HTTP/1.1 and HTTP/2 on one port.
///
/// Without TLS, the first bytes decide: the HTTP/2 connection preface (RFC 9113 §3.4, "prior
/// knowledge" h2c) selects HTTP/2, anything else HTTP/1.1. With TLS, ALPN decides ("h2" or
/// "http/1.1", HTTP/1.1 when the client offers neither). Either way the same responder, and
/// so the same phases, serve the request.
///
/// HTTP/1.1 connections also carry a ``TunnelSwitch`` in front of the parser, so a forwarded
/// protocol upgrade (WebSocket) can turn the connection into a byte tunnel; on a connection the
/// direct path serves first, it joins when the full pipeline takes over (upgrades are never
/// served directly).
struct TrafficChannel: ServerChildChannel {
    enum Negotiated: Sendable {
        case http1(HTTP1Channel.Value)
        /// HTTP/1.1 served by ``DirectForwarding``: the future completes when it hands the
        /// connection over (never, if every request on it was served directly); the full
        /// pipeline is then set up by the connection's task, so it is always run.
        case http1Direct(EventLoopFuture<Void>, NIOLoopBound<DirectForwarding>)
        case http2(HTTP2Channel.Value)
    }

    struct Value: ServerChildChannelValue {
        let negotiated: EventLoopFuture<Negotiated>
        let channel: any Channel
    }

    struct Options: Sendable {
        var http2 = true
        var tls: NIOSSLContext?
        /// How long a new connection may stay silent before its protocol is known.
        var prefaceTimeout: TimeAmount = .seconds(10)
        /// The phases for the direct path on HTTP/1 connections; nil, or `proxy.directPath`
        /// off in the configuration in force when a connection opens: every request on it goes
        /// through the Hummingbird pipeline.
        var direct: DirectPhases?
    }

    let http1: HTTP1Channel
    let http2: HTTP2Channel
    let options: Options

    init(responder: @escaping HTTPChannelHandler.Responder, http1: HTTP1Channel.Configuration, http2: HTTP2ChannelConfiguration,
         options: Options) {
        self.http1 = HTTP1Channel(responder: responder, configuration: http1)
        self.http2 = HTTP2Channel(responder: responder, configuration: http2)
        self.options = options
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let sync = channel.pipeline.syncOperations
            let configure: @Sendable (Bool) -> EventLoopFuture<Negotiated> = { useHTTP2 in
                if useHTTP2 { return self.http2.setup(channel: channel, logger: logger).map { .http2($0) } }
                do {
                    // Read per connection, so that a reload turning it on or off applies to
                    // the connections that open after it.
                    if let direct = options.direct, direct.live.snapshot.configuration.proxy.directPath {
                        // The tunnel switch (for upgrades, which only the full pipeline serves)
                        // joins at hand-over: until then no byte passes an idle handler.
                        let requested = channel.eventLoop.makePromise(of: Void.self)
                        let handler = DirectForwarding(phases: direct, handOverRequested: requested)
                        try channel.pipeline.syncOperations.addHandler(handler)
                        return channel.eventLoop.makeSucceededFuture(.http1Direct(requested.futureResult,
                                                                                  NIOLoopBound(handler, eventLoop: channel.eventLoop)))
                    }
                    try channel.pipeline.syncOperations.addHandler(TunnelSwitch())
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
                return self.http1.setup(channel: channel, logger: logger).map { .http1($0) }
            }
            if let tls = options.tls {
                try sync.addHandler(NIOSSLServerHandler(context: tls))
                let alpn = NIOTypedApplicationProtocolNegotiationHandler<Negotiated> { result in
                    switch result {
                    case .negotiated("h2") where options.http2: return configure(true)
                    case .negotiated("http/1.1"), .fallback: return configure(false)
                    case .negotiated(let other):
                        return channel.close().flatMapThrowing { throw UnexpectedProtocol(name: other) }
                    }
                }
                try sync.addHandler(alpn)
                return Value(negotiated: alpn.protocolNegotiationResult, channel: channel)
            }
            if !options.http2 { return Value(negotiated: configure(false), channel: channel) }
            let sniffer = PrefaceSniffer(timeout: options.prefaceTimeout, configure: configure)
            try sync.addHandler(sniffer)
            return Value(negotiated: sniffer.result.futureResult, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.negotiated.get() {
            case .http1(let connection): await http1.handle(value: connection, logger: logger)
            case .http1Direct(let requested, let direct):
                guard (try? await requested.get()) != nil else { return }
                let connection = try await value.channel.eventLoop.flatSubmit { () -> EventLoopFuture<HTTP1Channel.Value> in
                    do {
                        try value.channel.pipeline.syncOperations.addHandler(TunnelSwitch())
                    } catch {
                        return value.channel.eventLoop.makeFailedFuture(error)
                    }
                    return self.http1.setup(channel: value.channel, logger: logger).map { connection in
                        direct.value.resume()
                        return connection
                    }
                }.get()
                await http1.handle(value: connection, logger: logger)
            case .http2(let connection): await http2.handle(value: connection, logger: logger)
            }
        } catch {
            logger.debug("connection closed before its protocol was known", metadata: ["error": "\(error)"])
            try? await value.channel.close()
        }
    }

    struct UnexpectedProtocol: Error { let name: String }

    /// The ALPN names this listener offers.
    static func applicationProtocols(http2: Bool) -> [String] { http2 ? ["h2", "http/1.1"] : ["http/1.1"] }
}

/// Reads just enough of a new cleartext connection to tell the HTTP/2 preface from an
/// HTTP/1 request line, configures the pipeline for that protocol, then replays what it read
/// and leaves. A connection that says nothing within the timeout is closed.
final class PrefaceSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    private let timeout: TimeAmount
    private let configure: @Sendable (Bool) -> EventLoopFuture<TrafficChannel.Negotiated>
    private var buffered: ByteBuffer?
    private var timer: Scheduled<Void>?
    private var deciding = false
    private var promise: EventLoopPromise<TrafficChannel.Negotiated>?

    var result: EventLoopPromise<TrafficChannel.Negotiated> { promise! }

    init(timeout: TimeAmount, configure: @escaping @Sendable (Bool) -> EventLoopFuture<TrafficChannel.Negotiated>) {
        self.timeout = timeout
        self.configure = configure
    }

    func handlerAdded(context: ChannelHandlerContext) {
        promise = context.eventLoop.makePromise()
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) {
            loopBound.value.close(promise: nil)
        }
        if context.channel.isActive { context.read() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        promise?.fail(ChannelError.ioOnClosedChannel)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        promise?.fail(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if buffered == nil { buffered = bytes } else { buffered!.writeBuffer(&bytes) }
        guard !deciding, let seen = buffered else { return }
        let count = min(seen.readableBytes, Self.preface.count)
        let matches = seen.readableBytesView.prefix(count).elementsEqual(Self.preface.prefix(count))
        if matches && count < Self.preface.count { return }  // could still be the preface
        decide(context: context, http2: matches)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise?.fail(error)
        promise = nil
        context.close(promise: nil)
    }

    private func decide(context: ChannelHandlerContext, http2: Bool) {
        deciding = true
        timer?.cancel()
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        configure(http2).hop(to: context.eventLoop).whenComplete { outcome in
            let context = loopBound.value
            let sniffer = handler.value
            guard let promise = sniffer.promise else { return }
            sniffer.promise = nil
            switch outcome {
            case .success(let negotiated):
                promise.succeed(negotiated)
                if let bytes = sniffer.buffered {
                    sniffer.buffered = nil
                    context.fireChannelRead(NIOAny(bytes))
                    context.fireChannelReadComplete()
                }
                context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            case .failure(let error):
                promise.fail(error)
                context.close(promise: nil)
            }
        }
    }
}
