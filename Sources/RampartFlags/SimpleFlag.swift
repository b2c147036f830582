public import RampartCore

/// The form people write flags in through the admin API, compiled to a flagd definition so
/// one evaluator serves both:
///
/// ```json
/// {"key": "new-checkout", "enabled": true, "rollout": 20,
///  "targets": {"users": ["u-1"], "tenants": ["acme"], "roles": ["staff"]},
///  "conditions": [{"property": "country", "operator": "in", "value": ["DE", "FR"]}]}
/// ```
///
/// Without `variants` the flag is boolean (`on`/`off`, default `off`). Targeted callers
/// always get `targetVariant` (default `on`); callers meeting every condition enter the
/// rollout, bucketed by `targetingKey` with flagd's `fractional`, so a caller's answer is
/// stable and raising the percentage only adds callers. With weighted `variants` the callers
/// in the rollout are split between the weighted variants by a second, independent hash (an
/// A/B test), and the flag is marked `experiment` for exposure events.
public struct SimpleFlag: Sendable, Equatable {
    public struct Condition: Sendable, Equatable {
        public var property: String
        public var `operator`: String
        public var value: JSONValue
    }

    public struct WeightedVariant: Sendable, Equatable {
        public var value: JSONValue
        public var weight: Int?
    }

    public var key: String
    public var enabled: Bool
    public var description: String?
    /// Percentage (0–100, up to two decimals) of the callers meeting the conditions who get
    /// the flag.
    public var rollout: Double
    public var users: [String]
    public var tenants: [String]
    public var roles: [String]
    public var conditions: [Condition]
    /// Named variants; nil for a boolean flag.
    public var variants: [String: WeightedVariant]?
    public var defaultVariant: String
    public var targetVariant: String?
    public var metadata: [String: JSONValue]

    /// Operators a condition may use.
    public static let operators = ["==", "!=", "<", "<=", ">", ">=", "in", "not_in", "starts_with", "ends_with", "contains", "sem_ver"]

    /// Reads the simple form; every problem is reported with the field it is in.
    public init(_ document: JSONValue) throws(ConfigurationError) {
        var issues: [ConfigurationIssue] = []
        guard case .object(let members) = document else {
            throw ConfigurationError(issues: [.init(path: "", "a flag is a JSON object, not \(document.typeName)")])
        }
        let known: Set<String> = ["key", "enabled", "description", "rollout", "targets", "conditions", "variants", "defaultVariant",
                                  "targetVariant", "metadata"]
        for name in members.keys.sorted() where !known.contains(name) {
            var problem = "unknown field"
            if let guess = nearest(to: name, in: known.sorted()) { problem += " (did you mean \"\(guess)\"?)" }
            issues.append(.init(path: name, problem))
        }
        func string(_ name: String, in object: [String: JSONValue], path: String) -> String? {
            switch object[name] {
            case .string(let s)?: return s
            case nil, .null?: return nil
            case let other?:
                issues.append(.init(path: path, "must be a string, not \(other.typeName)"))
                return nil
            }
        }
        func strings(_ name: String, in object: [String: JSONValue], path: String) -> [String] {
            switch object[name] {
            case nil, .null?: return []
            case .array(let items)?:
                return items.enumerated().compactMap { index, item in
                    if case .string(let s) = item, !s.isEmpty { return s }
                    issues.append(.init(path: "\(path)[\(index)]", "must be a non-empty string"))
                    return nil
                }
            case let other?:
                issues.append(.init(path: path, "must be an array of strings, not \(other.typeName)"))
                return []
            }
        }
        key = string("key", in: members, path: "key") ?? ""
        if members["key"] == nil { issues.append(.init(path: "key", "required")) } else if !Self.isValidKey(key) {
            issues.append(.init(path: "key", "use 1 to 128 letters, digits, '-', '_' and '.'"))
        }
        switch members["enabled"] {
        case .bool(let b)?: enabled = b
        case nil: enabled = true
        case let other?:
            enabled = true
            issues.append(.init(path: "enabled", "must be true or false, not \(other.typeName)"))
        }
        description = string("description", in: members, path: "description")
        switch members["rollout"] {
        case nil: rollout = 100
        case .number(let n)? where n >= 0 && n <= 100 && (n * 100).rounded() == n * 100: rollout = n
        case let other?:
            rollout = 100
            issues.append(.init(path: "rollout", "must be a percentage from 0 to 100 with at most two decimals, not \(other.jsonText)"))
        }
        users = []
        tenants = []
        roles = []
        switch members["targets"] {
        case nil, .null?: break
        case .object(let targets)?:
            for name in targets.keys.sorted() where !["users", "tenants", "roles"].contains(name) {
                issues.append(.init(path: "targets.\(name)", "unknown field (targets has users, tenants and roles)"))
            }
            users = strings("users", in: targets, path: "targets.users")
            tenants = strings("tenants", in: targets, path: "targets.tenants")
            roles = strings("roles", in: targets, path: "targets.roles")
        case let other?: issues.append(.init(path: "targets", "must be an object with users, tenants and roles, not \(other.typeName)"))
        }
        conditions = []
        switch members["conditions"] {
        case nil, .null?: break
        case .array(let items)?:
            for (index, item) in items.enumerated() {
                let path = "conditions[\(index)]"
                guard case .object(let fields) = item else {
                    issues.append(.init(path: path, "must be an object with property, operator and value"))
                    continue
                }
                for name in fields.keys.sorted() where !["property", "operator", "value"].contains(name) {
                    issues.append(.init(path: "\(path).\(name)", "unknown field (a condition has property, operator and value)"))
                }
                let property = string("property", in: fields, path: "\(path).property") ?? ""
                if property.isEmpty { issues.append(.init(path: "\(path).property", "required (a context property such as country)")) }
                let op = string("operator", in: fields, path: "\(path).operator") ?? ""
                if !Self.operators.contains(op) {
                    issues.append(.init(path: "\(path).operator", "must be one of \(Self.operators.joined(separator: ", ")), not \"\(op)\""))
                }
                let value = fields["value"] ?? .null
                if let problem = Self.problem(with: value, for: op) { issues.append(.init(path: "\(path).value", problem)) }
                conditions.append(Condition(property: property, operator: op, value: value))
            }
        case let other?: issues.append(.init(path: "conditions", "must be an array of conditions, not \(other.typeName)"))
        }
        switch members["variants"] {
        case nil, .null?:
            variants = nil
        case .object(let entries)? where !entries.isEmpty:
            var parsed: [String: WeightedVariant] = [:]
            for name in entries.keys.sorted() {
                let path = "variants.\(name)"
                guard case .object(let fields) = entries[name]!, let value = fields["value"] else {
                    issues.append(.init(path: path, "must be an object with value and an optional weight"))
                    continue
                }
                for field in fields.keys.sorted() where !["value", "weight"].contains(field) {
                    issues.append(.init(path: "\(path).\(field)", "unknown field (a variant has value and weight)"))
                }
                var weight: Int?
                switch fields["weight"] {
                case nil, .null?: break
                case .number(let n)? where n >= 0 && n == n.rounded() && n <= 1_000_000: weight = Int(n)
                case let other?: issues.append(.init(path: "\(path).weight", "must be a whole number from 0 to 1000000, not \(other.jsonText)"))
                }
                parsed[name] = WeightedVariant(value: value, weight: weight)
            }
            let types = Set(parsed.values.map(\.value.typeName))
            if types.count > 1 { issues.append(.init(path: "variants", "all variants must share one JSON type; found \(types.sorted().joined(separator: ", "))")) }
            variants = parsed
        case let other?:
            variants = nil
            issues.append(.init(path: "variants", "must be an object of named variants, not \(other.jsonText)"))
        }
        let names = variants.map { Set($0.keys) } ?? ["on", "off"]
        if let given = string("defaultVariant", in: members, path: "defaultVariant") {
            defaultVariant = given
        } else {
            defaultVariant = "off"
            if variants != nil { issues.append(.init(path: "defaultVariant", "required with variants: what callers outside the rollout get")) }
        }
        if !names.contains(defaultVariant), members["defaultVariant"] != nil || variants == nil {
            issues.append(.init(path: "defaultVariant", "\"\(defaultVariant)\" names no variant (have \(names.sorted().joined(separator: ", ")))"))
        }
        targetVariant = string("targetVariant", in: members, path: "targetVariant")
        let hasTargets = !(users.isEmpty && tenants.isEmpty && roles.isEmpty)
        if let target = targetVariant, !names.contains(target) {
            issues.append(.init(path: "targetVariant", "\"\(target)\" names no variant (have \(names.sorted().joined(separator: ", ")))"))
        } else if targetVariant == nil, hasTargets, variants != nil {
            issues.append(.init(path: "targetVariant", "required with variants and targets: what targeted callers get"))
        }
        if let variants, !variants.values.contains(where: { ($0.weight ?? 0) > 0 }) {
            issues.append(.init(path: "variants", "give at least one variant a weight above 0: the callers in the rollout are split by weight"))
        }
        metadata = [:]
        switch members["metadata"] {
        case nil, .null?: break
        case .object(let entries)?:
            for name in entries.keys.sorted() {
                switch entries[name]! {
                case .string, .number, .bool: metadata[name] = entries[name]!
                default: issues.append(.init(path: "metadata.\(name)", "must be a string, number or boolean"))
                }
            }
        case let other?: issues.append(.init(path: "metadata", "must be an object, not \(other.typeName)"))
        }
        guard issues.isEmpty else { throw ConfigurationError(issues: issues) }
    }

    /// Flag keys the admin API accepts: safe in URLs, headers and metric labels.
    public static func isValidKey(_ key: String) -> Bool {
        (1...128).contains(key.utf8.count) && key.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A) || byte == 0x2D || byte == 0x5F || byte == 0x2E
        }
    }

    private static func problem(with value: JSONValue, for op: String) -> String? {
        func scalar(_ v: JSONValue) -> Bool {
            switch v {
            case .string, .number, .bool: true
            default: false
            }
        }
        switch op {
        case "in", "not_in":
            guard case .array(let items) = value, !items.isEmpty, items.allSatisfy(scalar) else {
                return "must be a non-empty array of strings, numbers or booleans for \(op)"
            }
        case "starts_with", "ends_with":
            guard case .string = value else { return "must be a string for \(op)" }
        case "<", "<=", ">", ">=":
            guard case .number = value else { return "must be a number for \(op)" }
        case "sem_ver":
            guard case .string(let text) = value, let space = text.firstIndex(of: " "),
                  ["=", "!=", "<", "<=", ">", ">=", "^", "~"].contains(String(text[..<space])),
                  SemanticVersion(String(text[text.index(after: space)...]).trimmingCharacters(in: " ")) != nil else {
                return "must be an operator and a version, like \">= 2.1.0\""
            }
        default:
            guard scalar(value) else { return "must be a string, number or boolean" }
        }
        return nil
    }

    /// The flagd definition this form compiles to.
    public var definition: JSONValue {
        let variantValues: [String: JSONValue]
        if let variants {
            variantValues = variants.mapValues(\.value)
        } else {
            variantValues = ["on": .bool(true), "off": .bool(false)]
        }
        var flag: [String: JSONValue] = [
            "state": .string(enabled ? "ENABLED" : "DISABLED"),
            "variants": .object(variantValues),
            "defaultVariant": .string(defaultVariant),
        ]
        var metadata = self.metadata
        if let description { metadata["description"] = .string(description) }
        let weighted = (variants ?? [:]).filter { ($0.value.weight ?? 0) > 0 }.sorted { $0.key < $1.key }
        if !weighted.isEmpty { metadata["experiment"] = .bool(true) }
        if !metadata.isEmpty { flag["metadata"] = .object(metadata) }

        func variable(_ name: String) -> JSONValue { .object(["var": .string(name)]) }
        func op(_ name: String, _ args: JSONValue...) -> JSONValue { .object([name: .array(args)]) }
        var branches: [JSONValue] = []
        var targets: [JSONValue] = []
        if !users.isEmpty { targets.append(op("in", variable("targetingKey"), .array(users.map(JSONValue.string)))) }
        if !tenants.isEmpty { targets.append(op("in", variable("tenant"), .array(tenants.map(JSONValue.string)))) }
        if !roles.isEmpty {
            targets.append(op("some", variable("roles"), op("in", variable(""), .array(roles.map(JSONValue.string)))))
        }
        if !targets.isEmpty {
            branches.append(targets.count == 1 ? targets[0] : .object(["or": .array(targets)]))
            branches.append(.string(targetVariant ?? "on"))
        }
        var gate: [JSONValue] = conditions.map(Self.rule(for:))
        if rollout < 100 {
            // Buckets of basis points keyed by flag key and targetingKey (fractional's
            // shorthand): a caller without a targetingKey stays out.
            let inside = Int((rollout * 100).rounded())
            gate.append(op("==", .object(["fractional": .array([.array([.string("in"), .number(Double(inside))]),
                                                                   .array([.string("out"), .number(Double(10_000 - inside))])])]),
                           .string("in")))
        }
        let served: JSONValue
        if weighted.isEmpty {
            served = .string("on")
        } else {
            // A second hash, independent of the rollout's, so raising the rollout does not move
            // anyone between variants.
            gate.append(op("!!", variable("targetingKey")))
            let seed = op("cat", variable("$flagd.flagKey"), .string("/variant/"), variable("targetingKey"))
            served = .object(["fractional": .array([seed] + weighted.map { .array([.string($0.key), .number(Double($0.value.weight!))]) })])
        }
        if gate.isEmpty {
            branches.append(.bool(true))
        } else {
            branches.append(gate.count == 1 ? gate[0] : .object(["and": .array(gate)]))
        }
        branches.append(served)
        branches.append(.null)
        // With no targets, conditions or rollout, everyone gets the served variant.
        if targets.isEmpty, gate.isEmpty, weighted.isEmpty {
            flag["defaultVariant"] = .string(variants == nil ? "on" : defaultVariant)
        } else {
            flag["targeting"] = .object(["if": .array(branches)])
        }
        return .object(flag)
    }

    private static func rule(for condition: Condition) -> JSONValue {
        let variable: JSONValue = .object(["var": .string(condition.property)])
        switch condition.operator {
        case "not_in": return .object(["!": .array([.object(["in": .array([variable, condition.value])])])])
        case "contains": return .object(["in": .array([condition.value, variable])])
        case "sem_ver":
            let text = condition.value.stringValue ?? ""
            let space = text.firstIndex(of: " ")!
            return .object(["sem_ver": .array([variable, .string(String(text[..<space])),
                                               .string(String(text[text.index(after: space)...]).trimmingCharacters(in: " "))])])
        default: return .object([condition.operator: .array([variable, condition.value])])
        }
    }

    /// The simple form back as JSON, for the admin API.
    public var document: JSONValue {
        var out: [String: JSONValue] = ["key": .string(key), "enabled": .bool(enabled), "rollout": .number(rollout),
                                        "defaultVariant": .string(defaultVariant)]
        if let description { out["description"] = .string(description) }
        var targets: [String: JSONValue] = [:]
        if !users.isEmpty { targets["users"] = .array(users.map(JSONValue.string)) }
        if !tenants.isEmpty { targets["tenants"] = .array(tenants.map(JSONValue.string)) }
        if !roles.isEmpty { targets["roles"] = .array(roles.map(JSONValue.string)) }
        if !targets.isEmpty { out["targets"] = .object(targets) }
        if !conditions.isEmpty {
            out["conditions"] = .array(conditions.map {
                .object(["property": .string($0.property), "operator": .string($0.operator), "value": $0.value])
            })
        }
        if let variants {
            out["variants"] = .object(variants.mapValues { v in
                var fields: [String: JSONValue] = ["value": v.value]
                if let weight = v.weight { fields["weight"] = .number(Double(weight)) }
                return .object(fields)
            })
        }
        if let targetVariant { out["targetVariant"] = .string(targetVariant) }
        if !metadata.isEmpty { out["metadata"] = .object(metadata) }
        return .object(out)
    }
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        var text = Substring(self)
        while text.first == set { text = text.dropFirst() }
        while text.last == set { text = text.dropLast() }
        return String(text)
    }
}
