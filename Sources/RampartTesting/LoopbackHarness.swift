public import Logging
public import RampartGateway
public import RampartBalancing
import ServiceLifecycle
import Synchronization

/// Runs real `rampart echo` instances and a gateway on 127.0.0.1, port 0, for integration
/// tests; everything stops when the body returns.
public struct LoopbackHarness: Sendable {
    public static let logger: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return logger
    }()

    /// A running echo instance; `stop()` takes it down (a dead upstream) mid-test.
    public final class Upstream: Sendable {
        public let name: String
        public let port: Int
        public let server: EchoServer
        let group: ServiceGroup
        let task: Task<Void, Never>

        init(name: String, port: Int, server: EchoServer, group: ServiceGroup, task: Task<Void, Never>) {
            self.name = name
            self.port = port
            self.server = server
            self.group = group
            self.task = task
        }

        public var url: String { "http://127.0.0.1:\(port)" }

        /// Stops as a terminated `rampart echo` does: the listener closes, idle connections are
        /// closed, requests in flight finish (within two seconds). Cancelling the server's task
        /// instead would only half-close its connections, leaving a kept-alive one open and
        /// deaf: a request sent on it would wait for the gateway's first-byte timeout.
        public func stop() async {
            await group.triggerGracefulShutdown()
            await task.value
        }
    }

    /// Starts an echo instance (on `port`, or a free one) and waits until it listens.
    public static func startEcho(name: String, port: Int = 0, delay: Duration = .zero, failRate: Double = 0) async -> Upstream {
        let server = EchoServer(options: .init(name: name, delay: delay, failRate: failRate))
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = server.application(port: port, logger: logger) { port in continuation.yield(port) }
        var configuration = ServiceGroupConfiguration(services: [app], logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(2)
        let group = ServiceGroup(configuration: configuration)
        let task = Task { _ = try? await group.run() }
        var iterator = ports.makeAsyncIterator()
        let port = await iterator.next() ?? 0
        return Upstream(name: name, port: port, server: server, group: group, task: task)
    }

    /// Runs a gateway for the duration of `body`, then shuts it down.
    public static func withGateway<T: Sendable>(
        _ configuration: GatewayConfiguration, configurationPath: String? = nil,
        _ body: @Sendable (Gateway, _ trafficPort: Int, _ adminPort: Int) async throws -> T
    ) async throws -> T {
        try await withGateways([configuration], configurationPath: configurationPath) { running in
            try await body(running[0].gateway, running[0].trafficPort, running[0].adminPort)
        }
    }

    /// A running gateway and its ports.
    public struct RunningGateway: Sendable {
        public let gateway: Gateway
        public let trafficPort: Int
        public let adminPort: Int
    }

    /// Runs one gateway per configuration (replicas, when they share a Redis) for the
    /// duration of `body`, then shuts them all down.
    public static func withGateways<T: Sendable>(
        _ configurations: [GatewayConfiguration], configurationPath: String? = nil,
        _ body: @Sendable ([RunningGateway]) async throws -> T
    ) async throws -> T {
        let gateways = try configurations.map { configuration in
            var configuration = configuration
            configuration.listeners.traffic.address = "127.0.0.1:0"
            configuration.listeners.admin.address = "127.0.0.1:0"
            configuration.log.accessLog = false
            return try Gateway(configuration: configuration, configurationPath: configurationPath, logger: logger)
        }
        let group = ServiceGroup(configuration: .init(services: gateways, logger: logger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var running: [RunningGateway] = []
            for gateway in gateways {
                running.append(RunningGateway(gateway: gateway, trafficPort: await gateway.trafficPort.port, adminPort: await gateway.adminPort.port))
            }
            do {
                let result = try await body(running)
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return result
            } catch {
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
        }
    }

    /// A configuration with one pool `app` over `upstreams` and a catch-all route.
    public static func configuration(pool upstreams: [Upstream], strategy: BalancingStrategy = .roundRobin,
                                     healthCheck: HealthCheckConfiguration? = nil) -> GatewayConfiguration {
        var configuration = GatewayConfiguration()
        configuration.pools = ["app": PoolConfiguration(strategy: strategy, instances: upstreams.map { InstanceConfiguration(url: $0.url) },
                                                        healthCheck: healthCheck)]
        configuration.routes = [RouteConfiguration(name: "app", match: .init(pathPrefix: "/"), pool: "app")]
        return configuration
    }
}
