import Foundation
import GraphQL
import Hummingbird
import Logging
import NIOCore
import OrderedCollections
import RampartTesting
import Synchronization

/// A real GraphQL server for the gateway's tests, built on GraphQLSwift and Hummingbird: a
/// small product catalogue with queries, a mutation and a field that fails. Queries are
/// answered with `Cache-Control: public, max-age=60`, mutations with `no-store`. It counts the
/// operations it executed, so a test can tell a cache hit (not counted) from a miss.
final class GraphQLUpstream: Sendable {
    struct Product: Sendable {
        var id: String
        var name: String
        var price: Int
    }

    final class Catalogue: Sendable {
        let products = Mutex<[String: Product]>([
            "1": Product(id: "1", name: "Lamp", price: 30),
            "2": Product(id: "2", name: "Desk", price: 250),
            "3": Product(id: "3", name: "Chair", price: 120),
        ])
    }

    let catalogue = Catalogue()
    let executed = Atomic<Int>(0)
    let schema: GraphQLSchema

    init() throws {
        let product = try GraphQLObjectType(name: "Product", fields: [
            "id": GraphQLField(type: GraphQLNonNull(GraphQLID)),
            "name": GraphQLField(type: GraphQLNonNull(GraphQLString)),
            "price": GraphQLField(type: GraphQLInt),
        ])
        let catalogue = self.catalogue
        let fields = Self.fields
        schema = try GraphQLSchema(
            query: GraphQLObjectType(name: "Query", fields: [
                "product": GraphQLField(type: product, args: ["id": GraphQLArgument(type: GraphQLNonNull(GraphQLID))]) { _, args, _, _ in
                    catalogue.products.withLock { $0[args["id"].string ?? ""] }.map(fields)
                },
                "products": GraphQLField(type: GraphQLNonNull(GraphQLList(GraphQLNonNull(product))),
                                         args: ["first": GraphQLArgument(type: GraphQLInt)]) { _, args, _, _ in
                    let all = catalogue.products.withLock { $0.values.sorted { $0.id < $1.id } }
                    return all.prefix(args["first"].int ?? all.count).map(fields)
                },
                "padding": GraphQLField(type: GraphQLString, args: ["bytes": GraphQLArgument(type: GraphQLNonNull(GraphQLInt))]) { _, args, _, _ in
                    String(repeating: "x", count: max(0, min(args["bytes"].int ?? 0, 1 << 20)))
                },
                "broken": GraphQLField(type: GraphQLString) { _, _, _, _ in
                    struct Broken: Error, CustomStringConvertible { var description: String { "the broken field always fails" } }
                    throw Broken()
                },
            ]),
            mutation: GraphQLObjectType(name: "Mutation", fields: [
                "renameProduct": GraphQLField(type: product, args: [
                    "id": GraphQLArgument(type: GraphQLNonNull(GraphQLID)),
                    "name": GraphQLArgument(type: GraphQLNonNull(GraphQLString)),
                ]) { _, args, _, _ in
                    catalogue.products.withLock { products -> [String: any Sendable]? in
                        guard var item = products[args["id"].string ?? ""] else { return nil }
                        item.name = args["name"].string ?? item.name
                        products[item.id] = item
                        return fields(item)
                    }
                },
            ])
        )
    }

    @Sendable static func fields(_ item: Product) -> [String: any Sendable] { ["id": item.id, "name": item.name, "price": item.price] }

    struct Request: Decodable {
        var query: String
        var variables: [String: Map]?
        var operationName: String?
    }

    /// One operation's result and whether it was a query (cacheable).
    func execute(_ request: Request) async -> (GraphQLResult, Bool) {
        executed.add(1, ordering: .relaxed)
        let isQuery = !request.query.trimmingCharacters(in: .whitespaces).hasPrefix("mutation")
        do {
            let result = try await graphql(schema: schema, request: request.query, variableValues: request.variables ?? [:],
                                           operationName: request.operationName)
            return (result, isQuery)
        } catch {
            return (GraphQLResult(errors: [GraphQLError(message: "\(error)")]), isQuery)
        }
    }

    /// Serves `POST /graphql` (one operation or a batch) on 127.0.0.1 until `body` returns.
    func serve<T: Sendable>(_ body: @Sendable (_ url: String) async throws -> T) async throws -> T {
        try await serveHTTP(router(), body)
    }

    /// Serves `text` as `application/json` to every request: a broken upstream.
    static func serveFixed<T: Sendable>(_ text: String, _ body: @Sendable (_ url: String) async throws -> T) async throws -> T {
        let router = Router()
        router.post("/graphql") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        return try await serveHTTP(router, body)
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.post("/graphql") { request, _ -> Response in
            let bytes = Data(try await request.body.collect(upTo: 1 << 20).readableBytesView)
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            let data: Data
            var cacheable = true
            if let batch = try? JSONDecoder().decode([Request].self, from: bytes) {
                var results: [GraphQLResult] = []
                for entry in batch {
                    let (result, isQuery) = await self.execute(entry)
                    results.append(result)
                    cacheable = cacheable && isQuery
                }
                data = try encoder.encode(results)
            } else {
                let (result, isQuery) = await self.execute(try JSONDecoder().decode(Request.self, from: bytes))
                cacheable = isQuery && result.errors.isEmpty
                data = try encoder.encode(result)
            }
            return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: cacheable ? "public, max-age=60" : "no-store"],
                            body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        return router
    }
}
