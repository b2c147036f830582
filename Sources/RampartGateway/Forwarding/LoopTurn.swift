import NIOCore
import RampartCore

/// What one event loop does once a turn, for the connections on it: the flushes they owe, made
/// together once the loop has handled the events of its turn rather than each as its bytes are
/// written, and the time as the turn sees it, read once rather than at every stamp and deadline.
/// Both end with one task run after the turn's I/O events. Confined to its loop.
///
/// Flushes: on loopback, and on any link where the peer's CPU idles between requests, most of
/// the kernel's cost of a write is waking the peer: writing to twenty connections of the same
/// upstream one at a time, with the loop's own work between them, can wake it twenty times; the
/// same writes made back to back find it awake after the first. A request answered in the turn
/// it was read waits only for the rest of that turn's events.
///
/// Time: the connections' activity stamps and the deadlines of timeouts (an answer's head, a
/// client's next request) need the time to about a millisecond, not a clock reading each (four
/// a request). ``now`` reads the clock at its first call in a turn; later calls in the same turn
/// get that reading, which is behind by at most the turn's length (the work of the events one
/// wait returned). A deadline from it comes that much early, never late. What measures
/// durations (latencies, metrics, the access log) reads its own clock.
final class LoopTurn {
    private let eventLoop: any EventLoop
    private var pending: [ChannelHandlerContext] = []
    /// The array flushed last, kept so each turn reuses its storage.
    private var spare: [ChannelHandlerContext] = []
    /// The time read in this turn, if any.
    private var time: NIODeadline?
    /// The end-of-turn task is scheduled.
    private var ending = false
    /// The `Date` of answers made in the current second of the wall clock, and that second;
    /// whether the wall clock has been read this turn.
    private var date = ""
    private var dateSecond = -1
    private var dateChecked = false

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        pending.reserveCapacity(64)
        spare.reserveCapacity(64)
    }

    /// Flushes `context` at the end of this turn of the loop. Called on the loop.
    func flushAtEndOfTurn(_ context: ChannelHandlerContext) {
        pending.append(context)
        endTurnLater()
    }

    /// The time as this turn of the loop sees it (see the type's notes). Called on the loop.
    func now() -> NIODeadline {
        if let time { return time }
        let read = NIODeadline.now()
        time = read
        endTurnLater()
        return read
    }

    /// The wall-clock time as an HTTP date (RFC 9110 §5.6.7, `Sun, 06 Nov 1994 08:49:37 GMT`),
    /// formatted once a second, the clock read once a turn (as ``now``). Called on the loop.
    func httpDate() -> String {
        if dateChecked { return date }
        dateChecked = true
        endTurnLater()
        let second = Int(wallClockSeconds())
        if second != dateSecond {
            date = Self.httpDate(second)
            dateSecond = second
        }
        return date
    }

    /// `second` (since the epoch) as an HTTP date, by the proleptic Gregorian calendar in UTC.
    static func httpDate(_ second: Int) -> String {
        let days = second >= 0 ? second / 86_400 : (second - 86_399) / 86_400
        let inDay = second - days * 86_400
        // Civil date from days since 1970-01-01 (H. Hinnant's algorithm): eras of 400 years.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shifted = (5 * dayOfYear + 2) / 153  // months from March
        let day = dayOfYear - (153 * shifted + 2) / 5 + 1
        let month = shifted < 10 ? shifted + 3 : shifted - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        let weekday = ((days % 7) + 11) % 7  // 1970-01-01 was a Thursday
        let names = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(names[weekday]), \(two(day)) \(months[month - 1]) \(year) \(two(inDay / 3600)):\(two(inDay / 60 % 60)):\(two(inDay % 60)) GMT"
    }

    private func endTurnLater() {
        guard !ending else { return }
        ending = true
        // Tasks run after the turn's I/O events.
        eventLoop.assumeIsolatedUnsafeUnchecked().execute { self.endTurn() }
    }

    private func endTurn() {
        ending = false
        time = nil
        dateChecked = false
        // A flush may lead to another write (a failed write closes a connection, whose exchange
        // may be retried on another): that one is gathered for a later task.
        swap(&pending, &spare)
        for context in spare { context.flush() }
        spare.removeAll(keepingCapacity: true)
    }
}
