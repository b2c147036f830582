import Crypto
import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import RampartCore
import RampartFlags

/// OFREP on the traffic listener: `POST /ofrep/v1/evaluate/flags/{key}` and the bulk
/// `POST /ofrep/v1/evaluate/flags`, as `../shared/specs/FEATURE-FLAGS.md` §5 and the OFREP
/// OpenAPI document describe them.
struct OFREPEndpoint: Sendable {
    static let prefix = "/ofrep/v1/evaluate/flags"

    let runtime: FlagRuntime

    /// The answer to a request under `/ofrep/`.
    func answer(_ request: Request, context: GatewayRequestContext, settings: FlagsConfiguration.OFREP,
                tokens: [[UInt8]]) async -> Response {
        let path = request.uri.path
        let key: String?
        if path == Self.prefix || path == Self.prefix + "/" {
            key = nil
        } else if path.hasPrefix(Self.prefix + "/"), let decoded = String(path.dropFirst(Self.prefix.count + 1)).removingPercentEncoding,
                  !decoded.isEmpty, !decoded.contains("/") {
            key = decoded
        } else {
            return Self.json(.notFound, ["errorDetails": .string("no OFREP endpoint at \(path)")])
        }
        guard request.method == .post else {
            var response = Self.json(.methodNotAllowed, ["errorDetails": .string("OFREP evaluations are sent with POST")])
            response.headers[.allow] = "POST"
            return response
        }
        if let refusal = authorize(request, context: context, settings: settings, tokens: tokens) { return refusal }
        func failure(_ status: HTTPResponse.Status, _ code: Resolution.ErrorCode, _ details: String) -> Response {
            var body: [String: JSONValue] = ["errorCode": .string(code.rawValue), "errorDetails": .string(details)]
            if let key { body["key"] = .string(key) }
            return Self.json(status, body)
        }
        let bytes: ByteBuffer
        do {
            bytes = try await request.body.collect(upTo: settings.maxBodyBytes.bytes)
        } catch {
            return failure(.contentTooLarge, .general, "the request body may be at most \(settings.maxBodyBytes)")
        }
        var evaluationContext: [String: JSONValue] = [:]
        if bytes.readableBytes > 0 {
            let body: JSONValue
            do {
                body = try JSONValue(parsing: bytes.readableBytesView)
            } catch {
                return failure(.badRequest, .parseError, "the request body is not JSON: \(error)")
            }
            guard case .object(let members) = body else {
                return failure(.badRequest, .parseError, "the request body must be a JSON object with \"context\"")
            }
            // A context that is not an object is taken as empty, as flagd does.
            evaluationContext = members["context"]?.objectValue ?? [:]
        }
        let merged = FlagContext.merging(evaluationContext, identity: context.identity)
        if let key {
            return single(key, context: merged)
        }
        return bulk(request, context: merged)
    }

    private func single(_ key: String, context: JSONValue) -> Response {
        let resolution = runtime.resolve(key, context: context)
        switch resolution.errorCode {
        case nil: return Self.json(.ok, Self.item(resolution))
        case .flagNotFound?: return Self.json(.notFound, Self.item(resolution))
        case _?: return Self.json(.badRequest, Self.item(resolution))
        }
    }

    private func bulk(_ request: Request, context: JSONValue) -> Response {
        let etag = "\"\(runtime.flags.flagSet.version)\""
        if let match = request.headers[.ifNoneMatch], Self.matches(match, etag: etag) {
            return Response(status: .notModified, headers: [.eTag: etag])
        }
        let (version, resolutions) = runtime.resolveAll(context: context)
        let answer: JSONValue = .object(["flags": .array(resolutions.map { .object(Self.item($0)) }), "metadata": .object([:])])
        var response = Self.json(.ok, answer.objectValue!)
        response.headers[.eTag] = "\"\(version)\""
        return response
    }

    /// One evaluation as OFREP writes it: success `{key, value?, reason, variant?, metadata}`,
    /// failure `{key, errorCode, errorDetails, metadata}`.
    static func item(_ resolution: Resolution) -> [String: JSONValue] {
        var item: [String: JSONValue] = ["key": .string(resolution.key), "metadata": .object(resolution.metadata)]
        if let code = resolution.errorCode {
            item["errorCode"] = .string(code.rawValue)
            if let details = resolution.errorDetails { item["errorDetails"] = .string(details) }
            return item
        }
        item["reason"] = .string(resolution.reason.rawValue)
        if let value = resolution.value { item["value"] = value }
        if let variant = resolution.variant, resolution.value != nil { item["variant"] = .string(variant) }
        return item
    }

    /// `If-None-Match` holding `etag` (strong or weak) or `*`.
    static func matches(_ header: String, etag: String) -> Bool {
        header.split(separator: ",").contains { candidate in
            var tag = candidate.trimmingASCIIWhitespace()
            if tag == "*" { return true }
            if tag.hasPrefix("W/") { tag = tag.dropFirst(2) }
            return tag == etag
        }
    }

    private func authorize(_ request: Request, context: GatewayRequestContext, settings: FlagsConfiguration.OFREP,
                           tokens: [[UInt8]]) -> Response? {
        switch settings.auth {
        case .open:
            return nil
        case .identity:
            if context.identity.method != .anonymous { return nil }
            var response = Self.json(.unauthorized, ["errorDetails": .string(context.identityError.map { "\($0)" } ?? "credentials are required")])
            response.headers[.wwwAuthenticate] = "Bearer realm=\"ofrep\""
            return response
        case .token:
            let presented = request.headers[.authorization].flatMap { value -> Substring? in
                value.lowercased().hasPrefix("bearer ") ? value.dropFirst(7).trimmingASCIIWhitespace() : nil
            } ?? request.headers[HTTPField.Name("X-API-Key")!].map { Substring($0) }
            if let presented {
                let digest = Array(SHA256.hash(data: Array(presented.utf8)))
                // Every token is compared, in constant time, so timing tells nothing.
                var found = false
                for token in tokens where constantTimeEqual(token, digest) { found = true }
                if found { return nil }
                return Self.json(.forbidden, ["errorDetails": .string("the token is not accepted")])
            }
            var response = Self.json(.unauthorized, ["errorDetails": .string("send Authorization: Bearer <token> or X-API-Key")])
            response.headers[.wwwAuthenticate] = "Bearer realm=\"ofrep\""
            return response
        }
    }

    static func json(_ status: HTTPResponse.Status, _ body: [String: JSONValue]) -> Response {
        var text = JSONValue.object(body).jsonText
        text += "\n"
        return Response(status: status, headers: [.contentType: "application/json", .contentLength: String(text.utf8.count)],
                        body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// The evaluation context the gateway builds for a caller.
enum FlagContext {
    /// An OFREP context with the caller's verified identity over it: the user becomes the
    /// `targetingKey`, with `tenant` and `roles`. Verified facts win over what the body claims.
    static func merging(_ context: [String: JSONValue], identity: Identity) -> JSONValue {
        var merged = context
        if let user = identity.user {
            merged["targetingKey"] = .string(user)
            merged["user"] = .string(user)
        }
        if let tenant = identity.tenant { merged["tenant"] = .string(tenant) }
        if identity.method != .anonymous { merged["roles"] = .array(identity.roles.map(JSONValue.string)) }
        return .object(merged)
    }

    /// The context for flags the gateway resolves itself (route matches, forwarded flags): the
    /// identity, and for anonymous callers the client address as `targetingKey`, so they too
    /// keep their answer from request to request.
    static func forRequest(identity: Identity, state: RequestState, method: String, path: String, host: String?) -> JSONValue {
        var context: [String: JSONValue] = ["method": .string(method), "path": .string(path)]
        if let host { context["host"] = .string(host) }
        if let client = state.clientAddress?.description {
            context["clientAddress"] = .string(client)
            context["targetingKey"] = .string(client)
        }
        if let country = state.country { context["country"] = .string(country) }
        return merging(context, identity: identity)
    }
}
