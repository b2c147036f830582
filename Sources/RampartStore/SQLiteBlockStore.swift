import GRDB
public import RampartCore
import Synchronization

/// Blocks in the embedded SQLite database.
public final class SQLiteBlockStore: BlockStore {
    private let database: any DatabaseWriter

    public init(database: SQLiteDatabase) { self.database = database.queue }

    /// Opens (or creates) the database at `path` for blocks alone.
    public convenience init(path: String) throws { self.init(database: try SQLiteDatabase(path: path)) }

    public func all() throws -> [AddressBlock] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT range, reason, created, expires FROM address_block ORDER BY created").compactMap { row in
                let text: String = row["range"]
                guard let range = CIDRBlock(text) else { return nil }
                return AddressBlock(range: range, reason: row["reason"], created: row["created"], expires: row["expires"])
            }
        }
    }

    public func put(_ block: AddressBlock) throws {
        try database.write { db in
            try db.execute(sql: """
                INSERT INTO address_block (range, reason, created, expires) VALUES (?, ?, ?, ?)
                ON CONFLICT(range) DO UPDATE SET reason = excluded.reason, created = excluded.created, expires = excluded.expires
                """, arguments: [block.range.description, block.reason, block.created, block.expires])
        }
    }

    public func remove(_ range: CIDRBlock) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM address_block WHERE range = ?", arguments: [range.description])
        }
    }
}

/// Blocks for one process only.
public final class MemoryBlockStore: BlockStore {
    private let blocks = Mutex<[CIDRBlock: AddressBlock]>([:])

    public init() {}

    public func all() throws -> [AddressBlock] { blocks.withLock { Array($0.values).sorted { $0.created < $1.created } } }
    public func put(_ block: AddressBlock) throws { blocks.withLock { $0[block.range] = block } }
    public func remove(_ range: CIDRBlock) throws { _ = blocks.withLock { $0.removeValue(forKey: range) } }
}
