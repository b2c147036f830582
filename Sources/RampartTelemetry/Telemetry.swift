public import Logging
import Metrics
public import Prometheus
import Synchronization

/// The process-wide telemetry backends, chosen once in `main` as swift-log and swift-metrics
/// intend. Tests do not bootstrap; they read the registry they pass in.
public enum Telemetry {
    private static let bootstrapped = Mutex<PrometheusCollectorRegistry?>(nil)

    /// Installs the JSON log handler at `level` and a Prometheus metrics factory over one
    /// registry, and returns that registry for `/metrics`. Calling it again returns the first
    /// registry and changes nothing (the backends can only be set once per process).
    @discardableResult
    public static func bootstrap(logLevel: Logger.Level) -> PrometheusCollectorRegistry {
        bootstrapped.withLock { existing in
            if let existing { return existing }
            LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: logLevel) }
            let registry = PrometheusCollectorRegistry()
            var factory = PrometheusMetricsFactory(registry: registry)
            factory.defaultDurationHistogramBuckets = [
                .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
                .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
                .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30),
            ]
            // Value histograms (swift-metrics recorders) by name: GraphQL cost and depth.
            factory.valueHistogramBuckets["graphql_query_cost"] = [1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 100_000]
            factory.valueHistogramBuckets["graphql_query_depth"] = [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 30]
            MetricsSystem.bootstrap(factory)
            existing = registry
            return registry
        }
    }

    /// The registry installed by `bootstrap`, if any.
    public static var registry: PrometheusCollectorRegistry? { bootstrapped.withLock { $0 } }
}
