import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import RampartBalancing
import RampartCore
import Synchronization

// The proxy's HTTP/1.1 client for upstream instances.
//
// Connections are kept per event loop and per instance, and an exchange runs on the loop of
// the request that makes it: one channel handler writes the request head as bytes, reads the
// answer out of the bytes (UpstreamResponseParser) and collects a small answer, and the request
// hears back once, with the head and the whole body. Larger answers stream with backpressure,
// as slices of the bytes received. Nothing hops to another thread.
//
//   request --(head, body)--> UpstreamConnectionHandler --> [TLS] --> socket
//      ^                              |
//      +---(head + body, or stream)---+ <-- [TLS] <-- socket

/// What the proxy sends upstream for one attempt.
struct UpstreamRequest: Sendable {
    enum Body: Sendable {
        case none
        /// In memory: sent with the head, and replayable.
        case whole(ByteBuffer)
        /// Streamed by the closure, which hands each chunk to `send`; `length` when declared.
        case stream(length: Int?, UpstreamBodySource)
    }

    var head: UpstreamRequestHead
    var body: Body
    /// Whether the upstream may see the request twice (RFC 9110 §9.2.2): then a kept connection
    /// that closes after the request went out, before any answer, is replaced too.
    var isIdempotent = false

    init(head: UpstreamRequestHead, body: Body, isIdempotent: Bool = false) {
        self.head = head
        self.body = body
        self.isIdempotent = isIdempotent
    }

    /// Whether the request may be written again on another connection.
    var isReplayable: Bool { if case .stream = body { false } else { true } }
}

/// Where the proxy's rewriting puts the fields of a request it sends upstream: NIO's headers
/// (for an upgrade, whose handshake NIO's codecs speak) or the bytes of a head.
protocol UpstreamHeaderSink {
    mutating func add(name: String, value: String)
    /// A field whose value is `bytes` (visible ASCII), lent for the call.
    mutating func add(name: String, bytes: UnsafeRawBufferPointer)
    /// Fields as the lines of a head: `Name: value` and CRLF each (see ``FieldLines``).
    mutating func add(fields lines: ByteBuffer)
}

extension UpstreamHeaderSink {
    mutating func add(name: String, bytes: UnsafeRawBufferPointer) {
        add(name: name, value: String(decoding: bytes, as: UTF8.self))
    }

    mutating func add(fields lines: ByteBuffer) {
        for line in String(buffer: lines).split(separator: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            add(name: String(line[..<colon]), value: String(line[line.index(colon, offsetBy: 2)...]))
        }
    }
}

extension HTTPHeaders: UpstreamHeaderSink {}

/// A request head as it goes upstream, written as the bytes that are sent as fields are added
/// (`METHOD target HTTP/1.1`, then `Name: value` lines), so that nothing is collected only to be
/// copied out again. `UpstreamRequest.framed()` adds the framing fields and ends it with the blank
/// line; the connection then writes the bytes as they are, on each attempt.
struct UpstreamRequestHead: UpstreamHeaderSink, Sendable {
    let method: HTTPMethod
    /// The request line and the fields so far; the blank line too once ended.
    private(set) var bytes: ByteBuffer
    private(set) var isEnded = false

    /// - Parameter reusing: a buffer to write into, when its storage is no longer shared (see
    ///   `ByteBuffer.clear(minimumCapacity:)`); else one is allocated.
    init(method: HTTPMethod, uri: String, capacity: Int = 1024, reusing buffer: consuming ByteBuffer? = nil) {
        self.method = method
        // Taken out of the parameter, so that the parameter no longer holds it and the storage
        // is unshared when the caller's was (`if var` would copy it, and `clear` then allocate).
        if var kept = buffer.take() {
            kept.clear(minimumCapacity: capacity)
            bytes = kept
        } else {
            bytes = ByteBufferAllocator().buffer(capacity: capacity)
        }
        bytes.writeRequestLine(method: method.rawValue, target: uri)
    }

    mutating func add(name: String, value: String) {
        precondition(!isEnded, "a field added to an ended head")
        bytes.writeField(name: name, value: value)
    }

    /// Copied into the head as they are.
    mutating func add(fields lines: ByteBuffer) {
        precondition(!isEnded, "a field added to an ended head")
        bytes.writeImmutableBuffer(lines)
    }

    /// Copied into the head as they are, with no string made of them.
    mutating func add(name: String, bytes value: UnsafeRawBufferPointer) {
        precondition(!isEnded, "a field added to an ended head")
        bytes.writeField(name: name, value: value)
    }

    /// The blank line: no field follows.
    mutating func end() {
        guard !isEnded else { return }
        isEnded = true
        bytes.writeStaticString("\r\n")
    }
}

/// Produces a streamed request body: calls `send` with each chunk in order, and returns at its end.
typealias UpstreamBodySource = @Sendable (_ send: @Sendable (ByteBuffer) async throws -> Void) async throws -> Void

/// An upstream's answer.
struct UpstreamResponse: Sendable {
    enum Body: Sendable {
        /// Read to its end already.
        case whole(ByteBuffer)
        /// Still arriving; reading it drives the connection. Dropping it unread closes the connection.
        case stream(UpstreamBodyStream)
    }

    /// The upstream's head as it arrived (see ``UpstreamHead``).
    let upstreamHead: UpstreamHead
    let body: Body

    init(head: UpstreamHead, body: Body) {
        self.upstreamHead = head
        self.body = body
    }

    /// The upstream's head, every field as it was sent: made on each call.
    var head: HTTPResponse { upstreamHead.response }

    /// The head and the body, moved out of the response rather than copied.
    consuming func parts() -> (UpstreamHead, Body) { (upstreamHead, body) }
}

typealias UpstreamBodyStream = NIOThrowingAsyncSequenceProducer<
    ByteBuffer, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, UpstreamBodyDemand
>

/// Who hears how an exchange went: a task awaiting a promise, or (the direct path, with no task
/// and no future) an object called on the connection's loop.
enum UpstreamReply {
    case promise(EventLoopPromise<UpstreamResponse>)
    case target(any UpstreamReplyTarget)

    func succeed(_ response: consuming UpstreamResponse) {
        switch self {
        case .promise(let promise): promise.succeed(consume response)
        case .target(let target): target.upstreamReplied(.success(consume response))
        }
    }

    func fail(_ error: any Error) {
        switch self {
        case .promise(let promise): promise.fail(error)
        case .target(let target): target.upstreamReplied(.failure(error))
        }
    }
}

/// Hears the outcome of an exchange begun with ``UpstreamClient/begin(_:to:on:fresh:headDeadline:reply:)``,
/// on the connection's loop: an object the caller has already, so a request costs no closure.
protocol UpstreamReplyTarget: AnyObject {
    func upstreamReplied(_ result: consuming Result<UpstreamResponse, any Error>)
}

/// HTTP/1.1 exchanges with upstream instances over kept-alive connections, one pool per event
/// loop. Every method that touches a pool runs on that pool's loop.
final class UpstreamClient: Sendable {
    struct Settings: Sendable {
        /// Connecting, TLS handshake excluded.
        var connectTimeout: TimeAmount = .seconds(2)
        /// Longest silence while an answer is expected.
        var idleTimeout: TimeAmount = .seconds(60)
        /// A kept-alive connection unused this long is closed.
        var keepAliveTimeout: TimeAmount = .seconds(60)
        /// Unused connections kept per loop and instance; more are closed.
        var maxIdlePerInstance = 256
        /// Answers declaring at most this many bytes are read whole before the caller hears back.
        var bufferedBodyLimit = ForwardPhase.bufferedBodyLimit
    }

    let settings: Settings
    private let loops = Mutex<[ObjectIdentifier: NIOLoopBoundBox<LoopConnections>]>([:])
    private let tls: @Sendable () throws -> NIOSSLContext

    init(settings: Settings, tls: @escaping @Sendable () throws -> NIOSSLContext = { try UpstreamTLS.shared.context() }) {
        self.settings = settings
        self.tls = tls
    }

    /// Sends `request` to `instance` on a connection of `eventLoop` and returns its answer once the
    /// head has arrived (or, for a small answer, the whole of it). `headDeadline` bounds the wait
    /// for the head. A kept-alive connection the upstream had closed meanwhile is replaced once,
    /// when the request can be written again.
    /// `cancellation` calls the exchange off while its answer's head is awaited.
    func execute(_ request: UpstreamRequest, to instance: UpstreamURL, on eventLoop: any EventLoop,
                 headDeadline: NIODeadline, cancellation: UpstreamCancellation? = nil) async throws -> UpstreamResponse {
        let pool = connections(on: eventLoop)
        let framed = request.framed()
        do {
            return try await exchange(framed, to: instance, pool: pool, fresh: false, headDeadline: headDeadline, cancellation: cancellation)
        } catch let error as StaleConnection {
            guard error.allowsNewConnection(for: request) else { throw error.failure }
        }
        do {
            return try await exchange(framed, to: instance, pool: pool, fresh: true, headDeadline: headDeadline, cancellation: cancellation)
        } catch let error as StaleConnection {
            throw error.failure
        }
    }

    /// One attempt of `execute` without a task or a future, for a request framed already whose
    /// body is absent or in memory: called on the loop of `loop` (see ``connections(of:)``, looked
    /// up once by a caller that starts many exchanges there), where `reply` hears the answer,
    /// possibly before this returns. On a kept-alive connection unless `fresh`; a kept one found
    /// stale fails with ``StaleConnection``, and the caller decides whether to try once more on a
    /// new one, as `execute` does. The exchange begun is returned (or its future, while the new
    /// connection opens), for the caller to call off if its client goes away.
    func begin(_ request: UpstreamRequest, to instance: UpstreamURL, on loop: LoopHandle, fresh: Bool, headDeadline: NIODeadline,
               reply: any UpstreamReplyTarget) -> Begun {
        precondition(request.isReplayable && request.head.isEnded, "begin takes a framed request with its body in memory")
        return begin(request, to: instance, pool: loop.box, fresh: fresh, headDeadline: headDeadline, reply: .target(reply))
    }

    /// The upstream connections of one event loop, and its turn (flushes and time).
    struct LoopHandle {
        fileprivate let box: NIOLoopBoundBox<LoopConnections>

        /// `pool.select(for:at:)` from the loop's view of the pool (see `Pool.SelectionView`).
        /// Called on the loop.
        func select(from pool: Pool, for input: SelectionInput, at now: Instant) -> Instance? {
            box.value.select(from: pool, for: input, at: now)
        }
        /// The loop's flushes at the end of each turn and its time (see ``LoopTurn``), which its
        /// upstream connections use: a client connection on the loop writing there too joins them.
        let turn: LoopTurn
    }

    /// Closes every unused connection; connections in use close when their exchange ends.
    func shutdown() async {
        let all = loops.withLock { loops in
            defer { loops = [:] }
            return Array(loops.values)
        }
        for pool in all {
            try? await pool.eventLoop.submit { pool.value.shutdown() }.get()
        }
    }

    /// The connections of `eventLoop`, for ``begin(_:to:on:fresh:headDeadline:reply:)``:
    /// looked up under a lock shared by every loop, so a caller keeps the handle rather than
    /// asking per request. Called on the loop.
    func connections(of eventLoop: any EventLoop) -> LoopHandle {
        let box = connections(on: eventLoop)
        return LoopHandle(box: box, turn: box.value.turn)
    }

    // MARK: Connections

    private func connections(on eventLoop: any EventLoop) -> NIOLoopBoundBox<LoopConnections> {
        let key = ObjectIdentifier(eventLoop)
        return loops.withLock { loops in
            if let found = loops[key] { return found }
            let made = NIOLoopBoundBox.makeBoxSendingValue(LoopConnections(maxIdle: settings.maxIdlePerInstance, eventLoop: eventLoop),
                                                    eventLoop: eventLoop)
            loops[key] = made
            return made
        }
    }

    /// One attempt: on a kept-alive connection unless `fresh` (or none is left), else a new one.
    private func exchange(_ request: UpstreamRequest, to instance: UpstreamURL, pool: NIOLoopBoundBox<LoopConnections>, fresh: Bool,
                          headDeadline: NIODeadline, cancellation: UpstreamCancellation?) async throws -> UpstreamResponse {
        let eventLoop = pool.eventLoop
        if cancellation?.isCancelled == true { throw CancellationError() }
        let promise = eventLoop.makePromise(of: UpstreamResponse.self)
        // Usually already on the loop: request tasks run on the event loops.
        let begun = eventLoop.inEventLoop
            ? begin(request, to: instance, pool: pool, fresh: fresh, headDeadline: headDeadline, reply: .promise(promise))
            : try await eventLoop.submit {
                self.begin(request, to: instance, pool: pool, fresh: fresh, headDeadline: headDeadline, reply: .promise(promise))
            }.get()
        let begunExchange = try await begun.get()
        cancellation?.track(begunExchange)
        let connection = begunExchange.connection, exchange = begunExchange.number
        if case .stream(_, let source) = request.body {
            Task {
                do {
                    try await source { chunk in
                        try await eventLoop.flatSubmit { connection.value.sendBody(chunk, exchange: exchange) }.get()
                    }
                    try await eventLoop.flatSubmit { connection.value.endBody(exchange: exchange) }.get()
                } catch {
                    eventLoop.execute { connection.value.uploadFailed(error, exchange: exchange) }
                }
            }
        }
        return try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: {
            eventLoop.execute { connection.value.cancel(exchange: exchange) }
        }
    }

    /// An exchange begun at once on a kept-alive connection, or once a new one is connected:
    /// its connection and number.
    enum Begun: Sendable {
        case now(UpstreamExchange)
        case connecting(EventLoopFuture<UpstreamExchange>)

        func get() async throws -> UpstreamExchange {
            switch self {
            case .now(let exchange): exchange
            case .connecting(let future): try await future.get()
            }
        }
    }

    /// Starts an exchange, on a kept-alive connection unless `fresh` (or none is left), else on a
    /// new one; `reply` gets the answer, or the failure to connect. Runs on the pool's loop.
    private func begin(_ request: UpstreamRequest, to instance: UpstreamURL, pool: NIOLoopBoundBox<LoopConnections>, fresh: Bool,
                       headDeadline: NIODeadline, reply: UpstreamReply) -> Begun {
        let eventLoop = pool.eventLoop
        let key = instance.origin
        if !fresh, let handler = pool.value.take(key) {
            let exchange = handler.begin(head: request.head, body: request.body, headDeadline: headDeadline, reply: reply)
            return .now(UpstreamExchange(connection: NIOLoopBound(handler, eventLoop: eventLoop), number: exchange))
        }
        let handler = NIOLoopBoundBox.makeBoxSendingValue(UpstreamConnectionHandler(key: key, settings: settings, pool: pool), eventLoop: eventLoop)
        let connected: EventLoopFuture<any Channel>
        do {
            let tls = instance.scheme == .https ? try self.tls() : nil
            connected = UpstreamDialer.open(to: instance, on: eventLoop, timeout: settings.connectTimeout, tls: tls) { sync in
                try sync.addHandler(handler.value)
            }
        } catch {
            connected = eventLoop.makeFailedFuture(error)
        }
        let reply = NIOLoopBound(reply, eventLoop: eventLoop)
        let begun = connected.hop(to: eventLoop).map { _ in
            UpstreamExchange(connection: NIOLoopBound(handler.value, eventLoop: eventLoop),
                             number: handler.value.begin(head: request.head, body: request.body, headDeadline: headDeadline, reply: reply.value))
        }
        begun.whenFailure { reply.value.fail($0) }
        return .connecting(begun)
    }
}

extension UpstreamRequest {
    /// The request as it is written: framing fields added for its body (the proxy's rewriting
    /// never passes the client's on), and the head ended. A request framed already is returned
    /// as it is.
    consuming func framed() -> UpstreamRequest {
        // Consumed, so that ending the head writes into its bytes rather than a copy of them.
        var framed = self
        guard !framed.head.isEnded else { return framed }
        switch framed.body {
        case .none:
            // A body-carrying method says it has none; the others stay as they are.
            switch framed.head.method {
            case .POST, .PUT, .PATCH: framed.head.add(name: "content-length", value: "0")
            default: break
            }
        case .whole(let bytes):
            framed.head.add(name: "content-length", value: String(bytes.readableBytes))
        case .stream(let length?, _):
            framed.head.add(name: "content-length", value: String(length))
        case .stream(nil, _):
            framed.head.add(name: "transfer-encoding", value: "chunked")
        }
        framed.head.end()
        return framed
    }
}

/// An exchange begun on an upstream connection: the connection and the exchange's number on it.
/// A struct rather than a tuple, so that copying and destroying it are not done through the
/// runtime's generic tuple witnesses on every request.
struct UpstreamExchange: Sendable {
    let connection: NIOLoopBound<UpstreamConnectionHandler>
    let number: Int

    /// Calls the exchange off while its answer's head is awaited (the client went away). On the
    /// connection's loop.
    func callOff() {
        connection.value.cancel(exchange: number)
    }
}

/// Calls off the exchange of a request whose client went away, while its answer's head is
/// awaited: made per request, told of each attempt's exchange by the client, cancelled by
/// whoever sees the client go (from any thread).
final class UpstreamCancellation: Sendable {
    private struct State {
        /// The connection and number of the exchange in progress (the latest attempt's).
        var current: UpstreamExchange?
        var isCancelled = false
    }

    private let state = Mutex(State())

    init() {}

    var isCancelled: Bool { state.withLock { $0.isCancelled } }

    func cancel() {
        let current = state.withLock { state in
            state.isCancelled = true
            return state.current
        }
        if let current { Self.callOff(current) }
    }

    /// Notes the exchange in progress, and calls it off at once when the client is gone already.
    fileprivate func track(_ exchange: UpstreamExchange) {
        let cancelled = state.withLock { state in
            state.current = exchange
            return state.isCancelled
        }
        if cancelled { Self.callOff(exchange) }
    }

    private static func callOff(_ exchange: UpstreamExchange) {
        if exchange.connection.eventLoop.inEventLoop {
            exchange.callOff()
        } else {
            exchange.connection.eventLoop.execute { exchange.callOff() }
        }
    }
}

/// The unused connections of one event loop, by instance origin, most recently used first, and
/// the loop's flushes and time (``LoopTurn``).
final class LoopConnections {
    /// The unused connections to one origin, most recently used last. A reference, so taking
    /// and keeping one reads the dictionary rather than modifying it in place (which costs a
    /// heap-allocated accessor frame per call).
    private final class Stack {
        var handlers: [UpstreamConnectionHandler] = []
    }

    private var idle: [String: Stack] = [:]
    /// The origin looked up last and its connections: most loops serve one origin, or a few in
    /// turn, and a key held in the same storage compares without reading its bytes, where the
    /// dictionary would hash them on every exchange.
    private var lastKey = ""
    private var lastStack: Stack?
    private let maxIdle: Int
    private(set) var isShutDown = false
    /// Shared by the loop's upstream connections and the client connections that use them.
    let turn: LoopTurn
    /// The loop's views of the pools it has selected from, one per pool: a loop serves one pool
    /// or a few, found by a look down this list. The views of pools a reload dropped leave it
    /// when the loop next meets a pool it has no view of (a pool added, or added again).
    private var poolViews: [Pool.SelectionView?] = []

    init(maxIdle: Int, eventLoop: any EventLoop) {
        self.maxIdle = maxIdle
        turn = LoopTurn(eventLoop: eventLoop)
    }

    private func stack(for key: String) -> Stack? {
        if let lastStack, key == lastKey { return lastStack }
        guard let found = idle[key] else { return nil }
        (lastKey, lastStack) = (key, found)
        return found
    }

    func select(from pool: Pool, for input: SelectionInput, at now: Instant) -> Instance? {
        for index in poolViews.indices where poolViews[index]?.isView(of: pool) == true {
            return pool.select(for: input, at: now, view: &poolViews[index])
        }
        poolViews.removeAll { $0?.isRetired ?? true }
        poolViews.append(nil)
        return pool.select(for: input, at: now, view: &poolViews[poolViews.count - 1])
    }

    func take(_ key: String) -> UpstreamConnectionHandler? {
        guard let stack = stack(for: key) else { return nil }
        while let handler = stack.handlers.popLast() {
            if handler.isUsable { return handler }
        }
        return nil
    }

    /// Keeps a connection whose exchange ended cleanly, or closes it when there is no room.
    func put(_ handler: UpstreamConnectionHandler) {
        guard !isShutDown else { return handler.close() }
        let kept: Stack
        if let found = stack(for: handler.key) {
            kept = found
        } else {
            kept = Stack()
            idle[handler.key] = kept
        }
        guard kept.handlers.count < maxIdle else { return handler.close() }
        kept.handlers.append(handler)
    }

    func remove(_ handler: UpstreamConnectionHandler) {
        stack(for: handler.key)?.handlers.removeAll { $0 === handler }
    }

    func shutdown() {
        isShutDown = true
        let all = idle.values.flatMap(\.handlers)
        idle = [:]
        lastStack = nil
        for handler in all { handler.close() }
    }
}

/// The failure of an exchange on a kept-alive connection that the upstream closed before
/// answering: worth one more try on a new connection when that is safe.
struct StaleConnection: Error {
    let failure: GatewayError
    /// Found closed before the request was written.
    var unsent = false

    /// Whether a new connection may be tried, once: when the request never left, or when the
    /// upstream may see it twice (it may have read it before closing).
    func allowsNewConnection(for request: UpstreamRequest) -> Bool {
        request.isReplayable && (unsent || request.isIdempotent)
    }
}

/// One upstream connection: runs one exchange at a time and goes back to its loop's pool after a
/// clean end. Confined to its channel's event loop.
final class UpstreamConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private enum State {
        /// Unused, in the pool (or about to be used for the first time).
        case idle
        case awaitingHead(UpstreamReply)
        /// Reading a small answer whole (its head and body so far in `collectedHead` and `collectedBody`).
        case collecting(UpstreamReply)
        case streaming(UpstreamBodyStream.Source)
        case closed
    }

    let key: String
    private let settings: UpstreamClient.Settings
    private let pool: NIOLoopBoundBox<LoopConnections>
    private let turn: LoopTurn
    private var context: ChannelHandlerContext?
    private var state = State.idle
    /// The head and body so far of the answer being collected: beside the state, so that the
    /// state's payload is not copied at every step of the answer, and apart, so that each is
    /// changed in place and moved out at the end rather than copied.
    private var collectedHead: UpstreamHead?
    private var collectedBody = ByteBuffer()
    /// Whether this connection has carried an exchange already.
    private var used = false
    /// Numbers the exchanges, so a late call about an earlier one is told apart.
    private var exchange = 0
    private var requestEnded = false
    private var keepAlive = true
    /// The request body goes in chunks (its length unknown).
    private var chunkedUpload = false
    // The parser and its bytes are used on the connection's loop only, by `channelRead`, which
    // never runs inside itself and calls nothing while it holds either (each step is handed on
    // after `next` returns): unchecked, so that every read does not pay the runtime's check
    // that two accesses do not overlap.
    @exclusivity(unchecked)
    private var parser = UpstreamResponseParser()
    /// Bytes received and not yet parsed.
    @exclusivity(unchecked)
    private var inbound: ByteBuffer?
    private var lastActivity = NIODeadline.now()
    /// When the answer's head must have arrived, while one is awaited.
    private var headDeadline: NIODeadline?
    /// The connection's one timer (see `armSilenceTimer`).
    private var silenceTimer = LazyDeadlineTimer()
    /// A read the consumer of a streamed body has no room for yet.
    /// The channel reads as bytes arrive (NIO's `autoRead`): off while the consumer of a
    /// streamed body has no room. Inbound only, the handler does not sit in the path of each
    /// read the channel asks for, as it would to hold one back.
    private var reading = true

    init(key: String, settings: UpstreamClient.Settings, pool: NIOLoopBoundBox<LoopConnections>) {
        self.key = key
        self.settings = settings
        self.pool = pool
        turn = pool.value.turn
    }

    /// Idle and not closed: a connection the upstream closed is out of the pool already (its
    /// `channelInactive` fails it, and a failed idle connection removes itself), and `begin`
    /// still asks the channel before writing.
    var isUsable: Bool {
        guard case .idle = state else { return false }
        return context != nil
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        // The first exchange may have begun already (the connect future completes first) and
        // set the timer for its head.
        let expiry = NIODeadline.now() + settings.idleTimeout
        coverSilence(until: expiry)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastActivity = turn.now()
        var bytes = unwrapInboundIn(data)
        if inbound == nil || inbound!.readableBytes == 0 {
            inbound = bytes
        } else {
            inbound!.writeBuffer(&bytes)
        }
        do {
            while inbound != nil, let event = try parser.next(&inbound!) {
                received(event, context: context)
            }
        } catch {
            return fail(GatewayError(.upstreamReset, origin: .upstream, "the upstream sent a malformed response: \(error)"))
        }
        if inbound?.readableBytes == 0 { inbound = nil }
    }

    /// One step of the answer.
    private func received(_ event: consuming UpstreamResponseParser.Event, context: ChannelHandlerContext) {
        switch consume event {
        case .head(let head, let declared, let keepAlive):
            guard case .awaitingHead(let reply) = state else { return outOfTurn() }
            headDeadline = nil
            self.keepAlive = keepAlive
            if let declared, declared <= settings.bufferedBodyLimit {
                state = .collecting(reply)
                collectedHead = consume head
                collectedBody = ByteBuffer()
            } else {
                let made = UpstreamBodyStream.makeSequence(
                    backPressureStrategy: .init(lowWatermark: 2, highWatermark: 8), finishOnDeinit: false,
                    delegate: UpstreamBodyDemand(handler: NIOLoopBound(self, eventLoop: context.eventLoop), exchange: exchange))
                state = .streaming(made.source)
                reply.succeed(UpstreamResponse(head: head, body: .stream(made.sequence)))
            }
        case .body(var bytes):
            switch state {
            case .collecting:
                // A body that arrived whole stays the slice of the bytes read; one in pieces is
                // gathered in place (no copy of what is gathered).
                guard collectedHead != nil else { return outOfTurn() }
                if collectedBody.readableBytes == 0 { collectedBody = bytes } else { collectedBody.writeBuffer(&bytes) }
            case .streaming(let source):
                if case .stopProducing = source.yield(bytes) { setReading(false) }
            case .idle, .awaitingHead, .closed:
                outOfTurn()
            }
        case .end:
            switch state {
            case .collecting(let reply):
                guard let head = collectedHead.take() else { return outOfTurn() }
                let body = collectedBody
                collectedBody = ByteBuffer()
                state = .idle
                reply.succeed(UpstreamResponse(head: consume head, body: .whole(consume body)))
                finishExchange()
            case .streaming(let source):
                state = .idle
                source.finish()
                finishExchange()
            case .idle, .awaitingHead, .closed:
                outOfTurn()
            }
        }
    }

    /// A part without an exchange (the upstream spoke out of turn): this connection cannot be
    /// trusted with another request.
    private func outOfTurn() {
        fail(GatewayError(.upstreamReset, origin: .upstream, "the upstream sent an unexpected response"))
    }

    func channelInactive(context: ChannelHandlerContext) {
        // An answer without a length ends with the connection.
        if let end = parser.connectionClosed() { received(end, context: context) }
        let failure = GatewayError(.upstreamReset, origin: .upstream, retryable: true, "the upstream closed the connection")
        fail(failure)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(GatewayError(.upstreamReset, origin: .upstream, retryable: true, "upstream connection error", underlying: error))
    }

    // MARK: Exchange, called on the loop by the client

    /// Starts an exchange: the head, and the body when it is in memory (a streamed one follows
    /// through `sendBody` and `endBody`). Returns the exchange's number.
    func begin(head: UpstreamRequestHead, body: UpstreamRequest.Body, headDeadline: NIODeadline,
               reply: UpstreamReply) -> Int {
        exchange += 1
        guard case .idle = state, let context, context.channel.isActive else {
            let failure = GatewayError(.upstreamReset, origin: .upstream, retryable: true, "the upstream closed the connection")
            reply.fail(used ? StaleConnection(failure: failure, unsent: true) : failure)
            return exchange
        }
        state = .awaitingHead(reply)
        requestEnded = false
        parser.expectAnswer(toHead: head.method == .HEAD)
        lastActivity = turn.now()
        self.headDeadline = headDeadline
        // Rescheduled only when the head is due before the timer fires, which on a kept-alive
        // connection is rare: no timer is made per exchange.
        coverSilence(until: headDeadline)
        precondition(head.isEnded, "a head written before it is framed")
        var out = head.bytes
        switch body {
        case .stream(let length, _):
            chunkedUpload = length == nil
        case .whole(let bytes) where bytes.readableBytes <= 16 * 1024:
            // With its head, in one write, as nginx sends a buffered body.
            out.writeImmutableBuffer(bytes)
            requestEnded = true
        case .whole(let bytes):
            context.write(NIOAny(out), promise: nil)
            out = bytes
            requestEnded = true
        case .none:
            requestEnded = true
        }
        context.write(NIOAny(out), promise: nil)
        turn.flushAtEndOfTurn(context)
        return exchange
    }

    /// Writes a chunk of a streamed request body; completes when it has been written, so the
    /// body is read no faster than the upstream takes it.
    func sendBody(_ chunk: ByteBuffer, exchange: Int) -> EventLoopFuture<Void> {
        guard let context, isExchanging, exchange == self.exchange else {
            return pool.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
        }
        lastActivity = .now()
        guard chunkedUpload else { return context.writeAndFlush(NIOAny(chunk)) }
        guard chunk.readableBytes > 0 else { return pool.eventLoop.makeSucceededVoidFuture() }  // would end the body
        var framed = context.channel.allocator.buffer(capacity: chunk.readableBytes + 20)
        framed.writeString(String(chunk.readableBytes, radix: 16))
        framed.writeStaticString("\r\n")
        framed.writeImmutableBuffer(chunk)
        framed.writeStaticString("\r\n")
        return context.writeAndFlush(NIOAny(framed))
    }

    func endBody(exchange: Int) -> EventLoopFuture<Void> {
        guard let context, isExchanging, exchange == self.exchange else {
            return pool.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
        }
        lastActivity = .now()
        requestEnded = true
        guard chunkedUpload else { return pool.eventLoop.makeSucceededVoidFuture() }
        return context.writeAndFlush(NIOAny(ByteBuffer(staticString: "0\r\n\r\n")))
    }

    /// The request body could not be read to its end: the exchange fails with its reason.
    func uploadFailed(_ error: any Error, exchange: Int) {
        guard isExchanging, exchange == self.exchange else { return }
        fail(error)
    }

    /// The caller went away while waiting for the head.
    func cancel(exchange: Int) {
        if case .awaitingHead = state, exchange == self.exchange { fail(CancellationError()) }
    }

    /// The consumer of a streamed body has room again.
    func consumerDemands(exchange: Int) {
        guard exchange == self.exchange else { return }
        setReading(true)
    }

    /// The consumer of a streamed body dropped it before its end.
    func consumerLeft(exchange: Int) {
        if case .streaming = state, exchange == self.exchange { fail(CancellationError()) }
    }

    func close() {
        state = .closed
        context?.close(promise: nil)
    }

    // MARK: Private

    /// Turns the channel's reading on or off (NIO reads at once when it is turned on).
    private func setReading(_ on: Bool) {
        guard reading != on, let context else { return }
        reading = on
        // On the channel's loop, where the options can be set synchronously.
        try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: on)
    }

    private var isExchanging: Bool {
        switch state {
        case .awaitingHead, .collecting, .streaming: true
        case .idle, .closed: false
        }
    }

    /// After a complete answer: back to the pool when the connection may carry another request.
    private func finishExchange() {
        used = true
        headDeadline = nil
        // Reading resumes, so that a pooled connection hears when the upstream closes it.
        setReading(true)
        guard keepAlive, requestEnded, context != nil else { return close() }
        // `lastActivity` is the read that brought the end. An end the connection's close
        // brought has no keep-alive; a close that follows removes the connection from the pool
        // (see `fail`).
        pool.value.put(self)
    }

    /// Ends the exchange in progress, if any, with `error`, and the connection with it.
    private func fail(_ error: any Error) {
        headDeadline = nil
        let previous = state
        state = .closed
        switch previous {
        case .awaitingHead(let reply):
            // The upstream closed a kept-alive connection before answering: most likely it had
            // timed the connection out as the request went, but it may have read the request.
            if used, let failure = error as? GatewayError, failure.kind == .upstreamReset {
                reply.fail(StaleConnection(failure: failure))
            } else {
                reply.fail(error)
            }
        case .collecting(let reply):
            collectedHead = nil
            collectedBody = ByteBuffer()
            reply.fail(error)
        case .streaming(let source): source.finish(error)
        case .idle: pool.value.remove(self)
        case .closed: break
        }
        silenceTimer.cancel()
        context?.close(promise: nil)
    }

    /// One timer for the connection's whole life, rescheduled only when it fires: closes an
    /// unused connection after the keep-alive timeout, fails an exchange whose answer's head is
    /// overdue, and one whose upstream has gone silent for the idle timeout.
    private func armSilenceTimer(at deadline: NIODeadline) {
        guard let context else { return }
        silenceTimer.set(deadline, on: context.eventLoop) { [self] in silenceTimerFired() }
    }

    /// Makes sure the timer fires by `deadline`.
    private func coverSilence(until deadline: NIODeadline) {
        guard let context else { return }
        silenceTimer.cover(deadline, on: context.eventLoop, fire: { [self] in silenceTimerFired() })
    }

    private func silenceTimerFired() {
        silenceTimer.fired()
        let now = NIODeadline.now()
        // Set only while a head is awaited.
        let headDue = headDeadline ?? .distantFuture
        if now >= headDue { return fail(GatewayError(.firstByteTimeout, origin: .upstream, "the upstream did not answer in time")) }
        switch state {
        case .idle:
            let expiry = lastActivity + settings.keepAliveTimeout
            if now >= expiry { return fail(ChannelError.eof) }
            armSilenceTimer(at: expiry)
        case .awaitingHead where !requestEnded:
            // Still uploading: the upstream owes nothing yet but the head by its deadline.
            armSilenceTimer(at: min(now + settings.idleTimeout, headDue))
        case .awaitingHead, .collecting, .streaming:
            let expiry = lastActivity + settings.idleTimeout
            if now >= expiry { return fail(GatewayError(.idleTimeout, origin: .upstream, "the upstream stopped sending")) }
            armSilenceTimer(at: min(expiry, headDue))
        case .closed:
            break
        }
    }
}

/// Tells a connection when the consumer of its streamed body wants more, or has gone.
struct UpstreamBodyDemand: NIOAsyncSequenceProducerDelegate {
    let handler: NIOLoopBound<UpstreamConnectionHandler>
    let exchange: Int

    func produceMore() {
        let (handler, exchange) = (self.handler, self.exchange)
        handler.eventLoop.execute { handler.value.consumerDemands(exchange: exchange) }
    }

    func didTerminate() {
        let (handler, exchange) = (self.handler, self.exchange)
        handler.eventLoop.execute { handler.value.consumerLeft(exchange: exchange) }
    }
}

/// Opens connections to upstream instances, for exchanges and for tunnels alike.
enum UpstreamDialer {
    /// Connects to `instance` on `eventLoop` with TLS when given, and the handlers `configure`
    /// adds after it.
    static func connect(to instance: UpstreamURL, on eventLoop: any EventLoop, timeout: TimeAmount, tls: NIOSSLContext?,
                        configure: @escaping @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void) async throws -> any Channel {
        try await open(to: instance, on: eventLoop, timeout: timeout, tls: tls, configure: configure).get()
    }

    /// `connect` as a future, for callers on the event loop.
    static func open(to instance: UpstreamURL, on eventLoop: any EventLoop, timeout: TimeAmount, tls: NIOSSLContext?,
                     configure: @escaping @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void) -> EventLoopFuture<any Channel> {
        let host = instance.host
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls {
                        let name = IPAddress(host) == nil ? host : nil  // no SNI for address literals
                        try sync.addHandler(NIOSSLClientHandler(context: tls, serverHostname: name))
                    }
                    try configure(sync)
                }
            }
        return bootstrap.connect(host: host, port: instance.port)
    }
}

/// The client TLS context for `https` upstreams, made once.
final class UpstreamTLS: Sendable {
    static let shared = UpstreamTLS()
    private let made: Result<NIOSSLContext, any Error>

    private init() {
        made = Result { try NIOSSLContext(configuration: .makeClientConfiguration()) }
    }

    func context() throws -> NIOSSLContext { try made.get() }
}

