public import RampartCore
import Synchronization

/// Rate-limit state in this process: one table per shard (keys spread by hash, so
/// concurrent event loops rarely wait on the same lock), each entry forgotten once it no
/// longer limits anything. A shard sweeps out such entries whenever it has doubled since
/// its last sweep, so memory follows the keys active within a window, however many keys
/// have passed.
public final class MemoryRateLimitStore: Sendable {
    enum Entry {
        case gcra(GCRA.State)
        case window(SlidingWindow.State, RateLimit)

        var expiry: Instant {
            switch self {
            case .gcra(let state): GCRA.expiry(of: state)
            case .window(let state, let limit): SlidingWindow.expiry(of: state, limit: limit)
            }
        }
    }

    struct Shard {
        var entries: [String: Entry] = [:]
        var sweepAt = MemoryRateLimitStore.firstSweep

        /// Drops the entries that limit nothing any more; the next sweep comes when the
        /// shard has doubled again.
        mutating func sweep(now: Instant) {
            entries = entries.filter { $0.value.expiry > now }
            sweepAt = max(MemoryRateLimitStore.firstSweep, entries.count * 2)
        }
    }

    /// `Mutex` cannot sit in an array; each shard's lives in its own object.
    final class Locked: Sendable {
        let state = Mutex(Shard())
    }

    static let firstSweep = 1024

    private let shards: [Locked]
    private let time: any TimeSource

    public init(time: any TimeSource = SystemTimeSource(), shards: Int = 16) {
        self.time = time
        self.shards = (0..<max(1, shards)).map { _ in Locked() }
    }

    public func decide(key: String, cost: Int = 1, limit: RateLimit, algorithm: RateLimitAlgorithm) -> RateLimitDecision {
        let now = time.now()
        let shard = shards[Int(UInt(bitPattern: key.hashValue) % UInt(shards.count))]
        return shard.state.withLock { shard in
            let decision: RateLimitDecision
            switch algorithm {
            case .gcra:
                var previous: GCRA.State?
                if case .gcra(let state)? = shard.entries[key] { previous = state }
                let (made, state) = GCRA.decide(previous, cost: cost, limit: limit, now: now)
                if let state { shard.entries[key] = .gcra(state) }
                decision = made
            case .slidingWindow:
                var previous: SlidingWindow.State?
                if case .window(let state, let kept)? = shard.entries[key], kept.window == limit.window { previous = state }
                let (made, state) = SlidingWindow.decide(previous, cost: cost, limit: limit, now: now)
                if let state { shard.entries[key] = .window(state, limit) }
                decision = made
            }
            if shard.entries.count >= shard.sweepAt { shard.sweep(now: now) }
            return decision
        }
    }

    /// Keys held now, expired ones not yet swept included.
    public var count: Int { shards.reduce(0) { total, shard in total + shard.state.withLock { $0.entries.count } } }

    /// Forgets every key that no longer limits anything.
    public func sweep() {
        let now = time.now()
        for shard in shards {
            shard.state.withLock { $0.sweep(now: now) }
        }
    }
}
