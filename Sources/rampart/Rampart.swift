import ArgumentParser
import Logging
import NIOCore
import RampartBalancing
import RampartCore
import RampartEvents
import RampartFlags
import RampartGraphQL
import RampartGateway
import RampartIdentity
import RampartLimits
import RampartShield
import RampartStore
import RampartTelemetry
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// The process entry: the event-loop thread count is settled before anything uses NIO, then
/// the command runs.
@main
enum Entry {
    static func main() async {
        do {
            try Runtime.configure(environment: currentEnvironment())
        } catch {
            printError("rampart: \(error)")
            exit(2)
        }
        await Rampart.main()
    }
}

struct Rampart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rampart",
        abstract: "An edge gateway: reverse proxy, load balancing, health checks and more, in one binary.",
        subcommands: [Serve.self, Check.self, Echo.self, Demo.self, Inspect.self, KafkaCommand.self, Version.self])
}

let rampartVersion = "0.1.0"

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the gateway with a configuration file.")

    @Option(name: .shortAndLong, help: "Path to rampart.yml.")
    var config: String

    func run() async throws {
        let environment = currentEnvironment()
        let configuration: GatewayConfiguration
        do {
            configuration = try ConfigurationLoader(environment: environment).load(path: config)
        } catch {
            printError("rampart: \(config) is not valid:\n\(error)")
            throw ExitCode(2)
        }
        let registry = Telemetry.bootstrap(logLevel: Logger.Level(rawValue: configuration.log.level) ?? .info)
        let logger = Logger(label: "rampart")
        let gateway: Gateway
        do {
            gateway = try Gateway(configuration: configuration, configurationPath: config, environment: environment,
                                  logger: logger, registry: registry)
        } catch {
            printError("rampart: cannot start:\n\(error)")
            throw ExitCode(2)
        }
        logger.info("starting", metadata: [
            "version": "\(rampartVersion)", "eventLoops": "\(NIOSingletons.groupLoopCountSuggestion)",
            "executor": "\(Runtime.executor.rawValue)",
        ])
        try await runUntilSignalled(gateway, shutdownTimeout: configuration.proxy.timeouts.shutdown.duration, logger: logger)
    }
}

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Validate a configuration and print what would run.")

    @Option(name: .shortAndLong, help: "Path to rampart.yml.")
    var config: String

    func run() async throws {
        let configuration: GatewayConfiguration
        do {
            configuration = try ConfigurationLoader(environment: currentEnvironment()).load(path: config)
        } catch {
            printError("\(config): \(error.issues.count) problem(s)\n\(error)")
            throw ExitCode(2)
        }
        print(describe(configuration))
    }
}

struct Echo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a small echo upstream for demos, tests and benchmarks.")

    @Option(help: "Port to listen on (127.0.0.1).") var port: Int
    @Option(help: "Instance name reported in answers.") var name: String = "echo"
    @Option(help: "Delay before each answer, in milliseconds.") var delay: Int = 0
    @Option(name: .customLong("fail-rate"), help: "Share of requests answered 500, 0 to 1.") var failRate: Double = 0
    @Option(help: "Address to bind.") var host: String = "127.0.0.1"

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0-65535") }
        guard (0...1).contains(failRate) else { throw ValidationError("--fail-rate must be between 0 and 1") }
        guard delay >= 0 else { throw ValidationError("--delay cannot be negative") }
    }

    func run() async throws {
        Telemetry.bootstrap(logLevel: .warning)
        let logger = Logger(label: "echo")
        let server = EchoServer(options: .init(name: name, delay: .milliseconds(delay), failRate: failRate))
        let app = server.application(host: host, port: port, logger: logger) { port in
            printLine("echo \(name) listening on http://\(host):\(port)")
        }
        try await runUntilSignalled(app, shutdownTimeout: .seconds(5), logger: logger)
    }
}

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start three echo instances and the gateway in front of them, on embedded defaults.")

    @Option(help: "Traffic listener address.") var listen: String = "127.0.0.1:8080"
    @Option(help: "Admin listener address.") var admin: String = "127.0.0.1:9901"

    func run() async throws {
        let registry = Telemetry.bootstrap(logLevel: .info)
        let logger = Logger(label: "rampart")
        var services: [any Service] = []
        var instances: [InstanceConfiguration] = []
        let names = ["echo-a", "echo-b", "echo-c"]
        var ports: [Int] = []
        for _ in names { ports.append(try freeLoopbackPort()) }
        for (name, port) in zip(names, ports) {
            services.append(EchoServer(options: .init(name: name)).application(port: port, logger: logger))
            instances.append(InstanceConfiguration(url: "http://127.0.0.1:\(port)"))
        }
        var configuration = GatewayConfiguration()
        configuration.listeners = .init(traffic: .init(address: listen), admin: .init(address: admin))
        configuration.pools = ["demo": .init(strategy: .roundRobin, instances: instances,
                                             healthCheck: .init(path: "/health", interval: .seconds(2), timeout: .seconds(1)))]
        configuration.routes = [.init(name: "demo", match: .init(pathPrefix: "/"), pool: "demo")]
        if let problems = Optional(configuration.validate()), !problems.isEmpty {
            printError(problems.map(\.description).joined(separator: "\n"))
            throw ExitCode(2)
        }
        let gateway = try Gateway(configuration: configuration, logger: logger, registry: registry)
        services.append(gateway)
        services.append(DemoBanner(gateway: gateway, listen: listen, admin: admin))
        try await runUntilSignalled(services, shutdownTimeout: .seconds(10), logger: logger)
    }
}

/// Prints where the demo listens once both listeners are bound.
struct DemoBanner: Service {
    let gateway: Gateway
    let listen: String
    let admin: String

    func run() async throws {
            let traffic = await gateway.trafficPort.port
            let adminPort = await gateway.adminPort.port
            let host = ListenAddress(listen)?.host ?? "127.0.0.1"
            let adminHost = ListenAddress(admin)?.host ?? "127.0.0.1"
            printLine("""
            rampart demo is running: three echo instances behind the gateway.
              traffic  http://\(host):\(traffic)/            (try: curl http://\(host):\(traffic)/hello)
              admin    http://\(adminHost):\(adminPort)/api/system/load-balancer
              metrics  http://\(adminHost):\(adminPort)/metrics
            Ctrl-C stops it.
            """)
        try? await gracefulShutdown()
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")
    func run() { print("rampart \(rampartVersion)") }
}

// MARK: - Helpers

func runUntilSignalled(_ service: any Service, shutdownTimeout: Duration, logger: Logger) async throws {
    try await runUntilSignalled([service], shutdownTimeout: shutdownTimeout, logger: logger)
}

/// Runs services until SIGTERM or SIGINT, then shuts down gracefully: listeners stop
/// accepting, in-flight requests finish up to the timeout, and the process exits 0.
func runUntilSignalled(_ services: [any Service], shutdownTimeout: Duration, logger: Logger) async throws {
    var configuration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
    configuration.maximumGracefulShutdownDuration = shutdownTimeout
    try await ServiceGroup(configuration: configuration).run()
}

func currentEnvironment() -> [String: String] {
    var result: [String: String] = [:]
    var pointer = environ
    while let entry = pointer.pointee {
        let text = String(cString: entry)
        if let eq = text.firstIndex(of: "=") { result[String(text[..<eq])] = String(text[text.index(after: eq)...]) }
        pointer += 1
    }
    return result
}

func printError(_ text: String) { writeLine(text, to: 2) }

/// Prints to standard output unbuffered, so a banner shows at once even through a pipe.
func printLine(_ text: String) { writeLine(text, to: 1) }

func writeLine(_ text: String, to fd: Int32) {
    var text = text + "\n"
    text.withUTF8 { bytes in _ = write(fd, bytes.baseAddress, bytes.count) }
}

/// A free port on 127.0.0.1, found by binding port 0 and releasing it.
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ExitCode(1) }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw ExitCode(1) }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// What `rampart check` prints: the listeners, pools, instances and routes that would run.
func describe(_ c: GatewayConfiguration) -> String {
    var lines = ["configuration is valid", "",
                 "traffic  \(c.listeners.traffic.address)",
                 "admin    \(c.listeners.admin.address) (token \(c.listeners.admin.token?.isEmpty == false ? "set" : "not set"))", ""]
    for name in c.pools.keys.sorted() {
        let pool = c.pools[name]!
        lines.append("pool \(name): \(pool.strategy.name), \(pool.instances.count) instance(s)"
                     + (pool.healthCheck.map { ", health check \($0.path) every \($0.interval)" } ?? ", no active health check"))
        for instance in pool.instances {
            var line = "  - \(instance.url) weight \(instance.weight) priority \(instance.priority)"
            if let region = instance.region { line += " region \(region)" }
            lines.append(line)
        }
    }
    lines.append("")
    let rules = c.shield.ipRules
    lines.append("shield: ip rules \(rules.allow.count) allow, \(rules.deny.count) deny; security headers "
                 + (c.shield.securityHeaders == nil ? "off" : "on")
                 + (c.routes.contains { $0.securityHeaders != nil } ? " (with route overrides)" : ""))
    if let limits = c.limits {
        for name in limits.policyNames {
            guard let policy = limits.policy(named: name) else { continue }
            lines.append("limit \(name): \(policy.algorithm.rawValue) \(policy.base) per \(ConfigDuration(policy.window)), within \(policy.minimum)...\(policy.maximum)"
                         + (policy.isAdaptive ? ", adaptive" : "") + ", keyed on " + limits.keyParts(of: name).map(\.rawValue).joined(separator: "+"))
        }
        if let redis = c.redis, limits.shared.enabled {
            lines.append("limits shared through \(redis.redactedURL) by \(limits.shared.replicas) replica(s); "
                         + "while Redis fails: \(limits.shared.onStoreFailure.rawValue)")
        }
    } else {
        lines.append("limits: off")
    }
    if let identity = c.identity {
        var ways: [String] = []
        if let jwt = identity.jwt {
            ways.append("JWT (\(jwt.keys.count) key(s)" + (jwt.jwks.map { ", JWKS \($0.file ?? $0.url ?? "") every \($0.refresh)" } ?? "")
                        + (jwt.issuers.isEmpty ? "" : ", issuers \(jwt.issuers.joined(separator: ","))")
                        + (jwt.audiences.isEmpty ? "" : ", audiences \(jwt.audiences.joined(separator: ","))") + ")")
        }
        if let apiKeys = identity.apiKeys { ways.append("API keys (\(apiKeys.keys.count) in \(apiKeys.header))") }
        lines.append("identity: " + ways.joined(separator: "; "))
    } else {
        lines.append("identity: everyone anonymous")
    }
    if let flags = c.flags {
        let count = (try? FlagCatalog(sources: flags.sources))?.flags.flagSet.flags.count ?? 0
        lines.append("flags: \(count) from \(flags.sources.isEmpty ? "no files" : flags.sources.joined(separator: ", ")) (read every \(flags.watchInterval)); "
                     + "managed flags in \(flags.database.map { PostgresDatabase.isURL($0) ? "PostgreSQL \(PostgresDatabase.redacted($0)), shared" : $0 } ?? "memory (lost on restart)"); "
                     + (flags.ofrep.enabled ? "OFREP on the traffic listener, auth \(flags.ofrep.auth.rawValue)" : "OFREP off"))
    } else {
        lines.append("flags: off")
    }
    if let events = c.events {
        let sinks = events.sinks.map { sink -> String in
            let target = switch sink.type {
            case .webhook: sink.url ?? ""
            case .kafka: "\(sink.topic ?? "") on \(sink.brokers.joined(separator: ","))"
            case .log: "the log"
            }
            return "\(sink.name) (\(sink.type.rawValue) to \(target), types \(sink.types.joined(separator: " ")), \(sink.retry.maxAttempts) attempts)"
        }
        lines.append("events: spool \(events.spool), queue \(events.queue) (\(events.overflow.rawValue)); publishes "
                     + events.publish.map(\.rawValue).sorted().joined(separator: ", ") + "; sinks " + sinks.joined(separator: "; "))
    } else {
        lines.append("events: off")
    }
    lines.append("")
    if c.routes.isEmpty { lines.append("route: everything -> pool \(c.pools.keys.first ?? "?")") }
    for (i, route) in c.routes.enumerated() {
        var match: [String] = []
        if let h = route.match.host { match.append("host \(h)") }
        if let p = route.match.pathPrefix { match.append("path \(p)*") }
        if let m = route.match.methods { match.append("methods \(m.joined(separator: ","))") }
        if let h = route.match.headers { match.append("headers \(h.keys.sorted().joined(separator: ","))") }
        if let f = route.match.flag { match.append("flag \(f.key) \(f.variant.map { "variant \($0)" } ?? "= \(f.value.map { "\($0)" } ?? "")")") }
        let target = route.pool.map { "pool \($0)" } ?? "respond \(route.respond?.status ?? 0)"
        var limit = ""
        if c.limits != nil { limit = route.limit == RouteConfiguration.noLimit ? ", no limit" : ", limit \(route.limit ?? "default")" }
        let identity = route.identity == .required ? ", identity required" : ""
        var graphql = ""
        if let g = route.graphql {
            func show(_ value: Int?) -> String { value.map(String.init) ?? "off" }
            graphql = ", GraphQL \(g.mode.rawValue) (depth \(show(g.limits.maxDepth)), cost \(show(g.limits.maxCost)), aliases \(show(g.limits.maxAliases)), "
                + "introspection \(g.limits.introspection.rawValue), \(g.schema.map { "schema \($0)" } ?? "no schema"), "
                + "batches \(g.limits.batching ? "up to \(g.limits.maxBatchSize)" : "off"), "
                + "cache \(g.cache.flatMap { $0.enabled ? "\($0.scope.rawValue) scope, maxTtl \($0.maxTtl)" : nil } ?? "off"))"
        }
        lines.append("route \(route.name ?? "routes[\(i)]"): \(match.isEmpty ? "everything" : match.joined(separator: ", ")) -> \(target)\(limit)\(identity)\(graphql)")
    }
    return lines.joined(separator: "\n")
}
