import FanoutCore

/// A plain-text table: the summary, then one fixed-width line per item (widths are fixed so the
/// rows can stream).
final class TableReportWriter: ReportWriter {
    private let output: ReportOutput
    private var kind = JobKind.email
    init(output: ReportOutput) { self.output = output }

    func begin(_ s: ReportSummary) {
        let reason = s.reason.map { " (\($0))" } ?? ""
        output.write(
            "\(s.kind.rawValue) job \(s.jobID) (company \(s.companyID), template \(s.template)): \(s.status)\(reason)\n"
        )
        output.write(
            "items: \(s.total)  " + s.countsByStatus.map { "\($0.status) \($0.count)" }.joined(separator: "  ")
                + (s.inDoubt > 0 ? "  in doubt \(s.inDoubt)" : "") + "\n")
        output.write(
            "duration: \(Format.duration(s.duration))"
                + (s.throughput.map { "  throughput: \(Int($0.rounded())) items/s" } ?? "") + "\n")
        if !s.topFailures.isEmpty {
            output.write("most common failures:\n")
            for failure in s.topFailures { output.write("  \(failure.count) × \(failure.reason)\n") }
        }
        kind = s.kind
        output.write("\n" + line(ReportColumns.names(kind)) + "\n")
    }

    func row(_ item: ReportItem) {
        output.write(line(ReportColumns.values(item, kind: kind).map(Format.text)) + "\n")
    }

    func end() {
        output.write(
            "\nin_doubt 1: the tick delivering it died before recording the outcome "
                + "(it may have been delivered twice)\n"
        )
    }

    /// Every column but the last (the reason) is clipped to a fixed width, so rows can stream.
    private var widths: [Int] {
        switch kind {
        case .email: [10, 32, 20, 11, 9, 9, 14, 21]
        case .wallet: [10, 20, 9, 11, 9, 9, 12, 21, 21]
        }
    }
    private func line(_ cells: [String]) -> String {
        var out = ""
        for (i, cell) in cells.enumerated() {
            if i < widths.count {
                let clipped = cell.count > widths[i] - 1 ? String(cell.prefix(widths[i] - 2)) + "…" : cell
                out += clipped + String(repeating: " ", count: max(1, widths[i] - clipped.count))
            } else {
                out += cell.replacingNewlines()
            }
        }
        return out
    }
}

/// RFC 4180 CSV: a header row, CRLF line ends, fields quoted when they hold a comma, quote or
/// line break (quotes doubled).
final class CSVReportWriter: ReportWriter {
    private let output: ReportOutput
    private var kind = JobKind.email
    init(output: ReportOutput) { self.output = output }

    func begin(_ summary: ReportSummary) {
        kind = summary.kind
        output.write(row(ReportColumns.names(kind)))
    }

    func row(_ item: ReportItem) {
        output.write(row(ReportColumns.values(item, kind: kind).map(Format.text)))
    }

    func end() {}

    private func row(_ fields: [String]) -> String {
        fields.map { field in
            if field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) {
                return "\"" + field.replacingQuotes() + "\""
            }
            return field
        }.joined(separator: ",") + "\r\n"
    }
}

/// One JSON document (`{"job": …, "summary": …, "items": [ … ]}`) or JSON Lines (a summary line,
/// then one object per item).
final class JSONReportWriter: ReportWriter {
    private let output: ReportOutput
    private let lines: Bool
    private var first = true
    private var names: [String] = []
    private var kind = JobKind.email
    init(output: ReportOutput, lines: Bool) {
        self.output = output
        self.lines = lines
    }

    func begin(_ s: ReportSummary) {
        kind = s.kind
        names = ReportColumns.names(kind).map { Format.json($0) }
        let counts = s.countsByStatus.map { "\(Format.json($0.status)):\($0.count)" }.joined(separator: ",")
        let failures = s.topFailures.map { "{\"reason\":\(Format.json($0.reason)),\"count\":\($0.count)}" }.joined(
            separator: ",")
        let reason = s.reason.map(Format.json) ?? "null"
        let duration = s.duration.map { String($0) } ?? "null"
        let throughput = s.throughput.map { String($0) } ?? "null"
        let summary =
            "{\"kind\":\(Format.json(s.kind.rawValue)),\"job_id\":\(s.jobID),\"company_id\":\(s.companyID),"
            + "\"template\":\(Format.json(s.template)),\"status\":\(Format.json(s.status)),\"reason\":\(reason),"
            + "\"total\":\(s.total),\"by_status\":{\(counts)},\"in_doubt\":\(s.inDoubt),\"top_failures\":[\(failures)],"
            + "\"duration_seconds\":\(duration),\"items_per_second\":\(throughput)}"
        output.write(lines ? "{\"summary\":\(summary)}\n" : "{\"summary\":\(summary),\"items\":[\n")
    }

    func row(_ item: ReportItem) {
        let values = ReportColumns.values(item, kind: kind)
        let object = "{" + zip(names, values).map { "\($0):\(Format.json($1))" }.joined(separator: ",") + "}"
        if lines {
            output.write(object + "\n")
        } else {
            output.write((first ? "" : ",\n") + object)
            first = false
        }
    }

    func end() {
        if !lines { output.write("\n]}\n") }
    }
}

extension String {
    func replacingNewlines() -> String {
        String(map { $0 == "\n" || $0 == "\r" || $0 == "\r\n" ? " " : $0 })
    }

    func replacingQuotes() -> String {
        var out = ""
        for c in self { if c == "\"" { out += "\"\"" } else { out.append(c) } }
        return out
    }
}
