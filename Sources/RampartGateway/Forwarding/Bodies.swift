import NIOCore
import RampartCore
import Synchronization

/// The request body on its way upstream: streamed chunk by chunk, never collected, counted
/// against the body limit (chunked bodies included), and remembering whether reading began
/// (after which the request cannot be retried).
struct LimitedRequestBody<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == ByteBuffer {
    typealias Element = ByteBuffer
    let base: Base
    let limit: Int
    let progress: BodyProgress

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        let limit: Int
        let progress: BodyProgress

        mutating func next() async throws -> ByteBuffer? {
            progress.markStarted()
            guard let chunk = try await base.next() else { return nil }
            if progress.add(chunk.readableBytes) > limit {
                progress.markTooLarge()
                throw GatewayError(.bodyTooLarge, origin: .client, "request body larger than \(ByteCount(limit))")
            }
            return chunk
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), limit: limit, progress: progress)
    }
}

/// Shared state of a request body being forwarded.
final class BodyProgress: Sendable {
    private let bytes = Atomic<Int>(0)
    private let started = Atomic<Bool>(false)
    private let tooLarge = Atomic<Bool>(false)

    func markStarted() { started.store(true, ordering: .relaxed) }
    func markTooLarge() { tooLarge.store(true, ordering: .relaxed) }
    func add(_ n: Int) -> Int { bytes.wrappingAdd(n, ordering: .relaxed).newValue }
    var hasStarted: Bool { started.load(ordering: .relaxed) }
    var isTooLarge: Bool { tooLarge.load(ordering: .relaxed) }
}

/// The upstream response body on its way to the client: streamed, bounded by the total
/// deadline, and reporting exactly once how it ended, even when the client goes away and the
/// body is dropped unread (the observer's deinit reports it abandoned).
struct ObservedResponseBody<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == ByteBuffer {
    typealias Element = ByteBuffer
    let base: Base
    let observer: BodyObserver
    let deadline: Instant
    let time: any TimeSource

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        let observer: BodyObserver
        let deadline: Instant
        let time: any TimeSource

        mutating func next() async throws -> ByteBuffer? {
            do {
                guard let chunk = try await base.next() else {
                    observer.finish(.completed)
                    return nil
                }
                if time.now() > deadline {
                    observer.finish(.failed)
                    throw GatewayError(.totalTimeout, origin: .upstream, "upstream response exceeded the total timeout")
                }
                return chunk
            } catch {
                observer.finish(.failed)
                throw error
            }
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), observer: observer, deadline: deadline, time: time)
    }
}

/// Calls its closure once with how a response body ended.
final class BodyObserver: Sendable {
    enum Ending: Sendable { case completed, failed, abandoned }

    private let onFinish: Mutex<(@Sendable (Ending) -> Void)?>

    init(_ onFinish: @escaping @Sendable (Ending) -> Void) { self.onFinish = Mutex(onFinish) }

    func finish(_ ending: Ending) {
        let callback = onFinish.withLock { f -> (@Sendable (Ending) -> Void)? in
            defer { f = nil }
            return f
        }
        callback?(ending)
    }

    deinit { finish(.abandoned) }
}
