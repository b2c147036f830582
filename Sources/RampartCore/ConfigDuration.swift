/// A duration written in configuration as a number and a unit: `250ms`, `5s`, `1m30s`, `2h`.
/// A bare number is refused: the unit is part of the value, not of the key's name.
public struct ConfigDuration: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public let duration: Duration

    public init(_ duration: Duration) { self.duration = duration }

    public static func seconds(_ s: Double) -> ConfigDuration { .init(.milliseconds(Int64(s * 1000))) }
    public static func milliseconds(_ ms: Int64) -> ConfigDuration { .init(.milliseconds(ms)) }

    /// Parses a sequence of `<number><unit>` pairs; units are `ns`, `us`, `ms`, `s`, `m`, `h`, `d`.
    public init?(parsing text: some StringProtocol) {
        var total: Double = 0
        var rest = Substring(text.trimmingASCIIWhitespace())
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let number = rest.prefix { $0.isASCIIDigit || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix { $0.isLetter }
            rest = rest.dropFirst(unit.count)
            let scale: Double
            switch unit {
            case "ns": scale = 1e-9
            case "us", "µs": scale = 1e-6
            case "ms": scale = 1e-3
            case "s": scale = 1
            case "m": scale = 60
            case "h": scale = 3600
            case "d": scale = 86400
            default: return nil
            }
            total += value * scale
        }
        self.duration = .nanoseconds(Int64((total * 1e9).rounded()))
    }

    public var seconds: Double {
        let c = duration.components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }

    public var description: String {
        let ms = seconds * 1000
        if ms.truncatingRemainder(dividingBy: 1000) == 0 { return "\(Int64(ms / 1000))s" }
        if ms == ms.rounded() { return "\(Int64(ms))ms" }
        return "\(seconds)s"
    }

    public static func < (lhs: ConfigDuration, rhs: ConfigDuration) -> Bool { lhs.duration < rhs.duration }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let parsed = ConfigDuration(parsing: text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "\"\(text)\" is not a duration (write it with a unit: 250ms, 5s, 1m)")
        }
        self = parsed
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// A size in bytes written with a unit: `512B`, `64KiB`, `10MiB`, `1GiB` (also `KB`, `MB`, `GB`
/// as powers of 1000). A bare integer is read as bytes.
public struct ByteCount: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public let bytes: Int

    public init(_ bytes: Int) { self.bytes = bytes }

    public static func kibibytes(_ n: Int) -> ByteCount { .init(n * 1024) }
    public static func mebibytes(_ n: Int) -> ByteCount { .init(n * 1024 * 1024) }

    public init?(parsing text: some StringProtocol) {
        let text = text.trimmingASCIIWhitespace()
        let digits = text.prefix { $0.isASCIIDigit }
        guard !digits.isEmpty, let value = Int(digits) else { return nil }
        let unit = text.dropFirst(digits.count).trimmingASCIIWhitespace()
        let scale: Int
        switch unit {
        case "", "B": scale = 1
        case "KiB", "k", "K": scale = 1 << 10
        case "MiB", "M": scale = 1 << 20
        case "GiB", "G": scale = 1 << 30
        case "KB": scale = 1000
        case "MB": scale = 1_000_000
        case "GB": scale = 1_000_000_000
        default: return nil
        }
        let (product, overflow) = value.multipliedReportingOverflow(by: scale)
        guard !overflow else { return nil }
        self.bytes = product
    }

    public var description: String {
        for (unit, scale) in [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] where bytes >= scale && bytes % scale == 0 {
            return "\(bytes / scale)\(unit)"
        }
        return "\(bytes)B"
    }

    public static func < (lhs: ByteCount, rhs: ByteCount) -> Bool { lhs.bytes < rhs.bytes }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let n = try? container.decode(Int.self) {
            guard n >= 0 else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "a size cannot be negative")
            }
            self.bytes = n
            return
        }
        let text = try container.decode(String.self)
        guard let parsed = ByteCount(parsing: text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "\"\(text)\" is not a size (for example 512B, 64KiB, 10MiB)")
        }
        self = parsed
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces, tabs, CR and LF (HTTP's optional whitespace and
    /// what configuration text carries).
    public func trimmingASCIIWhitespace() -> SubSequence {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }
        var start = startIndex, end = endIndex
        while start < end, isSpace(self[start]) { start = index(after: start) }
        while end > start, isSpace(self[index(before: end)]) { end = index(before: end) }
        return self[start..<end]
    }
}
