/// JavaScript and Python code aimed at the server (Node.js, template sandboxes): process
/// and module access (`require('child_process')`, `process.mainModule`), prototype
/// pollution (`__proto__`, `constructor.prototype`), node-serialize's function marker,
/// dunder escapes (`__class__`, `__globals__`), and endless loops (`while(true)`).
public struct JavaScriptInjectionDetector: ThreatDetector {
    public let kind = ThreatKind.javascriptInjection

    public init() {}

    public func inspect(_ value: InspectedValue, into findings: inout [Finding]) {
        let bytes = value.normalized
        guard bytes.count >= 5 else { return }
        guard Self.names.mayMatch(value.present) || value.present.contains(UInt8(ascii: "(")) else { return }
        let compact = bytes.filter { !Bytes.isSpace($0) }
        if let match = Self.names.firstMatch(in: compact) {
            report("js.\(Self.names.needles[match.needle])", .critical, value, into: &findings)
            return
        }
        if let loop = Self.endlessLoop(compact) {
            report("js.endless-loop.\(loop)", .critical, value, into: &findings)
        }
    }

    /// `while(true)`, `while(1)`, `while(!0)`, `for(;;)`, `while(this)`: loop conditions that
    /// are constants.
    static func endlessLoop(_ compact: [UInt8]) -> String? {
        if Bytes.contains(compact, "for(;;)") { return "for" }
        guard let at = Bytes.find(Array("while(".utf8), in: compact) else { return nil }
        let start = at + 6
        guard let close = compact[start...].firstIndex(of: UInt8(ascii: ")")), close > start else { return nil }
        let condition = String(decoding: compact[start..<close], as: UTF8.self).filter { $0 != "!" && $0 != "(" && $0 != "+" }
        let constant = condition.allSatisfy(\.isNumber) || ["true", "this", "undefined", "null", "\"\"", "''", "[]", "{}", "-1", "nan", "infinity", "false", "string", "object", "array", "number", "boolean", "math", "date", "window", "document", "globalthis", "self", "symbol", "function"].contains(condition)
            || condition.hasPrefix("-") && condition.dropFirst().allSatisfy(\.isNumber)
        return constant ? "while" : nil
    }

    static let names = KeywordMatcher([
        "child_process", "require(\"fs\")", "require('fs')", "require(`fs`)", "process.mainmodule", "process.binding", "process.env", "process.kill",
        "process.exit", "process[", "[constructor]", "[prototype]", "[__proto__]", "global.process", "globalthis.process", "module.constructor", "require.main", "require.cache", ".constructor.constructor",
        "constructor.prototype", "constructor[", "[\"constructor\"]", "['constructor']", "__proto__", "prototype[", "_$$nd_func$$_", "_$$nd_cc$$_",
        "__defineGetter__", "__definesetter__", "__lookupgetter__", ".execsync(", ".spawnsync(", ".exec(", ".spawn(", "readfilesync(", "writefilesync(",
        "readdirsync(", "deno.run", "deno.command", "bun.spawn", "vm.runin", "newfunction(", "function(){", "=>{", "import(", "eval(", "settimeout(",
        "__class__", "__globals__", "__builtins__", "__import__", "__subclasses__", "__mro__", "__bases__", "__init__", "__getattribute__",
        "__dict__", "func_globals", "os.system", "os.popen", "subprocess.", "commands.getoutput", "pty.spawn", "importlib", "getattr(",
        "lipsum.", "cycler.", "joiner.", "namespace.", "request.application", "config.items", "self._templatereference", "url_for.",
        "get_flashed_messages", "%x(", "kernel.exec", "kernel.system", "io.popen", "kernel.open", "instance_eval", "class_eval", "send(:",
    ])
}
