public import RampartCore
import Crypto
import Synchronization

/// The cache key of a query (GRAPHQL-GUARD.md section 5): SHA-256, in hex, over the
/// canonical JSON (RFC 8785) array `["rampart-cache-v1", upstream, normalizedDocument,
/// operationName or "", variables, scope]`. `variables` holds the declared variables only,
/// with their defaults applied (`GuardAnalysis.variables`).
public enum CacheKey {
    public static func make(upstream: String, document: String, operationName: String?, variables: [String: JSONValue], scope: String) -> String {
        let text = JSONValue.array([
            .string("rampart-cache-v1"), .string(upstream), .string(document), .string(operationName ?? ""),
            .object(variables), .string(scope),
        ]).jsonText
        return hex(SHA256.hash(data: Array(text.utf8)))
    }

    /// A caller credential as a scope: its SHA-256, so the key never holds the secret.
    public static func credentialScope(_ credential: String) -> String {
        "credential:" + hex(SHA256.hash(data: Array(credential.utf8)).prefix(16))
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String { lowercaseHex(bytes) }
}

/// What an upstream answer allows the cache to do, from its `Cache-Control` header and an
/// Apollo-style `extensions.cacheControl` hint.
public struct CacheFreshness: Sendable, Equatable {
    /// Seconds the answer may be stored; nil when it says nothing.
    public var lifetime: Int?
    /// `no-store` or `no-cache`: never stored.
    public var forbidden = false
    /// `private`: stored only for a route scoped per user.
    public var isPrivate = false

    public init(lifetime: Int? = nil, forbidden: Bool = false, isPrivate: Bool = false) {
        self.lifetime = lifetime
        self.forbidden = forbidden
        self.isPrivate = isPrivate
    }

    /// `s-maxage` wins over `max-age` (a shared cache); unknown directives are ignored.
    public init(cacheControl: String?, extensions: JSONValue? = nil) {
        var sharedAge: Int?
        var maxAge: Int?
        for part in (cacheControl ?? "").split(separator: ",") {
            let directive = part.split(separator: "=", maxSplits: 1)
            let name = directive[0].trimmingASCIIWhitespace().lowercased()
            let argument = directive.count == 2 ? Int(directive[1].trimmingASCIIWhitespace().trimmingQuotes) : nil
            switch name {
            case "s-maxage": sharedAge = argument.map { max($0, 0) }
            case "max-age": maxAge = argument.map { max($0, 0) }
            case "no-store", "no-cache": forbidden = true
            case "private": isPrivate = true
            default: break
            }
        }
        lifetime = sharedAge ?? maxAge
        // Apollo's hint: every path's maxAge, the smallest wins; a PRIVATE one makes it private.
        if case .array(let hints)? = extensions?["cacheControl"]?["hints"] {
            for hint in hints {
                if case .number(let age)? = hint["maxAge"], age >= 0 {
                    lifetime = min(lifetime ?? Int(age), Int(age))
                }
                if case .string(let scope)? = hint["scope"], scope.uppercased() == "PRIVATE" { isPrivate = true }
            }
        }
    }

    /// Takes another source's hint (the schema's `@cacheControl`): the shorter lifetime, and
    /// private if either says so.
    public mutating func apply(_ hint: CacheFreshness) {
        if let age = hint.lifetime { lifetime = min(lifetime ?? age, age) }
        isPrivate = isPrivate || hint.isPrivate
        forbidden = forbidden || hint.forbidden
    }

    /// The seconds to store the answer for, or nil when it must not be stored: the upstream's
    /// lifetime (else `defaultTtl`) capped by `maxTtl`.
    public func ttl(defaultTtl: Int?, maxTtl: Int?, scopedPerUser: Bool) -> Int? {
        guard !forbidden, !isPrivate || scopedPerUser else { return nil }
        guard var seconds = lifetime ?? defaultTtl else { return nil }
        if let maxTtl { seconds = min(seconds, maxTtl) }
        return seconds > 0 ? seconds : nil
    }
}

/// The tags of an answer's `data`: a type tag `T` for every object with a string `__typename`,
/// and an entity tag `T:id` when it also has an identifying field (`id` unless `keyFields`
/// names others for its type; several key fields join with `:`).
public struct CacheTags: Sendable, Equatable {
    public var types: Set<String> = []
    public var entities: Set<String> = []

    public init() {}

    public init(data: JSONValue, keyFields: [String: [String]] = [:]) {
        // A work list, not recursion: `data` may nest as deep as the upstream wrote it.
        var pending = [data]
        while let value = pending.popLast() {
            switch value {
            case .array(let items): pending.append(contentsOf: items)
            case .object(let members):
                if case .string(let type)? = members["__typename"] {
                    types.insert(type)
                    var parts: [String] = []
                    for field in keyFields[type] ?? ["id"] {
                        switch members[field] {
                        case .string(let id)?: parts.append(id)
                        case .number(let id)?: parts.append(JSONValue.numberText(id))
                        default: parts = []
                        }
                        if parts.isEmpty { break }
                    }
                    if !parts.isEmpty { entities.insert(type + ":" + parts.joined(separator: ":")) }
                }
                pending.append(contentsOf: members.values)
            default: break
            }
        }
    }

    public var all: Set<String> { types.union(entities) }
}

/// A stored answer.
public struct CachedAnswer: Sendable, Equatable {
    public var body: [UInt8]
    public var contentType: String
    /// The upstream's `Cache-Control`, passed through on hits.
    public var cacheControl: String?
    /// Wall-clock seconds.
    public var storedAt: Double
    public var expiresAt: Double
    public var tags: [String]

    public init(body: [UInt8], contentType: String, cacheControl: String?, storedAt: Double, expiresAt: Double, tags: [String]) {
        self.body = body
        self.contentType = contentType
        self.cacheControl = cacheControl
        self.storedAt = storedAt
        self.expiresAt = expiresAt
        self.tags = tags
    }

    /// The bytes an entry is charged in the memory budget: body, key, tags and a fixed overhead.
    func charge(key: String) -> Int {
        body.count + key.utf8.count + contentType.utf8.count + (cacheControl?.utf8.count ?? 0) + tags.reduce(0) { $0 + $1.utf8.count + 16 } + 128
    }
}

/// Layer one of the response cache: answers in memory, least recently used evicted first,
/// bounded in bytes, with an index from tags to the keys that carry them for invalidation.
/// Expired entries are never answered and are dropped when met.
public final class MemoryResponseCache: Sendable {
    public struct Statistics: Sendable, Equatable, Encodable {
        public var entries = 0
        public var bytes = 0
        public var maxBytes = 0
        public var hits = 0
        public var misses = 0
        public var evictions = 0
        public var invalidations = 0

        /// Hits over lookups, 0 before any.
        public var hitRate: Double { hits + misses == 0 ? 0 : Double(hits) / Double(hits + misses) }

        enum CodingKeys: String, CodingKey { case entries, bytes, maxBytes, hits, misses, hitRate, evictions, invalidations }

        /// Every count, and the hit rate.
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(entries, forKey: .entries)
            try c.encode(bytes, forKey: .bytes)
            try c.encode(maxBytes, forKey: .maxBytes)
            try c.encode(hits, forKey: .hits)
            try c.encode(misses, forKey: .misses)
            try c.encode(hitRate, forKey: .hitRate)
            try c.encode(evictions, forKey: .evictions)
            try c.encode(invalidations, forKey: .invalidations)
        }
    }

    struct Entry {
        var answer: CachedAnswer
        var charge: Int
        var newer: String?
        var older: String?
    }

    struct State {
        var entries: [String: Entry] = [:]
        var tags: [String: Set<String>] = [:]
        /// Most and least recently used keys: the ends of a list linked through the entries.
        var newest: String?
        var oldest: String?
        var statistics = Statistics()

        mutating func unlink(_ key: String) {
            guard let entry = entries[key] else { return }
            if let newer = entry.newer { entries[newer]!.older = entry.older } else { newest = entry.older }
            if let older = entry.older { entries[older]!.newer = entry.newer } else { oldest = entry.newer }
        }

        mutating func linkNewest(_ key: String) {
            entries[key]!.older = newest
            entries[key]!.newer = nil
            if let newest { entries[newest]!.newer = key }
            newest = key
            if oldest == nil { oldest = key }
        }

        mutating func remove(_ key: String) {
            unlink(key)
            guard let entry = entries.removeValue(forKey: key) else { return }
            statistics.bytes -= entry.charge
            for tag in entry.answer.tags {
                tags[tag]?.remove(key)
                if tags[tag]?.isEmpty == true { tags[tag] = nil }
            }
        }
    }

    public let maxBytes: Int
    private let state = Mutex(State())

    public init(maxBytes: Int) {
        self.maxBytes = maxBytes
        state.withLock { $0.statistics.maxBytes = maxBytes }
    }

    /// The fresh answer under `key`, counted as a hit, or nil, counted as a miss.
    public func get(_ key: String, now: Double) -> CachedAnswer? {
        state.withLock { state in
            guard let entry = state.entries[key] else {
                state.statistics.misses += 1
                return nil
            }
            guard entry.answer.expiresAt > now else {
                state.remove(key)
                state.statistics.misses += 1
                return nil
            }
            state.unlink(key)
            state.linkNewest(key)
            state.statistics.hits += 1
            return entry.answer
        }
    }

    /// Stores `answer`, evicting the least recently used entries to stay within the budget.
    /// An answer larger than the whole budget is not stored.
    @discardableResult
    public func put(_ key: String, _ answer: CachedAnswer) -> Bool {
        let charge = answer.charge(key: key)
        guard charge <= maxBytes else { return false }
        return state.withLock { state in
            state.remove(key)
            while state.statistics.bytes + charge > maxBytes, let oldest = state.oldest {
                state.remove(oldest)
                state.statistics.evictions += 1
            }
            state.entries[key] = Entry(answer: answer, charge: charge)
            state.linkNewest(key)
            state.statistics.bytes += charge
            for tag in answer.tags { state.tags[tag, default: []].insert(key) }
            return true
        }
    }

    /// Drops every entry carrying any of `tags`; returns how many went.
    @discardableResult
    public func purge(tags: some Sequence<String>) -> Int {
        state.withLock { state in
            var keys: Set<String> = []
            for tag in tags { keys.formUnion(state.tags[tag] ?? []) }
            for key in keys { state.remove(key) }
            state.statistics.invalidations += keys.count
            return keys.count
        }
    }

    /// Drops the entry under `key`; returns whether there was one.
    @discardableResult
    public func purge(key: String) -> Bool {
        state.withLock { state in
            guard state.entries[key] != nil else { return false }
            state.remove(key)
            state.statistics.invalidations += 1
            return true
        }
    }

    /// Drops everything; returns how many entries went.
    @discardableResult
    public func purgeAll() -> Int {
        state.withLock { state in
            let count = state.entries.count
            let statistics = state.statistics
            state = State()
            state.statistics = statistics
            state.statistics.entries = 0
            state.statistics.bytes = 0
            state.statistics.invalidations += count
            return count
        }
    }

    /// A lookup answered by another layer counts as a hit here too, so the hit rate is the
    /// cache's as a whole.
    public func countLayerTwoHit() {
        state.withLock {
            $0.statistics.misses -= 1
            $0.statistics.hits += 1
        }
    }

    public var statistics: Statistics {
        state.withLock { state in
            var statistics = state.statistics
            statistics.entries = state.entries.count
            return statistics
        }
    }
}

extension Substring {
    /// Without one pair of surrounding double quotes (`max-age="60"`).
    var trimmingQuotes: Substring {
        var text = self
        if text.first == "\"" { text.removeFirst() }
        if text.last == "\"" { text.removeLast() }
        return text
    }
}
