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
