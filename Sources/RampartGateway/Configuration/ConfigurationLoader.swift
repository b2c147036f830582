public import RampartCore
import RampartEvents
import RampartBalancing
import RampartShield
import Yams

/// Reads `rampart.yml`: YAML text -> tree -> environment overrides -> typed values ->
/// validation. Every stage reports problems as `path: problem`; nothing half-valid comes out.
public struct ConfigurationLoader: Sendable {
    /// The environment consulted for overrides (the process's by default; tests pass their own).
    public let environment: [String: String]

    public init(environment: [String: String]) { self.environment = environment }

    /// The variables understood, for `rampart check` and the docs.
    public static let overrides: [(variable: String, path: String)] = [
        ("LB_STRATEGY", "pools.*.strategy"),
        ("LB_HEALTH_CHECK_INTERVAL", "pools.*.healthCheck.interval"),
        ("RAMPART_ADMIN_TOKEN", "listeners.admin.token"),
        ("RAMPART_LOG_LEVEL", "log.level"),
        ("THREAT_IP_WHITELIST", "shield.ipRules.allow (added to the file's list)"),
        ("THREAT_DETECTION_ENABLED", "shield.waf.mode (false: off; true: the file's mode, or block)"),
        ("THREAT_ANOMALY_THRESHOLD", "shield.flood.threshold"),
        ("THREAT_BLOCK_ON_CRITICAL", "shield.response.blockOnCritical"),
        ("THREAT_ALERT_ON_HIGH", "shield.response.alertOnHigh"),
        ("RATE_LIMIT_BASE", "limits.base (turns rate limiting on)"),
        ("RATE_LIMIT_WINDOW", "limits.window (turns rate limiting on)"),
        ("RATE_LIMIT_MIN", "limits.min (turns rate limiting on)"),
        ("RATE_LIMIT_MAX", "limits.max (turns rate limiting on)"),
        ("RATE_LIMIT_ADAPTIVE", "limits.adaptive (turns rate limiting on)"),
        ("RATE_LIMIT_REPLICAS", "limits.shared.replicas"),
        ("REDIS_URL", "redis.url (shares rate limits through Redis)"),
        ("GRAPHQL_MAX_DEPTH", "routes.*.graphql.maxDepth (every GraphQL route)"),
        ("GRAPHQL_MAX_COMPLEXITY", "routes.*.graphql.maxCost (every GraphQL route)"),
        ("GRAPHQL_CACHE_ENABLED", "routes.*.graphql.cache.enabled (every GraphQL route)"),
        ("GRAPHQL_CACHE_TTL", "routes.*.graphql.cache.defaultTtl (every GraphQL route)"),
    ]

    /// Loads from a file on disk.
    public func load(path: String) throws(ConfigurationError) -> GatewayConfiguration {
        let text: String
        do {
            text = try readTextFile(path)
        } catch {
            throw ConfigurationError(issues: [ConfigurationIssue(path: "", "cannot read \(path): \(error)")])
        }
        var configuration = try load(yaml: text)
        // Blocks persist beside the configuration unless it says where.
        if configuration.shield.blocks.database == nil {
            let directory = path.lastIndex(of: "/").map { String(path[...$0]) } ?? "./"
            configuration.shield.blocks.database = directory + "rampart.sqlite"
        }
        return configuration
    }

    /// Loads from YAML text.
    public func load(yaml: String) throws(ConfigurationError) -> GatewayConfiguration {
        var node: Node
        do {
            node = try Yams.compose(yaml: yaml) ?? Node.mapping(.init([]))
        } catch {
            throw ConfigurationError(issues: [ConfigurationIssue(path: "", "not valid YAML: \(error)")])
        }
        guard node.mapping != nil else {
            throw ConfigurationError(issues: [ConfigurationIssue(path: "", "the top level must be a mapping of sections (listeners, pools, routes, ...)")])
        }
        var issues = applyOverrides(to: &node)
        let collector = IssueCollector()
        do {
            var configuration = try YAMLDecoder().decode(GatewayConfiguration.self, from: node,
                                                         userInfo: [.configurationIssues: collector])
            issues += collector.issues
            issues += resolveSecrets(in: &configuration)
            issues += configuration.validate()
            if !issues.isEmpty { throw ConfigurationError(issues: issues) }
            return configuration
        } catch let error as ConfigurationError {
            throw error
        } catch let error as DecodingError {
            throw ConfigurationError(issues: issues + collector.issues + [Self.issue(from: error)])
        } catch {
            throw ConfigurationError(issues: issues + collector.issues + [ConfigurationIssue(path: "", "\(error)")])
        }
    }

    static func issue(from error: DecodingError) -> ConfigurationIssue {
        switch error {
        case .keyNotFound(let key, let context):
            return ConfigurationIssue(path: configurationPath(context.codingPath + [key]), "is required")
        case .typeMismatch(let type, let context):
            return ConfigurationIssue(path: configurationPath(context.codingPath), "expected \(describe(type))")
        case .valueNotFound(let type, let context):
            return ConfigurationIssue(path: configurationPath(context.codingPath), "expected \(describe(type)), found nothing")
        case .dataCorrupted(let context):
            return ConfigurationIssue(path: configurationPath(context.codingPath), context.debugDescription)
        @unknown default:
            return ConfigurationIssue(path: "", "\(error)")
        }
    }

    static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type: return "an integer"
        case is Double.Type: return "a number"
        case is Bool.Type: return "true or false"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array") { return "a list" }
            if name.hasPrefix("Dictionary") { return "a mapping" }
            return "a mapping (\(name))"
        }
    }

    /// Reads secrets that the file names by environment variable (`secretEnv`).
    func resolveSecrets(in configuration: inout GatewayConfiguration) -> [ConfigurationIssue] {
        guard var events = configuration.events else { return [] }
        var issues: [ConfigurationIssue] = []
        for index in events.sinks.indices {
            // Both given is reported by validation.
            guard let variable = events.sinks[index].secretEnv, events.sinks[index].secret == nil else { continue }
            if let value = environment[variable], !value.isEmpty {
                events.sinks[index].secret = value
                events.sinks[index].secretEnv = nil
            } else {
                issues.append(.init(path: "events.sinks[\(index)].secretEnv", "names \(variable), which is not set in the environment"))
            }
        }
        configuration.events = events
        return issues
    }

    /// Applies environment overrides to the tree before typed decoding, so their values are
    /// checked like the file's; problems name both the variable and the path.
    func applyOverrides(to node: inout Node) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        let poolNames = node["pools"]?.mapping?.keys.compactMap(\.string) ?? []
        if let strategy = environment["LB_STRATEGY"] {
            if (try? BalancingStrategy.simple(named: strategy, codingPath: [])) == nil {
                issues.append(.init(path: "LB_STRATEGY (pools.*.strategy)",
                                    "\"\(strategy)\" is not one of round_robin, weighted_round_robin, least_connections, peak_ewma"))
            } else {
                for pool in poolNames { node["pools"]?[pool]?["strategy"] = Node(strategy) }
            }
        }
        if let interval = environment["LB_HEALTH_CHECK_INTERVAL"] {
            if ConfigDuration(parsing: interval) == nil {
                issues.append(.init(path: "LB_HEALTH_CHECK_INTERVAL (pools.*.healthCheck.interval)",
                                    "\"\(interval)\" is not a duration (write it with a unit: 250ms, 5s, 1m)"))
            } else {
                for pool in poolNames {
                    if node["pools"]?[pool]?["healthCheck"]?.mapping == nil {
                        node["pools"]?[pool]?["healthCheck"] = Node([(Node("interval"), Node(interval))])
                    } else {
                        node["pools"]?[pool]?["healthCheck"]?["interval"] = Node(interval)
                    }
                }
            }
        }
        if let token = environment["RAMPART_ADMIN_TOKEN"], !token.isEmpty {
            ensureMapping(&node, "listeners")
            ensureMapping(&node["listeners"]!, "admin")
            node["listeners"]?["admin"]?["token"] = Node(token)
        }
        if let level = environment["RAMPART_LOG_LEVEL"], !level.isEmpty {
            ensureMapping(&node, "log")
            node["log"]?["level"] = Node(level)
        }
        if let list = environment["THREAT_IP_WHITELIST"], !list.isEmpty {
            let entries = list.split(separator: ",").map { String($0.trimmingASCIIWhitespace()) }.filter { !$0.isEmpty }
            let bad = entries.filter { CIDRBlock($0) == nil }
            if !bad.isEmpty {
                issues.append(.init(path: "THREAT_IP_WHITELIST (shield.ipRules.allow)",
                                    bad.map { "\"\($0)\"" }.joined(separator: ", ") + " is not an IP address or CIDR range"))
            } else {
                ensureMapping(&node, "shield")
                ensureMapping(&node["shield"]!, "ipRules")
                let existing = node["shield"]?["ipRules"]?["allow"]?.sequence.map(Array.init) ?? []
                node["shield"]?["ipRules"]?["allow"] = Node(existing + entries.map { Node($0) })
            }
        }
        if let text = environment["THREAT_DETECTION_ENABLED"], !text.isEmpty {
            switch Self.boolean(text) {
            case false?:
                setShield(&node, ["waf", "mode"], Node("off"))
            case true?:
                if node["shield"]?["waf"]?["mode"]?.string == "off" { setShield(&node, ["waf", "mode"], Node("block")) }
            case nil:
                issues.append(.init(path: "THREAT_DETECTION_ENABLED (shield.waf.mode)", "\"\(text)\" is not true or false"))
            }
        }
        if let text = environment["THREAT_ANOMALY_THRESHOLD"], !text.isEmpty {
            if let value = Double(text), value > 0 {
                setShield(&node, ["flood", "threshold"], Node(text))
            } else {
                issues.append(.init(path: "THREAT_ANOMALY_THRESHOLD (shield.flood.threshold)", "\"\(text)\" is not a positive number of deviations"))
            }
        }
        for (variable, key) in [("THREAT_BLOCK_ON_CRITICAL", "blockOnCritical"), ("THREAT_ALERT_ON_HIGH", "alertOnHigh")] {
            guard let text = environment[variable], !text.isEmpty else { continue }
            if let value = Self.boolean(text) {
                setShield(&node, ["response", key], Node(value ? "true" : "false"))
            } else {
                issues.append(.init(path: "\(variable) (shield.response.\(key))", "\"\(text)\" is not true or false"))
            }
        }
        for (variable, key) in [("RATE_LIMIT_BASE", "base"), ("RATE_LIMIT_MIN", "min"), ("RATE_LIMIT_MAX", "max")] {
            guard let text = environment[variable], !text.isEmpty else { continue }
            if let value = Int(text.trimmingASCIIWhitespace()), value >= 1 {
                setLimits(&node, key, Node(String(value)))
            } else {
                issues.append(.init(path: "\(variable) (limits.\(key))", "\"\(text)\" is not a whole number of requests, at least 1"))
            }
        }
        if let text = environment["RATE_LIMIT_WINDOW"], !text.isEmpty {
            if let window = ConfigDuration(parsing: text), window.duration > .zero {
                setLimits(&node, "window", Node(text))
            } else {
                issues.append(.init(path: "RATE_LIMIT_WINDOW (limits.window)", "\"\(text)\" is not a duration (write it with a unit: 1s, 1m, 1h)"))
            }
        }
        if let text = environment["RATE_LIMIT_ADAPTIVE"], !text.isEmpty {
            if let value = Self.boolean(text) {
                setLimits(&node, "adaptive", Node(value ? "true" : "false"))
            } else {
                issues.append(.init(path: "RATE_LIMIT_ADAPTIVE (limits.adaptive)", "\"\(text)\" is not true or false"))
            }
        }
        if let text = environment["RATE_LIMIT_REPLICAS"], !text.isEmpty {
            if let value = Int(text.trimmingASCIIWhitespace()), value >= 1 {
                setLimits(&node, "shared", Node(String(value)), inside: "replicas")
            } else {
                issues.append(.init(path: "RATE_LIMIT_REPLICAS (limits.shared.replicas)", "\"\(text)\" is not a whole number of replicas, at least 1"))
            }
        }
        for (variable, key) in [("GRAPHQL_MAX_DEPTH", "maxDepth"), ("GRAPHQL_MAX_COMPLEXITY", "maxCost")] {
            guard let text = environment[variable]?.trimmingASCIIWhitespace(), !text.isEmpty else { continue }
            guard text == "off" || (Int(text).map { $0 >= 0 } ?? false) else {
                issues.append(.init(path: "\(variable) (routes.*.graphql.\(key))", "\"\(text)\" is not a whole number or off"))
                continue
            }
            forEachGraphQLRoute(&node) { $0[key] = Node(String(text)) }
        }
        // The cache switch and lifetime: a route without a cache section gets one.
        var cacheSettings: [(String, Node)] = []
        if let text = environment["GRAPHQL_CACHE_ENABLED"].map({ String($0.trimmingASCIIWhitespace()) }), !text.isEmpty {
            if let value = Self.boolean(text) {
                cacheSettings.append(("enabled", Node(value ? "true" : "false")))
            } else {
                issues.append(.init(path: "GRAPHQL_CACHE_ENABLED (routes.*.graphql.cache.enabled)", "\"\(text)\" is not true or false"))
            }
        }
        if let text = environment["GRAPHQL_CACHE_TTL"].map({ String($0.trimmingASCIIWhitespace()) }), !text.isEmpty {
            // A bare number is seconds here, as such variables are usually written.
            let written = Int(text) != nil ? text + "s" : text
            if let ttl = ConfigDuration(parsing: written), ttl.seconds >= 1 {
                cacheSettings.append(("defaultTtl", Node(written)))
            } else {
                issues.append(.init(path: "GRAPHQL_CACHE_TTL (routes.*.graphql.cache.defaultTtl)", "\"\(text)\" is not a duration of at least 1s (60, 60s, 5m)"))
            }
        }
        if !cacheSettings.isEmpty {
            forEachGraphQLRoute(&node) { graphql in
                ensureMapping(&graphql, "cache")
                for (key, value) in cacheSettings { graphql["cache"]?[key] = value }
            }
        }
        if let text = environment["REDIS_URL"], !text.isEmpty {
            ensureMapping(&node, "redis")
            node["redis"]?["url"] = Node(text)
        }
        return issues
    }

    /// Changes the `graphql` section of every route that has one.
    private func forEachGraphQLRoute(_ node: inout Node, _ change: (inout Node) -> Void) {
        guard var routes = node["routes"]?.sequence else { return }
        for index in routes.indices where routes[index]["graphql"]?.mapping != nil { change(&routes[index]["graphql"]!) }
        node["routes"] = Node.sequence(routes)
    }

    /// Sets `limits.<key>.<inner>`, creating both mappings.
    private func setLimits(_ node: inout Node, _ key: String, _ value: Node, inside inner: String) {
        ensureMapping(&node, "limits")
        ensureMapping(&node["limits"]!, key)
        node["limits"]?[key]?[inner] = value
    }

    /// Sets `limits.<key>`, creating `limits` (which turns rate limiting on).
    private func setLimits(_ node: inout Node, _ key: String, _ value: Node) {
        ensureMapping(&node, "limits")
        node["limits"]?[key] = value
    }

    /// `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, as environment variables are written.
    static func boolean(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "1", "yes", "on": true
        case "false", "0", "no", "off": false
        default: nil
        }
    }

    /// Sets `shield.<keys>` to `value`, creating the mappings on the way.
    private func setShield(_ node: inout Node, _ keys: [String], _ value: Node) {
        ensureMapping(&node, "shield")
        ensureMapping(&node["shield"]!, keys[0])
        node["shield"]?[keys[0]]?[keys[1]] = value
    }

    private func ensureMapping(_ node: inout Node, _ key: String) {
        if node[key]?.mapping == nil { node[key] = Node([(Node, Node)]()) }
    }
}

func readTextFile(_ path: String) throws -> String {
    try FileText.read(path)
}
