import Foundation
import Synchronization

/// A server process of a test's own on a loopback port: started, killed (SIGKILL, as a crash
/// would), signalled (SIGSTOP makes it hang with its connections open; SIGCONT resumes) and
/// started again on the same port.
public final class LoopbackServerProcess: @unchecked Sendable {
    public let port: Int
    let name: String
    let executable: String
    let arguments: [String]
    private let lock = NSLock()
    private var process: Process?

    public init(name: String, executable: String, arguments: [String], port: Int) {
        self.name = name
        self.executable = executable
        self.arguments = arguments
        self.port = port
    }

    /// Starts it and waits until it accepts connections on `port`.
    public func start(within limit: Duration = .seconds(10)) async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        lock.withLock { self.process = process }
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if canConnect(port: port) { return }
            try await Task.sleep(for: .milliseconds(25))
        }
        throw TestSupportError("\(name) did not listen on \(port) within \(limit)")
    }

    /// Kills it and waits until it is gone, without blocking a thread of the concurrency pool.
    public func stop() async {
        guard let process = kill() else { return }
        for _ in 0..<500 where process.isRunning {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    @discardableResult
    private func kill() -> Process? {
        let process = lock.withLock { () -> Process? in
            defer { self.process = nil }
            return self.process
        }
        guard let process, process.isRunning else { return nil }
        Foundation.kill(process.processIdentifier, SIGCONT)
        Foundation.kill(process.processIdentifier, SIGKILL)
        return process
    }

    public func signal(_ number: Int32) {
        if let process = lock.withLock({ self.process }), process.isRunning { Foundation.kill(process.processIdentifier, number) }
    }

    deinit { kill() }
}

/// A private `redis-server` on loopback for tests that must stop, restart or configure
/// Redis (kill it mid-run, require a password), which the shared one from
/// `scripts/services.sh` must not be. Needs `redis-server` on the PATH
/// (`scripts/services.sh install`); `RedisServerProcess.isAvailable` tells.
public final class RedisServerProcess: Sendable {
    public let password: String?
    private let server: LoopbackServerProcess

    public static var executable: String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") + ["/usr/bin", "/usr/sbin"] {
            let candidate = "\(directory)/redis-server"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    public static var isAvailable: Bool { executable != nil }

    /// Starts one on a free port (or `port`), accepting connections before this returns.
    public init(port: Int? = nil, password: String? = nil) async throws {
        guard let executable = Self.executable else { throw TestSupportError("redis-server is not installed (scripts/services.sh install)") }
        let port = try port ?? freeLoopbackPort()
        var arguments = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"]
        if let password { arguments += ["--requirepass", password] }
        self.password = password
        server = LoopbackServerProcess(name: "redis-server", executable: executable, arguments: arguments, port: port)
        try await start()
    }

    public var port: Int { server.port }

    public var url: String {
        password.map { "redis://:\($0)@127.0.0.1:\(port)" } ?? "redis://127.0.0.1:\(port)"
    }

    /// Starts it again after `stop()`, on the same port.
    public func start() async throws { try await server.start(within: .seconds(5)) }

    /// Kills it (SIGKILL, as a crash would) and waits until it is gone.
    public func stop() async { await server.stop() }

    /// Sends a signal (SIGSTOP makes it hang without closing connections; SIGCONT resumes).
    public func signal(_ number: Int32) { server.signal(number) }
}

/// A Kafka broker of a test's own (Tansu, memory storage) on a free loopback port, for tests
/// that stop or freeze it. Needs `RAMPART_TANSU_BIN` (the services env file sets it when
/// `scripts/services.sh start kafka` ran). Memory storage: a restart loses every topic.
public final class KafkaBrokerProcess: Sendable {
    private let server: LoopbackServerProcess

    public static var executable: String? { ProcessInfo.processInfo.environment["RAMPART_TANSU_BIN"] }

    public init() async throws {
        guard let executable = Self.executable else { throw TestSupportError("RAMPART_TANSU_BIN is not set (source the services env file)") }
        let port = try freeLoopbackPort()
        let url = "tcp://127.0.0.1:\(port)"
        server = LoopbackServerProcess(name: "tansu", executable: executable, arguments: [
            "broker", "--listener-url", url, "--advertised-listener-url", url, "--storage-engine", "memory://tansu/",
        ], port: port)
        try await server.start()
    }

    public var brokers: String { "127.0.0.1:\(server.port)" }
    public func stop() async { await server.stop() }
    public func signal(_ number: Int32) { server.signal(number) }
}

public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` now.
public func canConnect(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = loopback(port: port)
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}

/// A port free on 127.0.0.1 right now.
public func freeLoopbackPort() throws -> Int {
    // From 20000-31999, below the kernel's ephemeral range (Linux: 32768-60999; macOS: from
    // 49152): a port asked for by number stays free until its user binds it, where one the
    // kernel chose for a bind to port 0 could meanwhile be chosen again, for another test's
    // listener or for the local end of any outgoing connection. Each call tries the next port
    // from a random start, so the process's own calls never hand out one twice.
    for _ in 0..<portRange.count {
        let port = portRange.lowerBound + nextPortOffset.add(1, ordering: .relaxed).newValue % portRange.count
        if canBindLoopback(port: port) { return port }
    }
    throw POSIXError(.EADDRINUSE)
}

private let portRange = 20_000..<32_000
private let nextPortOffset = Atomic<Int>(Int.random(in: 0..<12_000))

/// Whether a listener (which, as NIO's and Redis's do, reuses addresses) could bind `port`.
private func canBindLoopback(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var reuse: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
    var address = loopback(port: port)
    return withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}

private func loopback(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return address
}
