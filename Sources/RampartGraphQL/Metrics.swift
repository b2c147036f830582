/// The structural metrics of one operation, with every fragment spread counted where it is
/// used (GRAPHQL-GUARD.md section 2). Computed with one summary per fragment, in an order
/// where a fragment comes after those it spreads, so time is linear in the document and no
/// chain of fragments can deepen the stack. Counts saturate at 2^53 - 1.
public struct OperationMetrics: Sendable, Equatable {
    public var depth = 0
    public var fields = 0
    public var aliases = 0
    public var directives = 0
    public var usesIntrospection = false
    /// Inside `__schema`/`__type` subtrees, the most `fields`/`inputFields`/`interfaces`/
    /// `possibleTypes` on one path.
    public var introspectionListDepth = 0

    public static let saturation = 9_007_199_254_740_991

    mutating func add(_ other: OperationMetrics) {
        depth = max(depth, other.depth)
        fields = Self.sum(fields, other.fields)
        aliases = Self.sum(aliases, other.aliases)
        directives = Self.sum(directives, other.directives)
        usesIntrospection = usesIntrospection || other.usesIntrospection
        introspectionListDepth = max(introspectionListDepth, other.introspectionListDepth)
    }

    static func sum(_ a: Int, _ b: Int) -> Int { min(a + b, saturation) }
}

/// Computes `OperationMetrics` for the operations of a structurally valid document.
public struct MetricsCalculator {
    static let introspectionListFields: Set<String> = ["fields", "inputFields", "interfaces", "possibleTypes"]

    let aliasExemptFields: Set<String>
    /// Per fragment: its selections summarized outside (index 0) and inside (index 1) an
    /// introspection subtree, its definition's directives included.
    private var fragments: [String: [OperationMetrics]] = [:]

    /// - Parameter fragmentOrder: from `StructuralValidation`: each fragment after those it spreads.
    public init(document: Document, fragmentOrder: [String], aliasExemptFields: Set<String> = ["__typename"]) {
        self.aliasExemptFields = aliasExemptFields
        let byName = Dictionary(document.fragments.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for name in fragmentOrder {
            guard let fragment = byName[name] else { continue }
            var summaries: [OperationMetrics] = []
            for inside in [false, true] {
                var summary = summarize(fragment.selections, insideIntrospection: inside)
                summary.directives = OperationMetrics.sum(summary.directives, fragment.directives.count)
                summaries.append(summary)
            }
            fragments[name] = summaries
        }
    }

    public func metrics(of operation: Operation) -> OperationMetrics {
        var metrics = summarize(operation.selections, insideIntrospection: false)
        var directives = operation.directives.count
        for variable in operation.variables { directives += variable.directives.count }
        metrics.directives = OperationMetrics.sum(metrics.directives, directives)
        return metrics
    }

    /// Depth here is of the selections themselves: a field adds one level to its children's.
    func summarize(_ selections: [Selection], insideIntrospection inside: Bool) -> OperationMetrics {
        var total = OperationMetrics()
        for selection in selections {
            switch selection {
            case .field(let field):
                let introspective = inside || field.name == "__schema" || field.name == "__type"
                var own = OperationMetrics()
                own.directives = field.directives.count
                if field.alias != nil, !aliasExemptFields.contains(field.name) { own.aliases = 1 }
                let children = field.selections.map { summarize($0, insideIntrospection: introspective) } ?? OperationMetrics()
                if introspective {
                    own.usesIntrospection = true
                    own.introspectionListDepth = (Self.introspectionListFields.contains(field.name) ? 1 : 0) + children.introspectionListDepth
                } else {
                    own.fields = 1
                    own.depth = 1 + children.depth
                }
                let depth = own.depth, listDepth = own.introspectionListDepth
                own.add(children)
                own.depth = depth
                own.introspectionListDepth = max(listDepth, children.introspectionListDepth)
                total.add(own)
            case .fragmentSpread(let spread):
                var own = OperationMetrics()
                own.directives = spread.directives.count
                if let summaries = fragments[spread.name] { own.add(summaries[inside ? 1 : 0]) }
                total.add(own)
            case .inlineFragment(let inline):
                var own = summarize(inline.selections, insideIntrospection: inside)
                own.directives = OperationMetrics.sum(own.directives, inline.directives.count)
                total.add(own)
            }
        }
        return total
    }
}
