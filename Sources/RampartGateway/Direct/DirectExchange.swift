import HTTPTypes
import NIOCore
import RampartBalancing
import RampartCore

/// Hears, on the connection's loop, how the forwarding of a ``DirectExchange`` ended.
protocol DirectExchangeOwner: AnyObject {
    func exchangeEnded(_ exchange: DirectExchange, _ result: Result<ForwardPhase.AttemptOutcome, any Error>)
}

/// One request the direct path serves: its head, its context, and (once phases 7 and 8 run)
/// its attempts. The context lives here from the start, so the phases work on it in place and
/// it is never copied; the upstream client and the owner call back to this object, so a
/// request costs no closures.
final class DirectExchange: UpstreamReplyTarget {
    let request: HTTPRequest
    var context: GatewayRequestContext
    let started: Instant
    let keepAlive: Bool
    /// The client connection's handler context, for the answer.
    let channelContext: ChannelHandlerContext
    /// Calls the upstream exchange off when the client goes away first.
    let cancellation = UpstreamCancellation()

    // Phases 7 and 8, once they run.
    private var phase: ForwardPhase?
    private var plan: ForwardPlan?
    private var picker: InstancePicker?
    private var lastError: GatewayError?
    private var attempt: ForwardPhase.Attempt?
    private var owner: (any DirectExchangeOwner)?

    init(request: HTTPRequest, context: GatewayRequestContext, started: Instant, keepAlive: Bool, channelContext: ChannelHandlerContext) {
        self.request = request
        self.context = context
        self.started = started
        self.keepAlive = keepAlive
        self.channelContext = channelContext
    }

    /// Phases 7 and 8 for a `GET` or `HEAD` without a body, on the connection's loop, without a
    /// task or a future: the same plan, attempts, retries and answers as `ForwardPhase.handle`.
    /// `owner` hears the outcome (possibly before this returns), or the error `handle` would throw.
    func forward(_ phase: ForwardPhase, owner: any DirectExchangeOwner) {
        let plan: ForwardPlan
        do {
            plan = try ForwardPlan(request, context: context, phase: phase)
        } catch {
            return owner.exchangeEnded(self, .failure(error))
        }
        self.phase = phase
        self.plan = plan
        self.picker = InstancePicker(pool: plan.pool, input: plan.input)
        self.owner = owner
        tryNext(phase, plan)
    }

    private func tryNext(_ phase: ForwardPhase, _ plan: ForwardPlan) {
        let now = phase.time.now()
        let attempt: ForwardPhase.Attempt
        do {
            attempt = try plan.next(&picker!, after: lastError, record: context.record, now: now)
        } catch {
            return end(.failure(error))
        }
        self.attempt = attempt
        let upstream = UpstreamRequest(head: plan.head(for: attempt.instance, request: request, context: context, phase: phase),
                                       body: .none, isIdempotent: true)
        let headDeadline = NIODeadline.now() + .nanoseconds((plan.headDeadline(now: now) - now).nanoseconds)
        phase.client.start(upstream, to: attempt.instance.url, on: channelContext.eventLoop, headDeadline: headDeadline,
                           cancellation: cancellation, reply: self)
    }

    func upstreamReplied(_ result: Result<UpstreamResponse, any Error>) {
        guard let phase, let plan, let attempt else { return }
        switch result {
        case .failure(let error):
            let (failure, retry) = phase.failed(error, attempt: attempt, plan: plan, mayRetryAnswer: true, progress: BodyProgress(),
                                                record: context.record)
            guard retry else { return end(.failure(failure)) }
            lastError = failure
            tryNext(phase, plan)
        case .success(let response):
            let outcome = phase.answer(to: response, attempt: attempt, plan: plan, retriesStatus: true,
                                       isHead: request.method == .head, reader: nil, record: context.record)
            guard case .retry(let error) = outcome else { return end(.success(outcome)) }
            lastError = error
            tryNext(phase, plan)
        }
    }

    /// Tells the owner, once, and lets go of it and of the plan.
    private func end(_ result: Result<ForwardPhase.AttemptOutcome, any Error>) {
        guard let owner else { return }
        self.owner = nil
        phase = nil
        plan = nil
        attempt = nil
        owner.exchangeEnded(self, result)
    }
}
