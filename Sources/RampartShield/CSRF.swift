public import HTTPTypes
public import RampartCore

/// `shield.csrf`: cross-site request forgery defence for cookie-authenticated requests.
public struct CSRFConfiguration: Codable, Sendable, Equatable {
    /// Origins (`https://app.example.com`) allowed to send state-changing requests besides the
    /// gateway's own origin.
    public var allowedOrigins: [String]
    /// The cookie that authenticates a request; without one, any cookie does.
    public var authCookie: String?
    /// Double-submit token for clients that send neither Origin nor Referer: this cookie's
    /// value must equal `tokenHeader`'s.
    public var tokenCookie: String?
    public var tokenHeader: String

    public init(allowedOrigins: [String] = [], authCookie: String? = nil, tokenCookie: String? = nil, tokenHeader: String = "X-CSRF-Token") {
        self.allowedOrigins = allowedOrigins
        self.authCookie = authCookie
        self.tokenCookie = tokenCookie
        self.tokenHeader = tokenHeader
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case allowedOrigins, authCookie, tokenCookie, tokenHeader }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        allowedOrigins = try c.decodeIfPresent([String].self, forKey: .allowedOrigins) ?? []
        authCookie = try c.decodeIfPresent(String.self, forKey: .authCookie)
        tokenCookie = try c.decodeIfPresent(String.self, forKey: .tokenCookie)
        tokenHeader = try c.decodeIfPresent(String.self, forKey: .tokenHeader) ?? "X-CSRF-Token"
    }

    public func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        for (index, origin) in allowedOrigins.enumerated() where CSRFGuard.origin(of: origin) != origin.lowercased() {
            issues.append(.init(path: "\(path).allowedOrigins[\(index)]", "write an origin as scheme://host[:port], got \"\(origin)\""))
        }
        if HTTPField.Name(tokenHeader) == nil {
            issues.append(.init(path: "\(path).tokenHeader", "\"\(tokenHeader)\" is not a header name"))
        }
        return issues
    }
}

/// Decides whether a state-changing, cookie-authenticated request comes from a page the
/// application trusts (OWASP's verification of the source origin, plus Fetch Metadata and a
/// double-submit token as fallback).
public struct CSRFGuard: Sendable {
    public enum Verdict: Sendable, Equatable {
        case pass
        case refuse(String)
    }

    static let safeMethods: Set<HTTPRequest.Method> = [.get, .head, .options, .trace]
    static let secFetchSite = HTTPField.Name("Sec-Fetch-Site")!
    static let origin = HTTPField.Name("Origin")!
    static let referer = HTTPField.Name("Referer")!

    private let allowed: Set<String>
    private let authCookie: String?
    private let tokenCookie: String?
    private let tokenHeader: HTTPField.Name?

    public init(_ configuration: CSRFConfiguration) {
        allowed = Set(configuration.allowedOrigins.compactMap(Self.origin(of:)))
        authCookie = configuration.authCookie
        tokenCookie = configuration.tokenCookie
        tokenHeader = HTTPField.Name(configuration.tokenHeader)
    }

    /// - Parameter ownOrigin: the gateway's origin for this request (`https://host`), always allowed.
    public func check(_ request: HTTPRequest, ownOrigin: String?) -> Verdict {
        guard !Self.safeMethods.contains(request.method) else { return .pass }
        let cookies = Self.cookies(request.headerFields)
        let authenticated = authCookie.map { cookies[$0] != nil } ?? !cookies.isEmpty
        guard authenticated else { return .pass }  // no ambient credentials to abuse
        let own = ownOrigin.flatMap(Self.origin(of:))
        func trusted(_ origin: String) -> Bool { origin == own || allowed.contains(origin) }

        if let site = request.headerFields[Self.secFetchSite]?.lowercased() {
            // A user typing the address or following a bookmark, or the page's own origin.
            if site == "none" || site == "same-origin" { return .pass }
        }
        if let value = request.headerFields[Self.origin] {
            if value == "null" { return .refuse("a request from an opaque origin") }
            guard let origin = Self.origin(of: value), trusted(origin) else { return .refuse("origin \(value) is not allowed") }
            return .pass
        }
        if let value = request.headerFields[Self.referer] {
            guard let origin = Self.origin(of: value), trusted(origin) else { return .refuse("the referring page is not from an allowed origin") }
            return .pass
        }
        if let tokenCookie, let tokenHeader, let expected = cookies[tokenCookie], !expected.isEmpty,
           let sent = request.headerFields[tokenHeader], constantTimeEqual(Array(expected.utf8), Array(sent.utf8)) {
            return .pass
        }
        return .refuse("no Origin, Referer or matching CSRF token")
    }

    /// `scheme://host[:port]` of a URL or origin, lower-cased, default ports dropped.
    public static func origin(of text: String) -> String? {
        let lowered = text.lowercased()
        guard let schemeEnd = lowered.firstRange(of: "://") else { return nil }
        let scheme = lowered[..<schemeEnd.lowerBound]
        guard scheme == "http" || scheme == "https" else { return nil }
        let rest = lowered[schemeEnd.upperBound...]
        var authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        if authority.contains("@") || authority.isEmpty { return nil }
        if scheme == "http", authority.hasSuffix(":80") { authority = authority.dropLast(3) }
        if scheme == "https", authority.hasSuffix(":443") { authority = authority.dropLast(4) }
        return "\(scheme)://\(authority)"
    }

    static func cookies(_ fields: HTTPFields) -> [String: String] {
        var result: [String: String] = [:]
        for header in fields[values: .cookie] {
            for pair in header.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                let name = parts[0].drop { $0 == " " }
                if !name.isEmpty, result[String(name)] == nil { result[String(name)] = parts.count > 1 ? String(parts[1]) : "" }
            }
        }
        return result
    }
}
