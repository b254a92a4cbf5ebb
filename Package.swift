// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "buildfs",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "buildfs", targets: ["buildfs"]),
        .library(name: "BuildFSCore", targets: ["BuildFSCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.100.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // C libraries, found through pkg-config (libzstd-dev, libfuse3-dev).
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CFuse3", pkgConfig: "fuse3",
                       providers: [.apt(["libfuse3-dev"])]),
        // Linux calls Swift's Glibc module does not show (syncfs, ...).
        .systemLibrary(name: "CLinuxCalls"),
        // The FUSE kernel protocol (7.45) for the daemon's own request loop.
        .systemLibrary(name: "CFuseKernel"),
        // io_uring by raw system calls (no liburing), for FUSE over io_uring.
        .systemLibrary(name: "CIoUring"),

        // Layers 1-3: objects, store, snapshots. No FUSE.
        .target(name: "BuildFSCore", dependencies: [
            "CZstd", "CLinuxCalls",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),

        // Layer 2, remote: the store on an HTTP cache server (Bazel's
        // remote-cache protocol), with a local store as read-through cache.
        .target(name: "BuildFSRemote", dependencies: [
            "BuildFSCore",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),

        // Layer 4: the FUSE daemon. Needs the store, never the CLI.
        .target(name: "BuildFSMount", dependencies: ["BuildFSCore", "CFuse3", "CFuseKernel", "CIoUring", "CLinuxCalls"]),

        // Layer 5: the command line.
        .executableTarget(name: "buildfs", dependencies: [
            "BuildFSCore", "BuildFSMount", "BuildFSRemote",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Helpers shared by the test targets: temp dirs, random trees,
        // exact tree comparison, running commands.
        .target(name: "TestSupport", dependencies: [
            .product(name: "Crypto", package: "swift-crypto"),
        ], path: "Tests/TestSupport"),
        .testTarget(name: "BuildFSCoreTests", dependencies: ["BuildFSCore", "TestSupport", "CLinuxCalls"]),
        .testTarget(name: "BuildFSCLITests", dependencies: ["buildfs", "BuildFSCore", "TestSupport"]),
        .testTarget(name: "BuildFSSnapshotMountTests", dependencies: ["buildfs", "TestSupport"]),
        .testTarget(name: "BuildFSMountTests", dependencies: ["buildfs", "TestSupport", "CLinuxCalls"]),
        .testTarget(name: "BuildFSScenarioTests", dependencies: ["buildfs", "TestSupport"]),
        .testTarget(name: "BuildFSHelperTests", dependencies: ["buildfs", "TestSupport"]),
        .testTarget(name: "BuildFSRemoteTests", dependencies: ["buildfs", "BuildFSRemote", "BuildFSCore", "TestSupport"]),
        .testTarget(name: "BuildFSContainerTests", dependencies: ["TestSupport"], exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)
