public import RampartCore

/// `identity:` in rampart.yml: how callers prove who they are.
///
/// ```yaml
/// identity:
///   jwt:
///     issuers: [https://auth.example.com/]
///     audiences: [quiz-api]
///     keys:
///       - {kid: hmac-1, alg: HS256, secret: "at least thirty-two bytes of secret!!"}
///     jwks: {file: /etc/rampart/jwks.json, refresh: 5m}
///     claims: {user: sub, tenant: org_id, roles: realm_access.roles}
///   apiKeys:
///     keys:
///       - {name: ci, sha256: 9f86d0..., user: ci-bot, roles: [service]}
/// ```
public struct IdentityConfiguration: Codable, Sendable, Equatable {
    public struct JWT: Codable, Sendable, Equatable {
        public struct Key: Codable, Sendable, Equatable {
            public var kid: String?
            public var alg: JWSAlgorithm
            /// An HMAC secret, as text (HS256/384/512).
            public var secret: String?
            /// A public key in PEM (RS256, ES256).
            public var pem: String?

            public init(kid: String? = nil, alg: JWSAlgorithm, secret: String? = nil, pem: String? = nil) {
                self.kid = kid
                self.alg = alg
                self.secret = secret
                self.pem = pem
            }

            enum CodingKeys: String, CodingKey, CaseIterable { case kid, alg, secret, pem }

            public init(from decoder: any Decoder) throws {
                try decoder.rejectUnknownKeys(CodingKeys.self)
                let c = try decoder.container(keyedBy: CodingKeys.self)
                kid = try c.decodeIfPresent(String.self, forKey: .kid)
                alg = try c.decode(JWSAlgorithm.self, forKey: .alg)
                secret = try c.decodeIfPresent(String.self, forKey: .secret)
                pem = try c.decodeIfPresent(String.self, forKey: .pem)
            }

            /// The key, or what is wrong with it.
            public func verificationKey() throws(KeyError) -> VerificationKey {
                switch (secret, pem) {
                case (let secret?, nil): return try VerificationKey(id: kid, algorithm: alg, secret: Array(secret.utf8))
                case (nil, let pem?): return try VerificationKey(id: kid, algorithm: alg, pem: pem)
                default: throw KeyError("give exactly one of secret (HS256/384/512) and pem (RS256, ES256)")
                }
            }
        }

        /// A JSON Web Key Set, from a file or a URL, read at start, every `refresh`, and when
        /// a token names a `kid` it does not have (at most once per `minRefreshInterval`).
        public struct JWKS: Codable, Sendable, Equatable {
            public var file: String?
            public var url: String?
            public var refresh = ConfigDuration.seconds(300)
            public var minRefreshInterval = ConfigDuration.seconds(10)

            public init(file: String? = nil, url: String? = nil) {
                self.file = file
                self.url = url
            }

            enum CodingKeys: String, CodingKey, CaseIterable { case file, url, refresh, minRefreshInterval }

            public init(from decoder: any Decoder) throws {
                try decoder.rejectUnknownKeys(CodingKeys.self)
                let c = try decoder.container(keyedBy: CodingKeys.self)
                let d = JWKS()
                file = try c.decodeIfPresent(String.self, forKey: .file)
                url = try c.decodeIfPresent(String.self, forKey: .url)
                refresh = try c.decodeIfPresent(ConfigDuration.self, forKey: .refresh) ?? d.refresh
                minRefreshInterval = try c.decodeIfPresent(ConfigDuration.self, forKey: .minRefreshInterval) ?? d.minRefreshInterval
            }
        }

        /// Where in the claims the user, tenant and roles are (dotted paths).
        public struct Claims: Codable, Sendable, Equatable {
            public var user = "sub"
            public var tenant: String? = "tenant"
            public var roles: String? = "roles"

            public init() {}

            enum CodingKeys: String, CodingKey, CaseIterable { case user, tenant, roles }

            public init(from decoder: any Decoder) throws {
                try decoder.rejectUnknownKeys(CodingKeys.self)
                let c = try decoder.container(keyedBy: CodingKeys.self)
                let d = Claims()
                user = try c.decodeIfPresent(String.self, forKey: .user) ?? d.user
                tenant = try c.decodeIfPresent(String.self, forKey: .tenant) ?? d.tenant
                roles = try c.decodeIfPresent(String.self, forKey: .roles) ?? d.roles
            }
        }

        public var issuers: [String] = []
        public var audiences: [String] = []
        public var clockSkew = ConfigDuration.seconds(60)
        public var requireExpiry = true
        public var keys: [Key] = []
        public var jwks: JWKS?
        public var claims = Claims()

        public init() {}

        enum CodingKeys: String, CodingKey, CaseIterable { case issuers, audiences, clockSkew, requireExpiry, keys, jwks, claims }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = JWT()
            issuers = try c.decodeIfPresent([String].self, forKey: .issuers) ?? d.issuers
            audiences = try c.decodeIfPresent([String].self, forKey: .audiences) ?? d.audiences
            clockSkew = try c.decodeIfPresent(ConfigDuration.self, forKey: .clockSkew) ?? d.clockSkew
            requireExpiry = try c.decodeIfPresent(Bool.self, forKey: .requireExpiry) ?? d.requireExpiry
            keys = try c.decodeIfPresent([Key].self, forKey: .keys) ?? d.keys
            jwks = try c.decodeIfPresent(JWKS.self, forKey: .jwks)
            claims = try c.decodeIfPresent(Claims.self, forKey: .claims) ?? d.claims
        }

        public var settings: TokenVerifier.Settings {
            var s = TokenVerifier.Settings()
            s.issuers = issuers
            s.audiences = audiences
            s.clockSkew = clockSkew.duration
            s.requireExpiry = requireExpiry
            s.userClaim = claims.user
            s.tenantClaim = claims.tenant
            s.rolesClaim = claims.roles
            return s
        }
    }

    /// API keys, stored as SHA-256 hashes (hex): the configuration never holds a key itself.
    public struct APIKeys: Codable, Sendable, Equatable {
        public struct Key: Codable, Sendable, Equatable {
            public var name: String
            public var sha256: String
            public var user: String?
            public var tenant: String?
            public var roles: [String] = []

            public init(name: String, sha256: String, user: String? = nil, tenant: String? = nil, roles: [String] = []) {
                self.name = name
                self.sha256 = sha256
                self.user = user
                self.tenant = tenant
                self.roles = roles
            }

            enum CodingKeys: String, CodingKey, CaseIterable { case name, sha256, user, tenant, roles }

            public init(from decoder: any Decoder) throws {
                try decoder.rejectUnknownKeys(CodingKeys.self)
                let c = try decoder.container(keyedBy: CodingKeys.self)
                name = try c.decode(String.self, forKey: .name)
                sha256 = try c.decode(String.self, forKey: .sha256).lowercased()
                user = try c.decodeIfPresent(String.self, forKey: .user)
                tenant = try c.decodeIfPresent(String.self, forKey: .tenant)
                roles = try c.decodeIfPresent([String].self, forKey: .roles) ?? []
            }
        }

        /// The header the key comes in (also accepted: `Authorization: ApiKey <key>`).
        public var header = "X-API-Key"
        public var keys: [Key] = []

        public init() {}

        enum CodingKeys: String, CodingKey, CaseIterable { case header, keys }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            header = try c.decodeIfPresent(String.self, forKey: .header) ?? "X-API-Key"
            keys = try c.decodeIfPresent([Key].self, forKey: .keys) ?? []
        }
    }

    public var jwt: JWT?
    public var apiKeys: APIKeys?

    public init(jwt: JWT? = nil, apiKeys: APIKeys? = nil) {
        self.jwt = jwt
        self.apiKeys = apiKeys
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case jwt, apiKeys }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        jwt = try c.decodeIfPresent(JWT.self, forKey: .jwt)
        apiKeys = try c.decodeIfPresent(APIKeys.self, forKey: .apiKeys)
    }

    public func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        if let jwt {
            for (index, key) in jwt.keys.enumerated() {
                do { _ = try key.verificationKey() } catch { issues.append(.init(path: "\(path).jwt.keys[\(index)]", error.description)) }
            }
            if let jwks = jwt.jwks {
                if (jwks.file == nil) == (jwks.url == nil) { issues.append(.init(path: "\(path).jwt.jwks", "give exactly one of file and url")) }
                if let url = jwks.url, !(url.hasPrefix("https://") || url.hasPrefix("http://")) {
                    issues.append(.init(path: "\(path).jwt.jwks.url", "must be an http(s) URL, got \"\(url)\""))
                }
                if jwks.refresh.duration < .seconds(1) { issues.append(.init(path: "\(path).jwt.jwks.refresh", "must be at least 1s, got \(jwks.refresh)")) }
            }
            if jwt.keys.isEmpty && jwt.jwks == nil { issues.append(.init(path: "\(path).jwt", "needs keys or jwks to verify tokens with")) }
            if jwt.clockSkew.duration < .zero || jwt.clockSkew.duration > .seconds(600) {
                issues.append(.init(path: "\(path).jwt.clockSkew", "must be between 0s and 10m, got \(jwt.clockSkew)"))
            }
        }
        if let apiKeys {
            var seen = Set<String>()
            for (index, key) in apiKeys.keys.enumerated() {
                if key.sha256.count != 64 || !key.sha256.allSatisfy(\.isHexDigit) {
                    issues.append(.init(path: "\(path).apiKeys.keys[\(index)].sha256", "must be the key's SHA-256 as 64 hex digits (printf %s KEY | sha256sum)"))
                }
                if !seen.insert(key.sha256).inserted { issues.append(.init(path: "\(path).apiKeys.keys[\(index)]", "the same key hash is listed twice")) }
            }
        }
        return issues
    }
}
