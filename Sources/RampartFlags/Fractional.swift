import RampartCore

/// flagd's `fractional` operator (its current, "v2" bucketing): the same caller lands in the
/// same bucket here as in flagd, because both hash the same bytes with MurmurHash3 x86_32 and
/// map the hash onto the total weight in integer arithmetic.
public enum Fractional {
    /// The variant for already evaluated arguments, or null where flagd gives null (no usable
    /// bucketing value, a malformed bucket, a weight that is no whole number, a zero total).
    static func pick(_ arguments: [JSONValue], environment: RuleEnvironment) -> JSONValue {
        var buckets = arguments[...]
        let key: String
        switch buckets.first {
        case .string(let explicit)?:
            key = explicit
            buckets = buckets.dropFirst()
        case .null?:
            buckets = buckets.dropFirst()
            fallthrough
        default:
            guard case .string(let targetingKey)? = environment.context["targetingKey"], !targetingKey.isEmpty else { return .null }
            key = environment.flagKey + targetingKey
        }
        var variants: [(variant: JSONValue, weight: UInt64)] = []
        variants.reserveCapacity(buckets.count)
        var total: UInt64 = 0
        for bucket in buckets {
            guard case .array(let items) = bucket, (1...2).contains(items.count) else { return .null }
            var weight: UInt64 = 1
            if items.count == 2 {
                switch items[1] {
                case .null: weight = 1
                case .number(let n):
                    guard n == n.rounded(), n <= Double(Int32.max) else { return .null }
                    weight = n < 0 ? 0 : UInt64(n)
                default: return .null
                }
            }
            total += weight
            guard total <= UInt64(Int32.max) else { return .null }
            variants.append((items[0], weight))
        }
        guard total > 0 else { return .null }
        let bucket = bucket(for: key, total: total)
        var upper: UInt64 = 0
        for (variant, weight) in variants {
            upper += weight
            if bucket < upper { return variant }
        }
        return .null
    }

    /// The bucket in `0..<total` of a bucketing value.
    public static func bucket(for key: String, total: UInt64) -> UInt64 {
        (UInt64(murmur3(key.utf8)) &* total) >> 32
    }

    /// MurmurHash3 x86_32 with seed 0.
    public static func murmur3(_ bytes: some Collection<UInt8>, seed: UInt32 = 0) -> UInt32 {
        let c1: UInt32 = 0xcc9e_2d51
        let c2: UInt32 = 0x1b87_3593
        var h = seed
        var block: UInt32 = 0
        var filled = 0
        for byte in bytes {
            block |= UInt32(byte) << (8 * UInt32(filled))
            filled += 1
            if filled == 4 {
                var k = block &* c1
                k = (k << 15) | (k >> 17)
                k = k &* c2
                h ^= k
                h = (h << 13) | (h >> 19)
                h = h &* 5 &+ 0xe654_6b64
                block = 0
                filled = 0
            }
        }
        if filled > 0 {
            var k = block &* c1
            k = (k << 15) | (k >> 17)
            k = k &* c2
            h ^= k
        }
        h ^= UInt32(truncatingIfNeeded: bytes.count)
        h ^= h >> 16
        h = h &* 0x85eb_ca6b
        h ^= h >> 13
        h = h &* 0xc2b2_ae35
        h ^= h >> 16
        return h
    }
}
