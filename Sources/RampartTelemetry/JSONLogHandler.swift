public import Logging
import RampartCore
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A log handler that writes one JSON object per line to standard output or standard error:
/// `time`, `level`, `label`, `message` and the metadata as fields. The access log and every
/// other log line share this format, so one collector parses all of them.
public struct JSONLogHandler: LogHandler {
    public enum Stream: Sendable { case standardOutput, standardError }

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let stream: Stream

    public init(label: String, level: Logger.Level = .info, stream: Stream = .standardError) {
        self.label = label
        self.logLevel = level
        self.stream = stream
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        var line = "{\"time\":\"\(utcTimestamp())\",\"level\":\"\(event.level)\",\"label\":"
        appendJSONString(label, to: &line)
        line += ",\"message\":"
        appendJSONString(event.message.description, to: &line)
        for key in merged.keys.sorted() {
            line += ","
            appendJSONString(key, to: &line)
            line += ":"
            appendJSON(merged[key]!, to: &line)
        }
        line += "}\n"
        emit(line)
    }

    private func emit(_ line: String) {
        // One write(2) per line, unbuffered: lines from several threads never interleave and
        // nothing is lost in a buffer when the process is killed.
        var line = line
        let fd: Int32 = stream == .standardOutput ? 1 : 2
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n <= 0 { return }
                offset += n
            }
        }
    }
}

func appendJSON(_ value: Logger.Metadata.Value, to out: inout String) {
    switch value {
    case .string(let s): appendJSONString(s, to: &out)
    case .stringConvertible(let c):
        if let n = c as? Int { out += String(n) } else if let d = c as? Double, d.isFinite { out += String(d) } else if let b = c as? Bool {
            out += b ? "true" : "false"
        } else { appendJSONString(c.description, to: &out) }
    case .array(let values):
        out += "["
        for (i, v) in values.enumerated() {
            if i > 0 { out += "," }
            appendJSON(v, to: &out)
        }
        out += "]"
    case .dictionary(let dict):
        out += "{"
        for (i, key) in dict.keys.sorted().enumerated() {
            if i > 0 { out += "," }
            appendJSONString(key, to: &out)
            out += ":"
            appendJSON(dict[key]!, to: &out)
        }
        out += "}"
    }
}

/// The current UTC time as RFC 3339 with milliseconds.
func utcTimestamp() -> String {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    var seconds = time_t(ts.tv_sec)
    var parts = tm()
    gmtime_r(&seconds, &parts)
    func pad(_ v: Int32, _ n: Int = 2) -> String {
        let s = String(v)
        return String(repeating: "0", count: max(0, n - s.count)) + s
    }
    let ms = Int32(ts.tv_nsec / 1_000_000)
    return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1))-\(pad(parts.tm_mday))T\(pad(parts.tm_hour)):\(pad(parts.tm_min)):\(pad(parts.tm_sec)).\(pad(ms, 3))Z"
}
