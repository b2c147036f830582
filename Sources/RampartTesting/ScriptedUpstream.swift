import Foundation
import NIOCore
import NIOPosix
public import RampartBalancing
import Synchronization

/// An HTTP/1.1 upstream on loopback that answers each request head (and its `content-length`
/// body) as the script says.
public final class ScriptedUpstream: Sendable {
    public struct Received: Sendable {
        /// Which connection it came on, numbered from 1 in the order they opened (an object's
        /// identity would not do: a closed connection's may be reused by the next one).
        public let connection: Int
        public let path: String
        public let headers: [String: String]
        public let body: String
    }

    public enum Action: Sendable {
        case answer(String, close: Bool = false)
        case silence
        /// Close the connection without answering.
        case hangUp
    }

    private let channel: any Channel
    private let state = Mutex<(connections: Int, requests: [Received])>((0, []))
    public let url: UpstreamURL

    public var connections: Int { state.withLock { $0.connections } }
    public var requests: [Received] { state.withLock { $0.requests } }

    private init(channel: any Channel) {
        self.channel = channel
        url = UpstreamURL(scheme: .http, host: "127.0.0.1", port: channel.localAddress!.port!)
    }

    public static func start(_ script: @escaping @Sendable (Received) -> Action) async throws -> ScriptedUpstream {
        let holder = Mutex<ScriptedUpstream?>(nil)
        let numbers = ConnectionNumbers()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(Connection(number: numbers.next(), script: script) { event in
                        holder.withLock { $0?.note(event) }
                    })
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let upstream = ScriptedUpstream(channel: channel)
        holder.withLock { $0 = upstream }
        return upstream
    }

    public func stop() async throws { try await channel.close() }

    fileprivate enum Event { case connected, received(Received) }

    private func note(_ event: Event) {
        state.withLock {
            switch event {
            case .connected: $0.connections += 1
            case .received(let request): $0.requests.append(request)
            }
        }
    }

    private final class ConnectionNumbers: Sendable {
        private let last = Mutex(0)
        func next() -> Int { last.withLock { $0 += 1; return $0 } }
    }

    private final class Connection: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let number: Int
        let script: @Sendable (Received) -> Action
        let note: @Sendable (Event) -> Void
        var buffer: [UInt8] = []

        init(number: Int, script: @escaping @Sendable (Received) -> Action, note: @escaping @Sendable (Event) -> Void) {
            self.number = number
            self.script = script
            self.note = note
        }

        func channelActive(context: ChannelHandlerContext) {
            note(.connected)
            context.fireChannelActive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            buffer += unwrapInboundIn(data).readableBytesView
            while let end = headEnd() {
                let lines = String(decoding: buffer[..<end], as: UTF8.self).components(separatedBy: "\r\n")
                var headers: [String: String] = [:]
                for line in lines.dropFirst() {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
                let length = headers["content-length"].flatMap(Int.init) ?? 0
                guard buffer.count >= end + 4 + length else { return }
                let body = String(decoding: buffer[(end + 4)..<(end + 4 + length)], as: UTF8.self)
                buffer.removeFirst(end + 4 + length)
                let parts = lines[0].split(separator: " ")
                let request = Received(connection: number, path: parts.count > 1 ? String(parts[1]) : "",
                                       headers: headers, body: body)
                note(.received(request))
                switch script(request) {
                case .answer(let text, let close):
                    let written = context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: text)))
                    if close {
                        let channel = context.channel
                        written.whenComplete { _ in channel.close(promise: nil) }
                    }
                case .silence:
                    break
                case .hangUp:
                    context.close(promise: nil)
                    return
                }
            }
        }

        private func headEnd() -> Int? {
            guard buffer.count >= 4 else { return nil }
            for index in 0...(buffer.count - 4) where buffer[index] == 13 && buffer[index + 1] == 10 && buffer[index + 2] == 13 && buffer[index + 3] == 10 {
                return index
            }
            return nil
        }
    }
}
