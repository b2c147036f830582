public import RampartCore

/// Why one delivery failed, and whether trying again can help.
public struct DeliveryFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// A short label for metrics: `http_503`, `timeout`, `connect`, `broker`, ...
    public var kind: String
    /// What an operator reads in the dead-letter list.
    public var message: String
    /// False for failures another attempt cannot fix (a 400, a message too large).
    public var retryable: Bool
    /// The receiver's own wait (a `Retry-After`), in seconds; the next attempt waits at least this.
    public var retryAfter: Double?

    public init(kind: String, message: String, retryable: Bool, retryAfter: Double? = nil) {
        self.kind = kind
        self.message = message
        self.retryable = retryable
        self.retryAfter = retryAfter
    }

    public var description: String { message }
}

/// What became of one event handed to a sink.
public enum DeliveryOutcome: Sendable, Equatable {
    case delivered
    case failed(DeliveryFailure)
    /// Not tried, because an earlier event of its partition key failed in the same batch.
    case notAttempted
}

/// Where events go: a webhook, Kafka, the log.
///
/// `deliver` gets a batch in spool order and answers one outcome per event, in the same
/// order. Events of one partition key must reach the receiver in the order given; once one of
/// a key fails, the later ones of that key are `.notAttempted` (they are handed out again after
/// it). `OrderedDelivery` does that for sinks that send one event at a time.
public protocol EventSink: Sendable {
    var name: String { get }
    func deliver(_ events: [Event]) async -> [DeliveryOutcome]
}

/// Sends a batch one event at a time: different partition keys (and events without one)
/// concurrently, at most `concurrency` at once, each key's events one after another,
/// stopping a key at its first failure.
public struct OrderedDelivery: Sendable {
    public let concurrency: Int

    public init(concurrency: Int) { self.concurrency = max(1, concurrency) }

    public func deliver(_ events: [Event], _ send: @escaping @Sendable (Event) async -> DeliveryOutcome) async -> [DeliveryOutcome] {
        // Lanes: the indices of one key's events in order; an event without a key is a lane alone.
        var lanes: [[Int]] = []
        var laneOfKey: [String: Int] = [:]
        for (index, event) in events.enumerated() {
            if let key = event.partitionKey, let lane = laneOfKey[key] {
                lanes[lane].append(index)
            } else {
                if let key = event.partitionKey { laneOfKey[key] = lanes.count }
                lanes.append([index])
            }
        }
        var outcomes = [DeliveryOutcome](repeating: .notAttempted, count: events.count)
        await withTaskGroup(of: [(Int, DeliveryOutcome)].self) { group in
            var next = 0
            func start() {
                let lane = lanes[next].map { ($0, events[$0]) }
                next += 1
                group.addTask {
                    var results: [(Int, DeliveryOutcome)] = []
                    for (index, event) in lane {
                        let outcome = await send(event)
                        results.append((index, outcome))
                        if outcome != .delivered { break }
                    }
                    return results
                }
            }
            while next < lanes.count && next < concurrency { start() }
            for await results in group {
                for (index, outcome) in results { outcomes[index] = outcome }
                if next < lanes.count { start() }
            }
        }
        return outcomes
    }
}
