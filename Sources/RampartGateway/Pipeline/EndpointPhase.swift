import Hummingbird
import HTTPTypes
import NIOCore
import RampartCore
import RampartFlags
import RampartShield
import RampartStore

/// Phase 6, the part that needs no route: endpoints the gateway answers itself. The CSP
/// violation report endpoint (`shield.cspReports.path`) and OFREP (`flags.ofrep`).
struct EndpointPhase: RouterMiddleware {
    typealias Context = GatewayRequestContext
    let cspReports: CSPReportIntake
    let responder: ThreatResponder
    let ofrep: OFREPEndpoint?

    /// Whether this phase answers requests for `path` (the target without its query).
    func claims(_ path: some StringProtocol, snapshot: GatewaySnapshot) -> Bool {
        isOFREP(path, snapshot: snapshot) || snapshot.configuration.shield.cspReports.map { $0.path == path } == true
    }

    private func isOFREP(_ path: some StringProtocol, snapshot: GatewaySnapshot) -> Bool {
        ofrep != nil && snapshot.configuration.flags?.ofrep.enabled == true && path.hasPrefix("/ofrep/")
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let ofrep, let flags = context.snapshot!.configuration.flags, isOFREP(request.uri.path, snapshot: context.snapshot!) {
            context.record.note {
                $0.route = "ofrep"
                $0.bodyBuffered = true
            }
            return await ofrep.answer(request, context: context, settings: flags.ofrep, tokens: context.snapshot!.ofrepTokens)
        }
        guard let settings = context.snapshot!.configuration.shield.cspReports, request.uri.path == settings.path else {
            return try await next(request, context)
        }
        let requestID = context.record.current.requestID
        context.record.note {
            $0.route = "csp-reports"
            $0.bodyBuffered = true
        }
        func refuse(_ status: Int, _ error: String, _ message: String) -> Response {
            context.record.note { $0.error = error }
            return ErrorResponse.make(status: .init(code: status), error: error, message: message, requestID: requestID)
        }
        guard request.method == .post else {
            var response = refuse(405, "method_not_allowed", "reports are sent with POST")
            response.headers[.allow] = "POST"
            return response
        }
        if let length = request.headers[.contentLength].flatMap(Int.init), length > settings.maxBytes.bytes {
            return refuse(413, "body_too_large", "a report body may be at most \(settings.maxBytes)")
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: settings.maxBytes.bytes)
        } catch {
            return refuse(413, "body_too_large", "a report body may be at most \(settings.maxBytes)")
        }
        let result = cspReports.receive(Array(body.readableBytesView), contentType: request.headers[.contentType],
                                        client: context.state.clientAddress, configuration: settings, at: responder.now)
        switch result {
        case .success(let events):
            for var event in events {
                event.requestID = requestID
                responder.record(event)
            }
            return Response(status: .noContent)
        case .failure(let refusal):
            return refuse(refusal.status, refusal.error, refusal.message)
        }
    }
}
