/// An IPv4 or IPv6 address held as 128 bits; IPv4 addresses are kept apart from
/// IPv4-mapped IPv6 ones so `10.0.0.1` and `::ffff:10.0.0.1` compare by family.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// The address family, which fixes how many of the 128 bits are meaningful.
    public enum Family: Sendable, Hashable {
        case v4, v6

        /// Number of bits in an address of this family.
        public var bitWidth: Int { self == .v4 ? 32 : 128 }
    }

    public let family: Family
    /// The address bits, left-aligned: an IPv4 address occupies the top 32 bits of `high`.
    public let high: UInt64
    public let low: UInt64

    public init(v4 value: UInt32) {
        self.family = .v4
        self.high = UInt64(value) << 32
        self.low = 0
    }

    public init(v6High high: UInt64, low: UInt64) {
        self.family = .v6
        self.high = high
        self.low = low
    }

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text (with `::` and an embedded IPv4 tail).
    /// A zone index (`%eth0`) or brackets are not accepted; strip them first.
    public init?(_ text: some StringProtocol) {
        if text.contains(":") {
            guard let (h, l) = IPAddress.parseV6(Substring(text)) else { return nil }
            self.init(v6High: h, low: l)
        } else {
            guard let v = IPAddress.parseV4(Substring(text)) else { return nil }
            self.init(v4: v)
        }
    }

    /// The bit at `index` (0 is the most significant).
    @inlinable
    public func bit(_ index: Int) -> Bool {
        index < 64 ? (high >> (63 - index)) & 1 == 1 : (low >> (127 - index)) & 1 == 1
    }

    /// For an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), the IPv4 address; otherwise self.
    public var unmapped: IPAddress {
        if family == .v6, high == 0, low >> 32 == 0xFFFF {
            return IPAddress(v4: UInt32(truncatingIfNeeded: low))
        }
        return self
    }

    public var description: String {
        switch family {
        case .v4:
            // Written digit by digit: it goes into forwarding headers and logs on every request.
            let v = UInt32(truncatingIfNeeded: high >> 32)
            return String(unsafeUninitializedCapacity: 15) { buffer in
                var offset = 0
                for shift in stride(from: 24, through: 0, by: -8) {
                    let octet = UInt8(truncatingIfNeeded: v >> UInt32(shift))
                    if octet >= 100 { buffer[offset] = 0x30 + octet / 100; offset += 1 }
                    if octet >= 10 { buffer[offset] = 0x30 + octet / 10 % 10; offset += 1 }
                    buffer[offset] = 0x30 + octet % 10
                    offset += 1
                    if shift > 0 { buffer[offset] = UInt8(ascii: "."); offset += 1 }
                }
                return offset
            }
        case .v6:
            var groups: [UInt16] = []
            for i in 0..<4 { groups.append(UInt16(truncatingIfNeeded: high >> (48 - 16 * i))) }
            for i in 0..<4 { groups.append(UInt16(truncatingIfNeeded: low >> (48 - 16 * i))) }
            // RFC 5952: compress the longest run (length >= 2) of zero groups.
            var bestStart = -1, bestLength = 0, i = 0
            while i < 8 {
                if groups[i] == 0 {
                    var j = i
                    while j < 8, groups[j] == 0 { j += 1 }
                    if j - i > bestLength, j - i >= 2 { bestStart = i; bestLength = j - i }
                    i = j
                } else {
                    i += 1
                }
            }
            func hex(_ range: Range<Int>) -> String {
                groups[range].map { String($0, radix: 16) }.joined(separator: ":")
            }
            if bestStart < 0 { return hex(0..<8) }
            return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
        }
    }

    static func parseV4(_ text: Substring) -> UInt32? {
        var value: UInt32 = 0
        var parts = 0
        for part in text.split(separator: ".", omittingEmptySubsequences: false) {
            // No leading zeros: "010" is ambiguous (octal in some parsers), refuse it.
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCIIDigit),
                  part.count == 1 || part.first != "0",
                  let octet = UInt32(part), octet <= 255 else { return nil }
            value = value << 8 | octet
            parts += 1
        }
        return parts == 4 ? value : nil
    }

    static func parseV6(_ text: Substring) -> (UInt64, UInt64)? {
        var head: [UInt16] = []
        var tail: [UInt16] = []
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ s: String, allowV4Tail: Bool) -> [UInt16]? {
            if s.isEmpty { return [] }
            var result: [UInt16] = []
            let parts = s.split(separator: ":", omittingEmptySubsequences: false)
            for (index, part) in parts.enumerated() {
                if index == parts.count - 1, allowV4Tail, part.contains(".") {
                    guard let v4 = parseV4(part) else { return nil }
                    result.append(UInt16(v4 >> 16))
                    result.append(UInt16(v4 & 0xFFFF))
                } else {
                    guard (1...4).contains(part.count), let g = UInt16(part, radix: 16) else { return nil }
                    result.append(g)
                }
            }
            return result
        }
        if halves.count == 2 {
            guard let h = groups(halves[0], allowV4Tail: false),
                  let t = groups(halves[1], allowV4Tail: true), h.count + t.count <= 7 else { return nil }
            head = h
            tail = t
        } else {
            guard let h = groups(halves[0], allowV4Tail: true), h.count == 8 else { return nil }
            head = h
        }
        let all = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        var high: UInt64 = 0, low: UInt64 = 0
        for i in 0..<4 { high = high << 16 | UInt64(all[i]) }
        for i in 4..<8 { low = low << 16 | UInt64(all[i]) }
        return (high, low)
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}

extension StringProtocol {
    func components(separatedBy separator: String) -> [String] {
        var result: [String] = []
        var rest = Substring(self)
        while let range = rest.firstRange(of: separator) {
            result.append(String(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        result.append(String(rest))
        return result
    }
}
