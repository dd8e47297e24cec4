import ArgumentParser
import Crypto
import DKIM
import Foundation
import _CryptoExtras

extension DKIMAlgorithm: ExpressibleByArgument {}

struct DKIMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dkim",
        abstract: "DKIM keys for signing mail.",
        subcommands: [Keygen.self]
    )

    struct Keygen: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a new DKIM private key and print the DNS TXT record to publish.",
            discussion: """
                rsa-sha256 (2048 bits, the default) is what every receiver verifies; ed25519-sha256 is \
                smaller but not yet checked by all. Publish the record, wait for DNS, then set \
                MAIL_DKIM_DOMAIN, MAIL_DKIM_SELECTOR, MAIL_DKIM_KEY_FILE (and MAIL_DKIM_ALGORITHM for \
                ed25519). The domain should be the From address's domain (or a parent of it) so that \
                DKIM aligns for DMARC.
                """
        )

        @Option(name: .long, help: "The signing domain (d=), e.g. example.com.") var domain: String
        @Option(name: .long, help: "The selector (s=).") var selector = "fanout"
        @Option(name: .long, help: "rsa-sha256 or ed25519-sha256") var algorithm = DKIMAlgorithm.rsaSHA256
        @Option(name: .long, help: "Where to write the private key (it must not exist).") var out: String

        func run() throws {
            guard !FileManager.default.fileExists(atPath: out) else {
                throw UserError(description: "\(out) exists: choose another file (a key is never overwritten)")
            }
            let keyText: String
            let publicKey: Data
            let keyType: String
            switch algorithm {
            case .rsaSHA256:
                let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
                keyText = key.pemRepresentation
                publicKey = key.publicKey.derRepresentation
                keyType = "rsa"
            case .ed25519SHA256:
                let key = Curve25519.Signing.PrivateKey()
                keyText = key.rawRepresentation.base64EncodedString() + "\n"
                publicKey = key.publicKey.rawRepresentation
                keyType = "ed25519"
            }
            // The check the tick makes before it signs anything.
            _ = try DKIMKey(domain: domain, selector: selector, privateKeyPEM: keyText, algorithm: algorithm)
            guard
                FileManager.default.createFile(
                    atPath: out, contents: Data(keyText.utf8), attributes: [.posixPermissions: 0o600])
            else { throw UserError(description: "cannot write \(out)") }
            print("Wrote the private key to \(out) (mode 600). Publish this TXT record:\n")
            let record = "v=DKIM1; k=\(keyType); p=\(publicKey.base64EncodedString())"
            print("\(selector)._domainkey.\(domain). IN TXT \"\(record)\"")
            print("\nThen set:\n  MAIL_DKIM_DOMAIN=\(domain)\n  MAIL_DKIM_SELECTOR=\(selector)")
            print("  MAIL_DKIM_KEY_FILE=\(out)")
            if algorithm == .ed25519SHA256 { print("  MAIL_DKIM_ALGORITHM=ed25519-sha256") }
        }
    }
}
