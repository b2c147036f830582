public import RampartCore

/// `shield:` in rampart.yml. So far: IP rules and security headers.
public struct ShieldConfiguration: Codable, Sendable, Equatable {
    public var ipRules: IPRulesConfiguration
    /// Headers for every response; routes may override single fields.
    public var securityHeaders: SecurityHeadersConfiguration?

    public init(ipRules: IPRulesConfiguration = .init(), securityHeaders: SecurityHeadersConfiguration? = nil) {
        self.ipRules = ipRules
        self.securityHeaders = securityHeaders
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case ipRules, securityHeaders }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        ipRules = try c.decodeIfPresent(IPRulesConfiguration.self, forKey: .ipRules) ?? .init()
        securityHeaders = try c.decodeIfPresent(SecurityHeadersConfiguration.self, forKey: .securityHeaders)
    }

    public func validate(at path: String) -> [ConfigurationIssue] {
        securityHeaders?.validate(at: "\(path).securityHeaders") ?? []
    }
}

/// Addresses and ranges always let in (`allow`, also `THREAT_IP_WHITELIST`) and refused
/// (`deny`); the longest matching prefix decides.
public struct IPRulesConfiguration: Codable, Sendable, Equatable {
    public var allow: [CIDRBlock]
    public var deny: [CIDRBlock]

    public init(allow: [CIDRBlock] = [], deny: [CIDRBlock] = []) {
        self.allow = allow
        self.deny = deny
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case allow, deny }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        allow = try c.decodeIfPresent([CIDRBlock].self, forKey: .allow) ?? []
        deny = try c.decodeIfPresent([CIDRBlock].self, forKey: .deny) ?? []
    }

    public var rules: IPRules { IPRules(allow: allow, deny: deny) }
}
