import AsyncHTTPClient
import Crypto
import Foundation
import RampartCore
import RampartEvents
import RampartTesting
import Testing

@Suite("Webhook sink")
struct WebhookSinkTests {
    static let secret = "whsec-test-1"

    func withSink<T: Sendable>(_ url: String, timeout: Duration = .seconds(5), _ body: (WebhookSink) async throws -> T) async throws -> T {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let sink = WebhookSink(name: "hook", url: url, secret: Self.secret, timeout: timeout, headers: ["X-Team": "quiz"], client: client,
                               now: { Date().timeIntervalSince1970 })
        do {
            let result = try await body(sink)
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// Checks a signature the way a receiver would: recompute over "t." + body with the shared secret.
    func verify(_ header: String?, body: [UInt8]) -> Bool {
        guard let header, let t = header.split(separator: ",").first(where: { $0.hasPrefix("t=") })?.dropFirst(2),
              let v1 = header.split(separator: ",").first(where: { $0.hasPrefix("v1=") })?.dropFirst(3) else { return false }
        let mac = HMAC<SHA256>.authenticationCode(for: Array("\(t).".utf8) + body, using: SymmetricKey(data: Array(Self.secret.utf8)))
        return lowercaseHex(mac) == String(v1) && abs(Double(t)! - Date().timeIntervalSince1970) < 60
    }

    @Test("each event is POSTed as JSON, signed over timestamp and body, with its id and type")
    func signed() async throws {
        let receiver = WebhookReceiver()
        try await receiver.serve { url in
            try await withSink(url) { sink in
                let events = [testEvent("a", key: "k"), testEvent("b", type: "threat.detected")]
                #expect(await sink.deliver(events) == [.delivered, .delivered])
            }
        }
        let received = receiver.received
        #expect(received.count == 2)
        for request in received {
            #expect(verify(request.headers["rampart-signature"], body: request.body))
            #expect(request.headers["content-type"] == "application/json" && request.headers["x-team"] == "quiz")
            let event = try #require(Event(json: try JSONValue(parsing: String(decoding: request.body, as: UTF8.self))))
            #expect(request.headers["rampart-event-id"] == event.id && request.headers["rampart-event-type"] == event.type)
        }
        var tampered = received[0].body
        tampered[tampered.count - 2] ^= 1
        #expect(!verify(received[0].headers["rampart-signature"], body: tampered), "a changed body fails the check")
    }

    @Test("5xx, 408 and 429 are retryable, other 4xx permanent, Retry-After is passed on")
    func statuses() async throws {
        let statuses = ["s500": 500, "s503": 503, "s408": 408, "s429": 429, "s400": 400, "s404": 404, "s410": 410, "s200": 200]
        let receiver = WebhookReceiver { body, _ in
            let id = statuses.keys.first { String(decoding: body, as: UTF8.self).contains("\"\($0)\"") }!
            return .init(status: statuses[id]!, headers: id == "s429" ? ["Retry-After": "7"] : [:])
        }
        try await receiver.serve { url in
            try await withSink(url) { sink in
                let ids = statuses.keys.sorted()
                let outcomes = await sink.deliver(ids.map { testEvent($0) })
                for (id, outcome) in zip(ids, outcomes) {
                    let status = statuses[id]!
                    if status == 200 {
                        #expect(outcome == .delivered)
                        continue
                    }
                    guard case .failed(let failure) = outcome else {
                        Issue.record("\(id): \(outcome)")
                        continue
                    }
                    #expect(failure.kind == "http_\(status)")
                    #expect(failure.retryable == (status >= 500 || status == 408 || status == 429), "\(id)")
                    #expect(failure.retryAfter == (status == 429 ? 7 : nil))
                }
            }
        }
    }

    @Test("a receiver slower than the timeout, and one that is not there, are retryable failures")
    func timeoutAndRefused() async throws {
        let receiver = WebhookReceiver { _, _ in .init(delay: .seconds(1)) }
        try await receiver.serve { url in
            try await withSink(url, timeout: .milliseconds(300)) { sink in
                let outcome = await sink.deliver([testEvent("slow")])
                #expect(outcome == [.failed(DeliveryFailure(kind: "timeout", message: "no answer from \(url) within 0.3 seconds", retryable: true))])
            }
        }
        // A port nobody listens on: the receiver above has stopped.
        try await withSink(try await closedPortURL() + "/hook") { sink in
            let outcome = await sink.deliver([testEvent("nobody")])
            guard case .failed(let failure)? = outcome.first else { Issue.record("\(outcome)"); return }
            #expect(failure.retryable && failure.kind == "connect")
        }
    }

    @Test("through delivery: a receiver failing with 503 twice gets the event on the third try, in order per key")
    func endToEnd() async throws {
        let receiver = WebhookReceiver { _, previous in .init(status: previous < 2 ? 503 : 204) }
        try await receiver.serve { url in
            try await withSink(url) { sink in
                let delivery = EventDelivery(spool: try memorySpool(), routes: [SinkRoute(sink: sink, retry: fast)],
                                             clock: { Date().timeIntervalSince1970 }, logger: quietLogger)
                try await running(delivery) {
                    try await delivery.bus.publishDurably((0..<5).map { testEvent("o\($0)", key: "one") })
                    #expect(await waitUntil { receiver.received.count == 15 })
                }
            }
        }
        let order = receiver.received.compactMap { Event(json: try! JSONValue(parsing: String(decoding: $0.body, as: UTF8.self)))?.id }
        #expect(order == (0..<5).flatMap { Array(repeating: "o\($0)", count: 3) })
    }
}
