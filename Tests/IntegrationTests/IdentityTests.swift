import Crypto
import Foundation
import RampartCore
import RampartGateway
import RampartIdentity
import RampartLimits
import RampartTesting
import Testing

/// Identity in a running gateway: 401 on routes that require it, anonymous elsewhere,
/// limits keyed by the token's user with role multipliers, API keys, and a JWKS rotation.
@Suite(.serialized) struct IdentityTests {
    static let secret = "the gateway's HMAC secret, thirty-two bytes or more"

    static func token(_ claims: [String: Any], kid: String = "hmac", secret: String = secret, sign: (([UInt8]) throws -> [UInt8])? = nil,
                      alg: String = "HS256") throws -> String {
        func part(_ object: [String: Any]) throws -> String {
            try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        }
        let input = try part(["alg": alg, "kid": kid, "typ": "JWT"]) + "." + part(claims)
        let signature = try sign?(Array(input.utf8))
            ?? Array(HMAC<SHA256>.authenticationCode(for: Array(input.utf8), using: SymmetricKey(data: Array(secret.utf8))))
        return input + "." + Data(signature).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func claims(user: String, roles: [String] = [], expiresIn: Double = 600) -> [String: Any] {
        ["sub": user, "iss": "https://auth.example.com/", "aud": "quiz-api", "exp": Date().timeIntervalSince1970 + expiresIn, "roles": roles]
    }

    static func jwks(_ key: P256.Signing.PrivateKey, kid: String) -> String {
        let point = Array(key.publicKey.x963Representation)
        func b64(_ bytes: ArraySlice<UInt8>) -> String {
            Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        }
        return #"{"keys":[{"kty":"EC","crv":"P-256","kid":"\#(kid)","x":"\#(b64(point[1...32]))","y":"\#(b64(point[33...]))"}]}"#
    }

    @Test func identityIsRequiredWhereConfiguredAndKeysTheLimits() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "a")
        let jwksPath = FileManager.default.temporaryDirectory.appendingPathComponent("jwks-\(UUID().uuidString).json").path
        let first = P256.Signing.PrivateKey()
        try Self.jwks(first, kid: "ec-1").write(toFile: jwksPath, atomically: true, encoding: .utf8)
        let apiKey = "rk_test_0123456789abcdef"
        var configuration = LoopbackHarness.configuration(pool: [upstream])
        configuration.routes = [
            RouteConfiguration(name: "private", match: .init(pathPrefix: "/private"), pool: "app", limit: "off", identity: .required),
            RouteConfiguration(name: "api", match: .init(pathPrefix: "/api"), pool: "app"),
        ]
        var identity = IdentityConfiguration(jwt: .init(), apiKeys: .init())
        identity.jwt?.issuers = ["https://auth.example.com/"]
        identity.jwt?.audiences = ["quiz-api"]
        identity.jwt?.keys = [.init(kid: "hmac", alg: .hs256, secret: Self.secret)]
        identity.jwt?.jwks = .init(file: jwksPath)
        identity.jwt?.jwks?.minRefreshInterval = .milliseconds(1)
        identity.apiKeys?.keys = [.init(name: "ci", sha256: SHA256.hash(data: Array(apiKey.utf8)).map { String(format: "%02x", $0) }.joined(),
                                        user: "ci-bot", roles: ["service"])]
        configuration.identity = identity
        configuration.limits = RateLimitsConfiguration(defaults: .init(base: 2, window: .seconds(3600), adaptive: false, key: [.user],
                                                                       roles: ["admin": 3]))
        try await LoopbackHarness.withGateway(configuration) { _, port, _ in
            let url = "http://127.0.0.1:\(port)"
            func get(_ path: String, token: String? = nil, headers: [(String, String)] = []) async throws -> (status: Int, body: [String: Any]) {
                let answer = try await fetch(url + path, headers: headers + (token.map { [("Authorization", "Bearer \($0)")] } ?? []))
                return (answer.status, (try? JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any]) ?? [:])
            }
            // Required: nothing, a forged token, an expired one: 401 with the reason.
            let missing = try await get("/private")
            #expect(missing.status == 401 && missing.body["error"] as? String == "identity_required")
            let forged = try await get("/private", token: Self.token(Self.claims(user: "ada"), secret: "not the gateway's secret, but as long as one"))
            #expect(forged.status == 401 && forged.body["error"] as? String == "token_signature_invalid")
            let expired = try await get("/private", token: Self.token(Self.claims(user: "ada", expiresIn: -600)))
            #expect(expired.status == 401 && expired.body["error"] as? String == "token_expired")
            #expect(try await get("/private", token: Self.token(Self.claims(user: "ada"))).status == 200)
            #expect(try await get("/private", headers: [("X-API-Key", apiKey)]).status == 200)
            #expect(try await get("/private", headers: [("X-API-Key", apiKey + "0")]).status == 401)

            // Optional: a bad token is an anonymous caller, not a refusal.
            #expect(try await get("/api/x", token: "not.a.token").status == 200)

            // Limits keyed by user: 2 each, 6 for an admin (3x).
            let ada = try Self.token(Self.claims(user: "ada"))
            let bob = try Self.token(Self.claims(user: "bob"))
            let root = try Self.token(Self.claims(user: "root", roles: ["admin"]))
            #expect(try await [get("/api/q", token: ada).status, get("/api/q", token: ada).status, get("/api/q", token: ada).status] == [200, 200, 429])
            #expect(try await get("/api/q", token: bob).status == 200)
            var admitted = 0
            for _ in 0..<8 where try await get("/api/q", token: root).status == 200 { admitted += 1 }
            #expect(admitted == 6)

            // Key rotation: the provider publishes a new key and signs with it.
            let second = P256.Signing.PrivateKey()
            let rotated = try Self.token(Self.claims(user: "ada"), kid: "ec-2", sign: { try Array(second.signature(for: SHA256.hash(data: $0)).rawRepresentation) },
                                         alg: "ES256")
            #expect(try await get("/private", token: rotated).status == 401)
            try Self.jwks(second, kid: "ec-2").write(toFile: jwksPath, atomically: true, encoding: .utf8)
            try await Task.sleep(for: .milliseconds(5))
            #expect(try await get("/private", token: rotated).status == 200)
        }
        await upstream.stop()
    }

    @Test func keysAreReadFromAJWKSURL() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "a")
        let key = P256.Signing.PrivateKey()
        // A second gateway plays the identity provider, serving the JWKS as a fixed answer.
        var provider = LoopbackHarness.configuration(pool: [upstream])
        provider.routes = [RouteConfiguration(name: "jwks", match: .init(pathPrefix: "/.well-known/jwks.json"),
                                              respond: FixedResponse(status: 200, body: Self.jwks(key, kid: "url-1"), contentType: "application/json"))]
        try await LoopbackHarness.withGateway(provider) { _, providerPort, _ in
            var configuration = LoopbackHarness.configuration(pool: [upstream])
            configuration.routes = [RouteConfiguration(name: "private", match: .init(pathPrefix: "/"), pool: "app", identity: .required)]
            var identity = IdentityConfiguration(jwt: .init())
            identity.jwt?.jwks = .init(url: "http://127.0.0.1:\(providerPort)/.well-known/jwks.json")
            configuration.identity = identity
            try await LoopbackHarness.withGateway(configuration) { _, port, _ in
                let token = try Self.token(Self.claims(user: "ada"), kid: "url-1",
                                           sign: { try Array(key.signature(for: SHA256.hash(data: $0)).rawRepresentation) }, alg: "ES256")
                let answer = try await fetch("http://127.0.0.1:\(port)/me", headers: [("Authorization", "Bearer \(token)")])
                #expect(answer.status == 200, "\(answer.body)")
            }
        }
        await upstream.stop()
    }

    @Test func checkPrintsIdentityAndSharedLimitsWithoutSecrets() throws {
        let file = try TemporaryConfiguration()
        try file.writeRaw("""
        pools:
          app: {instances: ["http://127.0.0.1:1"]}
        routes:
          - {name: account, match: {pathPrefix: /account}, pool: app, identity: required}
        limits: {base: 100, window: 1m, key: [user], shared: {replicas: 4, onStoreFailure: open}}
        redis: {url: "redis://:hunter2pw@10.0.0.5:6379"}
        identity:
          jwt:
            keys: [{kid: k, alg: HS256, secret: "at least thirty-two bytes of shared secret"}]
          apiKeys:
            keys: [{name: ci, sha256: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8}]

        """)
        let (status, output) = try runToEnd(["check", "--config", file.path])
        #expect(status == 0)
        #expect(output.contains("limits shared through redis://:***@10.0.0.5:6379 by 4 replica(s); while Redis fails: open"), "\(output)")
        #expect(output.contains("identity: JWT (1 key(s)); API keys (1 in X-API-Key)"), "\(output)")
        #expect(output.contains("route account: path /account* -> pool app, limit default, identity required"), "\(output)")
        #expect(!output.contains("hunter2pw") && !output.contains("thirty-two bytes"))
    }

    @Test func theJWKSIsReadAgainOnItsInterval() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "a")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("jwks-\(UUID().uuidString).json").path
        try Self.jwks(P256.Signing.PrivateKey(), kid: "old").write(toFile: path, atomically: true, encoding: .utf8)
        var configuration = LoopbackHarness.configuration(pool: [upstream])
        configuration.routes = [RouteConfiguration(name: "private", match: .init(pathPrefix: "/"), pool: "app", identity: .required)]
        var identity = IdentityConfiguration(jwt: .init())
        identity.jwt?.jwks = .init(file: path)
        identity.jwt?.jwks?.refresh = .seconds(1)
        // No reads on unknown kids: only the interval can bring the new key.
        identity.jwt?.jwks?.minRefreshInterval = .seconds(3600)
        configuration.identity = identity
        try await LoopbackHarness.withGateway(configuration) { _, port, _ in
            let key = P256.Signing.PrivateKey()
            let token = try Self.token(Self.claims(user: "ada"), kid: "new",
                                       sign: { try Array(key.signature(for: SHA256.hash(data: $0)).rawRepresentation) }, alg: "ES256")
            let headers = [("Authorization", "Bearer \(token)")]
            #expect(try await fetch("http://127.0.0.1:\(port)/", headers: headers).status == 401)
            try Self.jwks(key, kid: "new").write(toFile: path, atomically: true, encoding: .utf8)
            try await eventually { try await fetch("http://127.0.0.1:\(port)/", headers: headers).status == 200 }
        }
        await upstream.stop()
    }
}
