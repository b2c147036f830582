import Hummingbird
import HTTPTypes
import Logging
import Metrics
import NIOCore
import RampartCore
import RampartShield
import RampartStore
import Synchronization

/// Phase 3: the shield's request checks that need the route: CSRF, brute-force lockouts on
/// login routes, then threat detection over the request's values, including the first
/// `inspectBodyBytes` of its body. A login's outcome is counted once the upstream answers.
struct InspectPhase: RouterMiddleware {
    typealias Context = GatewayRequestContext
    let time: any TimeSource
    let responder: ThreatResponder
    let bruteForce: BruteForceGuard
    let metrics = ThreatMetrics()

    /// How much of a login request's body is read to find the account, with detection off.
    static let loginBodyBytes = 16 * 1024

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let snapshot = context.snapshot!
        if let refusal = csrfRefusal(request.head, context: context) { return refusal.response }
        let isLogin = context.route.map { snapshot.loginRoutes.contains($0.order) } ?? false
        let (mode, exclusions) = snapshot.waf(for: context.route)
        let inspector = mode == .off ? nil : snapshot.inspector
        guard inspector != nil || isLogin else { return try await next(request, context) }

        var request = request
        var context = context
        let body: [UInt8]?
        do {
            let limit = max(inspector?.configuration.inspectBodyBytes.bytes ?? 0, isLogin ? Self.loginBodyBytes : 0)
            body = try await Self.peekBody(&request, limit: limit, metrics: metrics, whole: &context.bufferedBody)
        } catch let error as GatewayError {
            throw error
        } catch {
            throw GatewayError(.badRequest, origin: .client, "the request body could not be read", underlying: error)
        }
        if let inspector, let refusal = inspect(request.head, body: body, inspector: inspector, mode: mode, exclusions: exclusions, context: context) {
            return refusal.response
        }
        guard isLogin else { return try await next(request, context) }
        return try await login(request, body: body, context: context, next: next)
    }

    /// The whole phase for a request without a body on a route that is not a login route:
    /// CSRF, then threat detection over the head.
    func inspectHead(_ head: HTTPRequest, context: Context) -> BufferedAnswer? {
        if let refusal = csrfRefusal(head, context: context) { return refusal }
        let (mode, exclusions) = context.snapshot!.waf(for: context.route)
        guard mode != .off, let inspector = context.snapshot!.inspector else { return nil }
        return inspect(head, body: nil, inspector: inspector, mode: mode, exclusions: exclusions, context: context)
    }

    /// The refusal of a cross-site request on a route CSRF protection covers.
    private func csrfRefusal(_ head: HTTPRequest, context: Context) -> BufferedAnswer? {
        let snapshot = context.snapshot!
        guard let csrf = snapshot.csrf, let route = context.route, !snapshot.csrfExempt.contains(route.order) else { return nil }
        let ownOrigin = head.authority.map { "\(context.state.isSecure ? "https" : "http")://\($0)" }
        guard case .refuse(let reason) = csrf.check(head, ownOrigin: ownOrigin) else { return nil }
        context.record.note { $0.error = "csrf" }
        ShieldMetrics.refused("csrf")
        return ErrorResponse.answer(status: .forbidden, error: "csrf", message: "cross-site request refused: \(reason)",
                                    requestID: context.record.current.requestID)
    }

    /// Threat detection; the refusal when the request is blocked.
    private func inspect(_ head: HTTPRequest, body: [UInt8]?, inspector: ThreatInspector, mode: WAFConfiguration.Mode,
                         exclusions: ExclusionList, context: Context) -> BufferedAnswer? {
        // Timed from here: waiting for the client's body is not inspection.
        let started = time.now()
        let report = inspector.inspect(head, body: body, exclusions: exclusions)
        let blocking = mode == .block && report.score >= inspector.configuration.threshold
        metrics.inspected(seconds: (time.now() - started).secondsValue)
        guard let worst = report.worst else { return nil }

        let action = blocking ? "blocked" : "logged"
        for finding in report.findings { metrics.event(finding, action: action) }
        let requestID = context.record.current.requestID
        let client = context.state.clientAddress
        responder.detected(report, refused: blocking, requestID: requestID, client: client, exempt: context.state.isAllowListed)
        context.record.note {
            $0.threatScore = report.score
            $0.threatRule = worst.rule
        }
        context.requestLogger.notice("threat detected", metadata: [
            "action": .string(action), "score": .stringConvertible(report.score),
            "findings": .array(report.findings.map { .string("\($0.rule)@\($0.location)(\($0.severity.name))") }),
        ])
        guard blocking else { return nil }
        context.record.note { $0.error = "threat" }
        ShieldMetrics.refused("threat")
        // Names the rule and where it fired, never the payload itself.
        return ErrorResponse.answer(status: .forbidden, error: "threat_detected",
                                    message: "request refused: \(worst.kind.rawValue) in \(worst.location.part.rawValue)",
                                    requestID: requestID)
    }

    /// A login attempt: refused while its client or account is locked out; otherwise
    /// forwarded, and its outcome (the upstream's status) counted.
    private func login(_ request: Request, body: [UInt8]?, context: Context,
                       next: (Request, Context) async throws -> Response) async throws -> Response {
        let client = context.state.clientAddress
        let settings = context.snapshot!.configuration.shield.bruteForce ?? .init()
        let account = settings.account(in: body, contentType: request.headers[.contentType])
        if let lockout = bruteForce.lockout(client: client, account: account) {
            let seconds = lockout.remaining.wholeSecondsAtLeastOne
            context.record.note { $0.error = "locked_out" }
            ShieldMetrics.refused("locked_out")
            var response = ErrorResponse.make(status: .tooManyRequests, error: "locked_out",
                                              message: "too many failed logins; try again in \(seconds) s",
                                              requestID: context.record.current.requestID)
            response.headers[.retryAfter] = String(seconds)
            return response
        }
        let response = try await next(request, context)
        let status = Int(response.status.code)
        if settings.failureStatuses.contains(status) {
            let requestID = context.record.current.requestID
            for started in bruteForce.failed(client: client, account: account, settings) {
                responder.record(ThreatEvent(time: responder.now, requestID: requestID, client: client?.description, kind: "brute_force",
                                             rule: started.key.hasPrefix("client:") ? "client_failures" : "account_failures",
                                             location: started.key, severity: ThreatSeverity.error.name, action: "locked_out",
                                             detail: "\(started.failures) failed logins; locked out for \(Int(started.duration.secondsValue)) s (lockout \(started.level))"))
            }
        } else if (200..<400).contains(status) {
            bruteForce.succeeded(client: client, account: account)
        }
        return response
    }

    /// Reads up to `limit` bytes of the request body for inspection and puts them back in
    /// front of the rest, which streams on unexamined. Nil for requests without a body.
    /// `whole` is set to the body when all of it was read.
    static func peekBody(_ request: inout Request, limit: Int, metrics: ThreatMetrics, whole: inout ByteBuffer?) async throws -> [UInt8]? {
        let fields = request.headers
        let declared = fields[.contentLength].flatMap { Int($0) }
        guard (declared ?? 0) > 0 || fields[.transferEncoding] != nil, limit > 0, RequestInputs.inspectsBody(contentType: fields[.contentType]) else { return nil }
        var iterator = request.body.makeAsyncIterator()
        var prefix: [ByteBuffer] = []
        var collected = 0
        var ended = false
        while collected < limit {
            guard let chunk = try await iterator.next() else { ended = true; break }
            collected += chunk.readableBytes
            prefix.append(chunk)
        }
        var inspected: [UInt8] = []
        inspected.reserveCapacity(min(collected, limit))
        for chunk in prefix where inspected.count < limit {
            inspected += chunk.readableBytesView.prefix(limit - inspected.count)
        }
        if ended {
            var all = prefix.count == 1 ? prefix[0] : ByteBuffer()
            if prefix.count != 1 { for chunk in prefix { all.writeImmutableBuffer(chunk) } }
            request.body = RequestBody(buffer: all)
            whole = all
        } else {
            metrics.uninspectedBody()
            request.body = RequestBody(asyncSequence: PeekedBody(prefix: prefix, rest: IteratorBox(iterator)))
        }
        return inspected
    }
}

/// A body whose first chunks were read for inspection: those chunks again, then the rest.
struct PeekedBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let prefix: [ByteBuffer]
    let rest: IteratorBox

    struct AsyncIterator: AsyncIteratorProtocol {
        var prefix: [ByteBuffer]
        let rest: IteratorBox

        mutating func next() async throws -> ByteBuffer? {
            if !prefix.isEmpty { return prefix.removeFirst() }
            return try await rest.next()
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(prefix: prefix, rest: rest) }
}

/// The partly read request body iterator, handed on to the one consumer that forwards the
/// body. Hummingbird's iterator is not Sendable; it is only ever advanced by one task at a
/// time (the inspect phase, then the upstream writer), which the unchecked conformance
/// records.
final class IteratorBox: @unchecked Sendable {
    private var iterator: RequestBody.AsyncIterator

    init(_ iterator: RequestBody.AsyncIterator) { self.iterator = iterator }

    func next() async throws -> ByteBuffer? { try await iterator.next() }
}

/// `threat_detection_events_total{type,severity,action}`,
/// `threat_detection_inspection_duration_seconds` and
/// `threat_detection_uninspected_bodies_total`, with handles made once. (swift-metrics
/// handles are thread-safe but not marked `Sendable`.)
final class ThreatMetrics: @unchecked Sendable {
    private struct Key: Hashable {
        let type: String
        let severity: String
        let action: String
    }

    private let events = MetricHandles<Key, Counter> { key in
        Counter(label: "threat_detection_events_total", dimensions: [("type", key.type), ("severity", key.severity), ("action", key.action)])
    }
    private let duration = Metrics.Timer(label: "threat_detection_inspection_duration_seconds")
    private let uninspected = Counter(label: "threat_detection_uninspected_bodies_total")

    func inspected(seconds: Double) { duration.recordNanoseconds(Int64(seconds * 1e9)) }

    func uninspectedBody() { uninspected.increment() }

    func event(_ finding: Finding, action: String) {
        events[Key(type: finding.kind.rawValue, severity: finding.severity.name, action: action)].increment()
    }
}
