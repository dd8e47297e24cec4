import ArgumentParser
import Curl
import FanoutCore
import FanoutDelivery
import FanoutSettings
import FanoutStore
import Foundation
import Logging

/// The message a tick would send for one item of an email job.
private func composed(
    _ kind: JobKind, jobID: UInt64, itemID: UInt64?, settings: SettingsOptions
) throws -> (email: EmailSettings, message: ComposedEmail) {
    guard kind == .email else { throw UserError(description: "only email jobs have messages to preview") }
    let loaded = try settings.load()
    let email = try loaded.email(connections: 1)
    let connection = try openDatabase(settings)
    defer { connection.close() }
    let (job, item) = try JobAdmin(connection: connection).emailItem(job: jobID, item: itemID)
    let deliverer = EmailDeliverer(settings: email, logger: Logger(label: "fanout"))
    let result: Result<ComposedEmail, ItemRejection>
    do {
        result = try deliverer.message(for: item, of: job)
    } catch {
        throw UserError(description: error.reason)
    }
    switch result {
    case .success(let message): return (email, message)
    case .failure(let rejection): throw UserError(description: "item \(item.id) would not be sent: \(rejection.reason)")
    }
}

struct PreviewCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preview",
        abstract: "Print the message one item of an email job would be sent as.",
        discussion: """
            Headers, MIME parts and the DKIM signature exactly as a tick would send them (the Date, \
            and the signature's time, are now's). The job's first item unless --item says which. \
            Nothing is sent and nothing in the database changes.
            """
    )

    @Argument(help: "email") var kind: JobKind
    @Argument(help: "The job's id.") var jobID: UInt64
    @Option(name: .long, help: "The item (default: the job's first).") var item: UInt64?
    @OptionGroup var settings: SettingsOptions

    func run() throws {
        let (_, message) = try composed(kind, jobID: jobID, itemID: item, settings: settings)
        print("MAIL FROM: <\(message.envelopeFrom)>\nRCPT TO: <\(message.recipient)>\n")
        print(String(decoding: message.bytes, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n"))
    }
}

struct TestSendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test-send",
        abstract: "Send one item's message of an email job to an address of yours, before the job starts.",
        discussion: """
            The message is the one the item would get (its name, data and unsubscribe link), sent \
            through the configured SMTP account to --to instead of the item's recipient. The job \
            and its items do not change.
            """
    )

    @Argument(help: "email") var kind: JobKind
    @Argument(help: "The job's id.") var jobID: UInt64
    @Option(name: .long, help: "Where to send it.") var to: String
    @Option(name: .long, help: "The item (default: the job's first).") var item: UInt64?
    @OptionGroup var settings: SettingsOptions

    func run() throws {
        guard case .success(let address) = EmailAddress.validate(to) else {
            throw UserError(description: "--to \(to) is not an email address")
        }
        let (email, message) = try composed(kind, jobID: jobID, itemID: item, settings: settings)
        let connection = try SMTPConnection(email.smtp)
        let reply = try connection.send(
            SMTPMessage(from: message.envelopeFrom, recipients: [address], content: message.bytes))
        print("Sent the message for \(message.recipient) to \(address): \(reply.code) \(reply.text)")
    }
}
