/// Where rate-limit state lives: in this process (`MemoryRateLimitStore`) or shared by
/// every replica (a Redis store). One call decides one request atomically.
public protocol RateLimitStore: Sendable {
    func decide(key: String, cost: Int, limit: RateLimit, algorithm: RateLimitAlgorithm) async throws -> RateLimitDecision
}
