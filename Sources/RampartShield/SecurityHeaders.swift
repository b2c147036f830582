public import HTTPTypes
public import RampartCore

/// Browser security headers added to responses (the shape phase): HSTS, Content-Security-
/// Policy (optionally with a per-response nonce), X-Content-Type-Options, X-Frame-Options,
/// Referrer-Policy, Permissions-Policy and Cross-Origin-Opener-Policy. A header the upstream
/// already set is left alone unless `override` is on.
public struct SecurityHeadersConfiguration: Codable, Sendable, Equatable {
    public struct HSTS: Codable, Sendable, Equatable {
        public var maxAge: ConfigDuration
        public var includeSubDomains: Bool
        public var preload: Bool

        public init(maxAge: ConfigDuration = .seconds(31_536_000), includeSubDomains: Bool = true, preload: Bool = false) {
            self.maxAge = maxAge
            self.includeSubDomains = includeSubDomains
            self.preload = preload
        }

        enum CodingKeys: String, CodingKey, CaseIterable { case maxAge, includeSubDomains, preload }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            maxAge = try c.decodeIfPresent(ConfigDuration.self, forKey: .maxAge) ?? .seconds(31_536_000)
            includeSubDomains = try c.decodeIfPresent(Bool.self, forKey: .includeSubDomains) ?? true
            preload = try c.decodeIfPresent(Bool.self, forKey: .preload) ?? false
        }
    }

    /// Sent on responses to requests that came over TLS only (RFC 6797 §7.2).
    public var hsts: HSTS?
    /// May contain `{nonce}`, replaced by a fresh nonce per response (also sent upstream as
    /// `X-CSP-Nonce` so the application can put it on its scripts).
    public var contentSecurityPolicy: String?
    /// `true` sends `X-Content-Type-Options: nosniff`.
    public var contentTypeOptions: Bool?
    /// `DENY` or `SAMEORIGIN`.
    public var frameOptions: String?
    public var referrerPolicy: String?
    public var permissionsPolicy: String?
    public var crossOriginOpenerPolicy: String?
    /// Replace values the upstream set. Default false.
    public var override: Bool?

    public init(hsts: HSTS? = nil, contentSecurityPolicy: String? = nil, contentTypeOptions: Bool? = nil, frameOptions: String? = nil,
                referrerPolicy: String? = nil, permissionsPolicy: String? = nil, crossOriginOpenerPolicy: String? = nil,
                override: Bool? = nil) {
        self.hsts = hsts
        self.contentSecurityPolicy = contentSecurityPolicy
        self.contentTypeOptions = contentTypeOptions
        self.frameOptions = frameOptions
        self.referrerPolicy = referrerPolicy
        self.permissionsPolicy = permissionsPolicy
        self.crossOriginOpenerPolicy = crossOriginOpenerPolicy
        self.override = override
    }

    /// A sensible baseline for an HTML application behind the gateway.
    public static let recommended = SecurityHeadersConfiguration(
        hsts: HSTS(), contentTypeOptions: true, frameOptions: "DENY", referrerPolicy: "strict-origin-when-cross-origin",
        crossOriginOpenerPolicy: "same-origin")

    enum CodingKeys: String, CodingKey, CaseIterable {
        case hsts, contentSecurityPolicy, contentTypeOptions, frameOptions, referrerPolicy, permissionsPolicy, crossOriginOpenerPolicy,
             override
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        hsts = try c.decodeIfPresent(HSTS.self, forKey: .hsts)
        contentSecurityPolicy = try c.decodeIfPresent(String.self, forKey: .contentSecurityPolicy)
        contentTypeOptions = try c.decodeIfPresent(Bool.self, forKey: .contentTypeOptions)
        frameOptions = try c.decodeIfPresent(String.self, forKey: .frameOptions)
        referrerPolicy = try c.decodeIfPresent(String.self, forKey: .referrerPolicy)
        permissionsPolicy = try c.decodeIfPresent(String.self, forKey: .permissionsPolicy)
        crossOriginOpenerPolicy = try c.decodeIfPresent(String.self, forKey: .crossOriginOpenerPolicy)
        override = try c.decodeIfPresent(Bool.self, forKey: .override)
    }

    /// This configuration with the fields `specific` sets taking precedence (a route's
    /// settings over the global ones). An empty string in `specific` turns a header off.
    public func merged(with specific: SecurityHeadersConfiguration?) -> SecurityHeadersConfiguration {
        guard let specific else { return self }
        return SecurityHeadersConfiguration(
            hsts: specific.hsts ?? hsts, contentSecurityPolicy: specific.contentSecurityPolicy ?? contentSecurityPolicy,
            contentTypeOptions: specific.contentTypeOptions ?? contentTypeOptions, frameOptions: specific.frameOptions ?? frameOptions,
            referrerPolicy: specific.referrerPolicy ?? referrerPolicy, permissionsPolicy: specific.permissionsPolicy ?? permissionsPolicy,
            crossOriginOpenerPolicy: specific.crossOriginOpenerPolicy ?? crossOriginOpenerPolicy, override: specific.override ?? override)
    }

    public func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        if let frame = frameOptions, !frame.isEmpty, !["DENY", "SAMEORIGIN"].contains(frame.uppercased()) {
            issues.append(.init(path: "\(path).frameOptions", "use DENY or SAMEORIGIN, got \"\(frame)\""))
        }
        let values: [(String, String?)] = [
            ("contentSecurityPolicy", contentSecurityPolicy), ("frameOptions", frameOptions), ("referrerPolicy", referrerPolicy),
            ("permissionsPolicy", permissionsPolicy), ("crossOriginOpenerPolicy", crossOriginOpenerPolicy),
        ]
        for (name, value) in values {
            if let value, !HTTPField.isValidValue(value) {  // CR, LF and other controls included
                issues.append(.init(path: "\(path).\(name)", "not a valid header value"))
            }
        }
        if let hsts, hsts.maxAge.duration < .zero {
            issues.append(.init(path: "\(path).hsts.maxAge", "cannot be negative"))
        }
        return issues
    }
}

/// The headers of one configuration, prepared once; applied to each response.
public struct SecurityHeaders: Sendable {
    private let fields: [(name: HTTPField.Name, value: String)]
    private let hsts: String?
    /// Whether a value the answer already has for one of these fields gives way to the policy's.
    public let override: Bool
    /// Whether the policy asks for a nonce per response.
    public let needsNonce: Bool
    /// Bit n set when one of the fields (HSTS included) has a name of n bytes.
    private let nameLengths: UInt64

    public static let nonceField = HTTPField.Name("X-CSP-Nonce")!
    static let hstsField = HTTPField.Name("Strict-Transport-Security")!

    public init(_ configuration: SecurityHeadersConfiguration) {
        var fields: [(HTTPField.Name, String)] = []
        func add(_ name: String, _ value: String?) {
            guard let value, !value.isEmpty, let field = HTTPField.Name(name) else { return }
            fields.append((field, value))
        }
        add("Content-Security-Policy", configuration.contentSecurityPolicy)
        add("X-Content-Type-Options", configuration.contentTypeOptions == true ? "nosniff" : nil)
        add("X-Frame-Options", configuration.frameOptions?.uppercased())
        add("Referrer-Policy", configuration.referrerPolicy)
        add("Permissions-Policy", configuration.permissionsPolicy)
        add("Cross-Origin-Opener-Policy", configuration.crossOriginOpenerPolicy)
        self.fields = fields
        self.hsts = configuration.hsts.map { hsts in
            var value = "max-age=\(Int(hsts.maxAge.duration.components.seconds))"
            if hsts.includeSubDomains { value += "; includeSubDomains" }
            if hsts.preload { value += "; preload" }
            return value
        }
        self.override = configuration.override ?? false
        self.needsNonce = configuration.contentSecurityPolicy?.contains("{nonce}") ?? false
        var lengths: UInt64 = 0
        for name in fields.map(\.0) + (hsts == nil ? [] : [Self.hstsField]) where name.canonicalName.utf8.count < 64 {
            lengths |= 1 << UInt64(name.canonicalName.utf8.count)
        }
        self.nameLengths = lengths
    }

    /// Whether a field name `length` bytes long may be one of these fields' (HSTS included,
    /// whether or not the connection is secure): false rules the name out without comparing it.
    public func mayName(length: Int) -> Bool {
        length < 64 && nameLengths & (1 << UInt64(length)) != 0
    }

    /// Adds the headers to a response. `nonce` fills `{nonce}` in the policy.
    /// Runs for every answer: a field the answer lacks is appended, without the lookups and
    /// rewrites of setting it by name.
    public func apply(to headers: inout HTTPFields, isSecure: Bool, nonce: String?) {
        forEachField(isSecure: isSecure, nonce: nonce) { _, name, value in headers.set(name, value, replacing: override) }
    }

    /// The fields a response gets, each with its position among them (below 8): `nonce` fills
    /// `{nonce}` in the policy; HSTS only when `isSecure`.
    public func forEachField(isSecure: Bool, nonce: String?, _ body: (Int, HTTPField.Name, String) -> Void) {
        for (index, (name, value)) in fields.enumerated() {
            body(index, name, needsNonce && name.canonicalName == "content-security-policy" ? value.replacing("{nonce}", with: nonce ?? "") : value)
        }
        if isSecure, let hsts { body(fields.count, Self.hstsField, hsts) }
    }

    /// The position `forEachField` gives the field whose name `matches`, or nil when the
    /// policy sets none such.
    public func position(where matches: (HTTPField.Name) -> Bool, isSecure: Bool) -> Int? {
        if let index = fields.firstIndex(where: { matches($0.name) }) { return index }
        return isSecure && hsts != nil && matches(Self.hstsField) ? fields.count : nil
    }

    /// A fresh nonce: 128 random bits, base64.
    public static func makeNonce<G: RandomNumberGenerator>(using generator: inout G) -> String {
        var bytes: [UInt8] = []
        for _ in 0..<2 {
            let word = generator.next() as UInt64
            for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) }
        }
        return base64(bytes)
    }
}

private func base64(_ bytes: [UInt8]) -> String {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    var out: [UInt8] = []
    var i = 0
    while i + 2 < bytes.count {
        let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
        out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], alphabet[Int(n & 63)]]
        i += 3
    }
    let rest = bytes.count - i
    if rest == 1 {
        let n = UInt32(bytes[i]) << 16
        out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], UInt8(ascii: "="), UInt8(ascii: "=")]
    } else if rest == 2 {
        let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
        out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], UInt8(ascii: "=")]
    }
    return String(decoding: out, as: UTF8.self)
}

extension HTTPFields {
    /// Gives the fields `name: value`: appended when the name is absent, as it usually is
    /// (without the rewrite of the fields that setting by name does); when it is present, put in
    /// place of the present ones if `replacing`, else left as it was.
    public mutating func set(_ name: HTTPField.Name, _ value: String, replacing: Bool = true) {
        if !contains(where: { $0.name == name }) {
            append(HTTPField(name: name, value: value))
        } else if replacing {
            self[name] = value
        }
    }
}
