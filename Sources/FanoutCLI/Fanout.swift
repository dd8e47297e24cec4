import ArgumentParser
import FanoutCore
import FanoutSettings
#if canImport(Glibc)
import Glibc
#endif

@main
struct Fanout: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fanout",
        abstract: "Delivers bulk email and wallet API jobs stored in MariaDB: cron ticks or a long-running worker.",
        discussion: """
            Settings come from environment variables with Laravel's names (DB_HOST, DB_PORT, \
            DB_DATABASE, DB_USERNAME, DB_PASSWORD, DB_SOCKET, MAIL_*); DB_HOST may list several \
            servers (db1,db2:3307,db3: the first that answers and is ready). Exit codes follow sysexits: \
            0 done, 64 usage, 66 an input file missing or unreadable, 69 a service unavailable, \
            78 configuration error, 1 anything else; `work` also 12 (its --memory reached) and 75 \
            (the database gone past its --reconnect-deadline). The line a failing command ends with \
            also goes to FANOUT_LOG_FILE.
            """,
        version: version,
        subcommands: [
            EmailsProcessJobsCommand.self, WalletProcessJobsCommand.self, WorkCommand.self, JobsCommand.self,
            ReportCommand.self, EnqueueCommand.self, CancelCommand.self, RetryCommand.self, WorkersCommand.self,
            WorkerRestartCommand.self, WorkerPauseCommand.self, WorkerContinueCommand.self, MigrateCommand.self,
            DoctorCommand.self, SuppressCommand.self, DKIMCommand.self, PreviewCommand.self, TestSendCommand.self,
            BouncesCommand.self,
        ]
    )

    static let version = "0.2.0"

    /// Parses the command line and runs the command; every failure ends as one line on stderr
    /// and a sysexits code.
    static func main() {
        var parsed = false
        do {
            var command = try parseAsRoot()
            parsed = true
            try command.run()
        } catch {
            if exitCode(for: error) == .success {
                exit(withError: error) // --help, --version: ArgumentParser prints them.
            }
            if let code = error as? ExitCode { Glibc.exit(code.rawValue) }
            if !parsed {
                var message =
                    self.message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments"
                if message.hasPrefix("Error: ") { message.removeFirst("Error: ".count) }
                printError("fanout: \(message) (see 'fanout --help')")
                Glibc.exit(ExitStatus.usage)
            }
            let failure = CommandFailure(error)
            printError("fanout: \(failure.message)")
            LoggingSetup.recordExit("fanout: \(failure.message)", status: failure.status)
            Glibc.exit(failure.status)
        }
    }
}
