import AsyncHTTPClient
import Foundation
import NIOHTTP1
import RampartCore
import RampartBalancing
import RampartEvents
import RampartFlags
import RampartGateway
import RampartTesting
import Synchronization
import Testing

/// The events in a webhook receiver's log, by type and id.
func receivedEvents(_ receiver: WebhookReceiver) -> [(id: String, type: String, body: JSONValue, signature: String?)] {
    receiver.received.compactMap { request in
        guard let body = try? JSONValue(parsing: request.body), let object = body.objectValue,
              let id = object["id"]?.stringValue, let type = object["type"]?.stringValue else { return nil }
        return (id, type, body, request.headers["rampart-signature"])
    }
}

@Suite("Event delivery through the gateway", .serialized)
struct GatewayEventTests {
    @Test("threat, audit and application events reach the webhook; dead letters are listed, replayed and purged through the admin API")
    func endToEnd() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "app")
        defer { Task { await upstream.stop() } }
        let siem = WebhookReceiver()
        let pickyHealed = Atomic<Bool>(false)
        let picky = WebhookReceiver { _, _ in .init(status: pickyHealed.load(ordering: .relaxed) ? 200 : 400) }
        try await siem.serve { siemURL in
            try await picky.serve { pickyURL in
                let file = try TemporaryConfiguration()
                let port = try freePort(), admin = try freePort()
                let spool = file.sibling("events.sqlite")
                try file.write(port: port, admin: admin, poolURL: upstream.url, """
                events:
                  spool: \(spool)
                  sinks:
                    - {name: siem, type: webhook, url: "\(siemURL)", secretEnv: TEST_SIEM_SECRET, types: ["threat.*", "alert.*", "audit.*", "deployment.*", "app.*"]}
                    - {name: picky, type: webhook, url: "\(pickyURL)", types: ["app.*"], retry: {initialDelay: 10ms, maxAttempts: 2}}
                """)
                let process = try RampartProcess(arguments: ["serve", "--config", file.path], environment: ["TEST_SIEM_SECRET": "s3cret"])
                defer { process.stop() }
                try await waitUntilListening(port: port)
                let base = "http://127.0.0.1:\(admin)/api/system/events"

                // A threat event from traffic, an audit event from a reload, three application events.
                let attack = try await exchange(.GET, "http://127.0.0.1:\(port)/search?q=1%27+or+1%3D1--")
                #expect(attack.status == 403)
                #expect(try await exchange(.POST, "http://127.0.0.1:\(admin)/api/system/config/reload").status == 200)
                let registered = try await exchange(.POST, "http://127.0.0.1:\(admin)/api/system/load-balancer",
                                                    body: #"{"action": "register", "pool": "app", "instance": "http://127.0.0.1:1", "weight": 2}"#)
                #expect(registered.status == 201)
                let published = try await exchange(.POST, base, body: """
                    {"action": "publish", "events": [
                      {"id": "signup-1", "type": "app.signup", "partitionKey": "user-1", "data": {"plan": "free"}},
                      {"id": "signup-2", "type": "app.signup", "partitionKey": "user-2", "data": {"plan": "pro"}},
                      {"id": "quiz-1", "type": "app.quiz_created", "data": {"questions": 12}}]}
                    """)
                #expect(published.status == 202 && published.body.contains("\"published\":3"))
                try await eventually {
                    let types = receivedEvents(siem).map(\.type)
                    return types.contains("threat.detected") && types.contains("alert.raised") && types.contains("audit.config_reloaded")
                        && types.contains("deployment.instance_changed") && types.count { $0.hasPrefix("app.") } == 3
                }
                let threat = try #require(receivedEvents(siem).first { $0.type == "threat.detected" })
                #expect(threat.body.objectValue?["data"]?.objectValue?["kind"]?.stringValue == "sql_injection")
                #expect(threat.signature?.hasPrefix("t=") == true && threat.signature?.contains(",v1=") == true)
                let alert = try #require(receivedEvents(siem).first { $0.type == "alert.raised" })
                #expect(alert.body.objectValue?["data"]?.objectValue?["suppressed"] == 0)
                #expect(alert.body.objectValue?["data"]?.objectValue?["kind"]?.stringValue == "sql_injection")
                let deployment = try #require(receivedEvents(siem).first { $0.type == "deployment.instance_changed" })
                #expect(deployment.body.objectValue?["data"] == ["pool": "app", "instance": "127.0.0.1:1", "action": "register", "weight": 2])

                // The picky receiver refused them with 400, which no retry fixes: dead letters at once.
                try await eventually {
                    let list = try await exchange(.GET, base + "?sink=picky").body
                    return list.components(separatedBy: "\"lastError\":\"HTTP 400").count - 1 == 3
                }
                let page = try JSONValue(parsing: try await exchange(.GET, base + "?sink=picky&limit=2").body)
                let letters = try #require(page.objectValue?["deadLetters"]?.arrayValue)
                #expect(letters.count == 2 && letters[0].objectValue?["attempts"]?.numberValue == 1)
                let nextAfter = try #require(page.objectValue?["nextAfter"]?.numberValue)
                let rest = try JSONValue(parsing: try await exchange(.GET, base + "?sink=picky&after=\(Int(nextAfter))").body)
                #expect(rest.objectValue?["deadLetters"]?.arrayValue?.count == 1)
                #expect(rest.objectValue?["nextAfter"] == nil)
                let quiz = try JSONValue(parsing: try await exchange(.GET, base + "?type=app.quiz_created").body)
                let quizLetter = try #require(quiz.objectValue?["deadLetters"]?.arrayValue?.first?.objectValue)
                #expect(quizLetter["event"]?.objectValue?["id"]?.stringValue == "quiz-1")

                // Replay one once the receiver is fixed; purge the others.
                pickyHealed.store(true, ordering: .relaxed)
                let sequence = Int(quizLetter["sequence"]?.numberValue ?? 0)
                let replay = try await exchange(.POST, base, body: #"{"action": "replay", "sequence": \#(sequence)}"#)
                #expect(replay.status == 200 && replay.body.contains("\"replayed\":1"))
                try await eventually { receivedEvents(picky).count { $0.id == "quiz-1" } == 2 }
                let purge = try await exchange(.POST, base, body: #"{"action": "purge", "all": true}"#)
                #expect(purge.body.contains("\"purged\":2"))
                #expect(try await exchange(.GET, base).body.contains("\"deadLetters\":[]"))

                // Bad requests are refused with what is wrong.
                let noType = try await exchange(.POST, base, body: #"{"action": "publish", "events": [{"data": 1}]}"#)
                #expect(noType.status == 400 && noType.body.contains("events[0].type"))
                let badLimit = try await exchange(.GET, base + "?limit=0")
                #expect(badLimit.status == 400 && badLimit.body.contains(#"limit: expected 1 to 500, got \"0\""#))
                #expect(try await exchange(.GET, base + "?after=-1").status == 400)
                let badSource = try await exchange(.POST, base, body: #"{"action": "publish", "events": [{"type": "app.x", "source": 7}]}"#)
                #expect(badSource.status == 400 && badSource.body.contains("events[0].source"))
                let noFilter = try await exchange(.POST, base, body: #"{"action": "purge"}"#)
                #expect(noFilter.status == 400)

                let metrics = try await fetch("http://127.0.0.1:\(admin)/metrics").body
                #expect(metrics.contains(#"events_published_total{type="app.signup"} 2"#))
                #expect(metrics.contains(#"events_dead_letters_total{sink="picky"} 3"#))
                #expect(metrics.contains(#"events_delivery_failures_total{sink="picky",kind="http_400"} 3"#))
                #expect(metrics.contains(#"events_delivered_total{sink="siem"}"#))
                #expect(metrics.contains("events_delivery_latency_seconds_bucket"))
            }
        }
    }

    @Test("a gateway whose spool or flag files cannot be opened is refused with the path, and leaves nothing open")
    func unopenable() throws {
        let base = GatewayConfiguration(pools: ["app": PoolConfiguration(instances: [InstanceConfiguration(url: "http://127.0.0.1:1")])])
        var events = base
        events.events = EventsConfiguration(sinks: [.init(name: "dev", type: .log)])
        events.events?.spool = "/nonexistent-\(UUID().uuidString)/events.sqlite"
        #expect { try Gateway(configuration: events, logger: LoopbackHarness.logger) } throws: { error in
            (error as? ConfigurationError)?.issues.map(\.path) == ["events.spool"]
        }
        // Made after the events runtime: the HTTP client made before both is shut down, not freed open.
        var flags = base
        flags.flags = FlagsConfiguration(sources: ["/nonexistent-\(UUID().uuidString)/flags.json"])
        #expect(throws: ConfigurationError.self) { try Gateway(configuration: flags, logger: LoopbackHarness.logger) }
    }

    @Test("a bad events section is refused with the path of each problem")
    func badConfiguration() async throws {
        let file = try TemporaryConfiguration()
        try file.write(port: 8080, admin: 9901, poolURL: "http://127.0.0.1:1", """
        events:
          overflow: drop-everything
          sinks:
            - {name: a, type: webhook}
        """)
        let result = try runToEnd(["check", "--config", file.path], errors: true)
        #expect(result.status != 0)
        #expect(result.output.contains("events.overflow: expected drop-newest or drop-oldest"))
        try file.write(port: 8080, admin: 9901, poolURL: "http://127.0.0.1:1", """
        events:
          sinks:
            - {name: a, type: webhook, secretEnv: RAMPART_TEST_UNSET_SECRET}
            - {name: a, type: kafka, retry: {multiplier: 0.5}}
        """)
        let second = try runToEnd(["check", "--config", file.path], errors: true)
        #expect(second.status != 0)
        for path in ["events.sinks[0].url", "events.sinks[0].secretEnv", "events.sinks[1].name", "events.sinks[1].brokers", "events.sinks[1].topic",
                     "events.sinks[1].retry.multiplier"] {
            #expect(second.output.contains(path), "\(path) named")
        }
    }

    @Test("publish 100,000 events, kill -9 the gateway at a random moment, restart: every acknowledged event is delivered")
    func crash() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "app")
        defer { Task { await upstream.stop() } }
        let receiver = WebhookReceiver()
        let total = 100_000, batch = 1_000
        try await receiver.serve { url in
            let file = try TemporaryConfiguration()
            let port = try freePort(), admin = try freePort()
            let spool = file.sibling("events.sqlite")
            try file.write(port: port, admin: admin, poolURL: upstream.url, """
            events:
              spool: \(spool)
              queue: 20000
              sinks:
                - {name: hook, type: webhook, url: "\(url)", concurrency: 32, batchSize: 1000}
            """)
            var process = try RampartProcess(arguments: ["serve", "--config", file.path])
            defer { process.stop() }
            try await waitUntilListening(port: port)
            let killAt = ContinuousClock.now + .milliseconds(Int.random(in: 500...4_000))
            var killed = false
            var acknowledged = 0
            var next = 0
            while next < total / batch {
                if !killed, ContinuousClock.now >= killAt {
                    process.signal(SIGKILL)
                    _ = await process.exitStatus()
                    killed = true
                    print("crash test: killed after \(acknowledged) acknowledged events; \(receivedEvents(receiver).count) delivered so far")
                    process = try RampartProcess(arguments: ["serve", "--config", file.path])
                    try await waitUntilListening(port: port)
                }
                let events = (next * batch..<(next + 1) * batch).map { #"{"id": "c\#($0)", "type": "load.test", "data": {"n": \#($0)}}"# }
                let answer = try? await exchange(.POST, "http://127.0.0.1:\(admin)/api/system/events",
                                                 body: #"{"action": "publish", "events": [\#(events.joined(separator: ","))]}"#)
                if answer?.status == 202 {
                    acknowledged += batch
                    next += 1
                } else {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            #expect(killed, "the kill happened while publishing")
            let delivered = await waitUntil(within: .seconds(300), every: .milliseconds(500)) { receiver.distinctBodies >= acknowledged }
            let ids = receivedEvents(receiver).map(\.id)
            let unique = Set(ids)
            let missing = (0..<total).filter { !unique.contains("c\($0)") }
            #expect(delivered && missing.isEmpty, "\(missing.count) acknowledged events never delivered, first \(missing.prefix(5))")
            print("crash test: \(acknowledged) acknowledged, \(ids.count) deliveries, \(ids.count - unique.count) duplicates")
        }
    }
}

#if Kafka
/// `rampart kafka consume` as a child process, its printed lines collected.
final class ConsumerProcess: @unchecked Sendable {
    private let process = Process()
    private let output = Pipe()
    private let lock = NSLock()
    private var buffer = Data()

    init(_ arguments: [String]) throws {
        process.executableURL = RampartProcess.binary
        process.arguments = ["kafka", "consume"] + arguments
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        output.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self else { return }
            self.lock.withLock { self.buffer.append(data) }
        }
        try process.run()
    }

    /// The values of the records printed so far (whole lines only).
    var values: [String] {
        let text = lock.withLock { String(decoding: buffer, as: UTF8.self) }
        return text.split(separator: "\n", omittingEmptySubsequences: true).dropLast(text.hasSuffix("\n") ? 0 : 1).compactMap { line in
            (try? JSONValue(parsing: String(line)))?.objectValue?["value"]?.stringValue
        }
    }

    func kill() {
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        output.fileHandleForReading.readabilityHandler = nil
    }
}

@Suite("Kafka consumer killed", .enabled(if: ProcessInfo.processInfo.environment["RAMPART_TEST_KAFKA_BROKERS"] != nil,
                                         "set RAMPART_TEST_KAFKA_BROKERS (scripts/services.sh start kafka)"))
struct KafkaConsumerKillTests {
    @Test("a consumer killed with SIGKILL mid-stream: the next one in its group resumes with no record lost or skipped")
    func killed() async throws {
        try #require(Librdkafka.isAtLeast2_2, "librdkafka \(Librdkafka.version) < 2.2.0: source the services env file (LD_LIBRARY_PATH)")
        let brokers = try #require(ProcessInfo.processInfo.environment["RAMPART_TEST_KAFKA_BROKERS"])
        let topic = "killed-\(UUID().uuidString.prefix(8).lowercased())", group = "group-\(UUID().uuidString.prefix(8).lowercased())"
        let producer = try KafkaProducer(brokers: brokers)
        defer { producer.close() }
        try await producer.createTopics([topic], partitions: 2)
        let total = 3_000
        let results = await producer.send((0..<total).map { KafkaRecord(topic: topic, key: Array("k\($0 % 7)".utf8), value: Array("\($0)".utf8)) })
        #expect(results.allSatisfy { if case .success = $0 { true } else { false } })
        let arguments = ["--brokers", brokers, "--topic", topic, "--group", group, "--property", "session.timeout.ms=6000",
                         "--property", "heartbeat.interval.ms=500", "--property", "max.poll.interval.ms=10000"]
        let first = try ConsumerProcess(arguments)
        #expect(await waitUntil(within: .seconds(60)) { first.values.count >= 1_000 })
        first.kill()
        let before = first.values
        let second = try ConsumerProcess(arguments)
        defer { second.kill() }
        #expect(await waitUntil(within: .seconds(90)) { Set(before + second.values).count == total })
        let all = before + second.values
        let missing = Set((0..<total).map(String.init)).subtracting(all)
        #expect(missing.isEmpty, "\(missing.count) records lost or skipped")
        // Handled since the last commit (at most 100 records or one second) are handed over again.
        print("consumer kill: \(before.count) handled before SIGKILL, \(all.count - total) handed over again")
        #expect(all.count - total <= 1_000)
    }
}
#endif
