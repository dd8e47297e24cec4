// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "fanout",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "fanout", targets: ["FanoutCLI"]),
        .executable(name: "fanout-web", targets: ["FanoutWeb"]),
        .library(name: "MariaDB", targets: ["MariaDB"]),
        .library(name: "Curl", targets: ["Curl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0", traits: []),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CMariaDB",
            pkgConfig: "libmariadb",
            providers: [.apt(["libmariadb-dev"])]
        ),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .systemLibrary(name: "CDKIM", pkgConfig: "opendkim", providers: [.apt(["libopendkim-dev"])]),
        .target(name: "MariaDB", dependencies: ["CMariaDB"]),
        .target(name: "Curl", dependencies: ["CCurl"]),
        .target(
            name: "CDKIMParsedKeys",
            linkerSettings: [.linkedLibrary("crypto")]
        ),
        .target(name: "DKIM", dependencies: ["CDKIM", "CDKIMParsedKeys"]),
        .target(name: "FanoutCore", dependencies: [.product(name: "Logging", package: "swift-log")]),
        .target(
            name: "FanoutStore",
            dependencies: [
                "FanoutCore", "MariaDB",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "FanoutDelivery",
            dependencies: [
                "FanoutCore", "Curl", "DKIM",
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "FanoutReports", dependencies: ["FanoutCore"]),
        .target(
            name: "FanoutSettings",
            dependencies: [
                "FanoutCore", "FanoutDelivery", "MariaDB", "Curl", "DKIM",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "FanoutCLI",
            dependencies: [
                "FanoutCore", "FanoutStore", "FanoutDelivery", "FanoutReports", "FanoutSettings", "MariaDB", "Curl",
                "DKIM",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The operator's web page: a separate binary, so the cron tick never links Hummingbird.
        .executableTarget(
            name: "FanoutWeb",
            dependencies: [
                "FanoutCore", "FanoutStore", "FanoutReports", "FanoutSettings", "FanoutDelivery", "MariaDB", "Curl",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "MariaDBTests", dependencies: ["MariaDB", "TestSupport"]),
        .testTarget(name: "CurlTests", dependencies: ["Curl", "TestSupport"]),
        .testTarget(name: "DKIMTests", dependencies: ["DKIM", "CDKIMParsedKeys", "TestSupport"]),
        .testTarget(
            name: "FanoutCoreTests", dependencies: ["FanoutCore", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "FanoutDeliveryTests", dependencies: ["FanoutDelivery", "TestSupport"]),
        .testTarget(name: "FanoutStoreTests", dependencies: ["FanoutStore", "MariaDB", "TestSupport"]),
        .testTarget(name: "FanoutCLITests", dependencies: ["MariaDB", "TestSupport"]),
        .target(name: "TestSupport", dependencies: ["MariaDB"], path: "Tests/TestSupport"),
    ],
    swiftLanguageModes: [.v6]
)
