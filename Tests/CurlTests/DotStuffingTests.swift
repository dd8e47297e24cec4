@testable import Curl
import Testing

struct DotStuffingTests {
    /// The size libcurl sends inside DATA: one more byte for every "." that starts the message
    /// or follows CRLF; written the plain way here, beside the memchr one.
    private func reference(_ content: [UInt8]) -> Int {
        var size = content.count
        for index in content.indices where content[index] == UInt8(ascii: ".") {
            if index == 0 || (index >= 2 && content[index - 1] == 10 && content[index - 2] == 13) { size += 1 }
        }
        return size
    }

    @Test(arguments: ["", ".", "..", "a.", ".\r\n.", "\r\n.", "x\r\n.\r\n..\n.\r.", "a\n.b", "ab\r\n.."])
    func theStuffedSizeCountsEveryDotThatStartsALine(text: String) {
        let bytes = Array(text.utf8)
        #expect(SMTPConnection.stuffedSize(bytes) == reference(bytes))
    }

    @Test func randomMessagesOfDotsAndLineEndsAgreeWithThePlainCount() {
        var generator = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = [13, 10, UInt8(ascii: "."), UInt8(ascii: "a")]
        for length in 0..<300 {
            let bytes = (0..<length).map { _ in alphabet[Int.random(in: 0..<4, using: &generator)] }
            #expect(SMTPConnection.stuffedSize(bytes) == reference(bytes), "\(bytes)")
        }
    }
}
