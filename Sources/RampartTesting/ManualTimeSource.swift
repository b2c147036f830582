public import RampartCore
import Synchronization

/// A clock tests move by hand.
public final class ManualTimeSource: TimeSource {
    private let current = Mutex(Instant(nanoseconds: 1_000_000_000))

    public init() {}

    public func now() -> Instant { current.withLock { $0 } }

    public func advance(by duration: Duration) { current.withLock { $0 = $0 + duration } }
}
