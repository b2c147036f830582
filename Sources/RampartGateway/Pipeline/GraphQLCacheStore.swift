import Logging
import Metrics
import RampartCore
import RampartGraphQL
import RampartStore
import Synchronization

/// The gateway's GraphQL response cache (`graphqlCache:`): answers in memory (layer one) and,
/// when configured, in Redis (layer two), shared by replicas. A purge goes to both layers and
/// is published so every replica drops the same entries from its memory.
///
/// Redis keys: `<prefix>e:<key>` holds an entry with its lifetime as the key's expiry;
/// `<prefix>t:<tag>` is the set of keys carrying a tag, living as long as its longest entry.
/// Purges run as one Lua script. When Redis fails, the memory layer goes on alone and the
/// failure is logged once until Redis answers again.
final class GraphQLCacheStore: Sendable {
    let memory: MemoryResponseCache
    let redis: RedisClient?
    let prefix: String
    let logger: Logger
    let now: @Sendable () -> Double
    private let failing = Atomic<Bool>(false)
    private let hits = Counter(label: "graphql_query_cache_hits_total")
    private let misses = Counter(label: "graphql_query_cache_misses_total")
    private let layerTwoErrors = Counter(label: "graphql_query_cache_layer_two_errors_total")

    /// Keys of `tags` in one call; each key's members lose their entries, then the set goes.
    static let purgeScript = RedisScript("""
        local n = 0
        for _, tag in ipairs(KEYS) do
          for _, key in ipairs(redis.call('SMEMBERS', tag)) do n = n + redis.call('DEL', ARGV[1] .. key) end
          redis.call('DEL', tag)
        end
        return n
        """)

    init(_ configuration: GraphQLCacheStoreConfiguration, redis: RedisClient?, logger: Logger, now: @escaping @Sendable () -> Double) {
        self.memory = MemoryResponseCache(maxBytes: configuration.memory.bytes)
        self.redis = redis
        self.prefix = configuration.keyPrefix
        self.logger = logger
        self.now = now
    }

    var purgeChannel: String { prefix + "purge" }

    /// The fresh answer under `key`, from memory, else from Redis (then kept in memory too).
    func lookup(_ key: String) async -> CachedAnswer? {
        let time = now()
        if let answer = memory.get(key, now: time) {
            hits.increment()
            return answer
        }
        if let redis, let bytes = await layerTwo({ try await redis.get(self.prefix + "e:" + key) }) ?? nil,
           let answer = Self.decode(bytes), answer.expiresAt > time {
            memory.countLayerTwoHit()
            memory.put(key, answer)
            hits.increment()
            return answer
        }
        misses.increment()
        return nil
    }

    func store(_ key: String, _ answer: CachedAnswer) async {
        memory.put(key, answer)
        guard let redis else { return }
        let milliseconds = String(Int(((answer.expiresAt - answer.storedAt) * 1000).rounded(.up)))
        let seconds = String(Int((answer.expiresAt - answer.storedAt).rounded(.up)))
        var commands: [RESPValue] = [.command(["SET", prefix + "e:" + key, Self.encode(answer), "PX", milliseconds])]
        for tag in answer.tags {
            let set = prefix + "t:" + tag
            commands.append(.command(["SADD", set, key]))
            // NX gives a new set a lifetime; GT only ever lengthens it to its longest entry's.
            commands.append(.command(["EXPIRE", set, seconds, "NX"]))
            commands.append(.command(["EXPIRE", set, seconds, "GT"]))
        }
        let pipeline = commands
        _ = await layerTwo { try await redis.pipeline(pipeline) }
    }

    /// Drops every entry carrying any of `tags`, here, in Redis and in the other replicas.
    @discardableResult
    func purge(tags: Set<String>) async -> Int {
        guard !tags.isEmpty else { return 0 }
        var purged = memory.purge(tags: tags)
        if let redis {
            let keys = tags.sorted().map { prefix + "t:" + $0 }
            if case .integer(let n)? = await layerTwo({ try await redis.evaluate(Self.purgeScript, keys: keys, arguments: [self.prefix + "e:"]) }) {
                purged = max(purged, Int(n))
            }
            let message = JSONValue.object(["tags": .array(tags.sorted().map(JSONValue.string))]).jsonText
            _ = await layerTwo { try await redis.publish(Array(message.utf8), to: self.purgeChannel) }
        }
        return purged
    }

    /// Drops one entry by key (admin), here, in Redis and in the other replicas.
    func purge(key: String) async -> Bool {
        var found = memory.purge(key: key)
        if let redis {
            if let n = await layerTwo({ try await redis.delete([self.prefix + "e:" + key]) }) { found = found || n > 0 }
            let message = JSONValue.object(["key": .string(key)]).jsonText
            _ = await layerTwo { try await redis.publish(Array(message.utf8), to: self.purgeChannel) }
        }
        return found
    }

    /// Another replica's purge, from the channel: applied to memory only.
    func apply(message payload: [UInt8]) {
        guard let message = try? JSONValue(parsing: payload, maxDepth: 4) else { return }
        if case .array(let tags)? = message["tags"] { memory.purge(tags: tags.compactMap(\.stringValue)) }
        if case .string(let key)? = message["key"] { memory.purge(key: key) }
    }

    /// Runs a Redis call; a failure is counted, logged once per outage, and answered with nil.
    private func layerTwo<Value: Sendable>(_ call: @Sendable () async throws -> Value) async -> Value? {
        do {
            let value = try await call()
            if failing.exchange(false, ordering: .relaxed) { logger.notice("graphql cache: Redis answers again") }
            return value
        } catch {
            layerTwoErrors.increment()
            if !failing.exchange(true, ordering: .relaxed) {
                logger.warning("graphql cache: Redis failed; serving from memory only until it answers", metadata: ["error": "\(error)"])
            }
            return nil
        }
    }

    // MARK: - Entries in Redis

    static func encode(_ answer: CachedAnswer) -> String {
        var members: [String: JSONValue] = [
            "v": .number(1), "body": .string(String(decoding: answer.body, as: UTF8.self)), "contentType": .string(answer.contentType),
            "storedAt": .number(answer.storedAt), "expiresAt": .number(answer.expiresAt), "tags": .array(answer.tags.map(JSONValue.string)),
        ]
        if let cacheControl = answer.cacheControl { members["cacheControl"] = .string(cacheControl) }
        return JSONValue.object(members).jsonText
    }

    static func decode(_ bytes: [UInt8]) -> CachedAnswer? {
        guard let value = try? JSONValue(parsing: bytes, maxDepth: 4), value["v"]?.numberValue == 1,
              let body = value["body"]?.stringValue, let contentType = value["contentType"]?.stringValue,
              let storedAt = value["storedAt"]?.numberValue, let expiresAt = value["expiresAt"]?.numberValue,
              let tags = value["tags"]?.arrayValue else { return nil }
        return CachedAnswer(body: Array(body.utf8), contentType: contentType, cacheControl: value["cacheControl"]?.stringValue,
                            storedAt: storedAt, expiresAt: expiresAt, tags: tags.compactMap(\.stringValue))
    }
}
