#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A point on a monotonic timeline, in nanoseconds since an arbitrary origin.
public struct Instant: Hashable, Comparable, Sendable {
    public let nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    public static func + (lhs: Instant, rhs: Duration) -> Instant {
        Instant(nanoseconds: lhs.nanoseconds + rhs.nanoseconds)
    }

    public static func - (lhs: Instant, rhs: Instant) -> Duration { .nanoseconds(lhs.nanoseconds - rhs.nanoseconds) }
}

extension Duration {
    /// The whole duration in nanoseconds (truncated toward zero), clamped to `Int64`'s range.
    /// A duration under about nine seconds, as the request path's are, divides in 64 bits; its
    /// `components` would divide 128-bit numbers, several times a request.
    public var nanoseconds: Int64 {
        let attoseconds = self.attoseconds
        if let small = Int64(exactly: attoseconds) { return small / 1_000_000_000 }
        return Int64(clamping: attoseconds / 1_000_000_000)
    }

    /// The duration in seconds as a floating-point number.
    public var secondsValue: Double { Double(nanoseconds) / 1e9 }
}

/// Where engines read the time, injected so tests drive it by hand (`ManualTimeSource` in
/// `RampartTesting`). Must be cheap: the request path reads it.
public protocol TimeSource: Sendable {
    func now() -> Instant
}

/// The process's monotonic clock.
public struct SystemTimeSource: TimeSource {
    private static let origin = clockNanoseconds()

    public init() {}

    /// The clock `ContinuousClock` reads, read directly: going through its `Duration` (128-bit
    /// attoseconds) cost a multiplication and a division per reading, several times a request.
    public func now() -> Instant {
        Instant(nanoseconds: Self.clockNanoseconds() - Self.origin)
    }

    private static func clockNanoseconds() -> Int64 {
        var time = timespec()
        #if canImport(Darwin)
        clock_gettime(CLOCK_MONOTONIC_RAW, &time)
        #else
        clock_gettime(CLOCK_BOOTTIME, &time)
        #endif
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }
}

/// The wall clock in seconds since 1970, for what must outlive the process (block expiry);
/// everything else reads a `TimeSource`.
public func wallClockSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
