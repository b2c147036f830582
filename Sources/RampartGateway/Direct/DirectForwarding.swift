import Hummingbird
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import RampartCore
import RampartShield

/// The phases as the direct path runs them: the same phase values the Hummingbird pipeline
/// holds, called synchronously.
struct DirectPhases: Sendable {
    let live: LiveConfiguration
    let isSecure: Bool
    let record: RecordPhase
    let admit: AdmitPhase
    let endpoints: EndpointPhase
    let route: RoutePhase
    let inspect: InspectPhase
    let forward: ForwardPhase
    /// Identity (`identity:`) is configured: credentials are checked asynchronously, so every
    /// request takes the full pipeline.
    let authenticates: Bool
    let headerTimeout: TimeAmount
    let idleTimeout: TimeAmount
    let logger: Logger

    /// The route of `head` when the direct path may serve it whole: a route the phases can
    /// decide without waiting (no credentials, flags, rate limit, GraphQL guard, login counting
    /// or gateway endpoint), forwarding to a pool or answering a fixed response; nil otherwise.
    /// Has no side effects.
    func route(serving head: HTTPRequest, snapshot: GatewaySnapshot) -> RoutePhase.Matched? {
        let target = head.path ?? "/"
        guard !authenticates, !endpoints.claims(target[..<(target.utf8.firstIndex(of: UInt8(ascii: "?")) ?? target.endIndex)], snapshot: snapshot),
              let matched = RoutePhase.routeWithoutFlags(head, snapshot: snapshot) else { return nil }
        return snapshot.decidesAtOnce(matched.route) ? matched : nil
    }
}

/// The first handler of a cleartext or TLS HTTP/1 connection. Plain `GET` and `HEAD` requests
/// (see ``DirectRequestHead``) on routes the phases decide without waiting (see
/// ``DirectPhases/route(serving:snapshot:)``) are served here, on the event loop, without a
/// task: the same phases run in the same order as synchronous calls, the upstream client calls
/// back to the request's ``DirectExchange``, and the answer is written as bytes.
///
/// The first request it does not serve hands the connection over for good: the Hummingbird
/// HTTP/1 pipeline is set up behind this handler, the bytes read so far are passed to it, and
/// from then on this handler only passes bytes through. Until then it keeps the connection's
/// timers itself: a request head must arrive within the client header timeout of the
/// connection opening or the previous answer ending.
///
/// Inbound only: it writes from its own place in the pipeline, so no outbound event needs to
/// pass through it (each read the channel asks for, and each write of the full pipeline behind
/// it, would otherwise cost a step here).
final class DirectForwarding: ChannelInboundHandler, RemovableChannelHandler, DirectExchangeOwner {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private enum Mode {
        /// Waiting for (the rest of) a request head.
        case reading
        /// A request is being served; further bytes wait.
        case serving
        /// Waiting for the connection's task to set up the full pipeline; bytes wait.
        case handingOver
        /// The Hummingbird pipeline behind has the connection.
        case handedOver
        case closed
    }

    private let phases: DirectPhases
    /// Completed when this handler gives the connection up; failed when it closes first.
    let handOverRequested: EventLoopPromise<Void>
    private var mode = Mode.reading
    private var buffered: ByteBuffer?
    /// When the connection closes unless a request head has arrived; nil while one is served.
    private var headerDeadline: NIODeadline?
    /// The one timer that enforces it: serving a request schedules nothing.
    private var timer = LazyDeadlineTimer()
    private var quiescing = false
    /// The upstream exchange of the request being served, called off if the client goes away.
    private var inFlight: DirectExchange?
    /// The client closed its side of the connection (the server allows half-closure).
    private var inputClosed = false
    /// The client's address, read when the connection opens.
    private var peer: IPAddress?
    /// Hummingbird's part of each request's context (logger, endpoint path, parameters), made
    /// once for the connection and copied into each context: made per request it costs two
    /// objects (the endpoint path and its lock). The direct path never runs Hummingbird's router,
    /// the only writer of the endpoint path and parameters, so the copies stay as made.
    private var core: CoreRequestContextStorage?
    /// The upstream connections of the connection's loop, and the loop's turn: its flushes,
    /// which the answers join, and its time (see ``LoopTurn``).
    private var upstreams: UpstreamClient.LoopHandle?
    /// The buffers of the last answer and the last upstream head, written into again by the
    /// next request once the sockets have let go of them (by then they have: writes are flushed
    /// at the end of the loop's turn), so a request allocates neither. Kept only up to
    /// `keptBufferCapacity` each: an idle keep-alive connection holds at most that twice.
    private var answerBuffer: ByteBuffer?
    private var headBuffer: ByteBuffer?
    static let keptBufferCapacity = 4 * 1024
    /// The record of the connection's last request, emptied for the next one when nothing else
    /// holds it any more (see `RequestRecord.reused`).
    private var record: RequestRecord?
    /// The forwarding fields of the connection's requests, formatted once while they stay the same.
    private let forwarding = ForwardingFieldsCache()
    /// Draws the request and trace ids of the connection's requests (see `IdentifyPhase.identify`).
    private var random = RequestRandom()
    /// The metric handles the connection's last answer was counted in (see `RequestMetrics.Recent`).
    private var recentMetrics: RequestMetrics.Recent?
    /// The configuration snapshot the connection's last request used, kept while it is current.
    private var snapshot: GatewaySnapshot?
    private var autoRead = false
    /// As the channel was set up: restored for the full pipeline at hand-over.
    private var initialAutoRead = false

    /// - Parameter handOverRequested: completed when the connection needs the full pipeline:
    ///   the connection's task then sets it up and calls ``resume(context:)``.
    init(phases: DirectPhases, handOverRequested: EventLoopPromise<Void>) {
        self.phases = phases
        self.handOverRequested = handOverRequested
    }

    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        guard context.channel.isActive else { return }
        start(context)
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    /// Reads as bytes arrive (not one read request at a time, which costs two system calls
    /// per request to change the socket's interest), until too much waits unserved.
    private func start(_ context: ChannelHandlerContext) {
        peer = context.channel.remoteAddress.flatMap(IPAddress.init(socketAddress:))
        core = Self.core(for: context.channel, logger: phases.logger)
        upstreams = phases.forward.client.connections(of: context.eventLoop)
        armHeaderTimer(context, phases.headerTimeout)
        autoRead = (try? context.channel.syncOptions?.getOption(ChannelOptions.autoRead)) ?? false
        initialAutoRead = autoRead
        setAutoRead(true, context)
    }

    /// The loop's upstream connections, as looked up when the connection opened.
    private func loopUpstreams(_ context: ChannelHandlerContext) -> UpstreamClient.LoopHandle {
        upstreams ?? phases.forward.client.connections(of: context.eventLoop)
    }

    /// With a logger of the connection's own: a `Logger` is a reference to storage shared by its
    /// copies, and every request's context holds a copy, so the gateway's one logger would be an
    /// object all event loops' requests count. Setting its level (to what it is) gives the copy
    /// storage of its own.
    private static func core(for channel: any Channel, logger: Logger) -> CoreRequestContextStorage {
        var own = logger
        own.logLevel = logger.logLevel
        return CoreRequestContextStorage(source: ApplicationRequestContextSource(channel: channel, logger: own))
    }

    private func setAutoRead(_ on: Bool, _ context: ChannelHandlerContext) {
        guard autoRead != on else { return }
        autoRead = on
        context.channel.setOption(ChannelOptions.autoRead, value: on).whenFailure { _ in }
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopTimer()
        // Like nginx (proxy_ignore_client_abort off): an upstream still owing the head of an
        // answer nobody will read is not waited for.
        inFlight?.cancel()
        inFlight = nil
        if mode != .handedOver { mode = .closed }
        handOverRequested.fail(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopTimer()
        self.context = nil
        handOverRequested.fail(ChannelError.ioOnClosedChannel)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if mode == .handedOver { return context.fireChannelRead(data) }
        var bytes = unwrapInboundIn(data)
        if buffered == nil { buffered = bytes } else { buffered!.writeBuffer(&bytes) }
        if mode == .reading {
            serveNext(context)
        } else if mode == .serving, buffered!.readableBytes > currentSnapshot().configuration.proxy.limits.maxHeaderBytes.bytes {
            // A client sending ahead of its answers waits for them.
            setAutoRead(false, context)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if mode == .handedOver { return context.fireChannelWritabilityChanged() }
        guard mode == .reading, context.channel.isWritable else { return }
        setAutoRead(true, context)
        serveNext(context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if mode == .handedOver { return context.fireChannelReadComplete() }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if mode != .handedOver, case .inputClosed? = event as? ChannelEvent {
            inputClosed = true
            switch mode {
            case .reading:
                // Whatever waits is a head that cannot be completed any more.
                mode = .closed
                closeAfterWrites(context)
            case .serving:
                // Like nginx, a client that has closed its side is gone: an upstream still
                // owing the head of its answer is not waited for.
                inFlight?.cancel()
            case .handingOver, .handedOver, .closed:
                break  // passed on to the full pipeline when it takes over
            }
            return
        }
        guard mode != .handedOver, event is ChannelShouldQuiesceEvent else { return context.fireUserInboundEventTriggered(event) }
        // Shutting down: an idle connection closes now, a busy one after its answer.
        quiescing = true
        if mode == .handingOver || (mode == .reading && (buffered?.readableBytes ?? 0) == 0) { closeAfterWrites(context) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if mode == .handedOver { return context.fireErrorCaught(error) }
        context.close(promise: nil)
    }

    // MARK: Serving

    /// The configuration in force, as the next request pins it.
    private func currentSnapshot() -> GatewaySnapshot {
        let current = phases.live.snapshot(keeping: snapshot)
        if current !== snapshot { snapshot = current }
        return current
    }

    /// Serves the request head at the front of the buffered bytes, if one is complete.
    private func serveNext(_ context: ChannelHandlerContext) {
        guard mode == .reading, let bytes = buffered, bytes.readableBytes > 0 else { return }
        guard context.channel.isWritable else {
            // Answers wait to be read: the next request waits for them (channelWritabilityChanged).
            return setAutoRead(false, context)
        }
        let snapshot = currentSnapshot()
        // The two limits, read where they are: a copy of the limits would copy all of them.
        switch DirectRequestHead.parse(bytes, maxHeadBytes: snapshot.configuration.proxy.limits.maxHeaderBytes.bytes,
                                       maxTargetBytes: snapshot.configuration.proxy.limits.maxURIBytes.bytes) {
        case .incomplete:
            return
        case .declined:
            return giveUp(context)
        case .complete(let head, let length, let keepAlive):
            guard let route = phases.route(serving: head, snapshot: snapshot) else { return giveUp(context) }
            // Usually the head was all there was: the buffer is let go rather than moved past,
            // which would copy it while `bytes` still holds it.
            if length == bytes.readableBytes { buffered = nil } else { buffered!.moveReaderIndex(forwardBy: length) }
            disarm()
            mode = .serving
            serve(head, route: route, snapshot: snapshot, keepAlive: keepAlive && !quiescing, context: context)
        }
    }

    private func serve(_ head: HTTPRequest, route: RoutePhase.Matched, snapshot: GatewaySnapshot, keepAlive: Bool,
                       context: ChannelHandlerContext) {
        let started = phases.record.time.now()
        // Phases 1-8 in order; the first that answers ends the request. The context is made
        // here and lent to phases 1-6, then moves into the exchange.
        let core = self.core ?? Self.core(for: context.channel, logger: phases.logger)
        let record = RequestRecord.reused(&self.record)
        var gateway = GatewayRequestContext(core: core, channel: context.channel, peer: peer, record: record)
        if let early = answerBeforeForwarding(head, route: route, snapshot: snapshot, context: &gateway) {
            return send(early, request: head, context: gateway, started: started, keepAlive: keepAlive, channelContext: context)
        }
        // Read once, lent to the plan and moved into the exchange: one count on an object every
        // event loop's requests share, not one per use.
        let forward = phases.forward
        let plan: ForwardPlan
        do {
            plan = try ForwardPlan(head, context: gateway, phase: forward, now: started)
        } catch {
            return send(RecordPhase.answer(for: error, context: gateway), request: head, context: gateway, started: started, keepAlive: keepAlive,
                        channelContext: context)
        }
        let exchange = DirectExchange(request: head, context: consume gateway, started: started, keepAlive: keepAlive, channelContext: context,
                                      phase: consume forward, plan: consume plan, upstreams: loopUpstreams(context), forwarding: forwarding,
                                      owner: self)
        inFlight = exchange
        exchange.start(reusing: headBuffer.take())
    }

    /// Phases 1-6 on the request's context: the answer when one of them ends the request.
    private func answerBeforeForwarding(_ head: HTTPRequest, route: RoutePhase.Matched, snapshot: GatewaySnapshot,
                                        context: inout GatewayRequestContext) -> BufferedAnswer? {
        context.snapshot = snapshot
        context.state.isSecure = phases.isSecure
        if let refusal = phases.admit.admit(head, context: &context, snapshot: snapshot, hostIsValid: true) { return refusal }
        IdentifyPhase.identify(head, context: &context, snapshot: snapshot, random: &random)
        if let fixed = phases.route.apply(route, head: head, context: &context, snapshot: snapshot) { return fixed }
        return phases.inspect.inspectHead(head, context: context)
    }

    func exchangeEnded(_ exchange: DirectExchange, _ result: consuming Result<ForwardPhase.AttemptOutcome, any Error>) {
        inFlight = nil
        if let sent = exchange.takeSentHead(), sent.capacity <= Self.keptBufferCapacity { headBuffer = sent }
        let answer: BufferedAnswer
        switch consume result {
        case .success(.streamed(let response)):
            return stream(response, request: exchange.request, context: exchange.context, started: exchange.started,
                          keepAlive: exchange.keepAlive, channelContext: exchange.channelContext)
        case .success(.buffered(let buffered)):
            answer = buffered
        case .success(.retry(let error)):
            // Not handed out by the exchange, which tries the next instance itself.
            answer = RecordPhase.answer(for: error, context: exchange.context)
        case .failure(let error):
            answer = RecordPhase.answer(for: error, context: exchange.context)
        }
        send(answer, request: exchange.request, context: exchange.context, started: exchange.started, keepAlive: exchange.keepAlive,
             channelContext: exchange.channelContext)
    }

    /// Writes an answer held in memory with its head, in one write, and records it.
    private func send(_ answer: borrowing BufferedAnswer, request: HTTPRequest, context: GatewayRequestContext, started: Instant, keepAlive: Bool,
                      channelContext: ChannelHandlerContext) {
        let isHead = request.method == .head
        let bodyBytes = isHead ? 0 : answer.body.readableBytes
        // The loop's turn, looked up once: it dates the answer and flushes it.
        let turn = loopUpstreams(channelContext).turn
        // Room for the head as the upstream sent it, and for what shaping adds, so that the
        // buffer is not grown (and copied) while the head is written.
        let capacity = 768 + (answer.relayed?.bytes.readableBytes ?? 0) + bodyBytes
        var out: ByteBuffer
        if var kept = answerBuffer.take() {
            kept.clear(minimumCapacity: capacity)
            out = kept
        } else {
            out = channelContext.channel.allocator.buffer(capacity: capacity)
        }
        let keepAlive = context.record.read { facts in
            let keepAlive = Self.writeHead(status: answer.status, headers: answer.headers, relayed: answer.relayed,
                                           bodyLength: answer.body.readableBytes, isHead: isHead, facts: facts, context: context,
                                           keepAlive: keepAlive, date: turn.httpDate(), to: &out)
            RecordPhase.emit(record: facts, method: request.method.rawValue, path: Self.pathWithoutQuery(request), status: answer.status.code,
                             bytes: bodyBytes, failed: false, seconds: (phases.record.time.now() - started).secondsValue,
                             log: phases.record.accessLog, metrics: phases.record.metrics, recent: &recentMetrics)
            return keepAlive
        }
        if !isHead { out.writeImmutableBuffer(answer.body) }
        guard keepAlive else {
            // Closing drops writes still pending: the connection ends once this one is out.
            channelContext.writeAndFlush(NIOAny(out)).assumeIsolated().whenComplete { _ in
                self.answered(keepAlive: false, context: channelContext)
            }
            return
        }
        // A failed write closes the connection; a client slow to read stops the next request
        // (see `serveNext`) rather than this one's end. Flushed with the loop's other writes.
        channelContext.write(NIOAny(out), promise: nil)
        turn.flushAtEndOfTurn(channelContext)
        if out.capacity <= Self.keptBufferCapacity { answerBuffer = out }
        answered(keepAlive: true, context: channelContext)
    }

    /// Relays an answer whose body is still arriving: the head now, then the body as the
    /// upstream sends it (chunked when it has no declared length), written no faster than the
    /// client reads; recorded once the body has ended.
    private func stream(_ response: Response, request: HTTPRequest, context: GatewayRequestContext, started: Instant, keepAlive: Bool,
                        channelContext: ChannelHandlerContext) {
        let isHead = request.method == .head
        let chunked = !isHead && response.headers[.contentLength] == nil && Self.allowsBody(response.status)
        var out = channelContext.channel.allocator.buffer(capacity: 256)
        let keepAlive = context.record.read { facts in
            Self.writeHead(status: response.status, headers: response.headers, relayed: nil, bodyLength: nil, isHead: isHead,
                           facts: facts, context: context, keepAlive: keepAlive, date: loopUpstreams(channelContext).turn.httpDate(), to: &out)
        }
        channelContext.write(NIOAny(out), promise: nil)
        let channel = channelContext.channel
        let loopBound = NIOLoopBound(channelContext, eventLoop: channelContext.eventLoop)
        let handler = NIOLoopBound(self, eventLoop: channelContext.eventLoop)
        let phases = self.phases
        let record = context.record
        let method = request.method.rawValue
        let path = Self.pathWithoutQuery(request)
        let status = response.status.code
        let body = response.body
        Task {
            let writer = DirectBodyWriter(channel: channel, chunked: chunked)
            var failed = false
            do {
                if isHead { try await writer.finish(nil) } else { try await body.write(writer) }
            } catch {
                failed = true
            }
            var recent: RequestMetrics.Recent?
            RecordPhase.emit(record: record.current, method: method, path: path, status: status, bytes: writer.bytes.value, failed: failed,
                             seconds: (phases.record.time.now() - started).secondsValue, log: phases.record.accessLog,
                             metrics: phases.record.metrics, recent: &recent)
            let reuse = keepAlive && !failed
            channel.eventLoop.execute {
                handler.value.answered(keepAlive: reuse, context: loopBound.value)
            }
        }
    }

    /// After an answer: the next request, or the end of the connection.
    private func answered(keepAlive: Bool, context: ChannelHandlerContext) {
        guard mode == .serving else { return }
        guard keepAlive, !quiescing, !inputClosed else {
            mode = .closed
            closeAfterWrites(context)
            return
        }
        mode = .reading
        armHeaderTimer(context, min(phases.headerTimeout, phases.idleTimeout))
        setAutoRead(true, context)
        if let bytes = buffered, bytes.readableBytes > 0 {
            serveNext(context)
        } else {
            buffered = nil
        }
    }

    /// Closes the connection once what was written to it is out: an answer may still wait for
    /// the end of the loop's turn to be flushed, and closing drops writes still pending. Writes
    /// complete in order, so an empty one written last completes after them.
    private func closeAfterWrites(_ context: ChannelHandlerContext) {
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(capacity: 0))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    /// Asks for the full HTTP/1 pipeline. The header timer stays armed: a connection whose
    /// task never takes it over still closes.
    private func giveUp(_ context: ChannelHandlerContext) {
        mode = .handingOver
        setAutoRead(false, context)
        handOverRequested.succeed()
    }

    /// The full pipeline is now behind this handler: it gets the bytes not yet served, and
    /// reads as it was set up to.
    func resume() {
        guard mode == .handingOver, let context else { return }
        stopTimer()
        mode = .handedOver
        if let bytes = buffered {
            buffered = nil
            context.fireChannelRead(wrapInboundOut(bytes))
            context.fireChannelReadComplete()
        }
        if inputClosed { context.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
        setAutoRead(initialAutoRead, context)
    }

    private func armHeaderTimer(_ context: ChannelHandlerContext, _ timeout: TimeAmount) {
        let deadline = loopUpstreams(context).turn.now() + timeout
        headerDeadline = deadline
        timer.cover(deadline, on: context.eventLoop, fire: { [self] in headerTimerFired(context) })
    }

    private func headerTimerFired(_ context: ChannelHandlerContext) {
        timer.fired()
        guard let headerDeadline else { return }
        if NIODeadline.now() >= headerDeadline {
            context.close(promise: nil)
        } else {
            timer.set(headerDeadline, on: context.eventLoop) { [self] in headerTimerFired(context) }
        }
    }

    /// While a request is served, no head is due.
    private func disarm() {
        headerDeadline = nil
    }

    private func stopTimer() {
        headerDeadline = nil
        timer.cancel()
    }

    // MARK: Bytes

    static func allowsBody(_ status: HTTPResponse.Status) -> Bool {
        status.code >= 200 && status.code != 204 && status.code != 304
    }

    static func pathWithoutQuery(_ request: HTTPRequest) -> String {
        let path = request.path ?? "/"
        guard let query = path.utf8.firstIndex(of: UInt8(ascii: "?")) else { return path }
        return String(path[..<query])
    }

    /// The answer's head, shaped (phase 9) and framed, written in one pass over its fields:
    /// `Content-Length` for a body of `bodyLength` bytes, chunked for one of unknown length
    /// (nil), unless the fields frame it already or it has no body. With `relayed`, the fields
    /// are that upstream head's, rewritten for the client as they are copied from its bytes
    /// (see ``AnswerShaping/writeRelayed(_:to:)``); else `headers`, the gateway's own or
    /// rewritten already. `facts` are the request record's, as read once for the answer.
    /// Returns whether the connection stays open after the answer.
    static func writeHead(status: HTTPResponse.Status, headers: HTTPFields, relayed: UpstreamHead?, bodyLength: Int?, isHead: Bool,
                          facts: borrowing RequestRecord.Facts, context: GatewayRequestContext, keepAlive: Bool, date: String,
                          to out: inout ByteBuffer) -> Bool {
        var shaping = AnswerShaping(facts: facts, snapshot: context.snapshot, isSecure: context.state.isSecure, keepAlive: keepAlive, date: date)
        // A status made from its code alone (the gateway's own errors) has no reason phrase:
        // the standard one, as the full pipeline writes it.
        out.writeStatusLine(code: status.code,
                            reason: status.reasonPhrase.isEmpty ? HTTPResponseStatus(statusCode: status.code).reasonPhrase : status.reasonPhrase)
        if let relayed {
            shaping.writeRelayed(relayed, to: &out)
        } else {
            for field in headers { shaping.write(field, to: &out) }
        }
        return shaping.finish(status: status, bodyLength: bodyLength, isHead: isHead, to: &out)
    }
}

/// Phase 9 as the direct path writes a head, field by field, with the same outcome as
/// `ShapePhase.shape`: the request id replaces the answer's, the security headers are added (or
/// replace the answer's when they override), `Connection: close` ends the connection. Like the
/// full pipeline (and nginx), the answer carries the gateway's `Date` in place of any it had.
struct AnswerShaping {
    /// The parts of the request record's facts it uses (the facts are lent, not copied).
    let requestID: String
    let date: String
    let cspNonce: String?
    let security: SecurityHeaders?
    let isSecure: Bool
    private(set) var keepAlive: Bool
    /// The answer has its own `Content-Length`.
    private var framed = false
    /// The security fields the answer has already, by position (see `SecurityHeaders.forEachField`).
    private var present: UInt8 = 0

    /// The context's parts are taken rather than the context: an initializer would copy it.
    init(facts: borrowing RequestRecord.Facts, snapshot: GatewaySnapshot?, isSecure: Bool, keepAlive: Bool, date: String) {
        requestID = facts.requestID
        self.date = date
        cspNonce = facts.cspNonce
        security = facts.route != nil ? facts.securityHeaders : snapshot?.defaultHeaders
        self.isSecure = isSecure
        self.keepAlive = keepAlive && !facts.closeConnection
    }

    enum Role {
        case requestID, connection, contentLength, date, other
    }

    /// Whether a field the answer has goes out as it is; notes what it says.
    /// `nameLength` is the field name's length in bytes: most names are ruled out by it.
    private mutating func keeps(_ role: Role, nameLength: Int, saysClose: () -> Bool, isNamed: (HTTPField.Name) -> Bool) -> Bool {
        switch role {
        case .requestID:
            return requestID.isEmpty
        case .connection:
            // Written in `finish`, once, when the connection ends.
            if saysClose() { keepAlive = false }
            return false
        case .date:
            return false  // the gateway's, written in `finish`
        case .contentLength:
            framed = true
            return true
        case .other:
            guard let security, security.mayName(length: nameLength), let position = security.position(where: isNamed, isSecure: isSecure)
            else { return true }
            present |= 1 << position
            return !security.override
        }
    }

    /// A field of an answer the gateway made, or rewrote already.
    mutating func write(_ field: HTTPField, to out: inout ByteBuffer) {
        let role: Role = switch field.name {
        case .xRequestID: .requestID
        case .connection: .connection
        case .contentLength: .contentLength
        case .date: .date
        default: .other
        }
        guard keeps(role, nameLength: field.name.canonicalName.utf8.count,
                    saysClose: { field.value[...].trimmingASCIIWhitespace().caseInsensitiveEquals("close") }, isNamed: { $0 == field.name })
        else { return }
        out.writeField(name: field.name.rawName, value: field.value)
    }

    /// The fields of an upstream's head, copied from its bytes and rewritten for the client as
    /// `HeaderRewriting.clientResponseHeaders` does: hop-by-hop fields and those the upstream
    /// named in `Connection` stay behind, and `Via` gains the gateway's.
    mutating func writeRelayed(_ head: UpstreamHead, to out: inout ByteBuffer) {
        // Usually Connection says only keep-alive or close: nothing is collected then.
        var unusual: [String] = []
        for field in head.fields where field.known == .connection {
            // The usual value is told from its bytes (trimmed already by the parser).
            let usual = head.bytes.withUnsafeReadableBytes { bytes in
                let value = bytes[Int(field.value.lowerBound)..<Int(field.value.upperBound)]
                return ByteText.equalsIgnoringCase(value, "keep-alive") || ByteText.equalsIgnoringCase(value, "close")
            }
            if usual { continue }
            let value = head.value(of: field)
            if !HeaderRewriting.namesOnlyUsualTokens(value) { unusual.append(value) }
        }
        let named = unusual.isEmpty ? [] : HeaderRewriting.connectionNamed(values: unusual)
        var via: [String] = []
        head.bytes.withUnsafeReadableBytes { bytes in
            for field in head.fields {
                if field.known?.isHopByHop == true { continue }
                let name = UnsafeRawBufferPointer(rebasing: bytes[Int(field.name.lowerBound)..<Int(field.name.upperBound)])
                if !named.isEmpty, named.contains(head.name(of: field).lowercased()) { continue }
                let value = UnsafeRawBufferPointer(rebasing: bytes[Int(field.value.lowerBound)..<Int(field.value.upperBound)])
                let role: Role
                switch field.known {
                case .via?:
                    via.append(head.value(of: field))
                    continue
                case .xRequestID?: role = .requestID
                case .contentLength?: role = .contentLength
                case .date?: role = .date
                default: role = .other
                }
                guard keeps(role, nameLength: name.count, saysClose: { false },
                            isNamed: { ByteText.equalsIgnoringCase(name, lowercased: $0.canonicalName) }) else { continue }
                out.writeField(name: name, value: value)
            }
        }
        out.writeField(name: "Via", value: HeaderRewriting.via(after: via))
    }

    /// The fields the gateway adds, the framing and the blank line. Returns whether the
    /// connection stays open after the answer.
    mutating func finish(status: HTTPResponse.Status, bodyLength: Int?, isHead: Bool, to out: inout ByteBuffer) -> Bool {
        out.writeField(name: "Date", value: date)
        if !requestID.isEmpty { out.writeField(name: "X-Request-Id", value: requestID) }
        if let security {
            let present = present
            security.forEachField(isSecure: isSecure, nonce: cspNonce) { position, name, value in
                if present & (1 << position) == 0 || security.override { out.writeField(name: name.rawName, value: value) }
            }
        }
        if !isHead, !framed, DirectForwarding.allowsBody(status) {
            if let bodyLength {
                out.writeContentLength(bodyLength)
            } else {
                out.writeStaticString("Transfer-Encoding: chunked\r\n")
            }
        }
        if !keepAlive { out.writeStaticString("Connection: close\r\n") }
        out.writeStaticString("\r\n")
        return keepAlive
    }
}

/// Writes a streamed answer's body to the client connection, each write completing when the
/// bytes are written (so the upstream is read no faster than the client takes it).
struct DirectBodyWriter: ResponseBodyWriter {
    let channel: any Channel
    let chunked: Bool
    let bytes = ByteCounter()

    mutating func write(_ buffer: ByteBuffer) async throws {
        guard buffer.readableBytes > 0 else { return }
        bytes.add(buffer.readableBytes)
        guard chunked else { return try await channel.writeAndFlush(buffer) }
        var framed = channel.allocator.buffer(capacity: buffer.readableBytes + 16)
        framed.writeString(String(buffer.readableBytes, radix: 16))
        framed.writeStaticString("\r\n")
        framed.writeImmutableBuffer(buffer)
        framed.writeStaticString("\r\n")
        try await channel.writeAndFlush(framed)
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
        if chunked {
            try await channel.writeAndFlush(ByteBuffer(staticString: "0\r\n\r\n"))
        } else {
            // Nothing to add, but the head may still sit unflushed when the body was empty.
            channel.flush()
        }
    }
}
