public import HTTPTypes
import RampartCore

/// Attacks on HTTP itself carried inside a request: header injection and response
/// splitting (a line break followed by a header or a status line in a parameter, cookie or
/// path), request smuggling (a second request line in a body or parameter), LDAP filter
/// injection, parameter names the application's parser would misread, and malformed
/// `Content-Type` and `Range` fields.
public struct ProtocolAttackDetector: ThreatDetector {
    public let kind = ThreatKind.protocolAttack

    public init() {}

    public func inspect(_ value: InspectedValue, into findings: inout [Finding]) {
        let bytes = value.normalized
        if let rule = Self.lineInjection(bytes) {
            report("protocol.\(rule)", .critical, value, into: &findings)
        } else if value.location.isName || value.location.part == .path, bytes.contains(0x0A) || bytes.contains(0x0D) {
            report("protocol.line-break-in-name", .critical, value, into: &findings)
        } else if Self.ldapInjection(bytes) {
            report("protocol.ldap-injection", .critical, value, into: &findings)
        } else if value.location.isName, value.location.part == .query || value.location.part == .form, let close = bytes.firstIndex(of: UInt8(ascii: "]")),
                  close + 1 < bytes.count, bytes[close + 1] != UInt8(ascii: "[") {
            report("protocol.parameter-name-after-bracket", .critical, value, into: &findings)
        } else if value.location.part == .cookie, value.location.isName, bytes.first == UInt8(ascii: "$") {
            report("protocol.cookie-attribute-name", .critical, value, into: &findings)
        }
    }

    public func inspect(request: HTTPRequest, values: [InspectedValue], into findings: inout [Finding]) {
        if let range = request.headerFields[.range] ?? request.headerFields[Self.requestRange] {
            let lower = String(range.lowercased().trimmingASCIIWhitespace())
            if !lower.hasPrefix("bytes=") || lower.dropFirst(6).split(separator: ",").count > 16 {
                findings.append(Finding(kind, rule: "protocol.range", severity: .critical, at: InputLocation(.header, "range")))
            }
        }
        if let type = request.headerFields[.contentType] {
            let lower = type.lowercased()
            let media = lower.split(separator: ";", maxSplits: 1).first.map { String($0.trimmingASCIIWhitespace()) } ?? ""
            if !media.hasPrefix("multipart/"), Bytes.contains(lower, "boundary") {
                findings.append(Finding(kind, rule: "protocol.content-type-boundary", severity: .critical, at: InputLocation(.header, "content-type")))
            } else if media.isEmpty || !media.contains("/") || media.contains(" ") || lower.split(separator: ",").count > 1 && !media.hasPrefix("multipart/") {
                findings.append(Finding(kind, rule: "protocol.content-type", severity: .critical, at: InputLocation(.header, "content-type")))
            }
        }
    }

    /// A line break followed by a header field, a status line or a request line.
    static func lineInjection(_ bytes: [UInt8]) -> String? {
        guard let firstBreak = bytes.firstIndex(where: { $0 == 0x0A || $0 == 0x0D }) else { return nil }
        let text = String(decoding: bytes[firstBreak...], as: UTF8.self)
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) {
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            if trimmed.hasPrefix("http/") { return "response-splitting" }
            if let space = trimmed.firstIndex(of: " "), methods.contains(String(trimmed[..<space])),
               Bytes.contains(trimmed, " http/") || trimmed.dropFirst(trimmed.distance(from: trimmed.startIndex, to: space) + 1).hasPrefix("/") { return "request-smuggling" }
            if let colon = trimmed.firstIndex(of: ":") {
                let name = trimmed[..<colon]
                if headerNames.contains(String(name)) || (name.count > 1 && name.count < 40 && name.allSatisfy({ $0.isLetter || $0 == "-" }) && name.contains("-")) { return "header-injection" }
            }
            if trimmed.hasPrefix("<html") || trimmed.hasPrefix("<!doctype") { return "response-splitting" }
        }
        return nil
    }

    /// `*)(uid=*`, `)(|(`, `)(&)`: closing one LDAP filter and opening another.
    static func ldapInjection(_ bytes: [UInt8]) -> Bool {
        var i = 0
        let n = bytes.count
        while i < n {
            if bytes[i] == UInt8(ascii: ")") {
                var k = i + 1
                while k < n, Bytes.isSpace(bytes[k]) { k += 1 }
                if k < n, bytes[k] == UInt8(ascii: "(") {
                    k += 1
                    while k < n, Bytes.isSpace(bytes[k]) { k += 1 }
                    guard k < n else { return false }
                    let c = bytes[k]
                    if c == UInt8(ascii: "|") || c == UInt8(ascii: "&") || c == UInt8(ascii: "!") || c == UInt8(ascii: "*") { return true }
                    var j = k
                    while j < n, Bytes.isWordByte(bytes[j]) { j += 1 }
                    if j > k, j < n, bytes[j] == UInt8(ascii: "=") || bytes[j] == UInt8(ascii: "~") || bytes[j] == UInt8(ascii: ">") || bytes[j] == UInt8(ascii: "<") {
                        let rest = bytes[(j + 1)...].prefix(64)
                        if rest.contains(UInt8(ascii: "*")) || rest.contains(UInt8(ascii: ")")) { return true }
                    }
                }
            }
            i += 1
        }
        return false
    }

    static let requestRange = HTTPField.Name("Request-Range")!
    static let methods: Set<String> = ["get", "post", "put", "delete", "head", "options", "patch", "connect", "trace", "propfind", "proppatch", "mkcol", "copy", "move", "lock", "unlock"]
    static let headerNames: Set<String> = [
        "host", "location", "set-cookie", "cookie", "content-type", "content-length", "transfer-encoding", "connection", "refresh", "x-xss-protection",
        "remote-addr", "x-forwarded-for", "user-agent", "referer", "authorization", "cache-control", "expires", "pragma", "accept", "vary", "server",
    ]
}

/// Session fixation: a session identifier planted through a parameter (rather than the
/// cookie the application issues), from another site or with no referrer at all, and
/// attempts to write cookies from injected script or markup.
public struct SessionFixationDetector: ThreatDetector {
    public let kind = ThreatKind.sessionFixation

    public init() {}

    public func inspect(_ value: InspectedValue, into findings: inout [Finding]) {
        let bytes = value.normalized
        guard bytes.count >= 8, bytes.contains(UInt8(ascii: "=")) || bytes.contains(UInt8(ascii: ":")) else { return }
        if Bytes.contains(bytes, ".cookie") && (Bytes.contains(bytes, "=") || Bytes.contains(bytes, ";")) && (Bytes.contains(bytes, "expires=") || Bytes.contains(bytes, "domain=") || Bytes.contains(bytes, "path=") || Bytes.contains(bytes, "document.cookie")) {
            report("session.cookie-write", .critical, value, into: &findings)
        } else if Bytes.contains(bytes, "set-cookie") && (Bytes.contains(bytes, "http-equiv") || Bytes.contains(bytes, ":")) {
            report("session.cookie-write", .critical, value, into: &findings)
        }
    }

    public func inspect(request: HTTPRequest, values: [InspectedValue], into findings: inout [Finding]) {
        for value in values where value.location.isName && (value.location.part == .query || value.location.part == .form) {
            guard Self.isSessionName(value.normalized) else { continue }
            let ownHost = request.authority.map { $0.lowercased().split(separator: ":").first.map(String.init) ?? $0 }
            let sameSite: Bool
            if let referer = request.headerFields[.referer], let origin = CSRFGuard.origin(of: referer), let ownHost {
                let host = origin.split(separator: "/").last.map { $0.split(separator: ":").first.map(String.init) ?? "" } ?? ""
                sameSite = host == ownHost
            } else {
                sameSite = false
            }
            if !sameSite {
                findings.append(Finding(kind, rule: "session.identifier-in-parameter", severity: .critical, at: value.location))
                return
            }
        }
    }

    static func isSessionName(_ bytes: [UInt8]) -> Bool {
        // Every name below holds one of these; most parameter names hold none.
        guard Bytes.contains(bytes, "sid") || Bytes.contains(bytes, "sess") || Bytes.contains(bytes, "cf") else { return false }
        let name = String(decoding: bytes, as: UTF8.self).filter { $0 != "-" && $0 != "_" && $0 != "." }
        if knownNames.contains(name) { return true }
        return Bytes.contains(name, "sessionid") || Bytes.contains(name, "sessid") || (name.hasSuffix("session") && name.count <= 16) || name.hasSuffix("sessiontoken")
    }

    static let knownNames: Set<String> = ["sid", "jsessionid", "phpsessid", "aspsessionid", "aspnetsessionid", "cfid", "cftoken", "sailssid", "connectsid", "playsession", "jwsession", "zendsessionid", "laravelsession", "rackssession", "sessionkey", "sesskey", "ssid", "websession"]
}
