import RampartCore
import RampartLimits
import Testing

/// Multipliers, bounds and the adaptive controller's answers to latency, errors, load and
/// threat.
@Suite struct PolicyTests {
    let policy = RateLimitPolicy(name: "api", base: 100, window: .seconds(60), minimum: 5, maximum: 500,
                                 roles: ["admin": 10, "user": 1, "viewer": 0.5], classes: ["read": 1, "write": 0.2])

    @Test func multipliersCombineAndBoundsHold() {
        #expect(policy.effectiveLimit(roles: ["user"], endpointClass: "read").limit == 100)
        #expect(policy.effectiveLimit(roles: ["viewer"], endpointClass: "write").limit == 10)
        // Several roles: the most generous counts. Admin x10 would be 1000: held at max.
        #expect(policy.effectiveLimit(roles: ["viewer", "admin"]).limit == 500)
        // Unknown role and class: multiplier 1.
        #expect(policy.effectiveLimit(roles: ["guest"], endpointClass: "unlisted").limit == 100)
        // A harsh factor never goes below min.
        #expect(policy.effectiveLimit(roles: ["viewer"], endpointClass: "write", factor: 0.1).limit == 5)
        #expect(policy.effectiveLimit(factor: 0.5).limit == 50)
        var fixed = policy
        fixed.isAdaptive = false
        #expect(fixed.effectiveLimit(factor: 0.5).limit == 100)
        // Burst follows the limit unless a ratio says otherwise.
        #expect(policy.effectiveLimit().burst == 100)
        var halfBurst = policy
        halfBurst.burstRatio = 0.5
        #expect(halfBurst.effectiveLimit().burst == 50)
    }

    @Test func invalidPoliciesNameTheirFields() {
        let bad = RateLimitPolicy(name: "x", base: 0, window: .zero, burstRatio: 0, minimum: 10, maximum: 5, roles: ["admin": -1], classes: ["write": .nan])
        let paths = Set(bad.validate(at: "limits.policies.x").map(\.path))
        #expect(paths == ["limits.policies.x.base", "limits.policies.x.window", "limits.policies.x.max", "limits.policies.x.burst",
                          "limits.policies.x.roles.admin", "limits.policies.x.classes.write"])
        #expect(policy.validate(at: "limits").isEmpty)
    }

    @Test func risingLatencyTightensAndRecoveryRelaxesSlowly() {
        let controller = AdaptiveController()
        let calm = LoadSample(inFlight: 4, responses: 100, errors: 0, latency: .milliseconds(20))
        for _ in 0..<5 { controller.update(calm, threatLevel: 0) }
        #expect(controller.factors.load == 1)
        #expect(controller.factors.baselineLatency == .milliseconds(20))

        // Four times the baseline: the target is 1.5 x 20 / 80 = 0.375; half the way per interval.
        let slow = LoadSample(inFlight: 4, responses: 100, errors: 0, latency: .milliseconds(80))
        var factors: [Double] = []
        for _ in 0..<6 { factors.append(controller.update(slow, threatLevel: 0).load) }
        // Half the way to the target each interval (the baseline creeps up meanwhile by
        // meanwhile: a sixtieth of the gap per one-second interval, so a slowness that
        // lasts a minute becomes the new normal).
        #expect(zip(factors.prefix(5), factors.prefix(5).dropFirst()).allSatisfy { $0 > $1 }, "\(factors)")
        #expect(abs(factors[0] - 0.6875) < 0.001)
        #expect(factors.last! < 0.46)

        // Recovered: the factor climbs back, a tenth of the way per interval.
        var recovering: [Double] = []
        for _ in 0..<40 { recovering.append(controller.update(calm, threatLevel: 0).load) }
        #expect(zip(recovering, recovering.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(recovering[0] - factors.last! < 0.1)
        #expect(recovering.last! > 0.97)
    }

    @Test func errorsAndExcessConcurrencyTighten() {
        var settings = AdaptiveSettings()
        settings.concurrency = 50
        let controller = AdaptiveController(settings: settings)
        // 25% errors: four times the threshold's excess over 5% is all of it -> the floor.
        for _ in 0..<20 { controller.update(LoadSample(inFlight: 10, responses: 100, errors: 25, latency: nil), threatLevel: 0) }
        #expect(abs(controller.factors.load - settings.minimumFactor) < 0.01)

        let crowded = AdaptiveController(settings: settings)
        for _ in 0..<30 { crowded.update(LoadSample(inFlight: 100, responses: 100, errors: 0, latency: nil), threatLevel: 0) }
        #expect(abs(crowded.factors.load - 0.5) < 0.01)
        // A few errors are normal.
        let fine = AdaptiveController(settings: settings)
        fine.update(LoadSample(inFlight: 10, responses: 100, errors: 4, latency: nil), threatLevel: 0)
        #expect(fine.factors.load == 1)
    }

    @Test func threatLevelLowersTheThreatFactorWithinItsFloor() {
        let controller = AdaptiveController()
        let calm = LoadSample(inFlight: 1, responses: 10, errors: 0, latency: .milliseconds(10))
        for _ in 0..<30 { controller.update(calm, threatLevel: 1) }
        #expect(abs(controller.factors.threat - 0.25) < 0.01)
        #expect(controller.factors.load == 1)
        #expect(abs(controller.factors.combined - 0.25) < 0.01)
        for _ in 0..<70 { controller.update(calm, threatLevel: 0.5) }
        #expect(abs(controller.factors.threat - 0.625) < 0.01)
        // Nonsense levels count as calm or full attack, never beyond.
        controller.update(calm, threatLevel: .nan)
        controller.update(calm, threatLevel: 7)
        #expect(controller.factors.threat >= 0.25 && controller.factors.threat <= 1)
        // Applied to a policy: a quarter of the quota, but never below its min.
        let policy = RateLimitPolicy(name: "p", base: 100, window: .seconds(1), minimum: 30)
        #expect(policy.effectiveLimit(factor: 0.25).limit == 30)
    }
}
