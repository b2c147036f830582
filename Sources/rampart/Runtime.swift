import NIOCore
import NIOPosix
import RampartCore
import Synchronization

/// How many event-loop threads the process runs and where request tasks run, settled before
/// anything starts.
///
/// `RAMPART_THREADS` (default: the number of cores) sets the size of the event-loop group the
/// listeners and the upstream client share, like nginx's `worker_processes`.
///
/// `RAMPART_EXECUTOR` says where Swift tasks (every request handler) run: `event-loops` (the
/// default) makes those same event loops Swift's global executor, so a request's work stays
/// on the thread that owns its connection and each `await` is a queue append on that thread
/// rather than a wake-up of another one; `pool` leaves tasks on Swift's own thread pool. See
/// docs/performance.md for what each costs.
enum Runtime {
    enum Executor: String {
        case eventLoops = "event-loops"
        case pool
    }

    struct InvalidSetting: Error, CustomStringConvertible {
        let description: String
    }

    private static let chosen = Mutex(Executor.pool)

    /// Where tasks run, once `configure` has run.
    static var executor: Executor { chosen.withLock { $0 } }

    static func configure(environment: [String: String]) throws {
        if let text = environment["RAMPART_THREADS"] {
            guard let count = Int(text.trimmingASCIIWhitespace()), (1...1024).contains(count) else {
                throw InvalidSetting(description: "RAMPART_THREADS: \"\(text)\" is not a whole number between 1 and 1024")
            }
            NIOSingletons.groupLoopCountSuggestion = count
        }
        let wanted: Executor
        if let text = environment["RAMPART_EXECUTOR"] {
            guard let chosen = Executor(rawValue: String(text.trimmingASCIIWhitespace())) else {
                throw InvalidSetting(description: "RAMPART_EXECUTOR: \"\(text)\" is neither event-loops nor pool")
            }
            wanted = chosen
        } else {
            wanted = .eventLoops
        }
        // NIO refuses (false) when the runtime offers no hook; tasks then stay on the pool.
        if wanted == .eventLoops, NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor() {
            chosen.withLock { $0 = .eventLoops }
        }
    }
}
