// flags-bench: in-process flag evaluations per second, for docs/performance.md. Run through
// scripts/bench-flags.sh, which builds it in release mode and also measures OFREP through the
// gateway.
//
//   flags-bench [--evaluations N] [--keys K]
//   flags-bench flags        prints the flag file it evaluates (the OFREP benchmark serves it)
import Foundation
import RampartCore
import RampartFlags

func option(_ name: String, default value: Int) -> Int {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count, let number = Int(arguments[index + 1]) else { return value }
    return number
}

let evaluations = option("--evaluations", default: 2_000_000)
let keys = option("--keys", default: 10_000)
let document = """
{"flags": {
  "static": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"},
  "three-conditions": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
    "targeting": {"if": [{"and": [{"==": [{"var": "country"}, "DE"]}, {">=": [{"var": "age"}, 18]},
                                  {"ends_with": [{"var": "email"}, "@example.com"]}]}, "on", "off"]}},
  "fractional": {"state": "ENABLED", "variants": {"a": "A", "b": "B", "c": "C"}, "defaultVariant": "a",
    "targeting": {"fractional": [["a", 10], ["b", 30], ["c", 60]]}}
}}
"""
if CommandLine.arguments.dropFirst().first == "flags" {
    print(document)
    exit(0)
}
let flags = FeatureFlags(try FlagDefinitions.parse(Array(document.utf8), source: "bench"))
// Contexts built up front: what an SDK or the gateway hands over per evaluation.
let contexts: [JSONValue] = (0..<keys).map { (i: Int) -> JSONValue in
    var fields: [String: JSONValue] = [:]
    fields["targetingKey"] = .string("user-\(i)")
    fields["country"] = .string(i % 2 == 0 ? "DE" : "FR")
    fields["age"] = .number(Double(18 + i % 50))
    fields["email"] = .string(i % 3 == 0 ? "u\(i)@example.com" : "u\(i)@mail.test")
    return .object(fields)
}

print("flag,evaluations,ns_per_evaluation,evaluations_per_second")
for key in ["static", "three-conditions", "fractional"] {
    var hits = 0
    // One warm-up pass, then the measured one.
    for round in 0..<2 {
        let count = round == 0 ? evaluations / 10 : evaluations
        let start = ContinuousClock.now
        for i in 0..<count {
            if flags.resolve(key, context: contexts[i % keys]).variant != nil { hits += 1 }
        }
        let elapsed = ContinuousClock.now - start
        if round == 1 {
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            print("\(key),\(count),\(String(format: "%.0f", seconds / Double(count) * 1e9)),\(String(format: "%.0f", Double(count) / seconds))")
        }
    }
    precondition(hits > 0, "no evaluation resolved a variant")
}
