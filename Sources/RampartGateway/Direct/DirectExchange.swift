import HTTPTypes
import NIOCore
import RampartBalancing
import RampartCore

/// Hears, on the connection's loop, how the forwarding of a ``DirectExchange`` ended.
protocol DirectExchangeOwner: AnyObject {
    func exchangeEnded(_ exchange: DirectExchange, _ result: consuming Result<ForwardPhase.AttemptOutcome, any Error>)
}

/// One request the direct path forwards, once phases 1-6 have let it through: its head, its
/// context, its plan and its attempts (phases 7 and 8). The head, context and plan are held as
/// constants, so they are lent to each call rather than copied for it, and the upstream client
/// and the owner call back to this object, so a request costs no closures. Everything here runs
/// on the client connection's loop, which is also its upstream connections' loop: calling the
/// exchange off needs no lock.
final class DirectExchange: UpstreamReplyTarget {
    let request: HTTPRequest
    let context: GatewayRequestContext
    let started: Instant
    let keepAlive: Bool
    /// The client connection's handler context, for the answer.
    let channelContext: ChannelHandlerContext
    private let phase: ForwardPhase
    private let plan: ForwardPlan
    /// The upstream connections of the client connection's loop.
    private let upstreams: UpstreamClient.LoopHandle
    /// The client connection's forwarding fields.
    private let forwarding: ForwardingFieldsCache
    private var picker: InstancePicker
    private var lastError: GatewayError?
    private var attempt: ForwardPhase.Attempt?
    /// The attempt's request as written, kept for one more try on a new connection when the
    /// kept one turns out stale (see ``StaleConnection``).
    private var sent: UpstreamRequest?
    /// The attempt is that one more try.
    private var onNewConnection = false
    private var headDeadline = NIODeadline.distantFuture
    /// The attempt's exchange on its upstream connection, once begun.
    private var current: UpstreamExchange?
    /// The client went away: no attempt begins, and the one in progress is called off.
    private var isCancelled = false
    /// Counts the sends, so that one waiting for a new connection that has ended already (and
    /// been followed by another) is told apart when its connection opens.
    private var sends = 0
    /// Until it has heard the outcome.
    private var owner: (any DirectExchangeOwner)?

    /// `context` is consumed: stored, not copied.
    init(request: HTTPRequest, context: consuming GatewayRequestContext, started: Instant, keepAlive: Bool, channelContext: ChannelHandlerContext,
         phase: ForwardPhase, plan: ForwardPlan, upstreams: UpstreamClient.LoopHandle, forwarding: ForwardingFieldsCache,
         owner: any DirectExchangeOwner) {
        self.upstreams = upstreams
        self.forwarding = forwarding
        self.request = request
        self.context = context
        self.started = started
        self.keepAlive = keepAlive
        self.channelContext = channelContext
        self.phase = phase
        self.plan = plan
        self.picker = InstancePicker(input: plan.input)
        self.owner = owner
    }

    /// Phases 7 and 8 for a `GET` or `HEAD` without a body, on the connection's loop, without a
    /// task or a future: the same attempts, retries and answers as `ForwardPhase.handle`. The
    /// owner hears the outcome (possibly before this returns), or the error `handle` would throw.
    /// The upstream head is written into `buffer` when given (the connection's last one), else
    /// into the last attempt's.
    func start(reusing buffer: consuming ByteBuffer? = nil) {
        // The first attempt starts as the plan was made; a retry, later.
        let now = lastError == nil ? plan.made : phase.time.now()
        let attempt: ForwardPhase.Attempt
        do {
            attempt = try plan.next(&picker, after: lastError, record: context.record, now: now, on: upstreams)
        } catch {
            return end(.failure(error))
        }
        self.attempt = attempt
        // Framed here, so that the bytes kept for the next request are those written.
        sent = UpstreamRequest(head: plan.head(for: attempt.instance, request: request, context: context, phase: phase,
                                               reusing: buffer.take() ?? takeSentHead(), forwarding: forwarding),
                               body: .none, isIdempotent: true).framed()
        headDeadline = upstreams.turn.now() + .nanoseconds((plan.headDeadline(now: now) - now).nanoseconds)
        send(attempt, onNewConnection: false)
    }

    /// Begins the exchange of `attempt` (the one in progress, lent by the caller: read from the
    /// property it would be one more count on its instance, an object every event loop's
    /// requests count), on a kept-alive connection or (`onNewConnection`) a new one.
    private func send(_ attempt: borrowing ForwardPhase.Attempt, onNewConnection: Bool) {
        guard let sent else { return }
        self.onNewConnection = onNewConnection
        guard !isCancelled else { return upstreamReplied(.failure(CancellationError())) }
        sends += 1
        switch phase.client.begin(sent, to: attempt.instance.url, on: upstreams, fresh: onNewConnection, headDeadline: headDeadline,
                                  reply: self) {
        case .now(let exchange):
            current = exchange
        case .connecting(let begun):
            let send = sends
            begun.assumeIsolated().whenSuccess { [self] exchange in
                // Unless this send has ended already (the new connection closed at once) and
                // another may have begun.
                guard send == sends, self.attempt != nil else { return }
                current = exchange
                if isCancelled { exchange.callOff() }
            }
        }
    }

    /// The client went away: like nginx (`proxy_ignore_client_abort off`), an upstream still
    /// owing the head of an answer nobody will read is not waited for.
    func cancel() {
        isCancelled = true
        current?.callOff()
    }

    func upstreamReplied(_ result: consuming Result<UpstreamResponse, any Error>) {
        // Taken rather than copied (see `send`); put back only for one more try of the same attempt.
        guard let attempt = attempt.take() else { return }
        current = nil
        // Switched on as it is consumed, so that the answer moves on rather than being copied.
        switch consume result {
        case .failure(var error):
            if let stale = error as? StaleConnection {
                // A kept-alive connection the upstream had closed: once more on a new one, when safe.
                if !onNewConnection, let sent, stale.allowsNewConnection(for: sent) {
                    self.attempt = attempt
                    return send(attempt, onNewConnection: true)
                }
                error = stale.failure
            }
            let (failure, retry) = phase.failed(error, attempt: attempt, plan: plan, mayRetryAnswer: true, progress: BodyProgress(),
                                                record: context.record)
            guard retry else { return end(.failure(failure)) }
            lastError = failure
            start()
        case .success(let response):
            let outcome = phase.answer(to: consume response, attempt: attempt, plan: plan, retriesStatus: true,
                                       isHead: request.method == .head, reader: nil, record: context.record, relaysFields: true)
            if case .retry(let error) = outcome {
                lastError = error
                return start()
            }
            end(.success(consume outcome))
        }
    }

    /// The bytes of the last upstream head sent, for the connection's next request to write
    /// into once the socket has let go of them (by then it has: writes are flushed at the end
    /// of the loop's turn). Taken, so that nothing here holds them any more.
    func takeSentHead() -> ByteBuffer? {
        sent.take()?.head.bytes
    }

    /// Tells the owner, once, and lets go of it.
    private func end(_ result: consuming Result<ForwardPhase.AttemptOutcome, any Error>) {
        guard let owner else { return }
        self.owner = nil
        owner.exchangeEnded(self, result)
    }
}
