import Hummingbird
import HTTPTypes
import Logging
import Metrics
import NIOCore
import RampartCore
import RampartShield
import Synchronization

/// Phase 3: the shield's request checks that need the route: CSRF, then threat detection
/// over the request's values, including the first `inspectBodyBytes` of its body.
struct InspectPhase: RouterMiddleware {
    typealias Context = GatewayRequestContext
    let time: any TimeSource
    let metrics = ThreatMetrics()

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let snapshot = context.snapshot!
        if let csrf = snapshot.csrf, let route = context.route, !snapshot.csrfExempt.contains(route.order) {
            let ownOrigin = request.head.authority.map { "\(context.state.isSecure ? "https" : "http")://\($0)" }
            if case .refuse(let reason) = csrf.check(request.head, ownOrigin: ownOrigin) {
                context.record.note { $0.error = "csrf" }
                ShieldMetrics.refused("csrf")
                return ErrorResponse.make(status: .forbidden, error: "csrf", message: "cross-site request refused: \(reason)",
                                          requestID: context.record.current.requestID)
            }
        }
        guard let inspector = snapshot.inspector else { return try await next(request, context) }
        let (mode, exclusions) = snapshot.waf(for: context.route)
        guard mode != .off else { return try await next(request, context) }

        var request = request
        let body: [UInt8]?
        do {
            body = try await Self.peekBody(&request, limit: inspector.configuration.inspectBodyBytes.bytes, metrics: metrics)
        } catch let error as GatewayError {
            throw error
        } catch {
            throw GatewayError(.badRequest, origin: .client, "the request body could not be read", underlying: error)
        }
        // Timed from here: waiting for the client's body is not inspection.
        let started = time.now()
        let report = inspector.inspect(request.head, body: body, exclusions: exclusions)
        let blocking = mode == .block && report.score >= inspector.configuration.threshold
        metrics.inspected(seconds: (time.now() - started).secondsValue)
        guard let worst = report.worst else { return try await next(request, context) }

        let action = blocking ? "blocked" : "logged"
        for finding in report.findings { metrics.event(finding, action: action) }
        context.record.note {
            $0.threatScore = report.score
            $0.threatRule = worst.rule
        }
        context.logger.notice("threat detected", metadata: [
            "action": .string(action), "score": .stringConvertible(report.score),
            "findings": .array(report.findings.map { .string("\($0.rule)@\($0.location)(\($0.severity.name))") }),
        ])
        guard blocking else { return try await next(request, context) }
        context.record.note { $0.error = "threat" }
        ShieldMetrics.refused("threat")
        // Names the rule and where it fired, never the payload itself.
        return ErrorResponse.make(status: .forbidden, error: "threat_detected",
                                  message: "request refused: \(worst.kind.rawValue) in \(worst.location.part.rawValue)",
                                  requestID: context.record.current.requestID)
    }

    /// Reads up to `limit` bytes of the request body for inspection and puts them back in
    /// front of the rest, which streams on unexamined. Nil for requests without a body.
    static func peekBody(_ request: inout Request, limit: Int, metrics: ThreatMetrics) async throws -> [UInt8]? {
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
            var whole = ByteBuffer()
            for chunk in prefix { whole.writeImmutableBuffer(chunk) }
            request.body = RequestBody(buffer: whole)
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
/// `threat_detection_uninspected_bodies_total`, with handles made once.
final class ThreatMetrics: Sendable {
    private struct Key: Hashable {
        let type: String
        let severity: String
        let action: String
    }

    private let counters = Mutex<[Key: CounterBox]>([:])
    private let duration = TimerBox(Metrics.Timer(label: "threat_detection_inspection_duration_seconds"))
    private let uninspected = CounterBox(Counter(label: "threat_detection_uninspected_bodies_total"))

    func inspected(seconds: Double) { duration.timer.recordNanoseconds(Int64(seconds * 1e9)) }

    func uninspectedBody() { uninspected.counter.increment() }

    func event(_ finding: Finding, action: String) {
        let key = Key(type: finding.kind.rawValue, severity: finding.severity.name, action: action)
        let box = counters.withLock { table -> CounterBox in
            if let existing = table[key] { return existing }
            let made = CounterBox(Counter(label: "threat_detection_events_total", dimensions: [("type", key.type), ("severity", key.severity), ("action", key.action)]))
            table[key] = made
            return made
        }
        box.counter.increment()
    }
}

/// swift-metrics handles are thread-safe but not marked Sendable.
struct CounterBox: @unchecked Sendable { let counter: Counter; init(_ c: Counter) { counter = c } }
struct TimerBox: @unchecked Sendable { let timer: Metrics.Timer; init(_ t: Metrics.Timer) { timer = t } }
