/// Small byte-level helpers the detectors share; inputs are normalized (lower-case) UTF-8.
enum Bytes {
    static func isLetter(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) }
    static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
    static func isWordByte(_ b: UInt8) -> Bool { isLetter(b) || isDigit(b) || b == UInt8(ascii: "_") || b >= 0x80 }
    static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }

    /// Where `needle` first occurs in `haystack` at or after `from`.
    static func find<Needle: RandomAccessCollection<UInt8>, Haystack: RandomAccessCollection<UInt8>>(
        _ needle: Needle, in haystack: Haystack, from: Int = 0) -> Int? where Needle.Index == Int, Haystack.Index == Int {
        guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
        let first = needle[0]
        var i = from
        let last = haystack.count - needle.count
        while i <= last {
            if haystack[i] == first {
                var j = 1
                while j < needle.count, haystack[i + j] == needle[j] { j += 1 }
                if j == needle.count { return i }
            }
            i += 1
        }
        return nil
    }

    static func contains(_ haystack: [UInt8], _ needle: String) -> Bool {
        find(Array(needle.utf8), in: haystack) != nil
    }

    /// Whether a string's UTF-8 contains `needle` (case-sensitive), without the cost of
    /// `String.contains`.
    static func contains(_ text: String, _ needle: String) -> Bool {
        var text = text
        return text.withUTF8 { find(Array(needle.utf8), in: $0) != nil }
    }

    /// Without `/* ... */`, `// ...` and `# ...` comments (each left as one space), as C-like
    /// languages, PHP and JavaScript read code.
    static func removingComments(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.contains(UInt8(ascii: "/")) || bytes.contains(UInt8(ascii: "#")) else { return bytes }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "/"), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "*") {
                var j = i + 2
                while j + 1 < bytes.count, !(bytes[j] == UInt8(ascii: "*") && bytes[j + 1] == UInt8(ascii: "/")) { j += 1 }
                i = j + 2
                out.append(0x20)
            } else if (bytes[i] == UInt8(ascii: "#") || (bytes[i] == UInt8(ascii: "/") && i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "/"))), let newline = bytes[i...].firstIndex(of: 0x0A) {
                i = newline + 1
                out.append(0x20)
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return out
    }

    /// The words of `bytes`: maximal runs of letters, digits and `_`.
    static func words(_ bytes: [UInt8]) -> [Substring] {
        String(decoding: bytes, as: UTF8.self).split { c in !(c.isLetter || c.isNumber || c == "_") }
    }
}

/// A fixed set of needles found in one pass over the input (Aho-Corasick), used where a
/// detector looks for many literal strings at once.
struct KeywordMatcher: Sendable {
    /// The automaton's transitions, flat: `table[state * 256 + byte]`.
    private var table: [Int32] = [Int32](repeating: -1, count: 256)
    private var fail: [Int32] = [0]
    private var outputs: [[Int]] = [[]]
    /// Whether a state ends a needle (checked before touching `outputs`).
    private var terminal: [Bool] = [false]
    let needles: [String]

    private let needleLengths: [Int]

    init(_ needles: [String]) {
        self.needles = needles
        self.needleLengths = needles.map(\.utf8.count)
        var goto: [[Int32]] = [[Int32](repeating: -1, count: 256)]
        for (index, needle) in needles.enumerated() {
            var state = 0
            for byte in needle.utf8 {
                let next = goto[state][Int(byte)]
                if next >= 0 {
                    state = Int(next)
                } else {
                    goto.append([Int32](repeating: -1, count: 256))
                    fail.append(0)
                    outputs.append([])
                    goto[state][Int(byte)] = Int32(goto.count - 1)
                    state = goto.count - 1
                }
            }
            outputs[state].append(index)
        }
        var queue: [Int] = []
        for byte in 0..<256 {
            let next = goto[0][byte]
            if next < 0 { goto[0][byte] = 0 } else { fail[Int(next)] = 0; queue.append(Int(next)) }
        }
        var head = 0
        while head < queue.count {
            let state = queue[head]
            head += 1
            for byte in 0..<256 {
                let next = goto[state][byte]
                if next >= 0 {
                    queue.append(Int(next))
                    let f = Int(goto[Int(fail[state])][byte])
                    fail[Int(next)] = Int32(f)
                    outputs[Int(next)] += outputs[f]
                } else {
                    goto[state][byte] = goto[Int(fail[state])][byte]
                }
            }
        }
        table = goto.flatMap { $0 }
        terminal = outputs.map { !$0.isEmpty }
    }

    /// Every match as (needle index, end offset), in input order.
    func matches(in bytes: [UInt8]) -> [(needle: Int, end: Int)] {
        var found: [(needle: Int, end: Int)] = []
        scan(bytes) { needle, end in
            found.append((needle, end))
            return true
        }
        return found
    }

    /// The first match, without collecting the others.
    func firstMatch(in bytes: [UInt8]) -> (needle: Int, end: Int)? {
        var first: (needle: Int, end: Int)?
        scan(bytes) { needle, end in
            first = (needle, end)
            return false
        }
        return first
    }

    /// Whether any needle occurs as a whole word, without collecting matches.
    func containsWord(in bytes: [UInt8]) -> Bool {
        var found = false
        scan(bytes) { needle, end in
            let length = needleLengths[needle]
            let start = end - length
            let before = start > 0 ? bytes[start - 1] : 0x20
            let after = end < bytes.count ? bytes[end] : 0x20
            found = !Bytes.isWordByte(before) && !Bytes.isWordByte(after)
            return !found
        }
        return found
    }

    /// Runs the automaton over `bytes`, calling `found` for each match until it returns false.
    private func scan(_ bytes: [UInt8], _ found: (Int, Int) -> Bool) {
        table.withUnsafeBufferPointer { table in
            terminal.withUnsafeBufferPointer { terminal in
                bytes.withUnsafeBufferPointer { input in
                    var state = 0
                    for offset in 0..<input.count {
                        state = Int(table[state &* 256 &+ Int(input[offset])])
                        if terminal[state] {
                            for index in outputs[state] where !found(index, offset + 1) { return }
                        }
                    }
                }
            }
        }
    }

    /// Needles found as whole words (not inside a longer word).
    func wordMatches(in bytes: [UInt8]) -> [(needle: Int, start: Int, end: Int)] {
        matches(in: bytes).compactMap { match in
            let start = match.end - needles[match.needle].utf8.count
            let before = start > 0 ? bytes[start - 1] : 0x20
            let after = match.end < bytes.count ? bytes[match.end] : 0x20
            let needle = needles[match.needle].utf8
            let wordStart = Bytes.isWordByte(needle.first!) && Bytes.isWordByte(before)
            let wordEnd = Bytes.isWordByte(needle.last!) && Bytes.isWordByte(after)
            return wordStart || wordEnd ? nil : (match.needle, start, match.end)
        }
    }
}
