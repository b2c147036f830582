public import RampartCore

/// What a rule sees besides its data: the caller's whole context and the `$flagd` values
/// (the flag's key and the time of the evaluation in whole Unix seconds).
/// A class, so that the many places an evaluation hands it on share one reference.
public final class RuleEnvironment: Sendable {
    public let context: JSONValue
    public let flagKey: String
    public let timestamp: Int

    public init(context: JSONValue, flagKey: String, timestamp: Int) {
        self.context = context
        self.flagKey = flagKey
        self.timestamp = timestamp
    }

    /// `$flagd` as an object, for the rare rule that reads it whole.
    var flagdObject: JSONValue { .object(["flagKey": .string(flagKey), "timestamp": .number(Double(timestamp))]) }
}

extension Rule {
    /// Evaluates the rule against the environment's context, as flagd's JsonLogic does.
    /// - Throws: `RuleError` where flagd fails the evaluation (a `PARSE_ERROR`).
    public func evaluate(in environment: RuleEnvironment) throws(RuleError) -> JSONValue {
        try evaluate(data: environment.context, atRoot: true, environment)
    }

    /// `data` is what `var` reads: the context, or the current item inside `map` and its kin.
    func evaluate(data: JSONValue, atRoot: Bool, _ environment: RuleEnvironment) throws(RuleError) -> JSONValue {
        switch self {
        case .literal(let value):
            return value
        case .list(let rules):
            var items: [JSONValue] = []
            items.reserveCapacity(rules.count)
            for rule in rules { items.append(try rule.evaluate(data: data, atRoot: atRoot, environment)) }
            return .array(items)
        case .variable(let path, let fallback):
            if let value = Self.lookup(path, in: data, atRoot: atRoot, environment), !value.isNull { return value }
            return try fallback?.evaluate(data: data, atRoot: atRoot, environment) ?? .null
        case .dynamicVariable(let pathRule, let fallback):
            let computed = try pathRule.evaluate(data: data, atRoot: atRoot, environment)
            let text: String
            switch computed {
            case .string(let s): text = s
            case .number(let n): text = JSONValue.numberText(n)
            case .null: text = ""
            default: throw RuleError("var takes a path string, not \(computed.typeName)")
            }
            if let value = Self.lookup(VariablePath(text), in: data, atRoot: atRoot, environment), !value.isNull { return value }
            return try fallback?.evaluate(data: data, atRoot: atRoot, environment) ?? .null
        case .operation(let op, let arguments):
            return try Operation(op: op, arguments: arguments, data: data, atRoot: atRoot, environment: environment).run()
        }
    }

    static func lookup(_ path: VariablePath, in data: JSONValue, atRoot: Bool, _ environment: RuleEnvironment) -> JSONValue? {
        var components = path.components[...]
        var current = data
        if atRoot {
            if path.isFlagd {
                switch components.count {
                case 1: return environment.flagdObject
                case 2 where components.last == "flagKey": return .string(environment.flagKey)
                case 2 where components.last == "timestamp": return .number(Double(environment.timestamp))
                default: return nil
                }
            }
            if components.isEmpty, case .object(var members) = data {
                members["$flagd"] = environment.flagdObject
                return .object(members)
            }
        }
        while let component = components.popFirst() {
            switch current {
            case .object(let members):
                guard let next = members[component] else { return nil }
                current = next
            case .array(let items):
                guard let index = Int(component), items.indices.contains(index) else { return nil }
                current = items[index]
            default:
                return nil
            }
        }
        return current
    }
}

/// One operator applied to its arguments. Arguments are evaluated on demand, one at a time,
/// so the common binary operators allocate nothing.
private struct Operation {
    let op: Rule.Operator
    let arguments: [Rule]
    let data: JSONValue
    let atRoot: Bool
    let environment: RuleEnvironment

    func argument(_ index: Int) throws(RuleError) -> JSONValue {
        guard index < arguments.count else { return .null }
        return try arguments[index].evaluate(data: data, atRoot: atRoot, environment)
    }

    func allArguments() throws(RuleError) -> [JSONValue] {
        var values: [JSONValue] = []
        values.reserveCapacity(arguments.count)
        for index in arguments.indices { values.append(try argument(index)) }
        return values
    }

    func run() throws(RuleError) -> JSONValue {
        switch op {
        case .if, .ternary:
            var index = 0
            while index + 1 < arguments.count {
                if JsonLogic.isTruthy(try argument(index)) { return try argument(index + 1) }
                index += 2
            }
            return arguments.count % 2 == 1 ? try argument(arguments.count - 1) : .null
        case .and:
            var last = JSONValue.null
            for index in arguments.indices {
                last = try argument(index)
                if !JsonLogic.isTruthy(last) { return last }
            }
            return last
        case .or:
            var last = JSONValue.null
            for index in arguments.indices {
                last = try argument(index)
                if JsonLogic.isTruthy(last) { return last }
            }
            return last
        case .not: return .bool(!JsonLogic.isTruthy(try argument(0)))
        case .truthy: return .bool(JsonLogic.isTruthy(try argument(0)))
        case .equal: return .bool(JsonLogic.looselyEqual(try argument(0), try argument(1)))
        case .notEqual: return .bool(!JsonLogic.looselyEqual(try argument(0), try argument(1)))
        case .strictEqual: return .bool(JsonLogic.strictlyEqual(try argument(0), try argument(1)))
        case .strictNotEqual: return .bool(!JsonLogic.strictlyEqual(try argument(0), try argument(1)))
        case .less, .lessOrEqual:
            let orEqual = op == .lessOrEqual
            let a = try argument(0), b = try argument(1)
            guard JsonLogic.less(a, b, orEqual: orEqual) else { return .bool(false) }
            if arguments.count > 2 { return .bool(JsonLogic.less(b, try argument(2), orEqual: orEqual)) }
            return .bool(true)
        case .greater: return .bool(JsonLogic.less(try argument(1), try argument(0), orEqual: false))
        case .greaterOrEqual: return .bool(JsonLogic.less(try argument(1), try argument(0), orEqual: true))
        case .in: return .bool(JsonLogic.contains(try argument(1), try argument(0)))
        case .cat:
            var text = ""
            for index in arguments.indices { text += JsonLogic.text(try argument(index)) }
            return .string(arguments.count > 1 ? JsonLogic.trimmed(text) : text)
        case .substr: return JsonLogic.substring(try argument(0), try argument(1), arguments.count > 2 ? try argument(2) : nil)
        case .add:
            var sum = 0.0
            for index in arguments.indices { sum += JsonLogic.number(try argument(index)) }
            return .number(sum)
        case .multiply:
            guard !arguments.isEmpty else { return .null }
            var product = 1.0
            for index in arguments.indices { product *= JsonLogic.number(try argument(index)) }
            return .number(product)
        case .subtract:
            if arguments.count == 1 { return .number(-JsonLogic.number(try argument(0))) }
            return .number(JsonLogic.number(try argument(0)) - JsonLogic.number(try argument(1)))
        case .divide: return .number(JsonLogic.number(try argument(0)) / JsonLogic.number(try argument(1)))
        case .modulo: return .number(JsonLogic.number(try argument(0)).truncatingRemainder(dividingBy: JsonLogic.number(try argument(1))))
        case .min, .max:
            let numbers = try allArguments().map(JsonLogic.number)
            guard let first = numbers.first else { return .null }
            if numbers.contains(where: \.isNaN) { return .number(.nan) }
            return .number(numbers.dropFirst().reduce(first) { op == .min ? Swift.min($0, $1) : Swift.max($0, $1) })
        case .merge:
            var items: [JSONValue] = []
            for value in try allArguments() {
                if case .array(let inner) = value { items += inner } else { items.append(value) }
            }
            return .array(items)
        case .missing:
            var keys = try allArguments()
            if case .array(let inner)? = keys.first { keys = inner }
            return .array(missing(keys))
        case .missingSome:
            let need = Int(JsonLogic.number(try argument(0)))
            guard case .array(let keys) = try argument(1) else { return .array([]) }
            let absent = missing(keys)
            return keys.count - absent.count >= need ? .array([]) : .array(absent)
        case .map, .filter, .all, .some, .none:
            guard case .array(let items) = try argument(0) else {
                return op == .map || op == .filter ? .array([]) : .bool(op == .none)
            }
            if op == .all, items.isEmpty { return .bool(false) }
            var kept: [JSONValue] = []
            for item in items {
                let result = arguments.count > 1 ? try arguments[1].evaluate(data: item, atRoot: false, environment) : .null
                switch op {
                case .map: kept.append(result)
                case .filter: if JsonLogic.isTruthy(result) { kept.append(item) }
                case .all: if !JsonLogic.isTruthy(result) { return .bool(false) }
                case .some: if JsonLogic.isTruthy(result) { return .bool(true) }
                default: if JsonLogic.isTruthy(result) { return .bool(false) }  // none
                }
            }
            switch op {
            case .map, .filter: return .array(kept)
            case .all: return .bool(true)
            case .some: return .bool(false)
            default: return .bool(true)
            }
        case .reduce:
            var accumulator = try argument(2)
            guard case .array(let items) = try argument(0), arguments.count > 1 else { return accumulator }
            for item in items {
                accumulator = try arguments[1].evaluate(data: .object(["current": item, "accumulator": accumulator]), atRoot: false, environment)
            }
            return accumulator
        case .startsWith, .endsWith:
            guard arguments.count == 2, case .string(let value) = try argument(0), case .string(let affix) = try argument(1) else { return .null }
            let v = Array(value.utf8), a = Array(affix.utf8)
            return .bool(op == .startsWith ? v.starts(with: a) : v.reversed().starts(with: a.reversed()))
        case .semVer:
            guard arguments.count == 3 else { return .null }
            return SemanticVersion.compare(try argument(0), try argument(1), try argument(2)).map(JSONValue.bool) ?? .null
        case .fractional:
            return Fractional.pick(try allArguments(), environment: environment)
        }
    }

    /// The keys whose value is absent, null or "" (JsonLogic's `missing`).
    private func missing(_ keys: [JSONValue]) -> [JSONValue] {
        keys.filter { key in
            let path = Rule.VariablePath(JsonLogic.text(key))
            guard let value = Rule.lookup(path, in: data, atRoot: atRoot, environment) else { return true }
            if case .null = value { return true }
            if case .string(let s) = value, s.isEmpty { return true }
            return false
        }
    }
}

/// JsonLogic's coercions, as flagd's engine applies them. Strings compare by their UTF-8
/// bytes (no Unicode normalisation), never by Swift's `String ==`.
enum JsonLogic {
    static func isTruthy(_ value: JSONValue) -> Bool {
        switch value {
        case .null: false
        case .bool(let b): b
        case .number(let n): n != 0 && !n.isNaN
        case .string(let s): !s.isEmpty
        case .array(let items): !items.isEmpty
        case .object(let members): !members.isEmpty  // flagd's engine; the JS reference says always true
        }
    }

    static func number(_ value: JSONValue) -> Double {
        switch value {
        case .null: 0
        case .bool(let b): b ? 1 : 0
        case .number(let n): n
        case .string(let s):
            if s.allSatisfy(\.isWhitespace) { 0 } else { Double(s.trimmingWhitespace()) ?? .nan }
        case .array, .object: .nan
        }
    }

    static func sameText(_ a: String, _ b: String) -> Bool {
        var a = a, b = b
        guard a.utf8.count == b.utf8.count else { return false }
        // Native strings compare as contiguous bytes; the general path covers the rest.
        return a.withUTF8 { x in b.withUTF8 { y in x.elementsEqual(y) } }
    }

    static func strictlyEqual(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): true
        case (.bool(let x), .bool(let y)): x == y
        case (.number(let x), .number(let y)): x == y
        case (.string(let x), .string(let y)): sameText(x, y)
        case (.array(let x), .array(let y)): x.count == y.count && zip(x, y).allSatisfy { strictlyEqual($0, $1) }
        case (.object(let x), .object(let y)):
            x.count == y.count && x.allSatisfy { key, value in y[key].map { strictlyEqual(value, $0) } ?? false }
        default: false
        }
    }

    static func looselyEqual(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.string(let x), .string(let y)): return sameText(x, y)
        case (.null, .null): return true
        case (.null, _), (_, .null): return false
        case (.array, .array), (.object, .object): return strictlyEqual(a, b)
        case (.array, _), (.object, _), (_, .array), (_, .object): return false
        default: return number(a) == number(b)
        }
    }

    /// `a < b` (or `<=`): two strings by bytes, anything else as numbers.
    static func less(_ a: JSONValue, _ b: JSONValue, orEqual: Bool) -> Bool {
        if case .string(let x) = a, case .string(let y) = b {
            return x.utf8.lexicographicallyPrecedes(y.utf8) || (orEqual && sameText(x, y))
        }
        let x = number(a), y = number(b)
        return orEqual ? x <= y : x < y
    }

    /// `in`: a substring of a string, or a member of an array.
    static func contains(_ haystack: JSONValue, _ needle: JSONValue) -> Bool {
        switch haystack {
        case .string(let text):
            guard case .string(let part) = needle else { return false }
            return containsBytes(Array(text.utf8), Array(part.utf8))
        case .array(let items):
            return items.contains { strictlyEqual($0, needle) }
        default:
            return false
        }
    }

    static func containsBytes(_ text: [UInt8], _ part: [UInt8]) -> Bool {
        guard !part.isEmpty else { return true }
        guard part.count <= text.count else { return false }
        for start in 0...(text.count - part.count) where text[start] == part[0] {
            if text[start..<start + part.count].elementsEqual(part) { return true }
        }
        return false
    }

    /// A value as `cat` prints it.
    static func text(_ value: JSONValue) -> String {
        switch value {
        case .null: ""
        case .bool(let b): b ? "true" : "false"
        case .number(let n): JSONValue.numberText(n)
        case .string(let s): s
        case .array(let items): items.map(text).joined(separator: ",")
        case .object: value.jsonText
        }
    }

    static func trimmed(_ text: String) -> String { text.trimmingWhitespace() }

    /// `substr` on Unicode scalars: a negative start counts from the end, a negative length
    /// leaves that many off the end.
    static func substring(_ value: JSONValue, _ start: JSONValue, _ length: JSONValue?) -> JSONValue {
        let scalars = Array(text(value).unicodeScalars)
        let count = scalars.count
        let startNumber = number(start)
        guard !startNumber.isNaN else { return .string("") }
        var from = Int(startNumber)
        from = from < 0 ? Swift.max(0, count + from) : Swift.min(from, count)
        var to = count
        if let length, !length.isNull {
            let lengthNumber = number(length)
            guard !lengthNumber.isNaN else { return .string("") }
            let n = Int(lengthNumber)
            to = n < 0 ? Swift.max(from, count + n) : Swift.min(count, from + n)
        }
        guard from < to else { return .string("") }
        var result = String.UnicodeScalarView()
        result.append(contentsOf: scalars[from..<to])
        return .string(String(result))
    }
}

extension String {
    func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        return String(scalars[first...last])
    }
}
