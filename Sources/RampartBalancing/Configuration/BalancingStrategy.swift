public import RampartCore

/// How a pool chooses an instance. Written as a name (`strategy: least_connections`) or, for
/// strategies with settings, as an object with `type` (`strategy: {type: peak_ewma, decay: 10s}`).
public enum BalancingStrategy: Sendable, Equatable, Codable {
    /// Each available instance in turn.
    case roundRobin
    /// Nginx's smooth weighted round-robin: shares follow weights, picks are interleaved.
    case smoothWeightedRoundRobin
    /// Fewest in-flight requests; ties are broken by two random choices.
    case leastConnections
    /// Lowest peak-EWMA latency times in-flight requests, among two random choices
    /// (Finagle, Linkerd). `decay` is the EWMA time constant.
    case peakEWMA(decay: ConfigDuration)
    /// Instances of the client's nearest region, falling back region by region.
    case geographic(GeographicRouting)
    /// The same key always lands on the same instance while it is available; when one of N
    /// instances leaves, about 1/N of the keys move.
    case consistentHash(on: HashSource)

    /// Where consistent hashing takes its key from; nil for the other strategies.
    public var hashSource: HashSource? {
        if case .consistentHash(let source) = self { source } else { nil }
    }

    /// The names accepted in configuration and `LB_STRATEGY`.
    public static let names = ["round_robin", "weighted_round_robin", "least_connections", "peak_ewma", "geographic", "consistent_hash"]

    public var name: String {
        switch self {
        case .roundRobin: "round_robin"
        case .smoothWeightedRoundRobin: "weighted_round_robin"
        case .leastConnections: "least_connections"
        case .peakEWMA: "peak_ewma"
        case .geographic: "geographic"
        case .consistentHash: "consistent_hash"
        }
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case type, decay, regions, order, header, cookie, clientAddress }

    public init(from decoder: any Decoder) throws {
        if let single = try? decoder.singleValueContainer(), let name = try? single.decode(String.self) {
            self = try Self.simple(named: name, codingPath: decoder.codingPath)
            return
        }
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decode(String.self, forKey: .type)
        switch type {
        case "peak_ewma":
            self = .peakEWMA(decay: try c.decodeIfPresent(ConfigDuration.self, forKey: .decay) ?? .seconds(10))
        case "geographic":
            self = .geographic(GeographicRouting(
                regions: try c.decodeIfPresent([String: [String]].self, forKey: .regions) ?? [:],
                order: try c.decodeIfPresent([String].self, forKey: .order) ?? []))
        case "consistent_hash":
            let sources = [try c.decodeIfPresent(String.self, forKey: .header).map(HashSource.header),
                           try c.decodeIfPresent(String.self, forKey: .cookie).map(HashSource.cookie),
                           try c.decodeIfPresent(Bool.self, forKey: .clientAddress) == true ? HashSource.clientAddress : nil]
                .compactMap { $0 }
            guard sources.count == 1 else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                    debugDescription: "consistent_hash needs exactly one of header, cookie or clientAddress: true"))
            }
            self = .consistentHash(on: sources[0])
        default:
            self = try Self.simple(named: type, codingPath: decoder.codingPath + [CodingKeys.type])
        }
    }

    /// A strategy from its bare name, as `LB_STRATEGY` gives it.
    public static func simple(named name: String, codingPath: [any CodingKey]) throws -> BalancingStrategy {
        switch name {
        case "round_robin": return .roundRobin
        case "weighted_round_robin": return .smoothWeightedRoundRobin
        case "least_connections": return .leastConnections
        case "peak_ewma": return .peakEWMA(decay: .seconds(10))
        case "geographic", "consistent_hash":
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath,
                debugDescription: "\"\(name)\" needs settings: write it as {type: \(name), ...}"))
        default:
            var message = "unknown strategy \"\(name)\"; one of \(names.joined(separator: ", "))"
            if let guess = nearest(to: name, in: names) { message += " (did you mean \"\(guess)\"?)" }
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: message))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .type)
        switch self {
        case .roundRobin, .smoothWeightedRoundRobin, .leastConnections: break
        case .peakEWMA(let decay): try c.encode(decay, forKey: .decay)
        case .geographic(let geo):
            try c.encode(geo.regions, forKey: .regions)
            try c.encode(geo.order, forKey: .order)
        case .consistentHash(.header(let h)): try c.encode(h, forKey: .header)
        case .consistentHash(.cookie(let k)): try c.encode(k, forKey: .cookie)
        case .consistentHash(.clientAddress): try c.encode(true, forKey: .clientAddress)
        }
    }

    func validate(at path: String, instances: [InstanceConfiguration], instancesPath: String) -> [ConfigurationIssue] {
        switch self {
        case .peakEWMA(let decay) where decay.duration <= .zero:
            return [.init(path: configurationPath(path, "decay"), "must be positive")]
        case .geographic(let geo):
            var issues: [ConfigurationIssue] = []
            if geo.regions.isEmpty {
                issues.append(.init(path: configurationPath(path, "regions"), "name at least one region and its countries"))
            }
            for region in geo.order where geo.regions[region] == nil {
                issues.append(.init(path: configurationPath(path, "order"), "region \"\(region)\" is not in regions"))
            }
            for (i, instance) in instances.enumerated() {
                guard let region = instance.region else {
                    issues.append(.init(path: "\(instancesPath)[\(i)].region", "the geographic strategy needs a region on every instance"))
                    continue
                }
                if geo.regions[region] == nil {
                    issues.append(.init(path: "\(instancesPath)[\(i)].region", "region \"\(region)\" is not in strategy.regions"))
                }
            }
            return issues
        case .consistentHash(.header(let name)) where name.isEmpty,
             .consistentHash(.cookie(let name)) where name.isEmpty:
            return [.init(path: path, "the hash source name is empty")]
        default:
            return []
        }
    }
}

/// What consistent hashing keys on.
public enum HashSource: Sendable, Equatable {
    case header(String)
    case cookie(String)
    case clientAddress
}

/// Countries per region and the order regions are tried in when the nearest has no
/// available instance.
public struct GeographicRouting: Sendable, Equatable {
    /// Region name to ISO 3166 alpha-2 country codes.
    public var regions: [String: [String]]
    /// Fallback order; regions not listed come after, by name.
    public var order: [String]
    /// Country code (upper case) to region, derived from `regions`.
    public let regionOfCountry: [String: String]

    public init(regions: [String: [String]], order: [String]) {
        self.regions = regions
        self.order = order
        var map: [String: String] = [:]
        for (region, countries) in regions { for c in countries { map[c.uppercased()] = region } }
        self.regionOfCountry = map
    }

    /// Regions in the order they are tried for a client in `country`.
    public func preference(for country: String?) -> [String] {
        let fallback = order + regions.keys.sorted().filter { !order.contains($0) }
        guard let country, let home = regionOfCountry[country.uppercased()] else { return fallback }
        return [home] + fallback.filter { $0 != home }
    }
}
