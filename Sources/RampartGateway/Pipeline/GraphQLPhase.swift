import Hummingbird
import HTTPTypes
import Logging
import Metrics
import NIOCore
import RampartCore
import RampartGraphQL
import Synchronization

/// A GraphQL route's compiled settings.
struct GraphQLRoute: Sendable {
    var `guard`: GraphQLGuard
    var mode: GraphQLRouteConfiguration.Mode
    var maxBodyBytes: Int
    /// Names the upstream in cache keys: the pool and the route's path prefix.
    var upstream: String
    /// The response cache's settings, when it is on.
    var cache: GraphQLCacheConfiguration?
    var forwardNormalized: Bool
    /// Test only: per-request limits and schema from the `Rampart-Conformance` header.
    var conformance: ConformanceOverrides?
}

/// The shared conformance runner's protocol (test only, loopback only): a request's
/// `Rampart-Conformance` header holds base64url JSON `{"schema": FILE, "options": {...}}`;
/// the guard for that request takes the options over the vectors' baseline and the schema
/// named, read from one folder (and kept once read).
final class ConformanceOverrides: Sendable {
    static let header = HTTPField.Name("Rampart-Conformance")!
    let directory: String
    let costSettings: CostSettings
    private let schemas = Mutex<[String: Schema]>([:])

    init(directory: String, costSettings: CostSettings) {
        self.directory = directory
        self.costSettings = costSettings
    }

    /// The route's settings as the header asks for them; nil when there is no header; a
    /// rejection when it is broken. Cache settings in the options (`defaultTtl`, `maxTtl` in
    /// seconds, `scope`, `mutationInvalidates`, `invalidateReturnedTypes`) override the route's.
    func route(_ headers: HTTPFields, base: GraphQLRoute) -> Result<GraphQLRoute, GuardRejection>? {
        guard let value = headers[Self.header] else { return nil }
        guard let bytes = Base64URL.decode(value), let json = try? JSONValue(parsing: bytes, maxDepth: 16) else {
            return .failure(GuardRejection(code: "BAD_REQUEST", status: 400, message: "the Rampart-Conformance header is not base64url JSON"))
        }
        var schema: Schema?
        if case .string(let file)? = json["schema"] {
            guard !file.contains("/"), !file.hasPrefix(".") else {
                return .failure(GuardRejection(code: "BAD_REQUEST", status: 400, message: "a conformance schema is a file name in the schema folder"))
            }
            if let known = schemas.withLock({ $0[file] }) {
                schema = known
            } else {
                do {
                    let read = try Schema(sdl: try FileText.read(directory + "/" + file))
                    schemas.withLock { $0[file] = read }
                    schema = read
                } catch {
                    return .failure(GuardRejection(code: "BAD_REQUEST", status: 400, message: "conformance schema \(file): \(error)"))
                }
            }
        }
        let options = json["options"] ?? .null
        var route = base
        route.guard = GraphQLGuard(limits: GuardLimits(conformanceOptions: options), schema: schema, costSettings: costSettings)
        if var cache = route.cache {
            let settings = options["cache"] ?? options
            if let seconds = settings["defaultTtl"]?.numberValue { cache.defaultTtl = .seconds(seconds) }
            if let seconds = settings["maxTtl"]?.numberValue { cache.maxTtl = .seconds(seconds) }
            if let scope = settings["scope"]?.stringValue.flatMap(GraphQLCacheConfiguration.Scope.init(rawValue:)) { cache.scope = scope }
            if case .bool(let returned)? = settings["invalidateReturnedTypes"] { cache.invalidateReturnedTypes = returned }
            if case .object(let fields)? = settings["mutationInvalidates"] {
                cache.mutationInvalidates = fields.mapValues { ($0.arrayValue ?? []).compactMap(\.stringValue) }
            }
            route.cache = cache
        }
        return .success(route)
    }
}

/// Phase 3b, on GraphQL routes: the request is read as GraphQL over HTTP (POST with a JSON
/// body, a batch of them when the route allows, or GET with query parameters), each operation
/// is analysed by the guard, and one that breaks a limit is answered here with a GraphQL
/// request error and never reaches the upstream. Accepted queries are answered from the
/// response cache when the route has one; mutations purge what they touched.
struct GraphQLPhase: RouterMiddleware {
    typealias Context = GatewayRequestContext
    let logger: Logger
    let cache: GraphQLCacheStore
    let metrics = GraphQLMetrics()

    static let graphQLResponse = "application/graphql-response+json"
    static let suggestionMarker = Array("Did you mean".utf8)

    /// One request's facts every step needs.
    struct Exchange {
        let route: GraphQLRoute
        let routeName: String
        let acceptsGraphQL: Bool
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let route = context.route, let compiled = context.snapshot!.graphql[route.order] else { return try await next(request, context) }
        let acceptsGraphQL = request.headers[values: .accept].contains { $0.contains(Self.graphQLResponse) }
        var graphql: GraphQLRoute
        switch compiled {
        case .success(let ready):
            graphql = ready
        case .failure(let issue):
            throw GatewayError(.internalError, origin: .gateway, "the GraphQL guard of this route could not be built: \(issue)")
        }
        switch graphql.conformance?.route(request.headers, base: graphql) {
        case .failure(let rejection)?: return Self.answer(rejection, acceptsGraphQL: acceptsGraphQL)
        case .success(let asked)?: graphql = asked
        case nil: break
        }
        let exchange = Exchange(route: graphql, routeName: route.name, acceptsGraphQL: acceptsGraphQL)

        var request = request
        var context = context
        switch await Self.read(&request, context: &context, limit: graphql.maxBodyBytes, limits: graphql.guard.limits) {
        case .failure(let rejection):
            metrics.refusedRequest(rejection.code, enforced: graphql.mode == .enforce)
            // A body over the limit has been read only in part and cannot be forwarded.
            if let answer = refusal(rejection, exchange, context: context, canForward: rejection.code != "PAYLOAD_TOO_LARGE") { return answer }
            return try await next(request, context)
        case .success(.single(let parameters)):
            return try await single(parameters, exchange, request: request, context: context, next: next)
        case .success(.batch(let entries)):
            return try await batch(entries, exchange, request: request, context: context, next: next)
        }
    }

    /// Enforce mode: the answer to send. Measure mode: a log line, and nil to go on, when the
    /// request can still be forwarded.
    func refusal(_ rejection: GuardRejection, _ exchange: Exchange, context: Context, canForward: Bool = true) -> Response? {
        context.record.note { $0.error = "graphql:\(rejection.code)" }
        guard exchange.route.mode == .measure, canForward else { return Self.answer(rejection, acceptsGraphQL: exchange.acceptsGraphQL) }
        logger.notice("graphql: would refuse (measure mode)", metadata: [
            "route": "\(exchange.routeName)", "code": "\(rejection.code)", "message": "\(rejection.message)",
        ])
        return nil
    }

    func analyze(_ parameters: Parameters, _ exchange: Exchange, isGet: Bool) -> GuardAnalysis {
        let analysis = exchange.route.guard.analyze(document: parameters.document, variables: parameters.variables,
                                                    operationName: parameters.operationName, isGet: isGet)
        metrics.record(analysis, enforced: exchange.route.mode == .enforce)
        return analysis
    }

    // MARK: - One operation

    func single(_ parameters: Parameters, _ exchange: Exchange, request: Request, context: Context,
                next: (Request, Context) async throws -> Response) async throws -> Response {
        var request = request
        var context = context
        let analysis = analyze(parameters, exchange, isGet: request.method == .get)
        if let rejection = analysis.rejection {
            if let answer = refusal(rejection, exchange, context: context) { return answer }
            return try await next(request, context)
        }
        guard let operation = analysis.selected, let document = analysis.document else { return try await next(request, context) }
        let route = exchange.route
        let normalized = route.cache != nil || route.forwardNormalized ? Normalizer(document: document).normalize(operation) : nil
        if route.forwardNormalized, request.method == .post, let normalized {
            var body: [String: JSONValue] = ["query": .string(normalized)]
            if let variables = parameters.variables { body["variables"] = variables }
            if let name = parameters.operationName { body["operationName"] = .string(name) }
            Self.replaceBody(&request, context: &context, with: JSONValue.object(body).jsonText)
        }
        guard let settings = route.cache else {
            return try await masked(next(request, context), route, limit: ForwardPhase.bufferedBodyLimit)
        }
        switch operation.kind {
        case .query where !document.usesIncrementalDelivery(operation):
            let (scope, perCaller) = Self.scope(settings, request: request, identity: context.identity)
            let key = CacheKey.make(upstream: route.upstream, document: normalized!, operationName: operation.name,
                                    variables: analysis.variables, scope: scope)
            if let stored = await cache.lookup(key) {
                return Self.hit(stored, now: cache.now(), perCaller: perCaller)
            }
            let response = try await next(request, context)
            let (answer, json) = try await collect(response, limit: settings.maxEntryBytes.bytes)
            guard let answer else { return Self.marked(response, .bypass) }
            guard let json else { return Self.marked(answer.response, .bypass) }
            var stored = false
            if answer.status == .ok, let data = json["data"], !data.isNull, json["errors"] == nil {
                var freshness = CacheFreshness(cacheControl: answer.headers[.cacheControl], extensions: json["extensions"])
                if let hint = route.guard.schema?.cacheHint(for: operation, in: document) { freshness.apply(hint) }
                if let ttl = freshness.ttl(defaultTtl: settings.defaultTtl.map { Int($0.seconds) }, maxTtl: Int(settings.maxTtl.seconds),
                                           scopedPerUser: perCaller) {
                    let now = cache.now()
                    let tags = CacheTags(data: data, keyFields: settings.keyFields).all.sorted()
                    await cache.store(key, CachedAnswer(body: answer.body, contentType: answer.headers[.contentType] ?? "application/json",
                                                        cacheControl: answer.headers[.cacheControl], storedAt: now,
                                                        expiresAt: now + Double(ttl), tags: tags))
                    stored = true
                }
            }
            var miss = finished(answer, json: json, route)
            miss.headers[.cacheStatus] = stored ? "rampart; fwd=uri-miss; stored" : "rampart; fwd=uri-miss"
            miss.headers[.xCache] = "MISS"
            if perCaller { miss.headers[.cacheControl] = Self.privateCacheControl(miss.headers[.cacheControl]) }
            return miss
        case .mutation:
            let response = try await next(request, context)
            let (answer, json) = try await collect(response, limit: settings.maxEntryBytes.bytes)
            await invalidate(after: operation, in: document, answer: json, settings)
            guard let answer else { return Self.marked(response, .method) }
            guard let json else { return Self.marked(answer.response, .method) }
            return Self.marked(finished(answer, json: json, route), .method)
        default:
            return Self.marked(try await masked(next(request, context), route, limit: settings.maxEntryBytes.bytes), .bypass)
        }
    }

    /// After a mutation: purge the type tags configured for its root fields, and, when it
    /// answered with data, every entity found there (and every type, when asked).
    func invalidate(after operation: Operation, in document: Document, answer json: JSONValue?, _ settings: GraphQLCacheConfiguration) async {
        var tags: Set<String> = []
        for name in document.rootFieldNames(of: operation) { tags.formUnion(settings.mutationInvalidates[name] ?? []) }
        if let data = json?["data"], !data.isNull {
            let found = CacheTags(data: data, keyFields: settings.keyFields)
            tags.formUnion(found.entities)
            if settings.invalidateReturnedTypes { tags.formUnion(found.types) }
        }
        let purged = await cache.purge(tags: tags)
        if purged > 0 { logger.debug("graphql cache: mutation purged entries", metadata: ["entries": "\(purged)"]) }
    }

    /// The caller dimension of the key, and whether it is per caller (then `private` answers
    /// may be kept, and answers say `private`). Credentials are `Authorization`, cookies, and
    /// whoever the identity layer recognized.
    static func scope(_ settings: GraphQLCacheConfiguration, request: Request, identity: Identity) -> (String, Bool) {
        var credential = request.headers[values: .authorization].joined(separator: "\n")
        let cookies = request.headers[values: .cookie].joined(separator: "; ")
        if !cookies.isEmpty { credential += "\ncookie:" + cookies }
        // A caller the identity layer knows (an API key in its own header, say) is a credential too.
        if identity.method != .anonymous {
            credential += "\nidentity:\(identity.method.rawValue):\(identity.user ?? ""):\(identity.tenant ?? ""):\(identity.apiKey ?? "")"
        }
        let byCredential = credential.isEmpty ? ("public", false) : (CacheKey.credentialScope(credential), true)
        var (scope, perCaller): (String, Bool)
        switch settings.scope {
        case .public: (scope, perCaller) = ("public", false)
        case .credential: (scope, perCaller) = byCredential
        case .tenant: (scope, perCaller) = identity.tenant.map { ("tenant:" + $0, false) } ?? byCredential
        case .user: (scope, perCaller) = identity.user.map { ("user:" + $0, true) } ?? byCredential
        }
        for name in settings.varyHeaders {
            guard let field = HTTPField.Name(name) else { continue }
            scope += "\n" + field.canonicalName + "=" + request.headers[values: field].joined(separator: ",")
        }
        return (scope, perCaller)
    }

    static func privateCacheControl(_ upstream: String?) -> String {
        let kept = (upstream ?? "").split(separator: ",").map { $0.trimmingASCIIWhitespace() }
            .filter { !$0.isEmpty && !$0.lowercased().hasPrefix("public") && !$0.lowercased().hasPrefix("s-maxage") && $0.lowercased() != "private" }
        return (["private"] + kept).joined(separator: ", ")
    }

    static func hit(_ stored: CachedAnswer, now: Double, perCaller: Bool) -> Response {
        let age = max(0, Int(now - stored.storedAt))
        var headers: HTTPFields = [
            .contentType: stored.contentType,
            .contentLength: String(stored.body.count),
            .age: String(age),
            .cacheStatus: "rampart; hit; ttl=\(max(0, Int(stored.expiresAt - now)))",
            .xCache: "HIT",
        ]
        if perCaller {
            headers[.cacheControl] = privateCacheControl(stored.cacheControl)
        } else if let cacheControl = stored.cacheControl {
            headers[.cacheControl] = cacheControl
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: stored.body)))
    }

    enum Bypass: String {
        case bypass, method
    }

    static func marked(_ response: Response, _ why: Bypass) -> Response {
        var response = response
        response.headers[.cacheStatus] = "rampart; fwd=\(why.rawValue)"
        response.headers[.xCache] = "BYPASS"
        return response
    }

    // MARK: - Answers read whole

    struct Collected {
        var status: HTTPResponse.Status
        var headers: HTTPFields
        var body: [UInt8]

        /// The answer as read, to send on unchanged (its body has been consumed).
        var response: Response {
            Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
    }

    /// The upstream answer read whole when it declares a JSON body of at most `limit` bytes,
    /// with the JSON; nil (and the response left unread) otherwise.
    func collect(_ response: Response, limit: Int) async throws -> (Collected?, JSONValue?) {
        guard let answer = try await read(response, limit: limit) else { return (nil, nil) }
        return (answer, try? JSONValue(parsing: answer.body, maxDepth: 512))
    }

    /// The upstream answer's bytes, when it declares a JSON body of at most `limit` bytes.
    func read(_ response: Response, limit: Int) async throws -> Collected? {
        // A streamed body (over the forward phase's buffering size) still has the length
        // its upstream declared.
        guard let length = response.body.contentLength ?? response.headers[.contentLength].flatMap(Int.init), length <= limit,
              response.headers[.contentType].map({ $0.lowercased().contains("json") }) ?? false else { return nil }
        let sink = BodyCollector(limit: limit)
        try await response.body.write(sink)
        return Collected(status: response.status, headers: response.headers, body: sink.bytes)
    }

    /// An answer to send on: its `Did you mean` clauses masked when the route asks.
    func finished(_ answer: Collected, json: JSONValue, _ route: GraphQLRoute) -> Response {
        var body = answer.body
        if let masked = route.guard.limits.masking(answer: json) { body = Array(masked.jsonText.utf8) }
        var headers = answer.headers
        headers[.contentLength] = String(body.count)
        return Response(status: answer.status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// `response` with suggestions masked, when it is JSON of a size that may be read whole.
    func masked(_ response: Response, _ route: GraphQLRoute, limit: Int) async throws -> Response {
        guard route.guard.limits.maskSuggestions else { return response }
        guard let answer = try await read(response, limit: limit) else { return response }
        // Only an answer that holds a suggestion is parsed and written again.
        guard answer.body.firstRange(of: Self.suggestionMarker) != nil, let json = try? JSONValue(parsing: answer.body, maxDepth: 512) else {
            return answer.response
        }
        return finished(answer, json: json, route)
    }

    // MARK: - Batches

    /// Every entry is guarded on its own; refused entries are answered here, the accepted
    /// ones go upstream as one smaller batch, and the answer is put back in request order.
    func batch(_ entries: [(sent: JSONValue, parameters: Result<Parameters, GuardRejection>)], _ exchange: Exchange, request: Request, context: Context,
               next: (Request, Context) async throws -> Response) async throws -> Response {
        var request = request
        var context = context
        let route = exchange.route
        var analyses: [Result<GuardAnalysis, GuardRejection>] = []
        for entry in entries {
            switch entry.parameters {
            case .success(let parameters):
                let analysis = analyze(parameters, exchange, isGet: false)
                analyses.append(analysis.rejection.map { .failure($0) } ?? .success(analysis))
            case .failure(let rejection):
                metrics.refusedRequest(rejection.code, enforced: route.mode == .enforce)
                analyses.append(.failure(rejection))
            }
        }
        let refused = analyses.indices.filter { if case .failure = analyses[$0] { true } else { false } }
        for index in refused {
            if case .failure(let rejection) = analyses[index] { _ = refusal(rejection, exchange, context: context) }
        }
        let accepted = analyses.indices.filter { !refused.contains($0) }
        let mutations: [(Int, Operation, Document)] = accepted.compactMap { index in
            guard case .success(let analysis) = analyses[index], let operation = analysis.selected, operation.kind == .mutation,
                  let document = analysis.document else { return nil }
            return (index, operation, document)
        }
        let limit = route.cache?.maxEntryBytes.bytes ?? route.maxBodyBytes
        if refused.isEmpty || route.mode == .measure {
            // Everything goes: the body as sent, the answer as given (mutations still purge).
            let response = try await next(request, context)
            guard route.cache != nil || route.guard.limits.maskSuggestions else { return response }
            let (answer, json) = try await collect(response, limit: limit)
            if let settings = route.cache {
                for (index, operation, document) in mutations {
                    await invalidate(after: operation, in: document, answer: json?.arrayValue.flatMap { index < $0.count ? $0[index] : nil }, settings)
                }
            }
            guard let answer else { return response }
            guard let json else { return answer.response }
            return finished(answer, json: json, route)
        }
        var answers = analyses.map { result -> JSONValue? in
            guard case .failure(let rejection) = result else { return nil }
            return Self.errorBody(rejection)
        }
        if !accepted.isEmpty {
            Self.replaceBody(&request, context: &context, with: JSONValue.array(accepted.map { entries[$0].sent }).jsonText)
            let response = try await next(request, context)
            let (_, json) = try await collect(response, limit: limit)
            guard case .array(let upstream)? = json, upstream.count == accepted.count else {
                throw GatewayError(.upstreamStatus, origin: .upstream,
                                   "the upstream did not answer the batch of \(accepted.count) with as many results (status \(response.status.code))")
            }
            for (position, index) in accepted.enumerated() { answers[index] = upstream[position] }
            if let settings = route.cache {
                for (index, operation, document) in mutations { await invalidate(after: operation, in: document, answer: answers[index], settings) }
            }
        }
        let merged = JSONValue.array(answers.map { $0 ?? .null })
        let text = (route.guard.limits.masking(answer: merged) ?? merged).jsonText
        return Response(status: .ok, headers: [
            .contentType: exchange.acceptsGraphQL ? Self.graphQLResponse + "; charset=utf-8" : "application/json; charset=utf-8",
            .contentLength: String(text.utf8.count),
        ], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// Puts a new JSON body in place of the one read.
    static func replaceBody(_ request: inout Request, context: inout Context, with text: String) {
        let buffer = ByteBuffer(string: text)
        var head = request.head
        head.headerFields[.contentLength] = String(buffer.readableBytes)
        request = Request(head: head, body: RequestBody(buffer: buffer))
        context.bufferedBody = buffer
    }

    // MARK: - Reading the request

    typealias Parameters = (document: String, variables: JSONValue?, operationName: String?)

    enum Payload {
        case single(Parameters)
        /// Each entry as sent (what goes upstream if it passes) and its parameters.
        case batch([(sent: JSONValue, parameters: Result<Parameters, GuardRejection>)])
    }

    /// The request's GraphQL parameters: from the query string for GET, else from the JSON
    /// body, which is read here and put back buffered for forwarding.
    static func read(_ request: inout Request, context: inout Context, limit: Int, limits: GuardLimits) async -> Result<Payload, GuardRejection> {
        switch request.method {
        case .get:
            let query = request.uri.queryParameters
            guard let document = query["query"].map(String.init) else { return .failure(badRequest("a GET request needs a query parameter")) }
            var variables: JSONValue?
            if let text = query["variables"], !text.isEmpty {
                guard let parsed = try? JSONValue(parsing: Array(String(text).utf8), maxDepth: 64) else {
                    return .failure(badRequest("the variables parameter is not JSON"))
                }
                variables = parsed
            }
            let operationName = query["operationName"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
            return .success(.single((document, variables, operationName)))
        case .post:
            if let type = request.headers[.contentType]?.lowercased(), !type.hasPrefix("application/json"), !type.hasPrefix(Self.graphQLResponse) {
                return .failure(badRequest("Content-Type must be application/json, got \(type)"))
            }
            if let declared = request.headers[.contentLength].flatMap(Int.init), declared > limit {
                return .failure(tooLarge(limit))
            }
            let buffer: ByteBuffer
            do {
                buffer = try await request.body.collect(upTo: limit)
            } catch {
                return .failure(tooLarge(limit))
            }
            request.body = RequestBody(buffer: buffer)
            context.bufferedBody = buffer
            guard let json = try? JSONValue(parsing: buffer.readableBytesView, maxDepth: 64) else {
                return .failure(badRequest("the body is not JSON"))
            }
            if case .array(let entries) = json {
                guard limits.batching else {
                    return .failure(GuardRejection(code: "BATCHING_NOT_ALLOWED", status: 400, message: "Batched operations are not allowed."))
                }
                guard !entries.isEmpty else { return .failure(badRequest("a batch holds at least one operation")) }
                guard entries.count <= limits.maxBatchSize else {
                    return .failure(GuardRejection(code: "BATCH_LIMIT_EXCEEDED", status: 400,
                                                   message: "Batch limit of \(limits.maxBatchSize) exceeded, found \(entries.count).",
                                                   limit: limits.maxBatchSize, found: entries.count))
                }
                return .success(.batch(entries.map { ($0, parameters(of: $0)) }))
            }
            return parameters(of: json).map(Payload.single)
        default:
            return .failure(GuardRejection(code: "BAD_REQUEST", status: 405, message: "GraphQL is sent with GET or POST."))
        }
    }

    /// One operation's parameters from its JSON object.
    static func parameters(of json: JSONValue) -> Result<Parameters, GuardRejection> {
        guard case .object = json else { return .failure(badRequest("an operation is a JSON object")) }
        guard case .string(let document)? = json["query"] else { return .failure(badRequest("query must be a string")) }
        let variables = json["variables"]
        switch variables {
        case nil, .null?, .object?: break
        default: return .failure(badRequest("variables must be an object"))
        }
        switch json["operationName"] {
        case nil, .null?: return .success((document, variables, nil))
        case .string(let name)?: return .success((document, variables, name))
        default: return .failure(badRequest("operationName must be a string"))
        }
    }

    static func badRequest(_ message: String) -> GuardRejection { GuardRejection(code: "BAD_REQUEST", status: 400, message: message) }

    static func tooLarge(_ limit: Int) -> GuardRejection {
        GuardRejection(code: "PAYLOAD_TOO_LARGE", status: 413, message: "The request body is larger than \(limit) bytes.")
    }

    /// A GraphQL-over-HTTP request error: no `data`, one error with its code and numbers.
    static func errorBody(_ rejection: GuardRejection) -> JSONValue {
        var extensions: [String: JSONValue] = ["code": .string(rejection.code)]
        if let limit = rejection.limit { extensions["limit"] = .number(Double(limit)) }
        if let found = rejection.found { extensions["found"] = .number(Double(found)) }
        return .object(["errors": .array([.object(["message": .string(rejection.message), "extensions": .object(extensions)])])])
    }

    static func answer(_ rejection: GuardRejection, acceptsGraphQL: Bool) -> Response {
        let body = errorBody(rejection).jsonText
        var headers: HTTPFields = [
            .contentType: acceptsGraphQL ? Self.graphQLResponse + "; charset=utf-8" : "application/json; charset=utf-8",
            .contentLength: String(body.utf8.count),
        ]
        if rejection.status == 405 { headers[.allow] = rejection.code == "METHOD_NOT_ALLOWED" ? "POST" : "GET, POST" }
        return Response(status: HTTPResponse.Status(code: rejection.status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

/// Reads a response body into memory, up to a limit.
final class BodyCollector: ResponseBodyWriter {
    let limit: Int
    var bytes: [UInt8] = []

    init(limit: Int) { self.limit = limit }

    func write(_ buffer: ByteBuffer) async throws {
        guard bytes.count + buffer.readableBytes <= limit else {
            throw GatewayError(.upstreamStatus, origin: .upstream, "the upstream sent more than the \(limit) bytes it declared")
        }
        bytes.append(contentsOf: buffer.readableBytesView)
    }

    func write(contentsOf buffers: some Sequence<ByteBuffer>) async throws {
        for buffer in buffers { try await write(buffer) }
    }

    func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

extension HTTPField.Name {
    static let cacheStatus = HTTPField.Name("Cache-Status")!
    static let xCache = HTTPField.Name("X-Cache")!
}

/// `graphql_query_operations_total{result}` (accepted, rejected, or measured: would have been
/// rejected in measure mode), `graphql_query_rejections_total{limit}` by error code, and the
/// cost and depth of analysed operations as histograms.
final class GraphQLMetrics: Sendable {
    private let operations = MetricHandles<String, Counter> { Counter(label: "graphql_query_operations_total", dimensions: [("result", $0)]) }
    private let rejections = MetricHandles<String, Counter> { Counter(label: "graphql_query_rejections_total", dimensions: [("limit", $0)]) }
    private let cost = Recorder(label: "graphql_query_cost")
    private let depth = Recorder(label: "graphql_query_depth")

    func record(_ analysis: GuardAnalysis, enforced: Bool) {
        if let worst = analysis.worst { depth.record(worst.depth) }
        if let value = analysis.cost { cost.record(value) }
        guard let rejection = analysis.rejection else {
            operations["accepted"].increment()
            return
        }
        rejections[rejection.code].increment()
        operations[enforced ? "rejected" : "measured"].increment()
    }

    /// A request refused before analysis (not GraphQL over HTTP, too large, a batch), or a
    /// batch entry that is not an operation.
    func refusedRequest(_ code: String, enforced: Bool) {
        rejections[code].increment()
        operations[enforced || code == "PAYLOAD_TOO_LARGE" ? "rejected" : "measured"].increment()
    }
}
