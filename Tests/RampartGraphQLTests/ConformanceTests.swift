import Foundation
import RampartCore
import RampartTesting
import Testing

@testable import RampartGraphQL

/// The GraphQL guard vectors (derived from graphql-armor), read from
/// `../shared/conformance/graphql` beside the checkout (or `RAMPART_SHARED_DIR`); never copied
/// into the project. Without them this suite is skipped, and says so.
enum GuardConformance {
    static let directory = SharedMaterial.locate("conformance/graphql", requiredFile: "vectors.jsonl", skipping: "the GraphQL guard vectors")

    static func vectors() throws -> [JSONValue] {
        let text = try String(contentsOf: directory!.appendingPathComponent("vectors.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").filter { !$0.isEmpty }.map { try JSONValue(parsing: String($0)) }
    }

}

@Suite(.enabled(if: GuardConformance.directory != nil, "../shared/conformance/graphql is not present"))
struct GuardConformanceTests {
    @Test func everyVectorMeasuresAndDecidesAsSpecified() throws {
        var checkedVerdicts = 0, checkedMetrics = 0
        for vector in try GuardConformance.vectors() {
            guard case .string(let id)? = vector["id"], case .string(let query)? = vector["query"] else {
                Issue.record("a vector without id or query")
                continue
            }
            let expect = vector["expect"] ?? .null
            let operationName: String? = if case .string(let name)? = vector["operationName"] { name } else { nil }
            var schema: Schema?
            if case .string(let file)? = vector["schema"] {
                let sdl = try String(contentsOf: GuardConformance.directory!.appendingPathComponent(file), encoding: .utf8)
                schema = try Schema(sdl: sdl)
            }
            let analysis = GraphQLGuard(limits: GuardLimits(conformanceOptions: vector["options"] ?? .null), schema: schema)
                .analyze(document: query, variables: vector["variables"], operationName: operationName)

            if case .object(let metrics)? = expect["metrics"] {
                for (name, value) in metrics {
                    guard case .number(let expected) = value else { continue }
                    let found: Int? = switch name {
                    case "characters": analysis.characters
                    case "tokens": analysis.lexical?.tokens
                    case "depth": analysis.worst?.depth
                    case "fields": analysis.worst?.fields
                    case "aliases": analysis.worst?.aliases
                    case "directives": analysis.worst?.directives
                    case "cost": analysis.cost
                    default: nil
                    }
                    guard let found else { continue }
                    #expect(found == Int(expected), "\(id): \(name) is \(found), expected \(Int(expected))")
                    checkedMetrics += 1
                }
            }

            let code: String? = if case .string(let code)? = expect["code"] { code } else { nil }
            if case .bool(let accepted)? = expect["accepted"] {
                if accepted {
                    #expect(analysis.rejection == nil, "\(id): refused with \(String(describing: analysis.rejection))")
                } else {
                    #expect(analysis.rejection?.code == code, "\(id): \(String(describing: analysis.rejection)), expected \(code ?? "-")")
                    if case .number(let status)? = expect["status"] { #expect(analysis.rejection?.status == Int(status), "\(id)") }
                    if case .number(let found)? = expect["found"] { #expect(analysis.rejection?.found == Int(found), "\(id)") }
                    let message = analysis.rejection?.message ?? ""
                    if case .string(let part)? = expect["messageContains"] { #expect(message.contains(part), "\(id): \(message)") }
                    if case .string(let part)? = expect["messageNotContains"] { #expect(!message.contains(part), "\(id): \(message)") }
                    if case .bool(let details)? = expect["limitDetails"] {
                        #expect((analysis.rejection?.limit != nil) == details, "\(id): limit details \(details ? "missing" : "shown")")
                    }
                }
                checkedVerdicts += 1
            }
        }
        print("GuardConformance: \(checkedVerdicts) verdicts and \(checkedMetrics) metrics checked")
        #expect(checkedVerdicts > 0)
    }
}
