import ArgumentParser
import Foundation
import HTTPTypes
import RampartCore
import RampartGateway
import RampartShield

/// `rampart inspect`: runs the shield's threat detection over one request given on the
/// command line and prints what it finds, so an operator can see why a request is (or is
/// not) refused without sending it. With `--repeat` it also prints what inspection costs.
struct Inspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what threat detection finds in one request, and what inspecting it costs.")

    @Option(name: .shortAndLong, help: "Path to rampart.yml (its shield.waf settings apply); embedded defaults otherwise.")
    var config: String?
    @Option(name: .shortAndLong, help: "Request method.") var method: String = "GET"
    @Argument(help: "Request target: a path with its query, such as '/search?q=x'.") var target: String
    @Option(name: [.customShort("H"), .customLong("header")], help: "A header, 'Name: value'; repeatable.")
    var headers: [String] = []
    @Option(name: [.customShort("d"), .customLong("data")], help: "Request body; '@FILE' reads it from a file.")
    var data: String?
    @Flag(name: .customLong("values"), help: "Also print every value inspected, with its location, as the detectors see it.")
    var showValues = false
    @Flag(name: .customLong("detectors"), help: "With --repeat, also print what each detector costs on its own.")
    var perDetector = false
    @Option(name: .customLong("repeat"), help: "Inspect the request this many times and print the mean time per inspection.")
    var repetitions: Int = 0

    func validate() throws {
        guard repetitions >= 0 else { throw ValidationError("--repeat cannot be negative") }
        guard target.hasPrefix("/") else { throw ValidationError("the target must start with '/', got \"\(target)\"") }
    }

    func run() async throws {
        var waf = WAFConfiguration()
        if let config {
            do {
                waf = try ConfigurationLoader(environment: currentEnvironment()).load(path: config).shield.waf
            } catch {
                printError("rampart: \(config) is not valid:\n\(error)")
                throw ExitCode(2)
            }
        }
        let request = try makeRequest()
        let body = try readBody().map { Array($0.prefix(waf.inspectBodyBytes.bytes)) }
        let inspector = ThreatInspector(waf)
        if showValues {
            for value in inspector.inputs(of: request, body: body) {
                print("value\t\(value.location)\t\(String(decoding: value.normalized, as: UTF8.self).debugDescription)")
            }
        }
        let report = inspector.inspect(request, body: body)
        for finding in report.findings {
            print("\(finding.severity.name)\t\(finding.kind.rawValue)\t\(finding.rule)\t\(finding.location)")
        }
        let verdict = waf.mode == .off ? "off" : report.score >= waf.threshold ? (waf.mode == .block ? "refused" : "detected") : "passed"
        print("score \(report.score), threshold \(waf.threshold): \(verdict)")
        guard repetitions > 0 else { return }
        // In ten batches, so a busy machine shows as spread rather than as a wrong mean.
        let clock = ContinuousClock()
        let batch = max(1, repetitions / 10)
        var total = 0
        var means: [Double] = []
        for _ in 0..<10 {
            let elapsed = clock.measure {
                for _ in 0..<batch { total &+= inspector.inspect(request, body: body).score }
            }
            means.append((Double(elapsed.components.seconds) * 1e6 + Double(elapsed.components.attoseconds) / 1e12) / Double(batch))
        }
        means.sort()
        print(String(format: "%.2f µs per inspection (fastest batch; median %.2f µs; %d runs)", means[0], means[5], batch * 10))
        if total < 0 { print(total) }  // keeps the loop from being optimized away
        if perDetector { printDetectorCosts(inspector.inputs(of: request, body: body), request: request, batch: batch, clock: clock) }
    }

    /// What each detector spends on this request's values (fastest of ten batches).
    private func printDetectorCosts(_ values: [InspectedValue], request: HTTPRequest, batch: Int, clock: ContinuousClock) {
        var sink: [Finding] = []
        for detector in ThreatInspector.allDetectors() {
            var fastest = Double.infinity
            for _ in 0..<10 {
                let elapsed = clock.measure {
                    for _ in 0..<batch {
                        sink.removeAll(keepingCapacity: true)
                        detector.inspect(values, skippingPlain: !detector.inspectsPlainText, into: &sink)
                        detector.inspect(request: request, values: values, into: &sink)
                    }
                }
                fastest = min(fastest, (Double(elapsed.components.seconds) * 1e6 + Double(elapsed.components.attoseconds) / 1e12) / Double(batch))
            }
            let name = detector.kind.rawValue
            print("  " + name + String(repeating: " ", count: max(1, 22 - name.count)) + String(format: "%8.2f µs", fastest))
        }
    }

    private func makeRequest() throws -> HTTPRequest {
        var fields = HTTPFields()
        for header in headers {
            guard let colon = header.firstIndex(of: ":"),
                  let name = HTTPField.Name(String(header[..<colon]).trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("write a header as 'Name: value', got \"\(header)\"")
            }
            fields.append(HTTPField(name: name, value: String(header[header.index(after: colon)...]).trimmingCharacters(in: .whitespaces)))
        }
        return HTTPRequest(method: HTTPRequest.Method(method.uppercased()) ?? .get, scheme: "http", authority: "localhost",
                           path: target, headerFields: fields)
    }

    private func readBody() throws -> [UInt8]? {
        guard let data else { return nil }
        guard data.hasPrefix("@") else { return Array(data.utf8) }
        let path = String(data.dropFirst())
        guard let contents = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read the body file \(path)")
        }
        return Array(contents)
    }
}
