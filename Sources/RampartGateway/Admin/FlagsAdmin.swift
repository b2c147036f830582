import Hummingbird
import HTTPTypes
import NIOCore
import RampartCore
import RampartFlags
import RampartStore

/// `/api/feature-flags`: list, create or update (flagd definitions or the simple form),
/// delete, and the audit trail of every change with who made it and when.
struct FlagsAdmin {
    let runtime: FlagRuntime?

    /// Who made a change: the `X-Rampart-Actor` header (the console sends the signed-in
    /// user), else `admin`.
    static let actorHeader = HTTPField.Name("X-Rampart-Actor")!

    func register(on router: Router<BasicRequestContext>) {
        router.get("/api/feature-flags") { request, _ -> Response in
            guard let runtime else { return notConfigured() }
            let set = runtime.flags.flagSet
            if let key = request.uri.queryParameters["key"].map(String.init) {
                guard let flag = set.flags[key] else { return errorAnswer(.notFound, "no flag \"\(key)\"") }
                return jsonResponse(describe(flag, runtime: runtime))
            }
            let flags = set.flags.keys.sorted().map { describe(set.flags[$0]!, runtime: runtime) }
            let sources: [JSONValue] = runtime.catalog.sourceStatus.map { source in
                var fields: [String: JSONValue] = ["path": .string(source.path), "flags": .array(source.flags.map(JSONValue.string)),
                                                   "errors": .array(source.errors.map(JSONValue.string))]
                if let at = source.loadedAt { fields["loadedAt"] = .number(at) }
                return .object(fields)
            }
            let unreadable: [JSONValue] = runtime.unreadable.map { .object(["key": .string($0.key), "error": .string($0.problem)]) }
            return jsonResponse(.object(["version": .string(set.version), "flags": .array(flags), "sources": .array(sources),
                                      "unreadable": .array(unreadable)]))
        }
        router.post("/api/feature-flags") { request, _ -> Response in
            guard let runtime else { return notConfigured() }
            let document: JSONValue
            do {
                let body = try await request.body.collect(upTo: 256 * 1024)
                document = try JSONValue(parsing: body.readableBytesView)
            } catch let error as JSONParseError {
                return errorAnswer(.badRequest, "the body is not JSON: \(error)")
            } catch {
                return errorAnswer(.contentTooLarge, "a flag document may be at most 256 KiB")
            }
            let actor = request.headers[Self.actorHeader] ?? "admin"
            do throws(FlagRuntime.ChangeError) {
                let (flag, action) = try await runtime.put(document: document, actor: actor)
                return jsonResponse(describe(flag.flag, runtime: runtime), status: action == .create ? .created : .ok)
            } catch {
                return Self.refusal(error)
            }
        }
        router.delete("/api/feature-flags") { request, _ -> Response in
            guard let runtime else { return notConfigured() }
            guard let key = request.uri.queryParameters["key"].map(String.init), !key.isEmpty else {
                return errorAnswer(.badRequest, "name the flag: DELETE /api/feature-flags?key=...")
            }
            do throws(FlagRuntime.ChangeError) {
                guard try await runtime.delete(key, actor: request.headers[Self.actorHeader] ?? "admin") else {
                    return errorAnswer(.notFound, "no flag \"\(key)\" made through the admin API")
                }
                return Response(status: .noContent)
            } catch {
                return Self.refusal(error)
            }
        }
        router.get("/api/feature-flags/audit") { request, _ -> Response in
            guard let runtime else { return notConfigured() }
            let limitText = request.uri.queryParameters["limit"].map(String.init)
            guard let limit = limitText.map({ Int($0) }) ?? 100, (1...1000).contains(limit) else {
                return errorAnswer(.badRequest, "limit: a whole number from 1 to 1000")
            }
            do {
                let entries = try await runtime.store.audit(key: request.uri.queryParameters["key"].map(String.init), limit: limit)
                return jsonResponse(.object(["entries": .array(entries.map { entry in
                    var fields: [String: JSONValue] = ["id": .number(Double(entry.id)), "key": .string(entry.key),
                                                       "action": .string(entry.action.rawValue), "actor": .string(entry.actor),
                                                       "time": .number(entry.time)]
                    if let text = entry.document { fields["document"] = (try? JSONValue(parsing: text)) ?? .string(text) }
                    return .object(fields)
                })]))
            } catch {
                return errorAnswer(.serviceUnavailable, "the flag store failed: \(error)")
            }
        }
    }

    private func notConfigured() -> Response {
        errorAnswer(.notFound, "feature flags are not configured (add a flags section)")
    }

    private func describe(_ flag: Flag, runtime: FlagRuntime) -> JSONValue {
        var fields: [String: JSONValue] = [
            "key": .string(flag.key), "source": .string(flag.source), "state": .string(flag.state.rawValue),
            "variants": .object(Dictionary(uniqueKeysWithValues: flag.variants.map { ($0.name, $0.value) })),
            "defaultVariant": flag.defaultVariant.map(JSONValue.string) ?? .null,
            "metadata": .object(flag.metadata), "definition": flag.definition,
        ]
        if let managed = runtime.catalog.managed(flag.key) {
            fields["document"] = managed.document
            fields["updatedBy"] = .string(managed.updatedBy)
            fields["updatedAt"] = .number(managed.updatedAt)
        }
        let counts = runtime.usage.counts(for: flag.key)
        fields["evaluations"] = .object([
            "total": .number(Double(runtime.usage.total(for: flag.key))),
            "byVariant": .object(counts.mapValues { .object($0.mapValues { .number(Double($0)) }) }),
        ])
        return .object(fields)
    }

    static func refusal(_ error: FlagRuntime.ChangeError) -> Response {
        switch error {
        case .invalid(let problems):
            let issues: [JSONValue] = problems.issues.map { .object(["path": .string($0.path), "message": .string($0.problem)]) }
            return jsonResponse(.object(["error": .string("the flag is not valid: \(problems.issues.map(\.description).joined(separator: "; "))"),
                                 "issues": .array(issues)]), status: .unprocessableContent)
        case .conflict(let message): return errorAnswer(.conflict, message)
        case .store(let message): return errorAnswer(.serviceUnavailable, message)
        }
    }
}
