public import Hummingbird
import HTTPTypes
import HummingbirdWebSocket
import HummingbirdCore
public import Logging
import NIOCore
import RampartCore
import RampartTelemetry
import Synchronization

/// A small upstream for demos, tests and benchmarks (`rampart echo`). Every request gets a
/// JSON object with `instance`, `method`, `path`, `query`, `headers` and `bodyBytes` as
/// received (the body is counted while streaming, never collected). `GET /bytes/N` answers N
/// bytes, streamed; `/status/N` answers status N; `/early/N` answers status N before reading
/// the request body.
public struct EchoServer: Sendable {
    public struct Options: Sendable {
        public var name: String
        public var delay: Duration
        /// Share of requests answered 500, 0 to 1.
        public var failRate: Double

        public init(name: String, delay: Duration = .zero, failRate: Double = 0) {
            self.name = name
            self.delay = delay
            self.failRate = failRate
        }
    }

    public let options: Options
    public let requests = EchoCounter()

    public init(options: Options) { self.options = options }

    /// The Hummingbird application listening on `host:port` (port 0 picks a free one;
    /// `onRunning` receives the bound port).
    public func application(host: String = "127.0.0.1", port: Int, logger: Logger,
                            onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router()
        let options = self.options
        let counter = requests
        router.middlewares.add(EchoResponder(options: options, counter: counter))
        let name = options.name
        // `GET /ws` upgrades to a WebSocket that answers every message with "<instance>: <message>".
        let server = HTTPServerBuilder.http1WebSocketUpgrade(configuration: .init(http1: .init(), ws: .init(maxFrameSize: 1 << 20))) { request, _, _ in
            guard request.path?.split(separator: "?").first == "/ws" else { return .dontUpgrade }
            counter.record("/ws")
            return .upgrade([:]) { inbound, outbound, _ in
                for try await message in inbound.messages(maxSize: 1 << 20) {
                    switch message {
                    case .text(let text): try await outbound.write(.text("\(name): \(text)"))
                    case .binary(let bytes): try await outbound.write(.binary(bytes))
                    }
                }
            }
        }
        return Application(router: router, server: server, configuration: .init(address: .hostname(host, port: port), serverName: nil),
                           onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) }, logger: logger)
    }
}

/// Requests an echo server has received (for tests): how many, and their paths.
public final class EchoCounter: Sendable {
    private let received = Mutex<[String]>([])
    public var count: Int { received.withLock { $0.count } }
    public var paths: [String] { received.withLock { $0 } }
    func record(_ path: String) { received.withLock { $0.append(path) } }
}

struct EchoResponder: RouterMiddleware {
    typealias Context = BasicRequestContext
    let options: EchoServer.Options
    let counter: EchoCounter

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        counter.record(request.uri.path)
        if options.delay > .zero { try await Task.sleep(for: options.delay) }
        let path = request.uri.path
        if request.method == .get, path.hasPrefix("/bytes/"), let n = Int(path.dropFirst(7)), n >= 0 {
            return Response(status: .ok, headers: [.contentType: "application/octet-stream", .contentLength: String(n)],
                            body: ResponseBody(contentLength: n) { writer in
                                let chunk = ByteBuffer(repeating: UInt8(ascii: "x"), count: 64 * 1024)
                                var left = n
                                while left > 0 {
                                    let size = min(left, chunk.readableBytes)
                                    try await writer.write(chunk.getSlice(at: 0, length: size)!)
                                    left -= size
                                }
                                try await writer.finish(nil)
                            })
        }
        // Answers before reading the body, as an upstream refusing an upload does.
        if path.hasPrefix("/early/"), let code = Int(path.dropFirst(7)), (200...599).contains(code) {
            return Response(status: .init(code: code), headers: [.contentType: "text/plain", .contentLength: "6"],
                            body: .init(byteBuffer: ByteBuffer(string: "early\n")))
        }
        var bodyBytes = 0
        for try await chunk in request.body { bodyBytes += chunk.readableBytes }
        var status = HTTPResponse.Status.ok
        if path.hasPrefix("/status/"), let code = Int(path.dropFirst(8)), (200...599).contains(code) {
            status = .init(code: code)
        } else if options.failRate > 0, Double.random(in: 0..<1) < options.failRate {
            status = .internalServerError
        }
        var json = "{\"instance\":"
        appendJSONString(options.name, to: &json)
        json += ",\"method\":"
        appendJSONString(request.method.rawValue, to: &json)
        json += ",\"path\":"
        appendJSONString(path, to: &json)
        json += ",\"query\":"
        appendJSONString(request.uri.query ?? "", to: &json)
        json += ",\"headers\":{"
        var first = true
        var seen = Set<String>()
        if let authority = request.head.authority {
            json += "\"host\":"
            appendJSONString(authority, to: &json)
            first = false
        }
        for field in request.headers where seen.insert(field.name.canonicalName).inserted {
            if !first { json += "," }
            first = false
            appendJSONString(field.name.canonicalName, to: &json)
            json += ":"
            appendJSONString(request.headers[values: field.name].joined(separator: ", "), to: &json)
        }
        json += "},\"bodyBytes\":\(bodyBytes)}\n"
        return Response(status: status, headers: [.contentType: "application/json", .contentLength: String(json.utf8.count)],
                        body: .init(byteBuffer: ByteBuffer(string: json)))
    }
}
