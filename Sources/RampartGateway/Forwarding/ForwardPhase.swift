import Hummingbird
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import RampartBalancing
import RampartCore

/// Phases 7 and 8, one terminal middleware: pick an instance, forward, and on a retryable
/// failure pick again (another instance, within the retry budget). Nothing before this
/// phase runs twice. Bodies stream in both directions.
///
/// A class of constants: the direct path keeps it in every request's exchange, and holding it
/// costs one reference rather than one per part.
final class ForwardPhase: RouterMiddleware, Sendable {
    typealias Context = GatewayRequestContext
    let pools: PoolRegistry
    let client: UpstreamClient
    let budget: RetryBudget
    let time: any TimeSource

    init(pools: PoolRegistry, client: UpstreamClient, budget: RetryBudget, time: any TimeSource) {
        self.pools = pools
        self.client = client
        self.budget = budget
        self.time = time
    }

    /// Upstream answers declaring at most this many bytes are read whole before being sent on.
    static let bufferedBodyLimit = 64 * 1024

    /// RFC 9110 §9.2.2.
    static let idempotent: Set<HTTPRequest.Method> = [.get, .head, .options, .trace, .put, .delete]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let plan = try ForwardPlan(request.head, context: context, phase: self, now: time.now())
        let maxBodyBytes = plan.snapshot.configuration.proxy.limits.maxBodyBytes
        let body = RequestBodyPlan(request)
        let progress = BodyProgress()
        let reader = BodyReader(request.body)
        let mayRetryAnswer = Self.idempotent.contains(request.method)

        if let upgrade = UpgradeRequest(request) {
            return try await tunnel(request, upgrade: upgrade, context: context, pool: plan.pool, input: plan.input, target: plan.target,
                                    trustsPeer: plan.trustsPeer)
        }
        // The upstream connection lives on the loop this task runs on, so the exchange needs no
        // thread hop; the client connection's loop otherwise.
        let eventLoop = MultiThreadedEventLoopGroup.currentEventLoop ?? context.channel.eventLoop
        let cancellation = clientAbort(context: context)
        var picker = InstancePicker(input: plan.input)
        var lastError: GatewayError?
        while true {
            // The first attempt starts as the plan was made; a retry, later.
            let attempt = try plan.next(&picker, after: lastError, record: context.record, now: lastError == nil ? plan.made : time.now())
            var upstream = UpstreamRequest(head: plan.head(for: attempt.instance, request: request.head, context: context, phase: self),
                                           body: .none, isIdempotent: mayRetryAnswer)
            switch (body, context.bufferedBody) {
            case (.none, _): break
            case (_, let whole?):
                // Read whole already (for inspection): one write, as nginx sends a buffered
                // body, and replayable.
                guard whole.readableBytes <= maxBodyBytes.bytes else {
                    throw GatewayError(.bodyTooLarge, origin: .client, "request body larger than \(maxBodyBytes)")
                }
                upstream.body = .whole(whole)
            case (.known(let length), nil):
                upstream.body = .stream(length: length, forwarding(reader, limit: maxBodyBytes.bytes, progress: progress))
            case (.streamed, nil):
                upstream.body = .stream(length: nil, forwarding(reader, limit: maxBodyBytes.bytes, progress: progress))
            }
            // Without a body, the first-byte timeout bounds the wait for the response head; with one,
            // the upload itself may take long, so only the total timeout applies.
            let headDeadline = body.isNone ? plan.headDeadline(now: time.now()) : plan.totalDeadline
            let response: UpstreamResponse
            do {
                response = try await client.execute(upstream, to: attempt.instance.url, on: eventLoop,
                                                    headDeadline: .now() + .nanoseconds((headDeadline - time.now()).nanoseconds),
                                                    cancellation: cancellation)
            } catch {
                let (failure, retry) = failed(error, attempt: attempt, plan: plan, mayRetryAnswer: mayRetryAnswer, progress: progress,
                                              record: context.record)
                if retry {
                    lastError = failure
                    context.requestLogger.debug("retrying", metadata: ["instance": "\(attempt.instance.id)", "error": "\(failure)"])
                    continue
                }
                await reader.close()
                throw failure
            }
            switch answer(to: response, attempt: attempt, plan: plan, retriesStatus: mayRetryAnswer && body.isNone,
                          isHead: request.method == .head, reader: reader, record: context.record) {
            case .retry(let error):
                lastError = error
                continue
            case .buffered(let answer):
                await reader.close()
                return answer.response
            case .streamed(let response):
                return response
            }
        }
    }

    /// What calls the upstream exchange off if the client goes away first, registered with the
    /// connection's guard on the connection's loop.
    private func clientAbort(context: Context) -> UpstreamCancellation {
        let cancellation = UpstreamCancellation()
        let channel = context.channel
        let register: @Sendable () -> Void = {
            (try? channel.pipeline.syncOperations.handler(type: ConnectionGuard.self))?.register(cancellation)
        }
        if channel.eventLoop.inEventLoop { register() } else { channel.eventLoop.execute(register) }
        return cancellation
    }

    /// One attempt on one instance.
    struct Attempt {
        let instance: Instance
        let number: Int
        let started: Instant
    }

    /// What an upstream answer means for the client.
    enum AttemptOutcome {
        /// Its status is retried: the next instance, with this as the last error.
        case retry(GatewayError)
        /// Read whole: sent with its head in one write.
        case buffered(BufferedAnswer)
        /// Still arriving: relayed as it comes.
        case streamed(Response)
    }

    /// A failed attempt, noted on its instance: the failure, and whether another instance is
    /// tried. A request whose body has begun to flow cannot be replayed; one that never
    /// reached the upstream (connect failure) is safe to send elsewhere whatever its method.
    func failed(_ error: any Error, attempt: Attempt, plan: ForwardPlan, mayRetryAnswer: Bool, progress: BodyProgress,
                record: RequestRecord) -> (GatewayError, retry: Bool) {
        let failure = classify(error, progress: progress)
        let latency = time.now() - attempt.started
        plan.pool.finish(attempt.instance, outcome: failure.origin == .upstream ? .failure : .abandoned, latency: latency)
        let replayable = !progress.hasStarted && (mayRetryAnswer || failure.kind == .connectRefused || failure.kind == .connectTimeout)
        if mayRetry(after: failure, replayable: replayable, attempt: attempt.number, retries: plan.snapshot.configuration.proxy.retries) {
            plan.pool.recordRetry(from: attempt.instance)
            return (failure, true)
        }
        record.note { $0.upstreamSeconds = latency.secondsValue }
        return (failure, false)
    }

    /// An upstream answer: retried when its status says so (and `retriesStatus`), else the
    /// answer for the client. A small answer was read whole by the client and goes out with its
    /// head in one write, as nginx's proxy buffering does; larger or unsized ones stream.
    /// `relaysFields`: an answer read whole keeps the upstream's head as it arrived (see
    /// `BufferedAnswer.relayed`), for the direct path, which rewrites its fields as it writes them.
    func answer(to response: consuming UpstreamResponse, attempt: Attempt, plan: ForwardPlan, retriesStatus: Bool, isHead: Bool,
                reader: BodyReader<RequestBody>?, record: RequestRecord, relaysFields: Bool = false) -> AttemptOutcome {
        let status = response.upstreamHead.code
        let pool = plan.pool, instance = attempt.instance
        if retriesStatus, mayRetry(afterStatus: status, attempt: attempt.number, retries: plan.snapshot.configuration.proxy.retries) {
            pool.finish(instance, outcome: .response(status: status), latency: time.now() - attempt.started)
            pool.recordRetry(from: instance)
            return .retry(GatewayError(.upstreamStatus, origin: .upstream, retryable: true, "upstream answered \(status)"))
        }
        let now = time.now()
        let headLatency = now - attempt.started
        let responseStatus = response.upstreamHead.status
        // Taken apart as it is consumed, so that a buffered answer keeps its head and body
        // rather than copies of them.
        let (upstreamHead, responseBody) = response.parts()
        switch consume responseBody {
        case .whole(let body):
            // Read whole with its head: the exchange took as long as the head did.
            pool.finish(instance, outcome: .response(status: status), latency: headLatency, at: now)
            record.note {
                $0.upstreamSeconds = headLatency.secondsValue
                $0.bodyBuffered = true
            }
            let noBody = isHead || status == 204 || status == 304
            let headers = relaysFields ? [:] : HeaderRewriting.clientResponseHeaders(upstreamHead.headerFields)
            return .buffered(BufferedAnswer(status: responseStatus, headers: headers, body: noBody ? ByteBuffer() : body,
                                            relayed: relaysFields ? consume upstreamHead : nil))
        case .stream(let stream):
            record.note { $0.upstreamSeconds = headLatency.secondsValue }
            let headers = HeaderRewriting.clientResponseHeaders(upstreamHead.headerFields)
            return .streamed(streamedResponse(stream, status: responseStatus, headers: headers, reader: reader, instance: instance,
                                              pool: pool, started: attempt.started, deadline: plan.totalDeadline))
        }
    }

    /// Whether a failed attempt is tried again on another instance: the failure is retryable,
    /// the request can be sent again, attempts are left, and the retry budget allows it.
    func mayRetry(after failure: GatewayError, replayable: Bool, attempt: Int, retries: RetryConfiguration) -> Bool {
        failure.isRetryable && replayable && attempt <= retries.attempts && budget.tryRetry()
    }

    /// Whether an answer with `status` is retried (for an idempotent request without a body).
    func mayRetry(afterStatus status: Int, attempt: Int, retries: RetryConfiguration) -> Bool {
        retries.statuses.contains(status) && attempt <= retries.attempts && budget.tryRetry()
    }

    /// An answer whose body is still arriving: relayed as it comes, and its instance told how it ended.
    func streamedResponse(_ stream: UpstreamBodyStream, status: HTTPResponse.Status, headers: HTTPFields,
                                  reader: BodyReader<RequestBody>?, instance: Instance, pool: Pool, started attemptStarted: Instant,
                                  deadline totalDeadline: Instant) -> Response {
        let time = self.time
        let code = status.code
        // Made only for a streamed body: an observer finishes its request when it goes away,
        // so one made for a buffered answer (finished above) would end it a second time.
        let observer = BodyObserver { ending in
            let latency = time.now() - attemptStarted
            switch ending {
            case .completed: pool.finish(instance, outcome: .response(status: code), latency: latency)
            case .failed: pool.finish(instance, outcome: .failure, latency: latency)
            case .abandoned: pool.finish(instance, outcome: .abandoned, latency: latency)
            }
        }
        let observed = ObservedResponseBody(base: stream, observer: observer, deadline: totalDeadline, time: time)
        let streamed = ResponseBody(asyncSequence: observed)
        return Response(status: status, headers: headers, body: ResponseBody(contentLength: streamed.contentLength) { writer in
            // A request body still coming in is closed once the answer has gone out.
            guard let reader else { return try await streamed.write(writer) }
            try await reader.closing { try await streamed.write(writer) }
        })
    }

    /// The client's body as the upstream client streams it: counted against the limit.
    private func forwarding(_ reader: BodyReader<RequestBody>, limit: Int, progress: BodyProgress) -> UpstreamBodySource {
        { send in
            for try await chunk in LimitedRequestBody(reader: reader, limit: limit, progress: progress) { try await send(chunk) }
        }
    }

    /// The request's headers as the upstream gets them: end-to-end fields, the forwarding
    /// headers, and the CSP nonce when the route's policy asks for one.
    func upstreamHeaders(_ request: HTTPRequest, context: Context, instance: Instance, trustsPeer: Bool,
                         forwarding: ForwardingFieldsCache? = nil, into headers: inout some UpstreamHeaderSink) {
        // Only the gateway speaks for flags: what the client sent under the name goes.
        let flags = context.forwardedFlags
        HeaderRewriting.upstreamRequestHeaders(
            request.headerFields, authority: request.authority, state: context.state,
            preserveHost: context.snapshot!.configuration.proxy.preserveHost, instanceAuthority: instance.url.authority, trustsPeer: trustsPeer,
            replaced: flags?.name, forwarding: forwarding, into: &headers)
        if let nonce = context.cspNonce { headers.add(name: "X-CSP-Nonce", value: nonce) }
        if let flags, !flags.value.isEmpty { headers.add(name: flags.name.rawName, value: flags.value) }
    }

    /// The affinity key for consistent hashing, from the request.
    func hashKey(_ request: HTTPRequest, context: Context, pool: Pool) -> String? {
        guard let source = pool.affinity else { return nil }
        switch source {
        case .header(let name): return HTTPField.Name(name).flatMap { request.headerFields[$0] }
        case .cookie(let name): return Cookies(from: request.headerFields[values: .cookie])[name]?.value
        case .clientAddress: return context.state.clientAddress?.description
        }
    }

    /// Maps a client-library error to the gateway's vocabulary.
    func classify(_ error: any Error, progress: BodyProgress) -> GatewayError {
        if let error = error as? GatewayError { return error }
        if progress.isTooLarge {
            return GatewayError(.bodyTooLarge, origin: .client, "request body too large", underlying: error)
        }
        if error is NIOConnectionError || (error as? IOError)?.errnoCode == ECONNREFUSED {
            return GatewayError(.connectRefused, origin: .upstream, retryable: true, "the upstream refused the connection", underlying: error)
        }
        if let error = error as? ChannelError, case .connectTimeout = error {
            return GatewayError(.connectTimeout, origin: .upstream, retryable: true, "connecting to the upstream timed out", underlying: error)
        }
        if error is CancellationError {
            return GatewayError(.clientClosed, origin: .client, "request cancelled", underlying: error)
        }
        return GatewayError(.upstreamReset, origin: .upstream, retryable: true, "upstream error", underlying: error)
    }
}

/// What every attempt of one request shares: its pool, selection input and upstream target,
/// counted once against the retry budget.
struct ForwardPlan {
    let poolName: String
    let pool: Pool
    /// The configuration in force for the request, read in place: a copy of the proxy section
    /// per request would retain each of its arrays and strings.
    let snapshot: GatewaySnapshot
    let input: SelectionInput
    let trustsPeer: Bool
    /// The path and query as the upstream gets them.
    let target: String
    let totalDeadline: Instant
    let method: NIOHTTP1.HTTPMethod

    /// When the plan was made: the first attempt, made right after, may start at that moment
    /// rather than read the clock again.
    let made: Instant

    /// `now`: the time as the request is forwarded (the direct path's reading as the request
    /// arrived: one clock reading serves it and the plan).
    /// The context's route and snapshot are read where they are, not bound to locals: each copy
    /// would be one more count on objects every event loop's requests count.
    init(_ request: HTTPRequest, context: borrowing GatewayRequestContext, phase: ForwardPhase, now: Instant) throws(GatewayError) {
        guard case .pool(let poolName)? = context.route?.target,
              let pool = context.snapshot?.pool(of: context.route!) ?? phase.pools.pool(named: poolName) else {
            throw GatewayError(.noRoute, origin: .gateway, "route has no pool")
        }
        context.record.note { $0.pool = poolName }
        self.poolName = poolName
        self.pool = pool
        self.snapshot = context.snapshot!
        input = SelectionInput(hashKey: phase.hashKey(request, context: context, pool: pool), country: context.state.country)
        if let peer = context.state.peerAddress {
            trustsPeer = snapshot.configuration.proxy.trustedProxies.contains(peer)
        } else {
            trustsPeer = false
        }
        let path = context.route!.upstreamPath(for: context.path)
        target = context.query.map { "\(path)?\($0)" } ?? path
        made = now
        totalDeadline = now + snapshot.configuration.proxy.timeouts.total.duration
        method = NIOHTTP1.HTTPMethod(rawValue: request.method.rawValue)
        phase.budget.recordRequest(at: now)
    }

    /// The next instance to try (none tried before), or the error that ends the request.
    /// `loop`: the caller's event loop, whose view of the pool it selects from (the direct path);
    /// without it, from the pool itself.
    func next(_ picker: inout InstancePicker, after lastError: GatewayError?, record: RequestRecord,
              now: Instant, on loop: UpstreamClient.LoopHandle? = nil) throws(GatewayError) -> ForwardPhase.Attempt {
        guard let instance = picker.next(from: pool, noting: record, at: now, on: loop) else {
            throw lastError ?? GatewayError(.noHealthyInstance, origin: .gateway, "no available instance in pool \(poolName)")
        }
        pool.begin(instance)
        return ForwardPhase.Attempt(instance: instance, number: picker.attempt, started: now)
    }

    /// The request head `instance` gets.
    func head(for instance: Instance, request: HTTPRequest, context: GatewayRequestContext, phase: ForwardPhase,
              reusing buffer: consuming ByteBuffer? = nil, forwarding: ForwardingFieldsCache? = nil) -> UpstreamRequestHead {
        var head = UpstreamRequestHead(method: method, uri: instance.url.basePath + target, reusing: buffer)
        phase.upstreamHeaders(request, context: context, instance: instance, trustsPeer: trustsPeer, forwarding: forwarding, into: &head)
        return head
    }

    /// When the answer's head must have arrived, for a request without a body.
    func headDeadline(now: Instant) -> Instant { min(now + snapshot.configuration.proxy.timeouts.firstByte.duration, totalDeadline) }
}

/// How the request body is sent upstream.
enum RequestBodyPlan {
    case none
    case known(Int)
    case streamed

    init(_ request: Request) {
        if let length = request.headers[.contentLength].flatMap(Int.init) {
            self = length == 0 ? .none : .known(length)
        } else if request.headers[.transferEncoding] != nil {
            self = .streamed
        } else if [.post, .put, .patch].contains(request.method) {
            // HTTP/2 requests carry a body without either field.
            self = .streamed
        } else {
            self = .none
        }
    }

    var isNone: Bool { if case .none = self { true } else { false } }
}

/// Picks the instances of one request in turn: each pick leaves out those already tried and
/// is noted in the record (instance and attempt count).
struct InstancePicker {
    let input: SelectionInput
    private(set) var attempt = 0
    /// The instances tried before the last one.
    private var tried = Set<String>()
    /// The last one: joins `tried` only when another pick is asked for, so that a request
    /// answered at its first attempt (nearly all) makes no set.
    private var last: String?

    init(input: SelectionInput) {
        self.input = input
    }

    /// The next instance of `pool` (the plan's, lent rather than held here: one more count per
    /// request on an object every event loop's requests count), from `loop`'s view of it when
    /// the caller has a loop (see `Pool.SelectionView`).
    mutating func next(from pool: Pool, noting record: RequestRecord, at now: Instant, on loop: UpstreamClient.LoopHandle? = nil) -> Instance? {
        if let last { tried.insert(last) }
        var selection = input
        selection.excluding = tried
        let picked = if let loop { loop.select(from: pool, for: selection, at: now) } else { pool.select(for: selection, at: now) }
        guard let instance = picked else { return nil }
        last = instance.id
        attempt += 1
        let attempt = self.attempt
        record.note {
            $0.instance = instance.id
            $0.attempts = attempt
        }
        return instance
    }
}
