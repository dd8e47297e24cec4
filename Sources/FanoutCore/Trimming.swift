extension String {
    /// The string without the leading and trailing characters for which `isBlank` holds; the
    /// string itself (no copy) when there are none.
    public func trimming(where isBlank: (Character) -> Bool) -> String {
        var rest = Substring(self)
        while let first = rest.first, isBlank(first) { rest.removeFirst() }
        while let last = rest.last, isBlank(last) { rest.removeLast() }
        return rest.startIndex == startIndex && rest.endIndex == endIndex ? self : String(rest)
    }
}
