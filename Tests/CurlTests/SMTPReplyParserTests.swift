@testable import Curl
import Testing

struct SMTPReplyParserTests {
    /// What the server sent in one transfer, and whether its last reply is a single line.
    @Test(arguments: [
        ("250 2.0.0 Ok: queued\r\n", true),
        ("220 hello\r\n250-ehlo\r\n250-PIPELINING\r\n250 SIZE\r\n250 ok\r\n354 go ahead\r\n250 done", true),
        ("250\r\n", true),
        ("550 5.1.1 no\r\n\r\n221 bye\r\n", true),
        ("451 4.3.0 try later\n", true),
        ("250 Grüße\r\n", true),
        ("250-first\r\n250 second\r\n", false),
        ("250-only continuation\r\n", false),
        ("25x nonsense\r\n", false),
        ("", false),
    ])
    func theLastOneLineReplyIsTheOneAllRepliesEndWith(received: String, isOneLine: Bool) {
        let bytes = Array(received.utf8)
        let fast = SMTPReplyParser.lastOneLineReply(bytes)
        #expect((fast != nil) == isOneLine)
        if let fast { #expect(fast == SMTPReplyParser.replies(bytes).last) }
    }
}
