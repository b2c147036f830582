import NIOCore

/// A timer for a deadline that moves with every request: one scheduled task, set again only
/// when the deadline comes earlier than the task, or by its owner when it fires (the owner then
/// compares the time with the deadline it keeps, and sets the task for a later one). A task
/// scheduled and cancelled per request cost an insertion and a removal in the loop's timer heap
/// each. Confined to its event loop.
struct LazyDeadlineTimer {
    private var task: Scheduled<Void>?
    /// When the task fires; the distant future while none is set.
    private var firesAt = NIODeadline.distantFuture

    /// Makes sure the task fires by `deadline`: sets it when none fires before. `fire` is made
    /// only then (a closure capturing its owner is an allocation).
    mutating func cover(_ deadline: NIODeadline, on loop: any EventLoop, fire: @autoclosure () -> () -> Void) {
        if deadline < firesAt { set(deadline, on: loop, fire: fire()) }
    }

    /// Sets the task for `deadline`, in place of any other.
    mutating func set(_ deadline: NIODeadline, on loop: any EventLoop, fire: @escaping () -> Void) {
        task?.cancel()
        firesAt = deadline
        task = loop.assumeIsolated().scheduleTask(deadline: deadline) { fire() }
    }

    /// The owner's first step when the task fires: none is set any more.
    mutating func fired() {
        task = nil
        firesAt = .distantFuture
    }

    mutating func cancel() {
        task?.cancel()
        fired()
    }
}
