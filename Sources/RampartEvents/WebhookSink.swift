public import AsyncHTTPClient
import Crypto
import NIOCore
import NIOHTTP1
public import RampartCore

/// POSTs each event as JSON (`Event.json`) to a URL, signed so the receiver can tell it came
/// from the gateway and was not replayed:
///
/// ```
/// Rampart-Signature: t=1763856000,v1=<hex HMAC-SHA256(secret, "1763856000." + body)>
/// Rampart-Event-Id: 0d9f...            (receivers drop repeats by it: delivery is at least once)
/// Rampart-Event-Type: threat.detected
/// ```
///
/// 2xx is delivered. 5xx, 408, 429, timeouts and connection failures are retried (honouring
/// `Retry-After`); any other status is permanent and makes a dead letter at once.
public struct WebhookSink: EventSink {
    public let name: String
    public let url: String
    let secret: [UInt8]?
    let timeout: Duration
    let headers: [(String, String)]
    let delivery: OrderedDelivery
    let client: HTTPClient
    let now: @Sendable () -> Double

    public init(name: String, url: String, secret: String?, timeout: Duration = .seconds(10), concurrency: Int = 8,
                headers: [String: String] = [:], client: HTTPClient, now: @escaping @Sendable () -> Double) {
        self.name = name
        self.url = url
        self.secret = secret.map { Array($0.utf8) }
        self.timeout = timeout
        self.headers = headers.sorted { $0.key < $1.key }
        self.delivery = OrderedDelivery(concurrency: concurrency)
        self.client = client
        self.now = now
    }

    /// The `Rampart-Signature` value for `body` sent at `timestamp` (whole seconds).
    public static func signature(body: some Collection<UInt8>, timestamp: Int, secret: some Collection<UInt8>) -> String {
        var message = Array("\(timestamp).".utf8)
        message.append(contentsOf: body)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: Array(secret)))
        return "t=\(timestamp),v1=" + lowercaseHex(mac)
    }

    public func deliver(_ events: [Event]) async -> [DeliveryOutcome] {
        await delivery.deliver(events) { event in await self.send(event) }
    }

    func send(_ event: Event) async -> DeliveryOutcome {
        let body = Array(event.json.jsonText.utf8)
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "rampart-events")
        request.headers.add(name: "Rampart-Event-Id", value: event.id)
        request.headers.add(name: "Rampart-Event-Type", value: event.type)
        if let secret {
            request.headers.add(name: "Rampart-Signature", value: Self.signature(body: body, timestamp: Int(now()), secret: secret))
        }
        for (header, value) in headers { request.headers.add(name: header, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let response = try await client.execute(request, timeout: .nanoseconds(timeout.nanoseconds))
            // Read (a little of) the answer so the connection can be reused.
            _ = try? await response.body.collect(upTo: 64 * 1024)
            let status = Int(response.status.code)
            if (200..<300).contains(status) { return .delivered }
            let retryable = status >= 500 || status == 408 || status == 429
            return .failed(DeliveryFailure(kind: "http_\(status)", message: "HTTP \(status) from \(url)", retryable: retryable,
                                           retryAfter: response.headers.first(name: "Retry-After").flatMap(Self.retryAfter)))
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
            return .failed(DeliveryFailure(kind: "timeout", message: "no answer from \(url) within \(timeout)", retryable: true))
        } catch {
            return .failed(DeliveryFailure(kind: "connect", message: "\(url): \(error)", retryable: true))
        }
    }

    /// `Retry-After` in seconds (the HTTP-date form is not used by webhook receivers we know).
    static func retryAfter(_ value: String) -> Double? {
        Double(String(value[...].trimmingASCIIWhitespace())).flatMap { $0 >= 0 ? $0 : nil }
    }
}

