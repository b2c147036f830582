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
    /// The strings' bytes are read where they are (native and small strings always allow it);
    /// only others are copied first.
    mutating func writeField(name: String, value: String) {
        let written = name.utf8.withContiguousStorageIfAvailable { name in
            value.utf8.withContiguousStorageIfAvailable { value in
                writeField(name: UnsafeRawBufferPointer(name), value: UnsafeRawBufferPointer(value))
            } != nil
        } ?? false
        if written { return }
        var name = name, value = value
        name.withUTF8 { name in
            value.withUTF8 { value in writeField(name: UnsafeRawBufferPointer(name), value: UnsafeRawBufferPointer(value)) }
        }
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
