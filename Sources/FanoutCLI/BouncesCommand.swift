import ArgumentParser
import Curl
import FanoutDelivery
import FanoutSettings
import FanoutStore

struct BouncesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bounces",
        abstract: "Read the bounce mailbox: hard bounces turn their items bounced and suppress the address.",
        discussion: """
            Reads the new messages of BOUNCE_IMAP_URL (imap://host:port/INBOX or imaps://…) as \
            BOUNCE_IMAP_USERNAME / BOUNCE_IMAP_PASSWORD, through libcurl. A delivery status \
            notification (RFC 3464, or an older MTA's plain-text bounce) about a message Fanout \
            sent (found by its Message-ID) that says the address does not exist turns that sent item \
            bounced ("bounced: 5.1.1 …", counted as failed) and suppresses the address for its \
            company (hard_bounce); a complaint (an ARF feedback report) suppresses it as a \
            complaint; a delay or a full mailbox changes nothing; auto-replies and other mail are \
            left alone. Each message is read once (the mailbox's UIDVALIDITY and last UID are \
            kept in the database); run it from cron every few minutes, or let `fanout work` read \
            it every BOUNCE_IMAP_EVERY (5m). BOUNCE_IMAP_CA_FILE trusts a private CA for imaps.
            """
    )

    @OptionGroup var settings: SettingsOptions

    func run() throws {
        let loaded = try settings.load()
        guard let reader = try BounceReader(settings: loaded) else {
            _ = try loaded.required("BOUNCE_IMAP_URL", "the bounce mailbox, imap://host:port/INBOX or imaps://…")
            return
        }
        let connection = try openDatabase(settings)
        defer { connection.close() }
        print(try reader.readNew(connection).line)
    }
}
