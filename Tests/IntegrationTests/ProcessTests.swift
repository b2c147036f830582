import AsyncHTTPClient
import Foundation
import HummingbirdWSClient
import NIOCore
import NIOHTTP1
import RampartTesting
import Testing

/// The `rampart` binary itself, run as a separate process: reload on SIGHUP, refusal of a
/// broken file, and a graceful SIGTERM that lets in-flight requests finish and exits 0.
@Suite(.serialized) struct ProcessTests {
    @Test func sighupReloadsAndABrokenFileKeepsTheRunningConfiguration() async throws {
        let a = await LoopbackHarness.startEcho(name: "a")
        let b = await LoopbackHarness.startEcho(name: "b")
        let file = try TemporaryConfiguration()
        let port = try freePort()
        try file.write(poolURL: a.url, port: port)
        let process = try RampartProcess(arguments: ["serve", "--config", file.path])
        defer { process.stop() }
        try await waitUntilListening(port: port)
        #expect(try await instanceAnswering(port: port) == "a")

        try file.write(poolURL: b.url, port: port)
        process.signal(SIGHUP)
        try await eventually { try await instanceAnswering(port: port) == "b" }

        try file.writeRaw("pools: [this is not a pool map\n")
        process.signal(SIGHUP)
        try await eventually { process.standardError.contains("reload refused") }
        #expect(try await instanceAnswering(port: port) == "b")
        #expect(process.isRunning)

        process.signal(SIGTERM)
        #expect(await process.exitStatus() == 0)
        await a.stop()
        await b.stop()
    }

    /// An instance that leaves its pool, unregistered through the admin API or dropped by a
    /// reload, leaves the metrics too; an instance the reload keeps keeps its series.
    @Test func instancesThatLeaveTheirPoolLeaveTheMetrics() async throws {
        let a = await LoopbackHarness.startEcho(name: "a")
        let b = await LoopbackHarness.startEcho(name: "b")
        let c = await LoopbackHarness.startEcho(name: "c")
        let (idA, idB, idC) = (a.url.replacingOccurrences(of: "http://", with: ""), b.url.replacingOccurrences(of: "http://", with: ""),
                               c.url.replacingOccurrences(of: "http://", with: ""))
        let file = try TemporaryConfiguration()
        let port = try freePort(), admin = try freePort()
        func write(_ instances: [String]) throws {
            try file.writeRaw("""
            listeners:
              traffic: {address: "127.0.0.1:\(port)"}
              admin: {address: "127.0.0.1:\(admin)"}
            log: {level: warning, accessLog: false}
            pools:
              app: {drainTimeout: 1s, instances: [\(instances.map { "\"\($0)\"" }.joined(separator: ", "))]}

            """)
        }
        try write([a.url, b.url, c.url])
        let process = try RampartProcess(arguments: ["serve", "--config", file.path])
        defer { process.stop() }
        try await waitUntilListening(port: port)
        for _ in 0..<6 { _ = try await fetch("http://127.0.0.1:\(port)/x") }
        func series(of id: String) async throws -> Int {
            try await fetch("http://127.0.0.1:\(admin)/metrics").body.split(separator: "\n")
                .filter { !$0.hasPrefix("#") && $0.contains("instance=\"\(id)\"") }.count
        }
        let (before, beforeB, beforeC) = (try await series(of: idA), try await series(of: idB), try await series(of: idC))
        #expect(before > 0 && beforeB > 0 && beforeC > 0)

        var request = HTTPClientRequest(url: "http://127.0.0.1:\(admin)/api/system/load-balancer")
        request.method = .POST
        request.body = .bytes(ByteBuffer(string: "{\"action\": \"unregister\", \"pool\": \"app\", \"instance\": \"\(idB)\"}"))
        #expect(try await HTTPClient.shared.execute(request, timeout: .seconds(10)).status == .accepted)
        try await eventually { try await series(of: idB) == 0 }

        try write([a.url])
        process.signal(SIGHUP)
        try await eventually { try await series(of: idC) == 0 }
        #expect(try await series(of: idA) > 0)
        #expect(try await fetch("http://127.0.0.1:\(admin)/metrics").body.contains("load_balancer_instance_healthy{pool=\"app\",instance=\"\(idA)\"} 1.0"))

        process.signal(SIGTERM)
        #expect(await process.exitStatus() == 0)
        for upstream in [a, b, c] { await upstream.stop() }
    }

    /// Request tasks run on the event loops unless `RAMPART_EXECUTOR=pool` says otherwise;
    /// both proxy, the start log says which is in use, and an unknown value stops the process.
    @Test func executorIsChosenByTheEnvironment() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "u")
        for (setting, expected) in [(nil, "event-loops"), ("pool", "pool")] as [(String?, String)] {
            let file = try TemporaryConfiguration()
            let port = try freePort()
            try file.write(poolURL: upstream.url, port: port)
            let process = try RampartProcess(arguments: ["serve", "--config", file.path],
                                             environment: setting.map { ["RAMPART_EXECUTOR": $0] } ?? [:])
            defer { process.stop() }
            try await waitUntilListening(port: port)
            #expect(try await instanceAnswering(port: port) == "u")
            #expect(process.standardError.contains("\"executor\":\"\(expected)\""), "\(process.standardError.prefix(400))")
            process.signal(SIGTERM)
            #expect(await process.exitStatus() == 0)
        }
        let refused = try RampartProcess(arguments: ["version"], environment: ["RAMPART_EXECUTOR": "threads"])
        #expect(await refused.exitStatus() == 2)
        #expect(refused.standardError.contains("RAMPART_EXECUTOR: \"threads\" is neither event-loops nor pool"))
        await upstream.stop()
    }

    @Test func sigtermLetsInFlightRequestsFinishThenExitsZero() async throws {
        let slow = await LoopbackHarness.startEcho(name: "slow", delay: .milliseconds(1500))
        let file = try TemporaryConfiguration()
        let port = try freePort()
        try file.write(poolURL: slow.url, port: port)
        let process = try RampartProcess(arguments: ["serve", "--config", file.path])
        defer { process.stop() }
        try await waitUntilListening(port: port)

        async let inFlight = HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/slow"), timeout: .seconds(10))
        try await Task.sleep(for: .milliseconds(400))
        process.signal(SIGTERM)
        let response = try await inFlight
        #expect(response.status == .ok)
        let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
        #expect(body.contains("\"instance\":\"slow\""))
        #expect(await process.exitStatus() == 0)
        // Nothing listens any more.
        await #expect(throws: (any Error).self) { try await rawExchange(port: port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") }
        await slow.stop()
    }

    @Test func anUnopenableBlockDatabaseStopsTheStartWithAMessage() async throws {
        let file = try TemporaryConfiguration()
        try file.writeRaw("""
        listeners:
          traffic: {address: "127.0.0.1:\(try freePort())"}
          admin: {address: "127.0.0.1:0"}
        pools:
          app: {instances: ["http://127.0.0.1:1"]}
        shield:
          blocks: {database: /nonexistent-dir/blocks.sqlite}

        """)
        let process = try RampartProcess(arguments: ["serve", "--config", file.path])
        defer { process.stop() }
        #expect(await process.exitStatus() == 2)
        try await eventually { process.standardError.contains("shield.blocks.database: cannot open /nonexistent-dir/blocks.sqlite") }
    }

    /// `rampart inspect` names what it finds and where, and refuses nothing it should pass.
    @Test func inspectExplainsAVerdictWithoutSendingAnything() throws {
        let attack = try runToEnd(["inspect", "/search?q=1%27+or+1%3D1--"])
        #expect(attack.status == 0)
        #expect(attack.output.contains("sql_injection\tsqli."))
        #expect(attack.output.contains("\tquery:q\n"))
        #expect(attack.output.hasSuffix("score 5, threshold 5: refused\n"))

        let body = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-inspect-\(UUID().uuidString).json")
        try Data(#"{"question": {"text": "Which fjord is the longest?"}}"#.utf8).write(to: body)
        defer { try? FileManager.default.removeItem(at: body) }
        let benign = try runToEnd(["inspect", "-m", "POST", "/api/quizzes", "-H", "Content-Type: application/json", "-d", "@\(body.path)",
                                   "--values", "--repeat", "20"])
        #expect(benign.status == 0)
        #expect(benign.output.contains("value\tjson:$.question.text\t\"which fjord is the longest?\""))
        #expect(benign.output.contains("score 0, threshold 5: passed"))
        #expect(benign.output.contains("per inspection"))

        #expect(try runToEnd(["inspect", "no-slash"]).status != 0)
    }

    @Test func sigtermClosesOpenWebSocketsInsteadOfWaitingForThem() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "ws")
        let file = try TemporaryConfiguration()
        let port = try freePort()
        // Longer than exitStatus() waits: only closing the tunnel lets the process exit in time.
        try file.write(poolURL: upstream.url, port: port, shutdown: "60s")
        let process = try RampartProcess(arguments: ["serve", "--config", file.path])
        defer { process.stop() }
        try await waitUntilListening(port: port)
        let replies = ReplyLog()
        let socket = Task {
            _ = try? await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/ws", logger: LoopbackHarness.logger) { inbound, outbound, _ in
                try await outbound.write(.text("hi"))
                for try await message in inbound.messages(maxSize: 1 << 16) {
                    if case .text(let text) = message { replies.append(text) }
                }
            }
        }
        try await eventually { replies.all == ["ws: hi"] }
        process.signal(SIGTERM)
        #expect(await process.exitStatus() == 0)
        await socket.value
        await upstream.stop()
    }
}

/// The package's own `rampart` binary, built beside the tests.
final class RampartProcess: @unchecked Sendable {
    private let process = Process()
    private let errors = Pipe()
    private let lock = NSLock()
    private var collected = Data()

    static var binary: URL {
        // Tests/IntegrationTests/ProcessTests.swift -> the package root.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/rampart")
    }

    init(arguments: [String], environment: [String: String] = [:]) throws {
        process.executableURL = Self.binary
        process.arguments = arguments
        var merged = ProcessInfo.processInfo.environment
        merged["RAMPART_THREADS"] = "2"
        for (key, value) in environment { merged[key] = value }
        process.environment = merged
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        errors.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self else { return }
            self.lock.withLock { self.collected.append(data) }
        }
        try process.run()
    }

    var standardError: String { lock.withLock { String(decoding: collected, as: UTF8.self) } }
    var isRunning: Bool { process.isRunning }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Waits (up to 20 s) for the process to exit and returns its status.
    func exitStatus() async -> Int32? {
        for _ in 0..<200 {
            if !process.isRunning { return process.terminationStatus }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return nil
    }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        errors.fileHandleForReading.readabilityHandler = nil
    }
}

struct TemporaryConfiguration {
    let path: String

    init() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("rampart.yml").path
    }

    func write(poolURL: String, port: Int, shutdown: String = "20s") throws {
        try writeRaw("""
        proxy: {timeouts: {shutdown: \(shutdown)}}
        listeners:
          traffic: {address: "127.0.0.1:\(port)"}
          admin: {address: "127.0.0.1:0"}
        log: {level: info, accessLog: false}
        pools:
          app:
            instances: ["\(poolURL)"]
        routes:
          - {name: app, match: {pathPrefix: /}, pool: app}

        """)
    }

    /// Listeners on `port` and `admin`, the given log level, one pool `app` at `poolURL`, then
    /// `rest` (more top-level sections).
    func write(port: Int, admin: Int, poolURL: String, logLevel: String = "warning", _ rest: String = "") throws {
        try writeRaw("""
        listeners:
          traffic: {address: "127.0.0.1:\(port)"}
          admin: {address: "127.0.0.1:\(admin)"}
        log: {level: \(logLevel), accessLog: false}
        pools:
          app: {instances: ["\(poolURL)"]}
        \(rest)

        """)
    }

    /// A file beside the configuration (a database, a spool), removed with the folder.
    func sibling(_ name: String) -> String {
        URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent(name).path
    }

    func writeRaw(_ text: String) throws {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }
}

/// Runs the binary to its end and returns its exit status and standard output.
/// Runs `rampart` to its end: its status and what it printed (standard error too with `errors`).
func runToEnd(_ arguments: [String], errors: Bool = false) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = RampartProcess.binary
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = errors ? output : FileHandle.nullDevice
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

func instanceAnswering(port: Int) async throws -> String? {
    let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/who"), timeout: .seconds(5))
    let body = try await response.body.collect(upTo: 1 << 20)
    return (try? JSONSerialization.jsonObject(with: Data(String(buffer: body).utf8)) as? [String: Any])?["instance"] as? String
}

func waitUntilListening(port: Int) async throws {
    let listening = await waitUntil(every: .milliseconds(100)) { (try? await rawExchange(port: port, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) != nil }
    #expect(listening, "nothing answered on \(port) within 30 s")
}


func freePort() throws -> Int { try freeLoopbackPort() }

/// Waits up to 30 s for `condition` and records an issue if it never held.
func eventually(_ condition: () async throws -> Bool, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let held = await waitUntil(every: .milliseconds(100), condition)
    #expect(held, "condition not met within 30 s", sourceLocation: sourceLocation)
}
