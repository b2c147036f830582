import HTTPTypes
import NIOCore
import RampartCore

/// Recognizes the plain HTTP/1.1 request heads the direct path serves, straight from the bytes
/// of a connection.
///
/// It is deliberately narrow: it says `.complete` only for a `GET` or `HEAD` with an
/// origin-form target, `HTTP/1.1`, exactly one valid Host, no body framing (no Content-Length,
/// no Transfer-Encoding), no Upgrade or Expect, a Connection field naming at most `keep-alive`
/// or `close`, and header lines that are `token ":" OWS visible-ASCII` ending in CRLF, with no
/// trailing whitespace. Anything else, however legitimate, is `.declined`, and the connection
/// goes to the full HTTP/1 parser with its strict checks, so this recognizer can never admit
/// what that parser would refuse.
enum DirectRequestHead {
    enum Outcome {
        /// More bytes are needed (and may still make a recognized head).
        case incomplete
        /// Not a head this path serves; the full parser must see these bytes.
        case declined
        /// A head of `length` bytes (through its blank line). `keepAlive` is false when the
        /// client sent `Connection: close`.
        case complete(HTTPRequest, length: Int, keepAlive: Bool)
    }

    /// Looks at the readable bytes of `buffer` (not consumed). A head that would exceed
    /// `maxHeadBytes` or `maxTargetBytes` is declined, so the full parser answers it 431 or 414.
    static func parse(_ buffer: ByteBuffer, maxHeadBytes: Int, maxTargetBytes: Int) -> Outcome {
        buffer.withUnsafeReadableBytes { bytes in
            parse(bytes, maxHeadBytes: maxHeadBytes, maxTargetBytes: maxTargetBytes)
        }
    }

    static func parse(_ bytes: UnsafeRawBufferPointer, maxHeadBytes: Int, maxTargetBytes: Int) -> Outcome {
        var cursor = Cursor(bytes: bytes, limit: min(bytes.count, maxHeadBytes))
        let overLimit = bytes.count > maxHeadBytes

        // Request line: method SP target SP HTTP/1.1 CRLF
        let method: HTTPRequest.Method
        if cursor.skip("GET ") {
            method = .get
        } else if cursor.skip("HEAD ") {
            method = .head
        } else {
            return !overLimit && cursor.couldStart(["GET ", "HEAD "]) ? .incomplete : .declined
        }
        guard let target = cursor.take(while: { $0 > 0x20 && $0 < 0x7F }) else { return overLimit ? .declined : .incomplete }
        guard target.first == UInt8(ascii: "/"), target.count <= maxTargetBytes else { return .declined }
        switch cursor.expect(" HTTP/1.1\r\n") {
        case .matched: break
        case .needMore: return overLimit ? .declined : .incomplete
        case .mismatch: return .declined
        }

        // Room is made with the first field kept (Host is not one): a head of Host alone, as
        // API clients and load tools send, then needs no storage for its fields.
        var fields = HTTPFields()
        var authority: String?
        var keepAlive = true
        while true {
            switch cursor.expect("\r\n") {
            case .matched:
                guard let authority, HostCheck.isValidAuthority(authority) else { return .declined }
                let request = HTTPRequest(method: method, scheme: "http", authority: authority,
                                          path: String(bytes: target), headerFields: fields)
                return .complete(request, length: cursor.offset, keepAlive: keepAlive)
            case .needMore: return overLimit ? .declined : .incomplete
            case .mismatch: break
            }
            guard let nameBytes = cursor.take(while: isTokenByte) else { return overLimit ? .declined : .incomplete }
            switch cursor.expect(":") {
            case .matched: break
            case .needMore: return overLimit ? .declined : .incomplete
            case .mismatch: return .declined  // empty name, whitespace before the colon, or a stray byte
            }
            _ = cursor.take(while: { $0 == 0x20 || $0 == 0x09 })
            guard let valueBytes = cursor.take(while: { ($0 >= 0x20 && $0 < 0x7F) || $0 == 0x09 }) else {
                return overLimit ? .declined : .incomplete
            }
            switch cursor.expect("\r\n") {
            case .matched: break
            case .needMore: return overLimit ? .declined : .incomplete
            case .mismatch: return .declined  // bare CR or LF, a control byte, obs-text
            }
            if let last = valueBytes.last, last == 0x20 || last == 0x09 { return .declined }
            let known = KnownField(nameBytes)
            let value = String(bytes: valueBytes)
            switch known {
            case .host?:
                guard authority == nil else { return .declined }
                authority = value
                continue
            case .contentLength?, .transferEncoding?, .upgrade?, .expect?, .http2Settings?:
                return .declined
            case .connection?:
                for token in value.split(separator: ",") {
                    let token = token.trimmingASCIIWhitespace()
                    if token.caseInsensitiveEquals("close") {
                        keepAlive = false
                    } else if !token.caseInsensitiveEquals("keep-alive") {
                        return .declined
                    }
                }
            default:
                break
            }
            // A recognized name is made once; another is checked and lower-cased here.
            guard let fieldName = known?.name ?? HTTPField.Name(String(bytes: nameBytes)) else { return .declined }
            if fields.isEmpty { fields.reserveCapacity(12) }
            fields.append(HTTPField(name: fieldName, value: value))
        }
    }

    /// RFC 9110 §5.6.2 tchar.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
             UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// A reading position over the head's bytes, never past `limit`.
    private struct Cursor {
        enum Match { case matched, needMore, mismatch }

        let bytes: UnsafeRawBufferPointer
        let limit: Int
        var offset = 0

        init(bytes: UnsafeRawBufferPointer, limit: Int) {
            self.bytes = bytes
            self.limit = limit
        }

        var atEnd: Bool { offset >= limit }

        /// Consumes `literal` when the bytes start with it.
        mutating func skip(_ literal: StaticString) -> Bool {
            if case .matched = expect(literal) { return true }
            return false
        }

        /// Whether the bytes so far are a prefix of one of `literals`.
        func couldStart(_ literals: [String]) -> Bool {
            let seen = bytes[offset..<limit]
            return literals.contains { $0.utf8.starts(with: seen) }
        }

        mutating func expect(_ literal: StaticString) -> Match {
            let count = literal.utf8CodeUnitCount
            let available = limit - offset
            let compared = min(count, available)
            let pointer = literal.utf8Start
            for i in 0..<compared where bytes[offset + i] != pointer[i] { return .mismatch }
            guard available >= count else { return .needMore }
            offset += count
            return .matched
        }

        /// The bytes matching `accept` from here, consumed; nil when they run to the end of the
        /// bytes (the run may go on in bytes not yet received).
        mutating func take(while accept: (UInt8) -> Bool) -> UnsafeRawBufferPointer.SubSequence? {
            let start = offset
            var end = offset
            while end < limit, accept(bytes[end]) { end += 1 }
            guard end < limit else { return nil }
            offset = end
            return bytes[start..<end]
        }
    }
}
