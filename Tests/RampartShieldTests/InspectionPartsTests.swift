import HTTPTypes
import PropertyBased
@testable import RampartShield
import Testing

/// The pieces inspection is made of: byte sets, word sets, keyword automata and their gates,
/// the JSON reader's paths and escapes. Each fast path is checked against the obvious slow
/// answer.
@Suite struct InspectionPartsTests {
    @Test func byteSetHoldsExactlyTheBytesGiven() async {
        await propertyCheck(input: Gen.uint8(in: 0...255).array(of: 0...40), Gen.uint8(in: 0...255)) { bytes, probe in
            let set = ByteSet(bytes)
            #expect(set.contains(probe) == bytes.contains(probe))
            #expect(set.isSubset(of: ByteSet(bytes + [probe])))
            #expect(set.containsAny(of: ByteSet([probe])) == bytes.contains(probe))
        }
        #expect(ByteSet("abc").isSubset(of: ThreatInspector.plain))
        #expect(!ByteSet("a'b").isSubset(of: ThreatInspector.plain))
        #expect(ByteSet([0xFF]).contains(0xFF) && !ByteSet([0xFF]).contains(0x7F))
    }

    @Test func wordSetFindsItsWordsAndNothingElse() async {
        let words = ["cat", "ls", "python3", "ssh-keygen", "a", "information_schema"]
        let set = WordSet(words)
        for word in words {
            #expect(set.contains(word))
            #expect(set.contains(Array(word.utf8)[...]))
        }
        for other in ["", "ca", "cats", "l", "python", "ssh", "b", "information_schem"] { #expect(!set.contains(other), "\(other)") }
        await propertyCheck(input: Gen.uint8(in: 97...100).array(of: 0...4)) { bytes in
            let dictionary = WordSet(["ab", "abc", "d", "dd", "cab"])
            #expect(dictionary.contains(bytes[...]) == ["ab", "abc", "d", "dd", "cab"].contains(String(decoding: bytes, as: UTF8.self)))
        }
    }

    /// The one-pass normalization of plain text gives what the full one gives, and the set of
    /// exactly the bytes it holds.
    @Test func oneStepNormalizationMatchesTheFullOne() async {
        await propertyCheck(input: Gen.uint8(in: 0...255).array(of: 0...24), Gen.uint8(in: 0x20...0x7E).array(of: 0...24)) { any, ascii in
            for input in [any, ascii] {
                let (bytes, present) = Normalizer.normalizedWithByteSet(input)
                #expect(bytes == Normalizer.normalize(input))
                #expect(present == ByteSet(bytes))
            }
        }
    }

    /// The byte-level check for hidden files and backup extensions in a path answers as the
    /// obvious one over Characters does.
    @Test func restrictedPathAgreesWithTheCharacterCheck() async {
        func reference(_ path: String) -> String? {
            for segment in path.split(separator: "/") where segment.hasPrefix(".") && segment.count > 1 && segment != ".well-known" {
                if segment.dropFirst().first?.isLetter == true { return "hidden-file" }
            }
            if let last = path.split(separator: "/").last, let dot = last.lastIndex(of: "."),
               PathTraversalDetector.restrictedExtensions.contains(String(last[last.index(after: dot)...])) {
                return "restricted-extension"
            }
            return path.hasSuffix("~") ? "restricted-extension" : nil
        }
        let pieces = ["/", ".", "..", "a", "env", "bak", "well-known", "~", "ø", "1", ".well-known", "sql"]
        await propertyCheck(input: Gen.int(in: 0...(pieces.count - 1)).array(of: 0...8)) { picks in
            let path = picks.map { pieces[$0] }.joined()
            #expect(PathTraversalDetector.restrictedPath(Array(path.utf8)) == reference(path), "\(path)")
        }
        #expect(PathTraversalDetector.restrictedPath(Array("/.git/config".utf8)) == "hidden-file")
        #expect(PathTraversalDetector.restrictedPath(Array("/.well-known/security.txt".utf8)) == nil)
        #expect(PathTraversalDetector.restrictedPath(Array("/backup/site.sql".utf8)) == "restricted-extension")
        #expect(PathTraversalDetector.restrictedPath(Array("/api/quizzes".utf8)) == nil)
    }

    /// The gate (one rare byte per needle) never rules out an input that holds a needle, and
    /// the automaton finds every occurrence a naive search finds.
    @Test func keywordMatcherAgreesWithANaiveSearch() async {
        let needles = ["union", "sel", "ect", "e", "--", "x_y", "ab"]
        let matcher = KeywordMatcher(needles)
        await propertyCheck(input: Gen.int(in: 0...(needles.count + 3)).array(of: 0...12)) { picks in
            let pieces = picks.map { $0 < needles.count ? needles[$0] : [" ", "q", "z!", "é"][$0 - needles.count] }
            let text = Array(pieces.joined().utf8)
            let naive = Set(needles.indices.flatMap { index in
                let needle = Array(needles[index].utf8)
                return text.indices.compactMap { start in
                    start + needle.count <= text.count && Array(text[start..<(start + needle.count)]) == needle ? (index * 1000 + start + needle.count) : nil
                }
            })
            let found = Set(matcher.matches(in: text).map { $0.needle * 1000 + $0.end })
            #expect(found == naive)
            if !naive.isEmpty { #expect(matcher.mayMatch(ByteSet(text))) }
        }
    }

    /// Stopping a base64 decoding early (once it cannot be mostly printable) keeps exactly the
    /// decodings the full check keeps.
    @Test func base64EarlyStopKeepsWhatTheFullCheckKeeps() async {
        await propertyCheck(input: Gen.uint8(in: 0...63).array(of: 8...60)) { sextets in
            let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
            let text = sextets.map { alphabet[Int($0)] }[...]
            for phase in 0..<4 {
                let full = Base64Text.decode(text, phase: phase)
                let printable = full.filter { ($0 >= 0x20 && $0 < 0x7F) || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }.count
                let kept = printable * 10 >= full.count * 9
                let early = Base64Text.decode(text, phase: phase, nonPrintableAllowed: text.count * 3 / 40)
                if kept { #expect(early == full) }
            }
        }
    }

    @Test func jsonValuesAreLocatedByPathWithEscapesUndone() {
        let body = Array(#"{"a":{"b":["x",{"c":"y\"z"}],"d":"\u00e9t\u00e9"},"e":[[1,"w"]],"f":true}"#.utf8)
        var values = RequestInputs.Values(include: { _ in true })
        #expect(RequestInputs.json(body, into: &values))
        let seen = values.found.map { "\($0.location)=\($0.raw)" }
        #expect(seen == ["json:$.a#name=a", "json:$.a.b#name=b", "json:$.a.b[0]=x", "json:$.a.b[1].c#name=c", "json:$.a.b[1].c=y\"z",
                         "json:$.a.d#name=d", "json:$.a.d=été", "json:$.e#name=e", "json:$.e[0][1]=w", "json:$.f#name=f"])
        for broken in [#"{"a":}"#, #"{"a":1,}"#, #"["x""#, #"{"a":infinity}"#, #"{"a":"b"} x"#] {
            var ignored = RequestInputs.Values(include: { _ in true })
            #expect(!RequestInputs.json(Array(broken.utf8), into: &ignored), "\(broken)")
        }
    }

    /// A header or cookie value seen before is judged from memory, and judged the same: an
    /// attack is still an attack the second time, context checks still run, and repeated
    /// header fields (whose findings cannot be told apart) are not remembered.
    @Test func rememberedHeaderVerdictsMatchFreshOnes() {
        let inspector = ThreatInspector(WAFConfiguration())
        let attack = HTTPRequest(method: .get, scheme: "http", authority: "x", path: "/",
                                 headerFields: [.userAgent: "sqlmap/1.8", .cookie: "pref=<script>alert(1)</script>; theme=dark"])
        let first = inspector.inspect(attack, body: nil)
        #expect(first.score >= 10)
        #expect(inspector.verdicts.count == 5)  // user-agent; pref and theme, each name and value
        let again = inspector.inspect(attack, body: nil)
        #expect(Set(again.findings) == Set(first.findings))
        #expect(again.score == first.score)

        // The same User-Agent with a cross-site session parameter: the request-level check runs.
        let fixation = HTTPRequest(method: .get, scheme: "http", authority: "x", path: "/?jsessionid=abc",
                                   headerFields: [.userAgent: "sqlmap/1.8"])
        #expect(inspector.inspect(fixation, body: nil).findings.contains { $0.rule == "session.identifier-in-parameter" })

        // Two X-Note fields: one benign, one not. Neither is remembered; both are judged.
        var fields = HTTPFields()
        fields.append(HTTPField(name: HTTPField.Name("X-Note")!, value: "hello"))
        fields.append(HTTPField(name: HTTPField.Name("X-Note")!, value: "1' union select password from users--"))
        let repeated = HTTPRequest(method: .get, scheme: "http", authority: "x", path: "/", headerFields: fields)
        let before = inspector.verdicts.count
        #expect(inspector.inspect(repeated, body: nil).findings.contains { $0.kind == .sqlInjection })
        #expect(inspector.verdicts.count == before)
        #expect(inspector.inspect(repeated, body: nil).findings.contains { $0.kind == .sqlInjection })
    }

    @Test func queryAndCookieValuesAreSplitOnBytes() {
        let request = HTTPRequest(method: .get, scheme: "http", authority: "x", path: "/p?a=1+2&b=%41%2&&c&d%3De=f",
                                  headerFields: [.cookie: " s = v=w ; t"])
        let inspector = ThreatInspector(WAFConfiguration())
        let seen = inspector.inputs(of: request, body: nil).map { "\($0.location)=\($0.raw)" }
        #expect(seen == ["path=/p", "query:a#name=a", "query:a=1 2", "query:b#name=b", "query:b=A%2", "query:c#name=c",
                         "query:d=e#name=d=e", "query:d=e", "query:d=e=f", "cookie:s#name=s", "cookie:s= v=w ", "cookie:t#name=t"])
    }
}
