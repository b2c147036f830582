import HTTPTypes
import PropertyBased
import RampartCore
import RampartShield
import Testing

@Suite struct IPRulesTests {
    let rules = IPRules(allow: [CIDRBlock("10.1.2.3")!, CIDRBlock("2001:db8:1::/48")!, CIDRBlock("192.0.2.0/24")!],
                        deny: [CIDRBlock("10.0.0.0/8")!, CIDRBlock("2001:db8::/32")!, CIDRBlock("192.0.2.0/24")!])

    @Test func longestPrefixDecides() {
        #expect(rules.decision(for: IPAddress("10.1.2.3")!) == .allow)
        #expect(rules.decision(for: IPAddress("10.1.2.4")!) == .deny)
        #expect(rules.decision(for: IPAddress("11.0.0.1")!) == .unlisted)
        #expect(rules.decision(for: IPAddress("2001:db8:1::5")!) == .allow)
        #expect(rules.decision(for: IPAddress("2001:db8:2::5")!) == .deny)
        // Listed on both sides at the same prefix: deny.
        #expect(rules.decision(for: IPAddress("192.0.2.9")!) == .deny)
        // An IPv4-mapped IPv6 client is judged by its IPv4 address.
        #expect(rules.decision(for: IPAddress("::ffff:10.1.2.4")!) == .deny)
        #expect(IPRules().decision(for: IPAddress("10.1.2.3")!) == .unlisted)
    }

    @Test func agreesWithALinearScanOfTheLists() async {
        // Property: the trie's answer equals the most specific listed range containing the
        // address, deny winning ties; checked against a plain scan over random addresses.
        let allow = ["10.1.2.3", "192.0.2.0/24", "172.16.0.0/12"].map { CIDRBlock($0)! }
        let deny = ["10.0.0.0/8", "192.0.2.0/24", "172.16.5.0/24", "0.0.0.0/1"].map { CIDRBlock($0)! }
        let rules = IPRules(allow: allow, deny: deny)
        await propertyCheck(input: Gen.uint32()) { raw in
            let address = IPAddress(v4: raw)
            let matches = allow.filter { $0.contains(address) }.map { ($0.prefixLength, IPRules.Decision.allow) }
                + deny.filter { $0.contains(address) }.map { ($0.prefixLength, IPRules.Decision.deny) }
            let longest = matches.map(\.0).max()
            let expected: IPRules.Decision = longest.map { length in
                matches.contains { $0.0 == length && $0.1 == .deny } ? .deny : .allow
            } ?? .unlisted
            #expect(rules.decision(for: address) == expected)
        }
    }
}

@Suite struct SecurityHeadersTests {
    @Test func addsWhatIsConfiguredAndKeepsWhatTheUpstreamSet() {
        var configuration = SecurityHeadersConfiguration.recommended
        configuration.permissionsPolicy = "camera=()"
        let headers = SecurityHeaders(configuration)
        var fields: HTTPFields = [HTTPField.Name("X-Frame-Options")!: "SAMEORIGIN"]
        headers.apply(to: &fields, isSecure: false, nonce: nil)
        #expect(fields[HTTPField.Name("X-Frame-Options")!] == "SAMEORIGIN")
        #expect(fields[values: HTTPField.Name("X-Frame-Options")!].count == 1)
        #expect(fields[HTTPField.Name("X-Content-Type-Options")!] == "nosniff")
        #expect(fields[HTTPField.Name("Referrer-Policy")!] == "strict-origin-when-cross-origin")
        #expect(fields[HTTPField.Name("Permissions-Policy")!] == "camera=()")
        #expect(fields[HTTPField.Name("Cross-Origin-Opener-Policy")!] == "same-origin")
        // HSTS only over TLS.
        #expect(fields[HTTPField.Name("Strict-Transport-Security")!] == nil)
        var secure: HTTPFields = [:]
        headers.apply(to: &secure, isSecure: true, nonce: nil)
        #expect(secure[HTTPField.Name("Strict-Transport-Security")!] == "max-age=31536000; includeSubDomains")
    }

    @Test func overrideReplacesAndARouteCanTurnAHeaderOff() {
        let global = SecurityHeadersConfiguration(contentTypeOptions: true, frameOptions: "DENY", override: true)
        var fields: HTTPFields = [HTTPField.Name("X-Frame-Options")!: "SAMEORIGIN"]
        SecurityHeaders(global).apply(to: &fields, isSecure: false, nonce: nil)
        #expect(fields[HTTPField.Name("X-Frame-Options")!] == "DENY")
        let route = global.merged(with: SecurityHeadersConfiguration(frameOptions: ""))
        var routeFields: HTTPFields = [:]
        SecurityHeaders(route).apply(to: &routeFields, isSecure: false, nonce: nil)
        #expect(routeFields[HTTPField.Name("X-Frame-Options")!] == nil)
        #expect(routeFields[HTTPField.Name("X-Content-Type-Options")!] == "nosniff")
    }

    @Test func theNonceFillsThePolicy() {
        let headers = SecurityHeaders(SecurityHeadersConfiguration(contentSecurityPolicy: "script-src 'nonce-{nonce}' 'strict-dynamic'"))
        #expect(headers.needsNonce)
        var generator = RequestRandom(seed: 7, 9)
        let nonce = SecurityHeaders.makeNonce(using: &generator)
        #expect(nonce.count == 24 && nonce.hasSuffix("=="))
        #expect(nonce != SecurityHeaders.makeNonce(using: &generator))
        var fields: HTTPFields = [:]
        headers.apply(to: &fields, isSecure: false, nonce: nonce)
        #expect(fields[HTTPField.Name("Content-Security-Policy")!] == "script-src 'nonce-\(nonce)' 'strict-dynamic'")
    }

    @Test func badValuesAreNamedByPath() {
        let issues = SecurityHeadersConfiguration(frameOptions: "ALLOW-FROM x", referrerPolicy: "a\r\nb").validate(at: "shield.securityHeaders")
        let text = issues.map(\.description)
        #expect(text.contains("shield.securityHeaders.frameOptions: use DENY or SAMEORIGIN, got \"ALLOW-FROM x\""), "\(text)")
        #expect(text.contains("shield.securityHeaders.referrerPolicy: not a valid header value"), "\(text)")
    }
}
