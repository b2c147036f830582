#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import Logging
import Metrics
public import RampartStore
import RampartCore
import Synchronization

/// Sends alert bodies over HTTP; the gateway provides one over its HTTP client.
public protocol AlertTransport: Sendable {
    /// POSTs `body` (JSON) to `url` and returns the response status.
    func post(_ body: [UInt8], to url: String, timeout: Duration) async throws -> Int
}

/// What an alert webhook receives: one threat event and how many like it were held back
/// since the last alert for the same client and kind.
public struct ThreatAlert: Sendable, Codable, Equatable {
    public var type = "rampart.threat_alert"
    public var event: ThreatEvent
    public var suppressed: Int

    public init(event: ThreatEvent, suppressed: Int) {
        self.event = event
        self.suppressed = suppressed
    }
}

/// Delivers alerts to the webhook one at a time, each with a bounded number of tries and
/// exponential backoff between them. 2xx is delivered; 4xx other than 408 and 429 will not
/// get better and is given up at once. The queue is bounded; what it refuses is counted and
/// logged, never dropped silently.
public final class AlertDispatcher: Sendable {
    struct Job: Sendable {
        let body: [UInt8]
        let webhook: AlertWebhookConfiguration
    }

    private let transport: any AlertTransport
    private let logger: Logger
    private let stream: AsyncStream<Job>
    private let continuation: AsyncStream<Job>.Continuation
    private let waiting = Atomic<Int>(0)
    private let outcomes = Mutex<[String: Int]>([:])

    public init(transport: any AlertTransport, logger: Logger) {
        self.transport = transport
        self.logger = logger
        (stream, continuation) = AsyncStream.makeStream(of: Job.self)
    }

    /// Queues `alert` for `webhook`; false (counted as `refused`) when the queue is full.
    @discardableResult
    public func send(_ alert: ThreatAlert, to webhook: AlertWebhookConfiguration) -> Bool {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = (try? encoder.encode(alert)).map(Array.init) ?? []
        guard waiting.add(1, ordering: .relaxed).newValue <= webhook.queueLimit else {
            waiting.subtract(1, ordering: .relaxed)
            count("refused")
            logger.error("alert queue full; alert not sent", metadata: ["kind": "\(alert.event.kind)", "client": "\(alert.event.client ?? "-")"])
            return false
        }
        continuation.yield(Job(body: body, webhook: webhook))
        return true
    }

    /// Delivers queued alerts until cancelled.
    public func run() async {
        for await job in stream {
            if Task.isCancelled { break }
            await deliver(job)
            waiting.subtract(1, ordering: .relaxed)
        }
    }

    /// Alerts by outcome (`delivered`, `failed`, `refused`) since start.
    public var totals: [String: Int] { outcomes.withLock { $0 } }

    private func deliver(_ job: Job) async {
        let webhook = job.webhook
        var delay = webhook.backoff.duration
        var lastProblem = ""
        for attempt in 1...webhook.attempts {
            do {
                let status = try await transport.post(job.body, to: webhook.url, timeout: webhook.timeout.duration)
                if (200..<300).contains(status) {
                    count("delivered")
                    return
                }
                lastProblem = "status \(status)"
                if (400..<500).contains(status) && status != 408 && status != 429 { break }
            } catch {
                lastProblem = "\(error)"
            }
            if attempt < webhook.attempts {
                try? await Task.sleep(for: delay)
                delay *= 2
            }
        }
        count("failed")
        logger.error("alert not delivered", metadata: ["webhook": "\(webhook.url)", "problem": "\(lastProblem)"])
    }

    private func count(_ outcome: String) {
        outcomes.withLock { $0[outcome, default: 0] += 1 }
        Counter(label: "threat_detection_alerts_total", dimensions: [("outcome", outcome)]).increment()
    }
}
