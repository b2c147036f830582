/// Normalizes a request target's path before routing (RFC 3986 §5.2.4 and §6.2.2), so that
/// `/api/../admin`, `/api/%2e%2e/admin` and `/admin` cannot be routed differently.
public enum RequestTarget {
    /// Why a target was refused.
    public enum Problem: Error, Sendable, Equatable {
        /// Not origin-form (`/path?query`).
        case notOriginForm
        /// A percent sign not followed by two hex digits.
        case badPercentEncoding
        /// An encoded NUL or control character, which no legitimate path carries.
        case controlCharacter
    }

    /// Splits `target` into the normalized path and the raw query (without `?`).
    ///
    /// Dot segments are removed, including percent-encoded ones (`%2e`, `%2E`); percent
    /// escapes of unreserved characters are decoded and the others are upper-cased; an encoded
    /// slash (`%2F`) stays encoded, so it never splits a segment.
    public static func normalize(_ target: String) throws(Problem) -> (path: String, query: String?) {
        // Split on the bytes `?` and `#` (RFC 3986 delimiters are ASCII), not on characters,
        // which is both what the RFC means and cheaper: every request's target comes here.
        let bytes = target.utf8
        var pathPart = Substring(target)
        var query: String?
        if let q = bytes.firstIndex(of: UInt8(ascii: "?")) {
            pathPart = target[..<q]
            query = String(target[bytes.index(after: q)...])
        }
        if let hash = pathPart.utf8.firstIndex(of: UInt8(ascii: "#")) { pathPart = pathPart[..<hash] }
        guard pathPart.utf8.first == UInt8(ascii: "/") else { throw .notOriginForm }
        if isNormal(pathPart) { return (pathPart.endIndex == target.endIndex ? target : String(pathPart), query) }
        return (try normalizeSegments(pathPart), query)
    }

    /// Whether a path is its own normal form, as most are: no percent sign, no segment that
    /// starts with a dot, no control character. One pass, and no segment is made.
    static func isNormal(_ path: Substring) -> Bool {
        var previous: UInt8 = 0
        for byte in path.utf8 {
            if byte == UInt8(ascii: "%") || byte < 0x20 || byte == 0x7F || (byte == UInt8(ascii: ".") && previous == UInt8(ascii: "/")) {
                return false
            }
            previous = byte
        }
        return true
    }

    /// The normal form of an origin-form path (starting with `/`), segment by segment.
    static func normalizeSegments(_ pathPart: Substring) throws(Problem) -> String {
        var output: [String] = []
        let segments = pathPart.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        for (index, raw) in segments.enumerated() {
            let segment = try canonicalSegment(raw)
            let isLast = index == segments.count - 1
            switch segment {
            case ".":
                if isLast { output.append("") }
            case "..":
                if !output.isEmpty { output.removeLast() }
                if isLast { output.append("") }
            default:
                output.append(segment)
            }
        }
        return "/" + output.joined(separator: "/")
    }

    static func canonicalSegment(_ raw: Substring) throws(Problem) -> String {
        guard raw.contains("%") else {
            if raw.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) { throw .controlCharacter }
            return String(raw)
        }
        var out: [UInt8] = []
        out.reserveCapacity(raw.utf8.count)
        var bytes = raw.utf8.makeIterator()
        while let byte = bytes.next() {
            if byte < 0x20 || byte == 0x7F { throw .controlCharacter }
            guard byte == UInt8(ascii: "%") else {
                out.append(byte)
                continue
            }
            guard let h = bytes.next(), let l = bytes.next(), let hi = hexDigitValue(h), let lo = hexDigitValue(l) else {
                throw .badPercentEncoding
            }
            let decoded = hi << 4 | lo
            if decoded < 0x20 || decoded == 0x7F { throw .controlCharacter }
            if isUnreserved(decoded) {
                out.append(decoded)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(upperHex(hi))
                out.append(upperHex(lo))
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func upperHex(_ nibble: UInt8) -> UInt8 { nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "A") + nibble - 10 }

    static func isUnreserved(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
            || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "~")
    }
}

/// The value of one hexadecimal digit (either case), or nil.
/// `bytes` as lowercase hex digits, two per byte.
public func lowercaseHex(_ bytes: some Sequence<UInt8>) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0xF)])
    }
    return String(decoding: out, as: UTF8.self)
}

public func hexDigitValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
}
