/// Percent-encoding for the parts of a URL (RFC 3986).
public enum PercentEncoding {
    /// Every byte of `text`'s UTF-8 but the unreserved ones (letters, digits, `-._~`) and those of
    /// `keeping` (e.g. "/" for a path) as `%XX`: a path segment, a query value, a mailbox name.
    public static func encoded(_ text: String, keeping: String = "") -> String {
        let kept = Array(keeping.utf8)
        let digits = Array("0123456789ABCDEF".utf8)
        var encoded: [UInt8] = []
        encoded.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                encoded.append(byte)
            case _ where kept.contains(byte):
                encoded.append(byte)
            default:
                encoded += [UInt8(ascii: "%"), digits[Int(byte >> 4)], digits[Int(byte & 15)]]
            }
        }
        return String(decoding: encoded, as: UTF8.self)
    }
}
