import Metrics
import Synchronization

/// The event metrics, by the names docs/events.md lists.
enum EventMetrics {
    /// Counters by type, made once: publishing runs on the request path. swift-metrics
    /// handles are thread-safe but not marked `Sendable`.
    private struct Handles: @unchecked Sendable {
        var published: [String: Counter] = [:]
    }

    private static let handles = Mutex(Handles())

    /// Event types become label values, and the application names its own: past this many
    /// distinct types, the rest are counted as `other` so the series stay bounded.
    static let typeLabels = 200

    /// The label `type` is counted under: itself while there is room or it has a counter, else `other`.
    private static func typeLabel(_ type: String, in h: Handles) -> String {
        h.published[type] != nil || h.published.count < typeLabels ? type : "other"
    }

    static func published(_ type: String) {
        handles.withLock { h -> Counter in
            let label = typeLabel(type, in: h)
            if let counter = h.published[label] { return counter }
            let counter = Counter(label: "events_published_total", dimensions: [("type", label)])
            h.published[label] = counter
            return counter
        }.increment()
    }

    /// The type labels in use.
    static var publishedLabels: Set<String> { handles.withLock { Set($0.published.keys) } }

    static func dropped(_ type: String, reason: String) {
        let label = handles.withLock { typeLabel(type, in: $0) }
        Counter(label: "events_dropped_total", dimensions: [("type", label), ("reason", reason)]).increment()
    }

    static func spoolErrors(_ operation: String) {
        Counter(label: "events_spool_errors_total", dimensions: [("operation", operation)]).increment()
    }

    static func delivered(sink: String, count: Int) {
        guard count > 0 else { return }
        Counter(label: "events_delivered_total", dimensions: [("sink", sink)]).increment(by: count)
    }

    static func failed(sink: String, kind: String) {
        Counter(label: "events_delivery_failures_total", dimensions: [("sink", sink), ("kind", kind)]).increment()
    }

    static func deadLettered(sink: String) {
        Counter(label: "events_dead_letters_total", dimensions: [("sink", sink)]).increment()
    }

    static func replayed(_ count: Int) {
        guard count > 0 else { return }
        Counter(label: "events_replayed_total").increment(by: count)
    }

    /// From publication to delivery.
    static func latency(sink: String, seconds: Double) {
        Timer(label: "events_delivery_latency_seconds", dimensions: [("sink", sink)]).recordNanoseconds(Int64(max(0, seconds) * 1e9))
    }

    /// One batch handed to a sink.
    static func attempt(sink: String, seconds: Double) {
        Timer(label: "events_delivery_duration_seconds", dimensions: [("sink", sink)]).recordNanoseconds(Int64(max(0, seconds) * 1e9))
    }

    static func depth(sink: String, _ depth: Int) {
        Gauge(label: "events_spool_depth", dimensions: [("sink", sink)]).record(depth)
    }

    static func queued(_ count: Int) {
        Gauge(label: "events_queue_depth").record(count)
    }
}

extension EventMetrics {
    static func kafkaRetried(topic: String, attempt: Int) {
        Counter(label: "kafka_dlq_retries_total", dimensions: [("topic", topic), ("attempt", String(attempt))]).increment()
    }

    static func kafkaDeadLettered(topic: String) {
        Counter(label: "kafka_dlq_messages_total", dimensions: [("topic", topic)]).increment()
    }

    static func kafkaReplayed(topic: String, _ count: Int) {
        guard count > 0 else { return }
        Counter(label: "kafka_dlq_replayed_total", dimensions: [("topic", topic)]).increment(by: count)
    }
}
