/// Finds the real client address of a request that may have passed through proxies.
///
/// The connection's peer is the client unless it is a trusted proxy. When it is, the
/// `X-Forwarded-For` chain (or, without one, the `for=` parameters of `Forwarded`, RFC 7239) is
/// read from the right, skipping trusted proxies; the first untrusted hop is the client. Only
/// hops added by trusted proxies are believed, so a client cannot forge its address by sending
/// the header itself.
public struct ClientAddressResolver: Sendable {
    public let trustedProxies: CIDRSet

    public init(trustedProxies: CIDRSet) { self.trustedProxies = trustedProxies }

    /// - Parameters:
    ///   - peer: the address of the TCP peer, if known.
    ///   - forwardedFor: every `X-Forwarded-For` field value, in order.
    ///   - forwarded: every `Forwarded` field value, in order.
    public func resolve(peer: IPAddress?, forwardedFor: [String], forwarded: [String]) -> IPAddress? {
        guard let peer, trustedProxies.contains(peer) else { return peer }
        var hops = forwardedFor.flatMap { $0.split(separator: ",").map { String($0.trimmingASCIIWhitespace()) } }
        if hops.isEmpty {
            hops = forwarded.flatMap(Self.forwardedForValues)
        }
        var client = peer
        for hop in hops.reversed() {
            guard let address = Self.parseHop(hop) else { return client }
            client = address
            if !trustedProxies.contains(address) { return address }
        }
        return client
    }

    /// `for=` values of a `Forwarded` field, in order (`for=192.0.2.43, for="[2001:db8::1]:4711"`).
    static func forwardedForValues(_ field: String) -> [String] {
        var result: [String] = []
        for element in field.split(separator: ",") {
            for pair in element.split(separator: ";") {
                let kv = pair.trimmingASCIIWhitespace()
                guard kv.lowercased().hasPrefix("for=") else { continue }
                var value = kv.dropFirst(4)
                if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = value.dropFirst().dropLast() }
                result.append(String(value))
            }
        }
        return result
    }

    /// An address from a hop: `1.2.3.4`, `1.2.3.4:80`, `[::1]`, `[::1]:80`, `::1`.
    static func parseHop(_ hop: String) -> IPAddress? {
        if hop.hasPrefix("[") {
            guard let close = hop.firstIndex(of: "]") else { return nil }
            return IPAddress(hop[hop.index(after: hop.startIndex)..<close])
        }
        if let address = IPAddress(hop) { return address }
        if let colon = hop.lastIndex(of: ":"), hop.firstIndex(of: ":") == colon {
            return IPAddress(hop[..<colon])
        }
        return nil
    }
}
