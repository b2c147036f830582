@testable import RampartBalancing
import RampartCore
import RampartTesting
import Testing

func makePool(_ strategy: BalancingStrategy, weights: [Int] = [1, 1, 1], regions: [String?]? = nil, priorities: [Int]? = nil,
              outlier: OutlierDetectionConfiguration = .init(), healthCheck: HealthCheckConfiguration? = nil,
              time: any TimeSource = ManualTimeSource()) -> Pool {
    let instances = weights.enumerated().map { i, w in
        InstanceConfiguration(url: "http://127.0.0.1:\(9000 + i)", weight: w, region: regions?[i], priority: priorities?[i] ?? 0)
    }
    return Pool(name: "test", configuration: PoolConfiguration(strategy: strategy, instances: instances, healthCheck: healthCheck,
                                                               outlierDetection: outlier), time: time)
}

func counts(_ pool: Pool, picks: Int, input: SelectionInput = SelectionInput()) -> [String: Int] {
    var result: [String: Int] = [:]
    for _ in 0..<picks { if let i = pool.select(for: input) { result[i.id, default: 0] += 1 } }
    return result
}

@Suite struct SelectionTests {
    /// A kept view selects as the pool does, and is made again when the pool's members or
    /// settings change, or when it is used with another pool.
    @Test func aKeptViewSelectsAsThePoolAndFollowsItsChanges() throws {
        let pool = makePool(.roundRobin)
        var view: Pool.SelectionView?
        var seen: [String: Int] = [:]
        for _ in 0..<30 { if let i = pool.select(for: SelectionInput(), view: &view) { seen[i.id, default: 0] += 1 } }
        #expect(seen == ["127.0.0.1:9000": 10, "127.0.0.1:9001": 10, "127.0.0.1:9002": 10])
        // Registered: the view is made again and the new instance gets its turn.
        try pool.register(InstanceConfiguration(url: "http://127.0.0.1:9100"))
        seen = [:]
        for _ in 0..<40 { if let i = pool.select(for: SelectionInput(), view: &view) { seen[i.id, default: 0] += 1 } }
        #expect(seen["127.0.0.1:9100"] == 10 && seen.count == 4)
        // Removed: no longer chosen.
        pool.remove(id: "127.0.0.1:9000")
        seen = [:]
        for _ in 0..<30 { if let i = pool.select(for: SelectionInput(), view: &view) { seen[i.id, default: 0] += 1 } }
        #expect(seen["127.0.0.1:9000"] == nil && seen.count == 3)
        // A reload to another strategy and a second priority group: the view follows it (the
        // instance registered through the API stays, in the first group).
        pool.apply(PoolConfiguration(strategy: .leastConnections, instances: [
            InstanceConfiguration(url: "http://127.0.0.1:9001", priority: 1), InstanceConfiguration(url: "http://127.0.0.1:9002", priority: 0),
        ]))
        for _ in 0..<20 {
            let id = pool.select(for: SelectionInput(), view: &view)?.id
            #expect(id == "127.0.0.1:9002" || id == "127.0.0.1:9100", "\(id ?? "none") is not in the first group")
        }
        // Used with another pool, the view is made for that pool.
        let other = makePool(.roundRobin, weights: [1])
        #expect(other.select(for: SelectionInput(), view: &view)?.id == "127.0.0.1:9000")
        #expect(view?.isView(of: other) == true && view?.isView(of: pool) == false)
    }

    @Test func roundRobinSpreadsEvenly() {
        let pool = makePool(.roundRobin)
        #expect(Set(counts(pool, picks: 300).values) == [100])
    }

    @Test func smoothWeightedRoundRobinFollowsWeightsAndInterleaves() {
        let pool = makePool(.smoothWeightedRoundRobin, weights: [5, 1, 1])
        let picks = (0..<7).compactMap { _ in pool.select()?.id }
        #expect(picks.filter { $0 == "127.0.0.1:9000" }.count == 5)
        // Nginx's smooth sequence for 5/1/1 is a a b a c a a: never five in a row.
        #expect(picks == ["127.0.0.1:9000", "127.0.0.1:9000", "127.0.0.1:9001", "127.0.0.1:9000", "127.0.0.1:9002", "127.0.0.1:9000", "127.0.0.1:9000"])
        let many = counts(pool, picks: 7000)
        #expect(many["127.0.0.1:9000"] == 5000)
        #expect(many["127.0.0.1:9001"] == 1000)
    }

    @Test func leastConnectionsAvoidsBusyInstances() {
        let pool = makePool(.leastConnections)
        let busy = pool.instances[0]
        pool.begin(busy)
        pool.begin(busy)
        let picked = counts(pool, picks: 200)
        #expect(picked[busy.id] == nil)
        // Ties are broken at random, so both idle instances get traffic.
        #expect(picked.count == 2)
    }

    @Test func peakEWMASteersAwayFromASlowInstance() {
        let time = ManualTimeSource()
        let pool = makePool(.peakEWMA(decay: .seconds(10)), time: time)
        let slow = pool.instances[0]
        for instance in pool.instances {
            pool.begin(instance)
            pool.finish(instance, outcome: .response(status: 200), latency: instance === slow ? .milliseconds(500) : .milliseconds(5))
        }
        let picked = counts(pool, picks: 3000)
        // With two random choices the slow instance only wins when drawn against itself, which
        // cannot happen: it gets nothing while the others are faster.
        #expect(picked[slow.id] == nil)
        #expect(picked.values.reduce(0, +) == 3000)
    }

    @Test func peakEWMADecaysBackAfterRecovery() {
        let time = ManualTimeSource()
        let pool = makePool(.peakEWMA(decay: .seconds(1)), time: time)
        let instance = pool.instances[0]
        pool.begin(instance)
        pool.finish(instance, outcome: .response(status: 200), latency: .milliseconds(500))
        #expect(instance.latencyEstimate(at: time.now()) == 0.5)
        for _ in 0..<20 {
            time.advance(by: .seconds(1))
            pool.begin(instance)
            pool.finish(instance, outcome: .response(status: 200), latency: .milliseconds(5))
        }
        #expect(instance.latencyEstimate(at: time.now()) < 0.01)
    }

    @Test func consistentHashIsStableAndRemapsAboutOneNth() throws {
        let pool = makePool(.consistentHash(on: .header("X-User")), weights: Array(repeating: 1, count: 10))
        let keys = (0..<5000).map { "user-\($0)" }
        let before = keys.map { pool.select(for: SelectionInput(hashKey: $0))!.id }
        #expect(keys.map { pool.select(for: SelectionInput(hashKey: $0))!.id } == before)
        let leaving = pool.instances[3].id
        pool.remove(id: leaving)
        let after = keys.map { pool.select(for: SelectionInput(hashKey: $0))!.id }
        let moved = zip(before, after).filter { $0 != $1 }.count
        let owned = before.filter { $0 == leaving }.count
        // Exactly the keys of the instance that left move, and they are about 1/10 of all keys.
        #expect(moved == owned)
        #expect(Double(moved) / Double(keys.count) > 0.05 && Double(moved) / Double(keys.count) < 0.17)
        // The distribution over 10 instances is reasonably even.
        let spread = Dictionary(grouping: before, by: { $0 }).mapValues(\.count)
        #expect(spread.values.allSatisfy { $0 > 250 && $0 < 800 })
    }

    @Test func consistentHashFollowsAWeightChange() throws {
        let pool = makePool(.consistentHash(on: .header("X-User")), weights: [1, 1, 1, 1])
        let keys = (0..<4000).map { "user-\($0)" }
        let share = { (id: String) in Double(keys.filter { pool.select(for: SelectionInput(hashKey: $0))!.id == id }.count) / Double(keys.count) }
        let heavy = pool.instances[0].id
        #expect(share(heavy) < 0.4)
        try pool.setWeight(id: heavy, weight: 4)
        // 4 of 7 weight units: the ring is rebuilt for the new weight.
        #expect(share(heavy) > 0.45)
    }

    @Test func consistentHashSkipsAnEjectedInstanceWithoutMovingOthers() {
        let time = ManualTimeSource()
        let pool = makePool(.consistentHash(on: .clientAddress), weights: [1, 1, 1, 1],
                            outlier: .init(consecutiveFailures: 1, maxEjectedShare: 0.5), time: time)
        let keys = (0..<1000).map { "10.0.\($0 / 256).\($0 % 256)" }
        let before = keys.map { pool.select(for: SelectionInput(hashKey: $0))!.id }
        let down = pool.instances[0]
        pool.begin(down)
        pool.finish(down, outcome: .failure, latency: .milliseconds(1))
        let after = keys.map { pool.select(for: SelectionInput(hashKey: $0))!.id }
        for (b, a) in zip(before, after) where b != down.id { #expect(a == b) }
        #expect(!after.contains(down.id))
    }

    @Test func geographicPrefersTheClientsRegionThenFallsBack() {
        let routing = GeographicRouting(regions: ["eu": ["DE", "FR"], "us": ["US"]], order: ["eu", "us"])
        let time = ManualTimeSource()
        let pool = makePool(.geographic(routing), weights: [1, 1, 1], regions: ["eu", "us", "us"],
                            outlier: .init(consecutiveFailures: 1, maxEjectedShare: 1), time: time)
        #expect(Set(counts(pool, picks: 50, input: SelectionInput(country: "US")).keys) == ["127.0.0.1:9001", "127.0.0.1:9002"])
        #expect(Set(counts(pool, picks: 50, input: SelectionInput(country: "de")).keys) == ["127.0.0.1:9000"])
        // Unknown country: the configured order, so eu first.
        #expect(Set(counts(pool, picks: 50, input: SelectionInput(country: "JP")).keys) == ["127.0.0.1:9000"])
        let eu = pool.instances[0]
        pool.begin(eu)
        pool.finish(eu, outcome: .failure, latency: .zero)
        #expect(Set(counts(pool, picks: 50, input: SelectionInput(country: "DE")).keys) == ["127.0.0.1:9001", "127.0.0.1:9002"])
    }

    @Test func retriesExcludeTriedInstances() {
        let pool = makePool(.roundRobin)
        let input = SelectionInput(excluding: ["127.0.0.1:9000", "127.0.0.1:9001"])
        #expect(Set(counts(pool, picks: 20, input: input).keys) == ["127.0.0.1:9002"])
        #expect(pool.select(for: SelectionInput(excluding: Set(pool.instances.map(\.id)))) == nil)
    }

    @Test func theAffinitySourceFollowsTheStrategyAcrossAReload() {
        let pool = makePool(.consistentHash(on: .cookie("session")))
        #expect(pool.affinity == .cookie("session"))
        pool.apply(PoolConfiguration(strategy: .roundRobin, instances: pool.configuration.instances))
        #expect(pool.affinity == nil)
        pool.apply(PoolConfiguration(strategy: .consistentHash(on: .header("X-User")), instances: pool.configuration.instances))
        #expect(pool.affinity == .header("X-User"))
    }

    @Test func weightsCanChangeAtRunTime() throws {
        let pool = makePool(.smoothWeightedRoundRobin, weights: [1, 1])
        try pool.setWeight(id: "127.0.0.1:9001", weight: 3)
        let picked = counts(pool, picks: 400)
        #expect(picked["127.0.0.1:9001"] == 300)
        #expect(throws: MembershipError.self) { try pool.setWeight(id: "127.0.0.1:9001", weight: 0) }
    }
}
