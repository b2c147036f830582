#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import RampartCore
public import RampartStore
import Synchronization

/// `shield.cspReports`: an endpoint on the traffic listener where browsers report
/// Content-Security-Policy violations, in the CSP Level 2 form (`application/csp-report`)
/// and the Reporting API's (`application/reports+json`). Point `report-uri` or
/// `report-to` at it.
public struct CSPReportsConfiguration: Codable, Sendable, Equatable {
    public var path: String
    /// Larger bodies are refused with 413.
    public var maxBytes: ByteCount
    /// Reports accepted per client address per minute; more get 429.
    public var perClientPerMinute: Int

    public init(path: String = "/csp-report", maxBytes: ByteCount = .kibibytes(16), perClientPerMinute: Int = 30) {
        self.path = path
        self.maxBytes = maxBytes
        self.perClientPerMinute = perClientPerMinute
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case path, maxBytes, perClientPerMinute }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = CSPReportsConfiguration()
        path = try c.decodeIfPresent(String.self, forKey: .path) ?? d.path
        maxBytes = try c.decodeIfPresent(ByteCount.self, forKey: .maxBytes) ?? d.maxBytes
        perClientPerMinute = try c.decodeIfPresent(Int.self, forKey: .perClientPerMinute) ?? d.perClientPerMinute
    }

    public func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        if !self.path.hasPrefix("/") || self.path.contains("?") || self.path.contains("#") {
            issues.append(.init(path: "\(path).path", "must be an absolute path without query, got \"\(self.path)\""))
        }
        if maxBytes.bytes < 256 || maxBytes.bytes > 1 << 20 { issues.append(.init(path: "\(path).maxBytes", "must be between 256B and 1MiB, got \(maxBytes)")) }
        if perClientPerMinute < 1 { issues.append(.init(path: "\(path).perClientPerMinute", "must be at least 1, got \(perClientPerMinute)")) }
        return issues
    }
}

/// Reads, validates and rate-limits CSP violation reports, turning each into a threat event.
/// URLs keep their scheme, host and path only: queries and fragments may carry personal data.
public final class CSPReportIntake: Sendable {
    /// Why a report body was refused; `status` is the HTTP status to answer with.
    public struct Refusal: Error, Sendable, Equatable {
        public let status: Int
        public let error: String
        public let message: String
    }

    /// At most this many reports are taken from one Reporting API body.
    public static let reportsPerBody = 100
    /// Strings in a report are cut to this many characters.
    public static let fieldLimit = 512

    private let counts = Mutex<(window: Int64, perClient: [IPAddress: Int])>((0, [:]))
    private let time: any TimeSource

    public init(time: any TimeSource) { self.time = time }

    /// The events in `body`, or why it was refused. Counts toward the client's per-minute
    /// allowance whether or not it is valid.
    public func receive(_ body: [UInt8], contentType: String?, client: IPAddress?, configuration: CSPReportsConfiguration,
                        at wallClock: Double) -> Result<[ThreatEvent], Refusal> {
        if let client, !allow(client, perMinute: configuration.perClientPerMinute) {
            return .failure(Refusal(status: 429, error: "rate_limited", message: "too many reports from this address; try again in a minute"))
        }
        guard body.count <= configuration.maxBytes.bytes else {
            return .failure(Refusal(status: 413, error: "body_too_large", message: "a report body may be at most \(configuration.maxBytes)"))
        }
        let type = contentType?.split(separator: ";").first.map { String($0.trimmingASCIIWhitespace()).lowercased() } ?? ""
        let reports: [Violation]
        switch type {
        case "application/csp-report", "application/json":
            guard let legacy = try? JSONDecoder().decode(LegacyBody.self, from: Data(body)) else {
                return .failure(Refusal(status: 400, error: "bad_report", message: "expected {\"csp-report\": {...}} with document-uri and a directive"))
            }
            reports = [legacy.report]
        case "application/reports+json":
            guard let list = try? JSONDecoder().decode([ReportingEntry].self, from: Data(body)) else {
                return .failure(Refusal(status: 400, error: "bad_report", message: "expected a JSON array of reports with type and body"))
            }
            reports = list.prefix(Self.reportsPerBody).compactMap { $0.type == "csp-violation" ? $0.body : nil }
        default:
            return .failure(Refusal(status: 415, error: "unsupported_media_type",
                                    message: "send application/csp-report or application/reports+json"))
        }
        var events: [ThreatEvent] = []
        for (index, report) in reports.enumerated() {
            guard let document = report.document.flatMap(Self.withoutQuery), document.hasPrefix("http") else {
                return .failure(Refusal(status: 400, error: "bad_report", message: "report \(index): the document URL is missing or not http(s)"))
            }
            guard let directive = report.directive?.split(separator: " ").first.map(String.init), !directive.isEmpty,
                  directive.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || ($0 >= 0x61 && $0 <= 0x7A) }) else {
                return .failure(Refusal(status: 400, error: "bad_report", message: "report \(index): the violated directive is missing or malformed"))
            }
            var detail = "blocked \(report.blocked.flatMap(Self.withoutQuery) ?? "inline")"
            if let source = report.sourceFile.flatMap(Self.withoutQuery) { detail += " at \(source):\(report.line ?? 0)" }
            detail += "; \(report.disposition ?? "enforce")"
            events.append(ThreatEvent(time: wallClock, client: client?.description, kind: "csp_violation", rule: String(directive.prefix(64)),
                                      location: document, severity: ThreatSeverity.notice.name, action: "reported", detail: detail))
        }
        if events.isEmpty {
            return .failure(Refusal(status: 400, error: "bad_report", message: "no csp-violation report in the body"))
        }
        return .success(events)
    }

    private func allow(_ client: IPAddress, perMinute limit: Int) -> Bool {
        let minute = time.now().nanoseconds / 60_000_000_000
        return counts.withLock { c in
            if c.window != minute { c = (minute, [:]) }
            let used = c.perClient[client, default: 0]
            guard used < limit, c.perClient.count < 100_000 || used > 0 else { return false }
            c.perClient[client] = used + 1
            return true
        }
    }

    /// Scheme, host and path of a URL (cut to `fieldLimit`); other values (`inline`, `eval`)
    /// as they are.
    static func withoutQuery(_ text: String) -> String? {
        guard !text.isEmpty else { return nil }
        let end = text.firstIndex { $0 == "?" || $0 == "#" } ?? text.endIndex
        return String(text[..<end].prefix(fieldLimit))
    }

    /// One violation, in either form: CSP Level 2 spells its fields `document-uri`,
    /// `blocked-uri`, ...; the Reporting API `documentURL`, `blockedURL`, ....
    struct Violation: Decodable {
        var document: String?
        var directive: String?
        var blocked: String?
        var sourceFile: String?
        var line: Int?
        var disposition: String?

        enum Keys: String, CodingKey {
            case documentURI = "document-uri", documentURL
            case effectiveDirective = "effective-directive", violatedDirective = "violated-directive", effectiveDirectiveCamel = "effectiveDirective"
            case blockedURI = "blocked-uri", blockedURL
            case sourceFile = "source-file", sourceFileCamel = "sourceFile"
            case lineNumber = "line-number", lineNumberCamel = "lineNumber"
            case disposition
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: Keys.self)
            func text(_ keys: Keys...) throws -> String? {
                for key in keys { if let value = try c.decodeIfPresent(String.self, forKey: key) { return value } }
                return nil
            }
            document = try text(.documentURI, .documentURL)
            directive = try text(.effectiveDirective, .violatedDirective, .effectiveDirectiveCamel)
            blocked = try text(.blockedURI, .blockedURL)
            sourceFile = try text(.sourceFile, .sourceFileCamel)
            line = try c.decodeIfPresent(Int.self, forKey: .lineNumber) ?? c.decodeIfPresent(Int.self, forKey: .lineNumberCamel)
            disposition = try text(.disposition)
        }
    }

    struct LegacyBody: Decodable {
        let report: Violation
        enum CodingKeys: String, CodingKey { case report = "csp-report" }
    }

    struct ReportingEntry: Decodable {
        let type: String
        let body: Violation?
    }
}
