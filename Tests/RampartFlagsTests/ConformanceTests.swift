import Foundation
import RampartCore
import RampartTesting
@testable import RampartFlags
import Testing

/// flagd's public test vectors, read from `../shared/conformance/flagd` beside the checkout (or
/// `RAMPART_SHARED_DIR`). They are never copied into the project; without them this suite is
/// skipped, and says so.
enum FlagdConformance {
    static let directory = SharedMaterial.locate("conformance/flagd", requiredFile: "vectors.jsonl", skipping: "the flagd vectors")

    static func flags() throws -> [Flag] {
        let folder = directory!.appendingPathComponent("flags")
        var all: [Flag] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() where name.hasSuffix(".json") {
            let data = try Data(contentsOf: folder.appendingPathComponent(name))
            all += try FlagDefinitions.parse(Array(data), source: name)
        }
        return all
    }

    static func vectors() throws -> [JSONValue] {
        let text = try String(contentsOf: directory!.appendingPathComponent("vectors.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").filter { !$0.isEmpty }.map { try JSONValue(parsing: String($0)) }
    }
}

@Suite(.enabled(if: FlagdConformance.directory != nil, "../shared/conformance/flagd is not present"))
struct ConformanceTests {
    /// What an OpenFeature SDK reports for a resolution, by the requested type.
    func sdkResult(_ resolution: Resolution, type: String, default defaultValue: JSONValue)
        -> (value: JSONValue, variant: String?, reason: String, errorCode: String?) {
        if let code = resolution.errorCode { return (defaultValue, nil, "ERROR", code.rawValue) }
        guard let value = resolution.value else { return (defaultValue, resolution.variant, resolution.reason.rawValue, nil) }
        let fits = switch (type, value) {
        case ("boolean", .bool), ("string", .string), ("float", .number), ("object", .object), ("object", .array): true
        case ("integer", .number(let n)): n == n.rounded()
        default: false
        }
        guard fits else { return (defaultValue, nil, "ERROR", "TYPE_MISMATCH") }
        return (value, resolution.variant, resolution.reason.rawValue, nil)
    }

    @Test func everyVectorResolvesAsInFlagd() throws {
        let flags = FeatureFlags(try FlagdConformance.flags())
        var failures: [String] = []
        let vectors = try FlagdConformance.vectors()
        for vector in vectors {
            let id = vector["id"]?.stringValue ?? "?"
            let resolution = flags.resolve(vector["flagKey"]?.stringValue ?? "", context: vector["context"] ?? .object([:]))
            let result = sdkResult(resolution, type: vector["type"]?.stringValue ?? "", default: vector["defaultValue"] ?? .null)
            guard case .object(let expect)? = vector["expect"] else { continue }
            if let value = expect["value"], !JsonLogic.strictlyEqual(value, result.value) {
                failures.append("\(id): value \(result.value.jsonText), expected \(value.jsonText)")
            }
            if let variant = expect["variant"], variant != (result.variant.map(JSONValue.string) ?? .null) {
                failures.append("\(id): variant \(result.variant ?? "none"), expected \(variant.jsonText)")
            }
            if let reason = expect["reason"], reason != .string(result.reason) {
                failures.append("\(id): reason \(result.reason), expected \(reason.jsonText)")
            }
            if let code = expect["errorCode"], code != (result.errorCode.map(JSONValue.string) ?? .null) {
                failures.append("\(id): errorCode \(result.errorCode ?? "none"), expected \(code.jsonText)")
            }
            if case .object(let metadata)? = expect["metadata"] {
                let exact = expect["metadataExact"] == .bool(true) || vector["metadataExact"] == .bool(true)
                let subset = metadata.allSatisfy { key, value in resolution.metadata[key].map { JsonLogic.strictlyEqual($0, value) } ?? false }
                if !subset || (exact && metadata.count != resolution.metadata.count) {
                    failures.append("\(id): metadata \(JSONValue.object(resolution.metadata).jsonText), expected \(JSONValue.object(metadata).jsonText)")
                }
            }
        }
        print("flagd vectors: \(vectors.count - Set(failures.map { $0.prefix { $0 != ":" } }).count) passed, \(Set(failures.map { $0.prefix { $0 != ":" } }).count) failed")
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }
}
