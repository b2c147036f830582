import RampartCore
import Synchronization

/// A hash ring with virtual nodes (Karger et al.; Ketama's layout). Each instance owns
/// `pointsPerWeight × weight` points; a key goes to the first point clockwise whose instance is
/// a candidate. An unavailable instance is skipped rather than removed, so only its own keys
/// move; when membership changes, the ring is rebuilt and about 1/N of the keys move.
struct ConsistentHashRing: Sendable {
    static let pointsPerWeight = 160

    /// Sorted ring positions and the index (into `members`) of the owning instance.
    let points: [(hash: UInt64, member: Int)]
    let members: [String]
    let weights: [Int]

    init(members: [(id: String, weight: Int)]) {
        var points: [(hash: UInt64, member: Int)] = []
        points.reserveCapacity(members.reduce(0) { $0 + $1.weight } * Self.pointsPerWeight)
        for (index, member) in members.enumerated() {
            for replica in 0..<(Self.pointsPerWeight * max(member.weight, 1)) {
                points.append((stableHash("\(member.id)#\(replica)"), index))
            }
        }
        points.sort { $0.hash < $1.hash }
        self.points = points
        self.members = members.map(\.id)
        self.weights = members.map(\.weight)
    }

    /// The first member clockwise from `key` for which `accept` is true.
    func lookup(_ key: String, accept: (String) -> Bool) -> String? {
        guard !points.isEmpty else { return nil }
        let h = stableHash(key)
        var low = 0, high = points.count
        while low < high {
            let mid = (low + high) / 2
            if points[mid].hash < h { low = mid + 1 } else { high = mid }
        }
        var seen = Set<Int>()
        for step in 0..<points.count {
            let member = points[(low + step) % points.count].member
            if seen.insert(member).inserted {
                if accept(members[member]) { return members[member] }
                if seen.count == members.count { return nil }
            }
        }
        return nil
    }
}

/// FNV-1a 64 followed by the splitmix64 finalizer: stable across processes and releases
/// (Swift's `Hasher` is seeded per process, which would move every key on restart).
func stableHash(_ text: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
        h ^= UInt64(byte)
        h = h &* 0x0000_0100_0000_01B3
    }
    h ^= h >> 30
    h = h &* 0xbf58_476d_1ce4_e5b9
    h ^= h >> 27
    h = h &* 0x94d0_49bb_1331_11eb
    h ^= h >> 31
    return h
}

/// Consistent hashing on a key taken from the request; requests without a key are spread
/// round-robin.
final class ConsistentHash: Selector {
    private let ring = Mutex<ConsistentHashRing?>(nil)
    private let fallback = RoundRobin()

    func select(from candidates: [Instance], group: [Instance], input: SelectionInput, now: Instant) -> Instance? {
        guard let key = input.hashKey else {
            return fallback.select(from: candidates, group: group, input: input, now: now)
        }
        let ring = currentRing(for: group)
        let chosen = ring.lookup(key) { id in candidates.contains { $0.id == id } }
        return chosen.flatMap { id in candidates.first { $0.id == id } }
    }

    /// The ring for the group's current members and weights; rebuilt when either changes.
    private func currentRing(for group: [Instance]) -> ConsistentHashRing {
        let members = group.map { (id: $0.id, weight: $0.weight) }
        return ring.withLock { ring in
            if let existing = ring, existing.members.elementsEqual(members.map(\.id)),
               existing.weights.elementsEqual(members.map(\.weight)) {
                return existing
            }
            let built = ConsistentHashRing(members: members)
            ring = built
            return built
        }
    }
}
