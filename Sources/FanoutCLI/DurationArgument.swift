import ArgumentParser
import FanoutCore

/// A duration on the command line: `90s`, `10m`, `2h`, `500ms` or plain seconds (`45`, `1.5`).
struct DurationArgument: ExpressibleByArgument, Sendable, CustomStringConvertible {
    let duration: Duration
    let text: String

    init?(argument: String) {
        let text = argument.trimmingCharacters(in: " ")
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        var number = Substring(text)
        var scale = 1.0
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            number = text.dropLast(suffix.count)
            scale = factor
            break
        }
        guard let value = Double(number), value >= 0, value.isFinite else { return nil }
        duration = .milliseconds(Int64((value * scale * 1000).rounded()))
        self.text = text
    }

    var description: String { text }

    static var defaultCompletionKind: CompletionKind { .default }
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        trimming { $0 == set }
    }
}
