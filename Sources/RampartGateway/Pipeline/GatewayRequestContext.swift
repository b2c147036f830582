public import Hummingbird
public import RampartCore
public import RampartIdentity
public import RampartShield
import Logging
import NIOCore
import Synchronization
public import HTTPTypes

/// The per-request context of the traffic listener: Hummingbird's core storage, the request
/// state flowing inward, and the record box whose facts flow outward to the record phase.
public struct GatewayRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// What the phases learned, inward.
    public var state: RequestState
    /// What the record phase needs after the response, outward.
    public let record: RequestRecord
    /// The configuration generation pinned for this request.
    public var snapshot: GatewaySnapshot?
    /// The route chosen by the route phase.
    public var route: CompiledRoute?
    /// The normalized path and raw query, set by the route phase.
    public var path: String = "/"
    public var query: String?
    /// The Content-Security-Policy nonce, sent upstream as `X-CSP-Nonce` (set by the route phase).
    public var cspNonce: String?
    /// The whole request body, when a phase has already read all of it (the inspect phase,
    /// for a body within its inspection size): forwarded in one write rather than streamed.
    public var bufferedBody: ByteBuffer?
    /// Who is calling (set by the identify phase); anonymous without credentials.
    public var identity = Identity.anonymous
    /// The credential the caller sent but that was refused: a 401 on routes that require
    /// identity, anonymous elsewhere.
    public var identityError: TokenError?
    /// The flags header for the upstream (`forwardFlags` on the route): its name and value;
    /// an empty value removes whatever the client sent under that name.
    public var forwardedFlags: (name: HTTPField.Name, value: String)?
    /// The connection (for HTTP/2, the stream) the request arrived on.
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        self.init(core: .init(source: source), channel: source.channel,
                  peer: source.channel.remoteAddress.flatMap(IPAddress.init(socketAddress:)))
    }

    /// A context whose Hummingbird part is `core`, made before, for a request from `peer`,
    /// known already (the direct path makes both once per connection, see `DirectForwarding`).
    /// `record`: an empty one to use (the direct path's, see `RequestRecord.reused`), else a new one.
    init(core: CoreRequestContextStorage, channel: any Channel, peer: IPAddress?, record: RequestRecord? = nil) {
        self.coreContext = core
        self.channel = channel
        self.record = record ?? RequestRecord()
        self.state = RequestState(peerAddress: peer, isSecure: false)
    }

    /// The logger with the request's id (once the identify phase has chosen it): made when
    /// something is logged rather than for every request.
    var requestLogger: Logger {
        guard !state.requestID.isEmpty else { return logger }
        var logger = self.logger
        logger[metadataKey: "request_id"] = .string(state.requestID)
        return logger
    }
}

/// Facts for the access log and metrics, written by inner phases and read once the response
/// body is written. One lock per request, taken a handful of times.
public final class RequestRecord: Sendable {
    public struct Facts: Sendable {
        public var requestID = ""
        /// Kept as values and written as text only if logged.
        public var trace: TraceContext?
        public var clientAddress: IPAddress?
        public var route: String?
        public var pool: String?
        public var instance: String?
        public var attempts = 0
        public var upstreamSeconds: Double?
        public var error: String?
        public var closeConnection = false
        /// The response body is in memory (fixed answers, errors, small upstream answers).
        public var bodyBuffered = false
        /// The security headers of the chosen route (with `route` set; maybe none).
        public var securityHeaders: SecurityHeaders?
        /// The Content-Security-Policy nonce of this response, when the policy asks for one.
        public var cspNonce: String?
        /// The anomaly score and the most severe rule, when threat detection found something.
        public var threatScore: Int?
        public var threatRule: String?
    }

    private let facts = Mutex(Facts())

    public init() {}

    /// The record for a connection's next request, kept in `record` for the one after: the one
    /// kept there, emptied, when nothing else holds it any more (the last request's answer and
    /// log line are done with it), else a new record. A connection's requests, one after
    /// another, then share one.
    static func reused(_ record: inout RequestRecord?) -> RequestRecord {
        let next: RequestRecord
        if var kept = record.take(), isKnownUniquelyReferenced(&kept) {
            kept.facts.withLock { $0 = Facts() }
            next = kept
        } else {
            next = RequestRecord()
        }
        record = next
        return next
    }

    public func note(_ body: (inout Facts) -> Void) { facts.withLock { body(&$0) } }

    public var current: Facts { facts.withLock { $0 } }

    /// The facts lent to `body` under the lock, not copied (a copy retains each of their
    /// strings): for a reader that uses several of them once. `body` must not note anything.
    func read<Result>(_ body: (borrowing Facts) -> Result) -> Result { facts.withLock { body($0) } }
}

/// An `HTTPField.Name` decided from configuration text.
struct HTTPFieldNameBox: Sendable {
    let name: HTTPField.Name
    init?(_ text: String) {
        guard let name = HTTPField.Name(text) else { return nil }
        self.name = name
    }
}

extension IPAddress {
    /// The address of a socket, read from its bytes rather than parsed from text. The address
    /// sits at byte 4 of a `sockaddr_in` and byte 8 of a `sockaddr_in6`, on Linux and BSDs alike.
    init?(socketAddress: SocketAddress) {
        switch socketAddress {
        case .v4:
            let value = socketAddress.withSockAddr { pointer, _ in
                UnsafeRawPointer(pointer).loadUnaligned(fromByteOffset: 4, as: UInt32.self)
            }
            self.init(v4: UInt32(bigEndian: value))
        case .v6:
            let (high, low) = socketAddress.withSockAddr { pointer, _ in
                (UnsafeRawPointer(pointer).loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                 UnsafeRawPointer(pointer).loadUnaligned(fromByteOffset: 16, as: UInt64.self))
            }
            self.init(v6High: UInt64(bigEndian: high), low: UInt64(bigEndian: low))
        case .unixDomainSocket:
            return nil
        }
    }
}
