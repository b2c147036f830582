public import HTTPTypes
import RampartCore

/// Takes a request apart into the values the detectors inspect: the path, each query
/// parameter's name and value, form fields (URL-encoded and multipart), JSON keys and
/// string values (walked iteratively, with their paths), XML attribute values and text,
/// cookies, and header values. Each value is decoded once as its syntax says (`+` and
/// percent-escapes in a query, escapes in a JSON string) and then normalized.
public enum RequestInputs {
    /// JSON nesting deeper than this is inspected as one text.
    public static let maximumJSONDepth = 64
    /// At most this many values per request; the rest of the body is inspected as text.
    public static let maximumValues = 2048

    /// The values of a request that `include` accepts (the others are never normalized).
    public static func values(path: Substring, query: Substring?, headers: HTTPFields, body: [UInt8]?, skipHeaders: Set<String>,
                              include: @escaping (InputLocation) -> Bool = { _ in true }) -> [InspectedValue] {
        var values = Values(include: include)
        values.append(String(path), at: InputLocation(.path))
        if let query { parameters(query, part: .query, into: &values) }
        for field in headers {
            let name = field.name.canonicalName
            if name == "cookie" {
                cookies(field.value, into: &values)
            } else if !skipHeaders.contains(name) {
                values.append(field.value, at: InputLocation(.header, name))
                // A Referer's query holds the parameters of the page before; each is a value.
                if name == "referer", let question = field.value.firstIndex(of: "?") {
                    let query = field.value[field.value.index(after: question)...]
                    parameters(query.prefix { $0 != "#" }, part: .header, into: &values, valuesAt: InputLocation(.header, "referer-query"))
                }
            }
        }
        if let body, !body.isEmpty, inspectsBody(contentType: headers[.contentType]) {
            self.body(body, contentType: headers[.contentType], into: &values)
        }
        return values.found
    }

    /// Whether a body of this type is text worth inspecting. Media, archives and other binary
    /// payloads are not: they are neither read ahead for inspection nor scanned as text.
    public static func inspectsBody(contentType: String?) -> Bool {
        guard let type = contentType?.lowercased() else { return true }
        let binary = ["image/", "audio/", "video/", "font/", "application/octet-stream", "application/zip", "application/gzip", "application/pdf",
                      "application/x-protobuf", "application/protobuf", "application/grpc", "application/wasm", "application/vnd.ms-", "application/msword"]
        return !binary.contains(where: type.hasPrefix)
    }

    /// Collects inspected values, leaving out excluded locations before any work is done on them.
    struct Values {
        let include: (InputLocation) -> Bool
        var found: [InspectedValue] = []
        var count: Int { found.count }

        mutating func append(_ text: String, at location: InputLocation) {
            if include(location) { found.append(InspectedValue(text, at: location)) }
        }

        mutating func append(utf8: [UInt8], at location: InputLocation) {
            if include(location) { found.append(InspectedValue(utf8: utf8, at: location)) }
        }
    }

    static func body(_ body: [UInt8], contentType: String?, into values: inout Values) {
        let type = contentType?.lowercased() ?? ""
        if type.hasPrefix("application/x-www-form-urlencoded") {
            parameters(body[...], part: .form, into: &values)
        } else if type.hasPrefix("multipart/"), let boundary = parameter("boundary", in: contentType ?? ""), multipart(body, boundary: boundary, into: &values) {
            return
        } else if Bytes.contains(type, "json"), json(body, into: &values) {
            return
        } else if Bytes.contains(type, "xml"), xml(body, into: &values) {
            return
        } else {
            values.append(String(decoding: body, as: UTF8.self), at: InputLocation(.body))
        }
    }

    /// `a=1&b=2`: each name and value, `+` as space, percent-decoded once. With `valuesAt`
    /// (a Referer's query, located at `header:referer-query`), only the values, all there.
    static func parameters(_ text: Substring, part: InputLocation.Part, into values: inout Values, valuesAt: InputLocation? = nil) {
        parameters(Array(text.utf8)[...], part: part, into: &values, valuesAt: valuesAt)
    }

    static func parameters(_ text: ArraySlice<UInt8>, part: InputLocation.Part, into values: inout Values, valuesAt: InputLocation? = nil) {
        for pair in text.split(separator: UInt8(ascii: "&")) where values.count < maximumValues {
            let equals = pair.firstIndex(of: UInt8(ascii: "="))
            let value = equals.map { pair[($0 + 1)...] } ?? []
            if let valuesAt {
                if !value.isEmpty { values.append(utf8: Array(formDecodedBytes(value)), at: valuesAt) }
                continue
            }
            let nameBytes = formDecodedBytes(pair[..<(equals ?? pair.endIndex)])
            let name = String(decoding: nameBytes, as: UTF8.self)
            values.append(name, at: InputLocation(part, name, isName: true))
            // `pay%3DAND+1%3D1`: an encoded `=` in a name hides a value there; some frameworks
            // decode before they split, so what follows it is inspected as that value too.
            if let hidden = nameBytes.firstIndex(of: UInt8(ascii: "=")), hidden + 1 < nameBytes.endIndex {
                values.append(String(decoding: nameBytes[(hidden + 1)...], as: UTF8.self),
                              at: InputLocation(part, String(decoding: nameBytes[..<hidden], as: UTF8.self)))
            }
            if !value.isEmpty { values.append(utf8: Array(formDecodedBytes(value)), at: InputLocation(part, name)) }
        }
    }

    /// `+` as space and percent-escapes decoded, once; a `%` without two hex digits stays.
    private static func formDecodedBytes(_ text: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        guard text.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) else { return text }
        var out: [UInt8] = []
        out.reserveCapacity(text.count)
        var i = text.startIndex
        while i < text.endIndex {
            let b = text[i]
            if b == UInt8(ascii: "+") {
                out.append(0x20)
            } else if b == UInt8(ascii: "%"), i + 2 < text.endIndex, let hi = hexDigitValue(text[i + 1]), let lo = hexDigitValue(text[i + 2]) {
                out.append(hi << 4 | lo)
                i += 2
            } else {
                out.append(b)
            }
            i += 1
        }
        return out[...]
    }

    static func cookies(_ header: String, into values: inout Values) {
        let bytes = Array(header.utf8)
        for pair in bytes.split(separator: UInt8(ascii: ";")) {
            var nameEnd = pair.firstIndex(of: UInt8(ascii: "=")) ?? pair.endIndex
            var nameStart = pair.startIndex
            while nameStart < nameEnd, Bytes.isSpace(pair[nameStart]) { nameStart += 1 }
            while nameEnd > nameStart, Bytes.isSpace(pair[nameEnd - 1]) { nameEnd -= 1 }
            let name = String(decoding: pair[nameStart..<nameEnd], as: UTF8.self)
            values.append(name, at: InputLocation(.cookie, name, isName: true))
            if let equals = pair.firstIndex(of: UInt8(ascii: "=")), equals + 1 < pair.endIndex {
                values.append(String(decoding: pair[(equals + 1)...], as: UTF8.self), at: InputLocation(.cookie, name))
            }
        }
    }

    /// A `name=value` or `name="value"` parameter of a header such as Content-Type.
    static func parameter(_ wanted: String, in header: String) -> String? {
        for piece in header.split(separator: ";").dropFirst() {
            let parts = piece.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, parts[0].trimmingASCIIWhitespace().lowercased() == wanted else { continue }
            var value = parts[1].trimmingASCIIWhitespace()
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = value.dropFirst().dropLast() }
            return value.isEmpty ? nil : String(value)
        }
        return nil
    }

    /// multipart/form-data: each part's field value (or file name, for uploads with a binary
    /// type), named by its field. False when the body is not valid multipart.
    static func multipart(_ body: [UInt8], boundary: String, into values: inout Values) -> Bool {
        let delimiter = Array(("--" + boundary).utf8)
        var positions: [Int] = []
        var from = 0
        while let at = Bytes.find(delimiter, in: body, from: from) {
            positions.append(at)
            from = at + delimiter.count
        }
        guard positions.count >= 2 else { return false }
        for (start, end) in zip(positions, positions.dropFirst()) {
            var partStart = start + delimiter.count
            if partStart < end, body[partStart] == 0x0D { partStart += 1 }
            if partStart < end, body[partStart] == 0x0A { partStart += 1 }
            let part = Array(body[partStart..<end])
            // Headers end at the first empty line (CRLF CRLF or LF LF).
            let separator = Bytes.find([0x0D, 0x0A, 0x0D, 0x0A], in: part).map { ($0, 4) } ?? Bytes.find([0x0A, 0x0A], in: part).map { ($0, 2) }
            guard let (headerEnd, separatorLength) = separator else { continue }
            let headerText = String(decoding: part[..<headerEnd], as: UTF8.self)
            var content = part[(headerEnd + separatorLength)...]
            if content.last == 0x0A { content = content.dropLast() }
            if content.last == 0x0D { content = content.dropLast() }
            var name = ""
            var filename: String?
            var partType = ""
            for line in headerText.split(whereSeparator: \.isNewline) {  // "\r\n" is one Character
                let lower = line.lowercased()
                if lower.hasPrefix("content-disposition:") {
                    name = parameter("name", in: String(line)) ?? ""
                    filename = parameter("filename", in: String(line))
                } else if lower.hasPrefix("content-type:") {
                    partType = String(lower.dropFirst("content-type:".count).trimmingASCIIWhitespace())
                }
            }
            values.append(name, at: InputLocation(.multipart, name, isName: true))
            if let filename {
                values.append(filename, at: InputLocation(.multipart, name + ".filename"))
            }
            let textual = partType.isEmpty || partType.hasPrefix("text/") || partType.contains("json") || partType.contains("xml") || partType.contains("x-www-form-urlencoded")
            if textual, !content.isEmpty {
                values.append(String(decoding: content, as: UTF8.self), at: InputLocation(.multipart, name))
            }
        }
        return true
    }

    /// XML: attribute values and text between tags, as the parser would hand them over.
    static func xml(_ body: [UInt8], into values: inout Values) -> Bool {
        let text = String(decoding: body, as: UTF8.self)
        guard text.contains("<") else { return false }
        var index = text.startIndex
        var element = ""
        while index < text.endIndex, values.count < maximumValues {
            if text[index] == "<" {
                guard let close = text[index...].firstIndex(of: ">") else { break }
                let tag = text[text.index(after: index)..<close]
                if tag.hasPrefix("!") || tag.hasPrefix("?") {
                    // Declarations and processing instructions are inspected whole.
                    if tag.hasPrefix("!ENTITY") || tag.hasPrefix("!DOCTYPE") || tag.hasPrefix("?php") {
                        values.append("<" + tag + ">", at: InputLocation(.xml, element))
                    }
                } else {
                    element = String(tag.prefix { $0 != " " && $0 != "/" && $0 != "\t" && $0 != "\n" })
                    var rest = tag.drop { $0 != " " && $0 != "\t" && $0 != "\n" }
                    while let quoteIndex = rest.firstIndex(where: { $0 == "\"" || $0 == "'" }) {
                        let quote = rest[quoteIndex]
                        let nameEnd = rest[..<quoteIndex].lastIndex(of: "=") ?? quoteIndex
                        let attribute = rest[..<nameEnd].split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).last.map(String.init) ?? ""
                        let afterQuote = rest.index(after: quoteIndex)
                        guard let end = rest[afterQuote...].firstIndex(of: quote) else { break }
                        values.append(attribute, at: InputLocation(.xml, "\(element)@\(attribute)", isName: true))
                        values.append(String(rest[afterQuote..<end]), at: InputLocation(.xml, "\(element)@\(attribute)"))
                        rest = rest[rest.index(after: end)...]
                    }
                    values.append(element, at: InputLocation(.xml, element, isName: true))
                }
                index = text.index(after: close)
            } else {
                let next = text[index...].firstIndex(of: "<") ?? text.endIndex
                let content = text[index..<next]
                if content.contains(where: { !$0.isWhitespace }) {
                    values.append(String(content), at: InputLocation(.xml, element))
                }
                index = next
            }
        }
        return true
    }

    /// JSON: every key (as a name) and every string value, located by path (`$.a.b[0]`).
    /// False when the body is not JSON, so it is inspected as text instead.
    static func json(_ body: [UInt8], into values: inout Values) -> Bool {
        var reader = JSONReader(bytes: body)
        var found = Values(include: values.include)
        guard reader.walk(into: &found), found.count <= maximumValues else { return false }
        values.found += found.found
        return true
    }
}

/// A small iterative JSON reader that reports keys and string values with their paths and
/// refuses (rather than recursing into) nesting beyond `RequestInputs.maximumJSONDepth`.
struct JSONReader {
    let bytes: [UInt8]
    var i = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    /// An open object or array; `base` is the length of its own path in `path`.
    enum Container { case object(base: Int), array(base: Int, index: Int) }

    /// The path of the value being read, as bytes (`$.questions[2].text`): containers
    /// append their segment and cut back to their base, so no path is built twice.
    private var path: [UInt8] = [UInt8(ascii: "$")]
    /// The current path as a string, made once per value and shared by a key and its value.
    private var pathText = "$"

    mutating func walk(into values: inout RequestInputs.Values) -> Bool {
        var stack: [Container] = []
        var expectValue = true
        skipSpace()
        while i < bytes.count {
            let b = bytes[i]
            if expectValue {
                if case .array(let base, let index)? = stack.last {
                    path.removeSubrange(base...)
                    path.append(UInt8(ascii: "["))
                    path.append(contentsOf: String(index).utf8)
                    path.append(UInt8(ascii: "]"))
                    pathText = String(decoding: path, as: UTF8.self)
                }
                switch b {
                case UInt8(ascii: "{"):
                    guard stack.count < RequestInputs.maximumJSONDepth else { return false }
                    stack.append(.object(base: path.count))
                    i += 1
                    skipSpace()
                    if i < bytes.count, bytes[i] == UInt8(ascii: "}") { expectValue = false; continue }
                    guard readKey(stack, into: &values) else { return false }
                    continue
                case UInt8(ascii: "["):
                    guard stack.count < RequestInputs.maximumJSONDepth else { return false }
                    stack.append(.array(base: path.count, index: 0))
                    i += 1
                    skipSpace()
                    if i < bytes.count, bytes[i] == UInt8(ascii: "]") { expectValue = false; continue }
                    continue
                case UInt8(ascii: "\""):
                    guard let string = readString() else { return false }
                    values.append(utf8: string, at: InputLocation(.json, pathText))
                default:
                    // A number, true, false or null.
                    let start = i
                    while i < bytes.count, !Bytes.isSpace(bytes[i]), bytes[i] != UInt8(ascii: ","), bytes[i] != UInt8(ascii: "}"), bytes[i] != UInt8(ascii: "]") { i += 1 }
                    guard i > start, Self.isLiteral(bytes[start..<i]) else { return false }
                }
                expectValue = false
                skipSpace()
                continue
            }
            // After a value: a comma or the end of the container.
            switch (b, stack.last) {
            case (UInt8(ascii: ","), .object?):
                i += 1
                guard readKey(stack, into: &values) else { return false }
                expectValue = true
            case (UInt8(ascii: ","), .array(let base, let index)?):
                i += 1
                stack[stack.count - 1] = .array(base: base, index: index + 1)
                expectValue = true
                skipSpace()
            case (UInt8(ascii: "}"), .object(let base)?), (UInt8(ascii: "]"), .array(let base, _)?):
                i += 1
                stack.removeLast()
                path.removeSubrange(base...)
                skipSpace()
                if stack.isEmpty { return i == bytes.count }
            default:
                return false
            }
        }
        return stack.isEmpty && !expectValue
    }

    /// `true`, `false`, `null` or a JSON number.
    private static func isLiteral(_ text: ArraySlice<UInt8>) -> Bool {
        if text.elementsEqual("true".utf8) || text.elementsEqual("false".utf8) || text.elementsEqual("null".utf8) { return true }
        return text.allSatisfy { Bytes.isDigit($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }
            && Double(String(decoding: text, as: UTF8.self)) != nil
    }

    /// `"key":` inside an object; records the key and makes it the current path.
    private mutating func readKey(_ stack: [Container], into values: inout RequestInputs.Values) -> Bool {
        skipSpace()
        guard i < bytes.count, bytes[i] == UInt8(ascii: "\""), let key = readString() else { return false }
        skipSpace()
        guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return false }
        i += 1
        skipSpace()
        guard case .object(let base)? = stack.last else { return false }
        path.removeSubrange(base...)
        path.append(UInt8(ascii: "."))
        path.append(contentsOf: key)
        pathText = String(decoding: path, as: UTF8.self)
        values.append(utf8: key, at: InputLocation(.json, pathText, isName: true))
        return true
    }

    private mutating func skipSpace() {
        while i < bytes.count, Bytes.isSpace(bytes[i]) { i += 1 }
    }

    /// A string's bytes with its escapes undone.
    private mutating func readString() -> [UInt8]? {
        i += 1
        // Most strings have no escapes: one copy.
        var end = i
        while end < bytes.count, bytes[end] != UInt8(ascii: "\""), bytes[end] != UInt8(ascii: "\\") { end += 1 }
        if end < bytes.count, bytes[end] == UInt8(ascii: "\"") {
            defer { i = end + 1 }
            return Array(bytes[i..<end])
        }
        var out: [UInt8] = []
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                i += 1
                return out
            }
            if b == UInt8(ascii: "\\") {
                guard i + 1 < bytes.count else { return nil }
                let e = bytes[i + 1]
                i += 2
                switch e {
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "u"):
                    guard i + 4 <= bytes.count, let code = UInt32(String(decoding: bytes[i..<(i + 4)], as: UTF8.self), radix: 16) else { return nil }
                    i += 4
                    var scalarValue = code
                    if (0xD800..<0xDC00).contains(code), i + 6 <= bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u"),
                       let low = UInt32(String(decoding: bytes[(i + 2)..<(i + 6)], as: UTF8.self), radix: 16), (0xDC00..<0xE000).contains(low) {
                        scalarValue = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        i += 6
                    }
                    let scalar = Unicode.Scalar(scalarValue) ?? "\u{FFFD}"
                    out.append(contentsOf: Array(String(Character(scalar)).utf8))
                default: out.append(e)
                }
                continue
            }
            out.append(b)
            i += 1
        }
        return nil
    }
}
