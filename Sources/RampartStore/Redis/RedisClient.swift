public import NIOCore
public import NIOPosix
public import RampartCore
import Synchronization

/// A Redis client on SwiftNIO: a small pool of pipelined connections, each reconnected by
/// itself with exponential backoff after it fails. While a connection slot waits to
/// reconnect, commands sent to it fail at once with `RedisError.unavailable`, so callers
/// with a fallback (rate limits) are never held up by a Redis that is down.
public final class RedisClient: Sendable {
    enum Slot {
        case idle(failures: Int)
        case connecting(EventLoopFuture<RedisConnection>)
        case connected(RedisConnection)
        case waiting(until: NIODeadline, failures: Int, reason: String)
    }

    final class LockedSlot: Sendable {
        let state = Mutex(Slot.idle(failures: 0))
    }

    public let configuration: RedisConfiguration
    let endpoint: RedisConfiguration.Endpoint
    let group: any EventLoopGroup
    private let slots: [LockedSlot]
    private let turn = Atomic<Int>(0)
    private let isShutdown = Atomic<Bool>(false)
    /// SHA1 of each script's source as Redis reported it on SCRIPT LOAD.
    private let scriptHashes = Mutex<[String: String]>([:])

    /// - Throws: `ConfigurationIssue` when the URL is not one this client can use.
    public init(_ configuration: RedisConfiguration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws(ConfigurationIssue) {
        self.configuration = configuration
        self.endpoint = try configuration.endpoint()
        self.group = group
        self.slots = (0..<max(1, configuration.poolSize)).map { _ in LockedSlot() }
    }

    // MARK: Connections

    /// A live connection from the pool (the next slot in turn), connecting it if needed.
    public func connection() -> EventLoopFuture<RedisConnection> {
        let index = turn.wrappingAdd(1, ordering: .relaxed).oldValue
        return connection(in: slots[Int(UInt(bitPattern: index) % UInt(slots.count))])
    }

    private func connection(in slot: LockedSlot) -> EventLoopFuture<RedisConnection> {
        let loop = group.any()
        guard !isShutdown.load(ordering: .relaxed) else { return loop.makeFailedFuture(RedisError.shutdown) }
        // One look at the slot: use its connection or its attempt under way, fail fast while
        // it waits, or claim it for a new attempt that concurrent callers then share.
        let (future, attempt): (EventLoopFuture<RedisConnection>, (EventLoopPromise<RedisConnection>, failures: Int)?) = slot.state.withLock { state in
            let failures: Int
            switch state {
            case .connected(let connection) where connection.isActive:
                return (connection.eventLoop.makeSucceededFuture(connection), nil)
            case .connecting(let future):
                return (future, nil)
            case .waiting(let until, _, let reason) where NIODeadline.now() < until:
                return (loop.makeFailedFuture(RedisError.unavailable(reason)), nil)
            case .waiting(_, let count, _), .idle(let count):
                failures = count
            case .connected:
                failures = 0
            }
            let promise = loop.makePromise(of: RedisConnection.self)
            state = .connecting(promise.futureResult)
            return (promise.futureResult, (promise, failures))
        }
        guard let (promise, failures) = attempt else { return future }
        let configuration = self.configuration
        RedisConnection.connect(to: endpoint, configuration: configuration, group: group).whenComplete { result in
            slot.state.withLock { state in
                switch result {
                case .success(let connection):
                    state = .connected(connection)
                case .failure(let error):
                    let delay = Self.backoff(after: failures + 1, configuration: configuration)
                    state = .waiting(until: .now() + delay, failures: failures + 1, reason: "\(error)")
                }
            }
            if case .success(let connection) = result, self.isShutdown.load(ordering: .relaxed) {
                connection.close().whenComplete { _ in }
                promise.fail(RedisError.shutdown)
                return
            }
            promise.completeWith(result)
        }
        return future
    }

    /// The wait after `failures` failed attempts in a row: the first delay, doubled each
    /// time, capped.
    static func backoff(after failures: Int, configuration: RedisConfiguration) -> TimeAmount {
        let first = configuration.reconnectDelay.duration.nanoseconds
        let cap = configuration.maxReconnectDelay.duration.nanoseconds
        let shift = min(max(failures - 1, 0), 30)
        let (scaled, overflow) = first.multipliedReportingOverflow(by: Int64(1) << shift)
        return .nanoseconds(overflow ? cap : min(scaled, cap))
    }

    /// Whether any pooled connection is up now (no I/O).
    public var isConnected: Bool {
        slots.contains { slot in
            slot.state.withLock { state in
                if case .connected(let connection) = state { return connection.isActive }
                return false
            }
        }
    }

    /// Closes every connection; later commands fail with `RedisError.shutdown`.
    public func shutdown() async {
        isShutdown.store(true, ordering: .relaxed)
        for slot in slots {
            let connection: RedisConnection? = slot.state.withLock { state in
                defer { state = .idle(failures: 0) }
                if case .connected(let connection) = state { return connection }
                return nil
            }
            try? await connection?.close().get()
        }
    }

    // MARK: Commands

    /// Sends one command; an error reply is thrown as `RedisError.server`.
    public func send(_ command: RESPValue) async throws(RedisError) -> RESPValue {
        let reply = try await Self.awaiting(connection().flatMap { $0.send(command) })
        if let message = reply.serverError { throw RedisError.server(message) }
        return reply
    }

    public func send(_ arguments: String...) async throws(RedisError) -> RESPValue {
        try await send(.command(arguments))
    }

    /// Sends several commands in one write on one connection; error replies are among the
    /// returned values.
    public func pipeline(_ commands: [RESPValue]) async throws(RedisError) -> [RESPValue] {
        try await Self.awaiting(connection().flatMap { $0.pipeline(commands) })
    }

    static func awaiting<Value: Sendable>(_ future: EventLoopFuture<Value>) async throws(RedisError) -> Value {
        do {
            return try await future.get()
        } catch let error as RedisError {
            throw error
        } catch {
            throw RedisError.connectionClosed
        }
    }

    public func ping() async throws(RedisError) {
        let reply = try await send("PING")
        guard reply.string == "PONG" else { throw RedisError.unexpectedReply("\(reply)") }
    }

    public func get(_ key: String) async throws(RedisError) -> [UInt8]? {
        switch try await send("GET", key) {
        case .bulkString(let bytes): return bytes
        case .null: return nil
        case let other: throw RedisError.unexpectedReply("\(other)")
        }
    }

    /// SET, with a time to live when `expiry` is given (PX, milliseconds, at least 1).
    public func set(_ key: String, _ value: [UInt8], expiry: Duration? = nil) async throws(RedisError) {
        var command: [RESPValue] = [.bulkString(Array("SET".utf8)), .bulkString(Array(key.utf8)), .bulkString(value)]
        if let expiry {
            let milliseconds = max(1, (expiry.nanoseconds + 999_999) / 1_000_000)
            command += [.bulkString(Array("PX".utf8)), .bulkString(Array(String(milliseconds).utf8))]
        }
        _ = try await send(.array(command))
    }

    /// Deletes keys; answers how many existed.
    @discardableResult
    public func delete(_ keys: [String]) async throws(RedisError) -> Int {
        guard !keys.isEmpty else { return 0 }
        return try await integer(send(.command(["DEL"] + keys)))
    }

    public func increment(_ key: String, by amount: Int = 1) async throws(RedisError) -> Int {
        try await integer(send("INCRBY", key, String(amount)))
    }

    /// Publishes a message; answers how many subscribers received it.
    @discardableResult
    public func publish(_ payload: [UInt8], to channel: String) async throws(RedisError) -> Int {
        try await integer(send(.array([.bulkString(Array("PUBLISH".utf8)), .bulkString(Array(channel.utf8)), .bulkString(payload)])))
    }

    private func integer(_ reply: RESPValue) throws(RedisError) -> Int {
        guard case .integer(let value) = reply else { throw RedisError.unexpectedReply("\(reply)") }
        return Int(value)
    }

    // MARK: Scripts

    /// Runs a Lua script by its hash (EVALSHA), loading it first on first use. If Redis has
    /// forgotten it (restarted or flushed: NOSCRIPT), the script is sent whole with EVAL,
    /// which also makes Redis remember it again; so a flush at any moment costs one
    /// longer command, never an error. One round trip once the script is loaded.
    public func evaluate(_ script: RedisScript, keys: [String], arguments: [String]) async throws(RedisError) -> RESPValue {
        let hash: String
        if let known = scriptHashes.withLock({ $0[script.source] }) {
            hash = known
        } else {
            hash = try await load(script)
        }
        do {
            return try await send(.command(["EVALSHA", hash, String(keys.count)] + keys + arguments))
        } catch where error.code == "NOSCRIPT" {
            return try await send(.command(["EVAL", script.source, String(keys.count)] + keys + arguments))
        }
    }

    /// SCRIPT LOAD; the hash is remembered for `evaluate`.
    @discardableResult
    public func load(_ script: RedisScript) async throws(RedisError) -> String {
        let reply = try await send("SCRIPT", "LOAD", script.source)
        guard let hash = reply.string else { throw RedisError.unexpectedReply("\(reply)") }
        scriptHashes.withLock { $0[script.source] = hash }
        return hash
    }

    // MARK: Pub/sub

    /// Messages published on `channels` (and on channels matching `patterns`), on a
    /// connection of their own. If it drops, it is reconnected with backoff and the
    /// subscriptions renewed; messages published meanwhile are missed, as with any Redis
    /// pub/sub. The subscription ends when the stream's consumer stops iterating.
    public func subscribe(channels: [String], patterns: [String] = []) -> AsyncStream<RedisMessage> {
        let (stream, continuation) = AsyncStream.makeStream(of: RedisMessage.self, bufferingPolicy: .bufferingNewest(10_000))
        let task = Task { [configuration, endpoint, group] in
            var failures = 0
            while !Task.isCancelled && !self.isShutdown.load(ordering: .relaxed) {
                do {
                    let connection = try await RedisConnection.connect(to: endpoint, configuration: configuration, group: group) { message in
                        continuation.yield(message)
                    }.get()
                    if !channels.isEmpty {
                        _ = try await connection.send(.command(["SUBSCRIBE"] + channels), replies: channels.count).get()
                    }
                    if !patterns.isEmpty {
                        _ = try await connection.send(.command(["PSUBSCRIBE"] + patterns), replies: patterns.count).get()
                    }
                    failures = 0
                    await withTaskCancellationHandler {
                        try? await connection.closeFuture.get()
                    } onCancel: {
                        connection.channel.close(promise: nil)
                    }
                } catch {
                    failures += 1
                }
                try? await Task.sleep(for: .nanoseconds(Self.backoff(after: max(failures, 1), configuration: configuration).nanoseconds))
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }
}

/// A Lua script for `RedisClient.evaluate`.
public struct RedisScript: Sendable, Hashable {
    public let source: String
    public init(_ source: String) { self.source = source }
}
