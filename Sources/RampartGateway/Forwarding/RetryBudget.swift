public import RampartCore
import Synchronization

/// Bounds retries to a share of recent traffic (Finagle's and Linkerd's retry budget), so
/// that when an upstream fails, retries add at most `ratio` more load instead of multiplying
/// the outage. Counts live in one-second buckets over a ten-second window.
public final class RetryBudget: Sendable {
    static let windowSeconds = 10

    /// One second of the window. Its counts are atomics: every first attempt, on every event
    /// loop, counts one, and a lock there would be taken per request by all loops in turn.
    /// Moving a slot to a new second (which empties it) and taking a retry happen under the
    /// budget's lock.
    private final class Slot: Sendable {
        /// The second (of the time source) the counts are for; -1 before the first.
        let second = Atomic<Int64>(-1)
        let requests = Atomic<Int>(0)
        let retries = Atomic<Int>(0)
    }

    private struct Limits {
        var ratio: Double
        var minPerSecond: Int
    }

    private let slots: [Slot] = (0..<RetryBudget.windowSeconds).map { _ in Slot() }
    private let limits: Mutex<Limits>
    private let time: any TimeSource

    public init(ratio: Double, minRetriesPerSecond: Int, time: any TimeSource = SystemTimeSource()) {
        self.limits = Mutex(Limits(ratio: ratio, minPerSecond: minRetriesPerSecond))
        self.time = time
    }

    /// New limits from a reload; the counts of the window carry over.
    public func update(ratio: Double, minRetriesPerSecond: Int) {
        limits.withLock { l in
            l.ratio = ratio
            l.minPerSecond = minRetriesPerSecond
        }
    }

    /// Counts a first attempt, made at `now` (read from the budget's time source when not given).
    public func recordRequest(at now: Instant? = nil) {
        let second = (now ?? time.now()).nanoseconds / 1_000_000_000
        let slot = slot(for: second)
        if slot.second.load(ordering: .acquiring) != second {
            limits.withLock { _ in Self.move(slot, to: second) }
        }
        slot.requests.wrappingAdd(1, ordering: .relaxed)
    }

    /// Takes one retry from the budget if there is one left.
    public func tryRetry() -> Bool {
        let second = time.now().nanoseconds / 1_000_000_000
        return limits.withLock { l in
            var requests = 0, retries = 0
            for slot in slots {
                let at = slot.second.load(ordering: .acquiring)
                guard at >= 0, second - at < Int64(RetryBudget.windowSeconds) else { continue }
                requests += slot.requests.load(ordering: .relaxed)
                retries += slot.retries.load(ordering: .relaxed)
            }
            let allowed = Double(requests) * l.ratio + Double(l.minPerSecond * RetryBudget.windowSeconds)
            guard Double(retries) + 1 <= allowed else { return false }
            let slot = slot(for: second)
            Self.move(slot, to: second)
            slot.retries.wrappingAdd(1, ordering: .relaxed)
            return true
        }
    }

    private func slot(for second: Int64) -> Slot {
        slots[Int(second % Int64(RetryBudget.windowSeconds))]
    }

    /// Empties `slot` for `second` when it holds an earlier second's counts. Under the lock, so
    /// that two loops do not both empty it (the second one dropping the first one's counts).
    private static func move(_ slot: Slot, to second: Int64) {
        guard slot.second.load(ordering: .acquiring) < second else { return }
        slot.requests.store(0, ordering: .relaxed)
        slot.retries.store(0, ordering: .relaxed)
        slot.second.store(second, ordering: .releasing)
    }
}
