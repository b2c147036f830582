public import HTTPTypes

/// What kind of attack a finding points at.
public enum ThreatKind: String, Sendable, Codable, CaseIterable, Hashable {
    case sqlInjection = "sql_injection"
    case xss
    case pathTraversal = "path_traversal"
    case commandInjection = "command_injection"
    case remoteInclusion = "remote_inclusion"
    case templateInjection = "template_injection"
    case phpInjection = "php_injection"
    case javaInjection = "java_injection"
    case javascriptInjection = "javascript_injection"
    case protocolAttack = "protocol_attack"
    case sessionFixation = "session_fixation"
    case scanner
}

/// How bad a finding is; its raw value is the anomaly score it adds.
public enum ThreatSeverity: Int, Sendable, Codable, Comparable, CaseIterable {
    case notice = 2
    case warning = 3
    case error = 4
    case critical = 5

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    public var name: String {
        switch self {
        case .notice: "notice"
        case .warning: "warning"
        case .error: "error"
        case .critical: "critical"
        }
    }
}

/// Where in a request an inspected value came from, written `query:q`, `json:$.a.b`,
/// `header:user-agent`. Names are what exclusions match on.
public struct InputLocation: Sendable, Hashable, CustomStringConvertible {
    public enum Part: String, Sendable, Hashable {
        case method, path, query, form, multipart, json, xml, body, cookie, header
    }

    public let part: Part
    /// The parameter, field, JSON path, cookie or header; empty for the path and a whole body.
    public let name: String
    /// Whether the value inspected is the name itself (a query parameter's or JSON key's) rather than its value.
    public let isName: Bool

    public init(_ part: Part, _ name: String = "", isName: Bool = false) {
        self.part = part
        self.name = name
        self.isName = isName
    }

    /// Whether the value is an uploaded file's name: a multipart part's `filename`, or the
    /// `X-Filename` header (`X-File-Name`, `X_Filename`, ...) of a raw upload.
    public var namesAFile: Bool {
        switch part {
        case .multipart: name.hasSuffix(".filename")
        case .header: name.filter { $0 != "-" && $0 != "_" && $0 != "." } == "xfilename"
        default: false
        }
    }

    /// As logs, events and alerts show it. A name longer than 64 bytes is cut to its first 48
    /// characters and its length: the client chooses names (a form body without `=` is one
    /// long name), and must not be able to fill a log line or an event with them.
    public var description: String {
        let shown = name.utf8.count <= 64 ? name : "\(name.prefix(48))…(\(name.utf8.count) bytes)"
        let base = name.isEmpty ? part.rawValue : "\(part.rawValue):\(shown)"
        return isName ? "\(base)#name" : base
    }
}

/// One thing a detector found.
public struct Finding: Sendable, Hashable {
    public let kind: ThreatKind
    /// A short stable rule name, such as `sqli.union-select`.
    public let rule: String
    public let severity: ThreatSeverity
    public let location: InputLocation

    public init(_ kind: ThreatKind, rule: String, severity: ThreatSeverity, at location: InputLocation) {
        self.kind = kind
        self.rule = rule
        self.severity = severity
        self.location = location
    }
}

/// One value taken from a request, ready for the detectors: its original text and its
/// normalized form (decoded to a fixed point, lower case; see `Normalizer`).
public final class InspectedValue: Sendable {
    public let location: InputLocation
    /// The value as it came, after the one decoding its syntax implies (a query value is
    /// percent-decoded once, a JSON string unescaped), as UTF-8.
    public let utf8: [UInt8]
    /// Decoded to a fixed point (percent, HTML entities, Unicode escapes, overlong UTF-8,
    /// compatibility forms), then ASCII lower-cased. Bytes of UTF-8; the same storage as
    /// `utf8` when there was nothing to change.
    public let normalized: [UInt8]
    /// Whether this is what a base64 value decoded to, rather than the request's own text.
    public let decodedFromBase64: Bool
    /// The byte values `normalized` holds, for detectors' first cheap question.
    public let present: ByteSet
    /// Letters, digits, spaces, `-` and `_` only (`ThreatInspector.plain`): nothing most
    /// detectors look for.
    public let isPlain: Bool

    /// The value as it came, as text (made when asked for).
    public var raw: String { String(decoding: utf8, as: UTF8.self) }

    public convenience init(_ raw: String, at location: InputLocation, decodedFromBase64: Bool = false) {
        self.init(utf8: Array(raw.utf8), at: location, decodedFromBase64: decodedFromBase64)
    }

    init(utf8: [UInt8], at location: InputLocation, decodedFromBase64: Bool = false) {
        self.location = location
        self.utf8 = utf8
        (normalized, present) = Normalizer.normalizedWithByteSet(utf8)
        self.isPlain = present.isSubset(of: ThreatInspector.plain)
        self.decodedFromBase64 = decodedFromBase64
    }
}

/// One detector: a small type that looks at each inspected value (and, if it wants, at the
/// request as a whole) and reports what it finds.
public protocol ThreatDetector: Sendable {
    var kind: ThreatKind { get }
    /// Whether values of only letters, digits, spaces, `-` and `_` (`ByteSet.plain`) can hold what this
    /// detector looks for (class and gadget names can); most skip them.
    var inspectsPlainText: Bool { get }
    func inspect(_ value: InspectedValue, into findings: inout [Finding])
    /// Inspects each of `values` (leaving out plain ones when `skippingPlain`): one dynamic
    /// call per detector and request rather than one per value. Detectors keep the default.
    func inspect(_ values: [InspectedValue], skippingPlain: Bool, into findings: inout [Finding])
    /// Checks that need the whole request (several fields together). Most detectors have none.
    func inspect(request: HTTPRequest, values: [InspectedValue], into findings: inout [Finding])
}

extension ThreatDetector {
    public var inspectsPlainText: Bool { false }

    public func inspect(_ values: [InspectedValue], skippingPlain: Bool, into findings: inout [Finding]) {
        for value in values where !(skippingPlain && value.isPlain) { inspect(value, into: &findings) }
    }

    public func inspect(request: HTTPRequest, values: [InspectedValue], into findings: inout [Finding]) {}

    func report(_ rule: String, _ severity: ThreatSeverity, _ value: InspectedValue, into findings: inout [Finding]) {
        findings.append(Finding(kind, rule: rule, severity: severity, at: value.location))
    }
}
