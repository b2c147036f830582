import PropertyBased
import RampartCore
import Testing

@testable import RampartGraphQL

@Suite("GraphQL response cache")
struct ResponseCacheTests {
    func answer(_ body: String, tags: [String] = [], expiresAt: Double = 100) -> CachedAnswer {
        CachedAnswer(body: Array(body.utf8), contentType: "application/json", cacheControl: "max-age=60", storedAt: 0, expiresAt: expiresAt, tags: tags)
    }

    @Test("keys: canonical variables, every part counts")
    func keys() throws {
        let base = CacheKey.make(upstream: "api", document: "query{a}", operationName: nil, variables: ["n": .number(10), "s": .string("x")], scope: "public")
        #expect(base.count == 64 && base.allSatisfy(\.isHexDigit))
        // Key order and number spelling do not matter (JCS): 10.0 is 10.
        let reordered = try JSONValue(parsing: #"{"s":"x","n":10.0}"#)
        #expect(CacheKey.make(upstream: "api", document: "query{a}", operationName: "", variables: reordered.objectValue!, scope: "public") == base)
        let others = [
            CacheKey.make(upstream: "other", document: "query{a}", operationName: nil, variables: ["n": .number(10), "s": .string("x")], scope: "public"),
            CacheKey.make(upstream: "api", document: "query{b}", operationName: nil, variables: ["n": .number(10), "s": .string("x")], scope: "public"),
            CacheKey.make(upstream: "api", document: "query{a}", operationName: "Q", variables: ["n": .number(10), "s": .string("x")], scope: "public"),
            CacheKey.make(upstream: "api", document: "query{a}", operationName: nil, variables: ["n": .number(11), "s": .string("x")], scope: "public"),
            CacheKey.make(upstream: "api", document: "query{a}", operationName: nil, variables: ["n": .number(10), "s": .null], scope: "public"),
            CacheKey.make(upstream: "api", document: "query{a}", operationName: nil, variables: ["n": .number(10)], scope: "public"),
            CacheKey.make(upstream: "api", document: "query{a}", operationName: nil, variables: ["n": .number(10), "s": .string("x")], scope: "user:1"),
        ]
        #expect(Set(others + [base]).count == others.count + 1)
        #expect(CacheKey.credentialScope("Bearer a") != CacheKey.credentialScope("Bearer b"))
        #expect(!CacheKey.credentialScope("Bearer secret").contains("secret"))
    }

    @Test("declared variables only, defaults applied, explicit null kept")
    func variables() throws {
        let analysis = GraphQLGuard(limits: .off).analyze(
            document: "query Q($a: Int = 5, $b: String, $c: Int = 1) { f(a: $a, b: $b, c: $c) }",
            variables: try JSONValue(parsing: #"{"b": "x", "c": null, "undeclared": 1}"#))
        #expect(analysis.variables == ["a": .number(5), "b": .string("x"), "c": .null])
    }

    @Test("freshness from Cache-Control and Apollo hints", arguments: [
        ("max-age=60", nil, 300, 60),
        ("public, s-maxage=30, max-age=60", nil, 300, 30),
        ("max-age=600", nil, 300, 300),
        ("max-age=0", 60, nil, nil),
        ("no-store, max-age=60", nil, nil, nil),
        ("no-cache", 60, nil, nil),
        (nil, nil, nil, nil),
        (nil, 45, 300, 45),
        ("max-age=\"20\"", nil, nil, 20),
        ("private, max-age=60", nil, nil, nil),
    ] as [(String?, Int?, Int?, Int?)])
    func freshness(header: String?, defaultTtl: Int?, maxTtl: Int?, ttl: Int?) {
        #expect(CacheFreshness(cacheControl: header).ttl(defaultTtl: defaultTtl, maxTtl: maxTtl, scopedPerUser: false) == ttl)
    }

    @Test("private answers are kept only per user; a hint lowers the lifetime")
    func privateAndHints() throws {
        #expect(CacheFreshness(cacheControl: "private, max-age=60").ttl(defaultTtl: nil, maxTtl: nil, scopedPerUser: true) == 60)
        let hints = try JSONValue(parsing: #"{"cacheControl":{"version":1,"hints":[{"path":["a"],"maxAge":20},{"path":["b"],"maxAge":90}]}}"#)
        #expect(CacheFreshness(cacheControl: "max-age=60", extensions: hints).lifetime == 20)
        let privateHint = try JSONValue(parsing: #"{"cacheControl":{"hints":[{"path":["me"],"maxAge":30,"scope":"PRIVATE"}]}}"#)
        #expect(CacheFreshness(cacheControl: "max-age=60", extensions: privateHint).ttl(defaultTtl: nil, maxTtl: nil, scopedPerUser: false) == nil)
    }

    @Test("@cacheControl in the schema: the smallest maxAge of the selected fields and their types, PRIVATE anywhere")
    func schemaHints() throws {
        let schema = try Schema(sdl: """
            type Query { products: [Product] @cacheControl(maxAge: 120) me: User news: String @cacheControl(maxAge: 30) plain: String }
            type Product @cacheControl(maxAge: 300) { id: ID name: String price: Int @cacheControl(maxAge: 60) }
            type User @cacheControl(maxAge: 90, scope: PRIVATE) { id: ID }
            """)
        func hint(_ text: String) throws -> CacheFreshness? {
            let analysis = GraphQLGuard(limits: .off, schema: schema).analyze(document: text)
            return schema.cacheHint(for: try #require(analysis.selected), in: try #require(analysis.document))
        }
        #expect(try hint("{ plain }") == nil)
        #expect(try hint("{ products { id name } }")?.lifetime == 120)
        #expect(try hint("{ products { id price } }")?.lifetime == 60)
        #expect(try hint("{ products { ...P } news } fragment P on Product { name }")?.lifetime == 30)
        let me = try #require(try hint("{ me { id } products { id } }"))
        #expect(me.isPrivate && me.lifetime == 90)
        var upstream = CacheFreshness(cacheControl: "max-age=100")
        upstream.apply(try #require(try hint("{ products { id price } }")))
        #expect(upstream.ttl(defaultTtl: nil, maxTtl: nil, scopedPerUser: false) == 60, "the shortest wins")
    }

    @Test("tags: types, entities by id or configured key fields")
    func tags() throws {
        let data = try JSONValue(parsing: #"""
        {"user": {"__typename": "User", "id": "u1", "posts": [{"__typename": "Post", "id": 7, "title": "t"},
                                                               {"__typename": "Post", "id": 8}]},
         "stats": {"__typename": "Stats", "count": 2},
         "book": {"__typename": "Book", "isbn": "123", "edition": 2}}
        """#)
        let tags = CacheTags(data: data, keyFields: ["Book": ["isbn", "edition"]])
        #expect(tags.types == ["User", "Post", "Stats", "Book"])
        #expect(tags.entities == ["User:u1", "Post:7", "Post:8", "Book:123:2"])
    }

    @Test("a hit is fresh; expired entries miss")
    func expiry() {
        let cache = MemoryResponseCache(maxBytes: 1 << 20)
        cache.put("k", answer("{}", expiresAt: 10))
        #expect(cache.get("k", now: 9)?.body == Array("{}".utf8))
        #expect(cache.get("k", now: 10) == nil)
        #expect(cache.get("k", now: 1) == nil, "an expired entry is dropped when met")
        #expect(cache.statistics.hits == 1 && cache.statistics.misses == 2 && cache.statistics.entries == 0)
    }

    @Test("purging by tag removes exactly the entries carrying it")
    func invalidation() {
        let cache = MemoryResponseCache(maxBytes: 1 << 20)
        cache.put("user1", answer("1", tags: ["User", "User:1"]))
        cache.put("user2", answer("2", tags: ["User", "User:2"]))
        cache.put("posts", answer("3", tags: ["Post", "Post:9"]))
        #expect(cache.purge(tags: ["User:1"]) == 1)
        #expect(cache.get("user1", now: 0) == nil)
        #expect(cache.get("user2", now: 0) != nil && cache.get("posts", now: 0) != nil)
        #expect(cache.purge(tags: ["User", "Nothing"]) == 1)
        #expect(cache.get("user2", now: 0) == nil && cache.get("posts", now: 0) != nil)
        #expect(cache.purge(key: "posts") && !cache.purge(key: "posts"))
        #expect(cache.statistics.entries == 0 && cache.statistics.bytes == 0)
    }

    @Test("bounded in bytes, least recently used first")
    func eviction() {
        let one = answer(String(repeating: "x", count: 1000)).charge(key: "k0")
        let cache = MemoryResponseCache(maxBytes: one * 3)
        for index in 0..<3 { cache.put("k\(index)", answer(String(repeating: "x", count: 1000))) }
        _ = cache.get("k0", now: 0)
        cache.put("k3", answer(String(repeating: "x", count: 1000)))
        #expect(cache.get("k1", now: 0) == nil, "the least recently used goes first")
        #expect(cache.get("k0", now: 0) != nil && cache.get("k2", now: 0) != nil && cache.get("k3", now: 0) != nil)
        #expect(!cache.put("huge", answer(String(repeating: "x", count: one * 3))), "larger than the budget: not stored")
        #expect(cache.statistics.bytes <= one * 3 && cache.statistics.evictions == 1)
    }

    @Test("any sequence of operations stays within the budget and the index stays exact")
    func budgetProperty() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...63).array(of: 1...120)) { picks in
            let operations = picks.map { ($0 / 16, $0 % 16) }
            let cache = MemoryResponseCache(maxBytes: 4_000)
            var live: Set<String> = []
            for (kind, n) in operations {
                switch kind {
                case 0, 1:
                    if cache.put("k\(n)", answer(String(repeating: "y", count: n * 50), tags: ["T", "T:\(n % 4)"])) { live.insert("k\(n)") }
                case 2:
                    cache.purge(tags: ["T:\(n % 4)"])
                    live = live.filter { Int($0.dropFirst())! % 4 != n % 4 }
                default:
                    _ = cache.get("k\(n)", now: 0)
                }
                #expect(cache.statistics.bytes <= 4_000)
            }
            // Whatever is still there was stored and not purged (eviction may have taken more).
            for index in 0...15 where cache.get("k\(index)", now: 0) != nil { #expect(live.contains("k\(index)")) }
            cache.purgeAll()
            #expect(cache.statistics.bytes == 0)
        }
    }

    @Test("suggestions are masked in any message", arguments: [
        (#"Cannot query field "nme" on type "User". Did you mean "name"?"#, "[Suggestion hidden]", #"Cannot query field "nme" on type "User". [Suggestion hidden]"#),
        (#"Unknown argument "frist". Did you mean "first" or "last"? And more."#, "", #"Unknown argument "frist".  And more."#),
        ("No suggestion here.", "[x]", "No suggestion here."),
    ])
    func masking(message: String, mask: String, expected: String) throws {
        var limits = GuardLimits()
        limits.suggestionMask = mask
        #expect(limits.masking(message) == expected)
        // In an answer, and in each answer of a batch; an answer left as it was is nil.
        let answer = JSONValue.object(["data": .null, "errors": .array([.object(["message": .string(message)])])])
        let masked = limits.masking(answer: .array([answer, .object(["data": .object([:])])]))
        if message.contains("Did you mean") {
            #expect(masked?.arrayValue?.first?["errors"]?.arrayValue?.first?["message"]?.stringValue == expected)
            #expect(masked?.arrayValue?.last == .object(["data": .object([:])]))
        } else {
            #expect(masked == nil)
        }
        limits.maskSuggestions = false
        #expect(limits.masking(message) == message && limits.masking(answer: answer) == nil)
    }
}
