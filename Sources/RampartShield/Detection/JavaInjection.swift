/// Java attacks: classes that deserialization gadgets and expression injections reach for
/// (`java.lang.Runtime`, `ProcessBuilder`, Commons Collections transformers, class loaders),
/// serialized Java objects (`aced0005`, `rO0AB`), and Spring's `class.module.classLoader`
/// property path. `java.` paths that lead to `Runtime` or `ProcessBuilder`, and class names
/// hidden in base64.
public struct JavaInjectionDetector: ThreatDetector {
    public let kind = ThreatKind.javaInjection
    public let inspectsPlainText = true

    public init() {}

    public func inspect(_ value: InspectedValue, into findings: inout [Finding]) {
        let bytes = value.normalized
        guard bytes.count >= 5 else { return }
        if let match = Self.names.firstMatch(in: bytes) {
            report("java.\(Self.names.needles[match.needle])", .critical, value, into: &findings)
            return
        }
        if value.decodedFromBase64 || value.present.contains(UInt8(ascii: ".")), let rule = Self.runtimeAccess(bytes, encoded: value.decodedFromBase64) {
            report("java.\(rule)", .critical, value, into: &findings)
            return
        }
        if Self.serializedObject(value) { report("java.serialized-object", .critical, value, into: &findings) }
    }

    /// A serialized object's magic: its two bytes at the start, in hex, or in base64 (plain
    /// and gzipped), which keeps its case, so the raw value is read. Each magic is looked
    /// for only when the value holds all its characters.
    static func serializedObject(_ value: InspectedValue) -> Bool {
        if value.utf8.starts(with: [0xC2, 0xAC, 0xC3, 0xAD]) { return true }  // U+00AC U+00ED
        for (magic, characters) in serializedMagic where characters.isSubset(of: value.present) {
            if magic == "aced0005" ? Bytes.contains(value.normalized, magic) : Bytes.contains(value.utf8, magic) { return true }
        }
        return false
    }

    private static let serializedMagic = ["rO0AB", "H4sIAAAAAAAA", "KztAAU", "Cs7QAF", "aced0005"].map { ($0, ByteSet($0.lowercased())) }

    /// A dotted name from `java.` to `Runtime` or `ProcessBuilder` (`java.evil.runtime`, never
    /// the prose "Java runtime"), or a value that decoded from base64 to nothing but such a
    /// class name.
    static func runtimeAccess(_ bytes: [UInt8], encoded: Bool) -> String? {
        func isNameByte(_ b: UInt8) -> Bool { Bytes.isWordByte(b) || b == UInt8(ascii: ".") || b == UInt8(ascii: "$") }
        if encoded, bytes.allSatisfy(isNameByte), runtimeClasses.firstMatch(in: bytes) != nil { return "encoded-class-name" }
        var from = 0
        while let start = Bytes.find(javaPrefix, in: bytes, from: from) {
            from = start + javaPrefix.count
            guard start == 0 || !isNameByte(bytes[start - 1]) else { continue }
            var end = from
            while end < bytes.count, isNameByte(bytes[end]) { end += 1 }
            if runtimeClasses.firstMatch(in: Array(bytes[from..<end])) != nil { return "runtime-path" }
        }
        return nil
    }

    private static let javaPrefix = Array("java.".utf8)
    static let runtimeClasses = KeywordMatcher(["runtime", "processbuilder"])

    static let names = KeywordMatcher([
        "java.lang", "java.io.", "java.net.", "java.nio.", "java.util.", "java.beans.", "java.rmi.", "java.security.", "java.sql.", "javax",
        "sun.misc.", "sun.reflect.", "com.sun.", "jdk.internal", "jdk.jshell", "org.apache.commons.", "org.apache.xalan", "org.apache.tomcat",
        "org.springframework.", "org.codehaus.groovy", "com.thoughtworks.xstream", "org.hibernate.", "bsh.", "ognl.", "groovy.lang", "com.mchange.",
        "org.mozilla.javascript", "org.apache.commons", "org.omg.", "com.opensymphony", "org.apache.struts", "freemarker.template", "org.yaml.snakeyaml",
        "com.caucho", "org.jboss", "org.apache.bcel", "org.apache.log4j", "org.apache.xbean", "org.apache.myfaces", "org.eclipse.", "instantiatefactory", "weblogic.", "com.alibaba.fastjson", "com.fasterxml.jackson", "net.sf.json", "org.python.", "clojure.",
        "processbuilder", "runtime.getruntime", "getruntime(", ".getclass(", "classloader", ".forname(", "getdeclaredmethod", "getmethod(",
        "newinstance(", ".invoke(", "invokertransformer", "chainedtransformer", "constanttransformer", "instantiatetransformer", "clonetransformer",
        "forclosure", "whileclosure", "templatesimpl", "prototypeserializationfactory", "prototypeclonefactory",
        "jdbcrowsetimpl", "transformedmap", "lazymap", "annotationinvocationhandler", "badattributevalueexpexception", "priorityqueue",
        "class.module", "class.classloader", "runtime.exec", "@java.", "#_memberaccess", "#context[", "ognlcontext",
        "_jspx_", "jndi:", "org.apache.naming",
    ])
}
