#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import HTTPTypes
import NIOCore
import RampartCore

/// Reads upstream answers out of a connection's bytes (RFC 9112): the head into an
/// `HTTPResponse`, then the body as slices of the bytes received (no copy), framed by
/// `Content-Length`, the chunked coding or the connection's end.
///
/// Strict where a lenient reading could go wrong: lines end in CRLF; obs-fold, whitespace
/// before a colon, control characters in a value, conflicting or malformed `Content-Length`,
/// malformed chunk sizes and bytes the connection sends out of turn are errors, and a
/// connection that saw one is never reused. Informational answers (1xx) are skipped; a `101`
/// is an error, as an exchange never asks to switch protocols.
struct UpstreamResponseParser {
    enum Event {
        /// The head: `declaredLength` when the body's length is known before it arrives (0 for
        /// an answer without a body); `keepAlive` when the connection may carry another request
        /// after it.
        case head(UpstreamHead, declaredLength: Int?, keepAlive: Bool)
        /// The next bytes of the body, as received.
        case body(ByteBuffer)
        case end
    }

    struct Malformed: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    private enum State {
        /// No answer is expected.
        case idle
        case head
        case fixed(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        /// The CRLF after a chunk's data.
        case chunkEnd
        case trailers(seen: Int)
        case untilClose
    }

    /// The longest head (and trailer section) accepted.
    let maxHeadBytes: Int
    private var state = State.idle
    private var isHead = false
    /// How far the search for the head's end got, so a head arriving in pieces is scanned once.
    private var scanned = 0

    init(maxHeadBytes: Int = 64 * 1024) {
        self.maxHeadBytes = maxHeadBytes
    }

    /// The next request has been sent: its answer is expected (without a body for `HEAD`).
    mutating func expectAnswer(toHead: Bool) {
        state = .head
        isHead = toHead
        scanned = 0
    }

    /// The next event from the front of `buffer` (its bytes consumed), or nil when more bytes
    /// are needed.
    mutating func next(_ buffer: inout ByteBuffer) throws(Malformed) -> Event? {
        while true {
            switch state {
            case .idle:
                guard buffer.readableBytes == 0 else { throw Malformed("bytes with no answer due") }
                return nil
            case .head:
                return try readHead(&buffer)
            case .fixed(let remaining):
                if remaining == 0 {
                    state = .idle
                    return .end
                }
                guard buffer.readableBytes > 0 else { return nil }
                let slice = buffer.readSlice(length: min(remaining, buffer.readableBytes))!
                state = .fixed(remaining: remaining - slice.readableBytes)
                return .body(slice)
            case .chunkSize:
                guard let line = try readLine(&buffer, limit: 1024, what: "chunk size line") else { return nil }
                let size = try Self.chunkSize(line)
                state = size == 0 ? .trailers(seen: 0) : .chunkData(remaining: size)
            case .chunkData(let remaining):
                guard buffer.readableBytes > 0 else { return nil }
                let slice = buffer.readSlice(length: min(remaining, buffer.readableBytes))!
                let left = remaining - slice.readableBytes
                state = left == 0 ? .chunkEnd : .chunkData(remaining: left)
                return .body(slice)
            case .chunkEnd:
                guard buffer.readableBytes >= 2 else { return nil }
                guard buffer.readInteger(as: UInt16.self) == 0x0D0A else { throw Malformed("chunk data longer than its size") }
                state = .chunkSize
            case .trailers(let seen):
                // Trailer fields are not passed on; only their end is looked for.
                guard let line = try readLine(&buffer, limit: maxHeadBytes - seen, what: "trailer section") else { return nil }
                if line.isEmpty {
                    state = .idle
                    return .end
                }
                state = .trailers(seen: seen + line.count + 2)
            case .untilClose:
                guard buffer.readableBytes > 0 else { return nil }
                return .body(buffer.readSlice(length: buffer.readableBytes)!)
            }
        }
    }

    /// The connection has closed: the end of a body that runs to it, or nil when the answer,
    /// if one was due, is cut short.
    mutating func connectionClosed() -> Event? {
        guard case .untilClose = state else { return nil }
        state = .idle
        return .end
    }

    // MARK: Head

    /// The final head from the front of `buffer`, or nil for more bytes. Informational heads
    /// before it are read and dropped.
    private mutating func readHead(_ buffer: inout ByteBuffer) throws(Malformed) -> Event? {
        let headEnd: Int? = buffer.withUnsafeReadableBytes { bytes in
            var index = max(scanned - 3, 0)
            while index + 3 < bytes.count {
                if bytes[index + 3] != 0x0A {
                    index += bytes[index + 3] == 0x0D ? 1 : 4
                    continue
                }
                if bytes[index] == 0x0D, bytes[index + 1] == 0x0A, bytes[index + 2] == 0x0D { return index + 4 }
                index += 1
            }
            scanned = bytes.count
            return nil
        }
        guard let headEnd else {
            if buffer.readableBytes > maxHeadBytes { throw Malformed("response head larger than \(maxHeadBytes) bytes") }
            return nil
        }
        guard headEnd <= maxHeadBytes else { throw Malformed("response head larger than \(maxHeadBytes) bytes") }
        scanned = 0
        let parsed: Result<(Parsed, Framing), Malformed> = buffer.withUnsafeReadableBytes { bytes in
            do throws(Malformed) {
                return .success(try Self.parseHead(UnsafeRawBufferPointer(rebasing: bytes[..<headEnd])))
            } catch {
                return .failure(error)
            }
        }
        // The head's bytes stay, as a slice of those read: its fields are ranges of them.
        let headBytes = buffer.readSlice(length: headEnd)!
        let (parsedHead, framing) = try parsed.get()
        let response = UpstreamHead(code: parsedHead.code, reason: parsedHead.reason, bytes: headBytes, fields: parsedHead.fields)
        let code = response.code
        if code < 200 {
            guard code != 101 else { throw Malformed("an unrequested switch of protocols") }
            return try readHead(&buffer)  // informational: the final answer follows
        }
        let bodiless = isHead || code == 204 || code == 304
        var keepAlive = framing.keepAlive
        let declared: Int?
        switch framing.body {
        case _ where bodiless:
            declared = 0
            state = .fixed(remaining: 0)
        case .length(let length):
            declared = length
            state = .fixed(remaining: length)
        case .chunked:
            declared = nil
            state = .chunkSize
        case .untilClose:
            declared = nil
            keepAlive = false
            state = .untilClose
        }
        return .head(response, declaredLength: declared, keepAlive: keepAlive)
    }

    struct Framing {
        enum Body {
            case length(Int)
            case chunked
            case untilClose
        }

        var body: Body
        var keepAlive: Bool
    }

    /// A head as `parseHead` reads it: its fields are ranges of the bytes it was given.
    struct Parsed {
        var code: Int
        var reason: String
        var fields: [UpstreamHead.Field]
    }

    /// `HTTP/1.x code reason CRLF`, then field lines, up to and including the blank line: `bytes`
    /// end in CRLF CRLF (``readHead`` found them).
    static func parseHead(_ bytes: UnsafeRawBufferPointer) throws(Malformed) -> (Parsed, Framing) {
        var index = 0
        // The head ends in CRLF CRLF (the caller found it), so every search finds a CR; `memchr`
        // finds it a word at a time rather than a byte.
        let base = bytes.baseAddress!
        func line() -> Range<Int> {
            let start = index
            index = UnsafeRawPointer(memchr(base + start, 0x0D, bytes.count - start)!) - UnsafeRawPointer(base)
            defer { index += 1 }
            return start..<index
        }
        // Status line. Every line ends in CR: a CR inside a line, or an LF not after one, is
        // malformed, found below as a stray byte.
        let status = line()
        guard bytes[index] == 0x0A else { throw Malformed("a bare CR in the status line") }
        index += 1
        guard status.count >= 12, matches(bytes, at: status.lowerBound, "HTTP/1."),
              bytes[status.lowerBound + 7] == 0x30 || bytes[status.lowerBound + 7] == 0x31, bytes[status.lowerBound + 8] == 0x20 else {
            throw Malformed("not an HTTP/1 status line")
        }
        let isHTTP11 = bytes[status.lowerBound + 7] == 0x31
        var code = 0
        for offset in 9..<12 {
            let digit = bytes[status.lowerBound + offset]
            guard digit >= 0x30, digit <= 0x39 else { throw Malformed("invalid status code") }
            code = code * 10 + Int(digit - 0x30)
        }
        guard code >= 100 else { throw Malformed("invalid status code") }
        var reason = ""
        if status.count > 12 {
            guard bytes[status.lowerBound + 12] == 0x20 else { throw Malformed("invalid status code") }
            let phrase = bytes[(status.lowerBound + 13)..<status.upperBound]
            guard phrase.allSatisfy({ $0 == 0x09 || $0 >= 0x20 && $0 != 0x7F }) else { throw Malformed("control character in the reason phrase") }
            reason = String(bytes: phrase)
        }

        var fields: [UpstreamHead.Field] = []
        fields.reserveCapacity(12)
        // Every Content-Length value must agree: the first, and whether any other differs.
        var length: Int?
        var lengthsDiffer = false
        func noteLength(_ value: Int) {
            if let length { lengthsDiffer = lengthsDiffer || value != length } else { length = value }
        }
        var transferCodings: [Substring] = []
        var close = false, keepAliveToken = false
        while true {
            let field = line()
            guard bytes[index] == 0x0A else { throw Malformed("a bare CR in the head") }
            index += 1
            if field.isEmpty { break }
            let first = bytes[field.lowerBound]
            guard first != 0x20, first != 0x09 else { throw Malformed("obsolete line folding") }
            var colon = field.lowerBound
            while colon < field.upperBound, DirectRequestHead.isTokenByte(bytes[colon]) { colon += 1 }
            guard colon > field.lowerBound, colon < field.upperBound, bytes[colon] == UInt8(ascii: ":") else {
                throw Malformed("invalid field name")
            }
            var start = colon + 1, end = field.upperBound
            while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
            while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
            let value = bytes[start..<end]
            // Read through the pointer: a loop over the slice checks its bounds at every byte.
            var high: UInt8 = 0
            for offset in start..<end {
                let byte = base.load(fromByteOffset: offset, as: UInt8.self)
                guard byte >= 0x20 ? byte != 0x7F : byte == 0x09 else { throw Malformed("control character in a field value") }
                high |= byte
            }
            let isASCII = high < 0x80
            let nameBytes = bytes[field.lowerBound..<colon]
            let known = KnownField(nameBytes)
            switch known {
            case .contentLength?:
                // Usually plain digits: read as they are; a list takes the longer way.
                if !value.isEmpty, value.count <= 18, value.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
                    noteLength(value.reduce(0) { $0 * 10 + Int($1 - 0x30) })
                    break
                }
                for item in String(bytes: value).split(separator: ",", omittingEmptySubsequences: false) {
                    let digits = item.trimmingASCIIWhitespace()
                    guard !digits.isEmpty, digits.utf8.count <= 18, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                          let value = Int(digits) else { throw Malformed("invalid Content-Length") }
                    noteLength(value)
                }
            case .transferEncoding?:
                transferCodings += String(bytes: value).split(separator: ",").map { $0.trimmingASCIIWhitespace() }
            case .connection? where ByteText.equalsIgnoringCase(value, "keep-alive"):
                keepAliveToken = true
            case .connection? where ByteText.equalsIgnoringCase(value, "close"):
                close = true
            case .connection?:
                for token in String(bytes: value).split(separator: ",") {
                    let token = token.trimmingASCIIWhitespace()
                    if token.caseInsensitiveEquals("close") { close = true }
                    if token.caseInsensitiveEquals("keep-alive") { keepAliveToken = true }
                }
            default:
                break
            }
            // Every name is a token (checked above), so a valid field name.
            fields.append(UpstreamHead.Field(name: Int32(field.lowerBound)..<Int32(colon), value: Int32(start)..<Int32(end), known: known,
                                             isASCII: isASCII))
        }

        // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length; a final coding other than
        // chunked runs to the connection's end.
        let body: Framing.Body
        if !transferCodings.isEmpty {
            body = transferCodings.last!.caseInsensitiveEquals("chunked") ? .chunked : .untilClose
        } else if let length {
            guard !lengthsDiffer else { throw Malformed("conflicting Content-Length values") }
            body = .length(length)
        } else {
            body = .untilClose
        }
        return (Parsed(code: code, reason: reason, fields: fields), Framing(body: body, keepAlive: isHTTP11 ? !close : keepAliveToken && !close))
    }

    private static func matches(_ bytes: UnsafeRawBufferPointer, at offset: Int, _ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard offset + count <= bytes.count else { return false }
        for i in 0..<count where bytes[offset + i] != literal.utf8Start[i] { return false }
        return true
    }

    // MARK: Chunks

    /// One line from the front of `buffer` without its CRLF (consumed), or nil when it has not
    /// all arrived.
    private func readLine(_ buffer: inout ByteBuffer, limit: Int, what: String) throws(Malformed) -> [UInt8]? {
        let end: Int? = buffer.withUnsafeReadableBytes { bytes in
            guard let cr = bytes.firstIndex(of: 0x0D) else { return nil }
            return cr
        }
        guard let end else {
            if buffer.readableBytes > limit { throw Malformed("\(what) too long") }
            return nil
        }
        guard end <= limit else { throw Malformed("\(what) too long") }
        guard buffer.readableBytes >= end + 2 else { return nil }
        let line = buffer.readBytes(length: end)!
        guard buffer.readInteger(as: UInt8.self) == 0x0D, buffer.readInteger(as: UInt8.self) == 0x0A else {
            throw Malformed("a bare CR in the \(what)")
        }
        guard !line.contains(0x0A) else { throw Malformed("a bare LF in the \(what)") }
        return line
    }

    /// `1*HEXDIG [ BWS ";" extensions ]`: the size; extensions are ignored.
    static func chunkSize(_ line: [UInt8]) throws(Malformed) -> Int {
        var size = 0, digits = 0
        for byte in line {
            let value: Int
            switch byte {
            case 0x30...0x39: value = Int(byte - 0x30)
            case 0x41...0x46: value = Int(byte - 0x41 + 10)
            case 0x61...0x66: value = Int(byte - 0x61 + 10)
            default:
                guard digits > 0, byte == 0x3B || byte == 0x20 || byte == 0x09 else { throw Malformed("invalid chunk size") }
                guard line.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else { throw Malformed("control character in a chunk extension") }
                return size
            }
            digits += 1
            guard digits <= 15 else { throw Malformed("chunk size too large") }
            size = size * 16 + value
        }
        guard digits > 0 else { throw Malformed("invalid chunk size") }
        return size
    }
}

/// An upstream answer's head as it arrived: its status, and each field as the byte ranges of
/// its name and value in `bytes` (checked as the parser read them). The `HTTPResponse` is made
/// only when asked for: the direct path writes the fields on from these bytes.
struct UpstreamHead: Sendable {
    struct Field: Sendable {
        let name: Range<Int32>
        let value: Range<Int32>
        let known: KnownField?
        let isASCII: Bool
    }

    let code: Int
    let reason: String
    /// The head's bytes, from the status line to the blank line.
    let bytes: ByteBuffer
    let fields: [Field]

    var status: HTTPResponse.Status { .init(code: code, reasonPhrase: reason) }

    /// The fields, every one as it was sent.
    var headerFields: HTTPFields {
        var made = HTTPFields()
        made.reserveCapacity(fields.count)
        bytes.withUnsafeReadableBytes { bytes in
            for field in fields {
                let value = bytes[Int(field.value.lowerBound)..<Int(field.value.upperBound)]
                // A token (the parser checked), so a valid name; never trusted to be one blindly.
                guard let name = field.known?.name ?? HTTPField.Name(String(bytes: bytes[Int(field.name.lowerBound)..<Int(field.name.upperBound)]))
                else { continue }
                // ASCII, as values nearly always are, is copied as it is; other bytes go through
                // the library's checks (and stay as they came).
                made.append(field.isASCII ? HTTPField(name: name, value: String(bytes: value)) : HTTPField(name: name, value: value))
            }
        }
        return made
    }

    var response: HTTPResponse { HTTPResponse(status: status, headerFields: headerFields) }

    /// The field's name as text, as it was sent.
    func name(of field: Field) -> String {
        bytes.withUnsafeReadableBytes { String(bytes: $0[Int(field.name.lowerBound)..<Int(field.name.upperBound)]) }
    }

    /// The field's value as text.
    func value(of field: Field) -> String {
        bytes.withUnsafeReadableBytes { String(bytes: $0[Int(field.value.lowerBound)..<Int(field.value.upperBound)]) }
    }
}
