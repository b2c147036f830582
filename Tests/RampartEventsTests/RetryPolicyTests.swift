import PropertyBased
import RampartCore
import Testing

@testable import RampartEvents

@Suite("Retry schedule")
struct RetryPolicyTests {
    @Test("the ceiling grows by the multiplier from the initial delay and stops at the cap")
    func ceilings() {
        let policy = RetryPolicy(initialDelay: .seconds(1), multiplier: 2, maxDelay: .seconds(10), maxAttempts: 6)
        #expect((1...6).map { policy.ceiling(afterFailures: $0) } == [1, 2, 4, 8, 10, 10])
        var random = SystemRandomNumberGenerator()
        #expect(policy.delay(afterFailures: 5, using: &random) != nil)
        #expect(policy.delay(afterFailures: 6, using: &random) == nil, "six attempts in all, then a dead letter")
    }

    @Test("every delay lies in [0, ceiling], ceilings never fall and never pass the cap")
    func bounds() async {
        await propertyCheck(count: 500, input: Gen.int(in: 1...5_000), Gen.int(in: 10...40), Gen.int(in: 1...600), Gen.int(in: 1...60)) {
            initialMilliseconds, multiplierTenths, capSeconds, failures in
            let initial = ConfigDuration.milliseconds(Int64(initialMilliseconds))
            let cap = ConfigDuration.seconds(max(Double(capSeconds), initial.seconds))
            let policy = RetryPolicy(initialDelay: initial, multiplier: Double(multiplierTenths) / 10, maxDelay: cap, maxAttempts: 100)
            var random = SystemRandomNumberGenerator()
            let ceiling = policy.ceiling(afterFailures: failures)
            #expect(ceiling <= cap.seconds && ceiling >= min(initial.seconds, cap.seconds) - 1e-9)
            #expect(policy.ceiling(afterFailures: failures + 1) >= ceiling, "monotone")
            let delay = policy.delay(afterFailures: failures, using: &random)!
            #expect(delay >= 0 && delay <= ceiling)
        }
    }

    @Test("the jitter reaches both ends of its range")
    func jitterRange() {
        let policy = RetryPolicy(initialDelay: .seconds(4), multiplier: 3, maxDelay: .seconds(100), maxAttempts: 10)
        // Over many draws the mean is near half the ceiling (uniform, full jitter).
        var random = SystemRandomNumberGenerator()
        let draws = (0..<20_000).map { _ in policy.delay(afterFailures: 3, using: &random)! }
        let mean = draws.reduce(0, +) / Double(draws.count)
        #expect(abs(mean - 18) < 1, "mean \(mean) of uniform [0, 36]")
        // Both ends are reached: some draws fall in the lowest and in the highest hundredth.
        #expect(draws.contains { $0 < 0.36 } && draws.contains { $0 > 35.64 } && draws.allSatisfy { $0 >= 0 && $0 <= 36 })
    }

    @Test("bad settings are named by their path")
    func validation() {
        let issues = RetryPolicy(initialDelay: .seconds(2), multiplier: 0.5, maxDelay: .seconds(1), maxAttempts: 0).validate(at: "events.retry")
        #expect(issues.map(\.path) == ["events.retry.multiplier", "events.retry.maxDelay", "events.retry.maxAttempts"])
    }
}
