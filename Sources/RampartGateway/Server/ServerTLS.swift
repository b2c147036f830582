import NIOSSL
import RampartCore

/// The traffic listener's TLS context, from PEM files.
enum ServerTLS {
    struct Failure: Error, CustomStringConvertible {
        let path: String
        let message: String
        var description: String { "\(path): \(message)" }
    }

    /// A server context offering `protocols` through ALPN.
    static func context(_ files: TLSFilesConfiguration, protocols: [String], at path: String) throws(Failure) -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(files.certificate)
        } catch {
            throw Failure(path: "\(path).certificate", message: "cannot read a PEM certificate chain from \(files.certificate) (\(error))")
        }
        guard !chain.isEmpty else {
            throw Failure(path: "\(path).certificate", message: "\(files.certificate) holds no certificate")
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: files.key, format: .pem)
        } catch {
            throw Failure(path: "\(path).key", message: "cannot read a PEM private key from \(files.key) (\(error))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) },
                                                                     privateKey: .privateKey(key))
        configuration.applicationProtocols = protocols
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw Failure(path: path, message: "the certificate and key do not make a usable TLS context (\(error))")
        }
    }

    /// What is wrong with the files, for configuration checks.
    static func problems(with files: TLSFilesConfiguration, at path: String) -> [ConfigurationIssue] {
        do {
            _ = try context(files, protocols: ["http/1.1"], at: path)
            return []
        } catch {
            return [ConfigurationIssue(path: error.path, error.message)]
        }
    }
}
