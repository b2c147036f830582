import RampartCore
import Synchronization

/// Each candidate in turn.
final class RoundRobin: Selector {
    private let next = Atomic<Int>(0)

    func select(from candidates: [Instance], group: [Instance], input: SelectionInput, now: Instant) -> Instance? {
        // One candidate needs no turn (as nginx skips its round-robin for a single peer): the
        // shared counter is written only when there is a choice.
        guard candidates.count > 1 else { return candidates.first }
        let n = next.wrappingAdd(1, ordering: .relaxed).oldValue
        return candidates[Int(UInt(bitPattern: n) % UInt(candidates.count))]
    }
}

/// Nginx's smooth weighted round-robin: every pick adds each candidate's weight to its
/// current value, takes the largest, and subtracts the total from the winner. Over a cycle
/// each instance gets exactly its weight's share, spread out rather than in bursts.
final class SmoothWeightedRoundRobin: Selector {
    private let current = Mutex<[String: Int]>([:])

    func select(from candidates: [Instance], group: [Instance], input: SelectionInput, now: Instant) -> Instance? {
        current.withLock { current in
            var total = 0
            var best: Instance?
            var bestValue = Int.min
            for instance in candidates {
                let weight = instance.weight
                total += weight
                let value = (current[instance.id] ?? 0) + weight
                current[instance.id] = value
                if value > bestValue {
                    bestValue = value
                    best = instance
                }
            }
            if let best { current[best.id, default: 0] -= total }
            // Forget instances that left, so the table does not grow with churn.
            if current.count > candidates.count * 2 {
                let ids = Set(candidates.map(\.id))
                current = current.filter { ids.contains($0.key) }
            }
            return best
        }
    }
}

/// Fewest in-flight requests. Among instances tied at the minimum, two are drawn at random
/// and the heavier-weighted wins (power of two choices), so ties do not all land on the
/// first instance in the list.
struct LeastConnections: Selector {
    func select(from candidates: [Instance], group: [Instance], input: SelectionInput, now: Instant) -> Instance? {
        var least = Int.max
        var tied: [Instance] = []
        tied.reserveCapacity(4)
        for instance in candidates {
            let active = instance.activeRequests
            if active < least {
                least = active
                tied.removeAll(keepingCapacity: true)
                tied.append(instance)
            } else if active == least {
                tied.append(instance)
            }
        }
        if tied.count < 2 { return tied.first }
        let (a, b) = twoRandomIndices(tied.count)
        return tied[a].weight >= tied[b].weight ? tied[a] : tied[b]
    }
}

/// Peak-EWMA with power of two choices (Finagle, Linkerd): two random candidates, the one with
/// the lower latency estimate times (in-flight + 1) wins. Slow instances get less traffic at
/// once, without a global scan or a shared lock.
struct PeakEWMA: Selector {
    func select(from candidates: [Instance], group: [Instance], input: SelectionInput, now: Instant) -> Instance? {
        if candidates.count == 1 { return candidates[0] }
        let (a, b) = twoRandomIndices(candidates.count)
        return cost(candidates[a], now) <= cost(candidates[b], now) ? candidates[a] : candidates[b]
    }

    private func cost(_ instance: Instance, _ now: Instant) -> Double {
        instance.latencyEstimate(at: now) * Double(instance.activeRequests + 1) / Double(max(instance.weight, 1))
    }
}

/// The instances of the client's nearest region, in turn; when that region has none
/// available, the next region in the configured order.
final class Geographic: Selector {
    let routing: GeographicRouting
    private let roundRobin = RoundRobin()

    init(routing: GeographicRouting) { self.routing = routing }

    func select(from candidates: [Instance], group: [Instance], input: SelectionInput, now: Instant) -> Instance? {
        for region in routing.preference(for: input.country) {
            let local = candidates.filter { $0.region == region }
            if !local.isEmpty {
                return roundRobin.select(from: local, group: group, input: input, now: now)
            }
        }
        // Instances of regions the routing does not name still serve rather than fail.
        return roundRobin.select(from: candidates, group: group, input: input, now: now)
    }
}
