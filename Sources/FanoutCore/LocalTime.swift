#if canImport(Glibc)
import Glibc
#endif

/// Times as the operator's messages show them: this machine's local clock.
public enum LocalTime {
    /// Unix seconds as "09:05".
    public static func hoursMinutes(_ unix: Double) -> String {
        var seconds = time_t(unix)
        var parts = tm()
        localtime_r(&seconds, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(two(parts.tm_hour)):\(two(parts.tm_min))"
    }
}

/// A length of time as a person reads it.
public enum Elapsed {
    /// "40 s", "12 min", "3 h 5 min", "2 d"; `compact` for tables: "40s", "12m", "3h5m", "2d".
    public static func text(_ seconds: Double, compact: Bool = false) -> String {
        let s = Int(max(0, seconds))
        let (second, minute, hour, day) = compact ? ("s", "m", "h", "d") : (" s", " min", " h", " d")
        let gap = compact ? "" : " "
        if s < 60 { return "\(s)\(second)" }
        if s < 3600 { return "\(s / 60)\(minute)" }
        if s < 86_400 { return "\(s / 3600)\(hour)\(gap)\(s % 3600 / 60)\(minute)" }
        return "\(s / 86_400)\(day)"
    }
}
