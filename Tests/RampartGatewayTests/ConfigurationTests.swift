import Foundation
import RampartBalancing
import RampartCore
import RampartShield
@testable import RampartGateway
import RampartGraphQL
import RampartLimits
import RampartStore
import Testing

@Suite struct ConfigurationTests {
    let loader = ConfigurationLoader(environment: [:])

    @Test func loadsACompleteConfiguration() throws {
        let configuration = try loader.load(yaml: """
            listeners:
              traffic: {address: "0.0.0.0:8080"}
              admin: {address: "127.0.0.1:9901"}
            proxy:
              trustedProxies: [10.0.0.0/8]
              timeouts: {connect: 500ms, total: 1m}
              limits: {maxBodyBytes: 1GiB}
            pools:
              api:
                strategy: {type: peak_ewma, decay: 5s}
                instances:
                  - http://127.0.0.1:9001
                  - {url: "http://127.0.0.1:9002", weight: 3, priority: 1}
                healthCheck: {path: /healthz, interval: 2s, timeout: 500ms}
              sessions:
                strategy: {type: consistent_hash, cookie: sid}
                instances: [http://127.0.0.1:9003]
            routes:
              - {name: api, match: {pathPrefix: /api}, pool: api, stripPrefix: true}
              - {match: {host: "*.example.com"}, pool: sessions}
              - {match: {pathPrefix: /teapot}, respond: {status: 418, body: short and stout}}
            """)
        #expect(configuration.pools["api"]?.strategy == .peakEWMA(decay: .seconds(5)))
        #expect(configuration.pools["api"]?.instances[1].weight == 3)
        #expect(configuration.pools["sessions"]?.strategy == .consistentHash(on: .cookie("sid")))
        #expect(configuration.proxy.timeouts.connect == .milliseconds(500))
        #expect(configuration.proxy.limits.maxBodyBytes == ByteCount(1 << 30))
        #expect(configuration.proxy.trustedProxies.contains(IPAddress("10.2.3.4")!))
        #expect(configuration.routes.count == 3)
    }

    @Test func reportsEveryProblemWithItsPath() {
        let yaml = """
            listeners:
              admin: {address: "0.0.0.0:9901"}
            pools:
              api:
                intances: []
                instances:
                  - {url: "localhost:80"}
                  - {url: "http://127.0.0.1:9002", weight: 0}
                healthCheck: {path: healthz, interval: 1s, timeout: 2s}
            routes:
              - {match: {pathPrefix: /api}, pool: apu}
              - {match: {pathPrefix: api}}
            """
        do {
            _ = try loader.load(yaml: yaml)
            Issue.record("an invalid configuration was accepted")
        } catch {
            let text = error.issues.map(\.description)
            let expected = [
                "pools.api.intances: unknown key \"intances\" (did you mean \"instances\"?)",
                "listeners.admin.token: the admin listener on 0.0.0.0:9901 is not loopback-only; set a token (or RAMPART_ADMIN_TOKEN)",
                "pools.api.instances[0].url: \"localhost:80\" is not an http or https URL with a host (and optional port)",
                "pools.api.instances[1].weight: must be between 1 and 1000, got 0",
                "pools.api.healthCheck.path: must start with /, got \"healthz\"",
                "pools.api.healthCheck.timeout: 2s is longer than the interval (1s)",
                "routes[0].pool: no pool named \"apu\" (did you mean \"api\"?)",
                "routes[1]: give either pool or respond",
                "routes[1].match.pathPrefix: must start with /, got \"api\"",
            ]
            for line in expected { #expect(text.contains(line), "missing: \(line)\ngot: \(text)") }
        }
    }

    @Test func typeErrorsNameThePath() {
        do {
            _ = try loader.load(yaml: "pools:\n  api:\n    instances: [http://127.0.0.1:1]\n    drainTimeout: 30\n")
            Issue.record("accepted")
        } catch {
            #expect(error.issues.map(\.description).contains { $0.hasPrefix("pools.api.drainTimeout: ") && $0.contains("unit") })
        }
        do {
            _ = try loader.load(yaml: "pools:\n  api:\n    strategy: round_robbin\n    instances: [http://127.0.0.1:1]\n")
            Issue.record("accepted")
        } catch {
            #expect(error.issues.map(\.description).contains { $0.contains("pools.api.strategy") && $0.contains("did you mean \"round_robin\"") })
        }
    }

    @Test func environmentOverridesAreValidatedLikeTheFile() throws {
        let yaml = "pools:\n  api:\n    instances: [http://127.0.0.1:1]\n"
        let overridden = try ConfigurationLoader(environment: ["LB_STRATEGY": "least_connections", "LB_HEALTH_CHECK_INTERVAL": "3s",
                                                               "RAMPART_ADMIN_TOKEN": "0123456789abcdef"]).load(yaml: yaml)
        #expect(overridden.pools["api"]?.strategy == .leastConnections)
        #expect(overridden.pools["api"]?.healthCheck?.interval == .seconds(3))
        #expect(overridden.listeners.admin.token == "0123456789abcdef")
        do {
            _ = try ConfigurationLoader(environment: ["LB_STRATEGY": "fastest", "LB_HEALTH_CHECK_INTERVAL": "often"]).load(yaml: yaml)
            Issue.record("accepted")
        } catch {
            let text = error.issues.map(\.description)
            #expect(text.contains { $0.hasPrefix("LB_STRATEGY (pools.*.strategy)") })
            #expect(text.contains { $0.hasPrefix("LB_HEALTH_CHECK_INTERVAL (pools.*.healthCheck.interval)") })
        }
    }

    @Test func rateLimitsLoadWithPoliciesAndEnvironmentOverrides() throws {
        let yaml = """
        pools:
          app: {instances: ["http://127.0.0.1:1"]}
        routes:
          - {name: api, match: {pathPrefix: /api}, pool: app}
          - {name: login, match: {pathPrefix: /login}, pool: app, limit: login, limitClass: auth}
          - {name: assets, match: {pathPrefix: /assets}, pool: app, limit: "off"}
        limits:
          base: 100
          window: 1m
          roles: {admin: 10, viewer: 0.5}
          classes: {write: 0.2, auth: 0.1}
          policies:
            login: {algorithm: sliding-window, base: 20, key: [client, route]}
        """
        let loaded = try loader.load(yaml: yaml)
        let limits = try #require(loaded.limits)
        #expect(limits.policy(named: "default")?.base == 100)
        let login = try #require(limits.policy(named: "login"))
        #expect(login.algorithm == .slidingWindow && login.base == 20 && login.window == .seconds(60) && login.roles["admin"] == 10)
        #expect(limits.keyParts(of: "login") == [.client, .route])
        #expect(limits.keyParts(of: "default") == [.client])
        #expect(loaded.routes[1].limitClass == "auth")
        // Written out, the default policy's fields stand beside the other sections, as in the file.
        let written = try JSONEncoder().encode(limits)
        #expect(try JSONDecoder().decode(RateLimitsConfiguration.self, from: written) == limits)

        let overridden = try ConfigurationLoader(environment: ["RATE_LIMIT_BASE": "50", "RATE_LIMIT_WINDOW": "10s", "RATE_LIMIT_MIN": "5",
                                                               "RATE_LIMIT_MAX": "500", "RATE_LIMIT_ADAPTIVE": "false"]).load(yaml: yaml)
        let policy = try #require(overridden.limits?.policy(named: "default"))
        #expect(policy.base == 50 && policy.window == .seconds(10) && policy.minimum == 5 && policy.maximum == 500 && !policy.isAdaptive)
        // The environment alone turns limiting on.
        let plain = "pools:\n  app: {instances: [\"http://127.0.0.1:1\"]}\n"
        #expect(try loader.load(yaml: plain).limits == nil)
        #expect(try ConfigurationLoader(environment: ["RATE_LIMIT_BASE": "7"]).load(yaml: plain).limits?.policy(named: "default")?.base == 7)
    }

    @Test func badRateLimitsNameThePath() throws {
        let yaml = """
        pools:
          app: {instances: ["http://127.0.0.1:1"]}
        routes:
          - {match: {pathPrefix: /}, pool: app, limit: nosuch}
        limits:
          min: 10
          max: 5
          algorithm: leaky
        """
        do {
            _ = try loader.load(yaml: yaml)
            Issue.record("accepted")
        } catch {
            #expect(error.issues.contains { $0.path.hasPrefix("limits.algorithm") }, "\(error.issues)")
        }
        let unknownPolicy = "pools:\n  app: {instances: [\"http://127.0.0.1:1\"]}\nroutes:\n  - {match: {pathPrefix: /}, pool: app, limit: nosuch}\nlimits: {min: 10, max: 5}\n"
        do {
            _ = try loader.load(yaml: unknownPolicy)
            Issue.record("accepted")
        } catch {
            let text = error.issues.map(\.description)
            #expect(text.contains("routes[0].limit: no policy is named \"nosuch\" (limits.policies has default)"), "\(text)")
            #expect(text.contains("limits.max: must be at least min (10), got 5"), "\(text)")
        }
        do {
            _ = try ConfigurationLoader(environment: ["RATE_LIMIT_BASE": "lots", "RATE_LIMIT_WINDOW": "soon", "RATE_LIMIT_ADAPTIVE": "maybe"])
                .load(yaml: "pools:\n  app: {instances: [\"http://127.0.0.1:1\"]}\n")
            Issue.record("accepted")
        } catch {
            let text = error.issues.map(\.description)
            #expect(text.contains("RATE_LIMIT_BASE (limits.base): \"lots\" is not a whole number of requests, at least 1"), "\(text)")
            #expect(text.contains { $0.hasPrefix("RATE_LIMIT_WINDOW (limits.window)") })
            #expect(text.contains("RATE_LIMIT_ADAPTIVE (limits.adaptive): \"maybe\" is not true or false"))
        }
    }

    @Test func graphQLRoutesReadTheirLimitsAndTheEnvironmentOverridesThem() throws {
        let yaml = """
        pools:
          app: {instances: ["http://127.0.0.1:1"]}
        routes:
          - {name: gql, match: {pathPrefix: /graphql}, pool: app, graphql: {maxDepth: 6, maxCost: off, maxAliases: 3, introspection: allow}}
          - {name: other, match: {pathPrefix: /}, pool: app}
        """
        let loaded = try loader.load(yaml: yaml)
        let graphql = try #require(loaded.routes[0].graphql)
        #expect(graphql.limits.maxDepth == 6 && graphql.limits.maxCost == nil && graphql.limits.maxAliases == 3)
        #expect(graphql.limits.introspection == .allow && graphql.limits.maxTokens == 2_000 && graphql.mode == .enforce)
        // Written out and read back, unchanged ("off" included).
        #expect(try JSONDecoder().decode(GraphQLRouteConfiguration.self, from: JSONEncoder().encode(graphql)) == graphql)

        let overridden = try ConfigurationLoader(environment: ["GRAPHQL_MAX_DEPTH": "12", "GRAPHQL_MAX_COMPLEXITY": "250"]).load(yaml: yaml)
        #expect(overridden.routes[0].graphql?.limits.maxDepth == 12 && overridden.routes[0].graphql?.limits.maxCost == 250)
        #expect(overridden.routes[1].graphql == nil, "routes without a graphql section stay plain")
        #expect(try ConfigurationLoader(environment: ["GRAPHQL_MAX_DEPTH": "off"]).load(yaml: yaml).routes[0].graphql?.limits.maxDepth == nil)
        do {
            _ = try ConfigurationLoader(environment: ["GRAPHQL_MAX_DEPTH": "deep", "GRAPHQL_MAX_COMPLEXITY": "-1"]).load(yaml: yaml)
            Issue.record("accepted")
        } catch {
            let text = error.issues.map(\.description)
            #expect(text.contains("GRAPHQL_MAX_DEPTH (routes.*.graphql.maxDepth): \"deep\" is not a whole number or off"), "\(text)")
            #expect(text.contains("GRAPHQL_MAX_COMPLEXITY (routes.*.graphql.maxCost): \"-1\" is not a whole number or off"), "\(text)")
        }
        do {
            _ = try loader.load(yaml: yaml.replacingOccurrences(of: "maxAliases: 3", with: "maxAliases: many, mode: strict"))
            Issue.record("accepted")
        } catch {
            let paths = error.issues.map(\.path)
            #expect(paths.contains("routes[0].graphql.maxAliases") || paths.contains("routes[0].graphql.mode"), "\(error.issues)")
        }
    }

    @Test func graphQLCacheSettingsAndTheirEnvironmentOverrides() throws {
        let yaml = """
        pools:
          app: {instances: ["http://127.0.0.1:1"]}
        routes:
          - {name: gql, match: {pathPrefix: /graphql}, pool: app, graphql: {batching: true, maxBatchSize: 4, normalization: {forward: true}}}
          - {name: cached, match: {pathPrefix: /cached}, pool: app, graphql: {cache: {scope: user, maxTtl: 1m, mutationInvalidates: {addBook: [Book]}}}}
        graphqlCache: {memory: 8MiB}
        """
        let loaded = try loader.load(yaml: yaml)
        let plain = try #require(loaded.routes[0].graphql)
        #expect(plain.limits.batching && plain.limits.maxBatchSize == 4 && plain.forwardNormalized && plain.cache == nil)
        let cache = try #require(loaded.routes[1].graphql?.cache)
        #expect(cache.enabled && cache.scope == .user && cache.maxTtl == .seconds(60) && cache.defaultTtl == nil)
        #expect(cache.mutationInvalidates == ["addBook": ["Book"]] && loaded.graphqlCache.memory == .mebibytes(8) && !loaded.graphqlCache.redis)
        #expect(try JSONDecoder().decode(GraphQLRouteConfiguration.self, from: JSONEncoder().encode(loaded.routes[1].graphql!)) == loaded.routes[1].graphql!)

        let overridden = try ConfigurationLoader(environment: ["GRAPHQL_CACHE_ENABLED": "true", "GRAPHQL_CACHE_TTL": "45"]).load(yaml: yaml)
        #expect(overridden.routes[0].graphql?.cache?.enabled == true && overridden.routes[0].graphql?.cache?.defaultTtl == .seconds(45))
        #expect(overridden.routes[1].graphql?.cache?.scope == .user && overridden.routes[1].graphql?.cache?.defaultTtl == .seconds(45))
        let off = try ConfigurationLoader(environment: ["GRAPHQL_CACHE_ENABLED": "false"]).load(yaml: yaml)
        #expect(off.routes[1].graphql?.cache?.enabled == false)
        do {
            _ = try ConfigurationLoader(environment: ["GRAPHQL_CACHE_ENABLED": "maybe", "GRAPHQL_CACHE_TTL": "soon"]).load(yaml: yaml)
            Issue.record("accepted")
        } catch {
            let text = error.issues.map(\.description)
            #expect(text.contains("GRAPHQL_CACHE_ENABLED (routes.*.graphql.cache.enabled): \"maybe\" is not true or false"), "\(text)")
            #expect(text.contains { $0.hasPrefix("GRAPHQL_CACHE_TTL (routes.*.graphql.cache.defaultTtl)") }, "\(text)")
        }
        do {
            _ = try loader.load(yaml: yaml.replacingOccurrences(of: "maxTtl: 1m", with: "maxTtl: 0s, varyHeaders: [\"bad header\"]")
                .replacingOccurrences(of: "graphqlCache: {memory: 8MiB}", with: "graphqlCache: {memory: 8MiB, redis: true}"))
            Issue.record("accepted")
        } catch {
            let text = error.issues.map(\.description)
            #expect(text.contains("routes[1].graphql.cache.maxTtl: must be at least 1s, got 0s"), "\(text)")
            #expect(text.contains("routes[1].graphql.cache.varyHeaders[0]: \"bad header\" is not a header name"), "\(text)")
            #expect(text.contains("graphqlCache.redis: is true, but there is no redis section"), "\(text)")
        }
    }

    @Test func sharedLimitsNeedARedisSectionOrREDIS_URL() throws {
        let yaml = """
        pools:
          app: {instances: ["http://127.0.0.1:1"]}
        limits:
          base: 100
          shared: {replicas: 4, onStoreFailure: closed, probeInterval: 500ms}
        redis:
          url: redis://:pw@10.0.0.5:6380/2
          poolSize: 8
          commandTimeout: 50ms
        """
        let loaded = try loader.load(yaml: yaml)
        let shared = try #require(loaded.limits?.shared)
        #expect(shared.replicas == 4 && shared.onStoreFailure == .closed && shared.probeInterval == .milliseconds(500) && shared.enabled)
        let redis = try #require(loaded.redis)
        #expect(redis.poolSize == 8 && redis.commandTimeout == .milliseconds(50))
        #expect(try redis.endpoint() == .init(host: "10.0.0.5", port: 6380, username: nil, password: "pw", database: 2))

        let plain = "pools:\n  app: {instances: [\"http://127.0.0.1:1\"]}\nlimits: {base: 5}\n"
        let environment = try ConfigurationLoader(environment: ["REDIS_URL": "redis://127.0.0.1:16379", "RATE_LIMIT_REPLICAS": "3"]).load(yaml: plain)
        #expect(environment.redis?.url == "redis://127.0.0.1:16379" && environment.limits?.shared.replicas == 3)

        let bad = """
        pools:
          app: {instances: ["http://127.0.0.1:1"]}
        limits:
          shared: {replicas: 0, onStoreFailure: sometimes}
        redis: {url: "http://cache:6379", poolSize: 0}
        """
        do {
            _ = try loader.load(yaml: bad)
            Issue.record("accepted")
        } catch {
            #expect(error.issues.contains { $0.path.hasPrefix("limits.shared.onStoreFailure") }, "\(error.issues)")
        }
        let badValues = "pools:\n  app: {instances: [\"http://127.0.0.1:1\"]}\nlimits:\n  shared: {replicas: 0}\nredis: {url: \"http://cache:6379\", poolSize: 0}\n"
        do {
            _ = try ConfigurationLoader(environment: ["RATE_LIMIT_REPLICAS": "many"]).load(yaml: badValues)
            Issue.record("accepted")
        } catch {
            let text = error.issues.map(\.description)
            #expect(text.contains("RATE_LIMIT_REPLICAS (limits.shared.replicas): \"many\" is not a whole number of replicas, at least 1"), "\(text)")
        }
        do {
            _ = try loader.load(yaml: badValues)
            Issue.record("accepted")
        } catch {
            let text = error.issues.map(\.description)
            #expect(text.contains("limits.shared.replicas: must be 1-10000, got 0"), "\(text)")
            #expect(text.contains("redis.url: must start with redis://, got \"http://cache:6379\""), "\(text)")
            #expect(text.contains("redis.poolSize: must be 1-256, got 0"), "\(text)")
        }
    }

    @Test func ipWhitelistFromTheEnvironmentJoinsTheFile() throws {
        let yaml = "pools:\n  app: {instances: [\"http://127.0.0.1:1\"]}\nshield:\n  ipRules: {allow: [192.0.2.1], deny: [10.0.0.0/8]}\n"
        let loaded = try ConfigurationLoader(environment: ["THREAT_IP_WHITELIST": "127.0.0.1, 10.1.0.0/16"]).load(yaml: yaml)
        #expect(loaded.shield.ipRules.allow.map(\.description) == ["192.0.2.1/32", "127.0.0.1/32", "10.1.0.0/16"])
        #expect(loaded.shield.ipRules.rules.decision(for: IPAddress("10.1.2.3")!) == .allow)
        #expect(loaded.shield.ipRules.rules.decision(for: IPAddress("10.2.0.1")!) == .deny)
        do {
            _ = try ConfigurationLoader(environment: ["THREAT_IP_WHITELIST": "127.0.0.1,not-an-ip"]).load(yaml: yaml)
            Issue.record("a bad THREAT_IP_WHITELIST was accepted")
        } catch {
            #expect(error.issues.map(\.description).contains(
                "THREAT_IP_WHITELIST (shield.ipRules.allow): \"not-an-ip\" is not an IP address or CIDR range"), "\(error.issues)")
        }
        do {
            _ = try loader.load(yaml: "pools:\n  app: {instances: [\"http://127.0.0.1:1\"]}\nshield:\n  ipRules: {deny: [10.0.0.0/33]}\n")
            Issue.record("a bad range was accepted")
        } catch {
            #expect(error.issues.contains { $0.path.hasPrefix("shield.ipRules.deny") }, "\(error.issues)")
        }
    }

    @Test func threatVariablesOverrideTheShield() throws {
        let yaml = """
            pools:
              app: {instances: ["http://127.0.0.1:1"]}
            routes:
              - {name: login, match: {pathPrefix: /login}, pool: app}
            shield:
              waf: {mode: detect}
              bruteForce: {routes: [login], accountField: $.user.email}
              response: {alertWebhook: {url: "https://hooks.example.com/rampart"}}
              cspReports: {path: /_csp}
            """
        let plain = try loader.load(yaml: yaml)
        #expect(plain.shield.waf.mode == .detect && !plain.shield.response.blockOnCritical && plain.shield.response.alertOnHigh)
        #expect(plain.shield.flood.threshold == 3 && plain.shield.bruteForce?.accountField == "$.user.email")
        let environment = ["THREAT_DETECTION_ENABLED": "false", "THREAT_ANOMALY_THRESHOLD": "4.5", "THREAT_BLOCK_ON_CRITICAL": "true",
                           "THREAT_ALERT_ON_HIGH": "0"]
        let overridden = try ConfigurationLoader(environment: environment).load(yaml: yaml)
        #expect(overridden.shield.waf.mode == .off)
        #expect(overridden.shield.flood.threshold == 4.5)
        #expect(overridden.shield.response.blockOnCritical && !overridden.shield.response.alertOnHigh)
        #expect(try ConfigurationLoader(environment: ["THREAT_DETECTION_ENABLED": "true"]).load(yaml: yaml).shield.waf.mode == .detect)
        do {
            _ = try ConfigurationLoader(environment: ["THREAT_ANOMALY_THRESHOLD": "-1", "THREAT_BLOCK_ON_CRITICAL": "sometimes"]).load(yaml: yaml)
            Issue.record("bad threat variables were accepted")
        } catch {
            let text = error.issues.map(\.description)
            #expect(text.contains("THREAT_ANOMALY_THRESHOLD (shield.flood.threshold): \"-1\" is not a positive number of deviations"), "\(text)")
            #expect(text.contains("THREAT_BLOCK_ON_CRITICAL (shield.response.blockOnCritical): \"sometimes\" is not true or false"), "\(text)")
        }
    }

    @Test func shieldDefenceProblemsNameTheirPaths() {
        let yaml = """
            pools:
              app: {instances: ["http://127.0.0.1:1"]}
            shield:
              bruteForce: {routes: [signin], lockout: 10m, maxLockout: 1m}
              flood: {threshold: 0, smoothing: 2}
              response: {keepEvents: 5, alertWebhook: {url: "ftp://x", attempts: 0}}
              cspReports: {path: "csp?x"}
            """
        do {
            _ = try loader.load(yaml: yaml)
            Issue.record("a bad shield section was accepted")
        } catch {
            let text = error.issues.map(\.description)
            for expected in [
                "shield.bruteForce.routes[0]: no route is named \"signin\"",
                "shield.bruteForce.maxLockout: must be at least lockout (600s), got 60s",
                "shield.flood.threshold: must be a positive number of deviations, got 0.0",
                "shield.flood.smoothing: must be in (0, 1], got 2.0",
                "shield.response.keepEvents: must be at least 100, got 5",
                "shield.response.alertWebhook.url: must be an http:// or https:// URL, got \"ftp://x\"",
                "shield.response.alertWebhook.attempts: must be between 1 and 20, got 0",
                "shield.cspReports.path: must be an absolute path without query, got \"csp?x\"",
            ] {
                #expect(text.contains(expected), "missing \(expected) in \(text)")
            }
        }
    }

    @Test func aKeptSnapshotServesWhileCurrentAndGivesWayToAReload() throws {
        let first = try loader.load(yaml: "pools:\n  app: {instances: [\"http://127.0.0.1:9\"]}\nroutes:\n  - {name: a, match: {pathPrefix: /}, pool: app}")
        let live = LiveConfiguration(first)
        let kept = live.snapshot(keeping: nil)
        #expect(live.snapshot(keeping: kept) === kept)
        let second = live.replace(with: first)
        #expect(live.snapshot(keeping: kept) === second)
        #expect(live.snapshot(keeping: second) === second && second.generation == kept.generation + 1)
    }

    @Test func eachSnapshotFindsItsRoutesPoolsAsTheRegistryHeldThem() throws {
        let first = try loader.load(yaml: "pools:\n  app: {instances: [\"http://127.0.0.1:9\"]}\nroutes:\n  - {name: a, match: {pathPrefix: /}, pool: app}")
        let second = try loader.load(yaml: "pools:\n  web: {instances: [\"http://127.0.0.1:9\"]}\nroutes:\n  - {name: a, match: {pathPrefix: /}, pool: web}\n"
                                     + "  - {name: b, match: {pathPrefix: /b}, respond: {status: 204}}")
        let registry = PoolRegistry(time: SystemTimeSource())
        registry.apply(first.pools)
        let live = LiveConfiguration(first, pools: registry)
        let before = live.snapshot
        let app = try #require(registry.pool(named: "app"))
        #expect(before.pool(of: try #require(before.routes.routes.first)) === app)
        // A reload updates the pools, then makes the snapshot that finds them.
        registry.apply(second.pools)
        let after = live.replace(with: second)
        let routes = Dictionary(uniqueKeysWithValues: after.routes.routes.map { ($0.name, $0) })
        #expect(after.pool(of: try #require(routes["a"])) === registry.pool(named: "web"))
        #expect(after.pool(of: try #require(routes["b"])) == nil)
        // A request still on the old snapshot keeps the pool it was routed to.
        #expect(before.pool(of: try #require(before.routes.routes.first)) === app)
        // Without a registry, requests ask the gateway's (see `ForwardPlan`).
        #expect(LiveConfiguration(first).snapshot.pool(of: try #require(before.routes.routes.first)) == nil)
    }

    @Test func theDirectPathServesOnlyRoutesDecidedAtOnce() throws {
        let configuration = try loader.load(yaml: """
            pools:
              app: {instances: ["http://127.0.0.1:9"]}
            limits: {base: 600}
            shield:
              bruteForce: {routes: [login]}
            routes:
              - {name: plain, match: {pathPrefix: /}, pool: app, limit: "off"}
              - {name: limited, match: {pathPrefix: /api}, pool: app}
              - {name: login, match: {pathPrefix: /login}, pool: app, limit: "off"}
            """)
        let snapshot = GatewaySnapshot(generation: 1, configuration: configuration)
        let decided = Dictionary(uniqueKeysWithValues: snapshot.routes.routes.map { ($0.name, snapshot.decidesAtOnce($0)) })
        #expect(decided == ["plain": true, "limited": false, "login": false])
    }

    @Test func brokenYAMLIsRefused() {
        #expect(throws: ConfigurationError.self) { try loader.load(yaml: "pools: [unclosed") }
        #expect(throws: ConfigurationError.self) { try loader.load(yaml: "- just a list") }
    }
}

@Suite struct RouteTableTests {
    let table = RouteTable([
        RouteConfiguration(name: "catch-all", match: .init(pathPrefix: "/"), pool: "web"),
        RouteConfiguration(name: "api", match: .init(pathPrefix: "/api"), pool: "api", stripPrefix: true),
        RouteConfiguration(name: "api-writes", match: .init(pathPrefix: "/api", methods: ["POST"]), pool: "writes"),
        RouteConfiguration(name: "tenant", match: .init(host: "*.example.com"), pool: "tenant"),
        RouteConfiguration(name: "exact", match: .init(host: "admin.example.com"), pool: "admin"),
        RouteConfiguration(name: "canary", match: .init(pathPrefix: "/api", headers: ["x-canary": "1"]), pool: "canary"),
    ], pools: [])

    func route(_ path: String, method: String = "GET", host: String? = "example.org", headers: HTTPFields = [:]) -> String? {
        table.match(method: method, host: host, path: path, headers: headers)?.name
    }

    @Test func mostSpecificMatchWins() {
        #expect(route("/") == "catch-all")
        #expect(route("/api/users") == "api")
        #expect(route("/apix") == "catch-all")
        #expect(route("/api/users", method: "POST") == "api-writes")
        #expect(route("/api", host: "a.example.com") == "tenant")
        #expect(route("/", host: "admin.example.com") == "exact")
        #expect(route("/", host: "example.com") == "catch-all")
        #expect(route("/api/x", headers: [HTTPField.Name("x-canary")!: "1"]) == "canary")
    }

    @Test func prefixesMatchWholeSegmentsByteForByte() {
        #expect(RouteTable.path("/api", hasPrefix: "/api"))
        #expect(RouteTable.path("/api/", hasPrefix: "/api"))
        #expect(RouteTable.path("/api/v1", hasPrefix: "/api/"))
        #expect(!RouteTable.path("/apix", hasPrefix: "/api"))
        #expect(!RouteTable.path("/apï/x", hasPrefix: "/ap"))
        #expect(RouteTable.path("/ünï/x", hasPrefix: "/ünï"))
        #expect(!RouteTable.path("/ap", hasPrefix: "/api"))
    }

    /// The host is worked out once, and only when a route names hosts.
    @Test func theHostIsWorkedOutOnlyWhenARouteNamesHosts() {
        final class Asked { var count = 0 }
        let asked = Asked()
        func host() -> String? {
            asked.count += 1
            return "example.org"
        }
        _ = table.match(method: "GET", host: host(), path: "/", headers: [:])
        #expect(asked.count == 1)
        let plain = RouteTable([RouteConfiguration(name: "all", match: .init(pathPrefix: "/"), pool: "app")], pools: [])
        #expect(plain.match(method: "GET", host: host(), path: "/x", headers: [:])?.name == "all")
        #expect(asked.count == 1)
    }

    @Test func stripsThePrefix() {
        let api = table.match(method: "GET", host: nil, path: "/api/users", headers: [:])!
        #expect(api.upstreamPath(for: "/api/users") == "/users")
        #expect(api.upstreamPath(for: "/api") == "/")
    }

    @Test func hostNamesComeWithoutPort() {
        #expect(RouteTable.hostName(ofAuthority: "Example.com:8080") == "example.com")
        #expect(RouteTable.hostName(ofAuthority: "[::1]:80") == "::1")
    }
}

import HTTPTypes
import NIOHTTP1

@Suite struct ForwardingRulesTests {
    @Test func fieldsTheGatewaySetsOrExtendsAreToldApartFromTheRest() {
        let roles: [String: HeaderRewriting.ForwardingRole] = [
            "host": .setByTheGateway, "content-length": .setByTheGateway, "x-forwarded-host": .setByTheGateway,
            "x-request-id": .setByTheGateway, "traceparent": .setByTheGateway, "x-csp-nonce": .setByTheGateway,
            "x-forwarded-for": .forwardedFor, "forwarded": .forwarded, "x-forwarded-proto": .forwardedProto, "via": .via,
        ]
        for (name, role) in roles { #expect(HeaderRewriting.forwardingRole(name) == role, "\(name)") }
        // Names of the same lengths, and others, pass on.
        for name in ["age", "date", "warning", "tracestate1", "content-type", "content-encoding", "x-forwarded-port", "accept", "x-forwarded-foo"] {
            #expect(HeaderRewriting.forwardingRole(name) == .passedOn, "\(name)")
        }
    }

    @Test func hopByHopHeadersAreRemovedAndForwardingHeadersAdded() {
        let request: HTTPFields = [
            .connection: "keep-alive, X-Secret", HTTPField.Name("X-Secret")!: "1", HTTPField.Name("Keep-Alive")!: "timeout=5",
            .te: "trailers", HTTPField.Name("X-Forwarded-For")!: "6.6.6.6", .accept: "*/*", .contentLength: "3",
        ]
        let state = RequestState(requestID: "rid", peerAddress: IPAddress("203.0.113.5"))
        var headers = HTTPHeaders()
        HeaderRewriting.upstreamRequestHeaders(request, authority: "shop.example", state: state, preserveHost: true,
                                               instanceAuthority: "10.0.0.1:80", trustsPeer: false, into: &headers)
        #expect(headers["X-Secret"].isEmpty)
        #expect(headers["Keep-Alive"].isEmpty)
        #expect(headers["TE"].isEmpty)
        #expect(headers["Connection"].isEmpty)
        #expect(headers["Content-Length"].isEmpty)
        #expect(headers["Accept"] == ["*/*"])
        #expect(headers["Host"] == ["shop.example"])
        // The untrusted client's claim is dropped.
        #expect(headers["X-Forwarded-For"] == ["203.0.113.5"])
        #expect(headers["Forwarded"] == ["for=203.0.113.5;proto=http;host=\"shop.example\""])
        #expect(headers["Via"] == ["1.1 rampart"])
        #expect(headers["X-Request-Id"] == ["rid"])
        var trusted = HTTPHeaders()
        HeaderRewriting.upstreamRequestHeaders(request, authority: "shop.example", state: state, preserveHost: false,
                                               instanceAuthority: "10.0.0.1:80", trustsPeer: true, into: &trusted)
        #expect(trusted["X-Forwarded-For"] == ["6.6.6.6, 203.0.113.5"])
        #expect(trusted["Host"] == ["10.0.0.1:80"])
        // The trace goes as the same text into a head written as bytes (copied from the
        // trace's temporary bytes) as into one collected as fields.
        var traced = state
        traced.trace = TraceContext(traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        var fields = HTTPHeaders()
        HeaderRewriting.upstreamRequestHeaders(request, authority: "shop.example", state: traced, preserveHost: true,
                                               instanceAuthority: "10.0.0.1:80", trustsPeer: false, into: &fields)
        #expect(fields["traceparent"] == ["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"])
        var head = UpstreamRequestHead(method: .GET, uri: "/")
        HeaderRewriting.upstreamRequestHeaders(request, authority: "shop.example", state: traced, preserveHost: true,
                                               instanceAuthority: "10.0.0.1:80", trustsPeer: false, into: &head)
        let text = String(buffer: head.bytes)
        let written = fields.map { "\($0.name): \($0.value)\r\n" }.joined()
        #expect(text == "GET / HTTP/1.1\r\n" + written, "\(text)")
    }

    /// A connection's forwarding fields, kept as bytes, are what writing them afresh gives, for
    /// each client address, security and authority; a request whose client sent forwarding
    /// fields of its own does not use them.
    @Test func keptForwardingFieldsAreThoseWrittenAfresh() {
        let cache = ForwardingFieldsCache()
        let plain = HTTPFields([HTTPField(name: .accept, value: "*/*")])
        func head(_ request: HTTPFields, _ state: RequestState, authority: String?, cache: ForwardingFieldsCache?, trusts: Bool = false) -> String {
            var head = UpstreamRequestHead(method: .GET, uri: "/")
            HeaderRewriting.upstreamRequestHeaders(request, authority: authority, state: state, preserveHost: true,
                                                   instanceAuthority: "10.0.0.1:80", trustsPeer: trusts, forwarding: cache, into: &head)
            return String(buffer: head.bytes)
        }
        for (peer, secure) in [(IPAddress("203.0.113.5"), false), (IPAddress("2001:db8::1"), true), (nil, false)] {
            let state = RequestState(requestID: "rid", peerAddress: peer, isSecure: secure)
            for authority in ["shop.example", "other.example", nil] as [String?] {
                // Twice: filled, then read back.
                for _ in 0..<2 {
                    #expect(head(plain, state, authority: authority, cache: cache) == head(plain, state, authority: authority, cache: nil))
                }
            }
        }
        let state = RequestState(requestID: "rid", peerAddress: IPAddress("203.0.113.5"))
        let hops = HTTPFields([HTTPField(name: .accept, value: "*/*"), HTTPField(name: HTTPField.Name("X-Forwarded-For")!, value: "6.6.6.6")])
        let trusted = head(hops, state, authority: "shop.example", cache: cache, trusts: true)
        #expect(trusted.contains("X-Forwarded-For: 6.6.6.6, 203.0.113.5\r\n"))
        #expect(trusted == head(hops, state, authority: "shop.example", cache: nil, trusts: true))
        // Sinks that collect fields read the kept lines as fields.
        var fields = HTTPHeaders()
        HeaderRewriting.upstreamRequestHeaders(plain, authority: "shop.example", state: state, preserveHost: true,
                                               instanceAuthority: "10.0.0.1:80", trustsPeer: false, forwarding: cache, into: &fields)
        #expect(fields["Forwarded"] == ["for=203.0.113.5;proto=http;host=\"shop.example\""])
        #expect(fields["X-Forwarded-Host"] == ["shop.example"])
        #expect(fields["Via"] == ["1.1 rampart"])
    }

    @Test func responseHopByHopHeadersAreRemoved() {
        let fields = HeaderRewriting.clientResponseHeaders(["Connection": "close, X-Internal", "X-Internal": "1", "Transfer-Encoding": "chunked",
                                                            "Content-Type": "text/plain", "Via": "1.0 backend"])
        #expect(fields[.contentType] == "text/plain")
        #expect(fields[HTTPField.Name("X-Internal")!] == nil)
        #expect(fields[.transferEncoding] == nil)
        #expect(fields[.connection] == nil)
        #expect(fields[HTTPField.Name("Via")!] == "1.0 backend, 1.1 rampart")
        // Every hop-by-hop name, whatever its case; the usual Connection value names nothing more.
        var upstream = HTTPFields()
        for name in ["Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
                     "Proxy-Authenticate", "Proxy-Authorization", "X-Kept", "Trailers"] {
            upstream.append(HTTPField(name: HTTPField.Name(name)!, value: name == "Connection" ? " Keep-Alive " : "v"))
        }
        let kept = HeaderRewriting.clientResponseHeaders(upstream)
        #expect(kept.map(\.name.canonicalName) == ["x-kept", "trailers", "via"])
        // A field named in Connection goes, Via included.
        let named = HeaderRewriting.clientResponseHeaders([.connection: "keep-alive, via, x-kept", HTTPField.Name("X-Kept")!: "1",
                                                           .via: "1.0 backend", .contentType: "text/plain"])
        #expect(named.map(\.name.canonicalName) == ["content-type", "via"] && named[.via] == "1.1 rampart")
    }

    @Test func retryBudgetBoundsRetriesToAShareOfTraffic() {
        let time = ManualTimeSourceForGateway()
        let budget = RetryBudget(ratio: 0.2, minRetriesPerSecond: 0, time: time)
        for _ in 0..<100 { budget.recordRequest() }
        var granted = 0
        for _ in 0..<100 where budget.tryRetry() { granted += 1 }
        #expect(granted == 20)
        time.advance(by: .seconds(11))
        #expect(!budget.tryRetry())
        let floor = RetryBudget(ratio: 0, minRetriesPerSecond: 1, time: time)
        var floorGranted = 0
        for _ in 0..<100 where floor.tryRetry() { floorGranted += 1 }
        #expect(floorGranted == 10)
    }

    @Test func retryBudgetCountsEveryRequestFromManyThreadsAcrossSeconds() async {
        let time = ManualTimeSourceForGateway()
        let budget = RetryBudget(ratio: 0.1, minRetriesPerSecond: 0, time: time)
        // Counted without a lock: none lost when four threads count at once, in a second
        // whose slot held an earlier second's counts (emptied once, not once per thread).
        time.advance(by: .seconds(3))
        for _ in 0..<500 { budget.recordRequest() }
        time.advance(by: .seconds(10))
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask { for _ in 0..<2_500 { budget.recordRequest() } }
            }
        }
        var granted = 0
        for _ in 0..<2_000 where budget.tryRetry() { granted += 1 }
        #expect(granted == 1_000)
    }

    @Test func retryBudgetTakesNewLimitsOnReload() {
        let time = ManualTimeSourceForGateway()
        let budget = RetryBudget(ratio: 0.2, minRetriesPerSecond: 0, time: time)
        for _ in 0..<100 { budget.recordRequest() }
        budget.update(ratio: 0.5, minRetriesPerSecond: 0)
        var granted = 0
        for _ in 0..<100 where budget.tryRetry() { granted += 1 }
        #expect(granted == 50)
    }

    @Test func unreadableTLSFilesAreNamedByPath() {
        let loader = ConfigurationLoader(environment: [:])
        let yaml = """
            listeners:
              traffic: {address: "127.0.0.1:8443", http2: true, tls: {certificate: /nonexistent/cert.pem, key: /nonexistent/key.pem}}
            pools:
              app: {instances: ["http://127.0.0.1:9001"]}
            """
        do {
            _ = try loader.load(yaml: yaml)
            Issue.record("a configuration with missing certificate files was accepted")
        } catch {
            let text = error.issues.map(\.description).joined(separator: "\n")
            #expect(text.contains("listeners.traffic.tls.certificate: cannot read a PEM certificate chain from /nonexistent/cert.pem"), "\(text)")
        }
        do {
            _ = try loader.load(yaml: "listeners:\n  traffic: {tls: {certificate: a.pem}}\npools:\n  app: {instances: [\"http://127.0.0.1:1\"]}\n")
            Issue.record("tls without a key was accepted")
        } catch {
            #expect(error.issues.contains { $0.path == "listeners.traffic.tls.key" }, "\(error.issues)")
        }
    }

    @Test func hostValidation() {
        for good in ["example.com", "example.com:8080", "[::1]:80", "10.0.0.1", "a_b.internal", "[::1]", "[::1]:", "[2001:db8::1]:65535",
                     String(repeating: "a", count: 255), String(repeating: "a", count: 255) + ":1"] {
            #expect(HostCheck.isValidAuthority(good), "\(good)")
        }
        for bad in ["exa mple.com", "example.com:", "example.com:abc", "[::1", "a@b", "x:123456", "[zz]:1", "", ":80", "[::1]x",
                    "[::1]:8x", String(repeating: "a", count: 256), "h\u{e9}te"] {
            #expect(!HostCheck.isValidAuthority(bad), "\(bad)")
        }
    }

    @Test func tokensCompareWholly() {
        #expect(constantTimeEqual(Array("secret-token-123".utf8), Array("secret-token-123".utf8)))
        #expect(!constantTimeEqual(Array("secret-token-123".utf8), Array("secret-token-124".utf8)))
        #expect(!constantTimeEqual(Array("secret".utf8), Array("secret-token".utf8)))
        #expect(!constantTimeEqual([], Array("x".utf8)))
    }
}

import RampartTesting
typealias ManualTimeSourceForGateway = ManualTimeSource

import NIOCore

@Suite struct SocketAddressTests {
    @Test func peerAddressesAreReadFromSocketBytes() throws {
        for text in ["127.0.0.1", "10.1.2.3", "::1", "2001:db8::8a2e:370:7334", "::ffff:192.0.2.1"] {
            let socket = try SocketAddress(ipAddress: text, port: 443)
            #expect(IPAddress(socketAddress: socket) == IPAddress(text), "\(text)")
        }
    }
}
