public import RampartCore

extension Event {
    /// The event as sinks send it and the admin API shows it:
    /// `{"id", "type", "time", "source", "partitionKey", "data"}` (no `partitionKey` without one).
    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "id": .string(id), "type": .string(type), "time": .number(time), "source": .string(source), "data": payload,
        ]
        if let partitionKey { object["partitionKey"] = .string(partitionKey) }
        return .object(object)
    }

    /// Reads what `json` wrote; nil when a required member is missing or of the wrong type.
    public init?(json: JSONValue) {
        guard case .object(let object) = json, case .string(let id)? = object["id"], case .string(let type)? = object["type"],
              case .number(let time)? = object["time"], case .string(let source)? = object["source"] else { return nil }
        var key: String?
        if case .string(let value)? = object["partitionKey"] { key = value }
        self.init(id: id, type: type, time: time, source: source, partitionKey: key, payload: object["data"] ?? .null)
    }
}

/// Which event types a sink takes: exact types (`flag.exposure`), prefixes ending in `*`
/// (`threat.*`), or `*` for all.
public struct EventTypeFilter: Sendable, Equatable {
    public let patterns: [String]

    public init(_ patterns: [String]) { self.patterns = patterns }

    public static let all = EventTypeFilter(["*"])

    public func accepts(_ type: String) -> Bool {
        patterns.contains { pattern in
            pattern.hasSuffix("*") ? type.hasPrefix(pattern.dropLast()) : type == pattern
        }
    }
}
