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
        if let rule = Self.runtimeAccess(bytes, encoded: value.decodedFromBase64) {
            report("java.\(rule)", .critical, value, into: &findings)
            return
        }
        // Serialized objects keep their case-sensitive magic: look at the raw value.
        let raw = value.raw
        if Bytes.contains(raw, "rO0AB") || Bytes.contains(raw, "H4sIAAAAAAAA") || Bytes.contains(raw, "KztAAU") || Bytes.contains(raw, "Cs7QAF")
            || raw.hasPrefix("\u{AC}\u{ED}") || Bytes.contains(bytes, "aced0005") {
            report("java.serialized-object", .critical, value, into: &findings)
        }
    }

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
