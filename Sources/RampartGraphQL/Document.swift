/// An executable GraphQL document as Rampart's parser reads it: operations and fragments,
/// with values decoded. Type system definitions are only counted (a guard refuses them).
public struct Document: Sendable, Equatable {
    public var operations: [Operation] = []
    public var fragments: [Fragment] = []
    /// Type system definitions and extensions (`type`, `schema`, `extend ...`): not executable.
    public var typeSystemDefinitions: [String] = []
}

public enum OperationKind: String, Sendable, Equatable {
    case query, mutation, subscription
}

public struct Operation: Sendable, Equatable {
    public var kind: OperationKind
    public var name: String?
    public var variables: [VariableDefinition]
    public var directives: [Directive]
    public var selections: [Selection]
}

public struct Fragment: Sendable, Equatable {
    public var name: String
    public var typeCondition: String
    public var directives: [Directive]
    public var selections: [Selection]
}

public struct VariableDefinition: Sendable, Equatable {
    public var name: String
    public var type: TypeReference
    public var defaultValue: Value?
    public var directives: [Directive]
}

public indirect enum TypeReference: Sendable, Equatable, CustomStringConvertible {
    case named(String)
    case list(TypeReference)
    case nonNull(TypeReference)

    public var description: String {
        switch self {
        case .named(let name): name
        case .list(let inner): "[\(inner)]"
        case .nonNull(let inner): "\(inner)!"
        }
    }
}

public enum Selection: Sendable, Equatable {
    case field(Field)
    case fragmentSpread(FragmentSpread)
    case inlineFragment(InlineFragment)
}

public struct Field: Sendable, Equatable {
    public var alias: String?
    public var name: String
    public var arguments: [Argument]
    public var directives: [Directive]
    /// Nil for a leaf.
    public var selections: [Selection]?

    /// The key the field's value has in the response.
    public var responseKey: String { alias ?? name }
}

public struct FragmentSpread: Sendable, Equatable {
    public var name: String
    public var directives: [Directive]
}

public struct InlineFragment: Sendable, Equatable {
    public var typeCondition: String?
    public var directives: [Directive]
    public var selections: [Selection]
}

public struct Directive: Sendable, Equatable {
    public var name: String
    public var arguments: [Argument]
}

public struct Argument: Sendable, Equatable {
    public var name: String
    public var value: Value
}

/// A value as written in the document; strings are decoded, numbers keep their text.
public indirect enum Value: Sendable, Equatable {
    case variable(String)
    case int(String)
    case float(String)
    case string(String)
    case boolean(Bool)
    case null
    case enumValue(String)
    case list([Value])
    case object([ObjectField])

    public struct ObjectField: Sendable, Equatable {
        public var name: String
        public var value: Value
    }
}

extension Document {
    /// The first fragment named `name`.
    public func fragment(named name: String) -> Fragment? {
        fragments.first { $0.name == name }
    }

    /// The names (not aliases) of `operation`'s root fields, through fragments: what a
    /// mutation's cache invalidation is configured by.
    public func rootFieldNames(of operation: Operation) -> Set<String> {
        var names: Set<String> = []
        var pending = operation.selections
        var seen: Set<String> = []
        while let selection = pending.popLast() {
            switch selection {
            case .field(let field): names.insert(field.name)
            case .inlineFragment(let inline): pending.append(contentsOf: inline.selections)
            case .fragmentSpread(let spread):
                if seen.insert(spread.name).inserted, let fragment = fragment(named: spread.name) { pending.append(contentsOf: fragment.selections) }
            }
        }
        return names
    }

    /// Whether `operation` asks for an answer in parts (`@defer`, `@stream`) anywhere, in the
    /// fragments it reaches too; such answers are never cached.
    public func usesIncrementalDelivery(_ operation: Operation) -> Bool {
        func incremental(_ directives: [Directive]) -> Bool { directives.contains { $0.name == "defer" || $0.name == "stream" } }
        var pending = operation.selections
        var seen: Set<String> = []
        while let selection = pending.popLast() {
            switch selection {
            case .field(let field):
                if incremental(field.directives) { return true }
                pending.append(contentsOf: field.selections ?? [])
            case .inlineFragment(let inline):
                if incremental(inline.directives) { return true }
                pending.append(contentsOf: inline.selections)
            case .fragmentSpread(let spread):
                if incremental(spread.directives) { return true }
                if seen.insert(spread.name).inserted, let fragment = fragment(named: spread.name) { pending.append(contentsOf: fragment.selections) }
            }
        }
        return false
    }
}
