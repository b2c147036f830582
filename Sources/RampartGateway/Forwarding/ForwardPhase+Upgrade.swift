import Hummingbird
import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOSSL
import RampartBalancing
import RampartCore

/// An HTTP/1.1 request asking to switch protocols (RFC 9110 §7.8), such as a WebSocket
/// handshake. `h2c` is ours to refuse, not to forward: HTTP/2 is offered by prior knowledge.
struct UpgradeRequest {
    let protocols: String

    init?(_ request: Request) {
        guard let value = request.headers[.upgrade], !value.isEmpty,
              HeaderRewriting.connectionNamed(request.headers).contains("upgrade"),
              !value.lowercased().hasPrefix("h2c") else { return nil }
        protocols = value
    }
}

extension ForwardPhase {
    /// Forwards an upgrade request on a connection of its own. A 101 from the upstream turns the
    /// client's connection into a byte tunnel to it until either side closes; any other answer
    /// is relayed and the client's connection closes (its parser has stopped at the upgrade).
    func tunnel(_ request: Request, upgrade: UpgradeRequest, context: Context, pool: Pool, input: SelectionInput, target: String,
                trustsPeer: Bool) async throws -> Response {
        let channel = context.channel
        let canTunnel = try await channel.eventLoop.submit {
            (try? channel.pipeline.syncOperations.handler(type: TunnelSwitch.self)) != nil
        }.get()
        guard canTunnel else {
            // HTTP/2 streams cannot switch protocols (RFC 9113 §8.6).
            throw GatewayError(.badRequest, origin: .client, "protocol upgrades need HTTP/1.1")
        }
        // The HTTP/1 parser has stopped at the upgrade request: unless the upstream switches
        // protocols, this connection ends with this answer, whatever it is.
        context.record.note { $0.closeConnection = true }
        let proxy = context.snapshot!.configuration.proxy
        var picker = InstancePicker(input: input)
        while true {
            guard let instance = picker.next(from: pool, noting: context.record, at: time.now()) else {
                throw GatewayError(.noHealthyInstance, origin: .gateway, "no available instance in pool \(pool.name)")
            }
            var headers = HTTPHeaders()
            upstreamHeaders(request.head, context: context, instance: instance, trustsPeer: trustsPeer, into: &headers)
            headers.add(name: "Connection", value: "Upgrade")
            headers.add(name: "Upgrade", value: upgrade.protocols)
            let head = HTTPRequestHead(version: .http1_1, method: NIOHTTP1.HTTPMethod(rawValue: request.method.rawValue),
                                       uri: instance.url.basePath + target, headers: headers)
            let started = time.now()
            pool.begin(instance)
            let handshake: TunnelHandshake
            do {
                handshake = try await TunnelDialer.open(
                    instance: instance.url, head: head, on: channel.eventLoop,
                    connectTimeout: .nanoseconds(proxy.timeouts.connect.duration.nanoseconds),
                    tls: instance.url.scheme == .https ? try UpstreamTLS.shared.context() : nil)
            } catch {
                pool.finish(instance, outcome: .failure, latency: time.now() - started)
                // Nothing has reached an upstream that refused or never answered the handshake.
                if picker.attempt <= proxy.retries.attempts, budget.tryRetry() {
                    pool.recordRetry(from: instance)
                    continue
                }
                throw GatewayError(.upstreamReset, origin: .upstream, "the upstream did not answer the upgrade request", underlying: error)
            }
            context.record.note { $0.upstreamSeconds = (time.now() - started).secondsValue }
            switch handshake {
            case .refused(let answer, let body):
                pool.finish(instance, outcome: .response(status: Int(answer.status.code)), latency: time.now() - started)
                var fields = HeaderRewriting.clientResponseHeaders(answer.headers)
                fields[.contentLength] = String(body.readableBytes)
                fields[.connection] = "close"
                return Response(status: .init(code: Int(answer.status.code), reasonPhrase: answer.status.reasonPhrase),
                                headers: fields, body: .init(byteBuffer: body))
            case .switched(let answer, let tunnel):
                do {
                    try await tunnel.divert(client: channel)
                } catch {
                    tunnel.close()
                    pool.finish(instance, outcome: .abandoned, latency: time.now() - started)
                    throw GatewayError(.clientClosed, origin: .client, "the client left during the upgrade", underlying: error)
                }
                context.record.note { $0.closeConnection = false }
                var fields = HeaderRewriting.clientResponseHeaders(answer.headers)
                fields[.connection] = "Upgrade"
                fields[.upgrade] = answer.headers.first(name: "upgrade") ?? upgrade.protocols
                // The instance counts the tunnel as an active connection while it lasts; its latency
                // is the handshake's, not the tunnel's lifetime.
                let handshakeLatency = time.now() - started
                return Response(status: .switchingProtocols, headers: fields, body: ResponseBody { _ in
                    await tunnel.run()
                    pool.finish(instance, outcome: .response(status: 101), latency: handshakeLatency)
                })
            }
        }
    }
}
