import RampartCore
import RampartLimits
import RampartTesting
import Synchronization
import Testing

/// Repeat violators: offences, doubling penalties with a cap, forgetting, and the report to
/// the shield.
@Suite struct ViolationTests {
    final class Signals: ThreatSignals {
        let reports = Mutex<[RateLimitAbuse]>([])
        let level = Mutex(0.0)
        var threatLevel: Double { level.withLock { $0 } }
        func reportRateLimitAbuse(_ abuse: RateLimitAbuse) { reports.withLock { $0.append(abuse) } }
    }

    @Test func penaltiesDoubleUpToTheCapAndAreForgotten() {
        var settings = RateLimitsConfiguration.Violations()
        settings.threshold = 3
        settings.window = .seconds(10)
        settings.penalty = .seconds(30)
        settings.maxPenalty = .seconds(100)
        let tracker = ViolationTracker(settings: settings)
        var now = Instant(nanoseconds: 0)
        func offend() -> Duration? {
            var last: (penalty: Duration, offences: Int)?
            for _ in 0..<settings.threshold { last = tracker.refused("k", policy: "p", now: now) }
            return last?.penalty
        }
        #expect(tracker.refused("k", policy: "p", now: now) == nil)
        #expect(tracker.refused("k", policy: "p", now: now) == nil)
        #expect(tracker.refused("k", policy: "p", now: now)?.penalty == .seconds(30))
        #expect(tracker.penalty(for: "k", now: now + .seconds(29)) == .seconds(1))
        #expect(tracker.penalty(for: "k", now: now + .seconds(30)) == nil)
        now = now + .seconds(31)
        #expect(offend() == .seconds(60))
        now = now + .seconds(61)
        #expect(offend() == .seconds(100))  // 120, capped
        // Refusals spread wider than the window make no offence.
        now = now + .seconds(101)
        for _ in 0..<5 {
            #expect(tracker.refused("k", policy: "p", now: now) == nil)
            now = now + .seconds(6)
            #expect(tracker.refused("k", policy: "p", now: now) == nil)
            now = now + .seconds(11)
        }
        // After a quiet maxPenalty the count starts again at the first penalty.
        now = now + .seconds(101)
        #expect(offend() == .seconds(30))
        #expect(tracker.top(5, now: now).first?.offences == 1)
    }

    @Test func offencesAreReportedAndPenalisedKeysRefusedOutright() {
        let time = ManualTimeSource()
        let signals = Signals()
        var configuration = RateLimitsConfiguration(defaults: .init(base: 1, window: .seconds(60), adaptive: false))
        configuration.violations.threshold = 2
        let limiter = AdaptiveRateLimiter(configuration, time: time, signals: signals)
        let caller = AdaptiveRateLimiter.Caller(client: IPAddress("192.0.2.9"))
        func decide() -> AdaptiveRateLimiter.Outcome { limiter.decideLocally(policy: "default", caller: caller, route: nil, endpointClass: nil, requestID: "r1")! }
        #expect(decide().decision.isAllowed)
        #expect(!decide().isPenalty)
        #expect(signals.reports.withLock { $0.isEmpty })
        let second = decide()
        #expect(!second.decision.isAllowed && !second.isPenalty)
        #expect(signals.reports.withLock { $0 } == [RateLimitAbuse(client: IPAddress("192.0.2.9"), key: "default|ip:192.0.2.9", policy: "default",
                                                                      violations: 1, requestID: "r1")])
        // The GCRA quota comes back after 60 s, but the penalty (30 s) has not passed yet at 20 s.
        time.advance(by: .seconds(20))
        let penalised = decide()
        #expect(penalised.isPenalty && penalised.decision.retryAfter == .seconds(10))
        time.advance(by: .seconds(41))
        #expect(decide().decision.isAllowed)
        #expect(limiter.decideLocally(policy: "nosuch", caller: caller, route: nil, endpointClass: nil) == nil)
    }

    @Test func adaptiveLimitsFollowTheThreatLevel() {
        let signals = Signals()
        let limiter = AdaptiveRateLimiter(RateLimitsConfiguration(defaults: .init(base: 100, window: .seconds(60), min: 10)), signals: signals)
        #expect(limiter.effectiveLimits().first?.limit.limit == 100)
        signals.level.withLock { $0 = 1 }
        for _ in 0..<40 { limiter.adapt(LoadSample(inFlight: 0, responses: 0, errors: 0, latency: nil)) }
        #expect(limiter.effectiveLimits().first?.limit.limit == 25)
        var fixed = limiter.configuration
        fixed.defaults.adaptive = false
        limiter.apply(fixed)
        #expect(limiter.effectiveLimits().first?.limit.limit == 100)
    }
}
