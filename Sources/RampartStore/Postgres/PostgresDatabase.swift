public import Logging
import NIOSSL
import PostgresNIO
import Synchronization
public import RampartCore

/// A PostgreSQL database shared by every replica: a pool of connections (postgres-nio),
/// migrations applied once however many replicas start together, and a time limit on every
/// use so a database that is down or stuck fails a call instead of holding it.
///
/// The pool works only while `run()` runs (the gateway runs it for as long as it serves).
public final class PostgresDatabase: Sendable {
    /// The URL with its password hidden, for logs and `rampart check`.
    public let redactedURL: String
    /// How long one use (a query, or a transaction with its queries) may take.
    public let timeout: Duration
    let client: PostgresClient
    let logger: Logger
    let endpoint: Endpoint

    /// Whether `text` names a PostgreSQL database rather than a file.
    public static func isURL(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    /// `url` with its password hidden.
    public static func redacted(_ url: String) -> String { ServiceURL.redact(url) }

    /// - Parameter url: `postgres://user:password@host[:5432]/database[?sslmode=...]`; sslmode
    ///   `disable`, `prefer` (the default, as libpq), `require` (encrypted, certificate not
    ///   checked, as libpq), `verify-ca` or `verify-full`.
    /// - Throws: the problem with `url`, at `path`.
    public init(url: String, path: String, timeout: Duration = .seconds(5), maximumConnections: Int = 10,
                logger: Logger) throws(ConfigurationIssue) {
        let endpoint = try Endpoint(url, path: path)
        var configuration = PostgresClient.Configuration(host: endpoint.host, port: endpoint.port, username: endpoint.username,
                                                         password: endpoint.password, database: endpoint.database,
                                                         tls: endpoint.tls.client)
        configuration.options.maximumConnections = maximumConnections
        configuration.options.connectTimeout = timeout
        self.redactedURL = ServiceURL.redact(url)
        self.timeout = timeout
        self.logger = logger
        self.endpoint = endpoint
        // The pool logs every failed connection attempt at info; the users of this type log
        // an outage once, with `diagnose()`.
        var poolLogger = logger
        poolLogger.logLevel = max(logger.logLevel, .warning)
        self.client = PostgresClient(configuration: configuration, backgroundLogger: poolLogger)
    }

    /// Checks `url` without connecting (for `rampart check` and configuration validation).
    public static func validate(url: String, path: String) -> [ConfigurationIssue] {
        do throws(ConfigurationIssue) {
            _ = try Endpoint(url, path: path)
            return []
        } catch {
            return [error]
        }
    }

    /// Where and how to connect, from a URL.
    struct Endpoint: Sendable {
        enum Encryption: Sendable {
            case disable, prefer(TLSConfiguration), require(TLSConfiguration)

            var client: PostgresClient.Configuration.TLS {
                switch self {
                case .disable: .disable
                case .prefer(let tls): .prefer(tls)
                case .require(let tls): .require(tls)
                }
            }

            func connection() throws -> PostgresConnection.Configuration.TLS {
                switch self {
                case .disable: .disable
                case .prefer(let tls): .prefer(try NIOSSLContext(configuration: tls))
                case .require(let tls): .require(try NIOSSLContext(configuration: tls))
                }
            }
        }

        var host: String
        var port: Int
        var username: String
        var password: String?
        var database: String
        var tls: Encryption

        init(_ url: String, path: String) throws(ConfigurationIssue) {
            func issue(_ problem: String) -> ConfigurationIssue { ConfigurationIssue(path: path, problem) }
            let parts: ServiceURL
            do throws(ServiceURLProblem) {
                parts = try ServiceURL.parse(url)
            } catch {
                throw issue(error.problem)
            }
            guard parts.scheme == "postgres" || parts.scheme == "postgresql" else {
                throw issue("must start with postgres:// or postgresql://, got \"\(ServiceURL.redact(url))\"")
            }
            guard let username = parts.username, !username.isEmpty else { throw issue("names no user (postgres://USER:PASSWORD@host/database)") }
            guard !parts.path.isEmpty, !parts.path.contains("/") else { throw issue("names no database (postgres://user:password@host/DATABASE)") }
            for (name, _) in parts.query where name != "sslmode" {
                throw issue("unknown parameter \"\(name)\" (only sslmode is understood)")
            }
            var unchecked = TLSConfiguration.makeClientConfiguration()
            unchecked.certificateVerification = .none
            switch parts.parameter("sslmode") ?? "prefer" {
            case "disable":
                tls = .disable
            case "prefer", "allow":
                tls = .prefer(unchecked)
            case "require":
                tls = .require(unchecked)
            case "verify-ca":
                var checked = TLSConfiguration.makeClientConfiguration()
                checked.certificateVerification = .noHostnameVerification
                tls = .require(checked)
            case "verify-full":
                tls = .require(.makeClientConfiguration())
            case let other:
                throw issue("sslmode must be disable, allow, prefer, require, verify-ca or verify-full, got \"\(other)\"")
            }
            host = parts.host
            port = parts.port ?? 5432
            self.username = username
            password = parts.password
            database = parts.path
        }
    }

    /// Why a connection cannot be made now, found by making one outside the pool (whose
    /// requests wait quietly while it retries, so a timeout alone says little); nil when one
    /// can be made.
    public func diagnose() async -> String? {
        let endpoint = self.endpoint
        do {
            var configuration = PostgresConnection.Configuration(host: endpoint.host, port: endpoint.port, username: endpoint.username,
                                                                 password: endpoint.password, database: endpoint.database,
                                                                 tls: try endpoint.tls.connection())
            configuration.options.connectTimeout = TimeAmount(timeout)
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
            try? await connection.close()
            return nil
        } catch {
            return Self.describe(error)
        }
    }

    /// Runs the connection pool until cancelled.
    public func run() async {
        await client.run()
    }

    // MARK: - Use

    /// Runs `work` with the time limit; a failure or a timeout becomes a `PostgresStoreError`.
    /// The caller gets its answer at the limit even if `work` does not stop when cancelled
    /// (a task group would wait for it): `work` runs in a task of its own, cancelled then and
    /// left to end by itself.
    func bounded<T: Sendable>(_ what: String, _ work: @escaping @Sendable (PostgresClient) async throws -> T) async throws(PostgresStoreError) -> T {
        let (client, timeout, redactedURL) = (self.client, self.timeout, self.redactedURL)
        let race = FirstAnswer<T>()
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, any Error>, Never>) in
                race.start(continuation,
                           work: Task {
                               do { race.answer(.success(try await work(client))) } catch { race.answer(.failure(error)) }
                           },
                           timer: Task {
                               try? await Task.sleep(for: timeout)
                               race.answer(.failure(PostgresStoreError(database: redactedURL, what: what, problem: "no answer within \(timeout)")))
                           })
            }
        } onCancel: {
            race.answer(.failure(CancellationError()))
        }
        switch result {
        case .success(let value):
            return value
        case .failure(let error as PostgresStoreError):
            throw error
        case .failure(let error):
            throw PostgresStoreError(database: redactedURL, what: what, problem: Self.describe(error))
        }
    }

    /// What went wrong, without the query's parameters (postgres-nio's own description says
    /// nothing, on purpose; its debug description says everything).
    static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        if let message = error.serverInfo?[.message] {
            let code = error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
            return message + code
        }
        if let underlying = error.underlying { return "\(error.code): \(underlying)" }
        return "\(error.code)"
    }

    /// Applies each migration not yet applied, in order, under an advisory lock so replicas
    /// starting together apply each once.
    func migrate(_ migrations: [(name: String, statements: [String])]) async throws(PostgresStoreError) {
        let logger = self.logger
        try await bounded("migrating") { client in
            try await client.withTransaction(logger: logger) { connection in
                try await connection.query("SELECT pg_advisory_xact_lock(7265706172)", logger: logger)
                try await connection.query("""
                    CREATE TABLE IF NOT EXISTS rampart_migration (
                        name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())
                    """, logger: logger)
                var applied: Set<String> = []
                for try await name in try await connection.query("SELECT name FROM rampart_migration", logger: logger).decode(String.self) {
                    applied.insert(name)
                }
                for migration in migrations where !applied.contains(migration.name) {
                    for statement in migration.statements {
                        try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    try await connection.query("INSERT INTO rampart_migration (name) VALUES (\(migration.name))", logger: logger)
                }
            }
        }
    }
}


/// A PostgreSQL call that failed or took too long.
public struct PostgresStoreError: Error, CustomStringConvertible {
    public let database: String
    public let what: String
    public let problem: String

    public var description: String { "PostgreSQL (\(database)) \(what): \(problem)" }
}

/// The first of several answers to one waiting caller; the tasks that might still answer are
/// cancelled once it has one.
final class FirstAnswer<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Result<T, any Error>, Never>?
        var pending: Result<T, any Error>?
        var tasks: [Task<Void, Never>] = []
        var answered = false
    }

    private let state = Mutex(State())

    func start(_ continuation: CheckedContinuation<Result<T, any Error>, Never>, work: Task<Void, Never>, timer: Task<Void, Never>) {
        let early = state.withLock { state -> Result<T, any Error>? in
            state.tasks = [work, timer]
            if let pending = state.pending { return pending }
            state.continuation = continuation
            return nil
        }
        if let early {
            work.cancel()
            timer.cancel()
            continuation.resume(returning: early)
        }
    }

    func answer(_ result: Result<T, any Error>) {
        let (continuation, tasks) = state.withLock { state -> (CheckedContinuation<Result<T, any Error>, Never>?, [Task<Void, Never>]) in
            guard !state.answered else { return (nil, []) }
            state.answered = true
            guard let continuation = state.continuation else {
                // Answered before `start` handed over the continuation (cancelled at once).
                state.pending = result
                return (nil, [])
            }
            state.continuation = nil
            return (continuation, state.tasks)
        }
        for task in tasks { task.cancel() }
        continuation?.resume(returning: result)
    }
}
