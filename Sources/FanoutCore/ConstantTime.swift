/// Whether two secrets (a password, a form token, a MAC) are equal, in a time that depends on
/// their lengths only: how far they agree is never told by how long the comparison took.
public func constantTimeEqual(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8)
    let y = Array(b.utf8)
    var difference: UInt8 = x.count == y.count ? 0 : 1
    for index in 0..<max(x.count, y.count) {
        difference |= (index < x.count ? x[index] : 0) ^ (index < y.count ? y[index] : 0)
    }
    return difference == 0
}
