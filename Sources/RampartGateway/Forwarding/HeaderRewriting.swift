import HTTPTypes
import NIOCore
import NIOHTTP1
import RampartCore

/// Header rewriting across the proxy, in both directions.
enum HeaderRewriting {
    /// RFC 9110 §7.6.1: whether a field (by its canonical, lower-case name) is meaningful for
    /// one connection only and never forwarded. By length first: it runs for every field of
    /// every request and answer.
    static func isHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2: name == "te"
        case 7: name == "trailer" || name == "upgrade"
        case 10: name == "connection" || name == "keep-alive"
        case 16: name == "proxy-connection"
        case 17: name == "transfer-encoding"
        case 18: name == "proxy-authenticate"
        case 19: name == "proxy-authorization"
        default: false
        }
    }

    /// Names listed in `Connection` (lower case): also hop-by-hop.
    /// `keep-alive` and `close`, the usual tokens, are hop-by-hop already and left out, so
    /// that the usual message needs no set.
    static func connectionNamed(_ fields: HTTPFields) -> Set<String> {
        // Usually there is no such value: nothing is collected then.
        var values: [String] = []
        for field in fields where field.name == .connection && !namesOnlyUsualTokens(field.value) { values.append(field.value) }
        return values.isEmpty ? [] : connectionNamed(values: values)
    }

    /// `connectionNamed` for the values of `Connection` fields.
    static func connectionNamed(values: some Sequence<String>) -> Set<String> {
        var names = Set<String>()
        for value in values where !namesOnlyUsualTokens(value) {
            for token in value.split(separator: ",") {
                let token = token.trimmingASCIIWhitespace()
                if token.isEmpty || token.caseInsensitiveEquals("keep-alive") || token.caseInsensitiveEquals("close") { continue }
                names.insert(token.lowercased())
            }
        }
        return names
    }

    /// A `Connection` value that is just `keep-alive` or `close`.
    static func namesOnlyUsualTokens(_ value: String) -> Bool {
        let trimmed = value[...].trimmingASCIIWhitespace()
        return trimmed.caseInsensitiveEquals("keep-alive") || trimmed.caseInsensitiveEquals("close")
    }

    /// The headers sent upstream: end-to-end fields of the request, with the proxy's own, added
    /// to `headers`. `replaced` is a field the gateway sets itself (the client's is dropped).
    /// `forwarding` keeps the forwarding fields of a connection's requests, for those whose
    /// client sent none of its own.
    static func upstreamRequestHeaders(_ request: HTTPFields, authority: String?, state: RequestState, preserveHost: Bool,
                                       instanceAuthority: String, trustsPeer: Bool, replaced: HTTPField.Name? = nil,
                                       forwarding: ForwardingFieldsCache? = nil, into headers: inout some UpstreamHeaderSink) {
        let dropped = connectionNamed(request)
        var earlier = EarlierHops()
        for field in request {
            let name = field.name.canonicalName
            if isHopByHop(name) || (!dropped.isEmpty && dropped.contains(name)) || field.name == replaced { continue }
            switch forwardingRole(name) {
            case .setByTheGateway: continue
            case .forwardedFor: earlier.forwardedFor.append(field.value)
            case .forwarded: earlier.forwarded.append(field.value)
            case .forwardedProto: earlier.proto = field.value
            case .via: earlier.via.append(field.value)
            case .passedOn: headers.add(name: field.name.rawName, value: field.value)
            }
        }
        headers.add(name: "Host", value: preserveHost ? (authority ?? instanceAuthority) : instanceAuthority)
        if let forwarding, earlier.isEmpty {
            headers.add(fields: forwarding.fields(peer: state.peerAddress, isSecure: state.isSecure, authority: authority))
        } else {
            forwardingFields(peer: state.peerAddress, isSecure: state.isSecure, authority: authority, trustsPeer: trustsPeer,
                             earlier: earlier, into: &headers)
        }
        headers.add(name: "X-Request-Id", value: state.requestID)
        if let trace = state.trace { trace.withTraceparent { headers.add(name: "traceparent", bytes: $0) } }
    }

    /// What earlier proxies said in a request's forwarding fields.
    struct EarlierHops {
        var forwardedFor: [String] = []
        var forwarded: [String] = []
        var proto: String?
        var via: [String] = []

        /// No forwarding field at all: the gateway's own fields depend on nothing else.
        var isEmpty: Bool { forwardedFor.isEmpty && forwarded.isEmpty && proto == nil && via.isEmpty }
    }

    /// `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host`, `Forwarded` and `Via`: the
    /// earlier hops' values (those of trusted proxies; any `Via`), then the gateway's.
    static func forwardingFields(peer address: IPAddress?, isSecure: Bool, authority: String?, trustsPeer: Bool, earlier: EarlierHops,
                                 into headers: inout some UpstreamHeaderSink) {
        let peer = address.map { $0.description } ?? "unknown"
        let scheme = isSecure ? "https" : "http"
        /// The earlier hops' values, then ours (no list to join in the usual case of none).
        func appending(_ own: String, to earlier: [String]) -> String {
            earlier.isEmpty ? own : (earlier + [own]).joined(separator: ", ")
        }
        // Only hops added by trusted proxies are believed; an untrusted peer's claims are dropped.
        headers.add(name: "X-Forwarded-For", value: appending(peer, to: trustsPeer ? earlier.forwardedFor : []))
        headers.add(name: "X-Forwarded-Proto", value: trustsPeer ? (earlier.proto ?? scheme) : scheme)
        if let authority { headers.add(name: "X-Forwarded-Host", value: authority) }
        var element = "for="
        element.reserveCapacity(64 + (authority?.utf8.count ?? 0))
        element += address?.family == .v6 ? forwardedNode(address) : peer
        element += isSecure ? ";proto=https" : ";proto=http"
        if let authority {
            // Appended piece by piece: `+` would make a string per piece.
            element += ";host=\""
            element += authority
            element += "\""
        }
        headers.add(name: "Forwarded", value: appending(element, to: trustsPeer ? earlier.forwarded : []))
        headers.add(name: "Via", value: appending("1.1 rampart", to: earlier.via))
    }

    /// What the upstream request does with a client field that is not hop-by-hop.
    enum ForwardingRole {
        /// Framing is the upstream client's to decide; Host, the forwarding fields, the request
        /// id, the trace and the CSP nonce are the gateway's to set.
        case setByTheGateway
        /// Earlier hops' values, kept when the peer is a trusted proxy.
        case forwardedFor, forwarded, forwardedProto
        case via
        case passedOn
    }

    /// The role of a field by its canonical name: its length first, so that most names are
    /// told apart without comparing text.
    static func forwardingRole(_ name: String) -> ForwardingRole {
        switch name.utf8.count {
        case 3: name == "via" ? .via : .passedOn
        case 4: name == "host" ? .setByTheGateway : .passedOn
        case 9: name == "forwarded" ? .forwarded : .passedOn
        case 11: name == "traceparent" || name == "x-csp-nonce" ? .setByTheGateway : .passedOn
        case 12: name == "x-request-id" ? .setByTheGateway : .passedOn
        case 14: name == "content-length" ? .setByTheGateway : .passedOn
        case 15: name == "x-forwarded-for" ? .forwardedFor : .passedOn
        case 16: name == "x-forwarded-host" ? .setByTheGateway : .passedOn
        case 17: name == "x-forwarded-proto" ? .forwardedProto : .passedOn
        default: .passedOn
        }
    }

    /// RFC 7239 §6: IPv6 nodes are quoted and bracketed.
    static func forwardedNode(_ address: IPAddress?) -> String {
        guard let address else { return "unknown" }
        return address.family == .v6 ? "\"[\(address)]\"" : address.description
    }

    /// `clientResponseHeaders` for a head NIO's HTTP/1 decoder read (an upgrade's answer).
    static func clientResponseHeaders(_ upstream: HTTPHeaders) -> HTTPFields {
        var fields = HTTPFields()
        fields.reserveCapacity(upstream.count)
        for (name, value) in upstream {
            if let name = HTTPField.Name(name) { fields.append(HTTPField(name: name, value: value)) }
        }
        return clientResponseHeaders(fields)
    }

    /// The headers sent to the client: end-to-end fields of the upstream response, with Via.
    static func clientResponseHeaders(_ upstream: HTTPFields) -> HTTPFields {
        var fields = HTTPFields()
        fields.reserveCapacity(upstream.count + 1)
        let via = forEachClientResponseField(upstream) { fields.append($0) }
        fields.append(HTTPField(name: .via, value: via))
        return fields
    }

    /// The end-to-end fields of an upstream response, in order, except Via; returns the Via
    /// the client gets (the upstream's, then the gateway's own). Hop-by-hop fields, and those
    /// the upstream named in Connection, are left out.
    static func forEachClientResponseField(_ upstream: HTTPFields, _ body: (HTTPField) -> Void) -> String {
        let dropped = connectionNamed(upstream)
        var via: [String] = []
        for field in upstream {
            let name = field.name.canonicalName
            if isHopByHop(name) || (!dropped.isEmpty && dropped.contains(name)) { continue }
            if field.name == .via {
                via.append(field.value)
                continue
            }
            body(field)
        }
        return Self.via(after: via)
    }

    /// The Via the client gets: the upstream's, then the gateway's own.
    static func via(after upstream: [String]) -> String {
        upstream.isEmpty ? "1.1 rampart" : (upstream + ["1.1 rampart"]).joined(separator: ", ")
    }
}

/// The forwarding fields of one client connection's requests, kept as the bytes written last:
/// when the client sends no forwarding fields of its own they depend only on its address, the
/// connection's security and the request's authority, which on a kept-alive connection rarely
/// change, so most requests copy them instead of formatting them. Confined to the connection's
/// event loop.
final class ForwardingFieldsCache {
    private var key: (peer: IPAddress?, isSecure: Bool, authority: String?)?
    private var bytes = ByteBuffer()

    init() {}

    /// The fields' lines (`Name: value` and CRLF each) for a request without earlier hops.
    func fields(peer: IPAddress?, isSecure: Bool, authority: String?) -> ByteBuffer {
        if let key, key.peer == peer, key.isSecure == isSecure, key.authority == authority { return bytes }
        var lines = FieldLines()
        HeaderRewriting.forwardingFields(peer: peer, isSecure: isSecure, authority: authority, trustsPeer: false,
                                         earlier: .init(), into: &lines)
        key = (peer, isSecure, authority)
        bytes = lines.bytes
        return bytes
    }
}

/// Header fields written as the lines of a head.
struct FieldLines: UpstreamHeaderSink {
    private(set) var bytes = ByteBuffer()

    mutating func add(name: String, value: String) {
        bytes.writeField(name: name, value: value)
    }
}
