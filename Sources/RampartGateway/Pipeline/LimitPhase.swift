import Hummingbird
import HTTPTypes
import Metrics
import RampartCore
import RampartLimits
import Synchronization

/// Phase 4: adaptive rate limiting. Asks the limiter about the caller under the route's
/// policy; a refusal is a 429 with a JSON body and `Retry-After`. Every answer on a limited
/// route carries `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
struct LimitPhase: RouterMiddleware {
    typealias Context = GatewayRequestContext
    let limiter: AdaptiveRateLimiter
    let metrics: LimitMetrics

    static let policyField = HTTPField.Name("RateLimit-Policy")!
    static let limitField = HTTPField.Name("RateLimit")!

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let route = context.route, let (policy, routeClass) = context.snapshot?.limit(for: route) else {
            return try await next(request, context)
        }
        let endpointClass = routeClass ?? (Self.isRead(request.method) ? "read" : "write")
        let identity = context.identity
        let caller = AdaptiveRateLimiter.Caller(client: context.state.clientAddress, user: identity.user, tenant: identity.tenant,
                                                apiKey: identity.apiKey, roles: identity.roles)
        guard let outcome = await limiter.decide(policy: policy, caller: caller, route: route.name, endpointClass: endpointClass,
                                           requestID: context.state.requestID) else {
            return try await next(request, context)
        }
        metrics.decided(outcome)
        guard outcome.decision.isAllowed else {
            // Failing closed while the shared store is down is the gateway's doing, not the
            // caller's: a 503 without rate-limit headers.
            let unavailable = outcome.isStoreUnavailable
            let error = unavailable ? "rate_limit_store_unavailable" : "rate_limited"
            context.record.note { $0.error = error }
            let seconds = (outcome.decision.retryAfter ?? .seconds(1)).wholeSecondsAtLeastOne
            let message = unavailable ? "rate limits cannot be checked now; retry in \(seconds) s"
                : outcome.isPenalty ? "too many requests; refused for \(seconds) s after repeated violations"
                : "too many requests; retry in \(seconds) s"
            var response = ErrorResponse.make(status: unavailable ? .serviceUnavailable : .tooManyRequests, error: error, message: message,
                                              requestID: context.record.current.requestID)
            response.headers[.retryAfter] = String(seconds)
            if !unavailable { Self.annotate(&response.headers, outcome) }
            return response
        }
        var response = try await next(request, context)
        Self.annotate(&response.headers, outcome)
        return response
    }

    static func isRead(_ method: HTTPRequest.Method) -> Bool { method == .get || method == .head || method == .options }

    /// `RateLimit-Policy: "api";q=100;w=60` and `RateLimit: "api";r=42;t=18`.
    static func annotate(_ headers: inout HTTPFields, _ outcome: AdaptiveRateLimiter.Outcome) {
        let name = "\"\(outcome.policy)\""
        headers[policyField] = "\(name);q=\(outcome.decision.limit);w=\(outcome.limit.window.wholeSecondsAtLeastOne)"
        let reset = outcome.decision.resetAfter <= .zero ? 0 : outcome.decision.resetAfter.wholeSecondsAtLeastOne
        headers[limitField] = "\(name);r=\(outcome.decision.remaining);t=\(reset)"
    }
}

/// `rate_limit_decisions_total{policy,result}`, `rate_limit_effective_limit{policy}`,
/// `rate_limit_load_factor`, `rate_limit_threat_factor`, with handles made once.
/// (swift-metrics handles are thread-safe but not marked `Sendable`.)
final class LimitMetrics: @unchecked Sendable {
    private struct Key: Hashable {
        let policy: String
        let result: String
    }

    private let decisions = MetricHandles<Key, Counter> { key in
        Counter(label: "rate_limit_decisions_total", dimensions: [("policy", key.policy), ("result", key.result)])
    }
    private let limits = MetricHandles<String, Gauge> { policy in
        Gauge(label: "rate_limit_effective_limit", dimensions: [("policy", policy)])
    }
    private let load = Gauge(label: "rate_limit_load_factor")
    private let threat = Gauge(label: "rate_limit_threat_factor")
    private let storeErrors = Counter(label: "rate_limit_store_errors_total")
    private let storeDegraded = Gauge(label: "rate_limit_store_degraded")

    /// Every failed call to the shared store counts; the gauge is 1 while falling back.
    func storeEvent(_ event: SharedStoreEvent) {
        switch event {
        case .error: storeErrors.increment()
        case .fellBack: storeDegraded.record(1)
        case .recovered: storeDegraded.record(0)
        }
    }

    func decided(_ outcome: AdaptiveRateLimiter.Outcome) {
        let result = outcome.decision.isAllowed ? "allowed" : outcome.isPenalty ? "penalty" : outcome.isStoreUnavailable ? "unavailable" : "refused"
        decisions[Key(policy: outcome.policy, result: result)].increment()
    }

    func adapted(_ factors: AdaptiveFactors, limits effective: [(policy: RateLimitPolicy, limit: RateLimit)]) {
        load.record(factors.load)
        threat.record(factors.threat)
        for (policy, limit) in effective { limits[policy.name].record(Double(limit.limit)) }
    }
}
