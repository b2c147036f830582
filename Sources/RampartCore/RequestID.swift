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

/// A W3C Trace Context `traceparent` (version 00): trace id, parent span id and flags, held as
/// their bits (one goes upstream with every request, and strings of 32 and 16 digits would each
/// cost an allocation) and written as lowercase hex where they are shown.
public struct TraceContext: Hashable, Sendable, CustomStringConvertible {
    /// The trace id's 128 bits: its first 16 hex digits, then its last 16.
    public let traceHigh: UInt64
    public let traceLow: UInt64
    /// The parent span id's 64 bits.
    public let span: UInt64
    public let flags: UInt8

    public init(traceHigh: UInt64, traceLow: UInt64, span: UInt64, flags: UInt8) {
        self.traceHigh = traceHigh
        self.traceLow = traceLow
        self.span = span
        self.flags = flags
    }

    /// The trace id: 32 lowercase hex digits.
    public var traceID: String { hex(traceHigh, traceLow) }
    /// The parent span id: 16 lowercase hex digits.
    public var spanID: String { hex(span) }

    /// Parses a `traceparent` header value. Per the W3C spec, version `ff` and all-zero ids are
    /// invalid, hex digits are lowercase, and an unknown future version is read by its first four
    /// fields (what follows them must start with `-`).
    public init?(traceparent value: some StringProtocol) {
        let parsed: TraceContext? = value.utf8.withContiguousStorageIfAvailable { Self.parse(UnsafeRawBufferPointer($0)) }
            ?? Array(value.utf8).withUnsafeBytes { Self.parse($0) }
        guard let parsed else { return nil }
        self = parsed
    }

    private static func parse(_ bytes: UnsafeRawBufferPointer) -> TraceContext? {
        // vv-<32>-<16>-ff: 55 bytes.
        guard bytes.count >= 55, bytes[2] == UInt8(ascii: "-"), bytes[35] == UInt8(ascii: "-"), bytes[52] == UInt8(ascii: "-"),
              let version = lowerHex(bytes, 0, 2), version != 0xFF,
              let high = lowerHex(bytes, 3, 16), let low = lowerHex(bytes, 19, 16), high != 0 || low != 0,
              let span = lowerHex(bytes, 36, 16), span != 0,
              let flags = lowerHex(bytes, 53, 2) else { return nil }
        // Version 00 has exactly four fields; a later one may add more after a dash.
        if bytes.count > 55 && (version == 0 || bytes[55] != UInt8(ascii: "-")) { return nil }
        return TraceContext(traceHigh: high, traceLow: low, span: span, flags: UInt8(flags))
    }

    /// The value of `count` (at most 16) lowercase hex digits at `start`; nil if any is not one.
    private static func lowerHex(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ count: Int) -> UInt64? {
        var value: UInt64 = 0
        for byte in bytes[start..<start + count] {
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            default: return nil
            }
            value = value << 4 | UInt64(digit)
        }
        return value
    }

    /// A new trace with a random id, sampled.
    public static func start<G: RandomNumberGenerator>(using generator: inout G) -> TraceContext {
        var high: UInt64 = generator.next(), low: UInt64 = generator.next()
        // Never the invalid all-zero id.
        while high == 0 && low == 0 { (high, low) = (generator.next(), generator.next()) }
        return TraceContext(traceHigh: high, traceLow: low, span: newSpan(using: &generator), flags: 1)
    }

    /// The same trace with a new span id: what the gateway passes upstream as its own span.
    public func child<G: RandomNumberGenerator>(using generator: inout G) -> TraceContext {
        TraceContext(traceHigh: traceHigh, traceLow: traceLow, span: Self.newSpan(using: &generator), flags: flags)
    }

    static func newSpan<G: RandomNumberGenerator>(using generator: inout G) -> UInt64 {
        var id: UInt64 = 0
        while id == 0 { id = generator.next() }
        return id
    }

    /// The header value: `00-<trace>-<span>-<flags>`.
    public var traceparent: String {
        var text = ""
        withTraceparent { text = String(decoding: $0, as: UTF8.self) }
        return text
    }

    /// The header value, written into temporary storage and lent to `body`: it goes upstream
    /// with every request, and a head written as bytes copies it from there without making a
    /// string of it. Not generic, so that a caller in another module does not look up generic
    /// metadata on every call.
    public func withTraceparent(_ body: (UnsafeRawBufferPointer) -> Void) {
        withUnsafeTemporaryAllocation(byteCount: 55, alignment: 1) { buffer in
            let digits: StaticString = "0123456789abcdef"
            func put(_ value: UInt64, at start: Int, count: Int) {
                for i in 0..<count { buffer[start + i] = digits.utf8Start[Int((value >> UInt64(4 * (count - 1 - i))) & 0xF)] }
            }
            put(0, at: 0, count: 2)
            buffer[2] = UInt8(ascii: "-")
            put(traceHigh, at: 3, count: 16)
            put(traceLow, at: 19, count: 16)
            buffer[35] = UInt8(ascii: "-")
            put(span, at: 36, count: 16)
            buffer[52] = UInt8(ascii: "-")
            put(UInt64(flags), at: 53, count: 2)
            body(UnsafeRawBufferPointer(buffer))
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
