import Foundation
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
}
