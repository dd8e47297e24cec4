import ArgumentParser
import FanoutDelivery
import FanoutSettings
import FanoutStore
import Foundation

extension SuppressionReason: ExpressibleByArgument {
    public init?(argument: String) {
        self.init(rawValue: argument.lowercased().replacingOccurrences(of: "-", with: "_"))
    }
}

struct SuppressCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suppress",
        abstract: "Addresses a company must not mail: add, remove, list, import.",
        discussion: """
            Suppressed recipients are not sent to: their items end failed with a reason starting \
            "suppressed:", checked when a batch is claimed. unsubscribe and complaint hold back \
            marketing mail (bulk_email_jobs.mail_type = 'marketing', the default); hard_bounce and \
            manual hold back every mail. Addresses are compared in lower case. The table is \
            fanout_suppressions (company_id, email, reason, source, created_at, expires_at): a host \
            application may write it directly.
            """,
        subcommands: [Add.self, Remove.self, List.self, Import.self]
    )

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Suppress an address for a company.")
        @Option(name: .long, help: "The company.") var company: UInt64
        @Argument(help: "The address.") var email: String
        @Option(name: .long, help: "unsubscribe, complaint, hard_bounce or manual") var reason = SuppressionReason
            .manual
        @Option(name: .long, help: "Lift it after this many days (default: never).") var days: Int?
        @OptionGroup var settings: SettingsOptions

        func run() throws {
            if case .failure(let problem) = EmailAddress.validate(email) {
                throw UserError(description: problem.reason)
            }
            let connection = try openDatabase(settings)
            defer { connection.close() }
            let new = try Suppressions(connection: connection).add(
                companyID: company, email: email, reason: reason, source: "cli", expiresInDays: days)
            print(
                "\(new ? "Suppressed" : "Updated") \(Suppressions.normalised(email)) for company \(company) "
                    + "(\(reason.rawValue)).")
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lift an address's suppression for a company.")
        @Option(name: .long, help: "The company.") var company: UInt64
        @Argument(help: "The address.") var email: String
        @OptionGroup var settings: SettingsOptions

        func run() throws {
            let connection = try openDatabase(settings)
            defer { connection.close() }
            guard try Suppressions(connection: connection).remove(companyID: company, email: email) else {
                throw UserError(
                    description: "\(Suppressions.normalised(email)) is not suppressed for company \(company)")
            }
            print("\(Suppressions.normalised(email)) may be mailed again by company \(company).")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A company's suppressed addresses.")
        @Option(name: .long, help: "The company.") var company: UInt64
        @OptionGroup var settings: SettingsOptions

        func run() throws {
            let connection = try openDatabase(settings)
            defer { connection.close() }
            let rows = try Suppressions(connection: connection).list(companyID: company)
            if rows.isEmpty { print("No suppressed addresses for company \(company).") }
            for row in rows {
                let since = row.createdAt.map { " since \(JobsCommand.isoDate($0))" } ?? ""
                let until = row.expiresAt.map { " until \(JobsCommand.isoDate($0))" } ?? ""
                print("\(row.email)\t\(row.reason)\t\(row.source ?? "")\(since)\(until)")
            }
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Suppress every address of a file: one a line, or a CSV with an email column.")
        @Option(name: .long, help: "The company.") var company: UInt64
        @Argument(help: "The file.") var file: String
        @Option(name: .long, help: "unsubscribe, complaint, hard_bounce or manual") var reason = SuppressionReason
            .manual
        @OptionGroup var settings: SettingsOptions

        func run() throws {
            let reader = try CSVReader(path: file)
            var column = 0
            var first = true
            var addresses: [String] = []
            var skipped: [String] = []
            while let fields = try reader.next() {
                if first {
                    first = false
                    let header = fields.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
                    if let index = header.firstIndex(of: "email") {
                        column = index
                        continue
                    }
                }
                guard column < fields.count else { continue }
                let address = fields[column].trimmingCharacters(in: .whitespaces)
                if address.isEmpty { continue }
                guard case .success = EmailAddress.validate(address) else {
                    skipped.append("line \(reader.line): '\(address)'")
                    continue
                }
                addresses.append(address)
            }
            let connection = try openDatabase(settings)
            defer { connection.close() }
            let added = try Suppressions(connection: connection).add(
                companyID: company, emails: addresses, reason: reason,
                source: "import \((file as NSString).lastPathComponent)")
            print("Suppressed \(added) new address\(added == 1 ? "" : "es") for company \(company).")
            if !skipped.isEmpty {
                print("Skipped \(skipped.count) that are not addresses: \(skipped.prefix(10).joined(separator: ", "))")
            }
        }
    }
}
