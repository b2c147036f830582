public import RampartCore
import Foundation
import Synchronization

/// Why a token was not accepted. The gateway answers 401 with `code` on routes that
/// require identity; elsewhere the caller is anonymous.
public struct TokenError: Error, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case malformed = "token_malformed"
        case unsupportedAlgorithm = "token_algorithm_unsupported"
        case unknownKey = "token_key_unknown"
        case badSignature = "token_signature_invalid"
        case expired = "token_expired"
        case notYetValid = "token_not_yet_valid"
        case wrongIssuer = "token_issuer_invalid"
        case wrongAudience = "token_audience_invalid"
        case missingClaim = "token_claim_missing"
        case unknownAPIKey = "api_key_invalid"
    }

    public let code: Code
    public let message: String
    /// For `unknownKey`: the `kid` asked for (a JWKS refresh may find it).
    public let keyID: String?

    init(_ code: Code, _ message: String, keyID: String? = nil) {
        self.code = code
        self.message = message
        self.keyID = keyID
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

/// Verifies JWS compact tokens (JWTs) and maps their claims to an `Identity`: the
/// signature under a key whose algorithm matches the token's `alg` (and whose id matches
/// its `kid`, when it has one), then `exp`, `nbf`, `iss` and `aud` with a small clock skew.
public final class TokenVerifier: Sendable {
    public struct Settings: Sendable, Equatable {
        /// Accepted issuers; empty: any.
        public var issuers: [String] = []
        /// The token's `aud` must name one of these; empty: not checked.
        public var audiences: [String] = []
        public var clockSkew: Duration = .seconds(60)
        /// Refuse tokens without `exp`.
        public var requireExpiry = true
        /// Dotted paths into the claims (`sub`, `org.id`, `realm_access.roles`).
        public var userClaim = "sub"
        public var tenantClaim: String? = "tenant"
        public var rolesClaim: String? = "roles"
        /// Longer tokens are refused unread.
        public var maximumLength = 16 * 1024

        public init() {}
    }

    public let settings: Settings
    private let keys: Mutex<[VerificationKey]>
    /// Tokens already verified, with the time until which each stays accepted (its `exp`
    /// plus skew, at most `cacheLifetime` from when it was checked): a client sends the same
    /// token many times, and an RSA or ECDSA check costs far more than a lookup. Emptied
    /// when the keys change and when it reaches `cacheCapacity`.
    private let verified = Mutex<[String: (identity: Identity, until: Double)]>([:])
    static let cacheCapacity = 10_000
    static let cacheLifetime = 300.0
    private let now: @Sendable () -> Double

    /// - Parameter now: seconds since 1970 (the wall clock; tests pass their own).
    public init(settings: Settings, keys: [VerificationKey], now: @escaping @Sendable () -> Double) {
        self.settings = settings
        self.keys = Mutex(keys)
        self.now = now
    }

    /// Replaces the keys (a JWKS refresh).
    public func replaceKeys(_ keys: [VerificationKey]) {
        self.keys.withLock { $0 = keys }
        verified.withLock { $0.removeAll() }
    }

    public var keyIDs: [String?] { keys.withLock { $0.map(\.id) } }

    public func verify(_ token: String) throws(TokenError) -> Identity {
        let now = self.now()
        if let known = verified.withLock({ $0[token] }), now <= known.until { return known.identity }
        let (identity, until) = try check(token, now: now)
        verified.withLock { cache in
            if cache.count >= Self.cacheCapacity { cache.removeAll(keepingCapacity: true) }
            cache[token] = (identity, until)
        }
        return identity
    }

    /// The full check: signature, then claims. Answers the identity and until when the
    /// token may be taken as checked.
    private func check(_ token: String, now: Double) throws(TokenError) -> (Identity, until: Double) {
        guard token.utf8.count <= settings.maximumLength else { throw TokenError(.malformed, "longer than \(settings.maximumLength) bytes") }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw TokenError(.malformed, "a JWT has three dot-separated parts, this has \(parts.count)") }
        guard let headerBytes = Base64URL.decode(parts[0]), let header = Self.object(headerBytes) else {
            throw TokenError(.malformed, "the header is not base64url JSON")
        }
        guard let algorithmName = header["alg"] as? String else { throw TokenError(.malformed, "the header has no alg") }
        guard let algorithm = JWSAlgorithm(rawValue: algorithmName) else {
            throw TokenError(.unsupportedAlgorithm, "alg \(algorithmName) is not accepted")
        }
        if let critical = header["crit"] {
            throw TokenError(.malformed, "critical header extensions are not understood (\(critical))")
        }
        guard let signature = Base64URL.decode(parts[2]) else { throw TokenError(.malformed, "the signature is not base64url") }
        let keyID = header["kid"] as? String
        let candidates = keys.withLock { keys in keys.filter { $0.algorithm == algorithm && (keyID == nil || $0.id == keyID) } }
        guard !candidates.isEmpty else {
            throw TokenError(.unknownKey, keyID.map { "no \(algorithmName) key with kid \($0)" } ?? "no \(algorithmName) key", keyID: keyID)
        }
        let signingInput = Array(token.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
        guard candidates.contains(where: { $0.isValid(signature: signature, for: signingInput) }) else {
            throw TokenError(.badSignature, "the signature does not verify")
        }
        guard let payloadBytes = Base64URL.decode(parts[1]), let claims = Self.object(payloadBytes) else {
            throw TokenError(.malformed, "the payload is not base64url JSON")
        }
        let expiry = try check(claims, now: now)
        return (try identity(from: claims), min(expiry.map { $0 + settings.clockSkew.secondsValue } ?? .infinity, now + Self.cacheLifetime))
    }

    /// Checks the registered claims; answers `exp`, if there is one.
    private func check(_ claims: [String: Any], now: Double) throws(TokenError) -> Double? {
        let skew = settings.clockSkew.secondsValue
        func time(_ name: String) throws(TokenError) -> Double? {
            guard let value = claims[name] else { return nil }
            guard let number = value as? NSNumber, !(value is Bool) else { throw TokenError(.malformed, "\(name) is not a number") }
            return number.doubleValue
        }
        let expiry = try time("exp")
        if let expiry {
            if now > expiry + skew { throw TokenError(.expired, "expired \(Int(now - expiry)) s ago") }
        } else if settings.requireExpiry {
            throw TokenError(.missingClaim, "the token has no exp")
        }
        if let notBefore = try time("nbf"), now + skew < notBefore {
            throw TokenError(.notYetValid, "valid only in \(Int(notBefore - now)) s")
        }
        if !settings.issuers.isEmpty {
            guard let issuer = claims["iss"] as? String, settings.issuers.contains(issuer) else {
                throw TokenError(.wrongIssuer, "iss \(claims["iss"].map { "\($0)" } ?? "(none)") is not accepted")
            }
        }
        if !settings.audiences.isEmpty {
            let audiences: [String]
            switch claims["aud"] {
            case let single as String: audiences = [single]
            case let list as [Any]: audiences = list.compactMap { $0 as? String }
            default: audiences = []
            }
            guard audiences.contains(where: settings.audiences.contains) else {
                throw TokenError(.wrongAudience, "aud does not name \(settings.audiences.joined(separator: " or "))")
            }
        }
        return expiry
    }

    private func identity(from claims: [String: Any]) throws(TokenError) -> Identity {
        guard let user = Self.string(at: settings.userClaim, in: claims) else {
            throw TokenError(.missingClaim, "no \(settings.userClaim) claim for the user")
        }
        let tenant = settings.tenantClaim.flatMap { Self.string(at: $0, in: claims) }
        var roles: [String] = []
        if let path = settings.rolesClaim {
            switch Self.value(at: path, in: claims) {
            case let list as [Any]: roles = list.compactMap { $0 as? String }
            case let text as String: roles = text.split(separator: " ").map(String.init)  // a space-separated scope-style claim
            default: break
            }
        }
        return Identity(method: .jwt, user: user, tenant: tenant, roles: roles)
    }

    static func value(at path: String, in claims: [String: Any]) -> Any? {
        var current: Any? = claims
        for part in path.split(separator: ".") {
            current = (current as? [String: Any])?[String(part)]
        }
        return current
    }

    static func string(at path: String, in claims: [String: Any]) -> String? {
        switch value(at: path, in: claims) {
        case let text as String: text.isEmpty ? nil : text
        case let number as NSNumber where !(number is Bool): number.stringValue
        default: nil
        }
    }

    static func object(_ bytes: [UInt8]) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any]
    }
}
