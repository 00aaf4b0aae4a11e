// swift-tools-version:6.0
import PackageDescription

// Kernels need FMA/F16C (an explicit CPU target) and no bounds checks to run at memory speed.
let fast: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-target-cpu", "haswell"], .when(configuration: .release)),
    .unsafeFlags(["-target-cpu", "haswell"], .when(configuration: .debug)),
]

let package = Package(
    name: "FlexServe",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "FlexServe", targets: ["FlexServe"]),
        .executable(name: "flexserve", targets: ["flexserve"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        .target(name: "FlexServeTensor", swiftSettings: fast),
        .target(name: "FlexServeCUDA", dependencies: ["FlexServeTensor", "FlexServeModels"], swiftSettings: fast),
        .target(name: "FlexServeModels", dependencies: ["FlexServeTensor"], swiftSettings: fast),
        .target(name: "FlexServeTokenizers", dependencies: ["FlexServeModels"], swiftSettings: fast),
        .target(name: "FlexServe", dependencies: ["FlexServeTensor", "FlexServeCUDA", "FlexServeModels", "FlexServeTokenizers"], swiftSettings: fast),
        .target(name: "FlexServeHub", dependencies: [
            "FlexServe",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: fast),
        .target(name: "FlexServeServer", dependencies: [
            "FlexServe",
            .product(name: "Hummingbird", package: "hummingbird"),
        ], swiftSettings: fast),
        .executableTarget(name: "flexserve", dependencies: [
            "FlexServe", "FlexServeHub", "FlexServeServer",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: fast),
        .testTarget(name: "FlexServeTensorTests", dependencies: ["FlexServeTensor"], swiftSettings: fast),
        .testTarget(name: "FlexServeCUDATests", dependencies: ["FlexServeCUDA"], swiftSettings: fast),
        .testTarget(name: "FlexServeModelsTests", dependencies: ["FlexServeModels"], swiftSettings: fast),
        .testTarget(name: "FlexServeTokenizersTests", dependencies: ["FlexServeTokenizers"], swiftSettings: fast),
        .testTarget(name: "FlexServeTests", dependencies: ["FlexServe"], swiftSettings: fast),
        .testTarget(name: "FlexServeServerTests", dependencies: ["FlexServeServer"], swiftSettings: fast),
        .testTarget(name: "FlexServeHubTests", dependencies: ["FlexServeHub", .product(name: "Hummingbird", package: "hummingbird")], swiftSettings: fast),
    ],
    swiftLanguageModes: [.v5]
)
