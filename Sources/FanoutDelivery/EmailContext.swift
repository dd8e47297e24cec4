import Foundation

/// Why an item's own data cannot be used.
public struct ItemDataError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}

/// The template variables of one item: every key of its `data` JSON object at top level, its
/// own columns, `job.id`, `job.company_id` and `item.id`.
public enum EmailContext {
    public static func context(email: String, name: String?, dataJSON: String?, jobID: UInt64, companyID: UInt64, itemID: UInt64) throws(ItemDataError) -> [String: Any] {
        var context = try dataObject(dataJSON)
        context["email"] = email
        context["name"] = name ?? ""
        context["job"] = ["id": jobID, "company_id": companyID] as [String: Any]
        context["item"] = ["id": itemID] as [String: Any]
        return context
    }

    /// The `data` column as a dictionary: empty for NULL or blank; an error for anything but a
    /// JSON object.
    public static func dataObject(_ json: String?) throws(ItemDataError) -> [String: Any] {
        guard let json else { return [:] }
        if json.utf8.first != UInt8(ascii: "{") && json.allSatisfy(\.isWhitespace) { return [:] }
        let parsed: Any
        do {
            parsed = try JSONParser.parse(json)
        } catch {
            throw ItemDataError(reason: "data is not valid JSON (\(error)): \(excerpt(json))")
        }
        guard let object = parsed as? [String: Any] else {
            throw ItemDataError(reason: "data is not a JSON object: \(excerpt(json))")
        }
        return object
    }

    static func excerpt(_ text: String) -> String {
        let line = text.replacingOccurrences(of: "\r", with: "\\r").replacingOccurrences(of: "\n", with: "\\n")
        return line.count > 80 ? String(line.prefix(80)) + "…" : line
    }
}
