import Foundation
import Logging
import NIOPosix
import PostgresNIO

/// A database of its own for one test, on the PostgreSQL that `scripts/services.sh start
/// postgres` runs (`RAMPART_TEST_POSTGRES_URL`), dropped when the test is done. Tests that
/// need one are skipped, and say so, when the variable is not set.
public struct PostgresTestDatabase: Sendable {
    /// The server's URL from the environment, if tests may use one.
    public static var serverURL: String? { ProcessInfo.processInfo.environment["RAMPART_TEST_POSTGRES_URL"] }
    public static var isAvailable: Bool { serverURL != nil }
    public static let skipReason = "RAMPART_TEST_POSTGRES_URL is not set: run scripts/services.sh start postgres and source its env file"

    /// A URL naming the new database, same server and credentials.
    public let url: String
    let name: String

    /// Creates a database with a fresh name and runs `body` with it, dropping it afterwards.
    public static func with<T: Sendable>(_ body: (PostgresTestDatabase) async throws -> T) async throws -> T {
        let database = try await PostgresTestDatabase()
        do {
            let result = try await body(database)
            try? await database.drop()
            return result
        } catch {
            try? await database.drop()
            throw error
        }
    }

    init() async throws {
        guard let server = Self.serverURL, var components = URLComponents(string: server) else {
            throw TestSupportError(Self.skipReason)
        }
        name = "rampart_t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
        components.path = "/" + name
        url = components.string!
        try await Self.administer(server, "CREATE DATABASE \(name)")
    }

    func drop() async throws {
        guard let server = Self.serverURL else { return }
        try await Self.administer(server, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    /// An outage of this database alone: it refuses new connections and the ones it has are
    /// ended. Other tests' databases on the same server are untouched.
    public func refuseConnections() async throws {
        guard let server = Self.serverURL else { return }
        try await Self.administer(server, "ALTER DATABASE \(name) ALLOW_CONNECTIONS false")
        try await Self.administer(server, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(name)'")
    }

    /// Ends the outage `refuseConnections()` began.
    public func allowConnections() async throws {
        guard let server = Self.serverURL else { return }
        try await Self.administer(server, "ALTER DATABASE \(name) ALLOW_CONNECTIONS true")
    }

    /// Runs one statement on the server's own database over a connection of its own.
    static func administer(_ server: String, _ sql: String) async throws {
        guard let components = URLComponents(string: server), let host = components.host, let user = components.user else {
            throw TestSupportError("RAMPART_TEST_POSTGRES_URL is not a postgres:// URL: \(server)")
        }
        let configuration = PostgresConnection.Configuration(
            host: host, port: components.port ?? 5432, username: user, password: components.password,
            database: String(components.path.dropFirst()), tls: .disable)
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: Logger(label: "test-postgres"))
        do {
            for try await _ in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: Logger(label: "test-postgres")) {}
            try await connection.close()
        } catch {
            try? await connection.close()
            throw error
        }
    }
}
