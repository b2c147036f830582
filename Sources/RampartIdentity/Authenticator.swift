public import RampartCore
import Crypto
import Foundation
import Synchronization

/// The identify phase's question, answered: who is this caller? A bearer JWT is verified
/// (the JWKS read again when it names an unknown `kid`), an API key looked up by its
/// SHA-256; without either the caller is anonymous. A credential that is present but bad is
/// an error: the gateway answers 401 on routes that require identity, and treats the caller
/// as anonymous elsewhere.
public final class Authenticator: Sendable {
    /// Reads a JWKS document (a file, or a URL through the gateway's HTTP client).
    public typealias Fetch = @Sendable (_ location: String) async throws -> [UInt8]

    struct JWKSState {
        var lastRead: Double = -.infinity
        var problems: [String] = []
        /// The read under way: later callers wait for it rather than start another, or give
        /// up on a key it may be about to bring.
        var reading: Task<Bool, Never>?
    }

    public let configuration: IdentityConfiguration
    let verifier: TokenVerifier?
    private let staticKeys: [VerificationKey]
    /// API keys by the bytes of their SHA-256.
    private let apiKeys: [[UInt8]: IdentityConfiguration.APIKeys.Key]
    private let jwks = Mutex(JWKSState())
    private let fetch: Fetch
    private let now: @Sendable () -> Double

    /// - Throws: `KeyError` for a configured key that cannot be used (validation reports
    ///   these first, with their paths).
    public init(_ configuration: IdentityConfiguration, fetch: @escaping Fetch = Authenticator.readFile,
                now: @escaping @Sendable () -> Double = wallClockSeconds) throws(KeyError) {
        self.configuration = configuration
        self.fetch = fetch
        self.now = now
        if let jwt = configuration.jwt {
            var keys: [VerificationKey] = []
            for key in jwt.keys { keys.append(try key.verificationKey()) }
            staticKeys = keys
            verifier = TokenVerifier(settings: jwt.settings, keys: keys, now: now)
        } else {
            staticKeys = []
            verifier = nil
        }
        var table: [[UInt8]: IdentityConfiguration.APIKeys.Key] = [:]
        for key in configuration.apiKeys?.keys ?? [] {
            guard let hash = Self.bytes(hex: key.sha256), hash.count == SHA256.byteCount else { throw KeyError("API key \(key.name): sha256 must be 64 hex digits") }
            table[hash] = key
        }
        apiKeys = table
    }

    static func bytes(hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }

    public static let readFile: Fetch = { path in
        guard let data = FileManager.default.contents(atPath: path) else { throw KeyError("cannot read \(path)") }
        return Array(data)
    }

    /// The caller's identity from its `Authorization` and API-key headers; `.anonymous`
    /// when it sent neither.
    public func authenticate(authorization: String?, apiKey: String?) async -> Result<Identity, TokenError> {
        if let authorization {
            let (scheme, credential) = Self.split(authorization)
            switch scheme {
            case "bearer" where verifier != nil:
                return await verify(credential)
            case "apikey" where configuration.apiKeys != nil:
                return lookUp(credential)
            default:
                break  // another scheme (Basic for the upstream, say): not ours to judge
            }
        }
        if let apiKey, configuration.apiKeys != nil { return lookUp(apiKey) }
        return .success(.anonymous)
    }

    private static func split(_ header: String) -> (scheme: String, credential: String) {
        let trimmed = header.trimmingASCIIWhitespace()
        guard let space = trimmed.firstIndex(of: " ") else { return (trimmed.lowercased(), "") }
        return (trimmed[..<space].lowercased(), String(trimmed[space...].trimmingASCIIWhitespace()))
    }

    private func verify(_ token: String) async -> Result<Identity, TokenError> {
        guard let verifier else { return .success(.anonymous) }
        do {
            return .success(try verifier.verify(token))
        } catch where error.code == .unknownKey && configuration.jwt?.jwks != nil {
            // Keys rotate: the JWKS may have a key we have not read yet.
            guard await refreshKeys(force: false) else { return .failure(error) }
            do { return .success(try verifier.verify(token)) } catch { return .failure(error) }
        } catch {
            return .failure(error)
        }
    }

    private func lookUp(_ key: String) -> Result<Identity, TokenError> {
        guard let entry = apiKeys[Array(SHA256.hash(data: Array(key.utf8)))] else { return .failure(TokenError(.unknownAPIKey, "the API key is not known")) }
        return .success(Identity(method: .apiKey, user: entry.user, tenant: entry.tenant, roles: entry.roles, apiKey: entry.name))
    }

    /// Reads the JWKS again. Unless forced (the refresh interval), at most once per
    /// `minRefreshInterval`; a caller arriving while a read is under way waits for that one.
    /// Answers whether the keys were read; a failed read keeps the keys there were.
    @discardableResult
    public func refreshKeys(force: Bool) async -> Bool {
        guard let verifier, let source = configuration.jwt?.jwks, let location = source.file ?? source.url else { return false }
        let now = self.now()
        let read: Task<Bool, Never>? = jwks.withLock { state in
            if let reading = state.reading { return reading }
            guard force || now - state.lastRead >= source.minRefreshInterval.seconds else { return nil }
            state.lastRead = now
            let task = Task { [fetch, staticKeys] () -> Bool in
                defer { self.jwks.withLock { $0.reading = nil } }
                do {
                    let (keys, problems) = try Self.parseJWKS(try await fetch(location))
                    verifier.replaceKeys(staticKeys + keys)
                    self.jwks.withLock { $0.problems = problems }
                    return true
                } catch {
                    self.jwks.withLock { $0.problems = ["\(location): \(error)"] }
                    return false
                }
            }
            state.reading = task
            return task
        }
        return await read?.value ?? false
    }

    /// Problems found in the last JWKS read (keys skipped, or the read failed).
    public var keySetProblems: [String] { jwks.withLock { $0.problems } }

    public var keyIDs: [String?] { verifier?.keyIDs ?? [] }

    /// The signing keys of a JWKS document; keys that cannot be used (encryption keys,
    /// unsupported types) are skipped and listed.
    static func parseJWKS(_ bytes: [UInt8]) throws(KeyError) -> ([VerificationKey], [String]) {
        guard let document = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any],
              let entries = document["keys"] as? [Any] else {
            throw KeyError("not a JWKS document (a JSON object with a keys array)")
        }
        var keys: [VerificationKey] = []
        var problems: [String] = []
        for (index, entry) in entries.enumerated() {
            guard let jwk = entry as? [String: Any] else { problems.append("keys[\(index)]: not an object"); continue }
            if let use = jwk["use"] as? String, use != "sig" { continue }
            do { keys.append(try VerificationKey(jwk: jwk)) } catch { problems.append("keys[\(index)] (kid \(jwk["kid"] ?? "none")): \(error)") }
        }
        return (keys, problems)
    }
}
