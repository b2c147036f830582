import Foundation
import RampartCore
@testable import RampartFlags
import Testing

/// Flags for a shop, written for these tests.
let shopFlags = #"""
{
  "$schema": "https://flagd.dev/schema/v0/flags.json",
  "metadata": {"flagSetId": "shop", "version": "3"},
  "$evaluators": {
    "isStaff": {"ends_with": [{"var": "email"}, "@shop.example"]}
  },
  "flags": {
    "dark-mode": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"},
    "retired": {"state": "DISABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on",
                "targeting": {"nope": []}},
    "no-default": {"state": "ENABLED", "variants": {"a": "A", "b": "B"}, "defaultVariant": null},
    "banner": {
      "state": "ENABLED",
      "variants": {"staff": "Hello colleague", "public": "Welcome"},
      "defaultVariant": "public",
      "metadata": {"version": "4", "owner": "growth"},
      "targeting": {"if": [{"$ref": "isStaff"}, "staff", null]}
    },
    "limit": {"state": "ENABLED", "variants": {"low": 10, "high": 1000, "frac": 2.5}, "defaultVariant": "low",
              "targeting": {"if": [{"==": [{"var": "plan"}, "pro"]}, "high", {"==": [{"var": "plan"}, "odd"]}, "frac", null]}},
    "shorthand": {"state": "ENABLED", "variants": {"true": {"x": 1}, "false": {"x": 0}}, "defaultVariant": "false",
                  "targeting": {"in": [{"var": "country"}, ["DE", "AT"]]}},
    "broken": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a", "targeting": {"$ref": "nowhere"}},
    "bad-name": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a", "targeting": {"cat": ["b"]}},
    "number-result": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a", "targeting": {"+": [1, 1]}}
  }
}
"""#

@Suite struct ResolutionTests {
    let flags: FeatureFlags

    init() throws {
        flags = FeatureFlags(try FlagDefinitions.parse(shopFlags.utf8, source: "shop.json"), now: { 1_700_000_000.7 })
    }

    @Test func staticDisabledAndDefaultResolutions() {
        let dark = flags.resolve("dark-mode")
        #expect(dark.value == .bool(false) && dark.variant == "off" && dark.reason == .staticValue && dark.errorCode == nil)
        let retired = flags.resolve("retired")
        #expect(retired.value == nil && retired.variant == nil && retired.reason == .disabled && retired.errorCode == nil)
        let none = flags.resolve("no-default")
        #expect(none.value == nil && none.reason == .defaultValue)
        let unknown = flags.resolve("nope")
        #expect(unknown.errorCode == .flagNotFound && unknown.reason == .error)
    }

    @Test func targetingPicksVariantsAndFallsBackOnNull() {
        let staff = flags.resolve("banner", context: .object(["email": .string("ana@shop.example")]))
        #expect(staff.value == .string("Hello colleague") && staff.reason == .targetingMatch)
        let visitor = flags.resolve("banner", context: .object(["email": .string("bob@mail.example")]))
        #expect(visitor.value == .string("Welcome") && visitor.reason == .defaultValue && visitor.variant == "public")
        let shorthand = flags.resolve("shorthand", context: .object(["country": .string("AT")]))
        #expect(shorthand.variant == "true" && shorthand.value == .object(["x": .number(1)]))
        #expect(flags.resolve("shorthand", context: .object(["country": .string("FR")])).variant == "false")
    }

    @Test func metadataIsTheSetsOverlaidByTheFlags() {
        #expect(flags.resolve("banner").metadata == ["flagSetId": .string("shop"), "version": .string("4"), "owner": .string("growth")])
        #expect(flags.resolve("dark-mode").metadata == ["flagSetId": .string("shop"), "version": .string("3")])
    }

    @Test func brokenRulesAndUnknownVariantsAreErrors() {
        #expect(flags.resolve("broken").errorCode == .parseError)
        #expect(flags.resolve("bad-name").errorCode == .general)
        #expect(flags.resolve("number-result").errorCode == .general)
        // A disabled flag's rule is never looked at.
        #expect(flags.resolve("retired").errorCode == nil)
    }

    @Test func typedEvaluationKeepsTheDefaultOnAMismatch() {
        #expect(flags.evaluate("dark-mode", default: true) == false)
        #expect(flags.evaluate("limit", default: 1, context: .object(["plan": .string("pro")])) == 1000)
        #expect(flags.evaluate("limit", default: 1.0, context: .object(["plan": .string("pro")])) == 1000.0)
        // 2.5 is no integer: the caller's default, with TYPE_MISMATCH.
        let (value, resolution) = flags.details("limit", default: 1, context: .object(["plan": .string("odd")]))
        #expect(value == 1 && resolution.errorCode == .typeMismatch)
        #expect(flags.evaluate("banner", default: false) == false)
        #expect(flags.evaluate("retired", default: true) == true)
        #expect(flags.evaluate("missing", default: "fallback") == "fallback")
        #expect(flags.evaluate("shorthand", default: JSONValue.null, context: .object(["country": .string("DE")])) == .object(["x": .number(1)]))
    }

    @Test func isEnabledDescribesTheCallerAsAContext() throws {
        let rollout = try FlagDefinitions.parse(#"""
            {"flags": {"beta": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
              "targeting": {"if": [{"or": [{"in": ["admin", {"var": "roles"}]}, {"==": [{"var": "tenant"}, "acme"]},
                                           {"==": [{"var": "targetingKey"}, "u-1"]}]}, "on", null]}}}}
            """#.utf8, source: "beta.json")
        let flags = FeatureFlags(rollout)
        #expect(flags.isEnabled("beta", userId: "u-1"))
        #expect(flags.isEnabled("beta", userId: "u-2", tenantId: "acme"))
        #expect(flags.isEnabled("beta", userId: "u-2", role: "admin"))
        #expect(!flags.isEnabled("beta", userId: "u-2", tenantId: "other", role: "viewer"))
        #expect(!flags.isEnabled("nope", userId: "u-1"))
    }

    @Test func theTimestampIsWholeSecondsAndTheFlagKeyIsTheFlags() throws {
        let set = try FlagDefinitions.parse(#"""
            {"flags": {"clock": {"state": "ENABLED", "variants": {"past": 1, "future": 2}, "defaultVariant": "past",
              "targeting": {"if": [{"and": [{"==": [{"var": "$flagd.timestamp"}, 1700000000]},
                                             {"==": [{"var": "$flagd.flagKey"}, "clock"]}]}, "future", null]}}}}
            """#.utf8, source: "clock.json")
        #expect(FeatureFlags(set, now: { 1_700_000_000.9 }).resolve("clock").variant == "future")
    }

    @Test func theVersionChangesWithAnyDefinitionAndOnlyThen() throws {
        let first = FeatureFlags.FlagSet(try FlagDefinitions.parse(shopFlags.utf8, source: "a.json"))
        let again = FeatureFlags.FlagSet(try FlagDefinitions.parse(shopFlags.utf8, source: "b.json"))
        let changed = FeatureFlags.FlagSet(try FlagDefinitions.parse(shopFlags.replacingFirst(#""defaultVariant": "low""#, with: #""defaultVariant": "high""#).utf8, source: "a.json"))
        #expect(first.version == again.version)
        #expect(first.version != changed.version)
    }
}

@Suite struct FlagDefinitionTests {
    func issues(_ text: String) -> [String] {
        do {
            _ = try FlagDefinitions.parse(text.utf8, source: "flags.json")
            return []
        } catch {
            return error.issues.map(\.description)
        }
    }

    @Test func everyProblemIsNamedWithItsPath() {
        let found = issues(#"""
            {"metadata": {"nested": {"no": 1}},
             "flags": {
               "a": {"state": "ON", "variants": {"x": 1}},
               "b": {"state": "ENABLED", "variants": {}, "defaultVariant": "x"},
               "c": {"state": "ENABLED", "variants": {"x": 1, "y": "two"}, "defaultVariant": "z"},
               "d": {"variants": {"x": true}, "targeting": "always", "metadata": {"list": [1]}}
             }}
            """#)
        #expect(found.contains("flags.json: metadata.nested: must be a string, number or boolean, not object"))
        #expect(found.contains("flags.json: flags.a.state: must be ENABLED or DISABLED, not \"ON\""))
        #expect(found.contains("flags.json: flags.b.variants: needs at least one variant"))
        #expect(found.contains("flags.json: flags.c.variants: all variants must share one JSON type; found number, string"))
        #expect(found.contains("flags.json: flags.c.defaultVariant: \"z\" names no variant (have x, y)"))
        #expect(found.contains("flags.json: flags.d.state: required (ENABLED or DISABLED)"))
        #expect(found.contains("flags.json: flags.d.targeting: must be a JsonLogic object, not string"))
        #expect(found.contains("flags.json: flags.d.metadata.list: must be a string, number or boolean, not array"))
        #expect(found.count == 8, "\(found)")
    }

    @Test func malformedJSONAndMissingFlagsAreRefused() {
        #expect(issues("{\"flags\": ")[0].hasPrefix("flags.json: invalid JSON at byte 10"))
        #expect(issues("[]") == ["flags.json: a flag file is a JSON object with \"flags\""])
        #expect(issues("{}") == ["flags.json: flags: required"])
    }

    @Test func flagdsArrayFormIsRead() throws {
        let flags = try FlagDefinitions.parse(#"{"flags": [{"key": "k", "state": "ENABLED", "variants": {"v": 1}, "defaultVariant": "v"}]}"#.utf8,
                                              source: "list.json")
        #expect(flags.map(\.key) == ["k"])
        #expect(issues(#"{"flags": [{"state": "ENABLED", "variants": {"v": 1}}]}"#) == ["flags.json: flags[0].key: required (a string)"])
    }

    @Test func referencesAreReplacedAndUnknownOnesFailAtEvaluation() throws {
        let flags = try FlagDefinitions.parse(#"""
            {"$evaluators": {"pro": {"==": [{"var": "plan"}, "pro"]}},
             "flags": {"f": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                             "targeting": {"if": [{"$ref": "pro"}, "on", {"$ref": "missing"}]}}}}
            """#.utf8, source: "refs.json")
        guard case .invalid(let error) = flags[0].targeting else {
            Issue.record("a dangling $ref compiled")
            return
        }
        #expect(error.message == "unknown operator \"$ref\"")
        #expect(flags[0].definition["targeting"]?["if"]?.arrayValue?.first == .object(["==": .array([.object(["var": .string("plan")]), .string("pro")])]))
    }
}

extension String {
    func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let range = range(of: target) else { return self }
        return replacingCharacters(in: range, with: replacement)
    }
}
