import Foundation

/// Debian's dkimpy (`python3-dkim`) verdict on a message file, with `record` served as the TXT
/// record of `name` (`selector._domainkey.domain.`) and no other name resolving: a test DNS.
/// A crash of dkimpy throws (a failure of the test), never reads as "does not verify".
public func dkimpyVerifies(_ file: URL, record: String, name: String) throws -> Bool {
    let script = """
        import sys, logging, dkim
        message = open(sys.argv[1], 'rb').read()
        record, expected = sys.argv[2].encode(), sys.argv[3].encode()
        def dnsfunc(name, timeout=5):
            name = name if isinstance(name, bytes) else name.encode()
            return record if name.lower() == expected else None
        logging.basicConfig(stream=sys.stderr, level=logging.DEBUG)
        print(dkim.verify(message, logger=logging.getLogger('dkim'), dnsfunc=dnsfunc))
        """
    let result = try runProcess(URL(fileURLWithPath: "/usr/bin/python3"), ["-c", script, file.path, record, name])
    let verdict = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    guard result.status == 0, verdict == "True" || verdict == "False" else {
        throw TestServerError(message: "dkimpy failed (\(result.status)): \(result.stdout) \(result.stderr)")
    }
    return verdict == "True"
}
