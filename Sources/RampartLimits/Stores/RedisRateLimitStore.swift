import RampartCore
public import RampartStore

/// Rate-limit state in Redis, shared by every gateway replica that uses the same Redis and
/// prefix. Each decision is one EVALSHA: a Lua script reads the key, decides with the same
/// algorithm as `GCRA`/`SlidingWindow` and writes the new state atomically, on Redis's own
/// clock (TIME), so replicas with skewed clocks still agree. Times are in microseconds
/// there (Lua numbers are doubles: exact to 2^53).
public final class RedisRateLimitStore: Sendable {
    public let client: RedisClient
    public let prefix: String

    public init(client: RedisClient, prefix: String = "rampart:rl:") {
        self.client = client
        self.prefix = prefix
    }

    public func decide(key: String, cost: Int = 1, limit: RateLimit, algorithm: RateLimitAlgorithm) async throws(RedisError) -> RateLimitDecision {
        let reply: RESPValue
        switch algorithm {
        case .gcra:
            let interval = max(1, limit.interval / 1000)
            reply = try await client.evaluate(Self.gcra, keys: [prefix + key], arguments: [String(interval), String(limit.burst), String(cost)])
        case .slidingWindow:
            let length = max(1, limit.window.nanoseconds / 1000)
            reply = try await client.evaluate(Self.slidingWindow, keys: [prefix + key], arguments: [String(length), String(limit.limit), String(cost)])
        }
        guard case .array(let values) = reply, values.count == 4,
              case .integer(let allowed) = values[0], case .integer(let remaining) = values[1],
              case .integer(let reset) = values[2], case .integer(let retry) = values[3] else {
            throw RedisError.unexpectedReply("\(reply)")
        }
        return RateLimitDecision(isAllowed: allowed == 1, limit: limit.quota(under: algorithm), remaining: Int(remaining),
                                 resetAfter: .microseconds(reset),
                                 retryAfter: allowed == 1 ? nil : retry < 0 ? .nanoseconds(Int64.max) : .microseconds(retry))
    }

    /// The scripts, for benchmarks and tools that run them outside this store.
    public static var gcraScript: RedisScript { gcra }
    public static var slidingWindowScript: RedisScript { slidingWindow }

    /// Both scripts start the same: Redis's clock in microseconds as `now`, and the
    /// numeric arguments by name.
    static func prelude(arguments names: String...) -> String {
        var lines = ["local t = redis.call('TIME')", "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])"]
        for (index, name) in names.enumerated() { lines.append("local \(name) = tonumber(ARGV[\(index + 1)])") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// GCRA as in `GCRA.decide`. ARGV: interval (µs), burst, cost. Answers {allowed,
    /// remaining, reset µs, retry µs}. The key expires when its TAT has passed.
    static let gcra = RedisScript(prelude(arguments: "interval", "burst", "cost") + """
    local tolerance = interval * burst
    local stored = redis.call('GET', KEYS[1])
    local tat = stored and tonumber(stored) or now
    if tat < now then tat = now end
    local newtat = tat + interval * cost
    local ahead = newtat - now
    if ahead > tolerance then
      return {0, math.floor(math.max(0, tolerance - (tat - now)) / interval), tat - now, ahead - tolerance}
    end
    redis.call('SET', KEYS[1], string.format('%d', newtat), 'PX', string.format('%d', math.ceil(ahead / 1000) + 1))
    return {1, math.floor((tolerance - ahead) / interval), ahead, 0}
    """)

    /// The sliding-window counter as in `SlidingWindow.decide`, in one hash (window start,
    /// current and previous counts). ARGV: window length (µs), limit, cost. Answers as
    /// `gcra`; a retry of -1 means the cost can never fit.
    static let slidingWindow = RedisScript(prelude(arguments: "length", "limit", "cost") + """
    local start = now - (now % length)
    local state = redis.call('HMGET', KEYS[1], 's', 'c', 'p')
    local s = tonumber(state[1]) or start
    local c = tonumber(state[2]) or 0
    local p = tonumber(state[3]) or 0
    if s ~= start then
      if s == start - length then p = c else p = 0 end
      c = 0
    end
    local elapsed = now - start
    local weighted = p * (length - elapsed) / length
    local allowed = weighted + c + cost <= limit
    if allowed then c = c + cost end
    redis.call('HSET', KEYS[1], 's', string.format('%d', start), 'c', c, 'p', p)
    redis.call('PEXPIRE', KEYS[1], string.format('%d', math.ceil((2 * length - elapsed) / 1000) + 1))
    local used = weighted + c
    local remaining = 0
    if used < limit then remaining = math.floor(limit - used) end
    local reset = length - elapsed
    if c > 0 then reset = 2 * length - elapsed end
    if allowed then return {1, remaining, reset, 0} end
    local function earliest(room, previous)
      if previous <= 0 then return 0 end
      local slack = math.floor(room * length / previous)
      if slack >= length then return 0 end
      return length - slack
    end
    local retry = -1
    local room = limit - cost - c
    if room >= 0 then
      retry = math.max(1, earliest(room, p) - elapsed)
    elseif limit - cost >= 0 then
      retry = math.max(1, (length - elapsed) + earliest(limit - cost, c))
    end
    return {0, remaining, reset, retry}
    """)
}
