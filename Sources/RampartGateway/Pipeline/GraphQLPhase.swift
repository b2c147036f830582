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
    let `guard`: GraphQLGuard
    let mode: GraphQLRouteConfiguration.Mode
    let maxBodyBytes: Int
    /// Test only: per-request limits and schema from the `Rampart-Conformance` header.
    let conformance: ConformanceOverrides?
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

    /// The guard the header asks for; nil when there is no header; a rejection when it is broken.
    func guardFor(_ headers: HTTPFields) -> Result<GraphQLGuard, GuardRejection>? {
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
        return .success(GraphQLGuard(limits: GuardLimits(conformanceOptions: json["options"] ?? .null), schema: schema, costSettings: costSettings))
    }
}

/// Phase 3b, on GraphQL routes: the request is read as GraphQL over HTTP (POST with a JSON
/// body, or GET with query parameters), the operation is analysed by the guard, and one that
/// breaks a limit is answered here with a GraphQL request error and never reaches the
/// upstream. Accepted requests go on with their body buffered.
struct GraphQLPhase: RouterMiddleware {
    typealias Context = GatewayRequestContext
    let logger: Logger
    let metrics = GraphQLMetrics()

    static let graphQLResponse = "application/graphql-response+json"

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let route = context.route, let compiled = context.snapshot!.graphql[route.order] else { return try await next(request, context) }
        let acceptsGraphQL = request.headers[values: .accept].contains { $0.contains(Self.graphQLResponse) }
        let graphql: GraphQLRoute
        switch compiled {
        case .success(let ready):
            graphql = ready
        case .failure(let issue):
            throw GatewayError(.internalError, origin: .gateway, "the GraphQL guard of this route could not be built: \(issue)")
        }

        var request = request
        var context = context
        /// Enforce mode: the answer to send. Measure mode: a log line, and nil to go on, when
        /// the request can still be forwarded.
        func refusal(_ rejection: GuardRejection, canForward: Bool = true) -> Response? {
            context.record.note { $0.error = "graphql:\(rejection.code)" }
            guard graphql.mode == .measure, canForward else { return Self.answer(rejection, acceptsGraphQL: acceptsGraphQL) }
            logger.notice("graphql: would refuse (measure mode)", metadata: [
                "route": "\(route.name)", "code": "\(rejection.code)", "message": "\(rejection.message)",
            ])
            return nil
        }

        switch await Self.read(&request, context: &context, limit: graphql.maxBodyBytes) {
        case .failure(let rejection):
            metrics.refusedRequest(rejection.code, enforced: graphql.mode == .enforce)
            // A body over the limit has been read only in part and cannot be forwarded.
            if let answer = refusal(rejection, canForward: rejection.code != "PAYLOAD_TOO_LARGE") { return answer }
        case .success(let parameters):
            var analyzer = graphql.guard
            switch graphql.conformance?.guardFor(request.headers) {
            case .failure(let rejection)?: return Self.answer(rejection, acceptsGraphQL: acceptsGraphQL)
            case .success(let asked)?: analyzer = asked
            case nil: break
            }
            let analysis = analyzer.analyze(document: parameters.document, variables: parameters.variables,
                                            operationName: parameters.operationName, isGet: request.method == .get)
            metrics.record(analysis, enforced: graphql.mode == .enforce)
            if let rejection = analysis.rejection, let answer = refusal(rejection) { return answer }
        }
        return try await next(request, context)
    }

    typealias Parameters = (document: String, variables: JSONValue?, operationName: String?)

    /// The request's GraphQL parameters: from the query string for GET, else from the JSON
    /// body, which is read here and put back buffered for forwarding.
    static func read(_ request: inout Request, context: inout Context, limit: Int) async -> Result<Parameters, GuardRejection> {
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
            return parameters(document: document, variables: variables, operationName: operationName)
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
            if case .array = json {
                return .failure(GuardRejection(code: "BATCHING_NOT_ALLOWED", status: 400, message: "Batched operations are not allowed."))
            }
            guard case .object = json else { return .failure(badRequest("the body must be a JSON object")) }
            guard case .string(let document)? = json["query"] else { return .failure(badRequest("query must be a string")) }
            let variables = json["variables"]
            switch variables {
            case nil, .null?, .object?: break
            default: return .failure(badRequest("variables must be an object"))
            }
            switch json["operationName"] {
            case nil, .null?: return parameters(document: document, variables: variables, operationName: nil)
            case .string(let name)?: return parameters(document: document, variables: variables, operationName: name)
            default: return .failure(badRequest("operationName must be a string"))
            }
        default:
            return .failure(GuardRejection(code: "BAD_REQUEST", status: 405, message: "GraphQL is sent with GET or POST."))
        }
    }

    static func parameters(document: String, variables: JSONValue?, operationName: String?) -> Result<Parameters, GuardRejection> {
        .success((document, variables, operationName))
    }

    static func badRequest(_ message: String) -> GuardRejection { GuardRejection(code: "BAD_REQUEST", status: 400, message: message) }

    static func tooLarge(_ limit: Int) -> GuardRejection {
        GuardRejection(code: "PAYLOAD_TOO_LARGE", status: 413, message: "The request body is larger than \(limit) bytes.")
    }

    /// A GraphQL-over-HTTP request error: no `data`, one error with its code and numbers.
    static func answer(_ rejection: GuardRejection, acceptsGraphQL: Bool) -> Response {
        var extensions: [String: JSONValue] = ["code": .string(rejection.code)]
        if let limit = rejection.limit { extensions["limit"] = .number(Double(limit)) }
        if let found = rejection.found { extensions["found"] = .number(Double(found)) }
        let body = JSONValue.object(["errors": .array([.object(["message": .string(rejection.message), "extensions": .object(extensions)])])]).jsonText
        var headers: HTTPFields = [
            .contentType: acceptsGraphQL ? Self.graphQLResponse + "; charset=utf-8" : "application/json; charset=utf-8",
            .contentLength: String(body.utf8.count),
        ]
        if rejection.status == 405 { headers[.allow] = rejection.code == "METHOD_NOT_ALLOWED" ? "POST" : "GET, POST" }
        return Response(status: HTTPResponse.Status(code: rejection.status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
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

    /// A request refused before analysis (not GraphQL over HTTP, too large, a batch).
    func refusedRequest(_ code: String, enforced: Bool) {
        rejections[code].increment()
        operations[enforced || code == "PAYLOAD_TOO_LARGE" ? "rejected" : "measured"].increment()
    }
}
