public import HTTPTypes
public import RampartCore
import Synchronization

/// `shield.waf`: threat detection in the inspect phase.
public struct WAFConfiguration: Codable, Sendable, Equatable {
    public enum Mode: String, Codable, Sendable, Equatable {
        /// Refuse requests whose anomaly score reaches the threshold.
        case block
        /// Record findings, refuse nothing: for rolling out.
        case detect
        case off
    }

    public var mode: Mode
    /// The anomaly score (critical findings count 5, errors 4, warnings 3, notices 2) at which
    /// a request is refused.
    public var threshold: Int
    /// How much of a request body is inspected; the rest streams on unexamined (and counted).
    public var inspectBodyBytes: ByteCount
    /// Detectors turned off, by kind (`sql_injection`, `xss`, ...).
    public var disabled: [String]
    /// Header fields not inspected, besides the ones that never carry user input.
    public var skipHeaders: [String]
    /// Values never inspected, on every route: `query:q`, `json:$.post.body`, `header:x-*`.
    public var exclude: [String]

    public init(mode: Mode = .block, threshold: Int = 5, inspectBodyBytes: ByteCount = .kibibytes(64), disabled: [String] = [],
                skipHeaders: [String] = [], exclude: [String] = []) {
        self.mode = mode
        self.threshold = threshold
        self.inspectBodyBytes = inspectBodyBytes
        self.disabled = disabled
        self.skipHeaders = skipHeaders
        self.exclude = exclude
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case mode, threshold, inspectBodyBytes, disabled, skipHeaders, exclude }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = WAFConfiguration()
        mode = try c.decodeIfPresent(Mode.self, forKey: .mode) ?? d.mode
        threshold = try c.decodeIfPresent(Int.self, forKey: .threshold) ?? d.threshold
        inspectBodyBytes = try c.decodeIfPresent(ByteCount.self, forKey: .inspectBodyBytes) ?? d.inspectBodyBytes
        disabled = try c.decodeIfPresent([String].self, forKey: .disabled) ?? []
        skipHeaders = try c.decodeIfPresent([String].self, forKey: .skipHeaders) ?? []
        exclude = try c.decodeIfPresent([String].self, forKey: .exclude) ?? []
    }

    public func validate(at path: String) -> [ConfigurationIssue] {
        var issues: [ConfigurationIssue] = []
        if threshold < 1 { issues.append(.init(path: "\(path).threshold", "must be at least 1, got \(threshold)")) }
        for (index, name) in disabled.enumerated() where ThreatKind(rawValue: name) == nil {
            issues.append(.init(path: "\(path).disabled[\(index)]", "unknown detector \"\(name)\"; known: \(ThreatKind.allCases.map(\.rawValue).joined(separator: ", "))"))
        }
        issues += ExclusionList.validate(exclude, at: "\(path).exclude")
        return issues
    }
}

/// `routes[].waf`: a route's own mode and exclusions, over `shield.waf`.
public struct RouteWAFConfiguration: Codable, Sendable, Equatable {
    public var mode: WAFConfiguration.Mode?
    /// Values this route legitimately carries code or markup in: `json:$.question.body`.
    public var exclude: [String]

    public init(mode: WAFConfiguration.Mode? = nil, exclude: [String] = []) {
        self.mode = mode
        self.exclude = exclude
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case mode, exclude }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        mode = try c.decodeIfPresent(WAFConfiguration.Mode.self, forKey: .mode)
        exclude = try c.decodeIfPresent([String].self, forKey: .exclude) ?? []
    }

    public func validate(at path: String) -> [ConfigurationIssue] {
        ExclusionList.validate(exclude, at: "\(path).exclude")
    }
}

/// Locations excluded from inspection, written as `part:name` with `*` matching any run of
/// characters: `json:$.questions[*].text`, `form:content`, `cookie:*`. Header names match
/// in any case.
public struct ExclusionList: Sendable {
    private struct Pattern {
        let part: String
        let name: [Character]
    }

    private let patterns: [Pattern]

    public init(_ entries: [String]) {
        patterns = entries.compactMap { entry in
            let parts = entry.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { return nil }
            let part = String(parts[0])
            return Pattern(part: part, name: Array(part == InputLocation.Part.header.rawValue ? parts[1].lowercased() : String(parts[1])))
        }
    }

    static let parts = Set(["path", "query", "form", "multipart", "json", "xml", "body", "cookie", "header"])

    static func validate(_ entries: [String], at path: String) -> [ConfigurationIssue] {
        entries.enumerated().compactMap { index, entry in
            let parts = entry.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, Self.parts.contains(String(parts[0])) else {
                return .init(path: "\(path)[\(index)]", "write an exclusion as part:name with part one of \(Self.parts.sorted().joined(separator: ", ")), got \"\(entry)\"")
            }
            return nil
        }
    }

    public func excludes(_ location: InputLocation) -> Bool {
        guard !patterns.isEmpty else { return false }
        let name = Array(location.name)
        return patterns.contains { $0.part == location.part.rawValue && Self.glob($0.name[...], name[...]) }
    }

    private static func glob(_ pattern: ArraySlice<Character>, _ text: ArraySlice<Character>) -> Bool {
        guard let first = pattern.first else { return text.isEmpty }
        if first == "*" {
            let rest = pattern.dropFirst()
            var t = text
            while true {
                if glob(rest, t) { return true }
                guard !t.isEmpty else { return false }
                t = t.dropFirst()
            }
        }
        guard let head = text.first, head == first else { return false }
        return glob(pattern.dropFirst(), text.dropFirst())
    }
}

/// What inspection found in one request.
public struct InspectionReport: Sendable {
    public var findings: [Finding]
    /// The sum of the findings' severities (one per rule and location).
    public var score: Int

    /// The most severe finding, the one a refusal names.
    public var worst: Finding? { findings.max { $0.severity < $1.severity } }
}

/// Runs every detector over a request's values and adds up the anomaly score.
public struct ThreatInspector: Sendable {
    public let configuration: WAFConfiguration
    let detectors: [any ThreatDetector]
    let skipHeaders: Set<String>
    let globalExclusions: ExclusionList
    /// What was found in header and cookie values seen before.
    let verdicts = VerdictCache()

    public static func allDetectors() -> [any ThreatDetector] {
        [
            SQLInjectionDetector(), XSSDetector(), PathTraversalDetector(), CommandInjectionDetector(), RemoteInclusionDetector(),
            TemplateInjectionDetector(), PHPInjectionDetector(), JavaInjectionDetector(), JavaScriptInjectionDetector(),
            ProtocolAttackDetector(), SessionFixationDetector(), ScannerDetector(),
        ]
    }

    /// Header fields that carry no user-controlled text a detector could judge, or that the
    /// gateway handles itself.
    public static let defaultSkippedHeaders: Set<String> = [
        "host", "content-length", "content-type", "connection", "accept", "accept-encoding", "accept-language", "accept-charset",
        "authorization", "proxy-authorization", "cache-control", "pragma", "if-none-match", "if-match", "if-modified-since", "if-unmodified-since",
        "if-range", "upgrade-insecure-requests", "sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest", "sec-fetch-user", "sec-ch-ua",
        "sec-ch-ua-mobile", "sec-ch-ua-platform", "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol",
        "traceparent", "tracestate", "x-request-id", "te", "keep-alive", "upgrade", "dnt", "priority", "origin", "range", "transfer-encoding",
        "x-csrf-token", "content-encoding", "expect", "forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "via", "proxy-connection",
    ]

    public init(_ configuration: WAFConfiguration, detectors: [any ThreatDetector] = ThreatInspector.allDetectors()) {
        self.configuration = configuration
        let disabled = Set(configuration.disabled)
        self.detectors = detectors.filter { !disabled.contains($0.kind.rawValue) }
        self.skipHeaders = Self.defaultSkippedHeaders.union(configuration.skipHeaders.map { $0.lowercased() })
        self.globalExclusions = ExclusionList(configuration.exclude)
    }

    /// Inspects one request. `body` is the inspected prefix of the body, if any.
    public func inspect(_ request: HTTPRequest, body: [UInt8]?, exclusions: ExclusionList = ExclusionList([])) -> InspectionReport {
        let values = inputs(of: request, body: body, exclusions: exclusions)
        var findings: [Finding] = []
        // Header and cookie values come again and again (a browser's User-Agent, a session
        // cookie): what the per-value checks found in one is remembered, by location and bytes.
        var fresh: [InspectedValue] = []
        var toRemember: [InspectedValue] = []
        for value in values {
            if VerdictCache.holds(value) {
                if let known = verdicts.findings(for: value) {
                    findings += known
                    continue
                }
                toRemember.append(value)
            }
            fresh.append(value)
        }
        // What base64 text carries is inspected too, by every detector.
        var decoded: [InspectedValue] = []
        for value in fresh { decoded += Base64Text.decodings(of: value) ?? [] }
        for detector in detectors {
            detector.inspect(fresh, skippingPlain: !detector.inspectsPlainText, into: &findings)
            if !decoded.isEmpty { detector.inspect(decoded, skippingPlain: false, into: &findings) }
        }
        if !toRemember.isEmpty { verdicts.remember(toRemember, findings: findings) }
        // Checks across the whole request are never remembered: they depend on more than one value.
        for detector in detectors { detector.inspect(request: request, values: values, into: &findings) }
        // One rule counts once per location.
        var seen = Set<Finding>()
        findings = findings.filter { seen.insert($0).inserted }
        return InspectionReport(findings: findings, score: findings.reduce(0) { $0 + $1.severity.rawValue })
    }

    /// The values of a request the detectors read, normalized, in the order they are read.
    public func inputs(of request: HTTPRequest, body: [UInt8]?, exclusions: ExclusionList = ExclusionList([])) -> [InspectedValue] {
        let target = request.path ?? "/"
        let queryStart = target.firstIndex(of: "?")
        let path = target[..<(queryStart ?? target.endIndex)]
        let query = queryStart.map { target[target.index(after: $0)...] }
        return RequestInputs.values(path: path, query: query, headers: request.headerFields, body: body, skipHeaders: skipHeaders) { location in
            !globalExclusions.excludes(location) && !exclusions.excludes(location)
        }
    }

    /// Letters, digits, space, `-` and `_`: text only the word-reading detectors look at.
    public static let plain = ByteSet("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_")
}

/// The findings of header and cookie values already inspected, keyed by location and bytes:
/// the per-value checks are pure functions of those two, so a value seen before needs no
/// second look. Bounded: when full it starts afresh. One per inspector, so a reload (new
/// detectors, new settings) starts empty.
final class VerdictCache: Sendable {
    struct Key: Hashable {
        let location: InputLocation
        let bytes: [UInt8]

        /// The bytes hashed as one block: the synthesized conformance feeds them to the hasher
        /// one at a time.
        func hash(into hasher: inout Hasher) {
            hasher.combine(location)
            bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
        }
    }

    static let capacity = 4096
    /// Longer values are rarely repeated and costly to hash; they are inspected each time.
    static let maximumValueBytes = 1024

    private let table = Mutex<[Key: [Finding]]>([:])

    static func holds(_ value: InspectedValue) -> Bool {
        (value.location.part == .header || value.location.part == .cookie) && value.utf8.count <= maximumValueBytes
    }

    func findings(for value: InspectedValue) -> [Finding]? {
        let key = Key(location: value.location, bytes: value.utf8)
        return table.withLock { $0[key] }
    }

    /// Records each value's findings (those at its location), unless two values share a
    /// location (a repeated header), when what belongs to which cannot be told.
    func remember(_ values: [InspectedValue], findings: [Finding]) {
        var counts: [InputLocation: Int] = [:]
        for value in values { counts[value.location, default: 0] += 1 }
        let entries = values.filter { counts[$0.location] == 1 }.map { value in
            (Key(location: value.location, bytes: value.utf8), findings.filter { $0.location == value.location })
        }
        table.withLock { table in
            if table.count + entries.count > Self.capacity { table.removeAll(keepingCapacity: true) }
            for (key, found) in entries { table[key] = found }
        }
    }

    var count: Int { table.withLock { $0.count } }
}

/// Values that are base64 text: decoded (at each of the four alignments a fragment can
/// start at) so the detectors also see what they carry. Only decodings that are mostly
/// printable text are kept.
enum Base64Text {
    static func decodings(of value: InspectedValue) -> [InspectedValue]? {
        let utf8 = value.utf8
        guard utf8.count >= 8, utf8.count <= 65536 else { return nil }
        var upper = false, lower = false
        for b in utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): upper = true
            case UInt8(ascii: "a")...UInt8(ascii: "z"): lower = true
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "/"), UInt8(ascii: "="), UInt8(ascii: "-"), UInt8(ascii: "_"): break
            default: return nil
            }
        }
        guard upper, lower else { return nil }
        let raw = utf8
        var found: [InspectedValue] = []
        for phase in 0..<4 {
            // Mostly printable (nine bytes in ten): decoding stops once it cannot be.
            guard let decoded = decode(raw[...], phase: phase, nonPrintableAllowed: raw.count * 3 / 40), decoded.count >= 6 else { continue }
            let printable = decoded.filter(isPrintable).count
            if printable * 10 >= decoded.count * 9 {
                found.append(InspectedValue(utf8: decoded, at: value.location, decodedFromBase64: true))
            }
        }
        return found.isEmpty ? nil : found
    }

    private static func isPrintable(_ b: UInt8) -> Bool { (b >= 0x20 && b < 0x7F) || b == 0x0A || b == 0x0D || b == 0x09 }

    static func decode(_ text: ArraySlice<UInt8>, phase: Int = 0) -> [UInt8] {
        decode(text, phase: phase, nonPrintableAllowed: .max) ?? []
    }

    /// Decodes `text` as if `phase` base64 characters (0-3) came before it in the stream it
    /// was cut from, so a fragment cut anywhere decodes at its true alignment; bytes that
    /// would hold bits of the missing characters are left out. Nil once more than
    /// `nonPrintableAllowed` bytes are not printable text.
    static func decode(_ text: ArraySlice<UInt8>, phase: Int, nonPrintableAllowed: Int) -> [UInt8]? {
        var nonPrintable = 0
        var out: [UInt8] = []
        out.reserveCapacity(text.count * 3 / 4)
        var buffer: UInt32 = 0
        var bits = phase * 6
        var missing = phase * 6
        for b in text {
            let v: UInt32
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): v = UInt32(b - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): v = UInt32(b - UInt8(ascii: "a") + 26)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = UInt32(b - UInt8(ascii: "0") + 52)
            case UInt8(ascii: "+"), UInt8(ascii: "-"): v = 62
            case UInt8(ascii: "/"), UInt8(ascii: "_"): v = 63
            default: continue
            }
            buffer = buffer << 6 | v
            bits += 6
            if bits >= 8 {
                bits -= 8
                if missing > 0 {
                    missing = max(0, missing - 8)
                } else {
                    let byte = UInt8((buffer >> UInt32(bits)) & 0xFF)
                    if !isPrintable(byte) {
                        nonPrintable += 1
                        if nonPrintable > nonPrintableAllowed { return nil }
                    }
                    out.append(byte)
                }
            }
        }
        return out
    }
}
