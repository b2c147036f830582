// limits-bench: how fast rate-limit decisions are, for docs/performance.md. Run through
// scripts/bench-limits.sh, which builds it in release mode, starts Redis and runs
// redis-benchmark on the same script in the same run.
//
//   limits-bench memory [--decisions N] [--keys K] [--tasks T]
//   limits-bench redis URL [--decisions N] [--keys K] [--concurrency C]
//   limits-bench script gcra|sliding-window      prints the Lua source
import Foundation
import RampartCore
import RampartLimits
import RampartStore

func option(_ name: String, default value: Int) -> Int {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count, let number = Int(arguments[index + 1]) else { return value }
    return number
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
}

func percentile(_ sorted: [Duration], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let index = min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)
    return Double(sorted[max(0, index)].nanoseconds) / 1000
}

let arguments = CommandLine.arguments
guard arguments.count >= 2 else { fail("usage: limits-bench memory|redis URL|script NAME [options]") }
let decisions = option("--decisions", default: 1_000_000)
let keys = option("--keys", default: 10_000)
let limit = RateLimit(limit: 1_000_000, window: .seconds(60))
let keyNames = (0..<keys).map { "bench|ip:198.51.100.\($0)" }

switch arguments[1] {
case "script":
    print(arguments.count > 2 && arguments[2] == "sliding-window" ? RedisRateLimitStore.slidingWindowScript.source : RedisRateLimitStore.gcraScript.source)

case "memory":
    // The store alone, and the whole limiter path (policy, key, adaptive limit, violations).
    let tasks = option("--tasks", default: 1)
    let store = MemoryRateLimitStore()
    let limiter = AdaptiveRateLimiter(RateLimitsConfiguration(defaults: .init(base: 1_000_000, window: .seconds(60), adaptive: false)))
    let clients = (0..<keys).map { IPAddress("10.\($0 >> 16 & 255).\($0 >> 8 & 255).\($0 & 255)")! }
    for (name, body) in [
        ("store", { @Sendable (i: Int) in _ = store.decide(key: keyNames[i % keys], limit: limit, algorithm: .gcra) }),
        ("limiter", { @Sendable (i: Int) in
            _ = limiter.decideLocally(policy: "default", caller: .init(client: clients[i % keys]), route: "api", endpointClass: "read")
        }),
    ] as [(String, @Sendable (Int) -> Void)] {
        let start = ContinuousClock.now
        await withTaskGroup(of: Void.self) { group in
            for t in 0..<tasks {
                group.addTask {
                    for i in stride(from: t, to: decisions, by: tasks) { body(i) }
                }
            }
        }
        let seconds = (ContinuousClock.now - start).secondsValue
        print("memory \(name) tasks=\(tasks) decisions=\(decisions) keys=\(keys) per_second=\(Int(Double(decisions) / seconds))")
    }

case "redis":
    guard arguments.count > 2 else { fail("limits-bench redis URL") }
    var configuration = RedisConfiguration(url: arguments[2])
    configuration.commandTimeout = .seconds(5)
    let concurrency = option("--concurrency", default: 1)
    configuration.poolSize = max(1, min(concurrency, 4))
    let store: RedisRateLimitStore
    do { store = RedisRateLimitStore(client: try RedisClient(configuration), prefix: "bench:") } catch { fail("\(error)") }
    // Warm up: load the script, open the connections.
    for i in 0..<1000 { _ = try await store.decide(key: keyNames[i % keys], limit: limit, algorithm: .gcra) }
    let start = ContinuousClock.now
    let latencies = try await withThrowingTaskGroup(of: [Duration].self) { group in
        for t in 0..<concurrency {
            group.addTask {
                var measured: [Duration] = []
                measured.reserveCapacity(decisions / concurrency + 1)
                for i in stride(from: t, to: decisions, by: concurrency) {
                    let begun = ContinuousClock.now
                    _ = try await store.decide(key: keyNames[i % keys], limit: limit, algorithm: .gcra)
                    measured.append(ContinuousClock.now - begun)
                }
                return measured
            }
        }
        var all: [Duration] = []
        for try await part in group { all += part }
        return all.sorted()
    }
    let seconds = (ContinuousClock.now - start).secondsValue
    print("redis rampart concurrency=\(concurrency) decisions=\(decisions) per_second=\(Int(Double(decisions) / seconds)) "
          + "p50_us=\(Int(percentile(latencies, 0.5))) p99_us=\(Int(percentile(latencies, 0.99)))")
    await store.client.shutdown()

default:
    fail("unknown mode \(arguments[1])")
}
