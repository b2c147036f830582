import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import RampartCore
import RampartGateway
import RampartShield
import RampartTesting
import Testing

/// The shield's IP rules (admit phase) and security headers (shape phase) in a running gateway.
@Suite(.serialized) struct ShieldGatewayTests {
    func get(_ url: String, headers: [(String, String)] = []) async throws -> (status: Int, body: String, headers: [(String, String)]) {
        try await fetch(url, headers: headers)
    }

    func header(_ name: String, in headers: [(String, String)]) -> [String] {
        headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1)
    }

    @Test func deniedAddressesAreRefusedAndAllowedOnesWin() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "a")
        var configuration = LoopbackHarness.configuration(pool: [upstream])
        configuration.proxy.trustedProxies = CIDRSet([CIDRBlock("127.0.0.1")!])
        configuration.shield.ipRules = .init(allow: [CIDRBlock("203.0.113.7")!], deny: [CIDRBlock("203.0.113.0/24")!])
        try await LoopbackHarness.withGateway(configuration) { _, port, _ in
            // The client behind the trusted proxy decides, not the proxy.
            let denied = try await get("http://127.0.0.1:\(port)/x", headers: [("X-Forwarded-For", "203.0.113.9")])
            #expect(denied.status == 403)
            let error = try #require(try JSONSerialization.jsonObject(with: Data(denied.body.utf8)) as? [String: Any])
            #expect(error["error"] as? String == "forbidden")
            #expect(!header("X-Request-Id", in: denied.headers).isEmpty)
            #expect(try await get("http://127.0.0.1:\(port)/x", headers: [("X-Forwarded-For", "203.0.113.7")]).status == 200)
            #expect(try await get("http://127.0.0.1:\(port)/x", headers: [("X-Forwarded-For", "198.51.100.1")]).status == 200)
        }
        #expect(upstream.server.requests.count == 2)
        await upstream.stop()
    }

    @Test func securityHeadersWithRouteOverridesAndANoncePerResponse() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "a")
        var configuration = LoopbackHarness.configuration(pool: [upstream])
        var global = SecurityHeadersConfiguration.recommended
        global.contentSecurityPolicy = "script-src 'nonce-{nonce}'"
        configuration.shield.securityHeaders = global
        configuration.routes.append(RouteConfiguration(name: "embed", match: .init(pathPrefix: "/embed"), pool: "app",
                                                       securityHeaders: .init(contentSecurityPolicy: "", frameOptions: "SAMEORIGIN")))
        try await LoopbackHarness.withGateway(configuration) { _, port, _ in
            let page = try await get("http://127.0.0.1:\(port)/page", headers: [("X-CSP-Nonce", "forged")])
            #expect(page.status == 200)
            #expect(header("X-Frame-Options", in: page.headers) == ["DENY"])
            #expect(header("X-Content-Type-Options", in: page.headers) == ["nosniff"])
            #expect(header("Strict-Transport-Security", in: page.headers).isEmpty)  // not TLS
            let policy = try #require(header("Content-Security-Policy", in: page.headers).first)
            let echoed = try #require(try JSONSerialization.jsonObject(with: Data(page.body.utf8)) as? [String: Any])
            let sent = try #require((echoed["headers"] as? [String: String])?["x-csp-nonce"])
            #expect(sent != "forged")
            #expect(policy == "script-src 'nonce-\(sent)'")
            let again = try await get("http://127.0.0.1:\(port)/page")
            #expect(header("Content-Security-Policy", in: again.headers).first != policy)

            let embed = try await get("http://127.0.0.1:\(port)/embed/widget", headers: [("X-CSP-Nonce", "forged")])
            #expect(header("X-Frame-Options", in: embed.headers) == ["SAMEORIGIN"])
            #expect(header("Content-Security-Policy", in: embed.headers).isEmpty)
            let embedEchoed = try #require(try JSONSerialization.jsonObject(with: Data(embed.body.utf8)) as? [String: Any])
            #expect((embedEchoed["headers"] as? [String: String])?["x-csp-nonce"] == nil)

            // Refusals carry the headers too.
            let missing = try await rawExchange(port: port, "GET / HTTP/1.1\r\nHost: bad host\r\n\r\n")
            #expect(missing.contains("X-Frame-Options: DENY"))
        }
        await upstream.stop()
    }

    func admin(_ port: Int, _ json: String) async throws -> (status: Int, body: String) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/api/system/threat-detection")
        request.method = .POST
        request.body = .bytes(ByteBuffer(string: json))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 20)))
    }

    @Test func blocksThroughTheAdminAPISurviveARestartAndExpire() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "a")
        var configuration = LoopbackHarness.configuration(pool: [upstream])
        let database = FileManager.default.temporaryDirectory.appendingPathComponent("blocks-\(UUID().uuidString).sqlite").path
        defer { try? FileManager.default.removeItem(atPath: database) }
        configuration.shield.blocks.database = database
        configuration.proxy.trustedProxies = CIDRSet([CIDRBlock("127.0.0.1")!])
        configuration.shield.ipRules = .init(allow: [CIDRBlock("198.51.100.200")!])
        let client: @Sendable (String) -> [(String, String)] = { address in [("X-Forwarded-For", address)] }
        try await LoopbackHarness.withGateway(configuration) { _, port, adminPort in
            #expect(try await admin(adminPort, #"{"action": "block", "address": "198.51.100.0/24", "reason": "scraping"}"#).status == 201)
            #expect(try await admin(adminPort, #"{"action": "block", "address": "192.0.2.1", "duration": "1s"}"#).status == 201)
            let blocked = try await get("http://127.0.0.1:\(port)/x", headers: client("198.51.100.20"))
            #expect(blocked.status == 403)
            #expect(blocked.body.contains("\"blocked\""))
            // The allow list wins over a block.
            #expect(try await get("http://127.0.0.1:\(port)/x", headers: client("198.51.100.200")).status == 200)
            #expect(try await get("http://127.0.0.1:\(port)/x", headers: client("192.0.2.1")).status == 403)
            // Bad input is a 400 with a message, and changes nothing.
            let bad = try await admin(adminPort, #"{"action": "block", "address": "300.1.1.1"}"#)
            #expect(bad.status == 400)
            #expect(bad.body.contains("is not an IP address or CIDR range"))
            #expect(try await admin(adminPort, #"{"action": "block", "address": "10.0.0.1", "duration": "soon"}"#).status == 400)
            #expect(try await admin(adminPort, #"{"action": "unblock", "address": "10.9.9.9"}"#).status == 404)
            let listed = try await get("http://127.0.0.1:\(adminPort)/api/system/threat-detection")
            #expect(listed.body.contains("198.51.100.0/24") && listed.body.contains("scraping"))
            try await Task.sleep(for: .milliseconds(1200))
            #expect(try await get("http://127.0.0.1:\(port)/x", headers: client("192.0.2.1")).status == 200)
        }
        // A new gateway on the same database still blocks, until unblocked.
        try await LoopbackHarness.withGateway(configuration) { _, port, adminPort in
            let stillBlocked = try await get("http://127.0.0.1:\(port)/x", headers: client("198.51.100.20"))
            #expect(stillBlocked.status == 403)
            #expect(try await admin(adminPort, #"{"action": "unblock", "address": "198.51.100.0/24"}"#).status == 200)
            #expect(try await get("http://127.0.0.1:\(port)/x", headers: client("198.51.100.20")).status == 200)
        }
        await upstream.stop()
    }
}

@Suite struct CSRFGatewayTests {
    func post(_ url: String, _ headers: [(String, String)]) async throws -> Int {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: "{}"))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        _ = try await response.body.collect(upTo: 1 << 20)
        return Int(response.status.code)
    }

    @Test func crossSitePostIsRefusedSameSiteAccepted() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "a")
        var configuration = LoopbackHarness.configuration(pool: [upstream])
        configuration.shield.csrf = .init(allowedOrigins: ["https://quiz.example"], authCookie: "session")
        configuration.routes.insert(RouteConfiguration(name: "hooks", match: .init(pathPrefix: "/hooks"), pool: "app", csrf: false), at: 0)
        try await LoopbackHarness.withGateway(configuration) { _, port, _ in
            let base = "http://127.0.0.1:\(port)"
            let crossSite = try await post("\(base)/api/answer", [("Cookie", "session=s1"), ("Origin", "https://evil.example")])
            #expect(crossSite == 403)
            #expect(try await post("\(base)/api/answer", [("Cookie", "session=s1"), ("Origin", "https://quiz.example")]) == 200)
            #expect(try await post("\(base)/api/answer", [("Cookie", "session=s1"), ("Origin", base)]) == 200)
            #expect(try await post("\(base)/api/answer", [("Origin", "https://evil.example")]) == 200)
            #expect(try await post("\(base)/hooks/payment", [("Cookie", "session=s1"), ("Origin", "https://evil.example")]) == 200)
        }
        #expect(upstream.server.requests.count == 4)
        await upstream.stop()
    }
}
