/// The validation rules that need no schema (the guard's step 5): executable definitions
/// only, unique operation and fragment names, a lone anonymous operation, known fragments,
/// no fragment cycles, no unused fragments, and per operation unique, defined and used
/// variables. Also orders the fragments so each comes after every fragment it spreads,
/// which lets the metrics be computed without recursing from one fragment into another.
public struct StructuralValidation: Sendable {
    /// Fragment names, each after the fragments it spreads (empty when there is a cycle).
    public let fragmentOrder: [String]
    /// Every problem found, in the spirit of graphql-js's messages.
    public let errors: [String]

    public init(_ document: Document) {
        var errors: [String] = []
        for keyword in document.typeSystemDefinitions {
            errors.append("The \"\(keyword)\" definition is not executable.")
        }
        var operationNames: Set<String> = []
        for operation in document.operations {
            if let name = operation.name, !operationNames.insert(name).inserted {
                errors.append("There can be only one operation named \"\(name)\".")
            }
        }
        if document.operations.count > 1, document.operations.contains(where: { $0.name == nil }) {
            errors.append("This anonymous operation must be the only defined operation.")
        }
        var fragments: [String: Fragment] = [:]
        for fragment in document.fragments {
            if fragments[fragment.name] != nil {
                errors.append("There can be only one fragment named \"\(fragment.name)\".")
            } else {
                fragments[fragment.name] = fragment
            }
        }

        // What each fragment spreads and which variables it uses, directly: one walk each.
        var spreads: [String: [String]] = [:]
        var ownVariables: [String: Set<String>] = [:]
        for fragment in fragments.values {
            var names: [String] = []
            var used: Set<String> = []
            Self.collectVariables(fragment.directives, into: &used)
            Self.collect(fragment.selections, spreads: &names, variables: &used)
            spreads[fragment.name] = names
            ownVariables[fragment.name] = used
        }
        var unknown: Set<String> = []
        for names in spreads.values { for name in names where fragments[name] == nil { unknown.insert(name) } }

        // Kahn's algorithm, iterative: a fragment is ready once everything it spreads is.
        var waitingOn: [String: Int] = [:]
        var spreadBy: [String: [String]] = [:]
        for (name, names) in spreads {
            let known = Set(names.filter { fragments[$0] != nil })
            waitingOn[name] = known.count
            for dependency in known { spreadBy[dependency, default: []].append(name) }
        }
        var ready = waitingOn.filter { $0.value == 0 }.map(\.key).sorted()
        var order: [String] = []
        while let name = ready.popLast() {
            order.append(name)
            for dependent in spreadBy[name] ?? [] {
                waitingOn[dependent]! -= 1
                if waitingOn[dependent] == 0 { ready.append(dependent) }
            }
        }
        if order.count < waitingOn.count {
            for name in waitingOn.filter({ $0.value > 0 }).map(\.key).sorted() {
                errors.append("Cannot spread fragment \"\(name)\" within itself.")
            }
            order = []
        }

        // Per operation: fragments reached, variables used (through fragments too).
        var fragmentVariables: [String: Set<String>] = [:]
        for name in order {
            var used = ownVariables[name] ?? []
            for spread in spreads[name] ?? [] { used.formUnion(fragmentVariables[spread] ?? []) }
            fragmentVariables[name] = used
        }
        var reachedFragments: Set<String> = []
        for operation in document.operations {
            var direct: [String] = []
            var used: Set<String> = []
            Self.collectVariables(operation.directives, into: &used)
            Self.collect(operation.selections, spreads: &direct, variables: &used)
            for name in direct where fragments[name] == nil { unknown.insert(name) }
            var stack = direct.filter { fragments[$0] != nil }
            var reached: Set<String> = []
            while let name = stack.popLast() {
                guard reached.insert(name).inserted else { continue }
                stack.append(contentsOf: (spreads[name] ?? []).filter { fragments[$0] != nil })
            }
            reachedFragments.formUnion(reached)

            var defined: Set<String> = []
            for variable in operation.variables where !defined.insert(variable.name).inserted {
                errors.append("There can be only one variable named \"$\(variable.name)\".")
            }
            if !order.isEmpty || fragments.isEmpty {
                for name in reached { used.formUnion(fragmentVariables[name] ?? []) }
            }
            let label = operation.name.map { " by operation \"\($0)\"" } ?? ""
            for name in used.subtracting(defined).sorted() {
                errors.append("Variable \"$\(name)\" is not defined\(label).")
            }
            let inLabel = operation.name.map { " in operation \"\($0)\"" } ?? ""
            for variable in operation.variables where !used.contains(variable.name) {
                errors.append("Variable \"$\(variable.name)\" is never used\(inLabel).")
            }
        }
        for name in unknown.sorted() { errors.append("Unknown fragment \"\(name)\".") }
        for fragment in document.fragments where !reachedFragments.contains(fragment.name) && fragments[fragment.name] == fragment {
            errors.append("Fragment \"\(fragment.name)\" is never used.")
        }
        self.errors = errors
        self.fragmentOrder = order
    }

    /// Fragment names spread in `selections` (in order, nested ones included) and the
    /// variables they use, in one walk.
    static func collect(_ selections: [Selection], spreads names: inout [String], variables: inout Set<String>) {
        for selection in selections {
            switch selection {
            case .field(let field):
                for argument in field.arguments { collectVariables(argument.value, into: &variables) }
                collectVariables(field.directives, into: &variables)
                if let children = field.selections { collect(children, spreads: &names, variables: &variables) }
            case .fragmentSpread(let spread):
                names.append(spread.name)
                collectVariables(spread.directives, into: &variables)
            case .inlineFragment(let inline):
                collectVariables(inline.directives, into: &variables)
                collect(inline.selections, spreads: &names, variables: &variables)
            }
        }
    }

    static func collectVariables(_ directives: [Directive], into names: inout Set<String>) {
        for directive in directives { for argument in directive.arguments { collectVariables(argument.value, into: &names) } }
    }

    static func collectVariables(_ value: Value, into names: inout Set<String>) {
        switch value {
        case .variable(let name): names.insert(name)
        case .list(let items): for item in items { collectVariables(item, into: &names) }
        case .object(let fields): for field in fields { collectVariables(field.value, into: &names) }
        default: break
        }
    }
}
