// swift-tools-version: 6.2
import PackageDescription

// Every `any` and every `public import` is a visible decision (as in Hummingbird's manifest).
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "rampart",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "rampart", targets: ["rampart"]),
        .library(name: "RampartCore", targets: ["RampartCore"]),
        .library(name: "RampartBalancing", targets: ["RampartBalancing"]),
        .library(name: "RampartTelemetry", targets: ["RampartTelemetry"]),
        .library(name: "RampartStore", targets: ["RampartStore"]),
        .library(name: "RampartShield", targets: ["RampartShield"]),
        .library(name: "RampartLimits", targets: ["RampartLimits"]),
        .library(name: "RampartIdentity", targets: ["RampartIdentity"]),
        .library(name: "RampartFlags", targets: ["RampartFlags"]),
        .library(name: "RampartGraphQL", targets: ["RampartGraphQL"]),
        .library(name: "RampartEvents", targets: ["RampartEvents"]),
        .library(name: "RampartGateway", targets: ["RampartGateway"]),
    ],
    traits: [
        // Kafka sinks and consumers through librdkafka: needs Debian's librdkafka-dev to build and
        // librdkafka 2.2 or newer at run time. Off by default, so a plain `swift build` needs nothing.
        .trait(name: "Kafka", description: "Kafka sink, retry topics and consumer through librdkafka (apt-get install librdkafka-dev)"),
        .default(enabledTraits: []),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        // Tests only: the GraphQL server the gateway's GraphQL routes are tested against.
        .package(url: "https://github.com/GraphQLSwift/GraphQL.git", from: "4.3.0"),
    ],
    targets: [
        .target(
            name: "RampartCore",
            dependencies: [
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RampartTelemetry",
            dependencies: [
                "RampartCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RampartBalancing",
            dependencies: [
                "RampartCore",
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RampartStore",
            dependencies: [
                "RampartCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RampartShield",
            dependencies: [
                "RampartCore",
                "RampartStore",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RampartGateway",
            dependencies: [
                "RampartCore",
                "RampartShield",
                "RampartLimits",
                "RampartIdentity",
                "RampartFlags",
                "RampartGraphQL",
                "RampartEvents",
                "RampartStore",
                "RampartTelemetry",
                "RampartBalancing",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdHTTP2", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "rampart",
            dependencies: [
                "RampartGateway",
                "RampartEvents",
                "RampartLimits",
                "RampartIdentity",
                "RampartFlags",
                "RampartGraphQL",
                "RampartStore",
                "RampartShield",
                "RampartTelemetry",
                "RampartBalancing",
                "RampartCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RampartIdentity",
            dependencies: [
                "RampartCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RampartFlags",
            dependencies: ["RampartCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RampartFlagsTests",
            dependencies: [
                "RampartFlags", "RampartCore", "RampartTesting",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RampartIdentityTests",
            dependencies: [
                "RampartIdentity", "RampartCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "GraphQLBench",
            dependencies: ["RampartGraphQL", "RampartCore"],
            path: "Sources/GraphQLBench",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "EventsBench",
            dependencies: [
                "RampartEvents", "RampartStore", "RampartCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/EventsBench",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "FlagsBench",
            dependencies: ["RampartFlags", "RampartCore"],
            path: "Sources/FlagsBench",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "LimitsBench",
            dependencies: ["RampartLimits", "RampartStore", "RampartCore"],
            path: "Sources/LimitsBench",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RampartTesting",
            dependencies: [
                "RampartCore",
                "RampartGateway",
                "RampartBalancing",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RampartGraphQL",
            dependencies: [
                "RampartCore",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .systemLibrary(
            name: "Crdkafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        .target(
            name: "RampartEvents",
            dependencies: [
                "RampartCore",
                "RampartStore",
                .target(name: "Crdkafka", condition: .when(traits: ["Kafka"])),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RampartEventsTests",
            dependencies: [
                "RampartEvents", "RampartCore", "RampartStore", "RampartTesting",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RampartGraphQLTests",
            dependencies: [
                "RampartGraphQL", "RampartCore", "RampartTesting",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RampartLimits",
            dependencies: ["RampartCore", "RampartStore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RampartLimitsTests",
            dependencies: [
                "RampartLimits", "RampartCore", "RampartTesting",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RampartStoreTests",
            dependencies: [
                "RampartStore", "RampartCore", "RampartTesting",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RampartCoreTests",
            dependencies: [
                "RampartCore",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RampartShieldTests",
            dependencies: [
                "RampartShield", "RampartStore", "RampartCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RampartBalancingTests",
            dependencies: ["RampartBalancing", "RampartCore", "RampartTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RampartGatewayTests",
            dependencies: [
                "RampartGateway", "RampartCore", "RampartBalancing", "RampartShield", "RampartLimits", "RampartStore", "RampartGraphQL", "RampartTesting",
                .product(name: "PropertyBased", package: "swift-property-based"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "RampartGateway", "RampartEvents", "RampartCore", "RampartBalancing", "RampartShield", "RampartLimits", "RampartStore", "RampartFlags", "RampartGraphQL", "RampartIdentity", "RampartTesting",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "GraphQL", package: "GraphQL"),
                .product(name: "OrderedCollections", package: "swift-collections"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
