import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import RampartGateway
import RampartShield
import RampartTesting
import Testing

/// Threat detection in the inspect phase of a running gateway.
@Suite(.serialized) struct ThreatDetectionTests {
    func post(_ url: String, json: String) async throws -> (status: Int, body: String) {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: json))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), String(buffer: body))
    }

    @Test func attacksAreRefusedWithoutEchoingThePayload() async throws {
        let upstream = await LoopbackHarness.startEcho(name: "a")
        var configuration = LoopbackHarness.configuration(pool: [upstream])
        configuration.routes.insert(RouteConfiguration(name: "questions", match: .init(pathPrefix: "/api/questions"), pool: "app",
                                                       waf: RouteWAFConfiguration(exclude: ["json:$.body"])), at: 0)
        configuration.routes.insert(RouteConfiguration(name: "rollout", match: .init(pathPrefix: "/rollout"), pool: "app",
                                                       waf: RouteWAFConfiguration(mode: .detect)), at: 0)
        try await LoopbackHarness.withGateway(configuration) { _, port, _ in
            let refused = try await fetch("http://127.0.0.1:\(port)/search?q=1%27%20union%20select%20password%20from%20users--")
            #expect(refused.status == 403)
            let error = try #require(try JSONSerialization.jsonObject(with: Data(refused.body.utf8)) as? [String: Any])
            #expect(error["error"] as? String == "threat_detected")
            #expect((error["requestId"] as? String)?.isEmpty == false)
            #expect(!refused.body.lowercased().contains("union"))
            #expect(try await fetch("http://127.0.0.1:\(port)/search?q=select%20the%20best%20union%20plan").status == 200)

            // A JSON body is inspected; the route's exclusion lets code through where it belongs.
            let attack = #"{"title": "hi", "body": "<script>alert(1)</script>"}"#
            #expect(try await post("http://127.0.0.1:\(port)/api/other", json: attack).status == 403)
            let question = try await post("http://127.0.0.1:\(port)/api/questions", json: attack)
            #expect(question.status == 200)
            #expect(question.body.contains("\"bodyBytes\":\(attack.utf8.count)"))
            #expect(try await post("http://127.0.0.1:\(port)/api/questions", json: #"{"title": "<script>alert(1)</script>"}"#).status == 403)

            // Detect-only: logged and forwarded.
            #expect(try await fetch("http://127.0.0.1:\(port)/rollout?f=../../../etc/passwd").status == 200)

            // A body beyond the inspected size streams through whole.
            let big = "{\"data\": \"" + String(repeating: "a", count: 200_000) + "\"}"
            let streamed = try await post("http://127.0.0.1:\(port)/api/other", json: big)
            #expect(streamed.status == 200)
            #expect(streamed.body.contains("\"bodyBytes\":\(big.utf8.count)"))
        }
        #expect(upstream.server.requests.count == 4)
        await upstream.stop()
    }
}
