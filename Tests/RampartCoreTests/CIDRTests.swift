import PropertyBased
@testable import RampartCore
import Testing

@Suite struct CIDRTests {
    @Test func parsesAndPrintsAddresses() {
        #expect(IPAddress("10.0.0.1")?.description == "10.0.0.1")
        #expect(IPAddress("255.100.99.0")?.description == "255.100.99.0")
        #expect(IPAddress("2001:db8::1")?.description == "2001:db8::1")
        #expect(IPAddress("::ffff:10.0.0.1")?.unmapped == IPAddress("10.0.0.1"))
        #expect(IPAddress("::")?.description == "::")
        for bad in ["10.0.0", "10.0.0.256", "010.0.0.1", "1.2.3.4.5", "2001:db8:::1", "1:2:3:4:5:6:7:8:9", "", "abc"] {
            #expect(IPAddress(bad) == nil, "\(bad) should not parse")
        }
    }

    @Test func blocksContainTheirAddresses() throws {
        let block = try #require(CIDRBlock("10.1.2.3/8"))
        #expect(block.description == "10.0.0.0/8")
        #expect(block.contains(IPAddress("10.255.0.1")!))
        #expect(!block.contains(IPAddress("11.0.0.1")!))
        #expect(block.contains(IPAddress("::ffff:10.9.9.9")!))
        #expect(CIDRBlock("2001:db8::/32")!.contains(IPAddress("2001:db8:ffff::1")!))
        #expect(!CIDRBlock("2001:db8::/32")!.contains(IPAddress("10.0.0.1")!))
        #expect(CIDRBlock("10.0.0.0/33") == nil)
    }

    @Test func longestPrefixWins() {
        var table = CIDRTable<String>()
        table.insert(CIDRBlock("10.0.0.0/8")!, value: "wide")
        table.insert(CIDRBlock("10.1.0.0/16")!, value: "narrow")
        table.insert(CIDRBlock("10.1.2.3")!, value: "host")
        #expect(table.longestMatch(IPAddress("10.9.9.9")!) == "wide")
        #expect(table.longestMatch(IPAddress("10.1.9.9")!) == "narrow")
        #expect(table.longestMatch(IPAddress("10.1.2.3")!) == "host")
        #expect(table.longestMatch(IPAddress("11.0.0.1")!) == nil)
    }

    @Test func ipv4TextRoundTrips() async {
        await propertyCheck(input: Gen.uint32()) { value in
            let address = IPAddress(v4: value)
            #expect(IPAddress(address.description) == address)
        }
    }

    @Test func tableAgreesWithLinearScan() async {
        await propertyCheck(input: Gen.uint32().array(of: 1...20), Gen.uint32()) { networks, probe in
            var table = CIDRTable<Int>()
            var blocks: [CIDRBlock] = []
            for (i, n) in networks.enumerated() {
                let block = CIDRBlock(address: IPAddress(v4: n), prefixLength: Int(n % 33))
                blocks.append(block)
                table.insert(block, value: i)
            }
            let address = IPAddress(v4: probe)
            // The most specific containing block; on equal blocks the last inserted value wins.
            let expected = blocks.enumerated().filter { $0.element.contains(address) }
                .max { a, b in a.element.prefixLength != b.element.prefixLength ? a.element.prefixLength < b.element.prefixLength : a.offset < b.offset }
            let expectedValue = expected.map { best in blocks.lastIndex(of: best.element)! }
            #expect(table.longestMatch(address) == expectedValue)
        }
    }
}

@Suite struct UnitsTests {
    @Test func durationsNeedUnits() {
        #expect(ConfigDuration(parsing: "250ms")?.duration == .milliseconds(250))
        #expect(ConfigDuration(parsing: "1m30s")?.duration == .seconds(90))
        #expect(ConfigDuration(parsing: "2h")?.duration == .seconds(7200))
        #expect(ConfigDuration(parsing: "5") == nil)
        #expect(ConfigDuration(parsing: "5 parsecs") == nil)
        #expect(ConfigDuration(parsing: "") == nil)
    }

    @Test func sizesParse() {
        #expect(ByteCount(parsing: "64KiB")?.bytes == 65536)
        #expect(ByteCount(parsing: "10MB")?.bytes == 10_000_000)
        #expect(ByteCount(parsing: "512")?.bytes == 512)
        #expect(ByteCount(parsing: "1XB") == nil)
        #expect(ByteCount(parsing: "99999999999999999GiB") == nil)
    }

    @Test func suggestsNearestKey() {
        #expect(nearest(to: "intances", in: ["instances", "strategy"]) == "instances")
        #expect(nearest(to: "zzzzzz", in: ["instances", "strategy"]) == nil)
    }
}

@Suite struct RequestIdentityTests {
    @Test func acceptsOnlySafeRequestIDs() {
        #expect(RequestID.isAcceptable("abc-123_x.y:z"))
        #expect(!RequestID.isAcceptable(""))
        #expect(!RequestID.isAcceptable("a b"))
        #expect(!RequestID.isAcceptable("a\"b"))
        #expect(!RequestID.isAcceptable(String(repeating: "a", count: 129)))
        #expect(RequestID.make().count == 32)
    }

    /// Ids are the generator's words in lowercase hex, 16 digits each, leading zeros kept.
    @Test func idsAreTheGeneratorsWordsInHex() {
        struct Fixed: RandomNumberGenerator {
            var words: [UInt64]
            mutating func next() -> UInt64 { words.removeFirst() }
        }
        var fixed = Fixed(words: [0x0123_4567_89AB_CDEF, 0xF, 0, 0xFEDC_BA98_7654_3210])
        #expect(RequestID.make(using: &fixed) == "0123456789abcdef000000000000000f")
        // A trace: the next two words; a span id is never all zeros, the zero word is drawn again.
        fixed.words = [0, 0x1A, 0, 0xFEDC_BA98_7654_3210]
        let trace = TraceContext.start(using: &fixed)
        #expect(trace.traceID == "0000000000000000000000000000001a" && trace.spanID == "fedcba9876543210")
    }

    @Test func requestRandomIsSeededAndSpreads() {
        var a = RequestRandom(seed: 1, 2), b = RequestRandom(seed: 1, 2), c = RequestRandom(seed: 1, 3)
        let first = (0..<4).map { _ in a.next() }
        #expect(first == (0..<4).map { _ in b.next() })
        #expect(first != (0..<4).map { _ in c.next() })
        var system = RequestRandom()
        let ids = Set((0..<10_000).map { _ in RequestID.make(using: &system) })
        #expect(ids.count == 10_000)
        #expect(ids.allSatisfy { $0.count == 32 })
        // Every bit of the output moves: over many draws each is set about half the time.
        var ones = [Int](repeating: 0, count: 64)
        for _ in 0..<4096 { let v = system.next(); for bit in 0..<64 where v & (1 << bit) != 0 { ones[bit] += 1 } }
        #expect(ones.allSatisfy { (1700...2400).contains($0) })
        // Generators made one after another (one per request) start from unrelated states.
        let firsts = (0..<10_000).map { _ in var fresh = RequestRandom(); return RequestID.make(using: &fresh) }
        #expect(Set(firsts).count == 10_000)
        var firstOnes = [Int](repeating: 0, count: 64)
        for _ in 0..<4096 { var fresh = RequestRandom(); let v = fresh.next(); for bit in 0..<64 where v & (1 << bit) != 0 { firstOnes[bit] += 1 } }
        #expect(firstOnes.allSatisfy { (1700...2400).contains($0) })
    }

    @Test func parsesTraceparent() throws {
        let trace = try #require(TraceContext(traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
        #expect(trace.traceID == "0af7651916cd43dd8448eb211c80319c")
        #expect(trace.flags == 1)
        var generator = SystemRandomNumberGenerator()
        let child = trace.child(using: &generator)
        #expect(child.traceID == trace.traceID)
        #expect(child.spanID != trace.spanID)
        #expect(TraceContext(traceparent: child.traceparent) == child)
        #expect(trace.traceparent == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        #expect(TraceContext(traceHigh: trace.traceHigh, traceLow: trace.traceLow, span: trace.span, flags: 0xa0).traceparent
                == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-a0")
        #expect(trace.spanID == "b7ad6b7169203331")
        // A later version may carry more fields; its first four are read.
        let later = try #require(TraceContext(traceparent: "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-next"))
        #expect(later.traceparent == trace.traceparent)
        // From a substring.
        let line = "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        #expect(TraceContext(traceparent: line.dropFirst(13)) == trace)
        for bad in ["ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                    "00-00000000000000000000000000000000-b7ad6b7169203331-01",
                    "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
                    "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
                    "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01extra",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
                    "00-0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331-01",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333g-01",
                    "0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", ""] {
            #expect(TraceContext(traceparent: bad) == nil, "\(bad)")
        }
    }

    @Test func clientAddressComesFromTrustedHopsOnly() {
        let resolver = ClientAddressResolver(trustedProxies: CIDRSet([CIDRBlock("10.0.0.0/8")!]))
        // Untrusted peer: its X-Forwarded-For is ignored.
        #expect(resolver.resolve(peer: IPAddress("203.0.113.9"), forwardedFor: ["1.1.1.1"], forwarded: []) == IPAddress("203.0.113.9"))
        // Trusted peer: the rightmost untrusted hop is the client, whatever the client prepended.
        #expect(resolver.resolve(peer: IPAddress("10.0.0.2"), forwardedFor: ["6.6.6.6, 198.51.100.7", "10.0.0.5"], forwarded: [])
                == IPAddress("198.51.100.7"))
        #expect(resolver.resolve(peer: IPAddress("10.0.0.2"), forwardedFor: [], forwarded: ["for=\"[2001:db8::7]:4711\""])
                == IPAddress("2001:db8::7"))
        #expect(resolver.resolve(peer: IPAddress("10.0.0.2"), forwardedFor: ["garbage"], forwarded: []) == IPAddress("10.0.0.2"))
    }
}

@Suite struct RequestTargetTests {
    @Test func removesDotSegmentsIncludingEncodedOnes() throws {
        #expect(try RequestTarget.normalize("/api/../admin").path == "/admin")
        #expect(try RequestTarget.normalize("/api/%2e%2e/admin").path == "/admin")
        #expect(try RequestTarget.normalize("/api/%2E./admin?x=1") == ("/admin", "x=1"))
        #expect(try RequestTarget.normalize("/a/./b/.").path == "/a/b/")
        #expect(try RequestTarget.normalize("/../../etc/passwd").path == "/etc/passwd")
        #expect(try RequestTarget.normalize("/a%2Fb").path == "/a%2Fb")
        #expect(try RequestTarget.normalize("/%7euser").path == "/~user")
        #expect(throws: RequestTarget.Problem.controlCharacter) { try RequestTarget.normalize("/a%00b") }
        #expect(throws: RequestTarget.Problem.badPercentEncoding) { try RequestTarget.normalize("/a%zz") }
        #expect(throws: RequestTarget.Problem.notOriginForm) { try RequestTarget.normalize("http://x/") }
        // The query starts at the first `?`; a `#` ends the path (and stays in the raw query).
        #expect(try RequestTarget.normalize("/a?b?c#d") == ("/a", "b?c#d"))
        #expect(try RequestTarget.normalize("/a#frag") == ("/a", nil))
        #expect(try RequestTarget.normalize("/caf\u{e9}?q=\u{e9}") == ("/caf\u{e9}", "q=\u{e9}"))
        #expect(try RequestTarget.normalize("/?") == ("/", ""))
        #expect(throws: RequestTarget.Problem.notOriginForm) { try RequestTarget.normalize("?x") }
        #expect(throws: RequestTarget.Problem.notOriginForm) { try RequestTarget.normalize("") }
    }

    @Test func normalizationIsIdempotentAndLeavesNoDotSegments() async {
        let pieces = ["a", "..", ".", "%2e", "%2E%2e", "b", "", "%41", "c~"]
        await propertyCheck(input: Gen.int(in: 0...(pieces.count - 1)).array(of: 0...12)) { indices in
            let target = "/" + indices.map { pieces[$0] }.joined(separator: "/")
            guard let once = try? RequestTarget.normalize(target).path else { return }
            #expect((try? RequestTarget.normalize(once).path) == once)
            let segments = once.split(separator: "/", omittingEmptySubsequences: false)
            #expect(!segments.contains("..") && !segments.contains("."))
        }
    }

    /// The shortcut for paths already normal agrees with the segment-by-segment way.
    @Test func pathsTakenAsTheyAreAreThoseTheSegmentsWouldNotChange() async {
        let pieces = ["a", "..", ".", ".a", "a.", "%2e", "%41", "", "b~c", "\u{01}", "x.y", "%zz"]
        await propertyCheck(input: Gen.int(in: 0...(pieces.count - 1)).array(of: 0...8)) { indices in
            let path = Substring("/" + indices.map { pieces[$0] }.joined(separator: "/"))
            let segmentwise = Result { () throws(RequestTarget.Problem) in try RequestTarget.normalizeSegments(path) }
            if RequestTarget.isNormal(path) {
                #expect((try? segmentwise.get()) == String(path))
            }
            #expect((try? RequestTarget.normalize(String(path)).path) == (try? segmentwise.get()))
        }
    }
}
