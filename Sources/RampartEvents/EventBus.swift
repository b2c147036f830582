import DequeModule
public import Logging
public import RampartCore
public import RampartStore
import Synchronization

/// What a full publish queue does with one more event. Either way the event that is not kept
/// is counted (`events_dropped_total{reason="queue_full"}`) and logged.
public enum OverflowPolicy: String, Sendable, Codable, CaseIterable {
    /// Refuse the new event (`publish` answers false).
    case dropNewest = "drop-newest"
    /// Make room by dropping the oldest queued event.
    case dropOldest = "drop-oldest"

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let policy = OverflowPolicy(rawValue: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "expected drop-newest or drop-oldest, got \"\(text)\""))
        }
        self = policy
    }
}

public enum EventBusError: Error, Equatable, CustomStringConvertible {
    /// The queue was full and the policy refused the event.
    case queueFull
    /// The bus stopped before the event was written.
    case stopped

    public var description: String {
        switch self {
        case .queueFull: "the event queue is full"
        case .stopped: "the event bus stopped before the event was written"
        }
    }
}

/// The front of event delivery: `publish` puts an event in a bounded in-memory queue and
/// returns at once (it never waits on the disk, so it can run on the request path); `run`
/// writes the queue to the spool in batches, one transaction each, and tells the delivery
/// loops. `publishDurably` waits until the events are in the spool, for callers that must
/// know (an event is acknowledged once written; from then on it survives kill -9).
public final class EventBus: EventPublishing {
    struct Entry {
        var event: Event
        var sinks: [String]
        /// Told when the entry is written (or lost), for `publishDurably`.
        var written: Acknowledgement?
    }

    /// One `publishDurably` call waiting for all its events: resumed once the last is written,
    /// or at the first that is not.
    final class Acknowledgement: Sendable {
        private struct State {
            var remaining: Int
            var waiter: CheckedContinuation<Void, any Error>?
            var outcome: Result<Void, any Error>?
        }

        private let state: Mutex<State>

        init(count: Int) { state = Mutex(State(remaining: count)) }

        func resume() { finish(nil) }
        func resume(throwing error: any Error) { finish(error) }

        private func finish(_ error: (any Error)?) {
            let waiter = state.withLock { s -> CheckedContinuation<Void, any Error>? in
                guard s.outcome == nil else { return nil }
                s.remaining -= 1
                if let error { s.outcome = .failure(error) } else if s.remaining == 0 { s.outcome = .success(()) } else { return nil }
                defer { s.waiter = nil }
                return s.waiter
            }
            if let waiter, let outcome = state.withLock({ $0.outcome }) { waiter.resume(with: outcome) }
        }

        func wait() async throws {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome = state.withLock { s -> Result<Void, any Error>? in
                    if s.outcome == nil { s.waiter = continuation }
                    return s.outcome
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        }
    }

    struct State {
        var queue = Deque<Entry>()
        var stopped = false
        var droppedSinceLog = 0
        var lastDropLog = -Double.infinity
    }

    public let capacity: Int
    public let overflow: OverflowPolicy
    let batchSize: Int
    private let state = Mutex(State())
    /// Wakes the writer when the queue gets an event.
    private let arrivals = Wakeup()
    private let spool: any EventSpoolStore
    private let route: @Sendable (Event) -> [String]
    private let written: @Sendable () -> Void
    private let clock: @Sendable () -> Double
    private let logger: Logger

    /// - Parameters:
    ///   - route: the sinks an event goes to (an event with none is counted and not written).
    ///   - written: called after each batch is in the spool (wakes the delivery loops).
    public init(spool: any EventSpoolStore, capacity: Int, overflow: OverflowPolicy, batchSize: Int = 512,
                route: @escaping @Sendable (Event) -> [String], written: @escaping @Sendable () -> Void = {},
                clock: @escaping @Sendable () -> Double, logger: Logger) {
        self.spool = spool
        self.capacity = max(1, capacity)
        self.overflow = overflow
        self.batchSize = max(1, batchSize)
        self.route = route
        self.written = written
        self.clock = clock
        self.logger = logger
    }

    /// Events waiting to be written.
    public var queued: Int { state.withLock { $0.queue.count } }

    @discardableResult
    public func publish(_ event: Event) -> Bool {
        enqueue(Entry(event: event, sinks: route(event), written: nil)) == nil
    }

    /// Publishes `events` (queued together, so they are written in as few transactions as the
    /// batch size allows) and returns once they are all in the spool.
    /// - Throws: `EventBusError.queueFull` for an event the queue refused (the ones before it
    ///   are published), `.stopped`, or the spool's error after the bus gave up on it.
    public func publishDurably(_ events: [Event]) async throws {
        guard !events.isEmpty else { return }
        let acknowledgement = Acknowledgement(count: events.count)
        for event in events {
            if let refused = enqueue(Entry(event: event, sinks: route(event), written: acknowledgement)) {
                acknowledgement.resume(throwing: refused)
                break
            }
        }
        try await acknowledgement.wait()
    }

    /// Queues `entry`; returns the error when it was refused (its continuation not kept).
    private func enqueue(_ entry: Entry) -> EventBusError? {
        let now = clock()
        var dropped: Entry?
        let (refused, logDrops) = state.withLock { s -> (EventBusError?, Int) in
            if s.stopped { return (.stopped, 0) }
            if s.queue.count >= capacity {
                switch overflow {
                case .dropNewest:
                    return (.queueFull, Self.countDrop(&s, now: now))
                case .dropOldest:
                    dropped = s.queue.removeFirst()
                }
            }
            s.queue.append(entry)
            return (nil, dropped == nil ? 0 : Self.countDrop(&s, now: now))
        }
        if let refused {
            if refused == .queueFull { EventMetrics.dropped(entry.event.type, reason: "queue_full") }
        } else {
            arrivals.signal()
            EventMetrics.published(entry.event.type)
        }
        if let dropped {
            EventMetrics.dropped(dropped.event.type, reason: "queue_full")
            dropped.written?.resume(throwing: EventBusError.queueFull)
        }
        if logDrops > 0 {
            logger.error("event queue full; events dropped", metadata: [
                "dropped": "\(logDrops)", "policy": "\(overflow.rawValue)", "capacity": "\(capacity)",
                "type": "\((dropped ?? entry).event.type)",
            ])
        }
        return refused
    }

    /// Counts one drop; returns how many to log now (at most one line a second).
    private static func countDrop(_ s: inout State, now: Double) -> Int {
        s.droppedSinceLog += 1
        guard now - s.lastDropLog >= 1 else { return 0 }
        defer { s.droppedSinceLog = 0 }
        s.lastDropLog = now
        return s.droppedSinceLog
    }

    /// Writes queued events to the spool until cancelled; then writes what is still queued
    /// and refuses further events. A failing spool is retried every second; its events stay
    /// queued (and count against the capacity) meanwhile.
    public func run() async {
        while !Task.isCancelled {
            let batch = await nextBatch()
            guard !batch.isEmpty else { continue }
            if !write(batch) {
                requeue(batch)
                try? await Task.sleep(for: .seconds(1))
            }
        }
        let rest = state.withLock { s -> [Entry] in
            s.stopped = true
            defer { s.queue.removeAll() }
            return Array(s.queue)
        }
        for start in stride(from: 0, to: rest.count, by: batchSize) {
            let batch = Array(rest[start..<min(rest.count, start + batchSize)])
            if !write(batch) {
                logger.error("event bus stopped with events it could not write", metadata: ["count": "\(rest.count - start)"])
                for entry in rest[start...] {
                    EventMetrics.dropped(entry.event.type, reason: "spool_failed_at_stop")
                    entry.written?.resume(throwing: EventBusError.stopped)
                }
                break
            }
        }
    }

    /// Writes `batch` in one transaction; true when written.
    private func write(_ batch: [Entry]) -> Bool {
        do {
            try spool.append(batch.map { ($0.event, $0.sinks) }, now: clock())
        } catch {
            EventMetrics.spoolErrors("append")
            logger.error("events not written to the spool; will retry", metadata: ["count": "\(batch.count)", "error": "\(error)"])
            return false
        }
        for entry in batch {
            if entry.sinks.isEmpty { EventMetrics.dropped(entry.event.type, reason: "no_sink") }
            entry.written?.resume()
        }
        written()
        EventMetrics.queued(queued)
        return true
    }

    private func requeue(_ batch: [Entry]) {
        state.withLock { s in s.queue.insert(contentsOf: batch, at: 0) }
    }

    /// Up to `batchSize` queued events; waits while there are none (returns empty when cancelled).
    private func nextBatch() async -> [Entry] {
        while queued == 0, !Task.isCancelled { await arrivals.wait() }
        return state.withLock { s in
            let count = min(batchSize, s.queue.count)
            defer { s.queue.removeFirst(count) }
            return Array(s.queue.prefix(count))
        }
    }
}
