import HTTPTypes
import PropertyBased
import RampartCore
import RampartShield
import Testing
import RampartStore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

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

    /// The length check that rules most of an answer's field names out before any comparison:
    /// every name the policy sets passes it, the usual others do not.
    @Test func aNamesLengthRulesItOutOrIn() {
        var configuration = SecurityHeadersConfiguration.recommended
        configuration.permissionsPolicy = "camera=()"
        let headers = SecurityHeaders(configuration)
        var names: [String] = []
        headers.forEachField(isSecure: true, nonce: nil) { _, name, _ in names.append(name.canonicalName) }
        #expect(names.contains("strict-transport-security"))
        for name in names { #expect(headers.mayName(length: name.utf8.count), "\(name)") }
        for name in ["date", "server", "content-type", "etag", "cache-control", "vary"] {
            #expect(!headers.mayName(length: name.utf8.count), "\(name)")
        }
        #expect(!headers.mayName(length: 200))
        #expect(!SecurityHeaders(SecurityHeadersConfiguration()).mayName(length: 15))
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

final class TestWallClock: Sendable {
    private let seconds = Mutex<Double>(1_000_000)
    var now: @Sendable () -> Double { { self.seconds.withLock { $0 } } }
    func advance(_ by: Double) { seconds.withLock { $0 += by } }
}

@Suite struct BlocklistTests {
    @Test func blocksExpireAndAWiderBlockStillApplies() throws {
        let clock = TestWallClock()
        let list = try Blocklist(store: MemoryBlockStore(), now: clock.now)
        try list.add(CIDRBlock("198.51.100.0/24")!, reason: "range", duration: 100)
        try list.add(CIDRBlock("198.51.100.7")!, reason: "one", duration: 10)
        #expect(list.block(covering: IPAddress("198.51.100.7")!)?.reason == "one")
        #expect(list.block(covering: IPAddress("198.51.100.8")!)?.reason == "range")
        #expect(list.block(covering: IPAddress("198.51.101.1")!) == nil)
        clock.advance(11)
        #expect(list.block(covering: IPAddress("198.51.100.7")!)?.reason == "range")
        #expect(list.active.map(\.reason) == ["range"])
        clock.advance(100)
        #expect(list.block(covering: IPAddress("198.51.100.7")!) == nil)
        try list.add(CIDRBlock("2001:db8::/64")!, reason: "forever", duration: nil)
        clock.advance(1e9)
        #expect(list.block(covering: IPAddress("2001:db8::1")!)?.reason == "forever")
        #expect(try list.remove(CIDRBlock("2001:db8::/64")!))
        #expect(try !list.remove(CIDRBlock("2001:db8::/64")!))
        #expect(list.block(covering: IPAddress("2001:db8::1")!) == nil)
    }

    @Test func sqliteKeepsBlocksAcrossReopening() throws {
        let path = "/tmp/rampart-blocks-\(UInt64.random(in: 0...UInt64.max)).sqlite"
        defer { _ = unlink(path) }
        let clock = TestWallClock()
        do {
            let list = try Blocklist(store: try SQLiteBlockStore(path: path), now: clock.now)
            try list.add(CIDRBlock("203.0.113.0/24")!, reason: "abuse", duration: 3600)
            try list.add(CIDRBlock("203.0.113.9")!, reason: "gone", duration: 1)
            try list.add(CIDRBlock("192.0.2.1")!, reason: "removed", duration: nil)
            try list.remove(CIDRBlock("192.0.2.1")!)
        }
        clock.advance(2)
        let reopened = try Blocklist(store: try SQLiteBlockStore(path: path), now: clock.now)
        #expect(reopened.block(covering: IPAddress("203.0.113.50")!)?.reason == "abuse")
        #expect(reopened.block(covering: IPAddress("203.0.113.9")!)?.reason == "abuse")  // the narrower one expired
        #expect(reopened.block(covering: IPAddress("192.0.2.1")!) == nil)
        // The expired block was dropped from the file when it was seen.
        #expect(try SQLiteBlockStore(path: path).all().map(\.reason) == ["abuse"])
    }
}

@Suite struct CSRFTests {
    let guardian = CSRFGuard(CSRFConfiguration(allowedOrigins: ["https://app.example.com"], authCookie: "session",
                                               tokenCookie: "csrf", tokenHeader: "X-CSRF-Token"))
    let own = "https://api.example.com"

    func request(_ fields: [(String, String)], method: HTTPRequest.Method = .post) -> HTTPRequest {
        var headers = HTTPFields()
        for (name, value) in fields { headers.append(HTTPField(name: HTTPField.Name(name)!, value: value)) }
        return HTTPRequest(method: method, scheme: "https", authority: "api.example.com", path: "/quiz", headerFields: headers)
    }

    @Test func crossSiteWritesWithTheSessionCookieAreRefused() {
        #expect(guardian.check(request([("Cookie", "session=abc"), ("Origin", "https://evil.example")]), ownOrigin: own) != .pass)
        #expect(guardian.check(request([("Cookie", "session=abc"), ("Origin", "null")]), ownOrigin: own) != .pass)
        #expect(guardian.check(request([("Cookie", "session=abc"), ("Referer", "https://evil.example/page")]), ownOrigin: own) != .pass)
        #expect(guardian.check(request([("Cookie", "session=abc"), ("Sec-Fetch-Site", "cross-site"), ("Origin", "https://evil.example")]),
                               ownOrigin: own) != .pass)
        #expect(guardian.check(request([("Cookie", "session=abc")]), ownOrigin: own) != .pass)
        #expect(guardian.check(request([("Cookie", "session=abc; csrf=t1"), ("X-CSRF-Token", "t2")]), ownOrigin: own) != .pass)
        // Userinfo tricks do not make an origin.
        #expect(guardian.check(request([("Cookie", "session=abc"), ("Origin", "https://app.example.com@evil.example")]), ownOrigin: own) != .pass)
    }

    @Test func sameSiteAllowedAndUncredentialledRequestsPass() {
        #expect(guardian.check(request([("Cookie", "session=abc"), ("Origin", "https://api.example.com:443")]), ownOrigin: own) == .pass)
        #expect(guardian.check(request([("Cookie", "session=abc"), ("Origin", "https://APP.example.com")]), ownOrigin: own) == .pass)
        #expect(guardian.check(request([("Cookie", "session=abc"), ("Referer", "https://app.example.com/edit?q=1")]), ownOrigin: own) == .pass)
        #expect(guardian.check(request([("Cookie", "session=abc"), ("Sec-Fetch-Site", "same-origin")]), ownOrigin: own) == .pass)
        #expect(guardian.check(request([("Cookie", "session=abc; csrf=t1"), ("X-CSRF-Token", "t1")]), ownOrigin: own) == .pass)
        #expect(guardian.check(request([("Origin", "https://evil.example")]), ownOrigin: own) == .pass)  // no session cookie
        #expect(guardian.check(request([("Cookie", "theme=dark"), ("Origin", "https://evil.example")]), ownOrigin: own) == .pass)
        #expect(guardian.check(request([("Cookie", "session=abc"), ("Origin", "https://evil.example")], method: .get), ownOrigin: own) == .pass)
    }

    @Test func originsAreNormalizedAndConfigurationChecked() {
        #expect(CSRFGuard.origin(of: "HTTP://Example.com:80/path") == "http://example.com")
        #expect(CSRFGuard.origin(of: "ftp://example.com") == nil)
        let issues = CSRFConfiguration(allowedOrigins: ["app.example.com", "https://ok.example"], tokenHeader: "bad header").validate(at: "shield.csrf")
        #expect(issues.map(\.path) == ["shield.csrf.allowedOrigins[0]", "shield.csrf.tokenHeader"])
    }
}
