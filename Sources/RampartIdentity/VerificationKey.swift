import Crypto
import Foundation
import RampartCore
import _CryptoExtras

/// JWS algorithms Rampart verifies. `none` and anything else is refused.
public enum JWSAlgorithm: String, Sendable, Hashable, CaseIterable, Codable {
    case hs256 = "HS256", hs384 = "HS384", hs512 = "HS512"
    case rs256 = "RS256"
    case es256 = "ES256"
    case edDSA = "EdDSA"
}

/// A key that checks signatures, with the one algorithm it may be used with (a token's
/// `alg` must match it, so an RSA public key can never be used as an HMAC secret).
public struct VerificationKey: Sendable {
    enum Material: Sendable {
        case hmac(SymmetricKey)
        case rsa(_RSA.Signing.PublicKey)
        case p256(P256.Signing.PublicKey)
        case ed25519(Curve25519.Signing.PublicKey)
    }

    public let id: String?
    public let algorithm: JWSAlgorithm
    let material: Material

    /// An HMAC secret (HS256/384/512). At least 32 bytes: shorter secrets are guessable.
    public init(id: String?, algorithm: JWSAlgorithm, secret: [UInt8]) throws(KeyError) {
        guard [.hs256, .hs384, .hs512].contains(algorithm) else { throw KeyError("a secret is for HS256, HS384 or HS512, not \(algorithm.rawValue)") }
        guard secret.count >= 32 else { throw KeyError("an HMAC secret must be at least 32 bytes, got \(secret.count)") }
        self.id = id
        self.algorithm = algorithm
        self.material = .hmac(SymmetricKey(data: secret))
    }

    /// A public key in PEM (RSA for RS256, P-256 for ES256).
    public init(id: String?, algorithm: JWSAlgorithm, pem: String) throws(KeyError) {
        self.id = id
        self.algorithm = algorithm
        do {
            switch algorithm {
            case .rs256: material = .rsa(try _RSA.Signing.PublicKey(pemRepresentation: pem))
            case .es256: material = .p256(try P256.Signing.PublicKey(pemRepresentation: pem))
            default: throw KeyError("PEM keys are for RS256 and ES256; give EdDSA and HMAC keys as a JWK or a secret")
            }
        } catch let error as KeyError {
            throw error
        } catch {
            throw KeyError("not a usable \(algorithm.rawValue) public key in PEM (\(error))")
        }
    }

    /// A JSON Web Key (RFC 7517): `kty` RSA (`n`, `e`), EC P-256 (`x`, `y`), OKP Ed25519
    /// (`x`), or oct (`k`). The algorithm is the key's `alg`, or follows from its type.
    public init(jwk: [String: Any]) throws(KeyError) {
        let kty = jwk["kty"] as? String
        let declared = try (jwk["alg"] as? String).map { name throws(KeyError) -> JWSAlgorithm in
            guard let algorithm = JWSAlgorithm(rawValue: name) else { throw KeyError("alg \(name) is not supported (use one of \(JWSAlgorithm.allCases.map(\.rawValue).joined(separator: ", ")))") }
            return algorithm
        }
        func bytes(_ field: String) throws(KeyError) -> [UInt8] {
            guard let text = jwk[field] as? String, let value = Base64URL.decode(text), !value.isEmpty else {
                throw KeyError("\(kty ?? "?") key without a valid \"\(field)\"")
            }
            return value
        }
        let id = jwk["kid"] as? String
        if kty == "oct" {
            self = try VerificationKey(id: id, algorithm: declared ?? .hs256, secret: try bytes("k"))
            return
        }
        self.id = id
        do {
            switch kty {
            case "RSA":
                algorithm = declared ?? .rs256
                guard algorithm == .rs256 else { throw KeyError("an RSA key is for RS256, not \(algorithm.rawValue)") }
                material = .rsa(try _RSA.Signing.PublicKey(n: try bytes("n"), e: try bytes("e")))
            case "EC":
                guard jwk["crv"] as? String == "P-256" else { throw KeyError("EC keys must be on P-256 (ES256), got \(jwk["crv"] ?? "no crv")") }
                algorithm = declared ?? .es256
                guard algorithm == .es256 else { throw KeyError("a P-256 key is for ES256, not \(algorithm.rawValue)") }
                material = .p256(try P256.Signing.PublicKey(x963Representation: [0x04] + (try bytes("x")) + (try bytes("y"))))
            case "OKP":
                guard jwk["crv"] as? String == "Ed25519" else { throw KeyError("OKP keys must be Ed25519 (EdDSA), got \(jwk["crv"] ?? "no crv")") }
                algorithm = declared ?? .edDSA
                guard algorithm == .edDSA else { throw KeyError("an Ed25519 key is for EdDSA, not \(algorithm.rawValue)") }
                material = .ed25519(try Curve25519.Signing.PublicKey(rawRepresentation: try bytes("x")))
            default:
                throw KeyError("kty \(kty ?? "(none)") is not supported (RSA, EC, OKP, oct)")
            }
        } catch let error as KeyError {
            throw error
        } catch {
            throw KeyError("not a usable \(kty ?? "?") key (\(error))")
        }
    }

    /// Whether `signature` signs `input` under this key.
    func isValid(signature: [UInt8], for input: [UInt8]) -> Bool {
        switch material {
        case .hmac(let key):
            switch algorithm {
            case .hs384: return HMAC<SHA384>.isValidAuthenticationCode(signature, authenticating: input, using: key)
            case .hs512: return HMAC<SHA512>.isValidAuthenticationCode(signature, authenticating: input, using: key)
            default: return HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: input, using: key)
            }
        case .rsa(let key):
            return key.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: signature), for: SHA256.hash(data: input),
                                        padding: .insecurePKCS1v1_5)
        case .p256(let key):
            guard let parsed = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return key.isValidSignature(parsed, for: SHA256.hash(data: input))
        case .ed25519(let key):
            return key.isValidSignature(signature, for: input)
        }
    }
}

/// A key that cannot be used, and why.
public struct KeyError: Error, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
