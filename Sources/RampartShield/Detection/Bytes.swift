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
        var needle = needle
        return needle.withUTF8 { find($0, in: haystack) != nil }
    }

    /// Whether a string's UTF-8 contains `needle` (case-sensitive, byte for byte), without
    /// the cost of `String.contains`, which compares Characters.
    static func contains(_ text: some StringProtocol, _ needle: some StringProtocol) -> Bool {
        let found = text.utf8.withContiguousStorageIfAvailable { haystack in
            needle.utf8.withContiguousStorageIfAvailable { find($0, in: haystack) != nil }
        }
        if let found, let found { return found }
        return find(Array(needle.utf8), in: Array(text.utf8)) != nil
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
    /// The automaton's transitions, flat: `table[state * classCount + byteClass[byte]]`
    /// (see `init` for what an entry holds).
    /// Bytes that occur in no needle share class 0, so a row is as wide as the needles'
    /// alphabet rather than 256 entries, and the table stays in cache.
    private var table: [UInt16] = []
    private let byteClass: [UInt8]
    private let classCount: Int
    private var fail: [Int32] = [0]
    private var outputs: [[Int]] = [[]]
    /// The row offset of the first state that ends a needle; all after it do too.
    private var firstEndRow = Int.max
    let needles: [String]

    private let needleLengths: [Int]
    /// One byte of each needle, its rarest in ordinary text: an input holding none of
    /// these holds no needle, which `mayMatch` tells without scanning.
    let gate: ByteSet

    init(_ needles: [String]) {
        self.needles = needles
        self.needleLengths = needles.map(\.utf8.count)
        var gate = ByteSet()
        var byteClass = [UInt8](repeating: 0, count: 256)
        var classCount = 1
        for needle in needles {
            if let rarest = needle.utf8.min(by: { Self.commonness($0) < Self.commonness($1) }) { gate.insert(rarest) }
            for byte in needle.utf8 where byteClass[Int(byte)] == 0 {
                byteClass[Int(byte)] = UInt8(classCount)
                classCount += 1
            }
        }
        precondition(classCount <= 256)
        self.gate = gate
        self.byteClass = byteClass
        self.classCount = classCount
        var goto: [[Int32]] = [[Int32](repeating: -1, count: classCount)]
        for (index, needle) in needles.enumerated() {
            var state = 0
            for byte in needle.utf8 {
                let column = Int(byteClass[Int(byte)])
                let next = goto[state][column]
                if next >= 0 {
                    state = Int(next)
                } else {
                    goto.append([Int32](repeating: -1, count: classCount))
                    fail.append(0)
                    outputs.append([])
                    goto[state][column] = Int32(goto.count - 1)
                    state = goto.count - 1
                }
            }
            outputs[state].append(index)
        }
        var queue: [Int] = []
        for column in 0..<classCount {
            let next = goto[0][column]
            if next < 0 { goto[0][column] = 0 } else { fail[Int(next)] = 0; queue.append(Int(next)) }
        }
        var head = 0
        while head < queue.count {
            let state = queue[head]
            head += 1
            for column in 0..<classCount {
                let next = goto[state][column]
                if next >= 0 {
                    queue.append(Int(next))
                    let f = Int(goto[Int(fail[state])][column])
                    fail[Int(next)] = Int32(f)
                    outputs[Int(next)] += outputs[f]
                } else {
                    goto[state][column] = goto[Int(fail[state])][column]
                }
            }
        }
        // States are renumbered so that those ending a needle come last, and each entry holds
        // the next state's row offset: one 16-bit load per byte, and a comparison tells a
        // needle's end. Sixteen bits keep even the largest automaton small for the cache.
        let order = outputs.indices.filter { outputs[$0].isEmpty } + outputs.indices.filter { !outputs[$0].isEmpty }
        var renumbered = [Int](repeating: 0, count: order.count)
        for (new, old) in order.enumerated() { renumbered[old] = new }
        precondition(order.count * classCount <= Int(UInt16.max), "too many needles for one KeywordMatcher")
        table = order.flatMap { old in goto[old].map { UInt16(renumbered[Int($0)] * classCount) } }
        outputs = order.map { outputs[$0] }
        firstEndRow = outputs.firstIndex { !$0.isEmpty }.map { $0 * classCount } ?? Int.max
    }

    /// How often a byte turns up in ordinary text, roughly: letters by English frequency,
    /// then space; anything else is rarer than any letter.
    private static func commonness(_ b: UInt8) -> Int {
        let order = Array("zqxjkvbpygfwmucldrhsnioate ".utf8)
        return order.firstIndex(of: b).map { $0 + 1 } ?? 0
    }

    /// False when `present` (the bytes of an input) rules every needle out.
    func mayMatch(_ present: ByteSet) -> Bool { present.containsAny(of: gate) }

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
        let width = classCount
        table.withUnsafeBufferPointer { table in
            byteClass.withUnsafeBufferPointer { byteClass in
                bytes.withUnsafeBufferPointer { input in
                    var row = 0
                    let ends = firstEndRow
                    for offset in 0..<input.count {
                        row = Int(table[row &+ Int(byteClass[Int(input[offset])])])
                        if row >= ends {
                            for index in outputs[row / width] where !found(index, offset + 1) { return }
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

/// Which byte values occur in a value: computed once per inspected value, so each detector
/// can tell in a few instructions whether the characters its shapes need are there at all.
public struct ByteSet: Sendable, Equatable {
    private var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    public init() {}

    public init(_ bytes: some Sequence<UInt8>) {
        var w0: UInt64 = 0, w1: UInt64 = 0, w2: UInt64 = 0, w3: UInt64 = 0
        for b in bytes {
            let bit = UInt64(1) &<< UInt64(b & 63)
            switch b >> 6 {
            case 0: w0 |= bit
            case 1: w1 |= bit
            case 2: w2 |= bit
            default: w3 |= bit
            }
        }
        words = (w0, w1, w2, w3)
    }

    init(_ characters: String) { self.init(characters.utf8) }

    /// The set of an ASCII text's bytes, given as its low (0-63) and high (64-127) halves.
    init(low: UInt64, high: UInt64) { words = (low, high, 0, 0) }

    mutating func insert(_ b: UInt8) {
        let bit = UInt64(1) << UInt64(b & 63)
        switch b >> 6 {
        case 0: words.0 |= bit
        case 1: words.1 |= bit
        case 2: words.2 |= bit
        default: words.3 |= bit
        }
    }

    public func contains(_ b: UInt8) -> Bool {
        let bit = UInt64(1) << UInt64(b & 63)
        switch b >> 6 {
        case 0: return words.0 & bit != 0
        case 1: return words.1 & bit != 0
        case 2: return words.2 & bit != 0
        default: return words.3 & bit != 0
        }
    }

    /// Whether any byte of `other` is in this set.
    public func containsAny(of other: ByteSet) -> Bool {
        (words.0 & other.words.0) | (words.1 & other.words.1) | (words.2 & other.words.2) | (words.3 & other.words.3) != 0
    }

    /// Whether every byte of this set is in `other`.
    public func isSubset(of other: ByteSet) -> Bool {
        (words.0 & ~other.words.0) | (words.1 & ~other.words.1) | (words.2 & ~other.words.2) | (words.3 & ~other.words.3) == 0
    }

    public static func == (a: ByteSet, b: ByteSet) -> Bool { a.words == b.words }
}

/// A fixed set of words, looked up by their bytes without making a `String` or hashing with
/// SipHash: an open-addressing table over FNV-1a hashes. For the word lists detectors ask
/// about once per token or value (program names, SQL system objects).
struct WordSet: Sendable {
    private let storage: [UInt8]
    private let starts: [Int]
    private let slots: [Int32]
    private let mask: Int

    init(_ words: some Sequence<String>) {
        let unique = Array(Set(words))
        var storage: [UInt8] = []
        var starts: [Int] = []
        for word in unique {
            starts.append(storage.count)
            storage.append(contentsOf: word.utf8)
        }
        starts.append(storage.count)
        var size = 16
        while size < unique.count * 2 { size <<= 1 }
        var slots = [Int32](repeating: -1, count: size)
        for (index, word) in unique.enumerated() {
            var slot = Self.hash(word.utf8) & (size - 1)
            while slots[slot] >= 0 { slot = (slot + 1) & (size - 1) }
            slots[slot] = Int32(index)
        }
        self.storage = storage
        self.starts = starts
        self.slots = slots
        self.mask = size - 1
    }

    private static func hash(_ bytes: some Collection<UInt8>) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }

    /// Where `word` is stored, if it is one of the set.
    private func index(of word: some Collection<UInt8>) -> Int? {
        var slot = Self.hash(word) & mask
        while true {
            let index = Int(slots[slot])
            if index < 0 { return nil }
            let start = starts[index], end = starts[index + 1]
            if end - start == word.count, storage[start..<end].elementsEqual(word) { return index }
            slot = (slot + 1) & mask
        }
    }

    func contains(_ word: some Collection<UInt8>) -> Bool { index(of: word) != nil }

    func contains(_ word: String) -> Bool {
        var word = word
        return word.withUTF8 { index(of: $0) != nil }
    }
}
