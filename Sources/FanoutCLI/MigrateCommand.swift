import ArgumentParser
import FanoutSettings
import FanoutStore
import Logging
import MariaDB

struct MigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Create or update Fanout's tables in the configured database.",
        discussion: """
            Applies the migrations of sql/migrations that the database has not had yet, in order, \
            and records them in fanout_migrations; a second run changes nothing. On tables a host \
            application created itself, it only adds the columns and indexes Fanout needs: it never \
            drops or rewrites data.
            """
    )

    @Flag(name: .long, help: "List the migrations that would be applied, and apply none.")
    var dryRun = false

    @OptionGroup var settingsOptions: SettingsOptions

    func run() throws {
        let settings = try settingsOptions.load()
        LoggingSetup.bootstrap(format: .text, verbose: false, file: settings.logFile)
        let connection = try Connection(settings.database())
        defer { connection.close() }
        var logger = Logger(label: "fanout.migrate")
        logger.logLevel = .warning // each applied migration is printed on stdout below
        let migrator = Migrator(connection: connection, logger: logger)
        if dryRun {
            let pending = try migrator.pending()
            print(
                pending.isEmpty
                    ? "Up to date: nothing to apply." : "Would apply: " + pending.map(\.file).joined(separator: ", "))
            return
        }
        let applied = try migrator.migrate()
        if applied.isEmpty {
            print("Up to date: nothing to apply.")
        } else {
            for migration in applied { print("Applied \(migration.file)") }
        }
    }
}
