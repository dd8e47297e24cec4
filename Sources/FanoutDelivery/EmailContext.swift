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
        guard let json, !json.allSatisfy(\.isWhitespace) else { return [:] }
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed])
        } catch {
            throw ItemDataError(reason: "data is not valid JSON: \(excerpt(json))")
        }
        guard let object = parsed as? [String: Any] else {
            throw ItemDataError(reason: "data is not a JSON object: \(excerpt(json))")
        }
        return object.mapValues(plain)
    }

    /// Foundation's JSON numbers and booleans as Swift values, so sections and rendering see
    /// `true`/`false` and `3`, not `1` and `3.0`.
    static func plain(_ value: Any) -> Any {
        switch value {
        case let dictionary as [String: Any]:
            return dictionary.mapValues(plain)
        case let array as [Any]:
            return array.map(plain)
        case let number as NSNumber:
            // JSON true/false arrive as NSNumber holding a C bool ("c" or "B").
            let type = String(cString: number.objCType)
            if type == "c" || type == "B" { return number.boolValue }
            let double = number.doubleValue
            if double.rounded() == double, abs(double) < 9e15 { return Int64(double) }
            return double
        case is NSNull:
            return ""
        default:
            return value
        }
    }

    static func excerpt(_ text: String) -> String {
        let line = text.replacingOccurrences(of: "\r", with: "\\r").replacingOccurrences(of: "\n", with: "\\n")
        return line.count > 80 ? String(line.prefix(80)) + "…" : line
    }
}
