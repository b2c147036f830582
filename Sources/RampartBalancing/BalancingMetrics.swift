import CoreMetrics

/// The `load_balancer_*` metric handles of one instance, made once when the instance is
/// added so the request path only records.
struct InstanceMetrics: Sendable {
    let requests2xx: Counter
    let requests3xx: Counter
    let requests4xx: Counter
    let requests5xx: Counter
    let requestsFailed: Counter
    let duration: Timer
    let activeConnections: Gauge
    let healthy: Gauge
    let ejections: Counter
    let retries: Counter

    init(pool: String, instance: String) {
        let dims = [("pool", pool), ("instance", instance)]
        func requests(_ status: String) -> Counter {
            Counter(label: "load_balancer_requests_total", dimensions: dims + [("status_class", status)])
        }
        requests2xx = requests("2xx")
        requests3xx = requests("3xx")
        requests4xx = requests("4xx")
        requests5xx = requests("5xx")
        requestsFailed = requests("error")
        duration = Timer(label: "load_balancer_upstream_duration_seconds", dimensions: dims, preferredDisplayUnit: .seconds)
        activeConnections = Gauge(label: "load_balancer_active_connections", dimensions: dims)
        healthy = Gauge(label: "load_balancer_instance_healthy", dimensions: dims)
        ejections = Counter(label: "load_balancer_ejections_total", dimensions: dims)
        retries = Counter(label: "load_balancer_retries_total", dimensions: dims)
    }

    /// Takes the instance's series out of the exposition: it has left its pool. Another
    /// instance made later under the same pool and address starts them again.
    func destroy() {
        for counter in [requests2xx, requests3xx, requests4xx, requests5xx, requestsFailed, ejections, retries] { counter.destroy() }
        duration.destroy()
        activeConnections.destroy()
        healthy.destroy()
    }

    func recordRequest(status: Int?) {
        switch status {
        case .some(200..<300): requests2xx.increment()
        case .some(300..<400): requests3xx.increment()
        case .some(400..<500): requests4xx.increment()
        case .some(500..<600): requests5xx.increment()
        default: requestsFailed.increment()
        }
    }
}
