import RampartIdentity
import Hummingbird
import HTTPTypes
import Logging
import Metrics
import NIOCore
import RampartCore
import RampartFlags
import RampartBalancing
import RampartShield
import RampartStore
import Synchronization

// MARK: - Snapshot

/// Pins the live configuration generation for the whole request, so a reload never tears it.
struct SnapshotPinner: RouterMiddleware {
    typealias Context = GatewayRequestContext
    let live: LiveConfiguration
    /// Whether the traffic listener serves TLS (all its connections do, or none).
    let isSecure: Bool

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.snapshot = live.snapshot
        context.state.isSecure = isSecure
        return try await next(request, context)
    }
}

// MARK: - Record

/// Phase 10: once the response body is written, one access-log line and the `http_server_*`
/// metrics. Listed early in the pipeline because it acts last. Also the single place where a
/// thrown error becomes a response, so every answer is recorded.
struct RecordPhase: RouterMiddleware {
    typealias Context = GatewayRequestContext
    let accessLog: Logger?
    let time: any TimeSource
    let metrics = RequestMetrics()

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = time.now()
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            // Thrown past phase 9, so shaped here: an error answer carries the request id and
            // the security headers as every other answer does.
            response = Self.answer(for: error, context: context).response
            ShapePhase.shape(&response.headers, context: context)
        }
        let status = response.status.code
        let method = request.method.rawValue
        let path = request.uri.path
        let record = context.record
        let log = accessLog
        let time = self.time
        let metrics = self.metrics
        // A body already in memory goes out in one write with its head; wrapping it to count
        // bytes would split that write in three, so it is recorded now, at its known length.
        let facts = record.current
        if facts.bodyBuffered || facts.error != nil {
            var recent: RequestMetrics.Recent?
            RecordPhase.emit(record: facts, method: method, path: path, status: status, bytes: response.body.contentLength ?? 0,
                             failed: false, seconds: (time.now() - started).secondsValue, log: log, metrics: metrics, recent: &recent)
            return response
        }
        let bytes = ByteCounter()
        let body = response.body
        response.body = ResponseBody(contentLength: body.contentLength) { writer in
            var failed = false
            do {
                try await body.write(writer.map { buffer in
                    bytes.add(buffer.readableBytes)
                    return buffer
                })
            } catch {
                failed = true
                throw error
            }
            var recent: RequestMetrics.Recent?
            RecordPhase.emit(record: record.current, method: method, path: path, status: status, bytes: bytes.value,
                             failed: failed, seconds: (time.now() - started).secondsValue, log: log, metrics: metrics, recent: &recent)
        }
        return response
    }

    /// The answer to a request that failed with `error`, noted in its record.
    static func answer(for error: any Error, context: Context) -> BufferedAnswer {
        switch error {
        case let error as GatewayError:
            context.record.note { $0.error = error.kind.rawValue }
            context.requestLogger.debug("request failed", metadata: ["error": "\(error)"])
            return ErrorResponse.answer(error, requestID: context.record.current.requestID)
        case let error as any HTTPResponseError:
            return ErrorResponse.answer(status: error.status, error: "http_error", message: "\(error.status.reasonPhrase)",
                                        requestID: context.record.current.requestID)
        default:
            context.record.note { $0.error = "internal" }
            context.requestLogger.error("unexpected error", metadata: ["error": "\(error)"])
            return ErrorResponse.answer(status: .internalServerError, error: "internal", message: "internal error",
                                        requestID: context.record.current.requestID)
        }
    }

    /// `method` and `path` are read only for the access log: without one, a request's end
    /// makes neither string.
    static func emit(record: borrowing RequestRecord.Facts, method: @autoclosure () -> String, path: @autoclosure () -> String, status: Int,
                     bytes: Int, failed: Bool, seconds: Double, log: Logger?, metrics: RequestMetrics, recent: inout RequestMetrics.Recent?) {
        let route = record.route ?? "none"
        metrics.record(route: route, status: status, seconds: seconds, recent: &recent)
        guard let log else { return }
        var metadata: Logger.Metadata = [
            "request_id": .string(record.requestID), "method": .string(method()), "path": .string(path()),
            "status": .stringConvertible(status), "bytes": .stringConvertible(bytes), "duration_s": .stringConvertible(seconds),
            "route": .string(route), "attempts": .stringConvertible(record.attempts),
        ]
        if let trace = record.trace { metadata["trace_id"] = .string(trace.traceID) }
        if let client = record.clientAddress { metadata["client"] = .string(client.description) }
        if let instance = record.instance { metadata["upstream"] = .string(instance) }
        if let pool = record.pool { metadata["pool"] = .string(pool) }
        if let upstream = record.upstreamSeconds { metadata["upstream_s"] = .stringConvertible(upstream) }
        if let error = record.error { metadata["error"] = .string(error) }
        if let score = record.threatScore { metadata["threat_score"] = .stringConvertible(score) }
        if let rule = record.threatRule { metadata["threat_rule"] = .string(rule) }
        if failed { metadata["aborted"] = .stringConvertible(true) }
        log.info("request", metadata: metadata)
    }
}

/// The `http_server_*` handles by route and status class, made once each rather than per
/// request.
final class RequestMetrics: Sendable {
    fileprivate struct Key: Hashable {
        let route: String
        let statusClass: Int
    }

    fileprivate struct Handles {
        let requests: Counter
        let duration: Metrics.Timer
    }

    /// The handles recorded to last, kept by a connection: its next request, usually of the same
    /// route and status class, finds them without the table's lock (which every event loop
    /// takes) or hashing the route's name.
    struct Recent {
        fileprivate let key: Key
        fileprivate let handles: Handles
    }

    private let handles = MetricHandles<Key, Handles> { key in
        let dimensions = [("route", key.route), ("status_class", "\(key.statusClass)xx")]
        return Handles(requests: Counter(label: "http_server_requests_total", dimensions: dimensions),
                       duration: Metrics.Timer(label: "http_server_request_duration_seconds", dimensions: dimensions,
                                               preferredDisplayUnit: .seconds))
    }

    func record(route: String, status: Int, seconds: Double, recent: inout Recent?) {
        let key = Key(route: route, statusClass: status / 100)
        if recent?.key != key { recent = Recent(key: key, handles: handles[key]) }
        // Used where they are kept (the cache is lent for the call): a copy would count each
        // handle, objects every event loop's requests count, once more.
        recent!.handles.requests.increment()
        recent!.handles.duration.recordNanoseconds(Int64(seconds * 1e9))
    }
}

final class ByteCounter: Sendable {
    private let count = Atomic<Int>(0)
    func add(_ n: Int) { count.wrappingAdd(n, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

// MARK: - Shape

/// Phase 9: every response, short-circuit answers included, carries the request id, and the
/// security headers of its route (or the global ones).
struct ShapePhase: RouterMiddleware {
    typealias Context = GatewayRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        Self.shape(&response.headers, context: context)
        return response
    }

    /// The direct path shapes as it writes the head, alike (`DirectForwarding.writeHead`).
    static func shape(_ fields: inout HTTPFields, context: Context) {
        let facts = context.record.current
        if !facts.requestID.isEmpty { fields.set(.xRequestID, facts.requestID) }
        if facts.closeConnection { fields.set(.connection, "close") }
        let headers = facts.route != nil ? facts.securityHeaders : context.snapshot?.defaultHeaders
        headers?.apply(to: &fields, isSecure: context.state.isSecure, nonce: facts.cspNonce)
    }
}

// MARK: - Admit

/// Phase 1: refuses what must never be forwarded, as RFC 9112 §3.2 and §11 ask of an
/// intermediary. The HTTP/1 parser has already refused malformed framing (both
/// Content-Length and Transfer-Encoding, bad chunk sizes, obs-fold, bare LF, whitespace
/// before a colon, control characters); what reaches here is checked for Host and sizes.
struct AdmitPhase: RouterMiddleware {
    typealias Context = GatewayRequestContext
    let blocklist: Blocklist
    let flood: FloodDetector
    let responder: ThreatResponder

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if let refusal = admit(request.head, context: &context, snapshot: context.snapshot!) { return refusal.response }
        return try await next(request, context)
    }

    /// The refusal of a request that may not pass, or nil (with the client address resolved).
    /// `hostIsValid` says the caller has already found exactly one valid Host in the head (the
    /// direct path's recognizer declines any other). `snapshot` is the context's, lent: read from
    /// the context it would be one more count on an object every event loop's requests count.
    func admit(_ head: HTTPRequest, context: inout Context, snapshot: GatewaySnapshot, hostIsValid: Bool = false) -> BufferedAnswer? {
        assert(snapshot === context.snapshot, "admit lent a snapshot other than the context's")
        let limits = snapshot.configuration.proxy.limits
        // An id is made here only for a refusal; identify chooses the id of accepted requests.
        // A malformed request closes its connection; a refused client may keep its own.
        func refuse(_ status: HTTPResponse.Status, _ kind: String, _ message: String, close: Bool = true) -> BufferedAnswer {
            let requestID = RequestID.make()
            let client = context.state.clientAddress
            context.record.note {
                $0.requestID = requestID
                $0.error = kind
                $0.closeConnection = close
                $0.clientAddress = client
            }
            return ErrorResponse.answer(status: status, error: kind, message: message, requestID: requestID, close: close)
        }
        if !hostIsValid, let problem = HostCheck.problem(with: head) {
            return refuse(.badRequest, "bad_request", problem)
        }
        // The real client, through trusted proxies, decides the IP rules.
        context.state.clientAddress = snapshot.clientAddresses.resolve(
            peer: context.state.peerAddress, forwardedFor: head.headerFields[values: .xForwardedFor],
            forwarded: head.headerFields[values: .forwarded])
        let client = context.state.clientAddress
        // Allow-listed addresses are never blocked; others answer for their blocks.
        switch client.map(snapshot.ipRules.decision) {
        case .deny?:
            ShieldMetrics.refused("forbidden")
            return refuse(.forbidden, "forbidden", "this address is not allowed", close: false)
        case .unlisted? where blocklist.block(covering: client!) != nil:
            ShieldMetrics.refused("blocked")
            return refuse(.forbidden, "blocked", "this address is blocked", close: false)
        case .allow?:
            context.state.isAllowListed = true
        case .unlisted?, nil:
            break
        }
        // Allow-listed and unknown clients count toward the total only.
        let judged = context.state.isAllowListed ? nil : client
        if let flood = flood.observe(judged, snapshot.configuration.shield.flood), let judged,
           let refusal = respond(to: flood, from: judged, snapshot: snapshot) {
            return refuse(.forbidden, "blocked", refusal, close: false)
        }
        if (head.path?.utf8.count ?? 0) > limits.maxURIBytes.bytes {
            return refuse(.uriTooLong, "uri_too_long", "request target longer than \(limits.maxURIBytes)")
        }
        let lengths = head.headerFields[values: .contentLength]
        if lengths.count > 1 {
            return refuse(.badRequest, "bad_request", "more than one Content-Length")
        }
        if let length = lengths.first {
            guard let n = Int(length), n >= 0, length.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                return refuse(.badRequest, "bad_request", "invalid Content-Length")
            }
            if n > limits.maxBodyBytes.bytes {
                return refuse(.contentTooLarge, "body_too_large", "request body larger than \(limits.maxBodyBytes)")
            }
        }
        return nil
    }

    /// A client over the flood limit: blocked for `blockDuration` when configured (the
    /// refusal message), else only recorded.
    private func respond(to flood: FloodDetector.Flood, from client: IPAddress, snapshot: GatewaySnapshot) -> String? {
        let settings = snapshot.configuration.shield.flood
        let detail = "\(flood.rate) requests within \(settings.interval), over the limit of \(flood.limit)"
        guard settings.blockFlooders else {
            responder.record(ThreatEvent(time: responder.now, client: client.description, kind: "flood", rule: "client_rate",
                                         severity: ThreatSeverity.error.name, action: "logged", detail: detail))
            return nil
        }
        responder.block(client, for: settings.blockDuration.duration, kind: "flood", reason: "request flood", detail: detail)
        ShieldMetrics.refused("flood")
        return "this address is blocked"
    }
}

// MARK: - Identify

/// Phase 2: the request id (an acceptable incoming `X-Request-Id`, else the one admit made),
/// the trace (continue the caller's `traceparent` or start one), the real client address
/// through trusted proxies, and the client's country.
struct IdentifyPhase: RouterMiddleware {
    typealias Context = GatewayRequestContext
    /// JWT and API-key checks, when `identity:` is configured.
    let authenticator: Authenticator?
    let apiKeyHeader: HTTPField.Name?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        Self.identify(request.head, context: &context)
        if let authenticator {
            let result = await authenticator.authenticate(authorization: request.headers[.authorization],
                                                          apiKey: apiKeyHeader.flatMap { request.headers[$0] })
            switch result {
            case .success(let identity): context.identity = identity
            case .failure(let error): context.identityError = error
            }
        }
        return try await next(request, context)
    }

    /// Everything but the credentials: request id, trace, country.
    static func identify(_ head: HTTPRequest, context: inout Context) {
        var generator = RequestRandom()
        identify(head, context: &context, snapshot: context.snapshot!, random: &generator)
    }

    /// `identify`, drawing new ids from `generator`: the direct path keeps one per connection,
    /// as making one per request counts a process-wide atomic that every event loop's requests
    /// would then take turns to write. `snapshot` is the context's, lent (see `AdmitPhase.admit`).
    static func identify(_ head: HTTPRequest, context: inout Context, snapshot: GatewaySnapshot, random generator: inout RequestRandom) {
        assert(snapshot === context.snapshot, "identify lent a snapshot other than the context's")
        let headers = head.headerFields
        if let incoming = headers[.xRequestID], RequestID.isAcceptable(incoming) {
            context.state.requestID = incoming
        } else {
            context.state.requestID = RequestID.make(using: &generator)
        }
        let incomingTrace = headers[.traceparent].flatMap { TraceContext(traceparent: $0) }
        context.state.incomingTrace = incomingTrace
        let trace = incomingTrace?.child(using: &generator) ?? TraceContext.start(using: &generator)
        context.state.trace = trace
        let peer = context.state.peerAddress
        if let header = snapshot.countryHeader, let peer, snapshot.clientAddresses.trustedProxies.contains(peer),
           let country = headers[header.name], country.count == 2 {
            context.state.country = country.uppercased()
        } else if let client = context.state.clientAddress {
            context.state.country = snapshot.countries.longestMatch(client)
        }
        let (requestID, client) = (context.state.requestID, context.state.clientAddress)
        context.record.note {
            $0.requestID = requestID
            $0.trace = trace
            $0.clientAddress = client
        }
    }
}

/// After routing: a route that requires identity answers 401 to a caller without a valid
/// credential (a JSON body naming what was wrong, and `WWW-Authenticate`).
struct RequireIdentityPhase: RouterMiddleware {
    typealias Context = GatewayRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let route = context.route, context.snapshot?.requiresIdentity(route) == true, context.identity.method == .anonymous else {
            return try await next(request, context)
        }
        let error = context.identityError
        context.record.note { $0.error = error?.code.rawValue ?? "identity_required" }
        var response = ErrorResponse.make(status: .unauthorized, error: error?.code.rawValue ?? "identity_required",
                                          message: error?.message ?? "this route needs a bearer token or an API key",
                                          requestID: context.record.current.requestID)
        response.headers[.wwwAuthenticate] = error.map { "Bearer error=\"invalid_token\", error_description=\"\($0.code.rawValue)\"" } ?? "Bearer"
        return response
    }
}

// MARK: - Route

/// Phase 5: normalizes the target and picks the most specific route; a fixed-response route
/// answers here.
struct RoutePhase: RouterMiddleware {
    typealias Context = GatewayRequestContext
    let flags: FlagRuntime?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if let fixed = try route(request.head, context: &context) { return fixed.response }
        return try await next(request, context)
    }

    /// A route chosen for a request, with the normalized target it was chosen by.
    struct Matched {
        let route: CompiledRoute
        let path: String
        let query: String?
    }

    /// Chooses the route (set in the context); a fixed-response route's answer.
    func route(_ head: HTTPRequest, context: inout Context) throws -> BufferedAnswer? {
        try apply(match(head, context: context), head: head, context: &context, snapshot: context.snapshot!)
    }

    /// The most specific route for `head`, flag conditions included.
    func match(_ head: HTTPRequest, context: Context) throws -> Matched {
        let target = head.path ?? "/"
        let normalized: (path: String, query: String?)
        do {
            normalized = try RequestTarget.normalize(target)
        } catch {
            context.record.note { $0.closeConnection = true }
            throw GatewayError(.badRequest, origin: .client, "invalid request target")
        }
        let host = head.authority.map(RouteTable.hostName(ofAuthority:))
        let resolve = flagResolver(head, path: normalized.path, context: context)
        guard let route = context.snapshot!.routes.match(method: head.method.rawValue, host: host, path: normalized.path,
                                                         headers: head.headerFields, flag: { condition in
            guard let resolution = resolve(condition.key), resolution.errorCode == nil else { return false }
            if let variant = condition.variant { return resolution.variant == variant && resolution.value != nil }
            switch (condition.value, resolution.value) {
            case (.bool(let expected)?, .bool(let actual)?): return expected == actual
            case (.string(let expected)?, .string(let actual)?): return expected == actual
            case (.number(let expected)?, .number(let actual)?): return expected == actual
            default: return false
            }
        }) else {
            throw GatewayError(.noRoute, origin: .client, "no route for this request")
        }
        return Matched(route: route, path: normalized.path, query: normalized.query)
    }

    /// Resolves flags for this request; the caller's flag context is built once, on first use,
    /// and only if a route condition or a forwarded flag needs it.
    private func flagResolver(_ head: HTTPRequest, path: String, context: Context) -> (String) -> Resolution? {
        var flagContext: JSONValue?
        let (identity, state) = (context.identity, context.state)
        let host = head.authority.map(RouteTable.hostName(ofAuthority:))
        return { key in
            guard let flags = self.flags else { return nil }
            if flagContext == nil {
                flagContext = FlagContext.forRequest(identity: identity, state: state, method: head.method.rawValue, path: path, host: host)
            }
            return flags.resolve(key, context: flagContext!)
        }
    }

    /// Takes `matched` as the request's route: its forwarded flags and security headers, and
    /// the answer of a fixed-response route.
    /// `snapshot` is the context's, lent (see `AdmitPhase.admit`); the route is read from
    /// `matched`, where it is lent too, rather than copied.
    func apply(_ matched: Matched, head: HTTPRequest, context: inout Context, snapshot: GatewaySnapshot) -> BufferedAnswer? {
        assert(snapshot === context.snapshot, "route application lent a snapshot other than the context's")
        context.path = matched.path
        context.query = matched.query
        context.route = matched.route
        if let forward = matched.route.forwardFlags {
            let resolve = flagResolver(head, path: matched.path, context: context)
            var value = ""
            for key in forward.keys {
                guard let resolution = resolve(key), resolution.errorCode == nil, resolution.value != nil, let variant = resolution.variant else { continue }
                if !value.isEmpty { value += ", " }
                value += key + "=" + Self.headerSafe(variant)
            }
            context.forwardedFlags = (forward.header, value)
        }
        let headers = snapshot.securityHeaders(for: matched.route)
        var nonce: String?
        if headers?.needsNonce == true {
            var generator = RequestRandom()
            nonce = SecurityHeaders.makeNonce(using: &generator)
        }
        context.cspNonce = nonce
        context.record.note {
            $0.route = matched.route.name
            $0.securityHeaders = headers
            $0.cspNonce = nonce
        }
        if case .respond(let fixed) = matched.route.target {
            context.record.note { $0.bodyBuffered = true }
            var headers: HTTPFields = [:]
            for (name, value) in (fixed.headers ?? [:]).sorted(by: { $0.key < $1.key }) {
                if let field = HTTPField.Name(name) { headers[field] = value }
            }
            if let body = fixed.body {
                headers[.contentType] = fixed.contentType ?? "text/plain; charset=utf-8"
                headers[.contentLength] = String(body.utf8.count)
                return BufferedAnswer(status: .init(code: fixed.status), headers: headers, body: ByteBuffer(string: body))
            }
            headers[.contentLength] = "0"
            return BufferedAnswer(status: .init(code: fixed.status), headers: headers, body: ByteBuffer())
        }
        return nil
    }
}

extension RoutePhase {
    /// The route `head` takes when no flag condition has to be consulted to know it; nil when
    /// the target is invalid, no route matches, or a flag would decide (those requests go the
    /// whole way through the phases). Has no side effects.
    static func routeWithoutFlags(_ head: HTTPRequest, snapshot: GatewaySnapshot) -> Matched? {
        guard let normalized = try? RequestTarget.normalize(head.path ?? "/") else { return nil }
        var consultedFlags = false
        let route = snapshot.routes.match(method: head.method.rawValue, host: head.authority.map(RouteTable.hostName(ofAuthority:)),
                                          path: normalized.path, headers: head.headerFields, flag: { _ in
            consultedFlags = true
            return false
        })
        guard !consultedFlags, let route else { return nil }
        return Matched(route: route, path: normalized.path, query: normalized.query)
    }
}

/// `threat_detection_blocked_requests_total`, by the reason a request was refused.
enum ShieldMetrics {
    static func refused(_ reason: String) {
        Counter(label: "threat_detection_blocked_requests_total", dimensions: [("reason", reason)]).increment()
    }
}

extension HTTPField.Name {
    static let xRequestID = HTTPField.Name("X-Request-Id")!
    static let traceparent = HTTPField.Name("traceparent")!
    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
    static let xForwardedProto = HTTPField.Name("X-Forwarded-Proto")!
    static let xForwardedHost = HTTPField.Name("X-Forwarded-Host")!
    static let forwarded = HTTPField.Name("Forwarded")!
    static let keepAlive = HTTPField.Name("Keep-Alive")!
    static let proxyConnection = HTTPField.Name("Proxy-Connection")!
}

extension RoutePhase {
    /// A variant name as it may appear in a header value: visible ASCII other than `,`, `;`,
    /// `=` and `"`; anything else is percent-encoded.
    static func headerSafe(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            if byte > 0x20, byte < 0x7F, byte != 0x2C, byte != 0x3B, byte != 0x3D, byte != 0x22, byte != 0x25 {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        return out
    }
}
