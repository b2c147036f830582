import HTTPTypes

/// A field name requests or answers often carry, or one the gateway acts on: recognized in the
/// bytes of a head by its length and a case-insensitive comparison, without making a string
/// for it, and then named with its usual spelling, whatever case the peer used.
enum KnownField: UInt8, Sendable, CaseIterable {
    // Answers.
    case via, date, etag, vary, server, expires, location, setCookie, contentType, cacheControl, lastModified, acceptRanges,
         contentLength, contentEncoding, xRequestID
    // Hop-by-hop (RFC 9110 §7.6.1).
    case connection, keepAlive, transferEncoding, te, trailer, upgrade, proxyConnection, proxyAuthenticate, proxyAuthorization
    // Requests.
    case host, userAgent, accept, acceptLanguage, acceptEncoding, referer, cookie, origin, authorization, ifNoneMatch,
         ifModifiedSince, expect, http2Settings, secFetchSite, secFetchMode, secFetchDest, secFetchUser, upgradeInsecureRequests,
         priority, pragma, dnt, xForwardedFor, xForwardedProto, xForwardedHost, forwarded, traceparent, tracestate

    /// `bytes` is a field name its parser has checked to be a token.
    init?(_ bytes: Slice<UnsafeRawBufferPointer>) {
        let name = UnsafeRawBufferPointer(rebasing: bytes)
        func check(_ literal: StaticString, _ known: KnownField) -> KnownField? { Self.tokenEquals(name, literal) ? known : nil }
        let found: KnownField?
        switch bytes.count {
        case 2: found = check("te", .te)
        case 3: found = check("via", .via) ?? check("dnt", .dnt)
        case 4: found = check("host", .host) ?? check("date", .date) ?? check("etag", .etag) ?? check("vary", .vary)
        case 6: found = check("accept", .accept) ?? check("cookie", .cookie) ?? check("origin", .origin) ?? check("server", .server)
            ?? check("expect", .expect) ?? check("pragma", .pragma)
        case 7: found = check("referer", .referer) ?? check("expires", .expires) ?? check("trailer", .trailer) ?? check("upgrade", .upgrade)
        case 8: found = check("location", .location) ?? check("priority", .priority)
        case 9: found = check("forwarded", .forwarded)
        case 10: found = check("user-agent", .userAgent) ?? check("connection", .connection) ?? check("set-cookie", .setCookie)
            ?? check("keep-alive", .keepAlive) ?? check("tracestate", .tracestate)
        case 11: found = check("traceparent", .traceparent)
        case 12: found = check("content-type", .contentType) ?? check("x-request-id", .xRequestID)
        case 13: found = check("cache-control", .cacheControl) ?? check("authorization", .authorization) ?? check("if-none-match", .ifNoneMatch)
            ?? check("last-modified", .lastModified) ?? check("accept-ranges", .acceptRanges)
        case 14: found = check("content-length", .contentLength) ?? check("sec-fetch-site", .secFetchSite) ?? check("sec-fetch-mode", .secFetchMode)
            ?? check("sec-fetch-dest", .secFetchDest) ?? check("sec-fetch-user", .secFetchUser) ?? check("http2-settings", .http2Settings)
        case 15: found = check("accept-language", .acceptLanguage) ?? check("accept-encoding", .acceptEncoding)
            ?? check("x-forwarded-for", .xForwardedFor)
        case 16: found = check("content-encoding", .contentEncoding) ?? check("proxy-connection", .proxyConnection)
            ?? check("x-forwarded-host", .xForwardedHost)
        case 17: found = check("transfer-encoding", .transferEncoding) ?? check("if-modified-since", .ifModifiedSince)
            ?? check("x-forwarded-proto", .xForwardedProto)
        case 18: found = check("proxy-authenticate", .proxyAuthenticate)
        case 19: found = check("proxy-authorization", .proxyAuthorization)
        case 25: found = check("upgrade-insecure-requests", .upgradeInsecureRequests)
        default: found = nil
        }
        guard let found else { return nil }
        self = found
    }

    /// Whether the token `bytes` spells `literal` (lower case), in any case, eight bytes at a
    /// time. Setting bit 0x20 of each byte lower-cases the letters and turns no other token byte
    /// into a letter, a digit or `-` (only CR and control bytes would, and a token has none), so
    /// the comparison is exact for tokens.
    private static func tokenEquals(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        let count = bytes.count
        guard count == literal.utf8CodeUnitCount else { return false }
        let spelled = UnsafeRawPointer(literal.utf8Start)
        var offset = 0
        while offset + 8 <= count {
            let word = bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self) | 0x2020_2020_2020_2020
            guard word == spelled.loadUnaligned(fromByteOffset: offset, as: UInt64.self) else { return false }
            offset += 8
        }
        while offset < count {
            guard bytes[offset] | 0x20 == spelled.load(fromByteOffset: offset, as: UInt8.self) else { return false }
            offset += 1
        }
        return true
    }

    /// The name with its usual spelling.
    var name: HTTPField.Name { Self.names[Int(rawValue)] }

    /// Made once, in the order of the cases.
    private static let names: [HTTPField.Name] = allCases.map { known in
        let text = switch known {
        case .via: "Via"
        case .date: "Date"
        case .etag: "ETag"
        case .vary: "Vary"
        case .server: "Server"
        case .expires: "Expires"
        case .location: "Location"
        case .setCookie: "Set-Cookie"
        case .contentType: "Content-Type"
        case .cacheControl: "Cache-Control"
        case .lastModified: "Last-Modified"
        case .acceptRanges: "Accept-Ranges"
        case .contentLength: "Content-Length"
        case .contentEncoding: "Content-Encoding"
        case .xRequestID: "X-Request-Id"
        case .connection: "Connection"
        case .keepAlive: "Keep-Alive"
        case .transferEncoding: "Transfer-Encoding"
        case .te: "TE"
        case .trailer: "Trailer"
        case .upgrade: "Upgrade"
        case .proxyConnection: "Proxy-Connection"
        case .proxyAuthenticate: "Proxy-Authenticate"
        case .proxyAuthorization: "Proxy-Authorization"
        case .host: "Host"
        case .userAgent: "User-Agent"
        case .accept: "Accept"
        case .acceptLanguage: "Accept-Language"
        case .acceptEncoding: "Accept-Encoding"
        case .referer: "Referer"
        case .cookie: "Cookie"
        case .origin: "Origin"
        case .authorization: "Authorization"
        case .ifNoneMatch: "If-None-Match"
        case .ifModifiedSince: "If-Modified-Since"
        case .expect: "Expect"
        case .http2Settings: "HTTP2-Settings"
        case .secFetchSite: "Sec-Fetch-Site"
        case .secFetchMode: "Sec-Fetch-Mode"
        case .secFetchDest: "Sec-Fetch-Dest"
        case .secFetchUser: "Sec-Fetch-User"
        case .upgradeInsecureRequests: "Upgrade-Insecure-Requests"
        case .priority: "Priority"
        case .pragma: "Pragma"
        case .dnt: "DNT"
        case .xForwardedFor: "X-Forwarded-For"
        case .xForwardedProto: "X-Forwarded-Proto"
        case .xForwardedHost: "X-Forwarded-Host"
        case .forwarded: "Forwarded"
        case .traceparent: "traceparent"
        case .tracestate: "tracestate"
        }
        return HTTPField.Name(text)!
    }

    /// Hop-by-hop (RFC 9110 §7.6.1), as `HeaderRewriting.isHopByHop` says of names.
    var isHopByHop: Bool {
        switch self {
        case .connection, .keepAlive, .transferEncoding, .te, .trailer, .upgrade, .proxyConnection, .proxyAuthenticate, .proxyAuthorization: true
        default: false
        }
    }
}
