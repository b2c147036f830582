import RampartCore

/// What a selection may depend on, taken from the request by the gateway.
public struct SelectionInput: Sendable {
    /// The affinity key for consistent hashing (a header value, cookie value or client address).
    public var hashKey: String?
    /// The client's country for the geographic strategy.
    public var country: String?
    /// Instances already tried for this request; a retry goes elsewhere.
    public var excluding: Set<String>

    public init(hashKey: String? = nil, country: String? = nil, excluding: Set<String> = []) {
        self.hashKey = hashKey
        self.country = country
        self.excluding = excluding
    }
}

/// One balancing algorithm. `select` runs on the request path for every request: it must
/// not block or allocate much; implementations keep their state behind a mutex or atomics.
protocol Selector: Sendable {
    /// Chooses among `candidates` (available, not excluded; never empty). `group` is the
    /// whole priority group the candidates come from, in a stable order, for algorithms that
    /// need stable placement (consistent hashing).
    func select(from candidates: [Instance], group: [Instance], input: SelectionInput, now: Instant) -> Instance?
}

/// Two distinct random indices below `count` (count >= 2).
@inline(__always)
func twoRandomIndices(_ count: Int) -> (Int, Int) {
    var generator = RequestRandom()
    let a = Int.random(in: 0..<count, using: &generator)
    var b = Int.random(in: 0..<(count - 1), using: &generator)
    if b >= a { b += 1 }
    return (a, b)
}
