import Foundation
import PropertyBased
import RampartCore
@testable import RampartFlags
import Testing

struct SimpleFlagTests {
    static func flags(_ documents: String...) throws -> FeatureFlags {
        FeatureFlags(try documents.map { try ManagedFlag(document: try JSONValue(parsing: $0), updatedBy: "t", updatedAt: 0).flag })
    }

    static func context(_ fields: [String: JSONValue]) -> JSONValue { .object(fields) }

    @Test func aPlainFlagIsOnForEveryoneAndOffWhenDisabled() throws {
        let flags = try Self.flags(#"{"key": "a"}"#, #"{"key": "b", "enabled": false}"#)
        #expect(flags.evaluate("a", default: false) == true)
        #expect(flags.resolve("a").reason == .staticValue)
        #expect(flags.evaluate("b", default: true) == true)
        #expect(flags.resolve("b").reason == .disabled)
    }

    @Test func targetsWinAndConditionsGateTheRollout() throws {
        let flags = try Self.flags("""
        {"key": "beta", "rollout": 0,
         "targets": {"users": ["ada"], "tenants": ["acme"], "roles": ["staff"]}}
        """, """
        {"key": "eu", "conditions": [{"property": "country", "operator": "in", "value": ["DE", "FR"]},
                                     {"property": "age", "operator": ">=", "value": 18},
                                     {"property": "app", "operator": "sem_ver", "value": ">= 2.1.0"}]}
        """)
        #expect(flags.isEnabled("beta", userId: "ada"))
        #expect(flags.isEnabled("beta", userId: "bob", tenantId: "acme"))
        #expect(flags.isEnabled("beta", userId: "bob", role: "staff"))
        #expect(!flags.isEnabled("beta", userId: "bob", tenantId: "other", role: "viewer"))
        let fits = Self.context(["country": "DE", "age": 30, "app": "2.3.0"])
        #expect(flags.evaluate("eu", default: false, context: fits))
        #expect(!flags.evaluate("eu", default: true, context: Self.context(["country": "US", "age": 30, "app": "2.3.0"])))
        #expect(!flags.evaluate("eu", default: true, context: Self.context(["country": "DE", "age": 17, "app": "2.3.0"])))
        #expect(!flags.evaluate("eu", default: true, context: Self.context(["country": "DE", "age": 30, "app": "2.0.9"])))
        #expect(flags.resolve("eu", context: Self.context([:])).variant == "off")
    }

    @Test func weightedVariantsSplitTheRolloutAndMarkAnExperiment() throws {
        let flags = try Self.flags("""
        {"key": "cta", "rollout": 50, "defaultVariant": "control",
         "variants": {"control": {"value": "Buy"}, "a": {"value": "Get it", "weight": 1}, "b": {"value": "Go", "weight": 1}}}
        """)
        var seen: [String: Int] = [:]
        for i in 0..<4000 {
            let resolution = flags.resolve("cta", context: Self.context(["targetingKey": .string("user-\(i)")]))
            seen[resolution.variant ?? "?", default: 0] += 1
            #expect(resolution.metadata["experiment"] == .bool(true))
        }
        // Half outside the rollout; the other half split evenly, within sampling noise.
        #expect(abs(seen["control", default: 0] - 2000) < 150)
        #expect(abs(seen["a", default: 0] - 1000) < 120 && abs(seen["b", default: 0] - 1000) < 120)
        // No targetingKey: outside the experiment.
        #expect(flags.resolve("cta", context: Self.context([:])).variant == "control")
    }

    @Test func raisingTheRolloutOnlyAddsCallers() async {
        await propertyCheck(count: 60, input: zip(Gen.int(in: 0...100), Gen.int(in: 0...100))) { low, high in
            let (a, b) = (min(low, high), max(low, high))
            guard let lower = try? Self.flags(#"{"key": "r", "rollout": \#(a)}"#),
                  let higher = try? Self.flags(#"{"key": "r", "rollout": \#(b)}"#) else {
                Issue.record("the flags did not compile")
                return
            }
            var inLower = 0
            for i in 0..<300 {
                let key = "user-\(i)"
                let before = lower.isEnabled("r", userId: key)
                if before { inLower += 1 }
                // Stable, and monotone: in at the lower percentage means in at the higher one.
                #expect(before == lower.isEnabled("r", userId: key))
                #expect(!before || higher.isEnabled("r", userId: key))
            }
            #expect(a < 100 || inLower == 300)
            #expect(a > 0 || inLower == 0)
        }
    }

    @Test func validationNamesEveryField() throws {
        let document = try JSONValue(parsing: """
        {"key": "bad key", "rollout": 101, "enabld": true, "targets": {"users": [1]},
         "conditions": [{"property": "", "operator": "like", "value": {"a": 1}}, {"property": "x", "operator": "in", "value": 3}],
         "variants": {"a": {"value": 1}, "b": {"value": "x", "weight": -1}}}
        """)
        do throws(ConfigurationError) {
            _ = try SimpleFlag(document)
            Issue.record("an invalid flag was accepted")
        } catch {
            let paths = Set(error.issues.map(\.path))
            for expected in ["key", "rollout", "enabld", "targets.users[0]", "conditions[0].property", "conditions[0].operator",
                             "conditions[1].value", "variants.b.weight", "variants", "defaultVariant"] {
                #expect(paths.contains(expected), "no issue at \(expected): \(error)")
            }
        }
    }

    @Test func theDocumentRoundTrips() throws {
        let text = """
        {"key": "x", "rollout": 12.5, "description": "d", "targets": {"roles": ["admin"]},
         "conditions": [{"property": "plan", "operator": "==", "value": "pro"}]}
        """
        let simple = try SimpleFlag(try JSONValue(parsing: text))
        #expect(try SimpleFlag(simple.document) == simple)
        #expect(simple.definition["metadata"]?["description"] == .string("d"))
    }

    @Test func aFlagdDefinitionIsAcceptedAsIs() throws {
        let flag = try ManagedFlag(document: try JSONValue(parsing: """
        {"key": "color", "definition": {"state": "ENABLED", "variants": {"red": "#f00", "blue": "#00f"}, "defaultVariant": "red"}}
        """), updatedBy: "t", updatedAt: 0)
        #expect(flag.simple == nil && flag.flag.variants.count == 2)
        let invalid = try JSONValue(parsing: #"{"key": "c", "definition": {"state": "ON", "variants": {}}}"#)
        do throws(ConfigurationError) {
            _ = try ManagedFlag(document: invalid, updatedBy: "t", updatedAt: 0)
            Issue.record("an invalid definition was accepted")
        } catch {
            #expect(Set(error.issues.map(\.path)).isSuperset(of: ["definition.state", "definition.variants"]))
        }
    }
}

struct FlagCatalogTests {
    static func folder(_ files: [String: String]) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("catalog-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (name, text) in files { try text.write(to: folder.appendingPathComponent(name), atomically: true, encoding: .utf8) }
        return folder
    }

    static func flag(_ key: String, _ value: Bool = true) -> String {
        #"{"flags": {"\#(key)": {"state": "ENABLED", "variants": {"v": \#(value)}, "defaultVariant": "v"}}}"#
    }

    @Test func aBrokenFileIsRefusedAndItsLastGoodVersionStays() throws {
        let folder = try Self.folder(["a.json": Self.flag("a"), "b.json": Self.flag("b")])
        let catalog = try FlagCatalog(sources: [folder.path])
        #expect(catalog.flags.flagSet.flags.keys.sorted() == ["a", "b"])
        let version = catalog.flags.flagSet.version
        try "{not json".write(to: folder.appendingPathComponent("a.json"), atomically: true, encoding: .utf8)
        let problems = catalog.refresh()
        #expect(problems.count == 1 && problems[0].path.hasSuffix("a.json"))
        #expect(catalog.flags.evaluate("a", default: false) == true)
        #expect(catalog.flags.flagSet.version == version)
        // The same broken bytes are not reported again.
        #expect(catalog.refresh().isEmpty)
        try Self.flag("a", false).write(to: folder.appendingPathComponent("a.json"), atomically: true, encoding: .utf8)
        #expect(catalog.refresh().isEmpty)
        #expect(catalog.flags.evaluate("a", default: true) == false)
        #expect(catalog.sourceStatus.allSatisfy { $0.errors.isEmpty })
        // A file removed takes its flags with it.
        try FileManager.default.removeItem(at: folder.appendingPathComponent("b.json"))
        catalog.refresh()
        #expect(catalog.flags.flagSet.flags.keys.sorted() == ["a"])
    }

    @Test func aKeyLivesInOnePlace() throws {
        let clash = try Self.folder(["a.json": Self.flag("same"), "b.json": Self.flag("same")])
        #expect(throws: ConfigurationError.self) { try FlagCatalog(sources: [clash.path]) }

        let folder = try Self.folder(["a.json": Self.flag("a")])
        let catalog = try FlagCatalog(sources: [folder.path])
        // A new file that repeats a key is refused; the admin API cannot take a file's key.
        try Self.flag("a", false).write(to: folder.appendingPathComponent("b.json"), atomically: true, encoding: .utf8)
        let problems = catalog.refresh()
        #expect(problems.contains { $0.description.contains("already defined in") })
        #expect(catalog.flags.evaluate("a", default: false) == true)
        let managed = try ManagedFlag(document: try JSONValue(parsing: #"{"key": "a"}"#), updatedBy: "t", updatedAt: 0)
        #expect(throws: FlagCatalog.Conflict.self) { try catalog.put(managed) }
        // And a file cannot take a managed flag's key.
        try FileManager.default.removeItem(at: folder.appendingPathComponent("b.json"))
        catalog.refresh()
        try catalog.put(try ManagedFlag(document: try JSONValue(parsing: #"{"key": "m"}"#), updatedBy: "t", updatedAt: 0))
        try Self.flag("m", false).write(to: folder.appendingPathComponent("c.json"), atomically: true, encoding: .utf8)
        #expect(catalog.refresh().contains { $0.description.contains("the admin API") })
        #expect(catalog.flags.evaluate("m", default: false) == true)
        #expect(catalog.remove("m") && !catalog.remove("m"))
    }

    @Test func missingSourcesAreNamed() {
        let (paths, problems) = FlagCatalog.files(in: ["/nonexistent/flags"])
        #expect(paths.isEmpty && problems.map(\.path) == ["/nonexistent/flags"])
    }
}
