public import RampartCore
import Synchronization

/// One configuration generation, compiled: what a request reads for its whole life. Immutable.
public final class GatewaySnapshot: Sendable {
    public let generation: Int
    public let configuration: GatewayConfiguration
    public let routes: RouteTable
    public let clientAddresses: ClientAddressResolver
    let countries: CIDRTable<String>
    let countryHeader: HTTPFieldNameBox?

    init(generation: Int, configuration: GatewayConfiguration) {
        self.generation = generation
        self.configuration = configuration
        self.routes = RouteTable(configuration.routes, pools: configuration.pools.keys.sorted())
        self.clientAddresses = ClientAddressResolver(trustedProxies: configuration.proxy.trustedProxies)
        self.countries = configuration.proxy.countryTable
        self.countryHeader = configuration.proxy.countryHeader.flatMap(HTTPFieldNameBox.init)
    }
}

/// The live configuration: requests pin the current snapshot; a reload swaps it atomically.
public final class LiveConfiguration: Sendable {
    private let current: Mutex<GatewaySnapshot>

    init(_ configuration: GatewayConfiguration) {
        current = Mutex(GatewaySnapshot(generation: 1, configuration: configuration))
    }

    public var snapshot: GatewaySnapshot { current.withLock { $0 } }

    @discardableResult
    func replace(with configuration: GatewayConfiguration) -> GatewaySnapshot {
        current.withLock { old in
            let next = GatewaySnapshot(generation: old.generation + 1, configuration: configuration)
            old = next
            return next
        }
    }
}
