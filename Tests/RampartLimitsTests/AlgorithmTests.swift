import PropertyBased
import RampartCore
import RampartLimits
import RampartTesting
import Testing

/// GCRA and the sliding window against a clock moved by hand: exact admit and refuse
/// sequences at the boundaries, and the guarantees each algorithm makes.
@Suite struct AlgorithmTests {
    @Test func gcraAdmitsTheBurstThenOnePerInterval() {
        let time = ManualTimeSource()
        let store = MemoryRateLimitStore(time: time)
        let limit = RateLimit(limit: 10, window: .seconds(1), burst: 3)  // one per 100 ms
        func decide() -> RateLimitDecision { store.decide(key: "k", limit: limit, algorithm: .gcra) }

        #expect(decide() == RateLimitDecision(isAllowed: true, limit: 3, remaining: 2, resetAfter: .milliseconds(100), retryAfter: nil))
        #expect(decide().remaining == 1)
        #expect(decide() == RateLimitDecision(isAllowed: true, limit: 3, remaining: 0, resetAfter: .milliseconds(300), retryAfter: nil))
        #expect(decide() == RateLimitDecision(isAllowed: false, limit: 3, remaining: 0, resetAfter: .milliseconds(300), retryAfter: .milliseconds(100)))

        time.advance(by: .milliseconds(99))
        let early = decide()
        #expect(!early.isAllowed && early.retryAfter == .milliseconds(1))
        time.advance(by: .milliseconds(1))
        #expect(decide() == RateLimitDecision(isAllowed: true, limit: 3, remaining: 0, resetAfter: .milliseconds(300), retryAfter: nil))
        #expect(!decide().isAllowed)

        // A full quiet window later the whole burst is back.
        time.advance(by: .seconds(1))
        #expect((0..<3).allSatisfy { _ in decide().isAllowed })
        #expect(!decide().isAllowed)
        // Other keys are not touched.
        #expect(store.decide(key: "other", limit: limit, algorithm: .gcra).remaining == 2)
    }

    @Test func gcraCostsSeveralUnitsAtOnce() {
        let time = ManualTimeSource()
        let store = MemoryRateLimitStore(time: time)
        let limit = RateLimit(limit: 5, window: .seconds(5))  // burst 5, one per second
        #expect(store.decide(key: "k", cost: 4, limit: limit, algorithm: .gcra).remaining == 1)
        let refused = store.decide(key: "k", cost: 2, limit: limit, algorithm: .gcra)
        #expect(!refused.isAllowed && refused.remaining == 1 && refused.retryAfter == .seconds(1))
        #expect(store.decide(key: "k", cost: 1, limit: limit, algorithm: .gcra).isAllowed)
    }

    /// In any stretch of time, GCRA admits at most the burst plus one request per interval
    /// that the stretch spans, however the requests arrive.
    @Test func gcraNeverAdmitsMoreThanBurstPlusRate() async {
        await propertyCheck(input: Gen.int(in: 0...250).array(of: 1...60), Gen.int(in: 1...5)) { gaps, burst in
            let time = ManualTimeSource()
            let store = MemoryRateLimitStore(time: time)
            let limit = RateLimit(limit: 10, window: .seconds(1), burst: burst)
            var admitted: [Int64] = []
            for gap in gaps {
                time.advance(by: .milliseconds(gap))
                if store.decide(key: "k", limit: limit, algorithm: .gcra).isAllowed { admitted.append(time.now().nanoseconds) }
            }
            for i in admitted.indices {
                for j in admitted.indices where j > i {
                    let span = admitted[j] - admitted[i]
                    #expect(j - i + 1 <= burst + Int(span / limit.interval))
                }
            }
        }
    }

    @Test func slidingWindowWeighsThePreviousWindow() {
        let time = ManualTimeSource()  // starts on a whole second: a window boundary
        let store = MemoryRateLimitStore(time: time)
        let limit = RateLimit(limit: 4, window: .seconds(1))
        func decide() -> RateLimitDecision { store.decide(key: "k", limit: limit, algorithm: .slidingWindow) }

        #expect(decide() == RateLimitDecision(isAllowed: true, limit: 4, remaining: 3, resetAfter: .seconds(2), retryAfter: nil))
        #expect(decide().isAllowed && decide().isAllowed)
        #expect(decide().remaining == 0)
        // Full: the next request fits once the previous window's weight (4 x the share of it
        // still inside the last second) is at most 3, a quarter into the next window.
        #expect(decide() == RateLimitDecision(isAllowed: false, limit: 4, remaining: 0, resetAfter: .seconds(2), retryAfter: .milliseconds(1250)))

        time.advance(by: .seconds(1))
        #expect(!decide().isAllowed)  // on the boundary the whole previous window still counts
        time.advance(by: .milliseconds(250) - .nanoseconds(1))
        #expect(!decide().isAllowed)
        time.advance(by: .nanoseconds(1))
        #expect(decide().isAllowed)
        #expect(!decide().isAllowed)

        // Two windows later nothing counts.
        time.advance(by: .seconds(2))
        #expect(decide().remaining == 3)
    }

    /// However the requests arrive, the sliding window never admits more than its limit
    /// within one fixed window, nor more than twice its limit within any window's length.
    @Test func slidingWindowStaysWithinItsLimit() async {
        await propertyCheck(input: Gen.int(in: 0...400).array(of: 1...80)) { gaps in
            let time = ManualTimeSource()
            let store = MemoryRateLimitStore(time: time)
            let limit = RateLimit(limit: 5, window: .seconds(1))
            var admitted: [Int64] = []
            for gap in gaps {
                time.advance(by: .milliseconds(gap))
                let decision = store.decide(key: "k", limit: limit, algorithm: .slidingWindow)
                if decision.isAllowed { admitted.append(time.now().nanoseconds) } else { #expect(decision.retryAfter.map { $0 > .zero } == true) }
            }
            let length = limit.window.nanoseconds
            let perWindow = Dictionary(grouping: admitted) { $0 / length }
            #expect(perWindow.values.allSatisfy { $0.count <= limit.limit })
            for (i, first) in admitted.enumerated() {
                #expect(admitted[i...].prefix { $0 - first < length }.count <= 2 * limit.limit)
            }
        }
    }

    /// A refused request's `retryAfter` is exact: one nanosecond earlier is still refused.
    @Test func retryAfterIsExact() async {
        await propertyCheck(input: Gen.int(in: 0...300).array(of: 1...30), Gen.bool) { gaps, useGCRA in
            let algorithm: RateLimitAlgorithm = useGCRA ? .gcra : .slidingWindow
            let limit = RateLimit(limit: 3, window: .seconds(1))
            let time = ManualTimeSource()
            let store = MemoryRateLimitStore(time: time)
            for gap in gaps {
                time.advance(by: .milliseconds(gap))
                _ = store.decide(key: "k", limit: limit, algorithm: algorithm)
            }
            // Fill up, then check the refusal's promise on a copy of the state.
            var refusal: RateLimitDecision?
            for _ in 0..<10 {
                let decision = store.decide(key: "probe", limit: limit, algorithm: algorithm)
                if !decision.isAllowed { refusal = decision; break }
            }
            guard let wait = refusal?.retryAfter else { Issue.record("never refused"); return }
            time.advance(by: wait - .nanoseconds(1))
            #expect(!store.decide(key: "probe", limit: limit, algorithm: algorithm).isAllowed)
            time.advance(by: .nanoseconds(1))
            #expect(store.decide(key: "probe", limit: limit, algorithm: algorithm).isAllowed)
        }
    }

    @Test func idleKeysAreForgotten() {
        let time = ManualTimeSource()
        let store = MemoryRateLimitStore(time: time, shards: 4)
        let limit = RateLimit(limit: 2, window: .seconds(1))
        for i in 0..<5000 { _ = store.decide(key: "ip:\(i)", limit: limit, algorithm: i % 2 == 0 ? .gcra : .slidingWindow) }
        // Sweeping on growth: no shard keeps many more than it held when it last swept.
        #expect(store.count <= 5000)
        time.advance(by: .seconds(3))
        _ = store.decide(key: "fresh", limit: limit, algorithm: .gcra)
        store.sweep()
        #expect(store.count == 1)
        // A key still inside its window is kept.
        _ = store.decide(key: "busy", limit: limit, algorithm: .slidingWindow)
        time.advance(by: .milliseconds(500))
        store.sweep()
        #expect(store.count == 1)
    }
}
