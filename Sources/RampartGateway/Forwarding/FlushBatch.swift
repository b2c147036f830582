import NIOCore

/// The flushes one event loop owes, made together once the loop has handled the events of its
/// turn, rather than each as its bytes are written.
///
/// On loopback, and on any link where the peer's CPU idles between requests, most of the kernel's
/// cost of a write is waking the peer: writing to twenty connections of the same upstream one at a
/// time, with the loop's own work between them, can wake it twenty times; the same writes made
/// back to back find it awake after the first. A request answered in the turn it was read waits
/// only for the rest of that turn's events. Confined to its loop.
final class FlushBatch {
    private let eventLoop: any EventLoop
    private var pending: [ChannelHandlerContext] = []
    /// The array flushed last, kept so each turn reuses its storage.
    private var spare: [ChannelHandlerContext] = []

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        pending.reserveCapacity(64)
        spare.reserveCapacity(64)
    }

    /// Flushes `context` at the end of this turn of the loop. Called on the loop.
    func flushAtEndOfTurn(_ context: ChannelHandlerContext) {
        pending.append(context)
        guard pending.count == 1 else { return }
        // Tasks run after the turn's I/O events.
        eventLoop.assumeIsolatedUnsafeUnchecked().execute { self.flushAll() }
    }

    private func flushAll() {
        // A flush may lead to another write (a failed write closes a connection, whose exchange
        // may be retried on another): that one is gathered for a later task.
        swap(&pending, &spare)
        for context in spare { context.flush() }
        spare.removeAll(keepingCapacity: true)
    }
}
