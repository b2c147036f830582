/// An address range written as `address/prefix` (`10.0.0.0/8`, `2001:db8::/32`); a bare
/// address is a range of one.
public struct CIDRBlock: Hashable, Sendable, CustomStringConvertible, Codable {
    public let address: IPAddress
    public let prefixLength: Int

    /// Parses `a.b.c.d/n`, `v6/n` or a bare address. Host bits below the prefix are cleared.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPAddress(parts[0]) else { return nil }
        let width = address.family.bitWidth
        var length = width
        if parts.count == 2 {
            guard let n = Int(parts[1]), (0...width).contains(n), parts[1].allSatisfy(\.isASCIIDigit) else { return nil }
            length = n
        }
        self.init(address: address, prefixLength: length)
    }

    public init(address: IPAddress, prefixLength: Int) {
        let width = address.family.bitWidth
        precondition((0...width).contains(prefixLength), "prefix length out of range")
        // Clear host bits so that equal ranges compare equal.
        func mask(_ bits: Int) -> UInt64 { bits <= 0 ? 0 : bits >= 64 ? .max : ~(UInt64.max >> bits) }
        let high = address.high & mask(prefixLength)
        let low = address.low & mask(prefixLength - 64)
        self.address = address.family == .v4 ? IPAddress(v4: UInt32(high >> 32)) : IPAddress(v6High: high, low: low)
        self.prefixLength = prefixLength
    }

    /// Whether `candidate` lies in this range; IPv4-mapped IPv6 addresses match IPv4 ranges.
    public func contains(_ candidate: IPAddress) -> Bool {
        let candidate = address.family == .v4 ? candidate.unmapped : candidate
        guard candidate.family == address.family else { return false }
        return CIDRBlock(address: candidate, prefixLength: prefixLength).address == address
    }

    public var description: String { "\(address)/\(prefixLength)" }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let block = CIDRBlock(text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "\"\(text)\" is not an IP address or CIDR range")
        }
        self = block
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// A set of address ranges mapped to values, answering longest-prefix lookups in time
/// proportional to the prefix length (a binary trie per family), never a linear scan.
public struct CIDRTable<Value: Sendable>: Sendable {
    @usableFromInline
    struct Node: Sendable {
        @usableFromInline var children: (Int32, Int32) = (-1, -1)
        @usableFromInline var value: Value?

        @usableFromInline init() {}
    }

    // Nodes live in one array; children are indices, so copies are cheap and Sendable.
    @usableFromInline var v4: [Node] = [Node()]
    @usableFromInline var v6: [Node] = [Node()]
    public private(set) var count = 0

    public init() {}

    /// Adds or replaces the value for `block`.
    public mutating func insert(_ block: CIDRBlock, value: Value) {
        if block.address.family == .v4 {
            Self.insert(block, value: value, into: &v4, count: &count)
        } else {
            Self.insert(block, value: value, into: &v6, count: &count)
        }
    }

    private static func insert(_ block: CIDRBlock, value: Value, into nodes: inout [Node], count: inout Int) {
        var index = 0
        for bit in 0..<block.prefixLength {
            let goRight = block.address.bit(bit)
            var next = goRight ? nodes[index].children.1 : nodes[index].children.0
            if next < 0 {
                nodes.append(Node())
                next = Int32(nodes.count - 1)
                if goRight { nodes[index].children.1 = next } else { nodes[index].children.0 = next }
            }
            index = Int(next)
        }
        if nodes[index].value == nil { count += 1 }
        nodes[index].value = value
    }

    /// The value of the most specific range containing `address`, if any. Inlinable: it runs
    /// several times a request, and unspecialized generic code looks its types up each time.
    @inlinable
    public func longestMatch(_ address: IPAddress) -> Value? {
        let address = address.unmapped
        let nodes = address.family == .v4 ? v4 : v6
        var index = 0
        var best = nodes[0].value
        for bit in 0..<address.family.bitWidth {
            let next = address.bit(bit) ? nodes[index].children.1 : nodes[index].children.0
            if next < 0 { break }
            index = Int(next)
            if let value = nodes[index].value { best = value }
        }
        return best
    }
}

/// A set of address ranges; membership is a longest-prefix lookup.
public struct CIDRSet: Sendable, Codable, Equatable {
    public let blocks: [CIDRBlock]
    private let table: CIDRTable<Bool>

    public init(_ blocks: [CIDRBlock]) {
        self.blocks = blocks
        var table = CIDRTable<Bool>()
        for block in blocks { table.insert(block, value: true) }
        self.table = table
    }

    public func contains(_ address: IPAddress) -> Bool { table.longestMatch(address) ?? false }

    public var isEmpty: Bool { blocks.isEmpty }

    public static func == (lhs: CIDRSet, rhs: CIDRSet) -> Bool { lhs.blocks == rhs.blocks }

    public init(from decoder: any Decoder) throws {
        self.init(try [CIDRBlock](from: decoder))
    }

    public func encode(to encoder: any Encoder) throws { try blocks.encode(to: encoder) }
}
