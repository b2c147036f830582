public import Logging
import RampartCore
public import RampartStore
import Synchronization

/// One sink as delivery runs it: which events it takes and how its failures are retried.
public struct SinkRoute: Sendable {
    public var sink: any EventSink
    public var types: EventTypeFilter
    public var retry: RetryPolicy
    /// Events handed to the sink at once.
    public var batchSize: Int

    public init(sink: any EventSink, types: EventTypeFilter = .all, retry: RetryPolicy = RetryPolicy(), batchSize: Int = 256) {
        self.sink = sink
        self.types = types
        self.retry = retry
        self.batchSize = max(1, batchSize)
    }
}

/// Event delivery as a whole: the bus in front of the spool, and one loop per sink that takes
/// due deliveries from the spool, hands them to the sink, and records what became of them:
/// delivered (deleted), failed (tried again after the retry policy's delay, or the receiver's
/// `Retry-After` if longer), or a dead letter (a permanent failure, or the attempts used up).
/// Delivery is at least once: an event handed to a sink whose outcome could not be recorded
/// (a crash) is sent again.
public final class EventDelivery: Sendable {
    public let bus: EventBus
    public let spool: any EventSpoolStore
    public let routes: [SinkRoute]
    private let wakeups: [String: Wakeup]
    private let clock: @Sendable () -> Double
    private let logger: Logger

    public init(spool: any EventSpoolStore, routes: [SinkRoute], queueCapacity: Int = 10_000, overflow: OverflowPolicy = .dropNewest,
                clock: @escaping @Sendable () -> Double, logger: Logger) {
        self.spool = spool
        self.routes = routes
        self.clock = clock
        self.logger = logger
        let wakeups = Dictionary(uniqueKeysWithValues: routes.map { ($0.sink.name, Wakeup()) })
        self.wakeups = wakeups
        self.bus = EventBus(spool: spool, capacity: queueCapacity, overflow: overflow,
                            route: { event in routes.filter { $0.types.accepts(event.type) }.map(\.sink.name) },
                            written: { for wakeup in wakeups.values { wakeup.signal() } },
                            clock: clock, logger: logger)
    }

    /// Runs the bus and every sink's loop until cancelled; then writes what the bus still
    /// holds. Deliveries in flight when it stops are sent again after a restart.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.bus.run() }
            for route in routes {
                group.addTask { await self.deliver(route) }
            }
        }
    }

    // MARK: - Dead letters

    public func deadLetters(_ filter: DeadLetterFilter, after: Int64, limit: Int) throws -> [SpooledDelivery] {
        try spool.deadLetters(filter, after: after, limit: limit)
    }

    /// Makes matching dead letters pending again; returns how many.
    public func replay(_ filter: DeadLetterFilter) throws -> Int {
        let count = try spool.replay(filter, now: clock())
        EventMetrics.replayed(count)
        if let sink = filter.sink { wakeups[sink]?.signal() } else { for wakeup in wakeups.values { wakeup.signal() } }
        return count
    }

    public func purge(_ filter: DeadLetterFilter) throws -> Int {
        try spool.purge(filter)
    }

    // MARK: - The loop of one sink

    private func deliver(_ route: SinkRoute) async {
        let name = route.sink.name
        let wakeup = wakeups[name]!
        var generator = SystemRandomNumberGenerator()
        var failedRounds = 0
        var depthReported = -Double.infinity
        while !Task.isCancelled {
            let now = clock()
            if now - depthReported >= 1 {
                depthReported = now
                if let depth = try? spool.depth(sink: name) { EventMetrics.depth(sink: name, depth) }
            }
            let batch: [SpooledDelivery]
            do {
                batch = try spool.due(sink: name, now: now, limit: route.batchSize)
            } catch {
                EventMetrics.spoolErrors("due")
                logger.error("event spool not readable; will retry", metadata: ["sink": "\(name)", "error": "\(error)"])
                await wakeup.wait(upTo: .seconds(1))
                continue
            }
            if batch.isEmpty {
                let next = (try? spool.nextDue(sink: name, after: now)) ?? nil
                let wait = min(1, max(0.001, (next ?? now + 1) - now))
                await wakeup.wait(upTo: .milliseconds(Int64(wait * 1000)))
                continue
            }
            let started = ContinuousClock.now
            let outcomes = await route.sink.deliver(batch.map(\.event))
            EventMetrics.attempt(sink: name, seconds: (ContinuousClock.now - started).secondsValue)
            let settled = clock()
            var settlements: [DeliverySettlement] = []
            var delivered = 0
            var failures = 0
            for (delivery, outcome) in zip(batch, outcomes) {
                switch outcome {
                case .delivered:
                    delivered += 1
                    settlements.append(.delivered(delivery.sequence))
                    EventMetrics.latency(sink: name, seconds: settled - delivery.event.time)
                case .notAttempted:
                    break
                case .failed(let failure):
                    failures += 1
                    EventMetrics.failed(sink: name, kind: failure.kind)
                    let delay = failure.retryable ? route.retry.delay(afterFailures: delivery.attempts + 1, using: &generator) : nil
                    if let delay {
                        let wait = max(delay, min(failure.retryAfter ?? 0, route.retry.maxDelay.seconds))
                        settlements.append(.failed(delivery.sequence, error: failure.message, retryAt: settled + wait))
                    } else {
                        EventMetrics.deadLettered(sink: name)
                        settlements.append(.dead(delivery.sequence, error: failure.message))
                        logger.warning("event is a dead letter", metadata: [
                            "sink": "\(name)", "event": "\(delivery.event.id)", "type": "\(delivery.event.type)",
                            "attempts": "\(delivery.attempts + 1)", "error": "\(failure.message)",
                        ])
                    }
                }
            }
            if outcomes.count != batch.count {
                logger.error("sink answered \(outcomes.count) outcomes for \(batch.count) events; the rest are sent again", metadata: ["sink": "\(name)"])
            }
            do {
                try spool.settle(settlements, sink: name, now: settled)
            } catch {
                // Nothing recorded: the batch is sent again (at least once).
                EventMetrics.spoolErrors("settle")
                logger.error("delivery outcomes not recorded; the batch will be sent again", metadata: ["sink": "\(name)", "error": "\(error)"])
            }
            EventMetrics.delivered(sink: name, count: delivered)
            // A sink that fails everything (a receiver or broker down) is given a pause that
            // grows like a retry's, rather than being handed every newly published event
            // meanwhile; new events do not cut it short.
            if delivered == 0 && failures > 0 {
                failedRounds += 1
                let pause = route.retry.ceiling(afterFailures: failedRounds)
                try? await Task.sleep(for: .milliseconds(Int64(pause * 1000)))
            } else {
                failedRounds = 0
            }
        }
    }
}
