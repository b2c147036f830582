import PropertyBased
import RampartCore
@testable import RampartFlags
import Testing

@Suite struct FractionalTests {
    @Test func murmur3MatchesTheReferenceCheckValues() {
        // MurmurHash3 x86_32, seed 0: the published check values.
        #expect(Fractional.murmur3("".utf8) == 0)
        #expect(Fractional.murmur3("hello".utf8) == 0x248b_fa47)
        #expect(Fractional.murmur3("The quick brown fox jumps over the lazy dog".utf8) == 0x2e4f_f723)
        // Tails of one, two and three bytes take the final-block path.
        #expect(Fractional.murmur3("a".utf8) == 0x3c25_69b2)
        #expect(Fractional.murmur3("ab".utf8) == 0x9bbf_d75f)
        #expect(Fractional.murmur3("abc".utf8) == 0xb3dd_93fa)
        #expect(Fractional.murmur3("abcd".utf8) == 0x43ed_676a)
    }

    @Test func theBucketIsTheHashScaledOntoTheTotalWeight() {
        for key in ["a", "hello", "user-1", "flag-xuser-2"] {
            let h = UInt64(Fractional.murmur3(key.utf8))
            #expect(Fractional.bucket(for: key, total: 100) == (h * 100) >> 32)
            #expect(Fractional.bucket(for: key, total: 1) == 0)
        }
    }

    /// 100,000 targeting keys over a 10/30/60 split land within one percentage point of the weights.
    @Test func aSplitMatchesItsWeights() throws {
        let rule = try Rule(compiling: try JSONValue(parsing: #"{"fractional": [["a", 10], ["b", 30], ["c", 60]]}"#))
        var counts: [String: Int] = [:]
        let total = 100_000
        for n in 0..<total {
            let environment = RuleEnvironment(context: .object(["targetingKey": .string("user-\(n)")]), flagKey: "split", timestamp: 0)
            guard case .string(let variant) = try rule.evaluate(in: environment) else {
                Issue.record("no variant for user-\(n)")
                return
            }
            counts[variant, default: 0] += 1
        }
        for (variant, weight) in [("a", 10.0), ("b", 30.0), ("c", 60.0)] {
            let share = Double(counts[variant, default: 0]) * 100 / Double(total)
            #expect(abs(share - weight) < 1, "\(variant): \(share)%")
        }
    }

    /// A rollout as the simple form writes it: the same caller keeps its answer, and raising
    /// the percentage only adds callers.
    @Test func rolloutBucketsAreStableAndMonotone() async throws {
        func enabled(_ user: String, percent: Int) throws -> Bool {
            let rule = try Rule(compiling: try JSONValue(parsing: #"{"fractional": [["on", \#(percent)], ["off", \#(100 - percent)]]}"#))
            let environment = RuleEnvironment(context: .object(["targetingKey": .string(user)]), flagKey: "rollout", timestamp: 0)
            return try rule.evaluate(in: environment) == .string("on")
        }
        await propertyCheck(input: Gen.letterOrNumber.string(of: 1...24), Gen.int(in: 0...100), Gen.int(in: 0...100)) { user, p, q in
            let (low, high) = (min(p, q), max(p, q))
            #expect(try enabled(user, percent: low) == enabled(user, percent: low))
            if try enabled(user, percent: low) { #expect(try enabled(user, percent: high)) }
            #expect(try enabled(user, percent: 0) == false)
            #expect(try enabled(user, percent: 100) == true)
        }
    }

    static let nullCases: [String] = [
        #"{"fractional": [["a", 50], ["b", 50]]}"#,  // no targetingKey in the context below
        #"{"fractional": [{"var": "missing"}, ["a", 50], ["b", 50]]}"#,
        #"{"fractional": ["key", ["a", 2.5], ["b", 1]]}"#,
        #"{"fractional": ["key", ["a", 0], ["b", 0]]}"#,
        #"{"fractional": ["key", ["a", 2147483648]]}"#,
        #"{"fractional": ["key", ["a", 2147483647], ["b", 1]]}"#,
        #"{"fractional": ["key", "a", ["b", 1]]}"#,
        #"{"fractional": ["key", [], ["b", 1]]}"#,
        #"{"fractional": ["key", ["a", "1"]]}"#,
    ]

    @Test(arguments: nullCases) func malformedSplitsGiveNull(_ rule: String) throws {
        #expect(try evaluate(rule, #"{"email": "x"}"#) == .null)
    }

    @Test func weightsDefaultToOneAndNegativeWeightsCountAsZero() throws {
        #expect(try evaluate(#"{"fractional": ["k", ["only"]]}"#) == .string("only"))
        #expect(try evaluate(#"{"fractional": ["k", ["never", -5], ["always", null]]}"#) == .string("always"))
        #expect(try evaluate(#"{"fractional": ["k", ["a", 3.0]]}"#) == .string("a"))
    }

    @Test func anExplicitBucketingValueIsHashedAsIs() throws {
        // With "k" the value is the key itself; with the shorthand it is flagKey + targetingKey.
        let explicit = try evaluate(#"{"fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]}, ["a", 1], ["b", 1], ["c", 1], ["d", 1]]}"#,
                                    #"{"targetingKey": "u-7"}"#)
        let shorthand = try evaluate(#"{"fractional": [["a", 1], ["b", 1], ["c", 1], ["d", 1]]}"#, #"{"targetingKey": "u-7"}"#)
        #expect(explicit == shorthand)
        let names = ["a", "b", "c", "d"]
        #expect(shorthand == .string(names[Int(Fractional.bucket(for: "flag-au-7", total: 4))]))
    }

    @Test func variantsMayBeAnyScalarAndWorkInsideIf() throws {
        #expect(try evaluate(#"{"if": [{"fractional": ["k", [false, 0], [true, 100]]}, "yes", "no"]}"#) == .string("yes"))
        #expect(try evaluate(#"{"fractional": ["k", [7, 1]]}"#) == .number(7))
    }
}

@Suite struct SemanticVersionTests {
    static let cases: [(String, Bool?)] = [
        (#"["1.2.3", "=", "1.2.3"]"#, true),
        (#"["v1.2.3", "=", "1.2.3"]"#, true),
        (#"["1.2", "=", "1.2.0"]"#, true),
        (#"[2, "=", "2.0.0"]"#, true),
        (#"[1.5, ">", "1.4.9"]"#, true),
        (#"["1.0.0+build.7", "=", "1.0.0"]"#, true),
        (#"["2.0.0-alpha", "<", "2.0.0"]"#, true),
        (#"["1.0.0-alpha.1", "<", "1.0.0-alpha.beta"]"#, true),
        (#"["1.0.0-alpha", "<", "1.0.0-alpha.1"]"#, true),
        (#"["1.0.0-2", "<", "1.0.0-10"]"#, true),
        (#"["1.0.0-rc.1", ">=", "1.0.0-beta.11"]"#, true),
        (#"["1.2.3", "!=", "1.2.4"]"#, true),
        (#"["1.10.0", ">", "1.9.0"]"#, true),
        (#"["1.2.9", "~", "1.2.0"]"#, true),
        (#"["1.3.0", "~", "1.2.0"]"#, false),
        (#"["3.0.0", "^", "3.1.0"]"#, true),
        (#"["4.0.0", "^", "3.1.0"]"#, false),
        (#"["1.2.3", "===", "1.2.3"]"#, nil),
        (#"["01.2.3", "=", "1.2.3"]"#, nil),
        (#"["2.0.0.0", "=", "2.0.0"]"#, nil),
        (#"["banana", "<", "1.0.0"]"#, nil),
        (#"[null, "=", "1.0.0"]"#, nil),
        (#"["1.0.0", "="]"#, nil),
    ]

    @Test(arguments: cases) func semVerComparesLikeFlagd(_ args: String, _ expected: Bool?) throws {
        let result = try evaluate(#"{"sem_ver": \#(args)}"#)
        #expect(result == (expected.map(JSONValue.bool) ?? .null), "\(args)")
    }
}
