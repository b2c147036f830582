public import RampartCore

/// `shield:` in rampart.yml: IP rules, temporary blocks, threat detection, behavioural
/// defences (brute force, floods), CSRF, security headers and CSP reports.
public struct ShieldConfiguration: Codable, Sendable, Equatable {
    public var ipRules: IPRulesConfiguration
    /// Headers for every response; routes may override single fields.
    public var securityHeaders: SecurityHeadersConfiguration?
    /// Where temporary blocks and threat events are kept.
    public var blocks: BlocksConfiguration
    /// CSRF checks for state-changing, cookie-authenticated requests; off when absent.
    public var csrf: CSRFConfiguration?
    /// Threat detection on every request; on, blocking, unless configured otherwise.
    public var waf: WAFConfiguration
    /// Recording, automatic blocks and alerts.
    public var response: ThreatResponseConfiguration
    /// Login lockouts; off when absent.
    public var bruteForce: BruteForceConfiguration?
    /// Per-client floods and global spikes and drops; on by default.
    public var flood: FloodConfiguration
    /// The CSP violation report endpoint; off when absent.
    public var cspReports: CSPReportsConfiguration?

    public init(ipRules: IPRulesConfiguration = .init(), securityHeaders: SecurityHeadersConfiguration? = nil,
                blocks: BlocksConfiguration = .init(), csrf: CSRFConfiguration? = nil, waf: WAFConfiguration = .init(),
                response: ThreatResponseConfiguration = .init(), bruteForce: BruteForceConfiguration? = nil, flood: FloodConfiguration = .init(),
                cspReports: CSPReportsConfiguration? = nil) {
        self.ipRules = ipRules
        self.securityHeaders = securityHeaders
        self.blocks = blocks
        self.csrf = csrf
        self.waf = waf
        self.response = response
        self.bruteForce = bruteForce
        self.flood = flood
        self.cspReports = cspReports
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case ipRules, securityHeaders, blocks, csrf, waf, response, bruteForce, flood, cspReports }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        ipRules = try c.decodeIfPresent(IPRulesConfiguration.self, forKey: .ipRules) ?? .init()
        securityHeaders = try c.decodeIfPresent(SecurityHeadersConfiguration.self, forKey: .securityHeaders)
        blocks = try c.decodeIfPresent(BlocksConfiguration.self, forKey: .blocks) ?? .init()
        csrf = try c.decodeIfPresent(CSRFConfiguration.self, forKey: .csrf)
        waf = try c.decodeIfPresent(WAFConfiguration.self, forKey: .waf) ?? .init()
        response = try c.decodeIfPresent(ThreatResponseConfiguration.self, forKey: .response) ?? .init()
        bruteForce = try c.decodeIfPresent(BruteForceConfiguration.self, forKey: .bruteForce)
        flood = try c.decodeIfPresent(FloodConfiguration.self, forKey: .flood) ?? .init()
        cspReports = try c.decodeIfPresent(CSPReportsConfiguration.self, forKey: .cspReports)
    }

    public func validate(at path: String) -> [ConfigurationIssue] {
        (securityHeaders?.validate(at: "\(path).securityHeaders") ?? []) + (csrf?.validate(at: "\(path).csrf") ?? [])
            + waf.validate(at: "\(path).waf") + response.validate(at: "\(path).response")
            + (bruteForce?.validate(at: "\(path).bruteForce") ?? []) + flood.validate(at: "\(path).flood")
            + (cspReports?.validate(at: "\(path).cspReports") ?? [])
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

/// `shield.blocks`: the SQLite file temporary blocks and threat events live in. A configuration file that does
/// not name one gets `rampart.sqlite` beside it; a configuration built in code (the demo,
/// tests) keeps blocks in memory.
public struct BlocksConfiguration: Codable, Sendable, Equatable {
    public var database: String?

    public init(database: String? = nil) { self.database = database }

    enum CodingKeys: String, CodingKey, CaseIterable { case database }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        database = try c.decodeIfPresent(String.self, forKey: .database)
    }
}
