import Synchronization

/// Metric handles made once per key (a route and status class, a policy and result, ...)
/// and reused, so the request path only looks one up and records. swift-metrics handles are
/// thread-safe but not marked `Sendable`, hence the unchecked conformances.
final class MetricHandles<Key: Hashable & Sendable, Handle>: @unchecked Sendable {
    private struct Box: @unchecked Sendable { let handle: Handle }

    private let table = Mutex<[Key: Box]>([:])
    private let make: @Sendable (Key) -> Handle

    init(_ make: @escaping @Sendable (Key) -> Handle) { self.make = make }

    subscript(_ key: Key) -> Handle {
        table.withLock { table -> Box in
            if let existing = table[key] { return existing }
            let made = Box(handle: make(key))
            table[key] = made
            return made
        }.handle
    }
}
