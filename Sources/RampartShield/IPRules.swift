public import RampartCore

/// Allow and deny lists of addresses and ranges, decided by the longest matching prefix: deny
/// `10.0.0.0/8` with allow `10.1.2.3` lets 10.1.2.3 in and keeps the rest of 10/8 out. At equal
/// prefixes deny wins. A lookup walks one trie, O(prefix length), whatever the list sizes.
public struct IPRules: Sendable {
    public enum Decision: Sendable, Equatable {
        /// Listed as allowed: admitted, and later checks may trust it.
        case allow
        /// Listed as denied: refused at the door.
        case deny
        /// Not listed.
        case unlisted
    }

    private let table: CIDRTable<Decision>
    public var isEmpty: Bool { table.count == 0 }

    public init(allow: [CIDRBlock] = [], deny: [CIDRBlock] = []) {
        var table = CIDRTable<Decision>()
        for block in allow { table.insert(block, value: .allow) }
        // Inserted last, so a range listed on both sides is denied.
        for block in deny { table.insert(block, value: .deny) }
        self.table = table
    }

    public func decision(for address: IPAddress) -> Decision {
        if isEmpty { return .unlisted }
        return table.longestMatch(address) ?? .unlisted
    }
}
