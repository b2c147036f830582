#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Reading small text files (configuration, certificates) without exposing Foundation to
/// the rest of the module.
enum FileText {
    struct ReadError: Error, CustomStringConvertible {
        let path: String
        var description: String { "no readable UTF-8 file at \(path)" }
    }

    static func read(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ReadError(path: path)
        }
        return text
    }
}
