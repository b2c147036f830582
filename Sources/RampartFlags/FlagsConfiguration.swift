public import RampartCore

/// `flags:` in rampart.yml.
///
/// ```yaml
/// flags:
///   sources: [flags/]              # flagd JSON files, or folders of *.json
///   watchInterval: 2s              # how often sources are read again
///   database: /var/lib/rampart/flags.sqlite   # flags made through the admin API, and their audit
///                                             # (or postgres://user:password@host/db, shared by replicas)
///   ofrep:
///     auth: token                  # open (default), token, or identity
///     tokens: [{name: web, sha256: 9f86d0...}]
///   exposures: true
/// ```
public struct FlagsConfiguration: Codable, Sendable, Equatable {
    public struct OFREP: Codable, Sendable, Equatable {
        public enum Auth: String, Codable, Sendable, CaseIterable {
            /// Anyone who reaches the traffic listener.
            case open
            /// `Authorization: Bearer <token>` or `X-API-Key: <token>` with one of `tokens`.
            case token
            /// A caller the `identity:` section verifies (a JWT or an API key).
            case identity
        }

        public struct Token: Codable, Sendable, Equatable {
            public var name: String
            /// SHA-256 of the token, 64 hex digits; the token itself is never stored.
            public var sha256: String

            public init(name: String, sha256: String) {
                self.name = name
                self.sha256 = sha256
            }

            enum CodingKeys: String, CodingKey, CaseIterable { case name, sha256 }

            public init(from decoder: any Decoder) throws {
                try decoder.rejectUnknownKeys(CodingKeys.self)
                let c = try decoder.container(keyedBy: CodingKeys.self)
                name = try c.decode(String.self, forKey: .name)
                sha256 = try c.decode(String.self, forKey: .sha256)
            }
        }

        /// Serve `/ofrep/v1/...` on the traffic listener. Default true.
        public var enabled = true
        public var auth = Auth.open
        public var tokens: [Token] = []
        /// The largest request body. Default 64KiB.
        public var maxBodyBytes = ByteCount.kibibytes(64)

        public init() {}

        enum CodingKeys: String, CodingKey, CaseIterable { case enabled, auth, tokens, maxBodyBytes }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = OFREP()
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? d.enabled
            auth = try c.decodeIfPresent(Auth.self, forKey: .auth) ?? d.auth
            tokens = try c.decodeIfPresent([Token].self, forKey: .tokens) ?? d.tokens
            maxBodyBytes = try c.decodeIfPresent(ByteCount.self, forKey: .maxBodyBytes) ?? d.maxBodyBytes
        }
    }

    public var sources: [String] = []
    public var watchInterval = ConfigDuration.seconds(2)
    /// Where flags made through the admin API and the audit of every change are kept: a SQLite
    /// file, or a `postgres://` URL that replicas share (each reads the others' changes every
    /// `watchInterval`); in memory (lost on restart) when absent. Changing it needs a restart.
    public var database: String?
    public var ofrep = OFREP()
    /// Emit an exposure event when a caller is served a variant of an experiment (a flag with
    /// `metadata.experiment: true`). Default true.
    public var exposures = true

    public init(sources: [String] = []) { self.sources = sources }

    enum CodingKeys: String, CodingKey, CaseIterable { case sources, watchInterval, database, ofrep, exposures }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = FlagsConfiguration()
        sources = try c.decodeIfPresent([String].self, forKey: .sources) ?? d.sources
        watchInterval = try c.decodeIfPresent(ConfigDuration.self, forKey: .watchInterval) ?? d.watchInterval
        database = try c.decodeIfPresent(String.self, forKey: .database)
        ofrep = try c.decodeIfPresent(OFREP.self, forKey: .ofrep) ?? d.ofrep
        exposures = try c.decodeIfPresent(Bool.self, forKey: .exposures) ?? d.exposures
    }

    /// Problems with the settings and with the flag files themselves (each file is read and
    /// checked, so `rampart check` reports a broken flag file before it is served).
    public func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        if watchInterval < .milliseconds(100) {
            issues.append(.init(path: "\(path).watchInterval", "must be at least 100ms"))
        }
        if ofrep.maxBodyBytes.bytes < 256 {
            issues.append(.init(path: "\(path).ofrep.maxBodyBytes", "must be at least 256B"))
        }
        if ofrep.auth == .token, ofrep.tokens.isEmpty {
            issues.append(.init(path: "\(path).ofrep.tokens", "auth: token needs at least one token"))
        }
        for (index, token) in ofrep.tokens.enumerated() {
            let hex = token.sha256.lowercased()
            if hex.count != 64 || !hex.allSatisfy({ $0.isHexDigit }) {
                issues.append(.init(path: "\(path).ofrep.tokens[\(index)].sha256", "must be 64 hex digits (the SHA-256 of the token)"))
            }
        }
        let (files, problems) = FlagCatalog.files(in: sources)
        for problem in problems {
            let index = sources.firstIndex(of: problem.path) ?? 0
            issues.append(.init(path: "\(path).sources[\(index)]", "\(problem.path): \(problem.problem)"))
        }
        do {
            _ = try FlagCatalog(sources: files)
        } catch {
            issues += error.issues.map { ConfigurationIssue(path: "\(path).sources", $0.description) }
        }
        return issues
    }
}
