import RampartCore

/// A SemVer 2.0.0 version as flagd's `sem_ver` reads it: one leading `v` dropped, `1` and
/// `1.2` padded with zeros, build metadata kept out of the ordering.
public struct SemanticVersion: Sendable, Comparable {
    public let major: UInt64, minor: UInt64, patch: UInt64
    /// Pre-release identifiers; empty for a release.
    public let prerelease: [String]

    public init?(_ text: String) {
        var text = Substring(text)
        if text.first == "v" || text.first == "V" { text = text.dropFirst() }
        if let plus = text.firstIndex(of: "+") {
            let build = text[text.index(after: plus)...]
            guard Self.validIdentifiers(build, numericRule: false) else { return nil }
            text = text[..<plus]
        }
        var prerelease: [String] = []
        if let dash = text.firstIndex(of: "-") {
            let pre = text[text.index(after: dash)...]
            guard Self.validIdentifiers(pre, numericRule: true) else { return nil }
            prerelease = pre.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            text = text[..<dash]
        }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...3).contains(parts.count) else { return nil }
        var numbers: [UInt64] = []
        for part in parts {
            guard !part.isEmpty, part.allSatisfy(\.isASCIIDigit), part == "0" || part.first != "0", let n = UInt64(part) else { return nil }
            numbers.append(n)
        }
        while numbers.count < 3 { numbers.append(0) }
        (major, minor, patch) = (numbers[0], numbers[1], numbers[2])
        self.prerelease = prerelease
    }

    private static func validIdentifiers(_ text: Substring, numericRule: Bool) -> Bool {
        let identifiers = text.split(separator: ".", omittingEmptySubsequences: false)
        return identifiers.allSatisfy { id in
            guard !id.isEmpty, id.allSatisfy({ $0.isASCIIDigit || $0.isASCIILetter || $0 == "-" }) else { return false }
            // A numeric pre-release identifier has no leading zero.
            return !numericRule || !id.allSatisfy(\.isASCIIDigit) || id == "0" || id.first != "0"
        }
    }

    public static func < (a: SemanticVersion, b: SemanticVersion) -> Bool {
        if (a.major, a.minor, a.patch) != (b.major, b.minor, b.patch) { return (a.major, a.minor, a.patch) < (b.major, b.minor, b.patch) }
        switch (a.prerelease.isEmpty, b.prerelease.isEmpty) {
        case (true, _): return false
        case (false, true): return true
        default: break
        }
        for (x, y) in zip(a.prerelease, b.prerelease) where x != y {
            switch (UInt64(x), UInt64(y)) {
            case (let m?, let n?): return m < n
            case (.some, nil): return true
            case (nil, .some): return false
            default: return x.utf8.lexicographicallyPrecedes(y.utf8)
            }
        }
        return a.prerelease.count < b.prerelease.count
    }

    public static func == (a: SemanticVersion, b: SemanticVersion) -> Bool {
        (a.major, a.minor, a.patch) == (b.major, b.minor, b.patch) && a.prerelease == b.prerelease
    }

    /// `sem_ver`'s answer, or nil (null) for an unknown operator or an unreadable version.
    static func compare(_ left: JSONValue, _ op: JSONValue, _ right: JSONValue) -> Bool? {
        guard let a = version(left), let b = version(right), case .string(let op) = op else { return nil }
        switch op {
        case "=": return a == b
        case "!=": return a != b
        case "<": return a < b
        case "<=": return a <= b
        case ">": return a > b
        case ">=": return a >= b
        // flagd's meaning: same MAJOR.MINOR, or same MAJOR, with no lower bound.
        case "~": return a.major == b.major && a.minor == b.minor
        case "^": return a.major == b.major
        default: return nil
        }
    }

    private static func version(_ value: JSONValue) -> SemanticVersion? {
        switch value {
        case .string(let s): SemanticVersion(s)
        case .number(let n) where n >= 0: SemanticVersion(JSONValue.numberText(n))
        default: nil
        }
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
    var isASCIILetter: Bool { isASCII && isLetter }
}
