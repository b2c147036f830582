import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import RampartCore
import RampartBalancing
import RampartGateway
import RampartTesting
import Synchronization
import Testing

/// The gateway and real echo upstreams on 127.0.0.1, spoken to over real sockets.
@Suite(.serialized) struct ProxyTests {
    var client: HTTPClient { .shared }

    func get(_ url: String, headers: [(String, String)] = []) async throws -> (status: Int, body: String, headers: [(String, String)]) {
        try await fetch(url, headers: headers)
    }

    func instance(of body: String) -> String? {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["instance"] as? String
    }

    @Test func spreadsRequestsAndForwardsIdentity() async throws {
        let upstreams = [await LoopbackHarness.startEcho(name: "a"), await LoopbackHarness.startEcho(name: "b"), await LoopbackHarness.startEcho(name: "c")]
        try await LoopbackHarness.withGateway(LoopbackHarness.configuration(pool: upstreams)) { _, port, _ in
            var seen: [String: Int] = [:]
            for _ in 0..<30 {
                let answer = try await get("http://127.0.0.1:\(port)/hello?x=1")
                #expect(answer.status == 200)
                seen[instance(of: answer.body) ?? "?", default: 0] += 1
            }
            #expect(seen == ["a": 10, "b": 10, "c": 10])
            let answer = try await get("http://127.0.0.1:\(port)/x", headers: [("X-Request-Id", "my-id-1"), ("X-Forwarded-For", "6.6.6.6"),
                                                                               ("Connection", "X-Drop"), ("X-Drop", "secret")])
            let echoed = try #require(try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any])
            let headers = try #require(echoed["headers"] as? [String: String])
            #expect(headers["x-request-id"] == "my-id-1")
            #expect(headers["x-forwarded-for"] == "127.0.0.1")
            #expect(headers["x-drop"] == nil)
            #expect(headers["via"] == "1.1 rampart")
            #expect(headers["traceparent"]?.hasPrefix("00-") == true)
            #expect(answer.headers.contains { $0.0.lowercased() == "x-request-id" && $0.1 == "my-id-1" })
        }
        for upstream in upstreams { await upstream.stop() }
    }

    @Test func killedInstanceUnderLoadFailsNoIdempotentRequest() async throws {
        let upstreams = [await LoopbackHarness.startEcho(name: "a"), await LoopbackHarness.startEcho(name: "b"), await LoopbackHarness.startEcho(name: "c")]
        try await LoopbackHarness.withGateway(LoopbackHarness.configuration(pool: upstreams)) { gateway, port, _ in
            let failures = try await withThrowingTaskGroup(of: Int.self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        var failed = 0
                        for i in 0..<40 {
                            if worker == 0 && i == 10 { await upstreams[1].stop() }
                            if (try? await get("http://127.0.0.1:\(port)/load"))?.status != 200 { failed += 1 }
                        }
                        return failed
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(failures == 0)
            let status = try #require(gateway.pools.pool(named: "app")?.status)
            let dead = try #require(status.instances.first { $0.id.hasSuffix(":\(upstreams[1].port)") })
            // Passive health took it out after consecutive connect failures.
            #expect(dead.isEjected)
        }
        await upstreams[0].stop()
        await upstreams[2].stop()
    }

    @Test func drainedInstanceGetsNothingNewAndFinishesInFlight() async throws {
        let fast = await LoopbackHarness.startEcho(name: "fast")
        let slow = await LoopbackHarness.startEcho(name: "slow", delay: .milliseconds(800))
        try await LoopbackHarness.withGateway(LoopbackHarness.configuration(pool: [fast])) { gateway, port, admin in
            let register = try await post("http://127.0.0.1:\(admin)/api/system/load-balancer",
                                          json: "{\"action\":\"register\",\"pool\":\"app\",\"instance\":\"\(slow.url)\"}")
            #expect(register == 201)
            // Round-robin: one of the next two requests lands on the slow instance; start both.
            async let first = get("http://127.0.0.1:\(port)/one")
            async let second = get("http://127.0.0.1:\(port)/two")
            try await Task.sleep(for: .milliseconds(200))
            let before = slow.server.requests.count
            #expect(before == 1)
            let drain = try await post("http://127.0.0.1:\(admin)/api/system/load-balancer",
                                       json: "{\"action\":\"unregister\",\"pool\":\"app\",\"instance\":\"\(slow.url)\"}")
            #expect(drain == 202)
            for _ in 0..<10 { #expect(try await get("http://127.0.0.1:\(port)/after").status == 200) }
            #expect(slow.server.requests.count == before)
            let answers = try await [first, second]
            #expect(answers.map(\.status) == [200, 200])
            #expect(Set(answers.compactMap { instance(of: $0.body) }) == ["fast", "slow"])
            // Once idle, the drained instance is removed.
            for _ in 0..<40 where gateway.pools.pool(named: "app")!.instances.count > 1 { try await Task.sleep(for: .milliseconds(50)) }
            #expect(gateway.pools.pool(named: "app")!.instances.map(\.id) == ["127.0.0.1:\(fast.port)"])
            #expect(try await post("http://127.0.0.1:\(admin)/api/system/load-balancer", json: "{\"action\":\"fly\"}") == 400)
        }
        await fast.stop()
        await slow.stop()
    }

    func post(_ url: String, json: String, headers: [(String, String)] = []) async throws -> Int {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: json))
        let response = try await client.execute(request, timeout: .seconds(10))
        _ = try await response.body.collect(upTo: 1 << 20)
        return Int(response.status.code)
    }

    @Test func largeBodiesStreamBothWays() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "big")
        var configuration = LoopbackHarness.configuration(pool: [upstream])
        configuration.proxy.limits.maxBodyBytes = .init(1 << 30)
        try await LoopbackHarness.withGateway(configuration) { _, port, _ in
            let size = 256 << 20
            // Download: counted as it arrives, never collected.
            let response = try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/bytes/\(size)"), timeout: .seconds(120))
            var received = 0
            for try await chunk in response.body { received += chunk.readableBytes }
            #expect(received == size)
            // Upload, chunked: the echo reports how many bytes it received.
            var upload = HTTPClientRequest(url: "http://127.0.0.1:\(port)/upload")
            upload.method = .POST
            let chunk = ByteBuffer(repeating: 0x61, count: 1 << 20)
            upload.body = .stream(RepeatedChunks(chunk: chunk, count: size >> 20), length: .unknown)
            let answer = try await client.execute(upload, timeout: .seconds(120))
            let body = String(buffer: try await answer.body.collect(upTo: 1 << 20))
            #expect(answer.status.code == 200)
            #expect(body.contains("\"bodyBytes\":\(size)"))
        }
        await upstream.stop()
    }

    @Test func upstreamsAnsweringBeforeReadingTheBodyLeaveTheConnectionUsable() async throws {
        // An upstream may answer (401, 413, or 200) before it has read an upload. The body must
        // then be skipped by one reader only; a second one used to crash the gateway.
        let upstream = await LoopbackHarness.startEcho(name: "early")
        try await LoopbackHarness.withGateway(LoopbackHarness.configuration(pool: [upstream])) { _, port, _ in
            let body = String(repeating: "q", count: 20_000)
            let statuses = try await withThrowingTaskGroup(of: [Int].self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        var seen: [Int] = []
                        for round in 0..<25 {
                            let status = (worker + round) % 2 == 0 ? 200 : 401
                            seen.append(try await exchange(.POST, "http://127.0.0.1:\(port)/early/\(status)",
                                                           headers: [("Content-Type", "text/plain")], body: body).status)
                        }
                        return seen
                    }
                }
                return try await group.reduce(into: [Int]()) { $0 += $1 }
            }
            #expect(statuses.count == 200)
            #expect(statuses.allSatisfy { $0 == 200 || $0 == 401 || $0 == 502 }, "\(statuses)")
            #expect(try await exchange(.POST, "http://127.0.0.1:\(port)/echo", body: body).body.contains("\"bodyBytes\":20000"))
        }
        await upstream.stop()
    }

    @Test func bodyOverTheLimitIsRefused() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "small")
        var configuration = LoopbackHarness.configuration(pool: [upstream])
        configuration.proxy.limits.maxBodyBytes = .init(1024)
        try await LoopbackHarness.withGateway(configuration) { _, port, _ in
            var declared = HTTPClientRequest(url: "http://127.0.0.1:\(port)/upload")
            declared.method = .POST
            declared.body = .bytes(ByteBuffer(repeating: 0x61, count: 4096))
            #expect(try await client.execute(declared, timeout: .seconds(10)).status.code == 413)
            let raw = try await rawExchange(port: port, "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n\(String(repeating: "a", count: 2048))\r\n0\r\n\r\n")
            #expect(raw.hasPrefix("HTTP/1.1 413"))
        }
        await upstream.stop()
    }

    @Test func reloadWithABrokenFileKeepsServing() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "r")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-reload-\(UUID().uuidString).yml").path
        // The same listeners as the running gateway (the harness binds port 0): changing them needs a restart.
        let good = """
            listeners: {traffic: {address: "127.0.0.1:0"}, admin: {address: "127.0.0.1:0"}}
            log: {accessLog: false}
            pools:
              app:
                instances: ["\(upstream.url)"]
            routes:
              - {match: {pathPrefix: /}, pool: app}

            """
        try good.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let configuration = try ConfigurationLoader(environment: [:]).load(path: path)
        try await LoopbackHarness.withGateway(configuration, configurationPath: path) { gateway, port, admin in
            try "pools:\n  app:\n    instances: [\"not a url\"]\n".write(toFile: path, atomically: true, encoding: .utf8)
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(admin)/api/system/config/reload")
            request.method = .POST
            let refused = try await client.execute(request, timeout: .seconds(10))
            let body = String(buffer: try await refused.body.collect(upTo: 1 << 20))
            #expect(refused.status.code == 422)
            #expect(body.contains("pools.app.instances[0].url"))
            #expect(try await get("http://127.0.0.1:\(port)/still").status == 200)
            try (good + "  - {match: {pathPrefix: /teapot}, respond: {status: 418, body: tea}}\n").write(toFile: path, atomically: true, encoding: .utf8)
            let accepted = try await client.execute(request, timeout: .seconds(10))
            _ = try await accepted.body.collect(upTo: 1 << 20)
            #expect(accepted.status.code == 200)
            #expect(gateway.live.snapshot.generation == 2)
            #expect(try await get("http://127.0.0.1:\(port)/teapot").status == 418)
        }
        await upstream.stop()
    }

    @Test func adminNeedsTheToken() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "t")
        var configuration = LoopbackHarness.configuration(pool: [upstream])
        configuration.listeners.admin.token = "a-long-enough-admin-token"
        try await LoopbackHarness.withGateway(configuration) { _, _, admin in
            #expect(try await get("http://127.0.0.1:\(admin)/api/system/load-balancer").status == 401)
            #expect(try await get("http://127.0.0.1:\(admin)/api/system/load-balancer", headers: [("Authorization", "Bearer wrong")]).status == 401)
            let ok = try await get("http://127.0.0.1:\(admin)/api/system/load-balancer", headers: [("Authorization", "Bearer a-long-enough-admin-token")])
            #expect(ok.status == 200)
            #expect(ok.body.contains("\"strategy\":\"round_robin\""))
            #expect(try await get("http://127.0.0.1:\(admin)/ready", headers: [("Authorization", "Bearer a-long-enough-admin-token")]).status == 200)
        }
        await upstream.stop()
    }

    @Test func activeHealthChecksGateTraffic() async throws {
        let up = await LoopbackHarness.startEcho(name: "up")
        let configuration = LoopbackHarness.configuration(
            pool: [up], healthCheck: .init(path: "/status/200", interval: .milliseconds(200), timeout: .milliseconds(100)))
        var withDead = configuration
        withDead.pools["app"]!.instances.append(InstanceConfiguration(url: "http://127.0.0.1:1"))
        try await LoopbackHarness.withGateway(withDead) { gateway, port, admin in
            for _ in 0..<50 where gateway.pools.pool(named: "app")!.instances.contains(where: { $0.health == .starting }) {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(gateway.pools.pool(named: "app")!.instances.map(\.health) == [.healthy, .unhealthy])
            for _ in 0..<10 { #expect(try await get("http://127.0.0.1:\(port)/").status == 200) }
            #expect(try await get("http://127.0.0.1:\(admin)/ready").status == 200)
            let metrics = try await get("http://127.0.0.1:\(admin)/metrics")
            #expect(metrics.status == 200)
        }
        await up.stop()
    }

    /// The direct path serves the first GET; the POST hands the connection to the full pipeline
    /// with its body still to come in a later packet; the last GET is served there. Every
    /// request is answered, once, in order.
    @Test func aConnectionHandedOverMidWayAnswersEveryRequestInOrder() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "handover")
        try await LoopbackHarness.withGateway(LoopbackHarness.configuration(pool: [upstream])) { _, port, _ in
            let answer = try await rawExchange(port: port, parts: [
                "GET /one HTTP/1.1\r\nHost: x\r\n\r\n",
                "POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n",
                "hello",
                "GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            ])
            #expect(answer.components(separatedBy: "HTTP/1.1 200 ").count == 4, "\(answer.prefix(300))")
            let paths = ["/one", "/two", "/three"].map { answer.range(of: "\"path\":\"\($0)\"")?.lowerBound }
            #expect(paths.allSatisfy { $0 != nil } && paths[0]! < paths[1]! && paths[1]! < paths[2]!, "\(answer.prefix(300))")
            #expect(answer.contains("\"bodyBytes\":5"))
        }
        #expect(upstream.server.requests.paths == ["/one", "/two", "/three"])
        await upstream.stop()
    }

    /// A kept upstream connection that the upstream closes as the next request arrives (it
    /// read it, then hung up, as an upstream timing the connection out does): the direct path
    /// sends the `GET` once more on a new connection, and the client never sees the failure,
    /// though the pool has no other instance to retry on.
    @Test func theDirectPathResendsAGetOnceWhenAKeptConnectionWasStale() async throws {
        // Each connection answers its first request (keep-alive promised) and hangs up on the next.
        let seen = Mutex<[Int: Int]>([:])
        let upstream = try await ScriptedUpstream.start { request in
            let count = seen.withLock { $0[request.connection, default: 0] += 1; return $0[request.connection]! }
            return count == 2 ? .hangUp : .answer("HTTP/1.1 200 OK\r\ncontent-length: \(request.path.utf8.count)\r\n\r\n\(request.path)")
        }
        var configuration = GatewayConfiguration()
        configuration.pools = ["app": PoolConfiguration(instances: [InstanceConfiguration(url: upstream.url.description)])]
        configuration.routes = [RouteConfiguration(name: "app", match: .init(pathPrefix: "/"), pool: "app")]
        try await LoopbackHarness.withGateway(configuration) { _, port, _ in
            let answer = try await rawExchange(port: port, parts: [
                "GET /first HTTP/1.1\r\nHost: x\r\n\r\n",
                "GET /second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            ])
            #expect(answer.components(separatedBy: "HTTP/1.1 200 ").count == 3, "\(answer.prefix(400))")
            #expect(answer.contains("first") && answer.contains("second"))
        }
        // The second request went twice: on the kept connection, then on a new one.
        #expect(upstream.requests.map { "\($0.connection) \($0.path)" } == ["1 /first", "1 /second", "2 /second"])
        try await upstream.stop()
    }

    /// Session affinity through the proxy: a cookie (or header) picks the instance, the same
    /// one every time for the same value, on the direct path and through the full pipeline
    /// (a POST), and different sessions spread.
    @Test(arguments: [HashSource.cookie("sid"), .header("X-Session")])
    func consistentHashingKeepsASessionOnOneInstance(source: HashSource) async throws {
        let upstreams = [await LoopbackHarness.startEcho(name: "a"), await LoopbackHarness.startEcho(name: "b"), await LoopbackHarness.startEcho(name: "c")]
        let configuration = LoopbackHarness.configuration(pool: upstreams, strategy: .consistentHash(on: source))
        try await LoopbackHarness.withGateway(configuration) { _, port, _ in
            func session(_ id: String) -> (String, String) {
                if case .cookie(let name) = source { return ("Cookie", "theme=dark; \(name)=\(id)") }
                return ("X-Session", id)
            }
            var seen = Set<String>()
            for id in (0..<12).map({ "user-\($0)" }) {
                let first = instance(of: try await fetch("http://127.0.0.1:\(port)/a", headers: [session(id)]).body)
                #expect(first != nil)
                for path in ["/b", "/c?x=1"] {
                    #expect(instance(of: try await fetch("http://127.0.0.1:\(port)\(path)", headers: [session(id)]).body) == first)
                }
                var post = HTTPClientRequest(url: "http://127.0.0.1:\(port)/form")
                post.method = .POST
                post.headers.add(name: session(id).0, value: session(id).1)
                post.body = .bytes(ByteBuffer(string: "x=1"))
                let response = try await client.execute(post, timeout: .seconds(10))
                #expect(instance(of: String(buffer: try await response.body.collect(upTo: 1 << 20))) == first)
                if let first { seen.insert(first) }
            }
            #expect(seen.count > 1, "12 sessions all on \(seen)")
        }
        for upstream in upstreams { await upstream.stop() }
    }

    /// A client that pipelines requests and does not read the answers: once the connection
    /// stops taking writes, the gateway stops reading requests (the answers do not pile up in
    /// memory); when the client reads again, every request is answered, in order.
    @Test func aClientNotReadingItsAnswersHoldsItsNextRequestsBack() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "pipeline")
        try await LoopbackHarness.withGateway(LoopbackHarness.configuration(pool: [upstream])) { _, port, _ in
            let count = 600, size = 60_000  // 36 MB of answers, far more than the sockets hold
            // A small receive buffer, whatever the machine's settings: what the sockets can hold
            // stays far below the answers.
            let fd = try await offPool { try connectedSocket(port: port, receiveBuffer: 64 * 1024) }
            defer { close(fd) }
            var requests = String(repeating: "GET /bytes/\(size) HTTP/1.1\r\nHost: x\r\n\r\n", count: count - 1)
            requests += "GET /bytes/\(size) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            send(requests, on: fd)
            try await Task.sleep(for: .seconds(2))
            let forwardedUnread = upstream.server.requests.count
            #expect(forwardedUnread > 0)
            #expect(forwardedUnread < count / 2, "\(forwardedUnread) requests forwarded while no answer was read")
            let (answers, bytes) = try await offPool { () -> (Int, Int) in
                var answers = 0, total = 0
                var buffer = [UInt8](repeating: 0, count: 1 << 16)
                var carry: [UInt8] = []
                let marker = Array("HTTP/1.1 200 ".utf8)
                while true {
                    let n = recv(fd, &buffer, buffer.count, 0)
                    if n <= 0 { break }
                    total += n
                    // Count answer heads, a marker possibly cut between two reads.
                    let window = carry + buffer[0..<n]
                    var i = 0
                    while i + marker.count <= window.count {
                        if window[i] == marker[0], Array(window[i..<(i + marker.count)]) == marker { answers += 1; i += marker.count } else { i += 1 }
                    }
                    carry = Array(window.suffix(marker.count - 1))
                }
                return (answers, total)
            }
            #expect(answers == count)
            #expect(bytes > count * size)
        }
        #expect(upstream.server.requests.count == 600)
        await upstream.stop()
    }

    /// A client that goes away while the upstream owes the answer's head: the gateway calls the
    /// upstream exchange off (as nginx does by default) instead of waiting for an answer nobody
    /// will read, on the direct path and on the full pipeline.
    @Test(arguments: [true, false])
    func aClientGoingAwayCallsOffTheUpstreamExchange(directPath: Bool) async throws {
        let slow = await LoopbackHarness.startEcho(name: "slow", delay: .seconds(20))
        var configuration = LoopbackHarness.configuration(pool: [slow])
        configuration.proxy.directPath = directPath
        try await LoopbackHarness.withGateway(configuration) { gateway, port, _ in
            let pool = try #require(gateway.pools.pool(named: "app"))
            let fd = try await offPool { try connectedSocket(port: port) }
            send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n", on: fd)
            #expect(await waitUntil(within: .seconds(10)) { slow.server.requests.count == 1 })
            #expect(pool.status.instances.map(\.activeRequests) == [1])
            close(fd)
            // Ends with the client, not with the upstream's 20 s.
            #expect(await waitUntil(within: .seconds(10)) { pool.status.instances.map(\.activeRequests) == [0] })
        }
        await slow.stop()
    }

    @Test func smallAnswersHeadAnd204PassWhole() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "small")
        try await LoopbackHarness.withGateway(LoopbackHarness.configuration(pool: [upstream])) { _, port, _ in
            // At the buffering limit and just over it: the same bytes either way.
            for size in [0, 1, 65_536, 65_537, 300_000] {
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/bytes/\(size)")
                request.method = .GET
                let response = try await client.execute(request, timeout: .seconds(10))
                #expect(response.status == .ok)
                #expect(response.headers.first(name: "content-length") == String(size))
                let body = try await response.body.collect(upTo: 1 << 20)
                #expect(body.readableBytes == size)
            }
            var head = HTTPClientRequest(url: "http://127.0.0.1:\(port)/bytes/512")
            head.method = .HEAD
            let headResponse = try await client.execute(head, timeout: .seconds(10))
            #expect(headResponse.status == .ok)
            // The echo answers HEAD with the length its JSON would have; no body follows.
            #expect((Int(headResponse.headers.first(name: "content-length") ?? "") ?? 0) > 0)
            #expect(try await headResponse.body.collect(upTo: 1024).readableBytes == 0)
            let noContent = try await get("http://127.0.0.1:\(port)/status/204")
            #expect(noContent.status == 204)
            #expect(noContent.body.isEmpty)
            // The connection stays usable after each of them.
            #expect(try await get("http://127.0.0.1:\(port)/after").status == 200)
        }
        await upstream.stop()
    }

    /// The gateway's own error answers, on the direct path (a GET) and through the full
    /// pipeline (a POST), have the same head: the standard reason phrase, the gateway's `Date`,
    /// and the request id as a field as well as in the body.
    @Test func errorAnswersOnBothPathsCarryDateReasonAndRequestID() async throws {
        var configuration = GatewayConfiguration()
        configuration.pools = ["app": PoolConfiguration(instances: [InstanceConfiguration(url: "http://127.0.0.1:1")])]
        configuration.routes = [RouteConfiguration(name: "app", match: .init(pathPrefix: "/"), pool: "app")]
        try await LoopbackHarness.withGateway(configuration) { _, port, _ in
            for request in ["GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                            "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\na"] {
                let answer = try await rawExchange(port: port, request)
                #expect(answer.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"), "\(answer)")
                let head = answer.components(separatedBy: "\r\n\r\n")[0].components(separatedBy: "\r\n").dropFirst()
                func field(_ name: String) -> String? {
                    head.first { $0.lowercased().hasPrefix(name.lowercased() + ": ") }.map { String($0.dropFirst(name.count + 2)) }
                }
                #expect(field("Date")?.hasSuffix(" GMT") == true, "\(answer)")
                let id = try #require(field("X-Request-Id"), "\(answer)")
                #expect(answer.contains("\"requestId\":\"\(id)\""), "\(answer)")
            }
        }
    }

    @Test func failoverToTheSecondaryAndBackWithRealInstances() async throws {
        let primary = await LoopbackHarness.startEcho(name: "primary")
        let secondary = await LoopbackHarness.startEcho(name: "secondary")
        var configuration = LoopbackHarness.configuration(
            pool: [primary, secondary], healthCheck: .init(path: "/status/200", interval: .milliseconds(100), timeout: .milliseconds(100),
                                                           healthyThreshold: 1, unhealthyThreshold: 1))
        configuration.pools["app"]!.instances[1].priority = 1
        let primaryPort = primary.port
        try await LoopbackHarness.withGateway(configuration) { _, port, _ in
            try await eventually { instance(of: try await get("http://127.0.0.1:\(port)/").body) == "primary" }
            for _ in 0..<10 { #expect(instance(of: try await get("http://127.0.0.1:\(port)/").body) == "primary") }
            // The primary region goes down: traffic moves to the secondary group, and with
            // retries on, no request fails while the health checks notice.
            await primary.stop()
            for _ in 0..<20 {
                let answer = try await get("http://127.0.0.1:\(port)/")
                #expect(answer.status == 200)
                #expect(instance(of: answer.body) == "secondary")
            }
            // It comes back on the same address: traffic returns.
            let restarted = await LoopbackHarness.startEcho(name: "primary-again", port: primaryPort)
            try await eventually { instance(of: try await get("http://127.0.0.1:\(port)/").body) == "primary-again" }
            for _ in 0..<10 { #expect(instance(of: try await get("http://127.0.0.1:\(port)/").body) == "primary-again") }
            await restarted.stop()
        }
        await secondary.stop()
    }
}

/// A GET through the shared client: status, body as text, and headers.
func fetch(_ url: String, headers: [(String, String)] = []) async throws -> (status: Int, body: String, headers: [(String, String)]) {
    var request = HTTPClientRequest(url: url)
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
    let body = try await response.body.collect(upTo: 1 << 20)
    return (Int(response.status.code), String(buffer: body), response.headers.map { ($0.name, $0.value) })
}

/// Sends `text` on a fresh connection and reads until the server closes it (or 5 s pass).
/// Blocking socket calls run on a thread of their own, never on the concurrency pool the
/// in-process gateway needs.
func rawExchange(port: Int, _ text: String) async throws -> String {
    try await rawExchange(port: port, parts: [text])
}

/// Sends `parts` on a fresh connection, each in a packet of its own 100 ms after the one
/// before, and reads until the server closes it (or 5 s pass).
func rawExchange(port: Int, parts: [String]) async throws -> String {
    try await offPool { try blockingExchange(port: port, parts) }
}

/// Runs blocking work on a separate thread.
func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
    }
}

private func blockingExchange(port: Int, _ parts: [String]) throws -> String {
    let fd = try connectedSocket(port: port)
    defer { close(fd) }
    for (index, part) in parts.enumerated() {
        if index > 0 { Thread.sleep(forTimeInterval: 0.1) }
        send(part, on: fd)
    }
    var result: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        result += buffer[0..<n]
    }
    return String(decoding: result, as: UTF8.self)
}

/// A blocking socket connected to 127.0.0.1:`port`, reads timing out after 5 s; the caller closes it.
/// `receiveBuffer` fixes the socket's receive buffer (the kernel otherwise sizes it).
func connectedSocket(port: Int, receiveBuffer: Int32? = nil) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    if var size = receiveBuffer { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size)) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(fd)
        throw POSIXError(.ECONNREFUSED)
    }
    return fd
}

func send(_ text: String, on fd: Int32) {
    var bytes = Array(text.utf8)
    _ = send(fd, &bytes, bytes.count, Int32(MSG_NOSIGNAL))
}

/// `count` copies of one buffer, as a request body stream.
struct RepeatedChunks: AsyncSequence, Sendable {
    let chunk: ByteBuffer
    let count: Int

    struct AsyncIterator: AsyncIteratorProtocol {
        let chunk: ByteBuffer
        var left: Int
        mutating func next() async -> ByteBuffer? {
            guard left > 0 else { return nil }
            left -= 1
            return chunk
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(chunk: chunk, left: count) }
}

