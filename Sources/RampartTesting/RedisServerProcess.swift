import Foundation

/// A private `redis-server` on loopback for tests that must stop, restart or configure
/// Redis (kill it mid-run, require a password), which the shared one from
/// `scripts/services.sh` must not be. Needs `redis-server` on the PATH
/// (`scripts/services.sh install`); `RedisServerProcess.isAvailable` tells.
public final class RedisServerProcess: @unchecked Sendable {
    public let port: Int
    public let password: String?
    private let lock = NSLock()
    private var process: Process?

    public static var executable: String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") + ["/usr/bin", "/usr/sbin"] {
            let candidate = "\(directory)/redis-server"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    public static var isAvailable: Bool { executable != nil }

    /// Starts one on a free port (or `port`), answering PING before this returns.
    public init(port: Int? = nil, password: String? = nil) async throws {
        self.port = try port ?? freeLoopbackPort()
        self.password = password
        try await start()
    }

    public var url: String {
        password.map { "redis://:\($0)@127.0.0.1:\(port)" } ?? "redis://127.0.0.1:\(port)"
    }

    /// Starts it again after `stop()`, on the same port.
    public func start() async throws {
        guard let executable = Self.executable else { throw TestSupportError("redis-server is not installed (scripts/services.sh install)") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        var arguments = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"]
        if let password { arguments += ["--requirepass", password] }
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        lock.withLock { self.process = process }
        for _ in 0..<200 {
            if canConnect(port: port) { return }
            try await Task.sleep(for: .milliseconds(25))
        }
        throw TestSupportError("redis-server did not listen on \(port) within 5 s")
    }

    /// Kills it (SIGKILL, as a crash would) and waits until it is gone, without blocking
    /// a thread of the concurrency pool.
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
        Foundation.kill(process.processIdentifier, SIGKILL)
        return process
    }

    /// Sends a signal (SIGSTOP makes it hang without closing connections; SIGCONT resumes).
    public func signal(_ number: Int32) {
        if let process = lock.withLock({ self.process }), process.isRunning { Foundation.kill(process.processIdentifier, number) }
    }

    deinit { kill() }
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
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = loopback(port: 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard ok else { throw POSIXError(.EADDRINUSE) }
    return Int(UInt16(bigEndian: address.sin_port))
}

private func loopback(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return address
}
