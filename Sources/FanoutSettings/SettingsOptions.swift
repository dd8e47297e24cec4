import ArgumentParser

/// `--env-file`, which every command that reads settings takes (both binaries).
public struct SettingsOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Read settings from this .env file (e.g. the Laravel app's); real environment variables win.",
            valueName: "path"))
    public var envFile: String?

    public init() {}

    /// The settings: the process environment over the .env file.
    public func load() throws -> Settings {
        try Settings.load(envFile: envFile)
    }
}
