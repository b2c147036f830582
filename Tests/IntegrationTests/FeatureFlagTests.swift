import Crypto
import Foundation
import Logging
import NIOHTTP1
import RampartBalancing
import RampartCore
import RampartFlags
import RampartGateway
import RampartIdentity
import RampartTesting
import Testing

/// Feature flags in a running gateway: OFREP single and bulk with ETags, auth, identity
/// merged into the context, flag files watched, the admin API with its audit and
/// persistence, routes chosen by a flag, and flags forwarded upstream.
@Suite(.serialized) struct FeatureFlagTests {
    /// A folder with one flag file of our own.
    static func flagFolder(_ text: String) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flags-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try text.write(to: folder.appendingPathComponent("app.json"), atomically: true, encoding: .utf8)
        return folder
    }

    static let appFlags = """
    {"flags": {
      "banner": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                 "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on", null]}},
      "page-size": {"state": "ENABLED", "variants": {"small": 10, "large": 50}, "defaultVariant": "small"},
      "acme-only": {"state": "ENABLED", "variants": {"yes": true, "no": false}, "defaultVariant": "no",
                    "targeting": {"if": [{"==": [{"var": "tenant"}, "acme"]}, "yes", "no"]}},
      "retired": {"state": "DISABLED", "variants": {"on": true}, "defaultVariant": "on"}
    }}
    """

    static func json(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
    }

    static func configuration(_ folder: URL, upstream: LoopbackHarness.Upstream) -> GatewayConfiguration {
        var configuration = LoopbackHarness.configuration(pool: [upstream])
        var flags = FlagsConfiguration(sources: [folder.path])
        flags.watchInterval = .milliseconds(100)
        configuration.flags = flags
        return configuration
    }

    @Test func ofrepEvaluatesSingleFlagsAndBulkWithETags() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "a")
        let folder = try Self.flagFolder(Self.appFlags)
        try await LoopbackHarness.withGateway(Self.configuration(folder, upstream: upstream)) { _, port, admin in
            let base = "http://127.0.0.1:\(port)/ofrep/v1/evaluate/flags"
            let json = [("Content-Type", "application/json")]
            let hit = try await exchange(.POST, base + "/banner", headers: json, body: #"{"context": {"targetingKey": "u1", "email": "a@example.com"}}"#)
            #expect(hit.status == 200)
            #expect(hit.headers.contains { $0.0.lowercased() == "content-type" && $0.1 == "application/json" })
            let body = Self.json(hit.body)
            #expect(body["key"] as? String == "banner" && body["value"] as? Bool == true)
            #expect(body["variant"] as? String == "on" && body["reason"] as? String == "TARGETING_MATCH")
            // Integers are written without a fraction.
            let size = try await exchange(.POST, base + "/page-size", headers: json, body: "{}")
            #expect(size.body.contains(#""value":10"#) && size.body.contains(#""reason":"STATIC""#))
            // No body at all is an empty context.
            #expect(Self.json(try await exchange(.POST, base + "/banner").body)["value"] as? Bool == false)
            // Disabled: no value, so the SDK uses its default.
            let retired = Self.json(try await exchange(.POST, base + "/retired", headers: json, body: "{}").body)
            #expect(retired["reason"] as? String == "DISABLED" && retired["value"] == nil && retired["variant"] == nil)
            // Unknown flag, malformed body, wrong method.
            let missing = try await exchange(.POST, base + "/nope", headers: json, body: "{}")
            #expect(missing.status == 404 && Self.json(missing.body)["errorCode"] as? String == "FLAG_NOT_FOUND")
            #expect(Self.json(missing.body)["key"] as? String == "nope")
            let broken = try await exchange(.POST, base + "/banner", headers: json, body: #"{"context": {"#)
            #expect(broken.status == 400 && Self.json(broken.body)["errorCode"] as? String == "PARSE_ERROR")
            let get = try await exchange(.GET, base + "/banner")
            #expect(get.status == 405 && get.headers.contains { $0.0.lowercased() == "allow" && $0.1 == "POST" })

            // Bulk: every flag, an ETag, 304 when nothing changed.
            let bulk = try await exchange(.POST, base, headers: json, body: #"{"context": {"targetingKey": "u1", "tenant": "acme"}}"#)
            #expect(bulk.status == 200)
            let items = try #require(Self.json(bulk.body)["flags"] as? [[String: Any]])
            #expect(items.compactMap { $0["key"] as? String } == ["acme-only", "banner", "page-size", "retired"])
            let etag = try #require(bulk.headers.first { $0.0.lowercased() == "etag" }?.1)
            let same = try await exchange(.POST, base, headers: json + [("If-None-Match", etag)], body: "{}")
            #expect(same.status == 304 && same.body.isEmpty)

            // A changed file is picked up and changes the ETag; a broken one is refused and the
            // last good version stays.
            try Self.appFlags.replacingOccurrences(of: #""large": 50"#, with: #""large": 60"#)
                .replacingOccurrences(of: #""defaultVariant": "small""#, with: #""defaultVariant": "large""#)
                .write(to: folder.appendingPathComponent("app.json"), atomically: true, encoding: .utf8)
            try await eventually {
                try await exchange(.POST, base + "/page-size", headers: json, body: "{}").body.contains(#""value":60"#)
            }
            #expect(try await exchange(.POST, base, headers: json + [("If-None-Match", etag)], body: "{}").status == 200)
            try #"{"flags": {"page-size": {"state": "MAYBE"}}}"#.write(to: folder.appendingPathComponent("app.json"), atomically: true, encoding: .utf8)
            try await eventually {
                let flags = Self.json(try await exchange(.GET, "http://127.0.0.1:\(admin)/api/feature-flags").body)
                let sources = flags["sources"] as? [[String: Any]] ?? []
                return sources.contains { ($0["errors"] as? [String])?.contains { $0.contains("flags.page-size.state") } == true }
            }
            #expect(try await exchange(.POST, base + "/page-size", headers: json, body: "{}").body.contains(#""value":60"#))
        }
        await upstream.stop()
    }

    @Test func tokensAndIdentityGuardOFREPAndIdentityWinsOverTheBody() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "a")
        let folder = try Self.flagFolder(Self.appFlags)
        var configuration = Self.configuration(folder, upstream: upstream)
        let token = "ofrep-token-for-the-web-app"
        configuration.flags?.ofrep.auth = .token
        configuration.flags?.ofrep.tokens = [.init(name: "web", sha256: SHA256.hash(data: Array(token.utf8)).map { String(format: "%02x", $0) }.joined())]
        var identity = IdentityConfiguration(jwt: .init())
        identity.jwt?.keys = [.init(kid: "hmac", alg: .hs256, secret: IdentityTests.secret)]
        configuration.identity = identity
        try await LoopbackHarness.withGateway(configuration) { _, port, _ async throws in
            let url = "http://127.0.0.1:\(port)/ofrep/v1/evaluate/flags/acme-only"
            #expect(try await exchange(.POST, url, body: "{}").status == 401)
            #expect(try await exchange(.POST, url, headers: [("Authorization", "Bearer wrong")], body: "{}").status == 403)
            #expect(try await exchange(.POST, url, headers: [("Authorization", "Bearer \(token)")], body: "{}").status == 200)
            #expect(try await exchange(.POST, url, headers: [("X-API-Key", token)], body: "{}").status == 200)
        }
        // With auth: identity, the caller's verified tenant overrides the one in the body.
        configuration.flags?.ofrep.auth = .identity
        configuration.flags?.ofrep.tokens = []
        try await LoopbackHarness.withGateway(configuration) { _, port, _ in
            let url = "http://127.0.0.1:\(port)/ofrep/v1/evaluate/flags/acme-only"
            #expect(try await exchange(.POST, url, body: #"{"context": {"tenant": "acme"}}"#).status == 401)
            var claims = IdentityTests.claims(user: "ada")
            claims["tenant"] = "acme"
            claims["iss"] = nil
            claims["aud"] = nil
            let jwt = try IdentityTests.token(claims)
            let answer = try await exchange(.POST, url, headers: [("Authorization", "Bearer \(jwt)")], body: #"{"context": {"tenant": "other"}}"#)
            #expect(answer.status == 200 && Self.json(answer.body)["value"] as? Bool == true)
        }
        await upstream.stop()
    }

    @Test func theAdminAPIManagesFlagsWithAnAuditTrailThatOutlivesARestart() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "a")
        let folder = try Self.flagFolder(Self.appFlags)
        var configuration = Self.configuration(folder, upstream: upstream)
        configuration.flags?.database = folder.appendingPathComponent("flags.sqlite").path
        try await LoopbackHarness.withGateway(configuration) { _, port, admin in
            let api = "http://127.0.0.1:\(admin)/api/feature-flags"
            let ofrep = "http://127.0.0.1:\(port)/ofrep/v1/evaluate/flags/new-checkout"
            let json = [("Content-Type", "application/json")]
            let created = try await exchange(.POST, api, headers: json + [("X-Rampart-Actor", "grace")], body: """
            {"key": "new-checkout", "rollout": 0, "targets": {"users": ["ada"]}}
            """)
            #expect(created.status == 201)
            #expect(Self.json(try await exchange(.POST, ofrep, body: #"{"context": {"targetingKey": "ada"}}"#).body)["value"] as? Bool == true)
            #expect(Self.json(try await exchange(.POST, ofrep, body: #"{"context": {"targetingKey": "bob"}}"#).body)["value"] as? Bool == false)
            let updated = try await exchange(.POST, api, headers: json + [("X-Rampart-Actor", "grace")], body: """
            {"key": "new-checkout", "rollout": 100}
            """)
            #expect(updated.status == 200)
            #expect(Self.json(try await exchange(.POST, ofrep, body: #"{"context": {"targetingKey": "bob"}}"#).body)["value"] as? Bool == true)
            // Validation names the field; a key a file owns is refused.
            let invalid = try await exchange(.POST, api, headers: json, body: #"{"key": "x", "rollout": 140, "conditions": [{"property": "plan", "operator": "like", "value": 1}]}"#)
            #expect(invalid.status == 422)
            let paths = (Self.json(invalid.body)["issues"] as? [[String: Any]] ?? []).compactMap { $0["path"] as? String }
            #expect(paths.contains("rollout") && paths.contains("conditions[0].operator"))
            #expect(try await exchange(.POST, api, headers: json, body: #"{"key": "banner"}"#).status == 409)
            #expect(try await exchange(.DELETE, api + "?key=banner").status == 409)
            let one = Self.json(try await exchange(.GET, api + "?key=new-checkout").body)
            #expect(one["source"] as? String == "admin" && one["updatedBy"] as? String == "grace")
            #expect((one["evaluations"] as? [String: Any])?["total"] as? Int == 3)
        }
        // The flag survives a restart; deleting it is audited too.
        try await LoopbackHarness.withGateway(configuration) { _, port, admin in
            let api = "http://127.0.0.1:\(admin)/api/feature-flags"
            let ofrep = "http://127.0.0.1:\(port)/ofrep/v1/evaluate/flags/new-checkout"
            #expect(Self.json(try await exchange(.POST, ofrep, body: #"{"context": {"targetingKey": "bob"}}"#).body)["value"] as? Bool == true)
            #expect(try await exchange(.DELETE, api + "?key=new-checkout", headers: [("X-Rampart-Actor", "linus")]).status == 204)
            #expect(try await exchange(.POST, ofrep, body: "{}").status == 404)
            #expect(try await exchange(.DELETE, api + "?key=new-checkout").status == 404)
            let audit = Self.json(try await exchange(.GET, api + "/audit?key=new-checkout").body)["entries"] as? [[String: Any]] ?? []
            #expect(audit.compactMap { $0["action"] as? String } == ["delete", "update", "create"])
            #expect(audit.compactMap { $0["actor"] as? String } == ["linus", "grace", "grace"])
        }
        await upstream.stop()
    }

    @Test func aRouteFollowsAFlagAndResolvedFlagsGoUpstream() async throws {
        let green = await LoopbackHarness.startEcho(name: "green")
        let blue = await LoopbackHarness.startEcho(name: "blue")
        let folder = try Self.flagFolder("""
        {"flags": {"new-checkout": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                                    "targeting": {"if": [{"in": [{"var": "targetingKey"}, ["ada", "grace"]]}, "on", null]}}}}
        """)
        var configuration = Self.configuration(folder, upstream: blue)
        configuration.pools["green"] = PoolConfiguration(instances: [InstanceConfiguration(url: green.url)])
        configuration.routes = [
            RouteConfiguration(name: "green", match: .init(pathPrefix: "/checkout", flag: .init(key: "new-checkout", value: .bool(true))),
                               pool: "green", forwardFlags: .init(flags: ["new-checkout"])),
            RouteConfiguration(name: "blue", match: .init(pathPrefix: "/checkout"), pool: "app", forwardFlags: .init(flags: ["new-checkout"])),
        ]
        var identity = IdentityConfiguration(apiKeys: .init())
        for user in ["ada", "bob"] {
            identity.apiKeys?.keys.append(.init(name: user, sha256: SHA256.hash(data: Array("key-of-\(user)".utf8)).map { String(format: "%02x", $0) }.joined(),
                                                user: user))
        }
        configuration.identity = identity
        try await LoopbackHarness.withGateway(configuration) { _, port, _ in
            func call(_ user: String) async throws -> [String: Any] {
                Self.json(try await fetch("http://127.0.0.1:\(port)/checkout", headers: [("X-API-Key", "key-of-\(user)"),
                                                                                        ("X-Feature-Flags", "new-checkout=on")]).body)
            }
            let ada = try await call("ada")
            #expect(ada["instance"] as? String == "green")
            #expect((ada["headers"] as? [String: Any])?["x-feature-flags"] as? String == "new-checkout=on")
            let bob = try await call("bob")
            #expect(bob["instance"] as? String == "blue")
            // The client's own claim is replaced by what the gateway resolved.
            #expect((bob["headers"] as? [String: Any])?["x-feature-flags"] as? String == "new-checkout=off")
        }
        await green.stop()
        await blue.stop()
    }

    /// The metrics need the process's own registry: checked on the `rampart` binary.
    @Test func evaluationsAreCountedInTheMetrics() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "u")
        let folder = try Self.flagFolder(Self.appFlags)
        let file = try TemporaryConfiguration()
        let port = try freePort(), admin = try freePort()
        try file.write(port: port, admin: admin, poolURL: upstream.url, #"flags: {sources: ["\#(folder.path)"]}"#)
        let process = try RampartProcess(arguments: ["serve", "--config", file.path])
        defer { process.stop() }
        try await waitUntilListening(port: port)
        for _ in 0..<2 {
            _ = try await exchange(.POST, "http://127.0.0.1:\(port)/ofrep/v1/evaluate/flags/page-size", body: "{}")
        }
        _ = try await exchange(.POST, "http://127.0.0.1:\(port)/ofrep/v1/evaluate/flags/no-such-\(UUID().uuidString)", body: "{}")
        try await eventually {
            let metrics = try await fetch("http://127.0.0.1:\(admin)/metrics").body
            return metrics.contains(#"feature_flag_evaluations_total{flag="page-size",variant="small",reason="STATIC"} 2"#)
                && metrics.contains(#"feature_flag_evaluations_total{flag="(unknown)",variant="",reason="ERROR"} 1"#)
        }
        await upstream.stop()
    }
}

/// Runs a Python script to its end: its exit status and everything it printed.
func runPython(_ script: String, _ arguments: String...) async throws -> (status: Int32, output: String) {
    let runner = Process()
    runner.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    runner.arguments = ["python3", script] + arguments
    let output = Pipe()
    runner.standardOutput = output
    runner.standardError = output
    try runner.run()
    let data = try await offPool { output.fileHandleForReading.readDataToEndOfFile() }
    runner.waitUntilExit()
    return (runner.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// `../shared` beside the checkout (or `RAMPART_SHARED_DIR`), where CI keeps the public
/// conformance material; nil, with a note, when it is not there.
let sharedDirectory = SharedMaterial.locate("", requiredFile: "tools/ofrep-conformance.py", skipping: "the OFREP conformance run")

/// flagd's public vectors through the real binary, judged by the shared OFREP conformance
/// runner: every vector single and bulk, and the protocol checks.
@Suite(.enabled(if: sharedDirectory != nil, "../shared/tools/ofrep-conformance.py is not present"))
struct OFREPConformanceTests {
    @Test func everyVectorPassesThroughTheGateway() async throws {
        let shared = try #require(sharedDirectory)
        let upstream = await LoopbackHarness.startEcho(name: "u")
        let file = try TemporaryConfiguration()
        let port = try freePort()
        try file.write(port: port, admin: 0, poolURL: upstream.url,
                       #"flags: {sources: ["\#(shared.appendingPathComponent("conformance/flagd/flags").path)"]}"#)
        let process = try RampartProcess(arguments: ["serve", "--config", file.path])
        defer { process.stop() }
        try await waitUntilListening(port: port)
        let (status, text) = try await runPython(shared.appendingPathComponent("tools/ofrep-conformance.py").path,
                                                 "--base-url", "http://127.0.0.1:\(port)", "--bulk", "--protocol-checks")
        let summary = text.split(separator: "\n").last.map(String.init) ?? ""
        print("ofrep-conformance: \(summary)")
        #expect(status == 0, "\(text.suffix(4000))")
        #expect(summary.hasSuffix(" 0 failed") && !summary.hasPrefix("0 passed"), "\(summary)")
        await upstream.stop()
    }
}

/// Managed flags in a PostgreSQL shared by two replicas: a change made on one is served by
/// the other within its watch interval, the audit names who did what on which replica, and
/// a gateway whose store cannot be read does not start.
@Suite(.serialized, .enabled(if: PostgresTestDatabase.isAvailable, Comment(rawValue: PostgresTestDatabase.skipReason)))
struct SharedFlagStoreTests {
    /// A fresh database, and a gateway configuration whose managed flags live in it.
    static func withSharedStore(_ body: (PostgresTestDatabase, GatewayConfiguration) async throws -> Void) async throws {
        let upstream = await LoopbackHarness.startEcho(name: "a")
        let folder = try FeatureFlagTests.flagFolder(FeatureFlagTests.appFlags)
        try await PostgresTestDatabase.with { database in
            var configuration = FeatureFlagTests.configuration(folder, upstream: upstream)
            configuration.flags?.database = database.url
            try await body(database, configuration)
        }
        await upstream.stop()
    }

    @Test func twoReplicasServeTheSameManagedFlagsFromOnePostgres() async throws {
        try await Self.withSharedStore { database, configuration in
            let json = [("Content-Type", "application/json")]
            @Sendable func value(_ port: Int, _ key: String, user: String) async throws -> (status: Int, value: Any?) {
                let answer = try await exchange(.POST, "http://127.0.0.1:\(port)/ofrep/v1/evaluate/flags/\(key)",
                                                headers: json, body: #"{"context": {"targetingKey": "\#(user)"}}"#)
                return (answer.status, FeatureFlagTests.json(answer.body)["value"])
            }
            try await LoopbackHarness.withGateways([configuration, configuration]) { replicas in
                let (a, b) = (replicas[0], replicas[1])
                let created = try await exchange(.POST, "http://127.0.0.1:\(a.adminPort)/api/feature-flags",
                                                 headers: json + [("X-Rampart-Actor", "grace")],
                                                 body: #"{"key": "new-checkout", "rollout": 0, "targets": {"users": ["ada"]}}"#)
                #expect(created.status == 201, "\(created.body)")
                // Served at once where it was made, and by the other replica after its next look.
                #expect(try await value(a.trafficPort, "new-checkout", user: "ada").value as? Bool == true)
                try await eventually { try await value(b.trafficPort, "new-checkout", user: "ada").value as? Bool == true }
                #expect(try await value(b.trafficPort, "new-checkout", user: "bob").value as? Bool == false)

                let updated = try await exchange(.POST, "http://127.0.0.1:\(b.adminPort)/api/feature-flags",
                                                 headers: json + [("X-Rampart-Actor", "linus")],
                                                 body: #"{"key": "new-checkout", "rollout": 100}"#)
                #expect(updated.status == 200, "\(updated.body)")
                try await eventually { try await value(a.trafficPort, "new-checkout", user: "bob").value as? Bool == true }
                // The other replica shows who changed it.
                try await eventually {
                    let one = FeatureFlagTests.json(try await exchange(.GET, "http://127.0.0.1:\(a.adminPort)/api/feature-flags?key=new-checkout").body)
                    return one["updatedBy"] as? String == "linus"
                }

                #expect(try await exchange(.DELETE, "http://127.0.0.1:\(a.adminPort)/api/feature-flags?key=new-checkout",
                                           headers: [("X-Rampart-Actor", "ken")]).status == 204)
                try await eventually { try await value(b.trafficPort, "new-checkout", user: "ada").status == 404 }
                let audit = FeatureFlagTests.json(
                    try await exchange(.GET, "http://127.0.0.1:\(b.adminPort)/api/feature-flags/audit?key=new-checkout").body)["entries"]
                    as? [[String: Any]] ?? []
                #expect(audit.compactMap { $0["action"] as? String } == ["delete", "update", "create"])
                #expect(audit.compactMap { $0["actor"] as? String } == ["ken", "linus", "grace"])

                // A file's key cannot be taken through either replica.
                #expect(try await exchange(.POST, "http://127.0.0.1:\(b.adminPort)/api/feature-flags", headers: json,
                                           body: #"{"key": "banner"}"#).status == 409)
                let kept = try await exchange(.POST, "http://127.0.0.1:\(b.adminPort)/api/feature-flags", headers: json,
                                              body: #"{"key": "kept", "rollout": 100}"#)
                #expect(kept.status == 201)
            }
            // A replica started later reads what is stored before it serves.
            try await LoopbackHarness.withGateway(configuration) { _, port, _ in
                let kept = try await value(port, "kept", user: "anyone")
                #expect(kept.value as? Bool == true)
            }
        }
    }

    @Test func aReplicaKeepsServingItsFlagsWhilePostgresIsAwayAndWritesAgainWhenItReturns() async throws {
        try await Self.withSharedStore { database, configuration in
            try await LoopbackHarness.withGateway(configuration) { _, port, admin in
                let api = "http://127.0.0.1:\(admin)/api/feature-flags"
                let json = [("Content-Type", "application/json")]
                @Sendable func served(_ key: String) async throws -> Bool? {
                    let answer = try await exchange(.POST, "http://127.0.0.1:\(port)/ofrep/v1/evaluate/flags/\(key)", headers: json, body: "{}")
                    return FeatureFlagTests.json(answer.body)["value"] as? Bool
                }
                #expect(try await exchange(.POST, api, headers: json, body: #"{"key": "steady", "rollout": 100}"#).status == 201)

                try await database.refuseConnections()
                // The flags last read stay in force through several failed looks at the store.
                for _ in 0..<5 {
                    #expect(try await served("steady") == true)
                    try await Task.sleep(for: .milliseconds(100))
                }
                let refused = try await exchange(.POST, api, headers: json, body: #"{"key": "later", "rollout": 100}"#)
                #expect(refused.status == 503)
                #expect(refused.body.contains("the flag store failed"), "\(refused.body)")
                #expect(try await exchange(.GET, api + "/audit").status == 503)
                #expect(try await served("steady") == true)
                #expect(try await exchange(.POST, "http://127.0.0.1:\(port)/ofrep/v1/evaluate/flags/later", body: "{}").status == 404,
                        "a refused change is not served")

                try await database.allowConnections()
                try await eventually {
                    [200, 201].contains(try await exchange(.POST, api, headers: json, body: #"{"key": "later", "rollout": 100}"#).status)
                }
                #expect(try await served("later") == true)
                let audit = FeatureFlagTests.json(try await exchange(.GET, api + "/audit").body)["entries"] as? [[String: Any]] ?? []
                #expect(audit.compactMap { $0["key"] as? String }.last == "steady")
            }
        }
    }

    @Test func aGatewayWhoseFlagStoreCannotBeReadDoesNotStart() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "a")
        let folder = try FeatureFlagTests.flagFolder(FeatureFlagTests.appFlags)
        var configuration = FeatureFlagTests.configuration(folder, upstream: upstream)
        // A database that does not exist on the test server: the server answers, and refuses.
        let server = try #require(PostgresTestDatabase.serverURL)
        configuration.flags?.database = server.replacingOccurrences(of: "/rampart_test?", with: "/no_such_database_\(UUID().uuidString.prefix(8))?")
        configuration.listeners.traffic.address = "127.0.0.1:0"
        configuration.listeners.admin.address = "127.0.0.1:0"
        let gateway = try Gateway(configuration: configuration, logger: Logger(label: "test"))
        do {
            try await gateway.run()
            Issue.record("the gateway ran without its flag store")
        } catch let error as ConfigurationError {
            #expect(error.issues.map(\.path) == ["flags.database"])
            #expect("\(error)".contains("does not exist"), "\(error)")
            #expect(!"\(error)".contains(":rampart@"), "the password is not shown: \(error)")
        }
        await upstream.stop()
    }
}
