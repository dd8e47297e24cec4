import Curl
import Foundation
import X509

/// The Pass Type ID certificate APNs pushes are signed with (`WALLET_APNS_CERT` + `WALLET_APNS_KEY`,
/// or `WALLET_APNS_P12`), checked before the first push: readable, not expired, its key the
/// certificate's, and its Pass Type ID the topic pushes are sent for (`WALLET_APNS_TOPIC`).
public struct APNsCredential: Sendable {
    public let clientCertificate: TLSOptions.ClientCertificate
    public let topic: String

    /// The user id attribute (OID 0.9.2342.19200300.100.1.1) Apple puts the Pass Type ID in.
    static let userIDAttribute = "0.9.2342.19200300.100.1.1"

    public static func load(
        certificateFile: String?, keyFile: String?, password: String?, p12File: String?, topic: String?,
        now: Date = Date()
    ) throws(CredentialError) -> APNsCredential {
        guard let topic, !topic.isEmpty else {
            throw CredentialError("WALLET_APNS_TOPIC is not set: name the Pass Type ID pushes are for (pass.com.…)")
        }
        if let p12File, !p12File.isEmpty {
            // A PKCS#12 file is read by libcurl (OpenSSL) only; APNs itself checks its topic.
            guard FileManager.default.isReadableFile(atPath: p12File) else {
                throw CredentialError("WALLET_APNS_P12 \(p12File) cannot be read")
            }
            return APNsCredential(
                clientCertificate: .init(certificateFile: p12File, format: .p12, password: password), topic: topic)
        }
        guard let certificateFile, !certificateFile.isEmpty else {
            throw CredentialError("WALLET_APNS_CERT is not set (the Pass Type ID certificate, PEM) nor WALLET_APNS_P12")
        }
        guard let certificateData = FileManager.default.contents(atPath: certificateFile) else {
            throw CredentialError("WALLET_APNS_CERT \(certificateFile) cannot be read")
        }
        let certificate: Certificate
        do {
            certificate = try Certificate(pemEncoded: String(decoding: certificateData, as: UTF8.self))
        } catch {
            throw CredentialError("WALLET_APNS_CERT \(certificateFile) is not a PEM certificate: \(error)")
        }
        if certificate.notValidAfter < now {
            throw CredentialError(
                "WALLET_APNS_CERT \(certificateFile) expired on \(certificate.notValidAfter): renew the Pass Type ID "
                    + "certificate in Apple's developer account")
        }
        let topics = passTypeIDs(certificate)
        guard topics.contains(topic) else {
            throw CredentialError(
                "WALLET_APNS_TOPIC \(topic) is not the Pass Type ID of WALLET_APNS_CERT \(certificateFile) "
                    + "(it is for \(topics.isEmpty ? "no Pass Type ID" : topics.joined(separator: ", ")))")
        }
        let keyPath = keyFile.flatMap { $0.isEmpty ? nil : $0 } ?? certificateFile
        guard let keyData = FileManager.default.contents(atPath: keyPath) else {
            throw CredentialError("WALLET_APNS_KEY \(keyPath) cannot be read")
        }
        let keyText = String(decoding: keyData, as: UTF8.self)
        // An encrypted key is opened by libcurl with the password; a plain one is checked here.
        if !keyText.contains("ENCRYPTED") {
            guard let key = try? Certificate.PrivateKey(pemEncoded: keyText) else {
                throw CredentialError("WALLET_APNS_KEY \(keyPath) is not a private key in PEM form")
            }
            guard key.publicKey == certificate.publicKey else {
                throw CredentialError(
                    "WALLET_APNS_KEY \(keyPath) is not the key of WALLET_APNS_CERT \(certificateFile)")
            }
        } else if password == nil {
            throw CredentialError("WALLET_APNS_KEY \(keyPath) is encrypted: set WALLET_APNS_KEY_PASSWORD")
        }
        return APNsCredential(
            clientCertificate: .init(
                certificateFile: certificateFile, format: .pem, keyFile: keyPath, password: password),
            topic: topic)
    }

    /// The Pass Type IDs a certificate is for: its subject's user id, else a "Pass Type ID: …"
    /// common name.
    static func passTypeIDs(_ certificate: Certificate) -> [String] {
        var found: [String] = []
        for relative in certificate.subject {
            for attribute in relative {
                let value = attribute.value.description
                if attribute.type.description == userIDAttribute {
                    found.append(value)
                } else if value.hasPrefix("Pass Type ID: ") {
                    found.append(String(value.dropFirst("Pass Type ID: ".count)))
                }
            }
        }
        return found
    }
}
