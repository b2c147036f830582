public import RampartCore
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The flags in force and their evaluation, usable as a library:
/// `flags.evaluate("checkout", default: false, context: ...)`. The flag set is published as
/// one immutable value, so evaluations take no lock beyond one read of the current set, and
/// a reload swaps the whole set at once.
public final class FeatureFlags: Sendable {
    /// An immutable set of flags, with a version that changes whenever any definition does.
    public struct FlagSet: Sendable {
        public let flags: [String: Flag]
        /// Changes whenever any definition changes; the OFREP ETag.
        public let version: String

        public init(_ flags: [Flag]) {
            var byKey: [String: Flag] = [:]
            for flag in flags { byKey[flag.key] = flag }
            self.flags = byKey
            var text = ""
            for key in byKey.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
                appendJSONString(key, to: &text)
                byKey[key]!.definition.write(to: &text)
                JSONValue.object(byKey[key]!.metadata).write(to: &text)
            }
            version = String(FlagCatalog.digest(text.utf8), radix: 16)
        }
    }

    private let current: Mutex<FlagSet>
    private let now: @Sendable () -> Double

    /// - Parameter now: seconds since 1970 for `$flagd.timestamp`, read only when a rule runs;
    ///   by default the coarse real-time clock (whole seconds are all flagd gives).
    public init(_ flags: [Flag] = [], now: @escaping @Sendable () -> Double = coarseWallClockSeconds) {
        current = Mutex(FlagSet(flags))
        self.now = now
    }

    public var flagSet: FlagSet { current.withLock { $0 } }

    /// Puts a new set in force at once.
    public func replace(_ flags: [Flag]) { current.withLock { $0 = FlagSet(flags) } }

    /// Resolves one flag; unknown keys are `FLAG_NOT_FOUND`.
    public func resolve(_ key: String, context: JSONValue = .object([:])) -> Resolution {
        guard let flag = current.withLock({ $0.flags[key] }) else {
            return .failure(key, .flagNotFound, "flag \"\(key)\" is not defined")
        }
        return Resolution.resolve(flag, context: context, timestamp: Int(now()))
    }

    /// Every flag resolved for one context, in key order.
    public func resolveAll(context: JSONValue = .object([:])) -> (version: String, resolutions: [Resolution]) {
        let set = flagSet
        let timestamp = Int(now())
        let resolutions = set.flags.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }).map {
            Resolution.resolve(set.flags[$0]!, context: context, timestamp: timestamp)
        }
        return (set.version, resolutions)
    }

    /// The flag's value for the context, or `defaultValue` when the flag is unknown,
    /// disabled, fails, or holds a value of another type.
    public func evaluate<Value: FlagValue>(_ key: String, default defaultValue: Value, context: JSONValue = .object([:])) -> Value {
        details(key, default: defaultValue, context: context).value
    }

    /// The value with how it was reached, as an OpenFeature SDK reports it.
    public func details<Value: FlagValue>(_ key: String, default defaultValue: Value,
                                          context: JSONValue = .object([:])) -> (value: Value, resolution: Resolution) {
        let resolution = resolve(key, context: context)
        guard resolution.errorCode == nil, let json = resolution.value else { return (defaultValue, resolution) }
        guard let value = Value(flagValue: json) else {
            return (defaultValue, .failure(key, .typeMismatch, "the value is \(json.typeName), not \(Value.self)", metadata: resolution.metadata))
        }
        return (value, resolution)
    }

    /// Whether a boolean flag is on for a caller, described the way the gateway knows callers.
    public func isEnabled(_ key: String, userId: String? = nil, tenantId: String? = nil, role: String? = nil) -> Bool {
        var context: [String: JSONValue] = [:]
        if let userId { context["targetingKey"] = .string(userId); context["userId"] = .string(userId) }
        if let tenantId { context["tenant"] = .string(tenantId) }
        if let role { context["role"] = .string(role); context["roles"] = .array([.string(role)]) }
        return evaluate(key, default: false, context: .object(context))
    }
}

/// A Swift type a flag value can be read as, with OpenFeature's type rules: an integer is a
/// number without a fraction, a float any number, an object a JSON object.
public protocol FlagValue: Sendable {
    init?(flagValue: JSONValue)
}

extension Bool: FlagValue {
    public init?(flagValue: JSONValue) {
        guard case .bool(let b) = flagValue else { return nil }
        self = b
    }
}

extension String: FlagValue {
    public init?(flagValue: JSONValue) {
        guard case .string(let s) = flagValue else { return nil }
        self = s
    }
}

extension Int: FlagValue {
    public init?(flagValue: JSONValue) {
        guard case .number(let n) = flagValue, n == n.rounded(), let exact = Int(exactly: n) else { return nil }
        self = exact
    }
}

extension Double: FlagValue {
    public init?(flagValue: JSONValue) {
        guard case .number(let n) = flagValue else { return nil }
        self = n
    }
}

extension JSONValue: FlagValue {
    public init?(flagValue: JSONValue) {
        switch flagValue {
        case .object, .array: self = flagValue
        default: return nil
        }
    }
}

/// Seconds since 1970 from the kernel's coarse real-time clock: a few nanoseconds to read,
/// accurate to a tick, and `$flagd.timestamp` is whole seconds anyway.
public func coarseWallClockSeconds() -> Double {
    var now = timespec()
    #if os(Linux)
    clock_gettime(CLOCK_REALTIME_COARSE, &now)
    #else
    clock_gettime(CLOCK_REALTIME, &now)
    #endif
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
