import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import RampartCore

/// A channel handler on each HTTP/1 connection, between the codec and the application:
///
/// - a client must deliver a complete request head within `headerTimeout` of the connection
///   opening or the previous response ending, and while sending a body must send something at
///   least every `bodyTimeout`; otherwise the connection is closed (slow-loris defence);
/// - a header block over the parser's limit is answered 431 rather than a bare 400;
/// - a response carrying `Connection: close` closes the connection once it is written, so a
///   refused request never leaves a half-read body on a reused connection;
/// - after a request head with a missing, repeated or invalid Host (RFC 9112 §3.2), nothing
///   more is read from the connection: the application answers that head with 400 and the
///   connection closes, so a request pipelined behind it is never forwarded.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let headerTimeout: TimeAmount
    private let bodyTimeout: TimeAmount
    private var timer: Scheduled<Void>?
    private var readingBody = false
    private var closeAfterResponse = false
    private var discarding = false
    /// After a 101 the connection carries another protocol: no HTTP timeouts apply any more.
    private var tunneled = false
    /// On an HTTP/2 stream the end of the client's input is the end of its request, not of
    /// the client.
    private let isStream: Bool
    /// The upstream exchange of the request in progress, called off if the client goes away.
    private var exchange: UpstreamCancellation?
    private var clientGone = false

    init(headerTimeout: TimeAmount, bodyTimeout: TimeAmount, isStream: Bool = false) {
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
        self.isStream = isStream
    }

    /// Called on the connection's loop by the forward phase: `cancellation` is called off if
    /// the client closes the connection (or, on HTTP/1, its sending side; on HTTP/2, resets the
    /// stream) before the answer has been written, as nginx does with
    /// `proxy_ignore_client_abort off`.
    func register(_ cancellation: UpstreamCancellation) {
        if clientGone { return cancellation.cancel() }
        exchange = cancellation
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if !isStream, case .inputClosed? = event as? ChannelEvent {
            clientGone = true
            exchange?.cancel()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context, headerTimeout) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context, headerTimeout)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) { disarm() }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        clientGone = true
        exchange?.cancel()
        exchange = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if discarding { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            if HostCheck.problem(with: head) != nil {
                discarding = true
                disarm()
                context.fireChannelRead(data)
                return
            }
            readingBody = true
            arm(context, bodyTimeout)
        case .body:
            arm(context, bodyTimeout)
        case .end:
            readingBody = false
            disarm()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            if head.headerFields[.connection]?.lowercased() == "close" { closeAfterResponse = true }
            if head.status == .switchingProtocols {
                tunneled = true
                disarm()
            }
            context.write(data, promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            exchange = nil
            if closeAfterResponse {
                let channel = context.channel
                context.writeAndFlush(data).whenComplete { _ in channel.close(promise: nil) }
                promise?.succeed()
                return
            }
            context.write(data, promise: promise)
            // The next request head must arrive in time; keep-alive idleness beyond that is the
            // idle timeout's business, so only arm when no request is being read.
            if !readingBody { arm(context, headerTimeout) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let parserError = error as? HTTPParserError, case .headerOverflow = parserError {
            disarm()
            let head = HTTPResponse(status: .requestHeaderFieldsTooLarge, headerFields: [.connection: "close", .contentLength: "0"])
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        context.fireErrorCaught(error)
    }

    private func arm(_ context: ChannelHandlerContext, _ timeout: TimeAmount) {
        timer?.cancel()
        if tunneled { return }
        timer = context.closing(after: timeout)
    }

    private func disarm() {
        timer?.cancel()
        timer = nil
    }
}

extension ChannelHandlerContext {
    /// Closes the connection after `timeout`, unless the returned task is cancelled first: the
    /// client timeouts of HTTP/1 connections.
    func closing(after timeout: TimeAmount) -> Scheduled<Void> {
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        return eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            loopBound.value.close(promise: nil)
        }
    }
}

/// RFC 9112 §3.2: a request carries exactly one valid Host. Checked twice by design of the
/// layers, with this one function: the connection guard stops reading after a bad head, and
/// the admit phase answers it.
enum HostCheck {
    // HTTPTypes hides `.host` in favour of the authority; the HTTP/1 codec moves the first
    // Host into the authority, so a second one is still a field.
    static let hostField = HTTPField.Name("Host")!

    /// Why the head's Host is unacceptable, or nil when it is fine.
    static func problem(with head: HTTPRequest) -> String? {
        guard let authority = head.authority, !authority.isEmpty else { return "missing Host" }
        if !head.headerFields[values: hostField].isEmpty { return "more than one Host" }
        if !isValidAuthority(authority) { return "invalid Host" }
        return nil
    }

    /// RFC 9110 §7.2 / RFC 3986: reg-name or IP literal, optional port. Read as bytes: it runs
    /// for every request.
    static func isValidAuthority(_ authority: String) -> Bool {
        // By offset over the contiguous bytes.
        var authority = authority
        return authority.withUTF8 { bytes in
            func isPort(_ digits: Range<Int>, allowsEmpty: Bool) -> Bool {
                (allowsEmpty || !digits.isEmpty) && digits.count <= 5 && digits.allSatisfy { bytes[$0] >= 0x30 && bytes[$0] <= 0x39 }
            }
            if bytes.first == UInt8(ascii: "[") {
                guard let close = bytes.firstIndex(of: UInt8(ascii: "]")),
                      IPAddress(String(decoding: UnsafeBufferPointer(rebasing: bytes[1..<close]), as: UTF8.self)) != nil else { return false }
                let rest = (close + 1)..<bytes.count
                if rest.isEmpty { return true }
                return bytes[rest.lowerBound] == UInt8(ascii: ":") && isPort((rest.lowerBound + 1)..<rest.upperBound, allowsEmpty: true)
            }
            var hostEnd = bytes.count
            if let colon = bytes.lastIndex(of: UInt8(ascii: ":")) {
                guard isPort((colon + 1)..<bytes.count, allowsEmpty: false) else { return false }
                hostEnd = colon
            }
            guard hostEnd > 0, hostEnd <= 255 else { return false }
            for b in bytes[..<hostEnd] {
                guard (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x2E || b == 0x5F
                else { return false }
            }
            return true
        }
    }
}

/// On HTTP/2 streams: connection-specific fields are not allowed in HTTP/2 (RFC 9113 §8.2.2),
/// so they are taken off responses that the phases shaped for HTTP/1.
final class HTTP2ResponseSanitizer: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    static let connectionSpecific: [HTTPField.Name] = [.connection, .transferEncoding, .upgrade, .keepAlive, .proxyConnection]

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .head(var head) = unwrapOutboundIn(data) else { return context.write(data, promise: promise) }
        for name in Self.connectionSpecific { head.headerFields[name] = nil }
        context.write(wrapOutboundOut(.head(head)), promise: promise)
    }
}
