import RampartCore

/// Undoes the encodings attackers hide payloads behind, so detectors see what an
/// application would eventually see: percent-encoding (including `%uXXXX`), HTML character
/// references, JavaScript-style `\xHH` and `\uXXXX` escapes, overlong UTF-8, and Unicode
/// compatibility forms (full-width and circled letters, typographic quotes). The decoders run
/// in rounds until nothing changes, at most `maximumRounds` times; the result is ASCII
/// lower-cased, without NUL bytes. Decoding never lengthens the input.
public enum Normalizer {
    public static let maximumRounds = 4

    public static func normalize(_ text: String) -> [UInt8] {
        normalize(Array(text.utf8))
    }

    public static func normalize(_ input: consuming [UInt8]) -> [UInt8] {
        var bytes = input
        if bytes.contains(where: needsWork) {
            for _ in 0..<maximumRounds {
                var changed = false
                bytes = decodeRound(bytes, changed: &changed)
                if !changed { break }
            }
        }
        lowercase(&bytes)
        return bytes
    }

    /// `normalize(input)` and the set of the bytes it holds. Text with nothing to decode (no
    /// escape, entity, NUL or non-ASCII byte: most of what a request carries) is lower-cased
    /// and its byte set taken in one pass.
    public static func normalizedWithByteSet(_ input: [UInt8]) -> ([UInt8], ByteSet) {
        var low: UInt64 = 0, high: UInt64 = 0
        var upper = false
        let plain = input.withUnsafeBufferPointer { buffer -> Bool in
            for b in buffer {
                if needsWork(b) { return false }
                let isUpper = b &- UInt8(ascii: "A") < 26
                upper = upper || isUpper
                let lowered = isUpper ? b | 0x20 : b
                let bit = UInt64(1) &<< UInt64(lowered & 63)
                let inHigh = UInt64(0) &- UInt64(lowered >> 6)  // all ones for 64-127
                high |= bit & inHigh
                low |= bit & ~inHigh
            }
            return true
        }
        guard plain else {
            let normalized = normalize(input)
            return (normalized, ByteSet(normalized))
        }
        guard upper else { return (input, ByteSet(low: low, high: high)) }
        var lowered = input
        lowercase(&lowered)
        return (lowered, ByteSet(low: low, high: high))
    }

    private static func needsWork(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "%") || byte == UInt8(ascii: "&") || byte == UInt8(ascii: "\\") || byte == 0 || byte >= 0x80
    }

    private static func lowercase(_ bytes: inout [UInt8]) {
        guard bytes.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) else { return }
        for i in bytes.indices where bytes[i] >= UInt8(ascii: "A") && bytes[i] <= UInt8(ascii: "Z") { bytes[i] |= 0x20 }
    }

    static func decodeRound(_ bytes: [UInt8], changed: inout Bool) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        let n = bytes.count
        while i < n {
            let b = bytes[i]
            switch b {
            case 0:
                changed = true
                i += 1
            case UInt8(ascii: "%"), UInt8(ascii: "\\"):
                // `%41`, `%u0041`, `\x41`, `\u0041`.
                if let (value, length) = escape(bytes, at: i) {
                    // Two hex digits are one byte (so `%c3%a5` and overlong `%c0%ae` decode
                    // to bytes); four are a code point.
                    if length == 6 { appendScalar(value, to: &out) } else { out.append(UInt8(value)) }
                    i += length
                    changed = true
                } else {
                    out.append(b)
                    i += 1
                }
            case UInt8(ascii: "&"):
                if let (scalar, length) = characterReference(bytes, at: i) {
                    appendScalar(scalar, to: &out)
                    i += length
                    changed = true
                } else {
                    out.append(b)
                    i += 1
                }
            case 0xC0, 0xC1:
                // Overlong two-byte form of an ASCII character.
                if i + 1 < n, bytes[i + 1] & 0xC0 == 0x80 {
                    out.append((b & 0x1F) << 6 | (bytes[i + 1] & 0x3F))
                    i += 2
                    changed = true
                } else {
                    out.append(b)
                    i += 1
                }
            case 0xE0 where i + 2 < n && bytes[i + 1] & 0xE0 == 0x80 && bytes[i + 2] & 0xC0 == 0x80:
                // Overlong three-byte form of a character below U+0800.
                let scalar = UInt32(bytes[i + 1] & 0x3F) << 6 | UInt32(bytes[i + 2] & 0x3F)
                appendScalar(scalar, to: &out)
                i += 3
                changed = true
            case 0xE2, 0xEF, 0xC2:
                if let (replacement, length) = compatibilityFold(bytes, at: i) {
                    out.append(replacement)
                    i += length
                    changed = true
                } else {
                    out.append(b)
                    i += 1
                }
            default:
                out.append(b)
                i += 1
            }
        }
        return out
    }

    /// Full-width ASCII (U+FF01-FF5E), circled letters (U+24B6-24E9), typographic quotes
    /// (U+2018-201F) and the no-break space, as the ASCII character they stand for.
    private static func compatibilityFold(_ bytes: [UInt8], at i: Int) -> (UInt8, Int)? {
        let n = bytes.count
        if bytes[i] == 0xC2, i + 1 < n, bytes[i + 1] == 0xA0 { return (UInt8(ascii: " "), 2) }
        guard i + 2 < n, bytes[i + 1] & 0xC0 == 0x80, bytes[i + 2] & 0xC0 == 0x80 else { return nil }
        let scalar = UInt32(bytes[i] & 0x0F) << 12 | UInt32(bytes[i + 1] & 0x3F) << 6 | UInt32(bytes[i + 2] & 0x3F)
        switch scalar {
        case 0xFF01...0xFF5E: return (UInt8(scalar - 0xFEE0), 3)
        case 0x24B6...0x24CF: return (UInt8(scalar - 0x24B6) + UInt8(ascii: "a"), 3)
        case 0x24D0...0x24E9: return (UInt8(scalar - 0x24D0) + UInt8(ascii: "a"), 3)
        case 0x2460...0x2468: return (UInt8(scalar - 0x2460) + UInt8(ascii: "1"), 3)
        case 0x24EA, 0x24FF: return (UInt8(ascii: "0"), 3)
        case 0x24F5...0x24FD: return (UInt8(scalar - 0x24F5) + UInt8(ascii: "1"), 3)
        case 0x2776...0x277E: return (UInt8(scalar - 0x2776) + UInt8(ascii: "1"), 3)
        case 0x2780...0x2788: return (UInt8(scalar - 0x2780) + UInt8(ascii: "1"), 3)
        case 0x278A...0x2792: return (UInt8(scalar - 0x278A) + UInt8(ascii: "1"), 3)
        case 0x2018...0x201B, 0x2032: return (UInt8(ascii: "'"), 3)
        case 0x201C...0x201F, 0x2033: return (UInt8(ascii: "\""), 3)
        case 0x2044, 0x2215: return (UInt8(ascii: "/"), 3)
        default: return nil
        }
    }

    /// A percent or backslash escape at `i`: two hex digits after `%` or `\x`, four after
    /// `%u` or `\u`. The code point and the escape's length.
    private static func escape(_ bytes: [UInt8], at i: Int) -> (UInt32, Int)? {
        guard i + 1 < bytes.count else { return nil }
        let marker = bytes[i + 1] | 0x20
        let isPercent = bytes[i] == UInt8(ascii: "%")
        if marker == UInt8(ascii: "u"), isPercent || bytes[i + 1] == UInt8(ascii: "u"), let scalar = hexScalar(bytes, from: i + 2, count: 4) {
            return (scalar, 6)
        }
        let start = isPercent ? i + 1 : i + 2
        guard isPercent || marker == UInt8(ascii: "x"), let value = hexScalar(bytes, from: start, count: 2) else { return nil }
        return (value, start + 2 - i)
    }

    private static func hexScalar(_ bytes: [UInt8], from start: Int, count: Int) -> UInt32? {
        guard start + count <= bytes.count else { return nil }
        var value: UInt32 = 0
        for i in start..<(start + count) {
            guard let digit = hexDigitValue(bytes[i]) else { return nil }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    private static let namedReferences: [String: UInt32] = [
        "lt": 0x3C, "gt": 0x3E, "amp": 0x26, "quot": 0x22, "apos": 0x27, "sol": 0x2F, "bsol": 0x5C, "colon": 0x3A,
        "semi": 0x3B, "lpar": 0x28, "rpar": 0x29, "tab": 0x09, "newline": 0x0A, "nbsp": 0x20, "grave": 0x60,
        "lbrace": 0x7B, "rbrace": 0x7D, "lcub": 0x7B, "rcub": 0x7D, "lsqb": 0x5B, "rsqb": 0x5D, "lbrack": 0x5B, "rbrack": 0x5D,
        "period": 0x2E, "comma": 0x2C, "excl": 0x21, "equals": 0x3D, "ast": 0x2A, "dollar": 0x24, "num": 0x23,
        "percnt": 0x25, "plus": 0x2B, "verbar": 0x7C, "vert": 0x7C, "quest": 0x3F, "commat": 0x40, "hat": 0x5E, "lowbar": 0x5F,
    ]

    /// `&#60;`, `&#x3c;` (the semicolon optional, as browsers allow) and common named references.
    private static func characterReference(_ bytes: [UInt8], at start: Int) -> (UInt32, Int)? {
        let n = bytes.count
        var i = start + 1
        guard i < n else { return nil }
        if bytes[i] == UInt8(ascii: "#") {
            i += 1
            let isHex = i < n && bytes[i] | 0x20 == UInt8(ascii: "x")
            if isHex { i += 1 }
            var value: UInt32 = 0
            var digits = 0
            while i < n, digits < 8 {
                let digit: UInt8?
                if isHex { digit = hexDigitValue(bytes[i]) } else {
                    digit = bytes[i] >= UInt8(ascii: "0") && bytes[i] <= UInt8(ascii: "9") ? bytes[i] - UInt8(ascii: "0") : nil
                }
                guard let digit else { break }
                value = value * (isHex ? 16 : 10) + UInt32(digit)
                digits += 1
                i += 1
            }
            guard digits > 0, value <= 0x10FFFF else { return nil }
            if i < n, bytes[i] == UInt8(ascii: ";") { i += 1 }
            return (value, i - start)
        }
        var name: [UInt8] = []
        while i < n, name.count < 8, (bytes[i] | 0x20) >= UInt8(ascii: "a"), (bytes[i] | 0x20) <= UInt8(ascii: "z") {
            name.append(bytes[i] | 0x20)
            i += 1
        }
        guard i < n, bytes[i] == UInt8(ascii: ";"), let scalar = namedReferences[String(decoding: name, as: UTF8.self)] else { return nil }
        return (scalar, i + 1 - start)
    }

    private static func appendScalar(_ value: UInt32, to out: inout [UInt8]) {
        guard let scalar = Unicode.Scalar(value) else { return }
        if value == 0 { return }
        out.append(contentsOf: Array(String(Character(scalar)).utf8))
    }
}
