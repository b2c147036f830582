import Crypto
import Foundation
import RampartCore
import Synchronization
import Testing
import _CryptoExtras

@testable import RampartIdentity

/// Signs tokens the way an identity provider does, with real keys of every kind.
struct Signer {
    enum Key {
        case hmac(SymmetricKey, JWSAlgorithm)
        case rsa(_RSA.Signing.PrivateKey)
        case p256(P256.Signing.PrivateKey)
        case ed25519(Curve25519.Signing.PrivateKey)
    }

    let kid: String?
    let key: Key

    var algorithm: JWSAlgorithm {
        switch key {
        case .hmac(_, let algorithm): algorithm
        case .rsa: .rs256
        case .p256: .es256
        case .ed25519: .edDSA
        }
    }

    static func json(_ object: [String: Any]) -> String {
        Base64URL.encode(try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
    }

    func sign(_ claims: [String: Any], header extra: [String: Any] = [:]) throws -> String {
        var header: [String: Any] = ["alg": algorithm.rawValue, "typ": "JWT"]
        if let kid { header["kid"] = kid }
        header.merge(extra) { $1 }
        let input = Self.json(header) + "." + Self.json(claims)
        let data = Array(input.utf8)
        let signature: [UInt8]
        switch key {
        case .hmac(let secret, .hs384): signature = Array(HMAC<SHA384>.authenticationCode(for: data, using: secret))
        case .hmac(let secret, .hs512): signature = Array(HMAC<SHA512>.authenticationCode(for: data, using: secret))
        case .hmac(let secret, _): signature = Array(HMAC<SHA256>.authenticationCode(for: data, using: secret))
        case .rsa(let key): signature = Array(try key.signature(for: SHA256.hash(data: data), padding: .insecurePKCS1v1_5).rawRepresentation)
        case .p256(let key): signature = Array(try key.signature(for: SHA256.hash(data: data)).rawRepresentation)
        case .ed25519(let key): signature = Array(try key.signature(for: data))
        }
        return input + "." + Base64URL.encode(signature)
    }

    /// The public half as a JWK (what a JWKS lists).
    func jwk() throws -> [String: Any] {
        var jwk: [String: Any]
        switch key {
        case .hmac(let secret, let algorithm):
            jwk = ["kty": "oct", "alg": algorithm.rawValue, "k": Base64URL.encode(secret.withUnsafeBytes { Array($0) })]
        case .rsa(let key):
            let primitives = try key.publicKey.getKeyPrimitives()
            jwk = ["kty": "RSA", "n": Base64URL.encode(primitives.modulus), "e": Base64URL.encode(primitives.publicExponent)]
        case .p256(let key):
            let point = Array(key.publicKey.x963Representation)
            jwk = ["kty": "EC", "crv": "P-256", "x": Base64URL.encode(point[1...32]), "y": Base64URL.encode(point[33...])]
        case .ed25519(let key):
            jwk = ["kty": "OKP", "crv": "Ed25519", "x": Base64URL.encode(key.publicKey.rawRepresentation)]
        }
        if let kid { jwk["kid"] = kid }
        jwk["use"] = "sig"
        return jwk
    }

    func verificationKey() throws -> VerificationKey { try VerificationKey(jwk: try jwk()) }

    static let secret = SymmetricKey(data: Array("a shared secret of thirty-two bytes or more".utf8))
    static func all() throws -> [Signer] {
        [Signer(kid: "h256", key: .hmac(secret, .hs256)), Signer(kid: "h384", key: .hmac(secret, .hs384)),
         Signer(kid: "h512", key: .hmac(secret, .hs512)), Signer(kid: "rsa", key: .rsa(try _RSA.Signing.PrivateKey(keySize: .bits2048))),
         Signer(kid: "ec", key: .p256(P256.Signing.PrivateKey())), Signer(kid: "ed", key: .ed25519(Curve25519.Signing.PrivateKey()))]
    }
}

@Suite("JWT verification")
struct TokenTests {
    static let now = 1_800_000_000.0
    let claims: [String: Any] = ["sub": "user-42", "iss": "https://auth.example.com/", "aud": ["quiz-api", "other"],
                                 "exp": now + 300, "nbf": now - 10, "tenant": "acme", "roles": ["teacher", "admin"]]

    func verifier(_ keys: [VerificationKey], configure: (inout TokenVerifier.Settings) -> Void = { _ in }) -> TokenVerifier {
        var settings = TokenVerifier.Settings()
        settings.issuers = ["https://auth.example.com/"]
        settings.audiences = ["quiz-api"]
        configure(&settings)
        return TokenVerifier(settings: settings, keys: keys, now: { Self.now })
    }

    @Test("every algorithm verifies a token it signed, and the claims map to an identity")
    func algorithms() throws {
        let signers = try Signer.all()
        let verifier = verifier(try signers.map { try $0.verificationKey() })
        for signer in signers {
            let identity = try verifier.verify(try signer.sign(claims))
            #expect(identity == Identity(method: .jwt, user: "user-42", tenant: "acme", roles: ["teacher", "admin"]), "\(signer.algorithm)")
        }
    }

    @Test("a changed payload, another key, or a swapped algorithm fails the signature")
    func tampering() throws {
        let signers = try Signer.all()
        let verifier = verifier(try signers.map { try $0.verificationKey() })
        for signer in signers {
            let token = try signer.sign(claims)
            let parts = token.split(separator: ".")
            var forged = claims
            forged["roles"] = ["admin", "superuser"]
            let tampered = "\(parts[0]).\(Signer.json(forged)).\(parts[2])"
            #expect(throws: TokenError.self) { try verifier.verify(tampered) }
            do { _ = try verifier.verify(tampered) } catch { #expect(error.code == .badSignature) }
        }
        // Signed by a key with the right kid but not the right secret.
        let impostor = Signer(kid: "h256", key: .hmac(SymmetricKey(data: Array("another secret, also thirty-two bytes long".utf8)), .hs256))
        do { _ = try verifier.verify(try impostor.sign(claims)); Issue.record("accepted") } catch { #expect((error as? TokenError)?.code == .badSignature) }
        // alg none, and an HMAC token naming the RSA key's kid (the classic key-confusion attack).
        let none = Signer.json(["alg": "none", "kid": "rsa"]) + "." + Signer.json(claims) + "."
        do { _ = try verifier.verify(none); Issue.record("accepted") } catch { #expect(error.code == .unsupportedAlgorithm) }
        let confused = Signer(kid: "rsa", key: .hmac(Signer.secret, .hs256))
        do { _ = try verifier.verify(try confused.sign(claims)); Issue.record("accepted") } catch { #expect((error as? TokenError)?.code == .unknownKey) }
    }

    @Test("exp, nbf, iss and aud are checked with the clock skew")
    func claimChecks() throws {
        let signer = Signer(kid: "h256", key: .hmac(Signer.secret, .hs256))
        let verifier = verifier([try signer.verificationKey()])
        func code(_ changes: [String: Any?]) throws -> TokenError.Code? {
            var edited = claims
            for (name, value) in changes { edited[name] = value }
            do { _ = try verifier.verify(try signer.sign(edited)); return nil } catch { return (error as? TokenError)?.code }
        }
        #expect(try code(["exp": Self.now - 59]) == nil)  // within the 60 s skew
        #expect(try code(["exp": Self.now - 61]) == .expired)
        #expect(try code(["exp": nil]) == .missingClaim)
        #expect(try code(["exp": "tomorrow"]) == .malformed)
        #expect(try code(["nbf": Self.now + 59]) == nil)
        #expect(try code(["nbf": Self.now + 61]) == .notYetValid)
        #expect(try code(["iss": "https://evil.example.com/"]) == .wrongIssuer)
        #expect(try code(["iss": nil]) == .wrongIssuer)
        #expect(try code(["aud": "quiz-api"]) == nil)
        #expect(try code(["aud": ["billing"]]) == .wrongAudience)
        #expect(try code(["sub": nil]) == .missingClaim)
    }

    @Test("a verified token is remembered, but not past its exp, nor once the keys change")
    func cache() throws {
        let signer = Signer(kid: "h256", key: .hmac(Signer.secret, .hs256))
        let clock = Mutex(Self.now)
        var settings = TokenVerifier.Settings()
        settings.clockSkew = .seconds(5)
        let verifier = TokenVerifier(settings: settings, keys: [try signer.verificationKey()], now: { clock.withLock { $0 } })
        let token = try signer.sign(["sub": "u", "exp": Self.now + 10])
        #expect(try verifier.verify(token).user == "u")
        clock.withLock { $0 += 14 }
        #expect(try verifier.verify(token).user == "u")  // within exp + skew
        clock.withLock { $0 += 2 }
        #expect(throws: TokenError(.expired, "expired 6 s ago")) { try verifier.verify(token) }

        let fresh = try signer.sign(["sub": "v", "exp": Self.now + 600])
        #expect(try verifier.verify(fresh).user == "v")
        verifier.replaceKeys([try Signer(kid: "other", key: .hmac(Signer.secret, .hs256)).verificationKey()])
        do { _ = try verifier.verify(fresh); Issue.record("a token of a removed key was still accepted") } catch { #expect(error.code == .unknownKey) }
    }

    @Test("claims are found by dotted paths; a scope-style string gives roles too")
    func claimPaths() throws {
        let signer = Signer(kid: nil, key: .ed25519(Curve25519.Signing.PrivateKey()))
        let verifier = verifier([try signer.verificationKey()]) { settings in
            settings.userClaim = "email"
            settings.tenantClaim = "org.id"
            settings.rolesClaim = "realm_access.roles"
            settings.issuers = []
            settings.audiences = []
        }
        let token = try signer.sign(["email": "ada@example.com", "org": ["id": 7], "realm_access": ["roles": ["viewer"]], "exp": Self.now + 60])
        #expect(try verifier.verify(token) == Identity(method: .jwt, user: "ada@example.com", tenant: "7", roles: ["viewer"]))
        let scoped = self.verifier([try signer.verificationKey()]) { settings in
            settings.rolesClaim = "scope"
            settings.issuers = []
            settings.audiences = []
        }
        #expect(try scoped.verify(try signer.sign(["sub": "s", "scope": "read write", "exp": Self.now + 60])).roles == ["read", "write"])
    }

    @Test("malformed tokens are refused without a crash", arguments: [
        "", "a.b", "a.b.c.d", "!!!.e30.sig", "e30.e30.", "eyJhbGciOiJIUzI1NiJ9.%%%.abc",
        String(repeating: "a", count: 20_000),
    ])
    func malformed(token: String) throws {
        let verifier = verifier([try Signer(kid: nil, key: .hmac(Signer.secret, .hs256)).verificationKey()])
        #expect(throws: TokenError.self) { try verifier.verify(token) }
    }

    @Test("keys that cannot be used are refused with the reason")
    func badKeys() {
        #expect(throws: KeyError.self) { try VerificationKey(id: nil, algorithm: .hs256, secret: Array("short".utf8)) }
        #expect(throws: KeyError.self) { try VerificationKey(id: nil, algorithm: .rs256, secret: Array(repeating: 1, count: 40)) }
        #expect(throws: KeyError.self) { try VerificationKey(jwk: ["kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"]) }
        #expect(throws: KeyError.self) { try VerificationKey(jwk: ["kty": "RSA", "n": "AQAB", "e": "AQAB"]) }  // far under 2048 bits
        #expect(throws: KeyError.self) { try VerificationKey(jwk: ["kty": "OKP", "crv": "Ed25519", "x": "not base64!"]) }
        #expect(throws: KeyError.self) { try VerificationKey(id: nil, algorithm: .es256, pem: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----") }
    }

    @Test("PEM public keys verify RS256 and ES256")
    func pem() throws {
        let rsa = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let ec = P256.Signing.PrivateKey()
        let keys = [try VerificationKey(id: "r", algorithm: .rs256, pem: rsa.publicKey.pemRepresentation),
                    try VerificationKey(id: "e", algorithm: .es256, pem: ec.publicKey.pemRepresentation)]
        let verifier = verifier(keys)
        #expect(try verifier.verify(try Signer(kid: "r", key: .rsa(rsa)).sign(claims)).user == "user-42")
        #expect(try verifier.verify(try Signer(kid: "e", key: .p256(ec)).sign(claims)).user == "user-42")
    }

    @Test("base64url round-trips any bytes, and refuses what is not base64url")
    func base64url() {
        for length in 0..<70 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(Base64URL.decode(Base64URL.encode(bytes)) == bytes)
        }
        #expect(Base64URL.decode("ab+c") == nil)
        #expect(Base64URL.decode("a") == nil)
        #expect(Base64URL.decode("AB") == nil)  // non-zero leftover bits
    }
}

@Suite("Authenticator: JWKS rotation and API keys")
struct AuthenticatorTests {
    final class Clock: Sendable {
        let seconds = Mutex(1_800_000_000.0)
        var now: Double { seconds.withLock { $0 } }
        func advance(_ by: Double) { seconds.withLock { $0 += by } }
    }

    func writeJWKS(_ signers: [Signer], to path: String) throws {
        let document: [String: Any] = ["keys": try signers.map { try $0.jwk() } + [["kty": "RSA", "use": "enc", "kid": "encryption-only"]]]
        try JSONSerialization.data(withJSONObject: document).write(to: URL(fileURLWithPath: path))
    }

    @Test("a token signed by a rotated-in key is accepted once the JWKS is read again on its unknown kid")
    func rotation() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("jwks-\(UUID().uuidString).json").path
        let old = Signer(kid: "2026-10", key: .p256(P256.Signing.PrivateKey()))
        let new = Signer(kid: "2026-11", key: .rsa(try _RSA.Signing.PrivateKey(keySize: .bits2048)))
        try writeJWKS([old], to: path)
        var configuration = IdentityConfiguration(jwt: .init())
        configuration.jwt?.jwks = .init(file: path)
        configuration.jwt?.jwks?.minRefreshInterval = .seconds(10)
        let clock = Clock()
        let authenticator = try Authenticator(configuration, now: { clock.now })
        #expect(await authenticator.refreshKeys(force: true))
        #expect(authenticator.keyIDs == ["2026-10"])
        let claims: [String: Any] = ["sub": "u1", "exp": clock.now + 600]
        #expect(try await authenticator.authenticate(authorization: "Bearer \(old.sign(claims))", apiKey: nil).get().user == "u1")

        // The provider publishes the new key and starts signing with it.
        try writeJWKS([old, new], to: path)
        clock.advance(11)
        let rotated = await authenticator.authenticate(authorization: "Bearer \(try new.sign(claims))", apiKey: nil)
        #expect(try rotated.get().user == "u1")
        #expect(Set(authenticator.keyIDs.compactMap { $0 }) == ["2026-10", "2026-11"])

        // An unknown kid does not make every request read the JWKS: once per minRefreshInterval.
        let stranger = Signer(kid: "never-published", key: .p256(P256.Signing.PrivateKey()))
        try writeJWKS([new], to: path)
        clock.advance(1)
        let refused = await authenticator.authenticate(authorization: "Bearer \(try stranger.sign(claims))", apiKey: nil)
        #expect(refused.failure?.code == .unknownKey)
        #expect(authenticator.keyIDs.contains("2026-10"), "the JWKS was read again within minRefreshInterval")
        // The retired key goes on the next refresh.
        #expect(await authenticator.refreshKeys(force: true))
        #expect(authenticator.keyIDs == ["2026-11"])
        #expect(authenticator.keySetProblems.isEmpty)
    }

    @Test("a token arriving while the JWKS is being read waits for that read")
    func concurrentRead() async throws {
        let signer = Signer(kid: "slow", key: .ed25519(Curve25519.Signing.PrivateKey()))
        let document = try JSONSerialization.data(withJSONObject: ["keys": [try signer.jwk()]])
        var configuration = IdentityConfiguration(jwt: .init())
        configuration.jwt?.jwks = .init(url: "https://idp.example/jwks.json")
        let reads = Mutex(0)
        let authenticator = try Authenticator(configuration, fetch: { _ in
            reads.withLock { $0 += 1 }
            try await Task.sleep(for: .milliseconds(200))
            return Array(document)
        })
        let start = Task { await authenticator.refreshKeys(force: true) }
        try await Task.sleep(for: .milliseconds(20))
        let token = try signer.sign(["sub": "u", "exp": wallClockSeconds() + 60])
        #expect(try await authenticator.authenticate(authorization: "Bearer \(token)", apiKey: nil).get().user == "u")
        #expect(await start.value)
        #expect(reads.withLock { $0 } == 1)
    }

    @Test("API keys are matched by hash; bad credentials are errors, none is anonymous")
    func apiKeys() async throws {
        let key = "rk_live_7d3f9a1c2b4e6f8091a2b3c4d5e6f708"
        let hash = SHA256.hash(data: Array(key.utf8)).map { String(format: "%02x", $0) }.joined()
        var configuration = IdentityConfiguration(apiKeys: .init())
        configuration.apiKeys?.keys = [.init(name: "ci", sha256: hash, user: "ci-bot", tenant: "acme", roles: ["service"])]
        let authenticator = try Authenticator(configuration)
        let expected = Identity(method: .apiKey, user: "ci-bot", tenant: "acme", roles: ["service"], apiKey: "ci")
        #expect(try await authenticator.authenticate(authorization: nil, apiKey: key).get() == expected)
        #expect(try await authenticator.authenticate(authorization: "ApiKey \(key)", apiKey: nil).get() == expected)
        #expect(await authenticator.authenticate(authorization: nil, apiKey: key + "x").failure?.code == .unknownAPIKey)
        #expect(try await authenticator.authenticate(authorization: nil, apiKey: nil).get() == .anonymous)
        // Another scheme is the upstream's business.
        #expect(try await authenticator.authenticate(authorization: "Basic dTpw", apiKey: nil).get() == .anonymous)
    }

    @Test("configuration problems name their path")
    func validation() {
        var configuration = IdentityConfiguration(jwt: .init(), apiKeys: .init())
        configuration.jwt?.keys = [.init(kid: "k", alg: .hs256, secret: "short"), .init(alg: .rs256)]
        configuration.jwt?.jwks = .init(file: "/a", url: "https://b")
        configuration.apiKeys?.keys = [.init(name: "x", sha256: "abc")]
        let paths = configuration.validate(at: "identity").map(\.path)
        #expect(paths == ["identity.jwt.keys[0]", "identity.jwt.keys[1]", "identity.jwt.jwks", "identity.apiKeys.keys[0].sha256"])
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
