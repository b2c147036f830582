import Hummingbird
import NIOCore
import RampartBalancing
import RampartCore

extension ForwardPhase {
    /// Phases 7 and 8 for a request the direct path serves (a `GET` or `HEAD` without a body),
    /// on `eventLoop`, without a task or a future: the same plan, attempts, retries and answers
    /// as `handle`; `completion` hears the outcome on the loop (possibly before this returns), or
    /// the error `handle` would throw. `cancellation` calls the upstream exchange off when the
    /// client goes away first.
    func forwardDirect(_ request: HTTPRequest, context: Context, on eventLoop: any EventLoop, cancellation: UpstreamCancellation,
                       completion: @escaping (Result<AttemptOutcome, any Error>) -> Void) {
        let plan: ForwardPlan
        do {
            plan = try ForwardPlan(request, context: context, phase: self)
        } catch {
            return completion(.failure(error))
        }
        var picker = InstancePicker(pool: plan.pool, input: plan.input)
        var lastError: GatewayError?
        func tryNext() {
            let now = time.now()
            let attempt: Attempt
            do {
                attempt = try plan.next(&picker, after: lastError, record: context.record, now: now)
            } catch {
                return completion(.failure(error))
            }
            let upstream = UpstreamRequest(head: plan.head(for: attempt.instance, request: request, context: context, phase: self),
                                           body: .none, isIdempotent: true)
            let headDeadline = NIODeadline.now() + .nanoseconds((plan.headDeadline(now: now) - now).nanoseconds)
            client.start(upstream, to: attempt.instance.url, on: eventLoop, headDeadline: headDeadline, cancellation: cancellation) { result in
                switch result {
                case .failure(let error):
                    let (failure, retry) = failed(error, attempt: attempt, plan: plan, mayRetryAnswer: true, progress: BodyProgress(),
                                                  record: context.record)
                    guard retry else { return completion(.failure(failure)) }
                    lastError = failure
                    tryNext()
                case .success(let response):
                    let outcome = answer(to: response, attempt: attempt, plan: plan, retriesStatus: true,
                                         isHead: request.method == .head, reader: nil, record: context.record)
                    guard case .retry(let error) = outcome else { return completion(.success(outcome)) }
                    lastError = error
                    tryNext()
                }
            }
        }
        tryNext()
    }
}
