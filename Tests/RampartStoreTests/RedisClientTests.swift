import Foundation
import NIOCore
import RampartCore
import RampartTesting
import Testing

@testable import RampartStore

/// The shared Redis that `scripts/services.sh start redis` runs (CI starts it); tests that
/// need it are skipped, saying so, when it is not there.
let sharedRedisURL = ProcessInfo.processInfo.environment["RAMPART_TEST_REDIS_URL"]

@Suite("Redis configuration")
struct RedisConfigurationTests {
    @Test("URLs are parsed into host, port, credentials and database")
    func parsing() throws {
        let full = try RedisConfiguration(url: "redis://app:s%40cret@cache.internal:6380/3").endpoint()
        #expect(full == .init(host: "cache.internal", port: 6380, username: "app", password: "s@cret", database: 3))
        let bare = try RedisConfiguration(url: "redis://127.0.0.1").endpoint()
        #expect(bare == .init(host: "127.0.0.1", port: 6379, username: nil, password: nil, database: 0))
        let passwordOnly = try RedisConfiguration(url: "redis://:pw@h:1/").endpoint()
        #expect(passwordOnly.password == "pw" && passwordOnly.username == nil && passwordOnly.port == 1)
        let v6 = try RedisConfiguration(url: "redis://[::1]:7000").endpoint()
        #expect(v6.host == "::1" && v6.port == 7000)
    }

    @Test("bad URLs and settings are refused with the field named", arguments: [
        ("http://h", "redis.url"), ("rediss://h", "redis.url"), ("redis://h:99999", "redis.url"),
        ("redis://h/x", "redis.url"), ("redis://", "redis.url"),
    ])
    func refused(url: String, path: String) {
        let issues = RedisConfiguration(url: url).validate(at: "redis")
        #expect(issues.map(\.path) == [path.replacingOccurrences(of: "redis.url", with: "redis.url")])
    }

    @Test("every bad setting is reported")
    func settings() {
        var configuration = RedisConfiguration(url: "redis://h")
        configuration.poolSize = 0
        configuration.protocol = 4
        configuration.maxReconnectDelay = .milliseconds(1)
        #expect(Set(configuration.validate(at: "redis").map(\.path)) == ["redis.poolSize", "redis.protocol", "redis.maxReconnectDelay"])
    }

    @Test("passwords never reach a printed URL")
    func redaction() {
        #expect(RedisConfiguration(url: "redis://app:hunter2@h:1/0").redactedURL == "redis://app:***@h:1/0")
        #expect(RedisConfiguration(url: "redis://:hunter2@h").redactedURL == "redis://:***@h")
        #expect(RedisConfiguration(url: "redis://h:1").redactedURL == "redis://h:1")
    }

    @Test("reconnection waits double from the first delay up to the cap")
    func backoff() {
        var configuration = RedisConfiguration(url: "redis://h")
        configuration.reconnectDelay = .milliseconds(100)
        configuration.maxReconnectDelay = .seconds(1)
        let waits = (1...6).map { RedisClient.backoff(after: $0, configuration: configuration) }
        #expect(waits == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1)])
        #expect(RedisClient.backoff(after: 500, configuration: configuration) == .seconds(1))
    }
}

@Suite("Redis client against a real redis-server", .enabled(if: sharedRedisURL != nil, "RAMPART_TEST_REDIS_URL is not set: run scripts/services.sh start redis"))
struct RedisClientTests {
    func client(protocol version: Int = 2, poolSize: Int = 2) throws -> RedisClient {
        var configuration = RedisConfiguration(url: sharedRedisURL!)
        configuration.protocol = version
        configuration.poolSize = poolSize
        configuration.commandTimeout = .seconds(2)
        return try RedisClient(configuration)
    }

    func uniqueKey(_ name: String) -> String { "rampart-test:\(name):\(UUID().uuidString)" }

    @Test("strings, counters and deletes round-trip", arguments: [2, 3])
    func commands(protocol version: Int) async throws {
        let redis = try client(protocol: version)
        let key = uniqueKey("string")
        try await redis.ping()
        #expect(try await redis.get(key) == nil)
        try await redis.set(key, Array("value\r\n$3\r\n".utf8), expiry: .seconds(30))
        #expect(try await redis.get(key) == Array("value\r\n$3\r\n".utf8))
        let ttl = try await redis.send("PTTL", key)
        guard case .integer(let milliseconds) = ttl else { Issue.record("PTTL answered \(ttl)"); return }
        #expect(milliseconds > 29_000 && milliseconds <= 30_000)
        #expect(try await redis.increment(key + ":n", by: 5) == 5)
        #expect(try await redis.increment(key + ":n", by: -2) == 3)
        #expect(try await redis.delete([key, key + ":n", key + ":absent"]) == 2)
        await redis.shutdown()
    }

    @Test("RESP3 answers maps where RESP2 answers flat arrays")
    func protocols() async throws {
        let key = uniqueKey("hash")
        let resp2 = try client(protocol: 2)
        let resp3 = try client(protocol: 3)
        _ = try await resp2.send("HSET", key, "a", "1")
        #expect(try await resp2.send("HGETALL", key) == .array([.bulkString(Array("a".utf8)), .bulkString(Array("1".utf8))]))
        #expect(try await resp3.send("HGETALL", key) == .map([RESPPair(.bulkString(Array("a".utf8)), .bulkString(Array("1".utf8)))]))
        try await resp2.delete([key])
        await resp2.shutdown()
        await resp3.shutdown()
    }

    @Test("error replies are thrown with their code, and the connection goes on")
    func errors() async throws {
        let redis = try client(poolSize: 1)
        await #expect(throws: RedisError.self) { _ = try await redis.send("NOSUCHCOMMAND") }
        do {
            _ = try await redis.send("NOSUCHCOMMAND")
        } catch {
            #expect(error.code == "ERR")
        }
        try await redis.ping()
        await redis.shutdown()
    }

    @Test("many commands at once on one connection each get their own answer")
    func pipelining() async throws {
        let redis = try client(poolSize: 1)
        let prefix = uniqueKey("pipe")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<500 {
                group.addTask {
                    try await redis.set("\(prefix):\(i)", Array(String(i).utf8), expiry: .seconds(30))
                    let value = try await redis.get("\(prefix):\(i)")
                    #expect(value == Array(String(i).utf8))
                }
            }
            try await group.waitForAll()
        }
        let replies = try await redis.pipeline((0..<100).map { .command(["GET", "\(prefix):\($0)"]) } + [.command(["NOSUCHCOMMAND"])])
        #expect(replies.prefix(100) == ArraySlice((0..<100).map { RESPValue.bulkString(Array(String($0).utf8)) }))
        #expect(replies.last?.serverError?.hasPrefix("ERR") == true)
        try await redis.delete((0..<500).map { "\(prefix):\($0)" })
        await redis.shutdown()
    }

    @Test("scripts run by hash, and still run after SCRIPT FLUSH (NOSCRIPT)")
    func scripts() async throws {
        let redis = try client()
        let script = RedisScript("return {KEYS[1], tonumber(ARGV[1]) * 2, '\(UUID().uuidString)'}")
        let first = try await redis.evaluate(script, keys: ["k"], arguments: ["21"])
        guard case .array(let values) = first else { Issue.record("answered \(first)"); return }
        #expect(values.prefix(2) == [.bulkString(Array("k".utf8)), .integer(42)])
        _ = try await redis.send("SCRIPT", "FLUSH")
        let again = try await redis.evaluate(script, keys: ["k"], arguments: ["4"])
        guard case .array(let more) = again else { Issue.record("answered \(again)"); return }
        #expect(more[1] == .integer(8))
        await redis.shutdown()
    }

    @Test("published messages reach a subscriber, by channel and by pattern", arguments: [2, 3])
    func pubsub(protocol version: Int) async throws {
        let redis = try client(protocol: version)
        let channel = uniqueKey("channel")
        let messages = redis.subscribe(channels: [channel], patterns: [channel + ":*"])
        // The first two messages, or what came within 10 s: a lost message fails the test
        // rather than holding the suite forever.
        let collector = Task {
            var got: [RedisMessage] = []
            for await message in messages {
                got.append(message)
                if got.count == 2 { break }
            }
            return got
        }
        let watchdog = Task {
            try await Task.sleep(for: .seconds(10))
            collector.cancel()
        }
        // The subscriptions are made in the background: publish until someone hears, first on
        // the channel, then on the pattern (which may land after the channel).
        for target in [channel, channel + ":x"] {
            var receivers = 0
            for _ in 0..<100 where receivers == 0 {
                receivers = try await redis.publish(Array((target == channel ? "hello" : "sub").utf8), to: target)
                if receivers == 0 { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(receivers == 1)
        }
        let got = await collector.value
        watchdog.cancel()
        #expect(got == [RedisMessage(channel: channel, payload: Array("hello".utf8)),
                        RedisMessage(channel: channel + ":x", pattern: channel + ":*", payload: Array("sub".utf8))])
        await redis.shutdown()
    }
}

@Suite("Redis client when Redis fails", .enabled(if: RedisServerProcess.isAvailable, "redis-server is not installed: run scripts/services.sh install"))
struct RedisFailureTests {
    /// A generous command timeout: the whole suite at once loads the machine.
    func configuration(_ url: String) -> RedisConfiguration {
        var configuration = RedisConfiguration(url: url)
        configuration.commandTimeout = .seconds(2)
        return configuration
    }

    /// Pings until Redis answers again (trying for at least 5 s).
    func answersAgain(_ redis: RedisClient) async throws -> Bool {
        for _ in 0..<250 {
            if (try? await redis.ping()) != nil { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    @Test("AUTH: the right password connects, a wrong one is refused with Redis's reason")
    func authentication() async throws {
        let server = try await RedisServerProcess(password: "s3cret")
        let redis = try RedisClient(configuration(server.url))
        try await redis.ping()
        var resp3 = configuration(server.url)
        resp3.protocol = 3
        try await RedisClient(resp3).ping()
        let wrong = try RedisClient(configuration("redis://:wrong@127.0.0.1:\(server.port)"))
        do {
            try await wrong.ping()
            Issue.record("a wrong password was accepted")
        } catch {
            #expect("\(error)".contains("WRONGPASS"))
        }
        let none = try RedisClient(configuration("redis://127.0.0.1:\(server.port)"))
        do {
            try await none.ping()
            Issue.record("no password was accepted")
        } catch {
            #expect(error.code == "NOAUTH")
        }
        await redis.shutdown()
        await server.stop()
    }

    @Test("killed, the client fails fast while it waits, then reconnects by itself")
    func reconnection() async throws {
        let server = try await RedisServerProcess()
        var configuration = configuration(server.url)
        configuration.poolSize = 1
        // Long enough that a busy machine still sends the next ping inside the wait; short
        // enough that the reconnection below comes quickly.
        configuration.reconnectDelay = .milliseconds(500)
        configuration.maxReconnectDelay = .seconds(1)
        let redis = try RedisClient(configuration)
        try await redis.ping()
        #expect(redis.isConnected)
        await server.stop()
        // Every ping fails while Redis is down; after the first failed attempt to reconnect,
        // the slot waits and pings fail at once with `unavailable` instead of connecting again.
        var failures: [RedisError] = []
        var answered = 0
        for _ in 0..<20 {
            do { try await redis.ping(); answered += 1 } catch { failures.append(error) }
            if case .unavailable? = failures.last { break }
        }
        #expect(answered == 0)
        #expect(failures.contains { if case .unavailable = $0 { true } else { false } }, "\(failures)")
        try await server.start()
        #expect(try await answersAgain(redis))
        await redis.shutdown()
        await server.stop()
    }

    @Test("a Redis that hangs times the command out and closes the connection")
    func timeout() async throws {
        let server = try await RedisServerProcess()
        var configuration = configuration(server.url)
        configuration.poolSize = 1
        configuration.commandTimeout = .seconds(1)
        configuration.reconnectDelay = .milliseconds(10)
        let redis = try RedisClient(configuration)
        try await redis.ping()
        let connection = try await redis.connection().get()
        server.signal(SIGSTOP)
        // Two commands pipelined on the hung connection: both fail when the first times out.
        let answers = [connection.send(.command(["PING"])), connection.send(.command(["PING"]))]
        for answer in answers {
            do {
                _ = try await answer.get()
                Issue.record("a hung Redis answered")
            } catch {
                #expect(error as? RedisError == .timeout)
            }
        }
        try await connection.closeFuture.get()
        server.signal(SIGCONT)
        #expect(try await answersAgain(redis))
        await redis.shutdown()
        await server.stop()
    }

    @Test("a subscription comes back after Redis restarts")
    func resubscription() async throws {
        let server = try await RedisServerProcess()
        var configuration = configuration(server.url)
        configuration.reconnectDelay = .milliseconds(20)
        configuration.maxReconnectDelay = .milliseconds(100)
        let redis = try RedisClient(configuration)
        var iterator = redis.subscribe(channels: ["changes"]).makeAsyncIterator()
        func publishUntilHeard(_ text: String) async throws -> Bool {
            for _ in 0..<250 {
                if (try? await redis.publish(Array(text.utf8), to: "changes")) == 1 { return true }
                try await Task.sleep(for: .milliseconds(20))
            }
            return false
        }
        #expect(try await publishUntilHeard("one"))
        #expect(await iterator.next()?.payload == Array("one".utf8))
        await server.stop()
        try await server.start()
        #expect(try await publishUntilHeard("two"))
        #expect(await iterator.next()?.payload == Array("two".utf8))
        await redis.shutdown()
        await server.stop()
    }
}
