import FanoutDelivery
import Foundation
import Testing
import TestSupport

/// Wallet template files: `# @auth`, update/insert pairs, and one file per platform.
struct WalletTemplateFileTests {
    func folder(_ files: [String: String]) throws -> String {
        let folder = TestEnvironment.makeTemporaryDirectory("wallet-files")
        let wallet = folder.appendingPathComponent("wallet")
        try FileManager.default.createDirectory(at: wallet, withIntermediateDirectories: true)
        for (name, text) in files {
            try text.write(to: wallet.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        return folder.path
    }

    @Test func authAndAnUpdateInsertPair() throws {
        let path = try folder([
            "g.http.mustache": "# @auth google\nPATCH https://x.test/o/{{id}}\n\n{}\n###\nPOST https://x.test/o\n\n{}\n"
        ])
        let template = try WalletTemplate.load(name: "g", folder: path)
        #expect(template.auth == .google)
        #expect(template.hasInsert)
        let requests = try template.render(["id": "a b"]).get()
        #expect(requests.map(\.method) == ["PATCH", "POST"])
        #expect(try #require(requests.first).url == "https://x.test/o/a%20b")
    }

    @Test(arguments: [
        ("# @auth huawei\nPOST https://x.test/\n", "names no credential Fanout knows"),
        ("# @auth apns\nPOST https://x.test/a\n###\nPOST https://x.test/b\n", "only a Google template"),
        ("POST https://x.test/a\n###\nPOST https://x.test/b\n###\nPOST https://x.test/c\n", "holds 3 requests"),
    ])
    func filesThatCannotBeUsedSayWhy(text: String, says: String) throws {
        let path = try folder(["t.http.mustache": text])
        #expect {
            _ = try WalletTemplate.load(name: "t", folder: path)
        } throws: { "\($0)".contains(says) }
    }

    @Test func eachPlatformItsOwnFileElseTheCommonOne() throws {
        let path = try folder([
            "card.google.http.mustache": "# @auth google\nPATCH https://g.test/{{id}}\n",
            "card.http.mustache": "POST https://any.test/{{id}}\n",
            "other.apple.http.mustache": "# @auth apns\nPOST https://a.test/{{id}}\n",
        ])
        let set = try WalletTemplateSet.load(name: "card", folder: path)
        #expect(try set.template(for: "google").get().auth == .google)
        #expect(try set.template(for: "apple").get().auth == nil)
        #expect(set.uses(.google) && !set.uses(.apns))
        let only = try WalletTemplateSet.load(name: "other", folder: path)
        guard case .failure(let rejection) = only.template(for: "google") else {
            Issue.record("an item of a platform without a template was not refused")
            return
        }
        #expect(rejection.reason.contains("no template for platform 'google'"))
        #expect(throws: (any Error).self) { try WalletTemplateSet.load(name: "missing", folder: path) }
    }
}
