public import NIOCore
import NIOPosix
import RampartCore

/// What can go wrong talking to Redis.
public enum RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Redis answered with an error reply (`ERR ...`, `NOSCRIPT ...`, `WRONGPASS ...`).
    case server(String)
    /// No answer within the command timeout; the connection was closed.
    case timeout
    /// The connection failed or closed before the answer came.
    case connectionClosed
    /// Connecting failed (refused, unreachable, timed out, handshake refused).
    case connectFailed(String)
    /// The client is waiting before its next connection attempt; commands fail at once.
    case unavailable(String)
    /// The answer broke the protocol; the connection was closed.
    case protocolError(String)
    /// The answer was well-formed but not the kind the command gives.
    case unexpectedReply(String)
    /// The client was shut down.
    case shutdown

    public var description: String {
        switch self {
        case .server(let message): "Redis error: \(message)"
        case .timeout: "Redis did not answer in time"
        case .connectionClosed: "the connection to Redis closed"
        case .connectFailed(let reason): "cannot connect to Redis: \(reason)"
        case .unavailable(let reason): "Redis unavailable (\(reason)); waiting before reconnecting"
        case .protocolError(let message): "Redis protocol error: \(message)"
        case .unexpectedReply(let reply): "unexpected reply from Redis: \(reply)"
        case .shutdown: "the Redis client is shut down"
        }
    }

    /// The error code of a server error (`NOSCRIPT`, `WRONGPASS`, `ERR`).
    public var code: String? {
        guard case .server(let message) = self else { return nil }
        return String(message.prefix { $0 != " " })
    }
}

/// Commands written together and the promises their answers fulfil, in order.
struct RedisRequest: Sendable {
    var commands: [RESPValue]
    var promises: [EventLoopPromise<RESPValue>]
}

/// The pipeline's one handler: encodes requests, queues their promises, and fulfils them
/// in order as answers are decoded. Messages of a subscription (pushes, or RESP2
/// `message` arrays on a subscribed connection) go to `onMessage` instead. Any error or
/// close fails every outstanding promise: a connection that lost track is never reused.
final class RedisChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RedisRequest
    typealias OutboundOut = ByteBuffer

    private var cumulation: ByteBuffer?
    private let decoder = RESPDecoder()
    private var pending = CircularBuffer<EventLoopPromise<RESPValue>>(initialCapacity: 16)
    private let onMessage: (@Sendable (RedisMessage) -> Void)?

    init(onMessage: (@Sendable (RedisMessage) -> Void)? = nil) {
        self.onMessage = onMessage
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        var buffer = context.channel.allocator.buffer(capacity: 64 * request.commands.count)
        for command in request.commands { command.write(into: &buffer) }
        pending.append(contentsOf: request.promises)
        context.write(wrapOutboundOut(buffer), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if cumulation == nil {
            cumulation = incoming
        } else {
            cumulation!.writeBuffer(&incoming)
        }
        do {
            while let value = try decoder.next(from: &cumulation!) {
                deliver(value, context: context)
            }
        } catch {
            fail(RedisError.protocolError(error.message), context: context)
            return
        }
        if cumulation!.readableBytes == 0 {
            cumulation = nil
        } else if cumulation!.readerIndex > 16 * 1024 {
            cumulation!.discardReadBytes()
        }
    }

    private func deliver(_ value: RESPValue, context: ChannelHandlerContext) {
        if let onMessage, let message = RedisMessage(value) {
            onMessage(message)
            return
        }
        if case .push = value, onMessage == nil {
            return  // RESP3 out-of-band data nobody asked for (client-side caching invalidations)
        }
        guard let promise = pending.popFirst() else {
            fail(RedisError.protocolError("an answer arrived that no command was waiting for"), context: context)
            return
        }
        promise.succeed(value)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error as? RedisError ?? .connectionClosed, context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failPending(.connectionClosed)
        context.fireChannelInactive()
    }

    private func fail(_ error: RedisError, context: ChannelHandlerContext) {
        failPending(error)
        context.close(promise: nil)
    }

    private func failPending(_ error: RedisError) {
        while let promise = pending.popFirst() { promise.fail(error) }
    }
}

/// A message received on a subscription.
public struct RedisMessage: Sendable, Equatable {
    /// The channel it was published on.
    public var channel: String
    /// The pattern that matched, for pattern subscriptions.
    public var pattern: String?
    public var payload: [UInt8]

    public init(channel: String, pattern: String? = nil, payload: [UInt8]) {
        self.channel = channel
        self.pattern = pattern
        self.payload = payload
    }

    /// `message`/`pmessage` (RESP2 arrays or RESP3 pushes); nil for anything else,
    /// subscription confirmations included (those answer the SUBSCRIBE command).
    init?(_ value: RESPValue) {
        let items: [RESPValue]
        switch value {
        case .push(let values), .array(let values): items = values
        default: return nil
        }
        switch (items.first?.string, items.count) {
        case ("message"?, 3), ("smessage"?, 3):
            guard let channel = items[1].string, case .bulkString(let payload) = items[2] else { return nil }
            self.init(channel: channel, payload: payload)
        case ("pmessage"?, 4):
            guard let pattern = items[1].string, let channel = items[2].string, case .bulkString(let payload) = items[3] else { return nil }
            self.init(channel: channel, pattern: pattern, payload: payload)
        default:
            return nil
        }
    }
}

/// One TCP connection to Redis. Commands may be sent from any thread, many at once: they
/// are pipelined, and answers come back in order. A command not answered within the
/// timeout closes the connection, failing everything outstanding on it.
public final class RedisConnection: Sendable {
    let channel: any Channel
    let commandTimeout: TimeAmount

    init(channel: any Channel, commandTimeout: TimeAmount) {
        self.channel = channel
        self.commandTimeout = commandTimeout
    }

    public var isActive: Bool { channel.isActive }
    public var eventLoop: any EventLoop { channel.eventLoop }
    public var closeFuture: EventLoopFuture<Void> { channel.closeFuture }

    /// Connects, then runs the handshake: HELLO 3 (with AUTH) for RESP3, else AUTH, then
    /// SELECT when the URL names a database.
    static func connect(to endpoint: RedisConfiguration.Endpoint, configuration: RedisConfiguration, group: any EventLoopGroup,
                        onMessage: (@Sendable (RedisMessage) -> Void)? = nil) -> EventLoopFuture<RedisConnection> {
        let timeout = TimeAmount(configuration.connectTimeout.duration)
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RedisChannelHandler(onMessage: onMessage))
                }
            }
        let loop = group.next()
        return bootstrap.connect(host: endpoint.host, port: endpoint.port)
            .flatMapErrorThrowing { error in throw RedisError.connectFailed("\(endpoint.host):\(endpoint.port): \(error)") }
            .flatMap { channel in
                let connection = RedisConnection(channel: channel, commandTimeout: TimeAmount(configuration.commandTimeout.duration))
                var handshake: [RESPValue] = []
                if configuration.protocol == 3 {
                    var hello = ["HELLO", "3"]
                    if let password = endpoint.password { hello += ["AUTH", endpoint.username ?? "default", password] }
                    handshake.append(.command(hello))
                } else if let password = endpoint.password {
                    handshake.append(.command(endpoint.username.map { ["AUTH", $0, password] } ?? ["AUTH", password]))
                }
                if endpoint.database != 0 { handshake.append(.command(["SELECT", String(endpoint.database)])) }
                guard !handshake.isEmpty else { return channel.eventLoop.makeSucceededFuture(connection) }
                return connection.pipeline(handshake).flatMapThrowing { replies in
                    for reply in replies {
                        if let error = reply.serverError {
                            channel.close(promise: nil)
                            throw RedisError.connectFailed("handshake refused: \(error)")
                        }
                    }
                    return connection
                }
            }
            .hop(to: loop)
    }

    /// Sends commands in one write and answers with their replies in order; error replies
    /// are among the values (`RESPValue.error`), so one failed command does not hide the
    /// others' answers.
    public func pipeline(_ commands: [RESPValue]) -> EventLoopFuture<[RESPValue]> {
        let loop = channel.eventLoop
        let promises = commands.map { _ in loop.makePromise(of: RESPValue.self) }
        send(RedisRequest(commands: commands, promises: promises))
        return EventLoopFuture.whenAllSucceed(promises.map(\.futureResult), on: loop)
    }

    /// One command's reply (error replies as values).
    public func send(_ command: RESPValue) -> EventLoopFuture<RESPValue> {
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        send(RedisRequest(commands: [command], promises: [promise]))
        return promise.futureResult
    }

    /// A command that is answered by several replies (SUBSCRIBE answers once per channel).
    func send(_ command: RESPValue, replies: Int) -> EventLoopFuture<[RESPValue]> {
        let loop = channel.eventLoop
        let promises = (0..<replies).map { _ in loop.makePromise(of: RESPValue.self) }
        send(RedisRequest(commands: [command], promises: promises))
        return EventLoopFuture.whenAllSucceed(promises.map(\.futureResult), on: loop)
    }

    private func send(_ request: RedisRequest) {
        guard let last = request.promises.last else { return }
        let channel = self.channel
        let timer = channel.eventLoop.scheduleTask(in: commandTimeout) {
            // The answer may still come, and would be taken for the next command's.
            channel.pipeline.fireErrorCaught(RedisError.timeout)
        }
        last.futureResult.whenComplete { _ in timer.cancel() }
        channel.writeAndFlush(request).whenFailure { _ in
            for promise in request.promises { promise.fail(RedisError.connectionClosed) }
        }
    }

    public func close() -> EventLoopFuture<Void> {
        channel.close().recover { _ in }
    }
}

extension RESPValue {
    /// The message of an error reply, nil for any other value.
    public var serverError: String? {
        switch self {
        case .error(let message), .bulkError(let message): message
        default: nil
        }
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        self = .nanoseconds(duration.nanoseconds)
    }
}
