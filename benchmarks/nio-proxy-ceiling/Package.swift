// swift-tools-version: 6.0
import PackageDescription

// Built and run only by scripts/bench-proxy.sh --ceiling; not part of Rampart.
let package = Package(name: "nio-proxy-ceiling",
  dependencies: [.package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3")],
  targets: [.executableTarget(name: "nio-proxy-ceiling", dependencies: [
    .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
    .product(name: "NIOHTTP1", package: "swift-nio")])])
