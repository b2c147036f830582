public import RampartCore

/// The outcome of resolving one flag for one context, in flagd's and OFREP's terms.
public struct Resolution: Sendable, Equatable {
    public enum Reason: String, Sendable {
        case staticValue = "STATIC", targetingMatch = "TARGETING_MATCH", defaultValue = "DEFAULT"
        case disabled = "DISABLED", error = "ERROR", split = "SPLIT", unknown = "UNKNOWN"
    }

    public enum ErrorCode: String, Sendable, Error {
        case flagNotFound = "FLAG_NOT_FOUND", parseError = "PARSE_ERROR", general = "GENERAL"
        case invalidContext = "INVALID_CONTEXT", targetingKeyMissing = "TARGETING_KEY_MISSING"
        case typeMismatch = "TYPE_MISMATCH"
    }

    public let key: String
    /// Nil means "use the caller's default" (a disabled flag, or DEFAULT with no default variant).
    public let value: JSONValue?
    public let variant: String?
    public let reason: Reason
    public let errorCode: ErrorCode?
    public let errorDetails: String?
    public let metadata: [String: JSONValue]

    static func success(_ flag: Flag, _ variant: Flag.Variant?, _ reason: Reason) -> Resolution {
        Resolution(key: flag.key, value: variant?.value, variant: variant?.name, reason: reason, errorCode: nil,
                   errorDetails: nil, metadata: flag.metadata)
    }

    static func failure(_ key: String, _ code: ErrorCode, _ details: String, metadata: [String: JSONValue] = [:]) -> Resolution {
        Resolution(key: key, value: nil, variant: nil, reason: .error, errorCode: code, errorDetails: details, metadata: metadata)
    }

    /// Resolves `flag` for `context` as flagd does: disabled flags and static flags without
    /// looking at the rule; a rule's result names the variant (`true`/`false` name the
    /// variants "true"/"false"); null falls back to the default variant.
    /// `timestamp` (whole seconds, `$flagd.timestamp`) is read only when a rule runs.
    public static func resolve(_ flag: Flag, context: JSONValue, timestamp: @autoclosure () -> Int) -> Resolution {
        if flag.state == .disabled { return .success(flag, nil, .disabled) }
        let rule: Rule
        switch flag.targeting {
        case .none:
            return .success(flag, flag.defaultVariantEntry, flag.defaultVariant == nil ? .defaultValue : .staticValue)
        case .invalid(let error):
            return .failure(flag.key, .parseError, "targeting cannot be evaluated: \(error)", metadata: flag.metadata)
        case .rule(let compiled):
            rule = compiled
        }
        let result: JSONValue
        do {
            result = try rule.evaluate(in: RuleEnvironment(context: context, flagKey: flag.key, timestamp: timestamp()))
        } catch {
            return .failure(flag.key, .parseError, "targeting failed: \(error)", metadata: flag.metadata)
        }
        let name: String
        switch result {
        case .null: return .success(flag, flag.defaultVariantEntry, .defaultValue)
        case .bool(let b): name = b ? "true" : "false"
        case .string(let s): name = s
        default:
            return .failure(flag.key, .general, "targeting returned \(result.typeName), not a variant name", metadata: flag.metadata)
        }
        guard let variant = flag.variant(named: name) else {
            return .failure(flag.key, .general, "targeting returned \"\(name)\", which is no variant of \(flag.key)", metadata: flag.metadata)
        }
        return .success(flag, variant, .targetingMatch)
    }
}
