import Hummingbird
import NIOCore
import RampartBalancing
import RampartCore

extension ForwardPhase {
    /// Phases 7 and 8 for a request the direct path serves (a `GET` or `HEAD` without a body),
    /// on `eventLoop` and without a task: the same plan, attempts, retries and answers as
    /// `handle`, in futures. Fails with the error `handle` would throw.
    /// `cancellation` calls the upstream exchange off when the client goes away first.
    func forwardDirect(_ request: Request, context: Context, on eventLoop: any EventLoop,
                       cancellation: UpstreamCancellation) -> EventLoopFuture<AttemptOutcome> {
        let plan: ForwardPlan
        do {
            plan = try ForwardPlan(request, context: context, phase: self)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        let reader = BodyReader(request.body)
        var picker = InstancePicker(pool: plan.pool, input: plan.input)
        var lastError: GatewayError?
        func tryNext() -> EventLoopFuture<AttemptOutcome> {
            let attempt: Attempt
            do {
                attempt = try plan.next(&picker, after: lastError, record: context.record, now: time.now())
            } catch {
                return eventLoop.makeFailedFuture(error)
            }
            let upstream = UpstreamRequest(head: plan.head(for: attempt.instance, request: request, context: context, phase: self),
                                           body: .none, isIdempotent: true)
            let headDeadline = plan.headDeadline(now: time.now())
            let promise = eventLoop.makePromise(of: AttemptOutcome.self)
            client.start(upstream, to: attempt.instance.url, on: eventLoop,
                         headDeadline: .now() + .nanoseconds((headDeadline - time.now()).nanoseconds), cancellation: cancellation)
                .assumeIsolated().whenComplete { result in
                    switch result {
                    case .failure(let error):
                        let (failure, retry) = failed(error, attempt: attempt, plan: plan, mayRetryAnswer: true, progress: BodyProgress(),
                                                      record: context.record)
                        guard retry else { return promise.fail(failure) }
                        lastError = failure
                        promise.completeWith(tryNext())
                    case .success(let response):
                        let outcome = answer(to: response, attempt: attempt, plan: plan, retriesStatus: true,
                                             isHead: request.method == .head, reader: reader, record: context.record)
                        guard case .retry(let error) = outcome else { return promise.succeed(outcome) }
                        lastError = error
                        promise.completeWith(tryNext())
                    }
                }
            return promise.futureResult
        }
        return tryNext()
    }
}
