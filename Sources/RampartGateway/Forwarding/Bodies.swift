import NIOCore
import RampartCore
import Synchronization

/// The request body on its way upstream: streamed chunk by chunk, never collected, counted
/// against the body limit (chunked bodies included), and remembering whether it was handed to
/// a connection (after which the request cannot be retried). A second reading (the HTTP
/// client may ask again after an upstream closed the connection) fails instead of touching
/// the consumed stream.
struct LimitedRequestBody<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == ByteBuffer {
    typealias Element = ByteBuffer
    let reader: BodyReader<Base>
    let limit: Int
    let progress: BodyProgress

    struct AsyncIterator: AsyncIteratorProtocol {
        /// Nil for a second reading.
        let reader: BodyReader<Base>?
        let limit: Int
        let progress: BodyProgress

        mutating func next() async throws -> ByteBuffer? {
            guard let reader else {
                throw GatewayError(.upstreamReset, origin: .upstream, "the request body was already sent once and cannot be replayed")
            }
            guard let chunk = try await reader.next() else { return nil }
            if progress.add(chunk.readableBytes) > limit {
                progress.markTooLarge()
                throw GatewayError(.bodyTooLarge, origin: .client, "request body larger than \(ByteCount(limit))")
            }
            return chunk
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(reader: progress.claim() ? reader : nil, limit: limit, progress: progress)
    }
}

/// The client's request body, read by one task at a time. The HTTP client's upload task reads
/// it while the upstream wants it; once the response is ready, `close` waits for a read in
/// progress and refuses any later one, because the server then reads the connection itself
/// to skip what is left of the body, and two readers at once are fatal. An upstream may
/// answer before it has read the whole body (a refused upload, a 401), so this happens.
final class BodyReader<Base: AsyncSequence & Sendable>: @unchecked Sendable where Base.Element == ByteBuffer {
    // `iterator` is only touched by the holder of `state.busy`.
    private let base: Base
    private var iterator: Base.AsyncIterator?
    private let state = Mutex<(busy: Bool, closed: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, false, []))

    init(_ base: Base) { self.base = base }

    func next() async throws -> ByteBuffer? {
        await acquire()
        defer { release() }
        guard !state.withLock({ $0.closed }) else {
            throw GatewayError(.upstreamReset, origin: .upstream, "the upstream answered before reading the whole request body")
        }
        if iterator == nil { iterator = base.makeAsyncIterator() }
        return try await iterator!.next()
    }

    /// Runs `work` (reading the upstream's response), then closes, whether or not it threw.
    func closing<T>(after work: () async throws -> T) async throws -> T {
        do {
            let value = try await work()
            await close()
            return value
        } catch {
            await close()
            throw error
        }
    }

    /// Waits for a read in progress to end; no read starts after.
    func close() async {
        await acquire()
        state.withLock { $0.closed = true }
        release()
    }

    private func acquire() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { s -> Bool in
                if !s.busy {
                    s.busy = true
                    return true
                }
                s.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    private func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.waiters.isEmpty {
                s.busy = false
                return nil
            }
            return s.waiters.removeFirst()  // stays busy: handed over
        }
        next?.resume()
    }
}

/// Shared state of a request body being forwarded.
final class BodyProgress: Sendable {
    private let bytes = Atomic<Int>(0)
    private let started = Atomic<Bool>(false)
    private let tooLarge = Atomic<Bool>(false)

    /// True the first time only: the body goes to one upload.
    func claim() -> Bool { !started.exchange(true, ordering: .relaxed) }
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
