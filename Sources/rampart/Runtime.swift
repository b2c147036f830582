import NIOCore
import NIOPosix

/// How the process uses threads: one set of event loops, shared by the listeners, the
/// upstream client and Swift concurrency alike.
///
/// `RAMPART_THREADS` (default: the number of cores) sets how many event-loop threads there
/// are, like nginx's `worker_processes`. Swift concurrency's global executor is replaced by
/// those same event loops, so a request never hops between a concurrency pool and the loop
/// that owns its sockets, and the process runs on exactly that many busy threads.
enum Runtime {
    struct InvalidThreadCount: Error, CustomStringConvertible {
        let value: String
        var description: String { "RAMPART_THREADS: \"\(value)\" is not a whole number between 1 and 1024" }
    }

    static func configure(environment: [String: String]) throws {
        if let text = environment["RAMPART_THREADS"] {
            guard let count = Int(text.trimmingCharacters(in: " \t")), (1...1024).contains(count) else {
                throw InvalidThreadCount(value: text)
            }
            NIOSingletons.groupLoopCountSuggestion = count
        }
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> Substring {
        var text = Substring(self)
        while let first = text.first, set.contains(first) { text.removeFirst() }
        while let last = text.last, set.contains(last) { text.removeLast() }
        return text
    }
}
