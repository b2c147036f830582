import Synchronization

/// Request identifiers: an incoming `X-Request-Id` is kept when it is safe to log and pass
/// on; otherwise the gateway makes a new one.
public enum RequestID {
    /// Whether an incoming id may be reused: 1 to 128 characters of `A-Za-z0-9`, `-`, `_`, `.`, `:`.
    /// Anything else (spaces, quotes, control characters) could forge log lines or headers.
    public static func isAcceptable(_ value: some StringProtocol) -> Bool {
        guard (1...128).contains(value.utf8.count) else { return false }
        return value.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2D || byte == 0x5F || byte == 0x2E || byte == 0x3A
        }
    }

    /// A new random id: 32 lowercase hex digits (128 bits).
    public static func make<G: RandomNumberGenerator>(using generator: inout G) -> String {
        hex(generator.next() as UInt64, generator.next() as UInt64)
    }

    public static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        return make(using: &generator)
    }
}

/// `high` (then `low`, when given) in lowercase hex, 16 digits each, written straight into the
/// string's storage: ids are made for every request.
func hex(_ high: UInt64, _ low: UInt64? = nil) -> String {
    String(unsafeUninitializedCapacity: low == nil ? 16 : 32) { buffer in
        let digits: StaticString = "0123456789abcdef"
        func write(_ value: UInt64, at start: Int) {
            for i in 0..<16 { buffer[start + i] = digits.utf8Start[Int((value >> UInt64(60 - 4 * i)) & 0xF)] }
        }
        write(high, at: 0)
        guard let low else { return 16 }
        write(low, at: 16)
        return 32
    }
}

/// A W3C Trace Context `traceparent` (version 00): trace id, parent span id and flags.
public struct TraceContext: Hashable, Sendable, CustomStringConvertible {
    public let traceID: String
    public let spanID: String
    public let flags: UInt8

    public init(traceID: String, spanID: String, flags: UInt8) {
        self.traceID = traceID
        self.spanID = spanID
        self.flags = flags
    }

    /// Parses a `traceparent` header value. Per the W3C spec, version `ff` and all-zero ids are
    /// invalid; an unknown future version is read by its first four fields.
    public init?(traceparent value: some StringProtocol) {
        let parts = String(value).split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 4 else { return nil }
        let version = parts[0], trace = parts[1], span = parts[2], flags = parts[3]
        func isLowerHex(_ s: Substring, count: Int) -> Bool {
            s.utf8.count == count && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
        }
        guard isLowerHex(version, count: 2), version != "ff",
              isLowerHex(trace, count: 32), isLowerHex(span, count: 16), isLowerHex(flags, count: 2),
              trace != String(repeating: "0", count: 32), span != String(repeating: "0", count: 16),
              let flagBits = UInt8(flags, radix: 16) else { return nil }
        if version == "00", parts.count != 4 { return nil }
        self.init(traceID: String(trace), spanID: String(span), flags: flagBits)
    }

    /// A new trace with a random id, sampled.
    public static func start<G: RandomNumberGenerator>(using generator: inout G) -> TraceContext {
        TraceContext(traceID: RequestID.make(using: &generator), spanID: newSpanID(using: &generator), flags: 1)
    }

    /// The same trace with a new span id: what the gateway passes upstream as its own span.
    public func child<G: RandomNumberGenerator>(using generator: inout G) -> TraceContext {
        TraceContext(traceID: traceID, spanID: Self.newSpanID(using: &generator), flags: flags)
    }

    static func newSpanID<G: RandomNumberGenerator>(using generator: inout G) -> String {
        var id: UInt64 = 0
        while id == 0 { id = generator.next() }
        return hex(id)
    }

    /// The header value: `00-<trace>-<span>-<flags>`.
    public var traceparent: String {
        var text = ""
        withTraceparent { text = String(decoding: $0, as: UTF8.self) }
        return text
    }

    /// The header value, written byte by byte into temporary storage and lent to `body`: it goes
    /// upstream with every request, and a head written as bytes copies it from there without
    /// making a string of it. Not generic, so that a caller in another module does not look up
    /// generic metadata on every call.
    public func withTraceparent(_ body: (UnsafeRawBufferPointer) -> Void) {
        var trace = traceID, span = spanID
        let total = 3 + trace.utf8.count + 1 + span.utf8.count + 3
        withUnsafeTemporaryAllocation(byteCount: total, alignment: 1) { buffer in
            let digits: StaticString = "0123456789abcdef"
            var at = 0
            func put(_ byte: UInt8) {
                buffer[at] = byte
                at += 1
            }
            func put(_ text: inout String) {
                text.withUTF8 { for byte in $0 { put(byte) } }
            }
            put(UInt8(ascii: "0"))
            put(UInt8(ascii: "0"))
            put(UInt8(ascii: "-"))
            put(&trace)
            put(UInt8(ascii: "-"))
            put(&span)
            put(UInt8(ascii: "-"))
            put(digits.utf8Start[Int(flags >> 4)])
            put(digits.utf8Start[Int(flags & 0xF)])
            body(UnsafeRawBufferPointer(rebasing: buffer[..<at]))
        }
    }

    public var description: String { traceparent }
}

/// A fast generator for request and trace ids and load-balancing picks: xoshiro256**, seeded
/// per use from a 128-bit key drawn from the system's generator once per process and a
/// process-wide counter, so a request costs no system call at all (drawing 128 bits from the
/// system took two `getrandom` calls per request). Ids need to be unique and unguessable enough
/// for correlation, not secret keys.
public struct RequestRandom: RandomNumberGenerator {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    private static let key: (UInt64, UInt64) = {
        var system = SystemRandomNumberGenerator()
        return (system.next(), system.next())
    }()
    private static let uses = Atomic<UInt64>(0)

    public init() {
        let use = Self.uses.add(1, ordering: .relaxed).newValue
        // Both halves pass through splitmix below, so consecutive uses give unrelated states.
        self.init(seed: Self.key.0 ^ (use &* 0xD605_BBB5_8C8A_BBFD), Self.key.1 &+ use)
    }

    public init(seed a: UInt64, _ b: UInt64) {
        var mix = a
        func splitMix(_ x: inout UInt64) -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let s0 = splitMix(&mix), s1 = splitMix(&mix)
        mix = b
        state = (s0, s1, splitMix(&mix), splitMix(&mix))
    }

    public mutating func next() -> UInt64 {
        func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
        let result = rotl(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotl(state.3, 45)
        return result
    }
}
