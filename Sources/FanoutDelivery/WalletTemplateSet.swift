import Foundation

/// The templates of one wallet job: `wallet/NAME.PLATFORM.http.mustache` for the items of that
/// platform, else `wallet/NAME.http.mustache`, so one job mixes Google and Apple items.
public struct WalletTemplateSet: Sendable {
    public let name: String
    public let fallback: WalletTemplate?
    public let byPlatform: [String: WalletTemplate]

    /// Every template file of `name`; an error when there is none, or one cannot be used.
    public static func load(name: String, folder: String) throws(TemplateError) -> WalletTemplateSet {
        let fallback = try WalletTemplate.read(name: name, platform: nil, folder: folder)
        var byPlatform: [String: WalletTemplate] = [:]
        let directory = (folder as NSString).appendingPathComponent("wallet")
        let prefix = "\(name).", suffix = ".http.mustache"
        for file in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            guard file.hasPrefix(prefix), file.hasSuffix(suffix), file.count > prefix.count + suffix.count else {
                continue
            }
            let platform = String(file.dropFirst(prefix.count).dropLast(suffix.count))
            guard isPlatformName(platform) else { continue }
            if let template = try WalletTemplate.read(name: name, platform: platform, folder: folder) {
                byPlatform[platform] = template
            }
        }
        guard fallback != nil || !byPlatform.isEmpty else {
            let path = (directory as NSString).appendingPathComponent("\(name).http.mustache")
            throw TemplateError(
                template: name,
                message: "no such template: neither \(path) nor \(name).PLATFORM.http.mustache beside it exists")
        }
        return WalletTemplateSet(name: name, fallback: fallback, byPlatform: byPlatform)
    }

    /// `[a-z0-9_-]+`: the item's `platform` column, lower case.
    static func isPlatformName(_ text: String) -> Bool {
        !text.isEmpty
            && text.utf8.allSatisfy {
                ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z"))
                    || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                    || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")
            }
    }

    public var all: [WalletTemplate] {
        (fallback.map { [$0] } ?? []) + byPlatform.keys.sorted().map { byPlatform[$0]! }
    }

    /// Whether some template of the job is signed with this credential.
    public func uses(_ auth: WalletAuth) -> Bool { all.contains { $0.auth == auth } }

    /// The template for an item of this platform, or why there is none.
    public func template(for platform: String?) -> Result<WalletTemplate, ItemRejection> {
        if let platform, let own = byPlatform[platform] { return .success(own) }
        if let fallback { return .success(fallback) }
        let shown = platform.map { "'\(excerpt($0, limit: 40))'" } ?? "(none)"
        return .failure(
            ItemRejection(
                reason:
                    "no template for platform \(shown): neither wallet/\(name).\(platform ?? "PLATFORM").http.mustache "
                    + "nor wallet/\(name).http.mustache exists"))
    }
}
