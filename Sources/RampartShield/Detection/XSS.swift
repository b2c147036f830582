/// Cross-site scripting, found by reading the input the way a browser's HTML tokenizer
/// would: tags are opened (`<name`), attributes read with their values, and a finding is
/// made only for what executes — a script-capable element, an event-handler attribute, a
/// script URL in a URL-taking attribute, a CSS expression — or for a JavaScript sink
/// called outright. Plain markup (`<b>`, `<p>`), angle brackets in maths (`a < b > c`) and
/// prose mentioning "script" are not findings.
public struct XSSDetector: ThreatDetector {
    public let kind = ThreatKind.xss

    public init() {}

    public func inspect(_ value: InspectedValue, into findings: inout [Finding]) {
        guard value.present.containsAny(of: Self.triggers) else { return }
        if let rule = Self.analyse(value.normalized, present: value.present) { report("xss.\(rule)", .critical, value, into: &findings) }
    }

    /// Every shape below needs one of these: `:` for script URLs, `<` for tags, `=` for
    /// handlers, `(`, `)`, `` ` ``, `.` or `[` for script sinks, `@` or `-` for CSS ones.
    private static let triggers = ByteSet("<:=(`.[)@-")
    private static let sinkBytes = ByteSet("(`.[)")
    private static let cssBytes = ByteSet("@-(:")

    static func analyse(_ bytes: [UInt8], present: ByteSet) -> String? {
        // Browsers ignore tabs and newlines inside a URL scheme (`java\tscript:`).
        let compact = present.containsAny(of: Self.urlBreaks) ? bytes.filter { $0 != 0x09 && $0 != 0x0A && $0 != 0x0D } : bytes
        if scriptSchemes.mayMatch(present), let scheme = scriptScheme(in: compact) { return "\(scheme)-url" }
        if present.contains(UInt8(ascii: "<")), let rule = scanTags(bytes) { return rule }
        if present.contains(UInt8(ascii: "=")), let handler = eventHandler(in: bytes) { return "event-handler.\(handler)" }
        guard present.containsAny(of: sinkBytes) || present.containsAny(of: cssBytes) else { return nil }
        var code = Bytes.removingComments(compact)
        code.removeAll(where: Bytes.isSpace)
        if present.containsAny(of: sinkBytes), sinks.mayMatch(present), let sink = javascriptSink(in: code) { return "js-sink.\(sink)" }
        if code.count >= 20, code.allSatisfy({ jsfuckBytes.contains($0) }) { return "jsfuck" }
        if cssMarkers.mayMatch(present), cssMarkers.firstMatch(in: code) != nil { return "css-script" }
        return nil
    }

    private static let urlBreaks = ByteSet("\t\n\r")
    private static let jsfuckBytes = ByteSet("[]()!+")
    private static let cssMarkers = KeywordMatcher(["-moz-binding", "behavior:url", "url(javascript", "url('javascript", "url(\"javascript", "@import'", "@import\"", "@importurl"])

    /// `<tag ...>`: dangerous elements, handlers and script URLs in attributes.
    static func scanTags(_ bytes: [UInt8]) -> String? {
        var i = 0
        let n = bytes.count
        while i < n {
            guard bytes[i] == UInt8(ascii: "<") else { i += 1; continue }
            var j = i + 1
            if j < n, bytes[j] == UInt8(ascii: "/") { j += 1 }
            if j < n, bytes[j] == UInt8(ascii: "!") || bytes[j] == UInt8(ascii: "?") {
                let rest = String(decoding: bytes[j..<min(n, j + 12)], as: UTF8.self)
                if rest.hasPrefix("!entity") || rest.hasPrefix("!doctype") || rest.hasPrefix("?import") || rest.hasPrefix("!attlist") || rest.hasPrefix("?xml-styl") {
                    return "markup-declaration"
                }
            }
            let nameStart = j
            while j < n, Bytes.isLetter(bytes[j]) || Bytes.isDigit(bytes[j]) || bytes[j] == UInt8(ascii: ":") || bytes[j] == UInt8(ascii: "-") { j += 1 }
            guard j > nameStart, Bytes.isLetter(bytes[nameStart]) else { i += 1; continue }
            let name = String(decoding: bytes[nameStart..<j], as: UTF8.self)
            let localName = name.split(separator: ":").last.map(String.init) ?? name
            // The tag must end or carry attributes: `<b` followed by a letter-less run is not a tag.
            let terminator = j < n ? bytes[j] : 0
            let isTag = j == n || Bytes.isSpace(terminator) || terminator == UInt8(ascii: ">") || terminator == UInt8(ascii: "/")
            if isTag {
                if scriptElements.contains(localName) { return "element.\(localName)" }
                if let attributeRule = attributes(bytes, from: j, element: localName) { return attributeRule }
                if riskyElements.contains(localName), terminator != UInt8(ascii: ">") || bytes.count > j + 1 {
                    // A risky element with any attribute at all.
                    var k = j
                    while k < n, Bytes.isSpace(bytes[k]) || bytes[k] == UInt8(ascii: "/") { k += 1 }
                    if k < n, Bytes.isLetter(bytes[k]) { return "element.\(localName)" }
                }
            }
            i = j
        }
        return nil
    }

    /// The attributes of a tag starting at `start`: handlers, script URLs, CSS expressions.
    static func attributes(_ bytes: [UInt8], from start: Int, element: String) -> String? {
        var i = start
        let n = bytes.count
        while i < n, bytes[i] != UInt8(ascii: ">") {
            while i < n, Bytes.isSpace(bytes[i]) || bytes[i] == UInt8(ascii: "/") || bytes[i] == UInt8(ascii: "\"") || bytes[i] == UInt8(ascii: "'") { i += 1 }
            let nameStart = i
            while i < n, !Bytes.isSpace(bytes[i]), bytes[i] != UInt8(ascii: "="), bytes[i] != UInt8(ascii: ">"), bytes[i] != UInt8(ascii: "/") { i += 1 }
            guard i > nameStart else {
                if i < n, bytes[i] != UInt8(ascii: ">") { i += 1 }
                continue
            }
            let name = String(decoding: bytes[nameStart..<i], as: UTF8.self)
            while i < n, Bytes.isSpace(bytes[i]) { i += 1 }
            var valueText = ""
            if i < n, bytes[i] == UInt8(ascii: "=") {
                i += 1
                while i < n, Bytes.isSpace(bytes[i]) { i += 1 }
                if i < n, bytes[i] == UInt8(ascii: "\"") || bytes[i] == UInt8(ascii: "'") || bytes[i] == UInt8(ascii: "`") {
                    let quote = bytes[i]
                    let valueStart = i + 1
                    i += 1
                    while i < n, bytes[i] != quote { i += 1 }
                    valueText = String(decoding: bytes[valueStart..<min(i, n)], as: UTF8.self)
                    if i < n { i += 1 }
                } else {
                    let valueStart = i
                    while i < n, !Bytes.isSpace(bytes[i]), bytes[i] != UInt8(ascii: ">") { i += 1 }
                    valueText = String(decoding: bytes[valueStart..<i], as: UTF8.self)
                }
                if name.hasPrefix("on"), name.count > 3 { return "event-handler.\(name)" }
                if name == "style", ["expression", "javascript:", "-moz-binding", "behavior", "url(", "@import"].contains(where: valueText.contains) { return "css-expression" }
                if ["srcdoc", "formaction", "xlink:href", "data", "action", "href", "src", "background", "dynsrc", "lowsrc", "code", "codebase", "values", "to", "from", "by", "poster", "ping", "lang", "xmlns"].contains(name),
                   ["javascript:", "vbscript:", "data:", "livescript:", "mocha:"].contains(where: valueText.contains) {
                    return "script-url-attribute"
                }
                if name == "formaction" || name == "srcdoc" || name == "xlink:href" || name == "http-equiv" { return "attribute.\(name)" }
            }
        }
        return nil
    }

    /// `on<event>=` after a quote, a space or a slash: an attribute injected into a tag.
    static func eventHandler(in bytes: [UInt8]) -> String? {
        var i = 0
        let n = bytes.count
        while i + 4 < n {
            if bytes[i] == UInt8(ascii: "o"), bytes[i + 1] == UInt8(ascii: "n"), i == 0 || !Bytes.isWordByte(bytes[i - 1]) {
                var j = i + 2
                while j < n, Bytes.isLetter(bytes[j]) { j += 1 }
                let name = String(decoding: bytes[(i + 2)..<j], as: UTF8.self)
                var k = j
                while k < n, Bytes.isSpace(bytes[k]) { k += 1 }
                if k < n, bytes[k] == UInt8(ascii: "="), events.contains(name) || (name.count >= 6 && i > 0) {
                    let preceding = i > 0 ? bytes[i - 1] : 0
                    if preceding == 0 || Bytes.isSpace(preceding) || preceding == UInt8(ascii: "\"") || preceding == UInt8(ascii: "'") || preceding == UInt8(ascii: "/") || preceding == UInt8(ascii: ";") {
                        return "on\(name)"
                    }
                }
                i = j
            } else {
                i += 1
            }
        }
        return nil
    }

    static func scriptScheme(in bytes: [UInt8]) -> String? {
        for match in scriptSchemes.matches(in: bytes) {
            let scheme = scriptSchemes.needles[match.needle]
            if scheme.hasPrefix("data:") { return "data" }
            var k = match.end
            while k < bytes.count, Bytes.isSpace(bytes[k]) || bytes[k] == 0x00 { k += 1 }
            if k < bytes.count, bytes[k] == UInt8(ascii: ":") { return scheme }
        }
        return nil
    }

    static let scriptSchemes = KeywordMatcher([
        "javascript", "vbscript", "livescript", "jscript",
        "data:text/html", "data:image/svg", "data:application/x", "data:text/javascript", "data:application/javascript",
    ])

    /// Calls and properties that only make sense as script: `alert(1)`, `document.cookie`,
    /// `String.fromCharCode(...)`, `eval(...)`, `self['alert']`.
    static func javascriptSink(in bytes: [UInt8]) -> String? {
        for match in sinks.wordMatches(in: bytes) {
            let sink = sinks.needles[match.needle]
            var k = match.end
            if sink.hasSuffix(".") || sink.hasSuffix("[") { return sink }
            while k < bytes.count, Bytes.isSpace(bytes[k]) { k += 1 }
            if callSinks.contains(sink) {
                if k < bytes.count, bytes[k] == UInt8(ascii: "(") || bytes[k] == UInt8(ascii: "`") { return sink }
                // `alert?.(1)`, `(alert)(1)`, `alert.call(null,1)`
                if k + 1 < bytes.count, bytes[k] == UInt8(ascii: ")") || bytes[k] == UInt8(ascii: "."), bytes.count < 200 { return sink }
            } else {
                return sink
            }
        }
        return nil
    }

    static let scriptElements: Set<String> = ["script", "iframe", "frame", "frameset", "object", "embed", "applet", "xss", "vmlframe", "import", "portal", "noscript", "xmp", "plaintext", "listing"]
    static let riskyElements: Set<String> = [
        "svg", "math", "img", "image", "body", "style", "link", "meta", "base", "form", "input", "button", "video", "audio", "source", "details",
        "marquee", "template", "animate", "set", "bgsound", "layer", "ilayer", "isindex", "textarea", "select", "keygen", "html", "table", "td",
        "div", "a", "iframe", "x", "xml", "title", "option", "animatetransform", "animatemotion", "handler", "use", "foreignobject", "dialog", "menu", "object",
    ]
    static let events: Set<String> = [
        "abort", "activate", "afterprint", "afterscriptexecute", "animationcancel", "animationend", "animationiteration", "animationstart",
        "auxclick", "beforeactivate", "beforecopy", "beforecut", "beforedeactivate", "beforepaste", "beforeprint", "beforescriptexecute",
        "beforeunload", "beforeinput", "begin", "blur", "bounce", "canplay", "canplaythrough", "change", "click", "close", "contextmenu", "copy",
        "cuechange", "cut", "dblclick", "deactivate", "drag", "dragend", "dragenter", "dragleave", "dragover", "dragstart", "drop", "durationchange",
        "end", "ended", "error", "finish", "focus", "focusin", "focusout", "formdata", "fullscreenchange", "hashchange", "input", "invalid", "keydown",
        "keypress", "keyup", "load", "loadeddata", "loadedmetadata", "loadend", "loadstart", "message", "mousedown", "mouseenter", "mouseleave",
        "mousemove", "mouseout", "mouseover", "mouseup", "mousewheel", "offline", "online", "pagehide", "pageshow", "paste", "pause", "play",
        "playing", "pointerdown", "pointerenter", "pointerleave", "pointermove", "pointerout", "pointerover", "pointerup", "pointerrawupdate", "popstate", "progress",
        "ratechange", "readystatechange", "repeat", "reset", "resize", "scroll", "scrollend", "search", "seeked", "seeking", "select", "selectionchange",
        "selectstart", "show", "start", "storage", "submit", "suspend", "timeupdate", "toggle", "touchend", "touchmove", "touchstart", "transitioncancel",
        "transitionend", "transitionrun", "transitionstart", "unload", "volumechange", "waiting", "wheel", "filterchange", "propertychange", "help", "move", "moveend", "movestart", "losecapture", "rowenter", "rowexit", "datasetchanged", "errorupdate", "layoutcomplete", "readystate", "contentvisibilityautostatechange", "beforetoggle", "webkitanimationend", "webkittransitionend", "mozfullscreenchange",
    ]
    /// Functions that are sinks when called (`(` or a template literal follows).
    static let callSinks: Set<String> = [
        "alert", "prompt", "confirm", "eval", "settimeout", "setinterval", "execscript", "fromcharcode", "atob", "print", "importscripts", "import",
        "document.write", "document.writeln", "window.open", "location.assign", "location.replace", "createcontextualfragment", "insertadjacenthtml",
        "execcommand", "function", "constructor", "postmessage", "fetch", "xmlhttprequest", "globalthis", "reflect.apply",
    ]
    /// Properties and lookups that are sinks on their own.
    static let propertySinks = [
        "document.cookie", "document.domain", "document.location", "window.location", "location.href", "location.hash", "location.search",
        ".innerhtml", ".outerhtml", "self[", "top[", "window[", "parent[", "frames[", "this[", "globalthis[", "document[", "content[",
        "top.alert", "window.alert", "string.fromcharcode", "localstorage.", "sessionstorage.", "[\"cookie\"]", "['cookie']",
        "document.body.appendchild", "document.createelement",
    ]
    static let sinks = KeywordMatcher(Array(callSinks) + propertySinks)
}
