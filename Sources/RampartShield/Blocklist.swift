public import RampartCore
public import RampartStore
import Synchronization

/// Addresses and ranges blocked for a time (by an operator now, by detectors later), looked up
/// by longest prefix like the IP rules, kept in a `BlockStore` so a restart does not forget
/// them. Expired blocks stop applying at once and are dropped from the store when next seen.
public final class Blocklist: Sendable {
    private struct State {
        var blocks: [CIDRBlock: AddressBlock] = [:]
        var table = CIDRTable<AddressBlock>()

        mutating func rebuild() {
            table = CIDRTable()
            for block in blocks.values { table.insert(block.range, value: block) }
        }
    }

    private let state: Mutex<State>
    /// How many blocks the table holds, written with it: every request asks, and with none
    /// (the usual case) the answer needs neither the lock, which all event loops share, nor the
    /// clock.
    private let count: Atomic<Int>
    private let store: any BlockStore
    private let now: @Sendable () -> Double

    /// Loads the blocks the store holds. `now` is the wall clock in seconds since 1970.
    public init(store: any BlockStore, now: @escaping @Sendable () -> Double) throws {
        var initial = State()
        for block in try store.all() { initial.blocks[block.range] = block }
        initial.rebuild()
        self.count = Atomic(initial.blocks.count)
        self.state = Mutex(initial)
        self.store = store
        self.now = now
    }

    /// The active block covering `address`, if any.
    public func block(covering address: IPAddress) -> AddressBlock? {
        guard count.load(ordering: .acquiring) > 0 else { return nil }
        let found = state.withLock { $0.table.longestMatch(address) }
        guard let found else { return nil }
        let at = now()
        if found.isActive(at: at) { return found }
        expire(found.range, at: at)
        // A wider block may still apply once the expired narrower one is gone.
        return state.withLock { $0.table.longestMatch(address) }.flatMap { $0.isActive(at: at) ? $0 : nil }
    }

    /// Blocks `range` for `duration` seconds (nil: until removed), replacing an earlier block of
    /// the same range.
    @discardableResult
    public func add(_ range: CIDRBlock, reason: String, duration: Double?) throws -> AddressBlock {
        let at = now()
        let block = AddressBlock(range: range, reason: reason, created: at, expires: duration.map { at + $0 })
        try store.put(block)
        state.withLock { s in
            s.blocks[range] = block
            s.rebuild()
            count.store(s.blocks.count, ordering: .releasing)
        }
        return block
    }

    /// Removes the block of exactly `range`; false when there was none.
    @discardableResult
    public func remove(_ range: CIDRBlock) throws -> Bool {
        let existed = state.withLock { $0.blocks[range] != nil }
        guard existed else { return false }
        try store.remove(range)
        state.withLock { s in
            s.blocks[range] = nil
            s.rebuild()
            count.store(s.blocks.count, ordering: .releasing)
        }
        return true
    }

    /// The active blocks, oldest first.
    public var active: [AddressBlock] {
        let at = now()
        return state.withLock { Array($0.blocks.values) }.filter { $0.isActive(at: at) }.sorted { $0.created < $1.created }
    }

    private func expire(_ range: CIDRBlock, at time: Double) {
        let removed = state.withLock { s -> Bool in
            guard let block = s.blocks[range], !block.isActive(at: time) else { return false }
            s.blocks[range] = nil
            s.rebuild()
            count.store(s.blocks.count, ordering: .releasing)
            return true
        }
        if removed { try? store.remove(range) }
    }
}
