import Synchronization

/// Wakes one waiting task early: `wait(upTo:)` returns when `signal()` is called (or was
/// called since the last wait), when the time is up, or when the task is cancelled.
final class Wakeup: Sendable {
    private struct State {
        var signalled = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    func signal() {
        state.withLock { s -> CheckedContinuation<Void, Never>? in
            defer { s.waiter = nil }
            if s.waiter == nil { s.signalled = true }
            return s.waiter
        }?.resume()
    }

    /// Waits for a signal (or cancellation), however long it takes.
    func wait() async { await waitForSignal() }

    func wait(upTo limit: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                // Only a timeout that really passed wakes the waiter: a cancelled sleep (the
                // waiter was signalled first) must not leave a signal behind for the next wait.
                do {
                    try await Task.sleep(for: limit)
                    signal()
                } catch {}
            }
            await waitForSignal()
            group.cancelAll()
        }
    }

    private func waitForSignal() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { s -> Bool in
                    if s.signalled || Task.isCancelled {
                        s.signalled = false
                        return true
                    }
                    s.waiter = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            signal()
        }
    }
}
