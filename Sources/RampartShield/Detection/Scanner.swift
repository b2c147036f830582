/// Scanners and attack tools, by the names they put in User-Agent and the paths they probe
/// that no application of ours serves.
public struct ScannerDetector: ThreatDetector {
    public let kind = ThreatKind.scanner
    /// A tool's User-Agent may be its bare name.
    public let inspectsPlainText = true

    public init() {}

    public func inspect(_ value: InspectedValue, into findings: inout [Finding]) {
        switch value.location.part {
        case .header where value.location.name == "user-agent":
            if let match = Self.agents.firstMatch(in: value.normalized) {
                report("scanner.agent.\(Self.agents.needles[match.needle])", .critical, value, into: &findings)
            }
        case .path:
            if let match = Self.probes.firstMatch(in: value.normalized) {
                report("scanner.probe.\(Self.probes.needles[match.needle])", .warning, value, into: &findings)
            }
        default:
            break
        }
    }

    static let agents = KeywordMatcher([
        "sqlmap", "nikto", "nmap", "nessus", "openvas", "havij", "arachni", "acunetix", "netsparker", "w3af", "zgrab", "nuclei", "masscan", "zmap",
        "wpscan", "joomscan", "dirbuster", "gobuster", "dirb/", "ffuf", "feroxbuster", "wfuzz", "burp", "owasp zap", "zaproxy", "appscan",
        "webinspect", "qualys", "sqlninja", "bsqlbf", "pangolin", "jaascois", "grendel-scan", "paros", "webshag", "skipfish", "whatweb", "httprint",
        "commix", "xsser", "jbrofuzz", "fimap", "brutus", "hydra", "metasploit", "morfeus", "muieblackcat", "zmeu", "nmap scripting engine",
        "censysinspect", "interact.sh", "dotdotpwn", "vega/", "webvulnscan", "mysqloit", "sf/", "struts-pwn", "gospider", "hakrawler", "katana/", "xray/",
        "jorgee", "absinthe", "blackwidow", "webreaper", "leakix", "l9explore", "l9tcpid", "fuzz faster", "crowdstrike", "detectify", "probely", "tenable",
    ])

    static let probes = KeywordMatcher([
        "phpmyadmin", "/pma/", "wp-login.php", "xmlrpc.php", "/cgi-bin/", "/boaform/", "/hnap1", "/manager/html", "/solr/admin", "/jmx-console",
        "/web-console", "/invoker/", "/axis2", "/vendor/phpunit", "eval-stdin.php", "/shell.php", "/cmd.php", "/c99.php", "/r57.php", "/.git/", "/.svn/",
        "/server-status", "/etc/passwd", "/actuator/env", "/actuator/heapdump", "/console/login", "/_ignition/", "/telescope/requests", "/owa/auth",
    ])
}
