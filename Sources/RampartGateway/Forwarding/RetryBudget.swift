public import RampartCore
import Synchronization

/// Bounds retries to a share of recent traffic (Finagle's and Linkerd's retry budget), so
/// that when an upstream fails, retries add at most `ratio` more load instead of multiplying
/// the outage. Counts live in one-second buckets over a ten-second window.
public final class RetryBudget: Sendable {
    static let windowSeconds = 10

    private struct Window {
        var ratio: Double
        var minPerSecond: Int
        var second: [Int64] = Array(repeating: -1, count: RetryBudget.windowSeconds)
        var requests: [Int] = Array(repeating: 0, count: RetryBudget.windowSeconds)
        var retries: [Int] = Array(repeating: 0, count: RetryBudget.windowSeconds)

        mutating func slot(for now: Instant) -> Int {
            let second = now.nanoseconds / 1_000_000_000
            let index = Int(second % Int64(RetryBudget.windowSeconds))
            if self.second[index] != second {
                self.second[index] = second
                requests[index] = 0
                retries[index] = 0
            }
            return index
        }

        func totals(at now: Instant) -> (requests: Int, retries: Int) {
            let current = now.nanoseconds / 1_000_000_000
            var r = 0, t = 0
            for i in 0..<RetryBudget.windowSeconds where current - second[i] < Int64(RetryBudget.windowSeconds) && second[i] >= 0 {
                r += requests[i]
                t += retries[i]
            }
            return (r, t)
        }
    }

    private let window: Mutex<Window>
    private let time: any TimeSource

    public init(ratio: Double, minRetriesPerSecond: Int, time: any TimeSource = SystemTimeSource()) {
        self.window = Mutex(Window(ratio: ratio, minPerSecond: minRetriesPerSecond))
        self.time = time
    }

    /// New limits from a reload; the counts of the window carry over.
    public func update(ratio: Double, minRetriesPerSecond: Int) {
        window.withLock { w in
            w.ratio = ratio
            w.minPerSecond = minRetriesPerSecond
        }
    }

    /// Counts a first attempt, made at `now` (read from the budget's time source when not given).
    public func recordRequest(at now: Instant? = nil) {
        let now = now ?? time.now()
        window.withLock { w in
            let i = w.slot(for: now)
            w.requests[i] += 1
        }
    }

    /// Takes one retry from the budget if there is one left.
    public func tryRetry() -> Bool {
        let now = time.now()
        return window.withLock { w in
            let (requests, retries) = w.totals(at: now)
            let allowed = Double(requests) * w.ratio + Double(w.minPerSecond * RetryBudget.windowSeconds)
            guard Double(retries) + 1 <= allowed else { return false }
            let i = w.slot(for: now)
            w.retries[i] += 1
            return true
        }
    }
}
