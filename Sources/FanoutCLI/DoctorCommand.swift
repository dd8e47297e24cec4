import ArgumentParser
import Curl
import FanoutDelivery
import FanoutSettings
import FanoutStore
import Foundation
import Logging
import MariaDB

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check the settings, the database, the SMTP server, the templates and the wallet API, and explain.",
        discussion: "Sends nothing. Exit 0 only when every check passes."
    )

    @OptionGroup var settingsOptions: SettingsOptions

    /// Which of cron ticks and workers ran lately on this database (information, not a check).
    static func describeRunners(_ registry: WorkerRegistry) -> String {
        let workers = (try? registry.list()) ?? []
        guard let activity = try? registry.activity() else { return "info runners    unknown" }
        func ago(_ time: Double?) -> String {
            guard let time else { return "never" }
            return "\(Int((activity.now - time).rounded())) s ago"
        }
        let names = workers.prefix(5).map { "\($0.name) (\($0.state))" }.joined(separator: ", ")
        return "info runners    \(workers.count) live worker\(workers.count == 1 ? "" : "s")"
            + (workers.isEmpty ? "" : ": \(names)")
            + "; last company served \(ago(activity.lastBatch)); last tick recorded \(ago(activity.lastRecordedTick))"
    }

    func run() throws {
        let settings = try settingsOptions.load()
        var failures = 0
        func report(_ ok: Bool, _ what: String, _ detail: String) {
            print("\(ok ? "ok  " : "FAIL") \(what.padding(toLength: 10, withPad: " ", startingAt: 0)) \(detail)")
            if !ok { failures += 1 }
        }
        /// Something to know that fails no check (a sample template for a platform not set up).
        func note(_ what: String, _ detail: String) {
            print("note \(what.padding(toLength: 10, withPad: " ", startingAt: 0)) \(detail)")
        }

        print("Settings:")
        let names =
            [
                "DB_HOST", "DB_PORT", "DB_SOCKET", "DB_DATABASE", "DB_USERNAME", "DB_PASSWORD", "MAIL_HOST",
                "MAIL_PORT", "MAIL_ENCRYPTION",
                "MAIL_USERNAME", "MAIL_PASSWORD", "MAIL_FROM_ADDRESS", "MAIL_FROM_NAME", "FANOUT_TEMPLATES",
                "FANOUT_LOG_FILE",
            ]
            + settings.walletNames
        for name in names {
            guard let value = settings[name] else { print("  \(name) (not set)"); continue }
            let shown = Settings.isSecret(name) ? "****" : value
            print("  \(name)=\(shown)  (from \(settings.source(of: name) ?? "default"))")
        }
        print("Checks:")
        // Database and schema.
        do {
            let connection = try Connection(try settings.database())
            defer { connection.close() }
            var logger = Logger(label: "fanout.doctor")
            logger.logLevel = .critical
            let pending = try Migrator(connection: connection, logger: logger).pending()
            report(
                true, "database",
                "connected to \(try settings.database().endpointDescription), MariaDB \(connection.serverVersion)")
            report(
                pending.isEmpty, "schema",
                pending.isEmpty
                    ? "migrated" : "not migrated: run 'fanout migrate' (\(pending.map(\.file).joined(separator: ", ")))"
            )
            if pending.isEmpty { print(Self.describeRunners(WorkerRegistry(connection: connection))) }
        } catch {
            report(false, "database", CommandFailure(error).message)
        }
        // SMTP, without sending.
        if settings["MAIL_HOST"] != nil {
            do {
                let email = try settings.email(connections: 1)
                let reply = try SMTPConnection(email.smtp).verify()
                let steps = [
                    email.smtp.security == .startTLS ? "STARTTLS" : email.smtp.security == .implicitTLS ? "TLS" : nil,
                    email.smtp.username == nil ? nil : "AUTH",
                ].compactMap { $0 }
                let extensions = steps.isEmpty ? "" : ", " + steps.joined(separator: ", ")
                report(
                    true, "smtp",
                    "\(email.smtp.host):\(email.smtp.port) EHLO\(extensions) ok; NOOP: \(reply.text)"
                )
            } catch {
                report(false, "smtp", CommandFailure(error).message)
            }
        } else {
            print("skip smtp       MAIL_HOST is not set (only needed for email jobs)")
        }
        // Marketing mail's one-click unsubscribe (Gmail and Yahoo require it of bulk senders).
        do {
            if let unsubscribe = try settings.unsubscribe() {
                report(true, "unsubscribe", "marketing mail carries List-Unsubscribe: \(unsubscribe.urlTemplate)")
            } else {
                note(
                    "unsubscribe",
                    "FANOUT_UNSUBSCRIBE_URL is not set: marketing mail goes out without List-Unsubscribe "
                        + "(Gmail and Yahoo require one-click unsubscribe from bulk senders)")
            }
        } catch {
            report(false, "unsubscribe", error.description)
        }
        // Templates.
        let folder = settings["FANOUT_TEMPLATES"] ?? "./templates"
        let emailNames =
            (try? FileManager.default.contentsOfDirectory(atPath: folder + "/email"))?.filter {
                !$0.hasPrefix(".") && !$0.hasSuffix(".md")
            }.sorted() ?? []
        // Wallet templates by job template name: NAME.http.mustache and NAME.PLATFORM.http.mustache.
        let walletNames = Set(
            ((try? FileManager.default.contentsOfDirectory(atPath: folder + "/wallet")) ?? []).filter {
                $0.hasSuffix(".http.mustache")
            }.map { String($0.dropLast(".http.mustache".count).split(separator: ".")[0]) }
        ).sorted()
        if emailNames.isEmpty && walletNames.isEmpty {
            report(
                false, "templates",
                "none in \(folder) (FANOUT_TEMPLATES): expected email/NAME/ or wallet/NAME.http.mustache")
        }
        for name in emailNames {
            do {
                _ = try EmailTemplate.load(name: name, folder: folder); report(true, "template", "email/\(name)")
                // Marketing mail needs a visible way out too (Gmail and Yahoo ask for both).
                let directory = (folder as NSString).appendingPathComponent("email/\(name)")
                let parts = ["html.mustache", "text.mustache"].compactMap {
                    try? String(contentsOfFile: (directory as NSString).appendingPathComponent($0), encoding: .utf8)
                }
                if !parts.contains(where: { $0.contains("unsubscribe_url") }) {
                    note(
                        "template",
                        "email/\(name) has no visible {{unsubscribe_url}} link: marketing mail should show one "
                            + "besides the List-Unsubscribe header")
                }
            } catch { report(false, "template", "\(error)") }
        }
        // DKIM aligned with the From domain (DMARC passes only when d= is it or a parent of it).
        do {
            if let key = try settings.dkim(), let from = settings["MAIL_FROM_ADDRESS"],
                let fromDomain = from.split(separator: "@").last.map({ String($0).lowercased() })
            {
                let domain = key.domain.lowercased()
                if fromDomain == domain || fromDomain.hasSuffix("." + domain) {
                    report(true, "dkim", "signs as d=\(domain), aligned with MAIL_FROM_ADDRESS's \(fromDomain)")
                } else {
                    note(
                        "dkim",
                        "d=\(domain) is not MAIL_FROM_ADDRESS's domain \(fromDomain) nor a parent: DMARC will not align"
                    )
                }
            }
        } catch {
            report(false, "dkim", error.description)
        }
        let wallet = try? settings.wallet(parallel: 1, rate: nil)
        let walletEnvironment = wallet?.environment ?? [:]
        var authsUsed: Set<WalletAuth> = []
        for name in walletNames {
            do {
                let set = try WalletTemplateSet.load(name: name, folder: folder)
                for template in set.all {
                    if let auth = template.auth { authsUsed.insert(auth) }
                    // The same check a wallet job makes before it sends anything.
                    if let problem = template.urlProblem(environment: walletEnvironment) {
                        report(false, "template", problem)
                    } else {
                        report(true, "template", template.relative + (template.auth.map { " (@auth \($0))" } ?? ""))
                    }
                }
            } catch {
                report(false, "template", "\(error)")
            }
        }
        // The platforms' credentials, for real: the key mints a token; the certificate fits.
        if let wallet {
            let credentials = wallet.credentials
            if let file = credentials.googleKeyFile {
                do {
                    let account = try GoogleServiceAccount.load(path: file)
                    do {
                        let minted = try account.mint(tls: wallet.tls)
                        let minutes = Int((minted.expiresAt - Date().timeIntervalSince1970) / 60)
                        let what = "WALLET_GOOGLE_KEY_FILE (\(account.clientEmail))"
                        report(true, "google", "\(what) minted an access token valid \(minutes) min")
                    } catch {
                        report(false, "google", error.message)
                    }
                } catch {
                    report(false, "google", error.description)
                }
            } else if authsUsed.contains(.google) {
                note("google", "WALLET_GOOGLE_KEY_FILE is not set: items of templates signed '# @auth google' fail")
            }
            if credentials.hasAPNs {
                do {
                    let apns = try APNsCredential.load(
                        certificateFile: credentials.apnsCertificate, keyFile: credentials.apnsKey,
                        password: credentials.apnsKeyPassword, p12File: credentials.apnsP12,
                        topic: credentials.apnsTopic)
                    report(true, "apns", "the certificate fits WALLET_APNS_TOPIC \(apns.topic) and is not expired")
                } catch {
                    report(false, "apns", error.description)
                }
            } else if authsUsed.contains(.apns) {
                note(
                    "apns",
                    "neither WALLET_APNS_CERT nor WALLET_APNS_P12 is set: items of templates signed '# @auth apns' fail"
                )
            }
        }
        // The wallet API's server, when a base URL is configured.
        if let base = settings["WALLET_BASE_URL"] {
            do {
                let wallet = try settings.wallet(parallel: 1, rate: nil)
                try HTTPTransfer().probe(base, tls: wallet.tls)
                report(true, "wallet", "\(base) resolves and accepts connections")
            } catch {
                report(false, "wallet", CommandFailure(error).message)
            }
        }
        print(failures == 0 ? "All checks passed." : "\(failures) check\(failures == 1 ? "" : "s") failed.")
        if failures > 0 { throw ExitCode(1) }
    }
}
