/// What the phases of one request have learned so far, flowing inward: each phase copies the
/// value, adds what it knows and hands it to the next. Facts needed after the response (for
/// the access log and metrics) go to the record box instead, since edits made deeper do not
/// come back out.
public struct RequestState: Sendable {
    /// The request id: the incoming `X-Request-Id` when acceptable, else a new one.
    public var requestID: String
    /// The caller's trace context, if it sent a valid `traceparent`.
    public var incomingTrace: TraceContext?
    /// The gateway's own span in the trace, passed upstream as `traceparent`; set by identify.
    public var trace: TraceContext?
    /// The real client address, after trusted proxies.
    public var clientAddress: IPAddress?
    /// The address of the TCP peer.
    public var peerAddress: IPAddress?
    /// Whether the client reached the gateway over TLS.
    public var isSecure: Bool
    /// The client's country (ISO 3166 alpha-2, upper case), when known.
    public var country: String?
    /// Whether the client is on the IP allow list: never blocked, whatever it sends.
    public var isAllowListed = false

    public init(requestID: String = "", incomingTrace: TraceContext? = nil, trace: TraceContext? = nil,
                clientAddress: IPAddress? = nil, peerAddress: IPAddress? = nil, isSecure: Bool = false, country: String? = nil) {
        self.requestID = requestID
        self.incomingTrace = incomingTrace
        self.trace = trace
        self.clientAddress = clientAddress
        self.peerAddress = peerAddress
        self.isSecure = isSecure
        self.country = country
    }
}
