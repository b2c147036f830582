/// An error on the request path, after `pingora-error`: what went wrong, on which side, and
/// whether trying another instance may help. The gateway maps it to a status and a small JSON
/// body in one place; the underlying error goes to the log only.
public struct GatewayError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public enum Kind: String, Sendable, Hashable {
        case connectRefused = "connect_refused"
        case connectTimeout = "connect_timeout"
        case firstByteTimeout = "first_byte_timeout"
        case idleTimeout = "idle_timeout"
        case totalTimeout = "total_timeout"
        case upstreamReset = "upstream_reset"
        case upstreamStatus = "upstream_status"
        case noHealthyInstance = "no_healthy_instance"
        case noRoute = "no_route"
        case bodyTooLarge = "body_too_large"
        case clientBodyTimeout = "client_body_timeout"
        case clientClosed = "client_closed"
        case badRequest = "bad_request"
        case internalError = "internal"
    }

    /// Which side caused it.
    public enum Origin: String, Sendable, Hashable {
        case client, upstream, gateway
    }

    public let kind: Kind
    public let origin: Origin
    /// Whether the request may be sent again to another instance (the caller still checks
    /// that the method is idempotent and that the request body has not been consumed).
    public let isRetryable: Bool
    /// A short, safe explanation; never contains request data.
    public let message: String
    public let underlying: (any Error)?

    public init(_ kind: Kind, origin: Origin, retryable: Bool = false, _ message: String, underlying: (any Error)? = nil) {
        self.kind = kind
        self.origin = origin
        self.isRetryable = retryable
        self.message = message
        self.underlying = underlying
    }

    /// The HTTP status this error is answered with.
    public var status: Int {
        switch kind {
        case .connectRefused, .upstreamReset, .upstreamStatus: 502
        case .connectTimeout, .firstByteTimeout, .idleTimeout, .totalTimeout: 504
        case .noHealthyInstance: 503
        case .noRoute: 404
        case .bodyTooLarge: 413
        case .clientBodyTimeout: 408
        case .clientClosed: 499
        case .badRequest: 400
        case .internalError: 500
        }
    }

    public var description: String {
        var text = "\(kind.rawValue) (\(origin.rawValue)): \(message)"
        if let underlying { text += " [\(underlying)]" }
        return text
    }
}
