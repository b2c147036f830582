public import Hummingbird
import HTTPTypes
import Logging
import NIOCore
import RampartCore
import ServiceLifecycle
import Synchronization

/// Runs `router` on 127.0.0.1 (a port the system picks) for as long as `body` runs.
public func serveHTTP<T: Sendable>(_ router: Router<BasicRequestContext>, _ body: @Sendable (_ url: String) async throws -> T) async throws -> T {
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    var logger = Logger(label: "test-server")
    logger.logLevel = .warning
    let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                          onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) }, logger: logger)
    // Stopped gracefully, not by cancelling its task: a connection accepted while the task is
    // cancelled is dropped unserved, which Swift NIO's async channel treats as a fatal error.
    var configuration = ServiceGroupConfiguration(services: [app], logger: logger)
    configuration.maximumGracefulShutdownDuration = .seconds(2)
    let group = ServiceGroup(configuration: configuration)
    let task = Task { try? await group.run() }
    var iterator = ports.makeAsyncIterator()
    let port = await iterator.next() ?? 0
    let result: Result<T, any Error>
    do {
        result = .success(try await body("http://127.0.0.1:\(port)"))
    } catch {
        result = .failure(error)
    }
    await group.triggerGracefulShutdown()
    await task.value
    return try result.get()
}

/// A webhook receiver for tests: records every POST to `/hook` (headers and body) and answers
/// with what `answer` says for it (200 by default; a delay makes the sender time out).
public final class WebhookReceiver: Sendable {
    public struct Received: Sendable {
        /// By lowercase name.
        public var headers: [String: String]
        public var body: [UInt8]
        /// Seconds on the continuous clock since the receiver was made.
        public var at: Double
    }

    public struct Answer: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var delay: Duration

        public init(status: Int = 200, headers: [String: String] = [:], delay: Duration = .zero) {
            self.status = status
            self.headers = headers
            self.delay = delay
        }
    }

    private let log = Mutex<(all: [Received], seen: [[UInt8]: Int])>(([], [:]))
    private let answer: @Sendable (_ body: [UInt8], _ attempt: Int) -> Answer
    private let started = ContinuousClock.now

    /// - Parameter answer: the answer to a body, given how many times that same body has been received before this one (0 the first time).
    public init(answer: @escaping @Sendable (_ body: [UInt8], _ previous: Int) -> Answer = { _, _ in Answer() }) {
        self.answer = answer
    }

    public var received: [Received] { log.withLock { $0.all } }

    /// How many different bodies came (each event once, however often it was sent).
    public var distinctBodies: Int { log.withLock { $0.seen.count } }

    /// Serves `/hook` while `body` runs; `body` gets the hook's URL.
    public func serve<T: Sendable>(_ body: @Sendable (_ url: String) async throws -> T) async throws -> T {
        let router = Router()
        router.post("/hook") { request, _ -> Response in
            let bytes = Array(buffer: try await request.body.collect(upTo: 1 << 20))
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let previous = self.log.withLock { log in
                let previous = log.seen[bytes, default: 0]
                log.seen[bytes] = previous + 1
                log.all.append(Received(headers: headers, body: bytes, at: (ContinuousClock.now - self.started).secondsValue))
                return previous
            }
            let answer = self.answer(bytes, previous)
            if answer.delay > .zero { try? await Task.sleep(for: answer.delay) }
            var fields = HTTPFields()
            for (name, value) in answer.headers { if let name = HTTPField.Name(name) { fields[name] = value } }
            return Response(status: .init(code: answer.status), headers: fields, body: .init(byteBuffer: ByteBuffer(string: "{}")))
        }
        return try await serveHTTP(router) { url in try await body(url + "/hook") }
    }
}

/// The URL of a loopback port that was just listened on and is closed now: connecting is refused.
public func closedPortURL() async throws -> String {
    try await serveHTTP(Router()) { url in url }
}
