public import RampartCore

/// An address or range blocked for a while (or until removed).
public struct AddressBlock: Sendable, Equatable {
    public var range: CIDRBlock
    public var reason: String
    /// Seconds since 1970 (wall clock: blocks outlive the process).
    public var created: Double
    /// Seconds since 1970; nil blocks until removed.
    public var expires: Double?

    public init(range: CIDRBlock, reason: String, created: Double, expires: Double? = nil) {
        self.range = range
        self.reason = reason
        self.created = created
        self.expires = expires
    }

    public func isActive(at now: Double) -> Bool { expires.map { now < $0 } ?? true }
}

/// Where blocks are kept: in memory for one process, SQLite so a restart does not forget them.
public protocol BlockStore: Sendable {
    func all() throws -> [AddressBlock]
    /// Adds or replaces the block for `block.range`.
    func put(_ block: AddressBlock) throws
    func remove(_ range: CIDRBlock) throws
}
