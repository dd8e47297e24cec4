import ArgumentParser
import FanoutCore
import FanoutDelivery
import FanoutSettings
import FanoutStore
import MariaDB
#if canImport(Glibc)
import Glibc
#endif

struct EnqueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract:
            "Create a job from a CSV file (header row; email,name or card_id,platform; other columns go into data).",
        discussion: """
            Every row is checked first; bad rows are listed with their line numbers and nothing \
            is created, unless --skip-invalid. The job and its items are then created in one \
            transaction, and the new job's id is printed. Files of any size stream.
              fanout enqueue email --company 7 --template business-card --recipients list.csv
              fanout enqueue wallet --company 7 --template generic --cards cards.csv
            """
    )

    @Argument(help: "email or wallet") var kind: JobKind
    @Option(name: .long, help: "The company the job belongs to.") var company: UInt64
    @Option(name: .long, help: "The template name.") var template: String
    @Option(name: .long, help: "Email jobs: the CSV of recipients (email, name, …).") var recipients: String?
    @Option(name: .long, help: "Wallet jobs: the CSV of cards (card_id, platform, …).") var cards: String?
    @Flag(name: .long, help: "Create the job from the good rows and skip the bad ones (still listed).")
    var skipInvalid = false
    @OptionGroup var settings: SettingsOptions

    func validate() throws {
        switch kind {
        case .email:
            guard recipients != nil else { throw ValidationError("enqueue email needs --recipients FILE.csv") }
            if cards != nil { throw ValidationError("--cards is for wallet jobs") }
        case .wallet:
            guard cards != nil else { throw ValidationError("enqueue wallet needs --cards FILE.csv") }
            if recipients != nil { throw ValidationError("--recipients is for email jobs") }
        }
        if template.isEmpty || template.count > 191 { throw ValidationError("--template must be 1 to 191 characters") }
    }

    /// One checked row: the item's columns and its data object as JSON text.
    struct Row {
        var first: String
        var second: String?
        var data: String?
    }

    func run() throws {
        let path = recipients ?? cards ?? ""
        let progress = ProgressLine(enabled: isatty(2) == 1)
        // Pass 1: check every row, so that nothing is created from a file with mistakes.
        var bad: [String] = []
        var good = 0
        try each(path) { line, result in
            switch result {
            case .success: good += 1
            case .failure(let problem): bad.append("line \(line): \(problem)")
            }
            if (good + bad.count) % 10_000 == 0 { progress.show("checked \(good + bad.count) rows") }
        }
        progress.clear()
        for message in bad.prefix(20) { printError("fanout: \(path): \(message)") }
        if bad.count > 20 { printError("fanout: \(path): … and \(bad.count - 20) more bad rows") }
        if !bad.isEmpty && !skipInvalid {
            throw UserError(
                description:
                    "\(bad.count) bad row\(bad.count == 1 ? "" : "s") in \(path): "
                    + "nothing created (fix them, or use --skip-invalid)"
            )
        }
        guard good > 0 else { throw UserError(description: "\(path) has no rows to enqueue") }
        // Pass 2: the job and its items in one transaction, many rows per INSERT.
        let connection = try openDatabase(settings)
        defer { connection.close() }
        let jobID = try JobAdmin(connection: connection).create(
            kind: kind, companyID: company, template: template, total: good
        ) { items in
            try each(path) { _, result in
                guard case .success(let row) = result else { return }
                if try items.add(JobAdmin.NewItem(target: row.first, detail: row.second, data: row.data)) {
                    progress.show("created \(items.written) of \(good) items")
                }
            }
        }
        progress.clear()
        print(jobID)
    }

    /// Reads the file, checks each row, and hands it on with its line number.
    private func each(_ path: String, _ body: (Int, Result<Row, RowProblem>) throws -> Void) throws {
        let reader = try CSVReader(path: path)
        func record() throws -> [String]? {
            do {
                return try reader.next()
            } catch {
                throw UserError(description: "\(path): \(error); nothing created")
            }
        }
        guard let first = try record() else { throw UserError(description: "\(path) is empty: expected a header row") }
        let header = first.map { $0.trimmingCharacters(in: " ").lowercased() }
        let (firstName, secondName) = kind == .email ? ("email", "name") : ("card_id", "platform")
        guard let firstIndex = header.firstIndex(of: firstName) else {
            throw UserError(
                description:
                    "\(path): the header row has no '\(firstName)' column (it has: \(header.joined(separator: ", ")))")
        }
        let secondIndex = header.firstIndex(of: secondName)
        while true {
            guard let fields = try record() else { return }
            if fields == [""] { continue } // a blank line
            guard fields.count == header.count else {
                try body(reader.line, .failure(RowProblem("\(fields.count) fields, the header has \(header.count)")))
                continue
            }
            let first = fields[firstIndex].trimmingCharacters(in: " ")
            if kind == .email {
                if case .failure(let problem) = EmailAddress.validate(first) {
                    try body(reader.line, .failure(RowProblem(problem.reason)))
                    continue
                }
            } else if UInt64(first) == nil {
                try body(reader.line, .failure(RowProblem("card_id '\(first)' is not a whole number")))
                continue
            }
            var data: [(String, String)] = []
            for (i, name) in header.enumerated() where i != firstIndex && i != secondIndex {
                data.append((name, fields[i]))
            }
            let json =
                data.isEmpty
                ? nil
                : "{" + data.map { "\(JSONString.quoted($0.0)):\(JSONString.quoted($0.1))" }.joined(separator: ",")
                    + "}"
            let second = secondIndex.map { fields[$0] }.flatMap { $0.isEmpty ? nil : $0 }
            try body(reader.line, .success(Row(first: first, second: second, data: json)))
        }
    }

    struct RowProblem: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}

/// A progress line on standard error, only when a person watches a terminal.
struct ProgressLine {
    let enabled: Bool

    func show(_ text: String) {
        guard enabled else { return }
        let bytes = Array(("\r\u{1B}[K" + text).utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }

    func clear() {
        guard enabled else { return }
        let bytes = Array("\r\u{1B}[K".utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }
}
