import Foundation
import Hummingbird
import HTTPTypes
import RampartCore
import RampartEvents
import RampartStore

/// `/api/system/events`: the sinks with their pending deliveries, and the dead letters of the
/// embedded spool: listed (filtered by sink, type, error or sequence, paged), replayed, purged.
struct EventsAdmin {
    let runtime: EventsRuntime?

    static let usage = "{\"action\": \"publish\", \"events\": [...]} or {\"action\": \"replay|purge\", \"sink\": ..., \"type\": ..., \"error\": ..., \"sequence\": N} or {\"action\": \"replay|purge\", \"all\": true}"

    func register(on router: Router<BasicRequestContext>) {
        router.get("/api/system/events") { request, _ -> Response in
            guard let runtime else { return notConfigured() }
            let parameters = request.uri.queryParameters
            var filter = DeadLetterFilter(sink: parameters.get("sink"), type: parameters.get("type"), error: parameters.get("error"))
            let limit: Int, after: Int64
            do throws(BadParameter) {
                filter.sequence = try parameters.integer("sequence", in: 1...Int64.max, expected: "expected a positive integer")
                limit = Int(try parameters.integer("limit", in: 1...500, expected: "expected 1 to 500") ?? 50)
                after = try parameters.integer("after", in: 0...Int64.max, expected: "expected a sequence") ?? 0
            } catch {
                return errorAnswer(.badRequest, error.message)
            }
            let delivery = runtime.delivery
            do {
                let letters = try delivery.deadLetters(filter, after: after, limit: limit)
                let sinks: [JSONValue] = try delivery.routes.map { route in
                    .object(["name": .string(route.sink.name), "types": .array(route.types.patterns.map(JSONValue.string)),
                             "pending": .number(Double(try delivery.spool.depth(sink: route.sink.name)))])
                }
                var answer: [String: JSONValue] = [
                    "sinks": .array(sinks), "queued": .number(Double(delivery.bus.queued)),
                    "deadLetters": .array(letters.map(Self.describe)),
                ]
                // Pass as `after` for the next page; absent on the last page.
                if letters.count == limit, let last = letters.last { answer["nextAfter"] = .number(Double(last.sequence)) }
                return jsonResponse(.object(answer))
            } catch {
                return errorAnswer(.internalServerError, "the event spool failed: \(error)")
            }
        }
        router.post("/api/system/events") { request, _ -> Response in
            guard let runtime else { return notConfigured() }
            let body = try await request.body.collect(upTo: Self.maxBody)
            let document: JSONValue
            do {
                document = try JSONValue(parsing: Array(body.readableBytesView))
            } catch {
                return errorAnswer(.badRequest, "invalid JSON (\(error)): expected \(Self.usage)")
            }
            if document.objectValue?["action"]?.stringValue == "publish" {
                return await publish(document, to: runtime)
            }
            let command: DeadLetterCommand
            do {
                command = try JSONDecoder().decode(DeadLetterCommand.self, from: Data(body.readableBytesView))
            } catch {
                return errorAnswer(.badRequest, "expected \(Self.usage)")
            }
            let filter = DeadLetterFilter(sink: command.sink, type: command.type, error: command.error, sequence: command.sequence)
            guard command.all == true || filter != DeadLetterFilter() else {
                return errorAnswer(.badRequest, "name which dead letters (sink, type, error or sequence), or all: true; expected \(Self.usage)")
            }
            guard command.all != true || filter == DeadLetterFilter() else {
                return errorAnswer(.badRequest, "all: true takes no filter; expected \(Self.usage)")
            }
            do {
                switch command.action {
                case .replay: return jsonResponse(["replayed": try runtime.delivery.replay(filter)])
                case .purge: return jsonResponse(["purged": try runtime.delivery.purge(filter)])
                }
            } catch {
                return errorAnswer(.internalServerError, "the event spool failed: \(error)")
            }
        }
    }

    static let maxBody = 4 << 20
    static let maxPublished = 1_000

    /// `{"action": "publish", "events": [{"type": ..., "data": ..., "id"?, "source"?, "partitionKey"?, "time"?}]}`:
    /// the application's own events, through the same bus. Answers 202 once every event is in
    /// the spool (acknowledged: it survives a crash from then on), 503 when the queue is full
    /// (the events before the refused one are published; publishing again with the same ids is safe).
    private func publish(_ document: JSONValue, to runtime: EventsRuntime) async -> Response {
        guard let list = document.objectValue?["events"]?.arrayValue, !list.isEmpty, list.count <= Self.maxPublished else {
            return errorAnswer(.badRequest, "events: expected a list of 1 to \(Self.maxPublished) events")
        }
        var events: [Event] = []
        let now = wallClockSeconds()
        for (index, item) in list.enumerated() {
            guard let fields = item.objectValue else { return errorAnswer(.badRequest, "events[\(index)]: expected an object") }
            let unknown = Set(fields.keys).subtracting(["id", "type", "source", "partitionKey", "time", "data"])
            if let key = unknown.sorted().first { return errorAnswer(.badRequest, "events[\(index)].\(key): unknown member") }
            guard let type = fields["type"]?.stringValue, !type.isEmpty, type.utf8.count <= 200 else {
                return errorAnswer(.badRequest, "events[\(index)].type: expected a non-empty string of at most 200 bytes")
            }
            var id = RequestID.make()
            if let given = fields["id"] {
                guard let text = given.stringValue, RequestID.isAcceptable(text) else {
                    return errorAnswer(.badRequest, "events[\(index)].id: expected 1 to 128 of A-Z a-z 0-9 - _ . :")
                }
                id = text
            }
            var time = now
            if let given = fields["time"] {
                guard let seconds = given.numberValue, seconds > 0 else { return errorAnswer(.badRequest, "events[\(index)].time: expected seconds since 1970") }
                time = seconds
            }
            let source = fields["source"]?.stringValue ?? "api"
            if fields["source"] != nil && fields["source"]?.stringValue == nil { return errorAnswer(.badRequest, "events[\(index)].source: expected a string") }
            let key = fields["partitionKey"]?.stringValue
            if fields["partitionKey"] != nil && key == nil { return errorAnswer(.badRequest, "events[\(index)].partitionKey: expected a string") }
            events.append(Event(id: id, type: type, time: time, source: source, partitionKey: key, payload: fields["data"] ?? .null))
        }
        do {
            try await runtime.delivery.bus.publishDurably(events)
        } catch EventBusError.queueFull {
            return errorAnswer(.serviceUnavailable, "the event queue is full; publish again (same ids are not spooled twice)")
        } catch {
            return errorAnswer(.serviceUnavailable, "events not accepted: \(error)")
        }
        return jsonResponse(["published": events.count], status: .accepted)
    }

    static func describe(_ letter: SpooledDelivery) -> JSONValue {
        var fields: [String: JSONValue] = [
            "sequence": .number(Double(letter.sequence)), "sink": .string(letter.sink), "attempts": .number(Double(letter.attempts)),
            "event": letter.event.json,
        ]
        if let error = letter.lastError { fields["lastError"] = .string(error) }
        if let first = letter.firstFailure { fields["firstFailure"] = .number(first) }
        return .object(fields)
    }

    private func notConfigured() -> Response {
        errorAnswer(.notFound, "event delivery is not configured (add an events section)")
    }
}

/// `POST /api/system/events`.
struct DeadLetterCommand: Codable, Sendable {
    enum Action: String, Codable, Sendable { case replay, purge }
    var action: Action
    var sink: String?
    var type: String?
    var error: String?
    var sequence: Int64?
    var all: Bool?
}
