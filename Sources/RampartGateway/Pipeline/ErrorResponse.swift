import Hummingbird
import HTTPTypes
import NIOCore
import RampartCore
import RampartTelemetry

/// The one place where request-path errors become responses: a status, a small JSON body
/// with the error kind, a safe message and the request id. Details go to the log only.
enum ErrorResponse {
    static func make(status: HTTPResponse.Status, error: String, message: String, requestID: String, close: Bool = false) -> Response {
        answer(status: status, error: error, message: message, requestID: requestID, close: close).response
    }

    static func make(_ error: GatewayError, requestID: String) -> Response { answer(error, requestID: requestID).response }

    static func answer(status: HTTPResponse.Status, error: String, message: String, requestID: String, close: Bool = false) -> BufferedAnswer {
        var body = "{\"error\":"
        appendJSONString(error, to: &body)
        body += ",\"message\":"
        appendJSONString(message, to: &body)
        body += ",\"requestId\":"
        appendJSONString(requestID, to: &body)
        body += "}\n"
        var headers: HTTPFields = [.contentType: "application/json", .contentLength: String(body.utf8.count)]
        if close { headers[.connection] = "close" }
        return BufferedAnswer(status: status, headers: headers, body: ByteBuffer(string: body))
    }

    static func answer(_ error: GatewayError, requestID: String) -> BufferedAnswer {
        answer(status: HTTPResponse.Status(code: error.status), error: error.kind.rawValue, message: error.message, requestID: requestID,
             close: error.origin == .client)
    }
}

/// A response whose body is in memory: what the phases answer themselves (refusals, errors,
/// fixed responses), in a form both the Hummingbird pipeline and the direct path can send.
struct BufferedAnswer {
    var status: HTTPResponse.Status
    var headers: HTTPFields
    var body: ByteBuffer
    /// The upstream's head as it arrived, hop-by-hop fields still in, in place of `headers`:
    /// only the direct path asks for this, and rewrites its fields as it writes the head (see
    /// `DirectForwarding.writeHead`).
    var relayed: UpstreamHead?

    var response: Response {
        assert(relayed == nil, "an upstream's own fields go to the client only through the direct path's rewriting")
        return Response(status: status, headers: headers, body: .init(byteBuffer: body))
    }
}

extension Duration {
    /// Whole seconds, rounded up and at least 1, as `Retry-After` and the `RateLimit` fields
    /// give them: a client told 0 would come back at once.
    var wholeSecondsAtLeastOne: Int { max(1, Int((Double(nanoseconds) / 1e9).rounded(.up))) }
}
