import Foundation

/// Why an item's own data cannot be used.
public struct ItemDataError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}

/// The template variables of one item: every key of its `data` JSON object at top level, its
/// own columns, `job.id`, `job.company_id` and `item.id`.
public enum EmailContext {
    static func variables(
        email: String, name: String?, dataJSON: String?, jobID: UInt64, companyID: UInt64, itemID: UInt64,
        unsubscribeURL: String = ""
    ) throws(ItemDataError) -> ItemVariables {
        ItemVariables(
            data: try dataObject(dataJSON), email: email, name: name ?? "", jobID: jobID, companyID: companyID,
            itemID: itemID, unsubscribeURL: unsubscribeURL)
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
            throw ItemDataError(reason: "data is not valid JSON (\(error)): \(excerpt(json, limit: 80))")
        }
        guard let object = parsed as? [String: Any] else {
            throw ItemDataError(reason: "data is not a JSON object: \(excerpt(json, limit: 80))")
        }
        return object
    }
}

/// One item's template variables, looked up by path as the dictionary would answer, so that
/// templates that only interpolate never need the dictionary swift-mustache takes.
struct ItemVariables {
    let data: [String: Any]
    let email: String
    let name: String
    let jobID: UInt64
    let companyID: UInt64
    let itemID: UInt64
    /// The recipient's one-click unsubscribe link (empty when the mail carries none).
    let unsubscribeURL: String

    /// What `dictionary` holds at `path` (nil where it holds nothing).
    func value(at path: [String]) -> Any? {
        guard let first = path.first else { return nil }
        switch first {
        case "email": return path.count == 1 ? email : nil
        case "name": return path.count == 1 ? name : nil
        case "unsubscribe_url": return path.count == 1 ? unsubscribeURL : nil
        case "job" where path.count == 2:
            return path[1] == "id" ? jobID : path[1] == "company_id" ? companyID : nil
        case "item" where path.count == 2:
            return path[1] == "id" ? itemID : nil
        case "job", "item":
            return path.count == 1 ? dictionary[first] : nil
        default:
            return FlatTemplate.value(at: path, in: data)
        }
    }

    /// Every variable: the data's keys, then the item's own, which win over data keys of the
    /// same name.
    var dictionary: [String: Any] {
        var context = data
        context["email"] = email
        context["name"] = name
        context["unsubscribe_url"] = unsubscribeURL
        context["job"] = ["id": jobID, "company_id": companyID] as [String: Any]
        context["item"] = ["id": itemID] as [String: Any]
        return context
    }
}
