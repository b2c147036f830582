import NIOCore
import RampartCore

/// How many event-loop threads the process runs, settled before anything starts.
///
/// `RAMPART_THREADS` (default: the number of cores) sets the size of the event-loop group the
/// listeners and the upstream client share, like nginx's `worker_processes`. Handlers run as
/// Swift tasks on the concurrency pool beside it. (Running those tasks on the event loops
/// themselves, with NIO's global-executor takeover, was measured slower: see
/// docs/performance.md.)
enum Runtime {
    struct InvalidThreadCount: Error, CustomStringConvertible {
        let value: String
        var description: String { "RAMPART_THREADS: \"\(value)\" is not a whole number between 1 and 1024" }
    }

    static func configure(environment: [String: String]) throws {
        guard let text = environment["RAMPART_THREADS"] else { return }
        guard let count = Int(text.trimmingASCIIWhitespace()), (1...1024).contains(count) else {
            throw InvalidThreadCount(value: text)
        }
        NIOSingletons.groupLoopCountSuggestion = count
    }
}

