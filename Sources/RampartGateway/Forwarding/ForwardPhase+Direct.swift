import Hummingbird
import HTTPTypes
import NIOCore
import NIOHTTP1
import RampartBalancing
import RampartCore

extension ForwardPhase {
    /// What the direct path sends back: an answer in memory, or one whose body streams.
    enum DirectAnswer {
        case buffered(BufferedAnswer)
        case streamed(Response)
    }

    /// Phases 7 and 8 for a request the direct path serves (a `GET` or `HEAD` without a body),
    /// on `eventLoop` and without a task: the same picks, retries, budget, timeouts, passive
    /// health and record notes as `handle`. Fails with the error `handle` would throw.
    func forwardDirect(_ request: Request, context: Context, on eventLoop: any EventLoop) -> EventLoopFuture<DirectAnswer> {
        let snapshot = context.snapshot!
        guard let route = context.route, case .pool(let poolName) = route.target, let pool = pools.pool(named: poolName) else {
            return eventLoop.makeFailedFuture(GatewayError(.noRoute, origin: .gateway, "route has no pool"))
        }
        context.record.note { $0.pool = poolName }
        let proxy = snapshot.configuration.proxy
        let retries = proxy.retries
        let input = SelectionInput(hashKey: hashKey(request, context: context, pool: pool), country: context.state.country)
        let trustsPeer = context.state.peerAddress.map { proxy.trustedProxies.contains($0) } ?? false
        let path = route.upstreamPath(for: context.path)
        let target = context.query.map { "\(path)?\($0)" } ?? path
        let totalDeadline = time.now() + proxy.timeouts.total.duration
        let method = NIOHTTP1.HTTPMethod(rawValue: request.method.rawValue)
        let isHead = request.method == .head
        budget.recordRequest()

        var picker = InstancePicker(pool: pool, input: input)
        var lastError: GatewayError?
        func tryNext() -> EventLoopFuture<DirectAnswer> {
            guard let instance = picker.next(noting: context.record) else {
                return eventLoop.makeFailedFuture(lastError ?? GatewayError(.noHealthyInstance, origin: .gateway,
                                                                            "no available instance in pool \(poolName)"))
            }
            let attempt = picker.attempt
            let head = HTTPRequestHead(version: .http1_1, method: method, uri: instance.url.basePath + target,
                                       headers: upstreamHeaders(request, context: context, instance: instance, trustsPeer: trustsPeer))
            let headDeadline = min(time.now() + proxy.timeouts.firstByte.duration, totalDeadline)
            let attemptStarted = time.now()
            pool.begin(instance)
            let promise = eventLoop.makePromise(of: DirectAnswer.self)
            client.start(UpstreamRequest(head: head, body: .none, isIdempotent: true), to: instance.url, on: eventLoop,
                         headDeadline: .now() + .nanoseconds((headDeadline - time.now()).nanoseconds))
                .assumeIsolated().whenComplete { result in
                    switch result {
                    case .failure(let error):
                        let failure = classify(error, progress: BodyProgress())
                        let latency = time.now() - attemptStarted
                        pool.finish(instance, outcome: failure.origin == .upstream ? .failure : .abandoned, latency: latency)
                        if mayRetry(after: failure, replayable: true, attempt: attempt, retries: retries) {
                            pool.recordRetry(from: instance)
                            lastError = failure
                            return promise.completeWith(tryNext())
                        }
                        context.record.note { $0.upstreamSeconds = latency.secondsValue }
                        promise.fail(failure)
                    case .success(let response):
                        let status = Int(response.head.status.code)
                        if mayRetry(afterStatus: status, attempt: attempt, retries: retries) {
                            pool.finish(instance, outcome: .response(status: status), latency: time.now() - attemptStarted)
                            pool.recordRetry(from: instance)
                            lastError = GatewayError(.upstreamStatus, origin: .upstream, retryable: true, "upstream answered \(status)")
                            return promise.completeWith(tryNext())
                        }
                        context.record.note { $0.upstreamSeconds = (time.now() - attemptStarted).secondsValue }
                        let headers = HeaderRewriting.clientResponseHeaders(response.head.headers)
                        let responseStatus = HTTPResponse.Status(code: status, reasonPhrase: response.head.status.reasonPhrase)
                        switch response.body {
                        case .whole(let body):
                            pool.finish(instance, outcome: .response(status: status), latency: time.now() - attemptStarted)
                            context.record.note { $0.bodyBuffered = true }
                            let noBody = isHead || status == 204 || status == 304
                            promise.succeed(.buffered(BufferedAnswer(status: responseStatus, headers: headers,
                                                                     body: noBody ? ByteBuffer() : body)))
                        case .stream(let stream):
                            promise.succeed(.streamed(streamedResponse(stream, status: responseStatus, headers: headers,
                                                                       reader: BodyReader(request.body), instance: instance, pool: pool,
                                                                       started: attemptStarted, deadline: totalDeadline)))
                        }
                    }
                }
            return promise.futureResult
        }
        return tryNext()
    }
}
