import Crypto
import Foundation
import NIOHTTP1
import RampartBalancing
import RampartCore
import RampartGateway
import RampartGraphQL
import RampartIdentity
import RampartStore
import RampartTesting
import Synchronization
import Testing

/// The GraphQL response cache, batches and suggestion masking, in a running gateway in front
/// of a real GraphQL server (GraphQLSwift) that counts what it executes.
@Suite struct GraphQLCacheTests {
    static func configuration(upstream url: String, _ change: (inout GraphQLRouteConfiguration) -> Void = { _ in }) -> GatewayConfiguration {
        var configuration = GatewayConfiguration()
        configuration.pools = ["app": PoolConfiguration(instances: [InstanceConfiguration(url: url)])]
        var graphql = GraphQLRouteConfiguration()
        graphql.cache = GraphQLCacheConfiguration()
        change(&graphql)
        configuration.routes = [RouteConfiguration(name: "graphql", match: .init(pathPrefix: "/graphql"), pool: "app", graphql: graphql)]
        return configuration
    }

    static let json = [("Content-Type", "application/json")]

    static func post(_ port: Int, _ body: String, headers: [(String, String)] = []) async throws -> (status: Int, body: String, headers: [(String, String)]) {
        try await exchange(.POST, "http://127.0.0.1:\(port)/graphql", headers: json + headers, body: body)
    }

    static func header(_ name: String, in headers: [(String, String)]) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    static func query(_ text: String, variables: String? = nil) -> String {
        var body = #"{"query": "# + JSONValue.string(text).jsonText
        if let variables { body += #", "variables": "# + variables }
        return body + "}"
    }

    @Test func identicalAndEquivalentQueriesHitWhileVariablesAndCallersMiss() async throws {
        let upstream = try GraphQLUpstream()
        try await upstream.serve { url in
            try await LoopbackHarness.withGateway(Self.configuration(upstream: url)) { _, port, adminPort in
                let first = try await Self.post(port, Self.query("query P($id: ID!) { product(id: $id) { id name } }", variables: #"{"id": "1"}"#))
                #expect(first.status == 200 && first.body.contains("Lamp"), "\(first.body)")
                #expect(Self.header("X-Cache", in: first.headers) == "MISS")
                #expect(Self.header("Cache-Status", in: first.headers) == "rampart; fwd=uri-miss; stored")
                #expect(upstream.executed.load(ordering: .relaxed) == 1)

                // The same query, written differently: whitespace, a self-alias, a fragment
                // without type condition, a duplicate field.
                let equivalent = try await Self.post(port, Self.query(
                    "query P($id: ID!) {\n product(id: $id) { id: id ... { name } name } }", variables: #"{"id": "1"}"#))
                #expect(equivalent.status == 200 && equivalent.body == first.body)
                #expect(Self.header("X-Cache", in: equivalent.headers) == "HIT")
                #expect(Self.header("Cache-Status", in: equivalent.headers)?.hasPrefix("rampart; hit; ttl=") == true)
                #expect(Self.header("Age", in: equivalent.headers).flatMap(Int.init) != nil)
                #expect(Self.header("Cache-Control", in: equivalent.headers) == "public, max-age=60")
                #expect(upstream.executed.load(ordering: .relaxed) == 1, "served from the cache")

                // Other variables, and a caller with credentials, miss.
                let other = try await Self.post(port, Self.query("query P($id: ID!) { product(id: $id) { id name } }", variables: #"{"id": "2"}"#))
                #expect(other.body.contains("Desk") && Self.header("X-Cache", in: other.headers) == "MISS")
                let alice = try await Self.post(port, Self.query("query P($id: ID!) { product(id: $id) { id name } }", variables: #"{"id": "1"}"#),
                                                headers: [("Authorization", "Bearer alice")])
                #expect(Self.header("X-Cache", in: alice.headers) == "MISS")
                #expect(Self.header("Cache-Control", in: alice.headers) == "private, max-age=60", "an answer kept per caller says so")
                let aliceAgain = try await Self.post(port, Self.query("query P($id: ID!) { product(id: $id) { id name } }", variables: #"{"id": "1"}"#),
                                                     headers: [("Authorization", "Bearer alice")])
                #expect(Self.header("X-Cache", in: aliceAgain.headers) == "HIT")
                let bob = try await Self.post(port, Self.query("query P($id: ID!) { product(id: $id) { id name } }", variables: #"{"id": "1"}"#),
                                              headers: [("Authorization", "Bearer bob")])
                #expect(Self.header("X-Cache", in: bob.headers) == "MISS", "never served across callers")
                #expect(upstream.executed.load(ordering: .relaxed) == 4)

                // Answers with errors are not kept; mutations are never served from the cache.
                for _ in 0..<2 {
                    let broken = try await Self.post(port, Self.query("{ broken }"))
                    #expect(broken.body.contains("always fails") && Self.header("X-Cache", in: broken.headers) == "MISS")
                }
                #expect(upstream.executed.load(ordering: .relaxed) == 6)

                let report = try await exchange(.GET, "http://127.0.0.1:\(adminPort)/api/system/graphql/cache")
                let stats = try JSONValue(parsing: Array(report.body.utf8))
                #expect(stats["hits"]?.numberValue == 2 && stats["misses"]?.numberValue == 6, "\(report.body)")
                #expect(stats["hitRate"]?.numberValue == 0.25 && stats["entries"]?.numberValue == 4)
            }
        }
    }

    @Test func answersLargerThanTheForwardBufferAreKeptUpToMaxEntryBytes() async throws {
        let upstream = try GraphQLUpstream()
        try await upstream.serve { url in
            let configuration = Self.configuration(upstream: url) { $0.cache?.maxEntryBytes = ByteCount(200_000) }
            try await LoopbackHarness.withGateway(configuration) { _, port, _ in
                // 100 kB streams through the forward phase (over its 64 KiB buffer) and is kept.
                let first = try await Self.post(port, Self.query("{ padding(bytes: 100000) }"))
                #expect(first.body.utf8.count > 100_000 && Self.header("X-Cache", in: first.headers) == "MISS")
                let second = try await Self.post(port, Self.query("{ padding(bytes: 100000) }"))
                #expect(second.body == first.body && Self.header("X-Cache", in: second.headers) == "HIT")
                // Over maxEntryBytes: passed on untouched, not kept.
                let huge = try await Self.post(port, Self.query("{ padding(bytes: 300000) }"))
                #expect(huge.body.utf8.count > 300_000 && Self.header("X-Cache", in: huge.headers) == "BYPASS")
                #expect(upstream.executed.load(ordering: .relaxed) == 2)
            }
        }
    }

    @Test func aPerUserRouteNeverServesOneUsersAnswerToAnother() async throws {
        let upstream = try GraphQLUpstream()
        try await upstream.serve { url in
            func key(_ text: String) -> String { SHA256.hash(data: Array(text.utf8)).map { String(format: "%02x", $0) }.joined() }
            var configuration = Self.configuration(upstream: url) { $0.cache?.scope = .user }
            configuration.identity = IdentityConfiguration(apiKeys: .init())
            configuration.identity?.apiKeys?.keys = [
                .init(name: "ada-laptop", sha256: key("rk_ada_laptop_0123456789"), user: "ada"),
                .init(name: "ada-phone", sha256: key("rk_ada_phone_0123456789"), user: "ada"),
                .init(name: "bob", sha256: key("rk_bob_0123456789abcdef"), user: "bob"),
            ]
            let body = Self.query(#"{ product(id: "3") { id name } }"#)
            try await LoopbackHarness.withGateway(configuration) { _, port, _ in
                func cacheState(_ apiKey: String?) async throws -> String? {
                    Self.header("X-Cache", in: try await Self.post(port, body, headers: apiKey.map { [("X-API-Key", $0)] } ?? []).headers)
                }
                var states: [String?] = []
                for apiKey in ["rk_ada_laptop_0123456789", "rk_ada_phone_0123456789", "rk_bob_0123456789abcdef", nil, "rk_bob_0123456789abcdef"] {
                    states.append(try await cacheState(apiKey))
                }
                // ada's first key misses; her other key hits (the same user); bob misses (another
                // user); nobody misses; bob again hits.
                #expect(states == ["MISS", "HIT", "MISS", "MISS", "HIT"])
            }
            // On a credential-scoped route, a key in its own header separates callers as well.
            configuration.routes[0].graphql?.cache?.scope = .credential
            try await LoopbackHarness.withGateway(configuration) { _, port, _ in
                let ada = try await Self.post(port, body, headers: [("X-API-Key", "rk_ada_laptop_0123456789")])
                let bob = try await Self.post(port, body, headers: [("X-API-Key", "rk_bob_0123456789abcdef")])
                #expect(Self.header("X-Cache", in: ada.headers) == "MISS" && Self.header("X-Cache", in: bob.headers) == "MISS")
            }
        }
    }

    @Test func anAnswerThatIsNotJSONIsPassedOnAsItCame() async throws {
        // Over the forward phase's 64 KiB buffer, so the body streams and can be read only once.
        let broken = #"{"data": {"product": ""# + String(repeating: "x", count: 70_000)
        try await GraphQLUpstream.serveFixed(broken) { url in
            let configuration = Self.configuration(upstream: url) { $0.limits.batching = true }
            try await LoopbackHarness.withGateway(configuration) { _, port, _ in
                for body in [Self.query("{ product(id: \"1\") { id } }"), Self.query("mutation { renameProduct(id: \"1\", name: \"x\") { id } }"),
                             "[" + Self.query("{ a }") + "]"] {
                    let answer = try await Self.post(port, body)
                    #expect(answer.status == 200 && answer.body == broken, "\(body): \(answer.body.prefix(200))")
                }
            }
        }
    }

    @Test func aMutationPurgesExactlyWhatItTouched() async throws {
        let upstream = try GraphQLUpstream()
        try await upstream.serve { url in
            let configuration = Self.configuration(upstream: url) { $0.cache?.mutationInvalidates = ["renameProduct": ["ProductList"]] }
            try await LoopbackHarness.withGateway(configuration) { _, port, adminPort in
                let one = Self.query(#"{ product(id: "1") { __typename id name } }"#)
                let two = Self.query(#"{ product(id: "2") { __typename id name } }"#)
                let list = Self.query("{ products { __typename id name } }")
                for body in [one, two, list, one, two, list] { _ = try await Self.post(port, body) }
                #expect(upstream.executed.load(ordering: .relaxed) == 3)

                let rename = try await Self.post(port, Self.query(#"mutation { renameProduct(id: "1", name: "Lantern") { __typename id name } }"#))
                #expect(rename.body.contains("Lantern") && Self.header("X-Cache", in: rename.headers) == "BYPASS")
                #expect(Self.header("Cache-Status", in: rename.headers) == "rampart; fwd=method")

                // Product:1 was in `one` and in `list`; `two` holds only Product:2.
                let after = try await Self.post(port, one)
                #expect(after.body.contains("Lantern") && Self.header("X-Cache", in: after.headers) == "MISS")
                #expect(Self.header("X-Cache", in: try await Self.post(port, two).headers) == "HIT")
                let listAfter = try await Self.post(port, list)
                #expect(listAfter.body.contains("Lantern") && Self.header("X-Cache", in: listAfter.headers) == "MISS")
                #expect(upstream.executed.load(ordering: .relaxed) == 6)

                // An operator purges by tag.
                let purge = try await exchange(.POST, "http://127.0.0.1:\(adminPort)/api/system/graphql/cache", headers: Self.json,
                                               body: #"{"action": "purge", "tags": ["Product:2"]}"#)
                #expect(purge.status == 200 && purge.body == #"{"purged":2}"#, "\(purge.body)")
                #expect(Self.header("X-Cache", in: try await Self.post(port, two).headers) == "MISS")
                let bad = try await exchange(.POST, "http://127.0.0.1:\(adminPort)/api/system/graphql/cache", headers: Self.json,
                                             body: #"{"action": "purge"}"#)
                #expect(bad.status == 400 && bad.body.contains("exactly one of"))
            }
        }
    }

    @Test func batchesAreGuardedPerEntryAndAnsweredInOrder() async throws {
        let upstream = try GraphQLUpstream()
        try await upstream.serve { url in
            let configuration = Self.configuration(upstream: url) {
                $0.limits.batching = true
                $0.limits.maxBatchSize = 3
                $0.limits.maxDepth = 2
            }
            try await LoopbackHarness.withGateway(configuration) { _, port, _ in
                let batch = #"[{"query": "{ product(id: \"1\") { name } }"}, {"query": "{ a { b { c } } }"}, {"query": 7}]"#
                let answer = try await Self.post(port, batch)
                #expect(answer.status == 200)
                let entries = try #require(try JSONValue(parsing: Array(answer.body.utf8)).arrayValue)
                #expect(entries.count == 3)
                #expect(entries[0]["data"]?["product"]?["name"]?.stringValue == "Lamp")
                #expect(entries[1]["data"] == nil && entries[1]["errors"]?.arrayValue?.first?["extensions"]?["code"]?.stringValue == "MAX_DEPTH_EXCEEDED")
                #expect(entries[2]["errors"]?.arrayValue?.first?["extensions"]?["code"]?.stringValue == "BAD_REQUEST")
                #expect(upstream.executed.load(ordering: .relaxed) == 1, "only the accepted entry went upstream")

                let whole = try await Self.post(port, #"[{"query": "{ product(id: \"2\") { name } }"}, {"query": "{ products(first: 1) { id } }"}]"#)
                let both = try #require(try JSONValue(parsing: Array(whole.body.utf8)).arrayValue)
                #expect(both.count == 2 && both[0]["data"]?["product"]?["name"]?.stringValue == "Desk" && both[1]["data"] != nil)

                let tooMany = try await Self.post(port, "[" + Array(repeating: #"{"query": "{ products { id } }"}"#, count: 4).joined(separator: ",") + "]")
                #expect(tooMany.status == 400 && tooMany.body.contains("BATCH_LIMIT_EXCEEDED") && tooMany.body.contains(#""found":4"#))
                let empty = try await Self.post(port, "[]")
                #expect(empty.status == 400 && empty.body.contains("BAD_REQUEST"))
            }
        }
    }

    @Test func suggestionsFromTheUpstreamAreMaskedAndNormalizedTextCanBeForwarded() async throws {
        let upstream = try GraphQLUpstream()
        try await upstream.serve { url in
            try await LoopbackHarness.withGateway(Self.configuration(upstream: url)) { _, port, _ in
                let typo = try await Self.post(port, Self.query("{ prodcts { id } }"))
                #expect(typo.body.contains(#"Cannot query field \"prodcts\" on type \"Query\". [Suggestion hidden]"#), "\(typo.body)")
                #expect(!typo.body.contains("Did you mean"))
            }
            let unmasked = Self.configuration(upstream: url) { $0.limits.maskSuggestions = false }
            try await LoopbackHarness.withGateway(unmasked) { _, port, _ in
                let plain = try await Self.post(port, Self.query("{ prodcts { id } }"))
                #expect(plain.body.contains("Did you mean"))
            }
        }
        let echo = await LoopbackHarness.startEcho(name: "echo")
        let forwarding = Self.configuration(upstream: echo.url) {
            $0.forwardNormalized = true
            $0.cache = nil
        }
        try await LoopbackHarness.withGateway(forwarding) { _, port, _ in
            let answer = try await Self.post(port, Self.query("query   {  a  a  b: b }"))
            // The upstream got {"query":"query{a b}"}: 22 bytes.
            #expect(try JSONValue(parsing: Array(answer.body.utf8))["bodyBytes"]?.numberValue == 22, "\(answer.body)")
        }
        await echo.stop()
    }
}

/// Layer two: replicas share entries through Redis and purges reach every replica's memory.
@Suite(.serialized, .enabled(if: RedisServerProcess.isAvailable, "redis-server is not installed: run scripts/services.sh install"))
struct GraphQLSharedCacheTests {
    @Test func replicasShareEntriesAndPurges() async throws {
        let server = try await RedisServerProcess()
        let upstream = try GraphQLUpstream()
        try await upstream.serve { url in
            var configuration = GraphQLCacheTests.configuration(upstream: url)
            configuration.redis = RedisConfiguration(url: server.url)
            configuration.graphqlCache.redis = true
            try await LoopbackHarness.withGateways([configuration, configuration]) { gateways in
                let (a, b) = (gateways[0].trafficPort, gateways[1].trafficPort)
                let one = GraphQLCacheTests.query(#"{ product(id: "1") { __typename id name } }"#)
                _ = try await GraphQLCacheTests.post(a, one)
                let fromRedis = try await GraphQLCacheTests.post(b, one)
                #expect(GraphQLCacheTests.header("X-Cache", in: fromRedis.headers) == "HIT", "replica b finds what a stored")
                #expect(upstream.executed.load(ordering: .relaxed) == 1)
                _ = try await GraphQLCacheTests.post(b, GraphQLCacheTests.query(#"mutation { renameProduct(id: "1", name: "Lantern") { __typename id name } }"#))
                // The purge reaches replica a's memory through pub/sub.
                var missed = false
                for _ in 0..<50 where !missed {
                    let answer = try await GraphQLCacheTests.post(a, one)
                    missed = answer.body.contains("Lantern")
                    if !missed { try await Task.sleep(for: .milliseconds(20)) }
                }
                #expect(missed, "replica a no longer serves the renamed product's old answer")
            }
        }
        await server.stop()
    }
}
