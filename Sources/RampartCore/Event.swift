/// One thing that happened, as every module reports it to the event bus: a threat event, an
/// audit record, an alert, a flag exposure, an analytics event, a deployment change.
public struct Event: Sendable, Equatable {
    /// Unique per event; consumers drop duplicates by it (delivery is at least once).
    public var id: String
    /// What happened, dotted: `threat.detected`, `flag.exposure`, `audit.flag_changed`.
    public var type: String
    /// Wall-clock seconds since 1970.
    public var time: Double
    /// Who reported it: `rampart/shield`, `rampart/flags`, ...
    public var source: String
    /// Events with the same key are delivered in the order they were published; nil puts the
    /// event in a partition of its own.
    public var partitionKey: String?
    public var payload: JSONValue

    /// - Parameter id: a new random one (`RequestID.make()`) unless the publisher has its own.
    public init(id: String = RequestID.make(), type: String, time: Double, source: String, partitionKey: String? = nil, payload: JSONValue) {
        self.id = id
        self.type = type
        self.time = time
        self.source = source
        self.partitionKey = partitionKey
        self.payload = payload
    }
}

/// Where modules hand their events: the gateway's event bus, or nothing. Publishing never
/// waits; a refused event (a full queue) is counted and logged by the bus, never dropped
/// silently, and reported to the caller.
public protocol EventPublishing: Sendable {
    /// Returns false when the event was refused.
    @discardableResult
    func publish(_ event: Event) -> Bool
}
