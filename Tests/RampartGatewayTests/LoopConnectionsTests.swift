import NIOEmbedded
import RampartBalancing
import RampartCore
import Testing
@testable import RampartGateway

@Suite struct LoopConnectionsTests {
    /// A loop keeps a view of each pool it selects from; the view of a pool a reload dropped is
    /// let go once the loop meets another pool, so pools dropped and added again over many
    /// reloads do not pile up (each view holds its pool and the pool's instances).
    @Test func viewsOfDroppedPoolsAreLetGo() {
        let loop = LoopConnections(maxIdle: 4, eventLoop: EmbeddedEventLoop())
        func pool() -> Pool {
            Pool(name: "app", configuration: PoolConfiguration(instances: [InstanceConfiguration(url: "http://127.0.0.1:9000")]),
                 time: SystemTimeSource())
        }
        weak var dropped: Pool?
        var kept: Pool?
        do {
            let first = pool()
            dropped = first
            #expect(loop.select(from: first, for: SelectionInput(), at: SystemTimeSource().now())?.id == "127.0.0.1:9000")
            first.retire()
            let second = pool()
            kept = second
            #expect(loop.select(from: second, for: SelectionInput(), at: SystemTimeSource().now())?.id == "127.0.0.1:9000")
        }
        #expect(dropped == nil, "the loop still holds the dropped pool")
        #expect(kept != nil)
    }
}
