/// Asks `condition` every `interval` until it holds or `limit` has passed on the clock, and
/// says whether it held. Waits in tests are bounded by time, not by a count of tries, so a
/// loaded CI machine (slow sleeps, slow restarts) gets the same time as a quiet one.
public func waitUntil(
    within limit: Duration = .seconds(30),
    every interval: Duration = .milliseconds(20),
    _ condition: () async throws -> Bool
) async -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: limit)
    while true {
        if (try? await condition()) == true { return true }
        guard clock.now < deadline else { return false }
        try? await Task.sleep(for: interval)
    }
}
