import NIOCore

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

    private func endTurnLater() {
        guard !ending else { return }
        ending = true
        // Tasks run after the turn's I/O events.
        eventLoop.assumeIsolatedUnsafeUnchecked().execute { self.endTurn() }
    }

    private func endTurn() {
        ending = false
        time = nil
        // A flush may lead to another write (a failed write closes a connection, whose exchange
        // may be retried on another): that one is gathered for a later task.
        swap(&pending, &spare)
        for context in spare { context.flush() }
        spare.removeAll(keepingCapacity: true)
    }
}
