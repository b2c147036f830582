import RampartCore

/// The canonical text of one operation (GRAPHQL-GUARD.md section 6): what the response cache
/// keys on, and, when a route asks for it, what the upstream receives. A pure rewrite that
/// never changes what the operation means or the order of its answer:
///
/// - only the selected operation and the fragments it reaches remain;
/// - spreads become inline fragments with the fragment's type condition and the spread's
///   directives, unless the fragment definition itself carries directives (then the spread
///   and its definition stay);
/// - an inline fragment without directives and type condition is spliced into its parent;
/// - fields with the same response key, name, arguments and directives are merged into the
///   first one (sub-selections concatenated), and adjacent inline fragments with the same type
///   condition and directives are merged;
/// - `x: x` loses its alias; arguments and input-object fields are sorted by name; string
///   values print by value; ignored tokens go and one canonical spacing is printed.
///
/// Fields, fragments and directives are never reordered; variables are never renamed or
/// inlined; nothing conditional is dropped.
public struct Normalizer: Sendable {
    let fragments: [String: Fragment]

    public init(document: Document) {
        var fragments: [String: Fragment] = [:]
        for fragment in document.fragments where fragments[fragment.name] == nil { fragments[fragment.name] = fragment }
        self.fragments = fragments
    }

    /// The canonical text of `operation`. The document must have passed structural
    /// validation (every spread names a fragment, no cycles), as the guard ensures.
    public func normalize(_ operation: Operation) -> String {
        var kept: [String] = []
        var keptSet: Set<String> = []
        let selections = normalized(operation.selections, kept: &kept, keptSet: &keptSet)
        var out = operation.kind.rawValue
        if let name = operation.name { out += " " + name }
        if !operation.variables.isEmpty {
            out += "("
            for (index, variable) in operation.variables.enumerated() {
                if index > 0 { out += "," }
                out += "$" + variable.name + ":" + variable.type.description
                if let value = variable.defaultValue {
                    out += "="
                    Self.print(value, to: &out)
                }
                Self.print(variable.directives, to: &out)
            }
            out += ")"
        }
        Self.print(operation.directives, to: &out)
        Self.print(selections, to: &out)
        // Fragments kept as spreads (their definitions carry directives), each once, in the
        // order first reached; their own spreads may keep further ones.
        var index = 0
        while index < kept.count {
            let fragment = fragments[kept[index]]!
            let inner = normalized(fragment.selections, kept: &kept, keptSet: &keptSet)
            out += " fragment " + fragment.name + " on " + fragment.typeCondition
            Self.print(fragment.directives, to: &out)
            Self.print(inner, to: &out)
            index += 1
        }
        return out
    }

    // MARK: - Rewriting

    /// A selection after rewriting: spreads are gone but for kept ones.
    indirect enum Node: Equatable {
        case field(alias: String?, name: String, arguments: [Argument], directives: [Directive], selections: [Node]?)
        case inline(typeCondition: String?, directives: [Directive], selections: [Node])
        case spread(name: String, directives: [Directive])
    }

    func normalized(_ selections: [Selection], kept: inout [String], keptSet: inout Set<String>) -> [Node] {
        var nodes: [Node] = []
        flatten(selections, into: &nodes, kept: &kept, keptSet: &keptSet)
        return merged(nodes)
    }

    /// Rewrites one selection set into `nodes`, splicing what needs no wrapper.
    func flatten(_ selections: [Selection], into nodes: inout [Node], kept: inout [String], keptSet: inout Set<String>) {
        for selection in selections {
            switch selection {
            case .field(let field):
                let alias = field.alias == field.name ? nil : field.alias
                let children = field.selections.map { normalized($0, kept: &kept, keptSet: &keptSet) }
                nodes.append(.field(alias: alias, name: field.name, arguments: Self.sorted(field.arguments),
                                    directives: Self.sortedArguments(field.directives), selections: children))
            case .inlineFragment(let inline):
                if inline.directives.isEmpty, inline.typeCondition == nil {
                    flatten(inline.selections, into: &nodes, kept: &kept, keptSet: &keptSet)
                } else {
                    nodes.append(.inline(typeCondition: inline.typeCondition, directives: Self.sortedArguments(inline.directives),
                                         selections: normalized(inline.selections, kept: &kept, keptSet: &keptSet)))
                }
            case .fragmentSpread(let spread):
                guard let fragment = fragments[spread.name] else { continue }
                if !fragment.directives.isEmpty {
                    if keptSet.insert(fragment.name).inserted { kept.append(fragment.name) }
                    nodes.append(.spread(name: spread.name, directives: Self.sortedArguments(spread.directives)))
                } else {
                    // A spread is an inline fragment on the fragment's type; it never splices,
                    // since without a schema its type may differ from the parent's.
                    nodes.append(.inline(typeCondition: fragment.typeCondition, directives: Self.sortedArguments(spread.directives),
                                         selections: normalized(fragment.selections, kept: &kept, keptSet: &keptSet)))
                }
            }
        }
    }

    /// Fields equal in response key, name, arguments and directives merge into the first
    /// (their selections concatenated, then merged again); then adjacent inline fragments
    /// with the same type condition and directives merge.
    func merged(_ nodes: [Node]) -> [Node] {
        struct FieldKey: Hashable {
            var alias: String?
            var name: String
            var signature: String
        }
        // Most selection sets repeat no response key and hold no adjacent inline fragments:
        // those are returned as they are, without building a signature per field.
        var keys: Set<String> = []
        var repeats = false
        var previousInline = false
        for node in nodes {
            switch node {
            case .field(let alias, let name, _, _, _):
                if !keys.insert(alias ?? name).inserted { repeats = true }
                previousInline = false
            case .inline:
                if previousInline { repeats = true }
                previousInline = true
            case .spread:
                previousInline = false
            }
            if repeats { break }
        }
        guard repeats else { return nodes }
        var result: [Node] = []
        var firstIndex: [FieldKey: Int] = [:]
        var pending: [Int: [Node]] = [:]
        for node in nodes {
            guard case .field(let alias, let name, let arguments, let directives, let selections) = node else {
                result.append(node)
                continue
            }
            var signature = ""
            Self.print(arguments: arguments, to: &signature)
            Self.print(directives, to: &signature)
            signature += selections == nil ? "." : "{"
            let key = FieldKey(alias: alias, name: name, signature: signature)
            if let index = firstIndex[key] {
                pending[index, default: []].append(contentsOf: selections ?? [])
            } else {
                firstIndex[key] = result.count
                result.append(node)
            }
        }
        for (index, extra) in pending {
            guard case .field(let alias, let name, let arguments, let directives, let selections?) = result[index] else { continue }
            result[index] = .field(alias: alias, name: name, arguments: arguments, directives: directives, selections: merged(selections + extra))
        }
        var adjacent: [Node] = []
        for node in result {
            if case .inline(let condition, let directives, let selections) = node,
               case .inline(let lastCondition, let lastDirectives, let lastSelections)? = adjacent.last,
               condition == lastCondition, directives == lastDirectives {
                adjacent[adjacent.count - 1] = .inline(typeCondition: condition, directives: directives, selections: merged(lastSelections + selections))
            } else {
                adjacent.append(node)
            }
        }
        return adjacent
    }

    static func sorted(_ arguments: [Argument]) -> [Argument] {
        arguments.map { Argument(name: $0.name, value: sorted($0.value)) }.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
    }

    static func sortedArguments(_ directives: [Directive]) -> [Directive] {
        directives.map { Directive(name: $0.name, arguments: sorted($0.arguments)) }
    }

    static func sorted(_ value: Value) -> Value {
        switch value {
        case .list(let items): .list(items.map(sorted))
        case .object(let fields):
            .object(fields.map { Value.ObjectField(name: $0.name, value: sorted($0.value)) }
                .sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) })
        default: value
        }
    }

    // MARK: - Printing

    static func print(_ nodes: [Node], to out: inout String) {
        out += "{"
        for (index, node) in nodes.enumerated() {
            if index > 0 { out += " " }
            switch node {
            case .field(let alias, let name, let arguments, let directives, let selections):
                if let alias { out += alias + ":" }
                out += name
                print(arguments: arguments, to: &out)
                print(directives, to: &out)
                if let selections { print(selections, to: &out) }
            case .inline(let condition, let directives, let selections):
                out += "..."
                if let condition { out += "on " + condition }
                print(directives, to: &out)
                print(selections, to: &out)
            case .spread(let name, let directives):
                out += "..." + name
                print(directives, to: &out)
            }
        }
        out += "}"
    }

    static func print(arguments: [Argument], to out: inout String) {
        guard !arguments.isEmpty else { return }
        print(arguments.map { ($0.name, $0.value) }, between: ("(", ")"), to: &out)
    }

    /// `name:value` pairs, comma separated: arguments and input-object fields.
    static func print(_ pairs: [(String, Value)], between brackets: (String, String), to out: inout String) {
        out += brackets.0
        for (index, (name, value)) in pairs.enumerated() {
            if index > 0 { out += "," }
            out += name + ":"
            print(value, to: &out)
        }
        out += brackets.1
    }

    static func print(_ directives: [Directive], to out: inout String) {
        for directive in directives {
            out += "@" + directive.name
            print(arguments: directive.arguments, to: &out)
        }
    }

    static func print(_ value: Value, to out: inout String) {
        switch value {
        case .variable(let name): out += "$" + name
        case .int(let text), .float(let text): out += text
        case .string(let text): appendJSONString(text, to: &out)
        case .boolean(let flag): out += flag ? "true" : "false"
        case .null: out += "null"
        case .enumValue(let name): out += name
        case .list(let items):
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                print(item, to: &out)
            }
            out += "]"
        case .object(let fields):
            print(fields.map { ($0.name, $0.value) }, between: ("{", "}"), to: &out)
        }
    }
}
