import Foundation
import NIOHTTP1
import RampartBalancing
import RampartCore
import RampartGateway
import RampartGraphQL
import RampartTesting
import Testing

/// A GraphQL route in a running gateway: accepted operations reach the upstream with their
/// body intact; refused ones are answered by the gateway as GraphQL request errors and never
/// reach it.
@Suite struct GraphQLRouteTests {
    static func json(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
    }

    static func firstError(_ text: String) -> (message: String?, extensions: [String: Any]) {
        let error = (json(text)["errors"] as? [[String: Any]])?.first
        return (error?["message"] as? String, error?["extensions"] as? [String: Any] ?? [:])
    }

    static func configuration(upstream: LoopbackHarness.Upstream, _ change: (inout GraphQLRouteConfiguration) -> Void = { _ in }) -> GatewayConfiguration {
        var configuration = LoopbackHarness.configuration(pool: [upstream])
        var graphql = GraphQLRouteConfiguration()
        graphql.limits.maxDepth = 3
        change(&graphql)
        configuration.routes = [
            RouteConfiguration(name: "graphql", match: .init(pathPrefix: "/graphql"), pool: "app", graphql: graphql),
            RouteConfiguration(name: "rest", match: .init(pathPrefix: "/"), pool: "app"),
        ]
        return configuration
    }

    @Test func operationsWithinTheLimitsReachTheUpstreamAndOthersAreAnsweredByTheGateway() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "api")
        try await LoopbackHarness.withGateway(Self.configuration(upstream: upstream)) { _, port, _ in
            let url = "http://127.0.0.1:\(port)/graphql"
            let json = [("Content-Type", "application/json")]
            let body = #"{"query": "query Q($n: Int) { books(first: $n) { title } }", "variables": {"n": 3}, "operationName": "Q"}"#
            let accepted = try await exchange(.POST, url, headers: json, body: body)
            #expect(accepted.status == 200)
            let echoed = Self.json(accepted.body)
            #expect(echoed["instance"] as? String == "api" && echoed["bodyBytes"] as? Int == body.utf8.count, "\(accepted.body)")

            let deep = try await exchange(.POST, url, headers: json, body: #"{"query": "{ a { b { c { d } } } }"}"#)
            #expect(deep.status == 400)
            #expect(Self.json(deep.body)["instance"] == nil, "the upstream never saw it")
            #expect(Self.json(deep.body)["data"] == nil)
            let (message, extensions) = Self.firstError(deep.body)
            #expect(message == "Query depth limit of 3 exceeded, found 4.")
            #expect(extensions["code"] as? String == "MAX_DEPTH_EXCEEDED" && extensions["limit"] as? Int == 3 && extensions["found"] as? Int == 4)
            #expect(deep.headers.contains { $0.0.lowercased() == "content-type" && $0.1.hasPrefix("application/json") })

            // The GraphQL-over-HTTP media type when the client accepts it.
            let negotiated = try await exchange(.POST, url, headers: json + [("Accept", "application/graphql-response+json, application/json")],
                                                body: "{\"query\": \"{ a(\"}")
            #expect(negotiated.status == 400 && Self.firstError(negotiated.body).extensions["code"] as? String == "GRAPHQL_PARSE_FAILED")
            #expect(negotiated.headers.contains { $0.0.lowercased() == "content-type" && $0.1.hasPrefix("application/graphql-response+json") })

            // GET: queries only.
            let query = "%7B%20books%20%7B%20title%20%7D%20%7D"
            let get = try await exchange(.GET, "\(url)?query=\(query)")
            #expect(get.status == 200 && Self.json(get.body)["instance"] as? String == "api")
            let mutation = try await exchange(.GET, "\(url)?query=mutation%20%7B%20like%20%7D")
            #expect(mutation.status == 405 && mutation.headers.contains { $0.0.lowercased() == "allow" && $0.1 == "POST" })
            #expect(Self.firstError(mutation.body).extensions["code"] as? String == "METHOD_NOT_ALLOWED")

            // Malformed requests.
            for (bad, code) in [("not json", "BAD_REQUEST"), (#"{"query": 1}"#, "BAD_REQUEST"), (#"{"query": "{a}", "variables": [1]}"#, "BAD_REQUEST"),
                                (#"[{"query": "{a}"}]"#, "BATCHING_NOT_ALLOWED"), (#"{"query": "{a} {b}"}"#, "GRAPHQL_VALIDATION_FAILED")] {
                let answer = try await exchange(.POST, url, headers: json, body: bad)
                #expect(answer.status == 400 && Self.firstError(answer.body).extensions["code"] as? String == code, "\(bad): \(answer.body)")
            }
            let plain = try await exchange(.POST, url, headers: [("Content-Type", "text/plain")], body: "{ a }")
            #expect(plain.status == 400)

            // Other routes are not GraphQL.
            #expect(try await exchange(.POST, "http://127.0.0.1:\(port)/rest", headers: json, body: "{ a { b { c { d } } } }").status == 200)
        }
        await upstream.stop()
    }

    @Test func bodiesOverTheLimitAre413AndMeasureModeRefusesNothing() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "api")
        let small = Self.configuration(upstream: upstream) { $0.maxBodyBytes = ByteCount(64) }
        try await LoopbackHarness.withGateway(small) { _, port, _ in
            let big = #"{"query": "{ a }", "pad": ""# + String(repeating: "x", count: 100) + #""}"#
            let answer = try await exchange(.POST, "http://127.0.0.1:\(port)/graphql", headers: [("Content-Type", "application/json")], body: big)
            #expect(answer.status == 413 && Self.firstError(answer.body).extensions["code"] as? String == "PAYLOAD_TOO_LARGE")
        }
        let measuring = Self.configuration(upstream: upstream) { $0.mode = .measure }
        try await LoopbackHarness.withGateway(measuring) { _, port, _ in
            let deep = try await exchange(.POST, "http://127.0.0.1:\(port)/graphql", headers: [("Content-Type", "application/json")],
                                          body: #"{"query": "{ a { b { c { d } } } }"}"#)
            #expect(deep.status == 200 && Self.json(deep.body)["instance"] as? String == "api")
            let batch = try await exchange(.POST, "http://127.0.0.1:\(port)/graphql", headers: [("Content-Type", "application/json")],
                                           body: #"[{"query": "{ a }"}]"#)
            #expect(batch.status == 200 && Self.json(batch.body)["bodyBytes"] as? Int == 20, "forwarded whole: \(batch.body)")
        }
        await upstream.stop()
    }

    @Test func aSchemaGivesCostItsTypesAndBadSettingsAreRefusedWithTheirPaths() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "api")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("graphql-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let schema = folder.appendingPathComponent("schema.graphql")
        try "type Query { books(first: Int): [Book] } type Book @cost(weight: 50) { title: String }".write(to: schema, atomically: true, encoding: .utf8)
        let configuration = Self.configuration(upstream: upstream) {
            $0.schema = schema.path
            $0.limits.maxCost = 100
        }
        try await LoopbackHarness.withGateway(configuration) { _, port, _ in
            let url = "http://127.0.0.1:\(port)/graphql"
            let json = [("Content-Type", "application/json")]
            #expect(try await exchange(.POST, url, headers: json, body: #"{"query": "{ books(first: 2) { title } }"}"#).status == 200)
            let costly = try await exchange(.POST, url, headers: json, body: #"{"query": "{ books(first: 3) { title } }"}"#)
            #expect(costly.status == 400)
            #expect(Self.firstError(costly.body).extensions["code"] as? String == "COST_ESTIMATED_TOO_EXPENSIVE")
            #expect(Self.firstError(costly.body).extensions["found"] as? Int == 150)
        }
        await upstream.stop()

        var broken = Self.configuration(upstream: upstream) {
            $0.schema = folder.appendingPathComponent("missing.graphql").path
            $0.limits.maxNesting = 10_000
        }
        broken.routes.append(RouteConfiguration(match: .init(pathPrefix: "/x"), respond: .init(status: 200), graphql: .init()))
        broken.routes[1].graphql = GraphQLRouteConfiguration()
        broken.routes[1].graphql?.conformanceTesting = .init(schemaDirectory: folder.path)
        broken.listeners.traffic.address = "0.0.0.0:8080"
        let paths = Set(broken.validate().map(\.path))
        #expect(paths.isSuperset(of: ["routes[0].graphql.schema", "routes[0].graphql.maxNesting", "routes[2].graphql",
                                      "routes[1].graphql.conformanceTesting"]), "\(paths)")
        broken.listeners.traffic.address = "127.0.0.1:8080"
        #expect(!broken.validate().map(\.path).contains("routes[1].graphql.conformanceTesting"))
    }

    /// The metrics need the process's own registry: checked on the `rampart` binary, with the
    /// route written in YAML as a user would.
    @Test func operationsAreCountedByResultAndMeasuredInTheMetrics() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "api")
        let file = try TemporaryConfiguration()
        let port = try freePort(), admin = try freePort()
        try file.write(port: port, admin: admin, poolURL: upstream.url, """
        routes:
          - {name: graphql, match: {pathPrefix: /graphql}, pool: app, graphql: {maxDepth: 2, maxCost: off}}
        """)
        let process = try RampartProcess(arguments: ["serve", "--config", file.path])
        defer { process.stop() }
        try await waitUntilListening(port: port)
        let url = "http://127.0.0.1:\(port)/graphql"
        let json = [("Content-Type", "application/json")]
        #expect(try await exchange(.POST, url, headers: json, body: #"{"query": "{ a { b } }"}"#).status == 200)
        #expect(try await exchange(.POST, url, headers: json, body: #"{"query": "{ a { b { c } } }"}"#).status == 400)
        #expect(try await exchange(.POST, url, headers: json, body: "[]").status == 400)
        try await eventually {
            let metrics = try await fetch("http://127.0.0.1:\(admin)/metrics").body
            return metrics.contains(#"graphql_query_operations_total{result="accepted"} 1"#)
                && metrics.contains(#"graphql_query_operations_total{result="rejected"} 2"#)
                && metrics.contains(#"graphql_query_rejections_total{limit="MAX_DEPTH_EXCEEDED"} 1"#)
                && metrics.contains(#"graphql_query_rejections_total{limit="BATCHING_NOT_ALLOWED"} 1"#)
                && metrics.contains(#"graphql_query_depth_bucket{le="2.0"} 1"#)
                && metrics.contains("graphql_query_depth_count 2")
                && metrics.contains("graphql_query_cost_count 1")
        }
        await upstream.stop()
    }
}

/// `../shared/tools/graphql-guard-conformance.py` against a gateway in the test-only
/// conformance mode, with the runner's own mock upstream behind it.
@Suite(.enabled(if: sharedDirectory != nil, "../shared is not present"))
struct GraphQLGuardConformanceRunTests {
    @Test func theSharedRunnerPassesEveryVector() async throws {
        let shared = try #require(sharedDirectory)
        let vectorsFolder = shared.appendingPathComponent("conformance/graphql")
        let vectorsFile = vectorsFolder.appendingPathComponent("vectors.jsonl")
        let mockPort = try freePort()
        var configuration = GatewayConfiguration()
        configuration.pools = ["app": PoolConfiguration(instances: [InstanceConfiguration(url: "http://127.0.0.1:\(mockPort)")])]
        var graphql = GraphQLRouteConfiguration()
        graphql.conformanceTesting = .init(schemaDirectory: vectorsFolder.path)
        configuration.routes = [RouteConfiguration(name: "graphql", match: .init(pathPrefix: "/graphql"), pool: "app", graphql: graphql)]
        try await LoopbackHarness.withGateway(configuration) { _, port, _ in
            let (_, text) = try await runPython(shared.appendingPathComponent("tools/graphql-guard-conformance.py").path,
                                                "--url", "http://127.0.0.1:\(port)/graphql", "--vectors", vectorsFile.path,
                                                "--mock-upstream", "127.0.0.1:\(mockPort)")
            let failed = Set(text.split(separator: "\n").filter { $0.hasPrefix("FAIL ") }.map { String($0.dropFirst(5).prefix { $0 != ":" }) })
            let summary = text.split(separator: "\n").last.map(String.init) ?? ""
            print("graphql-guard-conformance: \(summary)")
            #expect(failed.isEmpty, "failures: \(failed.sorted())\n\(text.suffix(3000))")
            #expect(summary.contains(" passed"), "\(text.suffix(2000))")
        }
    }
}
