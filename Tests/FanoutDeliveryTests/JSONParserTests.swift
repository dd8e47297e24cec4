@testable import FanoutDelivery
import Testing

struct JSONParserTests {
    @Test func valuesAreTheOnesTemplatesRender() throws {
        let parsed = try JSONParser.parse(
            #" { "s": "a\"b\\c\/\n\t\u00e9\ud83c\udf89", "i": -42, "big": 9007199254740993, "whole": 3.0, "exp": "#
                + #"1e3, "f": 2.5, "t": true, "n": null, "a": [1, "x", [], {}], "o": {"k": false} } "#
        )
        let object = try #require(parsed as? [String: Any])
        #expect(object["s"] as? String == "a\"b\\c/\n\té🎉")
        #expect(object["i"] as? Int64 == -42)
        #expect(object["big"] as? Int64 == 9_007_199_254_740_993)
        #expect(object["whole"] as? Int64 == 3)
        #expect(object["exp"] as? Int64 == 1000)
        #expect(object["f"] as? Double == 2.5)
        #expect(object["t"] as? Bool == true)
        #expect(object["n"] as? String == "")
        let array = try #require(object["a"] as? [Any])
        #expect(array.count == 4 && array[0] as? Int64 == 1 && array[1] as? String == "x")
        #expect((object["o"] as? [String: Any])?["k"] as? Bool == false)
        #expect(try JSONParser.parse("\"fragment\"") as? String == "fragment")
    }

    @Test(arguments: [
        "", " ", "{", "{oops", "{\"a\" 1}", "{\"a\": 1,}", "[1,]", "[1 2]", "01", "-", "1.", "1e", ".5", "+1",
        "\"unterminated", "\"bad \\x escape\"", "\"\\u12\"", "\"\\ud83c alone\"", "\"\\udf89\"", "\"tab\there\"",
        "{} {}", "tru", "nul", "NaN", "{'a': 1}",
    ])
    func malformedTextIsRefused(text: String) {
        // RFC 8259 strictly, as MariaDB's JSON_VALID: Foundation lets trailing commas through.
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse(text) }
    }

    @Test func nestingIsBounded() throws {
        #expect(try JSONParser.parse(String(repeating: "[", count: 500) + String(repeating: "]", count: 500)) is [Any])
        let error = #expect(throws: JSONSyntaxError.self) {
            try JSONParser.parse(String(repeating: "[", count: 100_000))
        }
        #expect(error?.message.contains("nested") == true)
    }
}
