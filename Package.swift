// swift-tools-version:6.0
import PackageDescription

import Foundation

// Kernels need an explicit CPU target (FMA, F16C, AVX-512 and its VNNI int8 dot products) and no
// bounds checks to run at memory speed. Cascade Lake's feature set runs on every AVX-512 server CPU
// since 2019 (Intel and AMD Zen 4+); FLEXSERVE_TARGET_CPU overrides it for older machines.
let targetCPU = ProcessInfo.processInfo.environment["FLEXSERVE_TARGET_CPU"] ?? "cascadelake"
// Kernels written with AVX-512 intrinsics compile only for CPUs that have AVX512-VNNI; others get
// the portable SIMD kernels.
let vnniCPUs: Set = ["cascadelake", "cooperlake", "icelake-server", "sapphirerapids", "emeraldrapids",
                     "graniterapids", "znver4", "znver5"]
// x86 CPUs with AVX2 and FMA but without AVX-512 get AVX2 kernels where the portable ones fall short.
let avx2CPUs: Set = ["haswell", "broadwell", "skylake", "alderlake", "znver1", "znver2", "znver3", "x86-64-v3"]
let fast: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-target-cpu", targetCPU], .when(configuration: .release)),
    .unsafeFlags(["-target-cpu", targetCPU], .when(configuration: .debug)),
] + (vnniCPUs.contains(targetCPU) ? [.define("FLEXSERVE_AVX512")] : [])
  + (avx2CPUs.contains(targetCPU) ? [.define("FLEXSERVE_AVX2")] : [])

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
        // Fixture paths shared by the test targets.
        .target(name: "FlexServeTestSupport", path: "Tests/Support"),
        .testTarget(name: "FlexServeTensorTests", dependencies: ["FlexServeTensor"], swiftSettings: fast),
        .testTarget(name: "FlexServeCUDATests", dependencies: ["FlexServeCUDA"], swiftSettings: fast),
        .testTarget(name: "FlexServeModelsTests", dependencies: ["FlexServeModels", "FlexServeTestSupport"], swiftSettings: fast),
        .testTarget(name: "FlexServeTokenizersTests", dependencies: ["FlexServeTokenizers"], swiftSettings: fast),
        .testTarget(name: "FlexServeTests", dependencies: ["FlexServe", "FlexServeTestSupport"], swiftSettings: fast),
        .testTarget(name: "FlexServeServerTests", dependencies: ["FlexServeServer"], swiftSettings: fast),
        .testTarget(name: "FlexServeCLITests", dependencies: ["flexserve"], swiftSettings: fast),
        .testTarget(name: "FlexServeHubTests", dependencies: ["FlexServeHub", .product(name: "Hummingbird", package: "hummingbird")], swiftSettings: fast),
    ],
    swiftLanguageModes: [.v5]
)
