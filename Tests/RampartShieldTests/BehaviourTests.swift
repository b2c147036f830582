import HTTPTypes
import Logging
import PropertyBased
import RampartCore
import RampartShield
import RampartStore
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A monotonic clock and a wall clock that move together, by hand.
final class TestClock: TimeSource {
    private let seconds = Mutex<Double>(1_000)

    func now() -> Instant { Instant(nanoseconds: Int64(seconds.withLock { $0 } * 1e9)) }
    var wall: @Sendable () -> Double { { 1_700_000_000 + self.seconds.withLock { $0 } } }
    func advance(_ by: Double) { seconds.withLock { $0 += by } }
}

@Suite struct BruteForceTests {
    let clock = TestClock()
    let client = IPAddress("192.0.2.10")!

    /// A guard with the settings every call passes it, as the inspect phase does.
    struct Configured {
        let guard_: BruteForceGuard
        let settings: BruteForceConfiguration

        func account(in body: [UInt8]?, contentType: String?) -> String? { settings.account(in: body, contentType: contentType) }
        @discardableResult
        func failed(client: IPAddress?, account: String?) -> [BruteForceGuard.Started] { guard_.failed(client: client, account: account, settings) }
        func succeeded(client: IPAddress?, account: String?) { guard_.succeeded(client: client, account: account) }
        func lockout(client: IPAddress?, account: String?) -> BruteForceGuard.Lockout? { guard_.lockout(client: client, account: account) }
        var lockouts: [BruteForceGuard.Lockout] { guard_.lockouts }
    }

    func guardWith(_ configuration: BruteForceConfiguration = .init(routes: ["login"], maxFailuresPerClient: 10, maxFailuresPerAccount: 3,
                                                                      lockout: .seconds(60), maxLockout: .seconds(200))) -> Configured {
        Configured(guard_: BruteForceGuard(time: clock), settings: configuration)
    }

    @Test func readsTheAccountFromJSONAndFormBodies() {
        let plain = guardWith()
        #expect(plain.account(in: Array(#"{"username": " Alice ", "password": "x"}"#.utf8), contentType: "application/json") == "alice")
        #expect(plain.account(in: Array("password=x&username=Bob%40example.com".utf8), contentType: "application/x-www-form-urlencoded") == "bob@example.com")
        #expect(plain.account(in: Array(#"{"user": {"username": "carol"}}"#.utf8), contentType: "application/json") == nil)
        #expect(plain.account(in: nil, contentType: "application/json") == nil)
        let nested = guardWith(.init(routes: ["login"], accountField: "$.user.email"))
        #expect(nested.account(in: Array(#"{"user": {"email": "Carol@Example.com"}}"#.utf8), contentType: "application/json") == "carol@example.com")
        let boundary = "XyZ"
        let multipart = "--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\ndave\r\n--XyZ--\r\n"
        #expect(plain.account(in: Array(multipart.utf8), contentType: "multipart/form-data; boundary=\(boundary)") == "dave")
    }

    @Test func failuresLockOutWithDoublingLockoutsAndASuccessResets() {
        let guard_ = guardWith()
        #expect(guard_.failed(client: client, account: "alice").isEmpty)
        #expect(guard_.failed(client: client, account: "alice").isEmpty)
        let started = guard_.failed(client: client, account: "alice")
        #expect(started.map(\.key) == ["account:alice"])
        #expect(started.map(\.failures) == [3] && started.map(\.duration) == [.seconds(60)] && started.map(\.level) == [1])
        #expect(guard_.lockout(client: client, account: "alice")?.remaining == .seconds(60))
        // The client itself is not locked out (10 allowed), so other accounts still work.
        #expect(guard_.lockout(client: client, account: "bob") == nil)
        clock.advance(61)
        #expect(guard_.lockout(client: client, account: "alice") == nil)
        for _ in 0..<2 { guard_.failed(client: client, account: "alice") }
        #expect(guard_.failed(client: client, account: "alice").first?.duration == .seconds(120))
        clock.advance(121)
        for _ in 0..<2 { guard_.failed(client: client, account: "alice") }
        // Capped at maxLockout.
        #expect(guard_.failed(client: client, account: "alice").first?.duration == .seconds(200))
        clock.advance(201)
        guard_.succeeded(client: client, account: "alice")
        for _ in 0..<2 { guard_.failed(client: client, account: "alice") }
        #expect(guard_.failed(client: client, account: "alice").first?.duration == .seconds(60), "a success forgets earlier lockouts")
    }

    @Test func failuresOutsideTheWindowDoNotCount() {
        let guard_ = guardWith(.init(routes: ["login"], window: .seconds(10), maxFailuresPerAccount: 3))
        guard_.failed(client: nil, account: "eve")
        clock.advance(6)
        guard_.failed(client: nil, account: "eve")
        clock.advance(6)
        // The first failure has left the window: two in it, no lockout.
        #expect(guard_.failed(client: nil, account: "eve").isEmpty)
        #expect(guard_.failed(client: nil, account: "eve").count == 1)
    }

    @Test func aClientTryingManyAccountsIsLockedOutByAddress() {
        let guard_ = guardWith()
        var started: [BruteForceGuard.Started] = []
        for index in 0..<10 { started += guard_.failed(client: client, account: "user\(index)") }
        #expect(started.map(\.key) == ["client:192.0.2.10"])
        #expect(guard_.lockout(client: client, account: "someone-new")?.key == "client:192.0.2.10")
        #expect(guard_.lockouts.map(\.key) == ["client:192.0.2.10"])
    }

    @Test func configurationProblemsNameTheirPath() {
        let bad = BruteForceConfiguration(routes: [], accountField: "", maxFailuresPerAccount: 0, lockout: .seconds(60), maxLockout: .seconds(30),
                                          failureStatuses: [200])
        let text = bad.validate(at: "shield.bruteForce").map(\.description).joined(separator: "\n")
        #expect(text.contains("shield.bruteForce.routes: name at least one login route"))
        #expect(text.contains("shield.bruteForce.accountField: must not be empty"))
        #expect(text.contains("shield.bruteForce.maxFailuresPerAccount: must be at least 1, got 0"))
        #expect(text.contains("shield.bruteForce.maxLockout: must be at least lockout"))
        #expect(text.contains("shield.bruteForce.failureStatuses[0]: must be a 4xx or 5xx status, got 200"))
    }
}

@Suite struct FloodTests {
    let clock = TestClock()

    /// A detector with the settings every call passes it, as the gateway does.
    struct Configured {
        let detector: FloodDetector
        let settings: FloodConfiguration

        /// The flooding client's rate, when it floods.
        func observe(_ client: IPAddress?) -> Int? { detector.observe(client, settings)?.rate }
        @discardableResult
        func tick() -> [FloodDetector.Anomaly] { detector.tick(settings) }
        var status: FloodDetector.Status { detector.status(settings) }
    }

    func makeDetector(_ settings: FloodConfiguration) -> Configured { Configured(detector: FloodDetector(time: clock), settings: settings) }

    /// Runs `intervals` one-second intervals with `rate` requests each from `clients`
    /// different clients, returning the anomalies and the clients flagged.
    func run(_ detector: Configured, intervals: Int, rate: Int, clients: Int = 10) -> (anomalies: [FloodDetector.Anomaly], flagged: Int) {
        var anomalies: [FloodDetector.Anomaly] = []
        var flagged = 0
        for _ in 0..<intervals {
            for index in 0..<rate where detector.observe(IPAddress(v4: 0xC000_0200 + UInt32(index % clients))) != nil { flagged += 1 }
            clock.advance(1)
            anomalies += detector.tick()
        }
        return (anomalies, flagged)
    }

    @Test func steadyTrafficRaisesNothingThenASpikeAndADropDo() {
        let detector = makeDetector(.init(warmup: 10, minClientRate: 1000, minGlobalRate: 20))
        #expect(run(detector, intervals: 40, rate: 200).anomalies.isEmpty)
        #expect(detector.status.warmedUp)
        #expect(abs(detector.status.baselineRate - 200) < 1)
        guard case .spike(let rate, _, _)? = run(detector, intervals: 1, rate: 600).anomalies.first else {
            Issue.record("no spike")
            return
        }
        #expect(rate == 600)
        _ = run(detector, intervals: 20, rate: 200)
        let drop = run(detector, intervals: 1, rate: 5).anomalies
        #expect(drop.count == 1)
        if case .drop(let rate, _, _)? = drop.first { #expect(rate == 5) } else { Issue.record("no drop: \(drop)") }
    }

    @Test func quietTrafficIsNeverJudged() {
        let detector = makeDetector(.init(warmup: 5, minGlobalRate: 20))
        _ = run(detector, intervals: 20, rate: 3)
        #expect(run(detector, intervals: 1, rate: 15).anomalies.isEmpty, "a baseline under minGlobalRate judges nothing")
    }

    @Test func aClientFarAboveTheOthersIsFlaggedOncePerInterval() {
        let detector = makeDetector(.init(warmup: 3, minClientRate: 50))
        let flooder = IPAddress("198.51.100.7")!
        let cold = makeDetector(.init(warmup: 3, minClientRate: 50))
        for _ in 0..<200 { #expect(cold.observe(flooder) == nil, "nothing is judged before warm-up") }
        _ = run(detector, intervals: 5, rate: 100, clients: 20)
        #expect(detector.status.clientLimit == 50, "five requests per client per interval keep the limit at its floor")
        var flagged: [Int] = []
        for _ in 0..<200 { if let rate = detector.observe(flooder) { flagged.append(rate) } }
        #expect(flagged == [51])
        clock.advance(1)
        detector.tick()
        // The flooder stayed out of the client baseline.
        #expect(detector.status.clientBaselineRate < 10)
        #expect(detector.observe(IPAddress("198.51.100.8")!) == nil)
    }

    @Test func theClientLimitFollowsTheBaselineAboveTheFloor() {
        let detector = makeDetector(.init(warmup: 3, minClientRate: 10))
        _ = run(detector, intervals: 30, rate: 400, clients: 4)
        // A hundred requests per client per interval: the limit is well above the floor.
        #expect(detector.status.clientLimit > 100)
        #expect(detector.status.clientLimit < 200)
    }

    @Test func baselineDeviationNeverFallsBelowPoissonNoise() async {
        await propertyCheck(input: Gen.int(in: 0...10_000).array(of: 1...50)) { rates in
            var baseline = RateBaseline()
            for rate in rates { baseline.observe(Double(rate), alpha: 0.2) }
            #expect(baseline.deviation >= max(1, baseline.mean.squareRoot()) - 1e-9)
            #expect(baseline.mean >= 0 && baseline.mean <= 10_000)
            #expect(baseline.variance >= 0)
        }
    }
}

/// Records what it was asked to send and answers with the statuses it is given, in turn.
final class ScriptedTransport: AlertTransport {
    private let state: Mutex<(statuses: [Int], posts: [String])>

    init(_ statuses: [Int]) { state = Mutex((statuses, [])) }

    var posts: [String] { state.withLock { $0.posts } }

    func post(_ body: [UInt8], to url: String, timeout: Duration) async throws -> Int {
        state.withLock { s in
            s.posts.append(String(decoding: body, as: UTF8.self))
            return s.statuses.isEmpty ? 200 : s.statuses.removeFirst()
        }
    }
}

@Suite struct ThreatResponseTests {
    let clock = TestClock()
    let logger = Logger(label: "test")

    func responder(_ configuration: ThreatResponseConfiguration = .init(), store: any ThreatEventStore = MemoryThreatEventStore(),
                   alerts: AlertDispatcher? = nil) throws -> ThreatResponder {
        ThreatResponder(configuration: { configuration }, blocklist: try Blocklist(store: MemoryBlockStore(), now: clock.wall), store: store,
                        alerts: alerts, time: clock, wallClock: clock.wall, logger: logger)
    }

    func report(_ request: String) -> InspectionReport {
        ThreatInspector(.init()).inspect(HTTPRequest(method: .get, scheme: "http", authority: "quiz.example", path: request), body: nil)
    }

    @Test func findingsAreStoredAndCriticalOnesBlockWhenAsked() throws {
        let client = IPAddress("203.0.113.5")!
        let attack = report("/search?q=1%27%20union%20select%20password%20from%20users--")
        #expect(attack.worst?.severity == .critical)
        let off = try responder()
        off.detected(attack, refused: true, requestID: "r1", client: client, exempt: false)
        #expect(off.blocklist.active.isEmpty, "blockOnCritical is off by default")
        let stored = try off.events(.init())
        #expect(!stored.isEmpty)
        #expect(stored.allSatisfy { $0.requestID == "r1" && $0.client == "203.0.113.5" && $0.action == "blocked" })
        #expect(stored.contains { $0.kind == "sql_injection" && $0.severity == "critical" && $0.location == "query:q" })

        let on = try responder(.init(blockOnCritical: true, blockDuration: .seconds(600)))
        on.detected(attack, refused: true, requestID: "r2", client: IPAddress("203.0.113.6")!, exempt: true)
        on.detected(attack, refused: false, requestID: "r3", client: IPAddress("203.0.113.7")!, exempt: false)
        #expect(on.blocklist.active.isEmpty, "neither allow-listed clients nor detect-only findings are blocked")
        on.detected(attack, refused: true, requestID: "r4", client: client, exempt: false)
        #expect(on.blocklist.active.map(\.range.description) == ["203.0.113.5/32"])
        #expect(on.blocklist.active.first?.expires == clock.wall() + 600)
        let onCount = try on.events(.init(kind: "sql_injection", limit: 500)).count
        let offCount = try off.events(.init(kind: "sql_injection", limit: 500)).count
        #expect(onCount == offCount * 3 + 1, "three requests' findings and the block")
        #expect(try on.events(.init(client: "203.0.113.5")).first?.action == "client_blocked")
    }

    @Test func threatLevelRisesWithEventsAndDecays() throws {
        let responder = try responder()
        #expect(responder.threatLevel == 0)
        for _ in 0..<10 {
            responder.record(ThreatEvent(time: clock.wall(), kind: "xss", rule: "r", severity: "critical", action: "blocked", score: 5))
        }
        #expect(abs(responder.threatLevel - 0.5) < 1e-9, "fifty points is one half")
        clock.advance(60)
        #expect(abs(responder.threatLevel - 25.0 / 75.0) < 1e-9, "halved after a minute")
        clock.advance(3600)
        #expect(responder.threatLevel < 0.001)
    }

    @Test func rateLimitAbuseBecomesAThreatAndRepeatedAbuseABlock() throws {
        let responder = try responder(.init(blockOnCritical: true))
        let signals: any ThreatSignals = responder
        let client = IPAddress("2001:db8::9")!
        signals.reportRateLimitAbuse(RateLimitAbuse(client: client, key: "ip:2001:db8::9", policy: "api", violations: 3))
        #expect(responder.blocklist.active.isEmpty)
        signals.reportRateLimitAbuse(RateLimitAbuse(client: client, key: "ip:2001:db8::9", policy: "api", violations: 12))
        #expect(responder.blocklist.active.map(\.range.description) == ["2001:db8::9/128"])
        let events = try responder.events(.init(kind: "rate_limit_abuse"))
        #expect(events.map(\.action) == ["client_blocked", "reported", "reported"])
        #expect(events.map(\.severity) == ["critical", "critical", "error"])
        #expect(signals.threatLevel > 0)
    }

    @Test func alertsAreRetriedWithinBoundsAndCoalescedPerClient() async throws {
        let transport = ScriptedTransport([500, 503, 200, 400])
        let dispatcher = AlertDispatcher(transport: transport, logger: logger)
        let webhook = AlertWebhookConfiguration(url: "http://127.0.0.1:1/alerts", attempts: 3, backoff: .milliseconds(1))
        let responder = try responder(.init(alertWebhook: webhook, alertInterval: .seconds(60)), alerts: dispatcher)
        let runner = Task { await dispatcher.run() }
        defer { runner.cancel() }
        func high(_ client: String) -> ThreatEvent {
            ThreatEvent(time: clock.wall(), client: client, kind: "xss", rule: "r", severity: "error", action: "blocked", score: 4)
        }
        responder.record(high("192.0.2.1"))
        responder.record(high("192.0.2.1"))  // within the interval: held back
        responder.record(ThreatEvent(time: clock.wall(), client: "192.0.2.1", kind: "xss", rule: "r", severity: "warning", action: "logged"))
        responder.record(high("192.0.2.2"))  // another client: its own alert, refused with 400 and not retried
        for _ in 0..<200 where dispatcher.totals.values.reduce(0, +) < 2 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(dispatcher.totals == ["delivered": 1, "failed": 1])
        #expect(transport.posts.count == 4, "three tries for the first, one for the permanent failure")
        clock.advance(61)
        responder.record(high("192.0.2.1"))
        for _ in 0..<200 where dispatcher.totals["delivered"] != 2 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(transport.posts.last?.contains(#""suppressed":1"#) == true, "\(transport.posts.last ?? "")")
        #expect(transport.posts.last?.contains(#""type":"rampart.threat_alert""#) == true)
    }

    @Test func aFullAlertQueueRefusesAndCounts() throws {
        let dispatcher = AlertDispatcher(transport: ScriptedTransport([]), logger: logger)
        let webhook = AlertWebhookConfiguration(url: "http://127.0.0.1:1/alerts", queueLimit: 2)
        let alert = ThreatAlert(event: ThreatEvent(time: 0, kind: "xss", rule: "r", severity: "error", action: "blocked"), suppressed: 0)
        #expect(dispatcher.send(alert, to: webhook))
        #expect(dispatcher.send(alert, to: webhook))
        #expect(!dispatcher.send(alert, to: webhook))
        #expect(dispatcher.totals == ["refused": 1])
    }
}

@Suite struct ThreatEventStoreTests {
    func event(_ n: Int, kind: String = "xss", client: String = "192.0.2.1") -> ThreatEvent {
        ThreatEvent(time: Double(n), requestID: "r\(n)", client: client, kind: kind, rule: "rule\(n)", location: "query:q",
                    severity: n % 2 == 0 ? "critical" : "warning", action: "blocked", score: 5, detail: "d")
    }

    func contract(_ store: any ThreatEventStore) throws {
        try store.append((1...30).map { event($0, kind: $0 <= 20 ? "xss" : "flood", client: $0 % 3 == 0 ? "192.0.2.3" : "192.0.2.1") })
        let first = try store.events(.init(limit: 10))
        #expect(first.map(\.requestID) == (21...30).reversed().map { "r\($0)" })
        let second = try store.events(.init(before: first.last!.id, limit: 10))
        #expect(second.map(\.requestID) == (11...20).reversed().map { "r\($0)" })
        #expect(try store.events(.init(kind: "flood", limit: 100)).count == 10)
        #expect(try store.events(.init(client: "192.0.2.3", limit: 100)).count == 10)
        #expect(try store.events(.init(kind: "flood", client: "192.0.2.3", limit: 100)).map(\.requestID) == ["r30", "r27", "r24", "r21"])
        #expect(try store.totals() == [
            .init(kind: "flood", severity: "critical", count: 5), .init(kind: "flood", severity: "warning", count: 5),
            .init(kind: "xss", severity: "critical", count: 10), .init(kind: "xss", severity: "warning", count: 10),
        ])
        #expect(first.first?.detail == "d" && first.first?.location == "query:q" && first.first?.score == 5)
        try store.prune(keeping: 5)
        #expect(try store.events(.init(limit: 100)).map(\.requestID) == (26...30).reversed().map { "r\($0)" })
    }

    @Test func memoryStore() throws { try contract(MemoryThreatEventStore()) }

    @Test func sqliteInMemory() throws {
        let database = try SQLiteDatabase(path: ":memory:")
        try contract(SQLiteThreatEventStore(database: database))
        let blocks = SQLiteBlockStore(database: database)
        try blocks.put(AddressBlock(range: CIDRBlock("192.0.2.0/24")!, reason: "x", created: 1))
        #expect(try blocks.all().map(\.reason) == ["x"])
    }

    @Test func sqliteStoreKeepsEventsAcrossReopening() throws {
        let path = "/tmp/rampart-events-\(UInt64.random(in: 0...UInt64.max)).sqlite"
        defer { for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) } }
        try contract(SQLiteThreatEventStore(database: try SQLiteDatabase(path: path)))
        let reopened = SQLiteThreatEventStore(database: try SQLiteDatabase(path: path))
        #expect(try reopened.events(.init(limit: 100)).count == 5)
        // Blocks share the file.
        let blocks = SQLiteBlockStore(database: try SQLiteDatabase(path: path))
        try blocks.put(AddressBlock(range: CIDRBlock("192.0.2.0/24")!, reason: "x", created: 1))
        #expect(try blocks.all().count == 1)
    }
}

@Suite struct CSPReportTests {
    let clock = TestClock()
    let settings = CSPReportsConfiguration(maxBytes: .init(2048), perClientPerMinute: 3)
    let client = IPAddress("192.0.2.50")!

    let legacy = #"{"csp-report": {"document-uri": "https://quiz.example/play?session=secret#q3", "violated-directive": "script-src-elem 'self'", "effective-directive": "script-src-elem", "blocked-uri": "https://evil.example/x.js?token=1", "source-file": "https://quiz.example/app.js", "line-number": 12, "disposition": "enforce"}}"#
    let reporting = #"[{"type": "csp-violation", "age": 3, "url": "https://quiz.example/", "body": {"documentURL": "https://quiz.example/edit", "effectiveDirective": "img-src", "blockedURL": "data", "disposition": "report"}}, {"type": "deprecation", "body": {"id": "x"}}]"#

    @Test func bothReportFormatsBecomeEventsWithoutQueries() throws {
        let intake = CSPReportIntake(time: clock)
        let first = try intake.receive(Array(legacy.utf8), contentType: "application/csp-report", client: client, configuration: settings, at: 5).get()
        #expect(first.count == 1)
        #expect(first[0].kind == "csp_violation" && first[0].rule == "script-src-elem" && first[0].location == "https://quiz.example/play")
        #expect(first[0].detail == "blocked https://evil.example/x.js at https://quiz.example/app.js:12; enforce")
        let second = try intake.receive(Array(reporting.utf8), contentType: "application/reports+json; charset=utf-8", client: client,
                                        configuration: settings, at: 5).get()
        #expect(second.map(\.rule) == ["img-src"])
        #expect(second[0].detail == "blocked data; report")
    }

    @Test func badReportsAreRefusedWithTheirStatus() {
        let intake = CSPReportIntake(time: clock)
        let wide = CSPReportsConfiguration(maxBytes: .init(2048), perClientPerMinute: 100)
        func status(_ body: String, _ type: String?) -> Int? {
            if case .failure(let refusal) = intake.receive(Array(body.utf8), contentType: type, client: client, configuration: wide, at: 0) { return refusal.status }
            return nil
        }
        #expect(status(legacy, "text/plain") == 415)
        #expect(status("{not json", "application/csp-report") == 400)
        #expect(status(#"{"csp-report": {"violated-directive": "script-src"}}"#, "application/csp-report") == 400)
        #expect(status(#"{"csp-report": {"document-uri": "javascript:alert(1)", "violated-directive": "script-src"}}"#, "application/csp-report") == 400)
        #expect(status(#"{"csp-report": {"document-uri": "https://a.example/", "violated-directive": "<script>"}}"#, "application/csp-report") == 400)
        #expect(status(#"[{"type": "deprecation", "body": {}}]"#, "application/reports+json") == 400)
        #expect(status(String(repeating: " ", count: 3000) + legacy, "application/csp-report") == 413)
        #expect(status(legacy, "application/csp-report") == nil)
    }

    @Test func eachClientGetsItsAllowancePerMinute() {
        let intake = CSPReportIntake(time: clock)
        func accepted(_ from: IPAddress) -> Bool {
            (try? intake.receive(Array(legacy.utf8), contentType: "application/csp-report", client: from, configuration: settings, at: 0).get()) != nil
        }
        #expect((0..<5).map { _ in accepted(client) } == [true, true, true, false, false])
        #expect(accepted(IPAddress("192.0.2.51")!))
        clock.advance(60)
        #expect(accepted(client))
    }

    @Test func arbitraryBytesNeverCrashTheParser() async {
        let intake = CSPReportIntake(time: clock)
        await propertyCheck(input: Gen.uint8(in: 0...255).array(of: 0...600)) { bytes in
            for type in ["application/csp-report", "application/reports+json"] {
                _ = intake.receive(bytes, contentType: type, client: nil, configuration: settings, at: 0)
            }
        }
    }
}
