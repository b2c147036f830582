import NIOCore

/// Text read off connections as bytes: compared and copied without the generic string paths,
/// for the request and answer heads the proxy reads.
enum ByteText {
    /// ASCII case-insensitive equality with a lower-case `literal`.
    static func equalsIgnoringCase(_ bytes: some Collection<UInt8>, _ literal: StaticString) -> Bool {
        guard bytes.count == literal.utf8CodeUnitCount else { return false }
        var i = 0
        for byte in bytes {
            let lower = byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
            if lower != literal.utf8Start[i] { return false }
            i += 1
        }
        return true
    }

    /// ASCII case-insensitive equality with `lowercased` (a name's canonical form).
    static func equalsIgnoringCase(_ bytes: some Collection<UInt8>, lowercased: String) -> Bool {
        guard bytes.count == lowercased.utf8.count else { return false }
        return zip(bytes, lowercased.utf8).allSatisfy { byte, lower in (byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte) == lower }
    }
}

extension Substring {
    /// ASCII case-insensitive equality with a lower-case `literal`.
    func caseInsensitiveEquals(_ literal: StaticString) -> Bool {
        ByteText.equalsIgnoringCase(utf8, literal)
    }
}

extension String {
    /// Bytes read off a connection as text (invalid UTF-8 repaired), copied straight into the
    /// string's storage: `String(decoding:as:)` goes through generic code that looks its types
    /// up on every call.
    init(bytes: Slice<UnsafeRawBufferPointer>) {
        self.init(unsafeUninitializedCapacity: bytes.count) { buffer in
            UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes))
            return bytes.count
        }
    }
}

extension ByteBuffer {
    /// `name: value` and CRLF, as one reservation and two copies: heads are written a field at
    /// a time, and four writes of their parts cost four capacity and uniqueness checks.
    mutating func writeField(name: String, value: String) {
        Self.withBytes(of: name) { name in
            Self.withBytes(of: value) { value in writeField(name: name, value: value) }
        }
    }

    /// `writeField` for a value that is bytes already (a traceparent written in place).
    mutating func writeField(name: String, value: UnsafeRawBufferPointer) {
        Self.withBytes(of: name) { name in writeField(name: name, value: value) }
    }

    /// `method SP target SP HTTP/1.1 CRLF`, as one reservation (four writes cost four checks).
    mutating func writeRequestLine(method: String, target: String) {
        Self.withBytes(of: method) { method in
            Self.withBytes(of: target) { target in
                // The two spaces, `HTTP/1.1` and CRLF.
                let total = method.count + target.count + 12
                writeWithUnsafeMutableBytes(minimumWritableBytes: total) { out in
                    var at = out.copy(method, at: 0)
                    at = out.copy(" ", at: at)
                    at = out.copy(target, at: at)
                    return out.copy(" HTTP/1.1\r\n", at: at)
                }
            }
        }
    }

    /// `HTTP/1.1 code SP reason CRLF`, as one reservation. The code is written as three digits
    /// (`HTTPResponse.Status` holds 0-999).
    mutating func writeStatusLine(code: Int, reason: String) {
        Self.withBytes(of: reason) { reason in
            writeWithUnsafeMutableBytes(minimumWritableBytes: reason.count + 15) { out in
                var at = out.copy("HTTP/1.1 ", at: 0)
                let value = min(max(code, 0), 999)
                out[at] = UInt8(ascii: "0") + UInt8(value / 100)
                out[at + 1] = UInt8(ascii: "0") + UInt8(value / 10 % 10)
                out[at + 2] = UInt8(ascii: "0") + UInt8(value % 10)
                at = out.copy(" ", at: at + 3)
                at = out.copy(reason, at: at)
                return out.copy("\r\n", at: at)
            }
        }
    }

    /// `Content-Length: n CRLF`, as one reservation.
    mutating func writeContentLength(_ length: Int) {
        writeWithUnsafeMutableBytes(minimumWritableBytes: 16 + 20 + 2) { out in
            var at = out.copy("Content-Length: ", at: 0)
            at = out.writeDecimal(max(length, 0), at: at)
            return out.copy("\r\n", at: at)
        }
    }

    /// The string's UTF-8 in place (native and small strings always allow it), else copied first.
    /// Inlined: called with a closure per field written, it would otherwise cost a generic call.
    @inline(__always) @discardableResult
    private static func withBytes<R>(of string: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        if let done = string.utf8.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) { return done }
        var string = string
        return string.withUTF8 { body(UnsafeRawBufferPointer($0)) }
    }

    /// `writeField` for a name and value that are bytes already (an upstream head's).
    mutating func writeField(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        let total = name.count + value.count + 4
        writeWithUnsafeMutableBytes(minimumWritableBytes: total) { out in
            out.copyMemory(from: name)
            out[name.count] = UInt8(ascii: ":")
            out[name.count + 1] = UInt8(ascii: " ")
            UnsafeMutableRawBufferPointer(rebasing: out[(name.count + 2)...]).copyMemory(from: value)
            out[total - 2] = UInt8(ascii: "\r")
            out[total - 1] = UInt8(ascii: "\n")
            return total
        }
    }
}

extension UnsafeMutableRawBufferPointer {
    /// Copies `bytes` to `offset`; returns the offset after them. The caller reserved the room;
    /// a miscount stops here rather than writing past it (release builds check no slice bounds).
    fileprivate func copy(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Int {
        precondition(offset + bytes.count <= count, "a head written past the room reserved for it")
        UnsafeMutableRawBufferPointer(rebasing: self[offset..<(offset + bytes.count)]).copyMemory(from: bytes)
        return offset + bytes.count
    }

    fileprivate func copy(_ literal: StaticString, at offset: Int) -> Int {
        copy(UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount), at: offset)
    }

    /// `value` (not negative) in decimal at `offset`; returns the offset after its digits.
    fileprivate func writeDecimal(_ value: Int, at offset: Int) -> Int {
        var digits = 1, rest = value / 10
        while rest > 0 { digits += 1; rest /= 10 }
        precondition(value >= 0 && offset + digits <= count, "a number written past the room reserved for it")
        var value = value
        for index in stride(from: offset + digits - 1, through: offset, by: -1) {
            self[index] = UInt8(ascii: "0") + UInt8(value % 10)
            value /= 10
        }
        return offset + digits
    }
}
