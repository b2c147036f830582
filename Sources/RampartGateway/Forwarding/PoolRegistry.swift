public import RampartBalancing
import RampartCore
import Synchronization

/// The gateway's pools by name. Pools are long-lived: a reload updates them in place, so
/// instance state (health, connections, latency) survives it.
public final class PoolRegistry: Sendable {
    private let pools = Mutex<[String: Pool]>([:])
    let time: any TimeSource

    init(time: any TimeSource) { self.time = time }

    public func pool(named name: String) -> Pool? { pools.withLock { $0[name] } }

    public var all: [Pool] { pools.withLock { $0.values.sorted { $0.name < $1.name } } }

    /// Makes the pools match `configuration`: existing ones are updated, new ones created,
    /// missing ones dropped.
    func apply(_ configuration: [String: PoolConfiguration]) {
        pools.withLock { pools in
            for (name, config) in configuration {
                if let existing = pools[name] {
                    existing.apply(config)
                } else {
                    pools[name] = Pool(name: name, configuration: config, time: time)
                }
            }
            for (name, pool) in pools where configuration[name] == nil {
                pool.retire()
                pools[name] = nil
            }
        }
    }
}
