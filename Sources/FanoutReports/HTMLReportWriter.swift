import FanoutCore

/// One self-contained HTML file (no network): the summary, two inline SVG charts (outcomes by
/// status, deliveries over time) and a table with a filter box.
final class HTMLReportWriter: ReportWriter {
    private let output: ReportOutput
    private var kind = JobKind.email
    init(output: ReportOutput) { self.output = output }

    private static let colors = [
        "sent": "#2e9e5b", "completed": "#2e9e5b", "failed": "#d64545", "cancelled": "#8a8f98", "pending": "#e6a23c",
        "processing": "#3b82f6", "bounced": "#d64545", "suppressed": "#8a8f98",
    ]

    func begin(_ s: ReportSummary) {
        kind = s.kind
        let title = "\(s.kind.rawValue) job \(s.jobID)"
        let reasonSuffix = s.reason.map { " · " + Format.html($0) } ?? ""
        output.write(
            """
            <!DOCTYPE html><html lang="en"><head><meta charset="utf-8">\
            <title>Fanout report: \(Format.html(title))</title>
            <style>
            body{font-family:Helvetica,Arial,sans-serif;margin:24px;color:#1f2933;background:#fff}
            h1{font-size:22px;margin:0 0 4px} .sub{color:#52606d;margin-bottom:16px}
            .cards{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
            .card{border:1px solid #e4e7eb;border-radius:8px;padding:10px 14px;min-width:110px}
            .card b{display:block;font-size:20px} .charts{display:flex;gap:24px;flex-wrap:wrap;margin:16px 0}
            table{border-collapse:collapse;width:100%;font-size:13px} \
            th,td{border-bottom:1px solid #e4e7eb;padding:4px 6px;text-align:left;vertical-align:top}
            th{background:#f5f7fa;position:sticky;top:0} input{padding:6px;width:320px;margin:8px 0}
            .failed,.bounced{color:#d64545} .sent,.completed{color:#2e9e5b} \
            .cancelled,.suppressed{color:#8a8f98} tr.in-doubt{background:#fff7e6}
            </style></head><body>
            <h1>Fanout report: \(Format.html(title))</h1>
            <div class="sub">company \(s.companyID) · template \(Format.html(s.template)) · \
            status <b>\(Format.html(s.status))</b>\(reasonSuffix)</div>
            <div class="cards"><div class="card">items<b>\(s.total)</b></div>
            """)
        for entry in s.countsByStatus {
            output.write("<div class=\"card\">\(Format.html(entry.status))<b>\(entry.count)</b></div>")
        }
        output.write(
            "<div class=\"card\">in doubt<b>\(s.inDoubt)</b></div>"
                + "<div class=\"card\">duration<b>\(Format.duration(s.duration))</b></div>"
        )
        let throughput = s.throughput.map { String(Int($0.rounded())) + "/s" } ?? "-"
        output.write("<div class=\"card\">throughput<b>\(throughput)</b></div></div>\n")
        output.write("<div class=\"charts\">" + statusChart(s) + timeChart(s) + "</div>\n")
        if !s.topFailures.isEmpty {
            output.write("<h2 style=\"font-size:16px\">Most common failures</h2><ul>")
            for failure in s.topFailures { output.write("<li>\(failure.count) × \(Format.html(failure.reason))</li>") }
            output.write("</ul>\n")
        }
        let headers = ReportColumns.names(s.kind).map { "<th>\($0)</th>" }.joined()
        output.write(
            """
            <input id="filter" placeholder="Filter: type a status, address, code or reason" \
            oninput="filterRows(this.value)">
            <table id="items"><thead><tr>\(headers)</tr></thead><tbody>

            """)
    }

    private func statusChart(_ s: ReportSummary) -> String {
        let width = 360.0, barHeight = 24.0
        let maxCount = Double(s.countsByStatus.map(\.count).max() ?? 1)
        let height = Int(Double(s.countsByStatus.count) * (barHeight + 8) + 30)
        var svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(height)\" "
            + "role=\"img\" aria-label=\"Outcomes by status\">"
        svg += "<text x=\"0\" y=\"14\" font-size=\"13\" font-weight=\"bold\">Outcomes by status</text>"
        for (i, entry) in s.countsByStatus.enumerated() {
            let y = 24 + Double(i) * (barHeight + 8)
            let length = max(2, (width - 150) * Double(entry.count) / max(1, maxCount))
            svg += "<text x=\"0\" y=\"\(y + 16)\" font-size=\"12\">\(Format.html(entry.status))</text>"
            let color = Self.colors[entry.status] ?? "#6b7280"
            svg += "<rect x=\"80\" y=\"\(y)\" width=\"\(length)\" height=\"\(barHeight)\" rx=\"3\" fill=\"\(color)\"/>"
            svg += "<text x=\"\(84 + length)\" y=\"\(y + 16)\" font-size=\"12\">\(entry.count)</text>"
        }
        return svg + "</svg>"
    }

    private func timeChart(_ s: ReportSummary) -> String {
        let width = 480.0, height = 160.0
        var svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height + 40))\" "
            + "role=\"img\" aria-label=\"Deliveries over time\">"
        svg += "<text x=\"0\" y=\"14\" font-size=\"13\" font-weight=\"bold\">Items processed per minute</text>"
        guard !s.perMinute.isEmpty else {
            return svg + "<text x=\"0\" y=\"40\" font-size=\"12\">nothing processed yet</text></svg>"
        }
        let maxCount = Double(s.perMinute.map(\.count).max() ?? 1)
        let barWidth = min(40, max(2, (width - 40) / Double(s.perMinute.count) - 2))
        for (i, point) in s.perMinute.enumerated() {
            let h = max(1, height * Double(point.count) / maxCount)
            let x = 30 + Double(i) * (barWidth + 2)
            svg +=
                "<rect x=\"\(x)\" y=\"\(24 + height - h)\" width=\"\(barWidth)\" height=\"\(h)\" fill=\"#3b82f6\">"
                + "<title>\(Format.time(point.minute)): \(point.count)</title></rect>"
        }
        svg += "<line x1=\"28\" y1=\"\(24 + height)\" x2=\"\(width)\" y2=\"\(24 + height)\" stroke=\"#9aa5b1\"/>"
        svg += "<text x=\"0\" y=\"34\" font-size=\"11\">\(Int(maxCount))</text>"
        svg += "<text x=\"30\" y=\"\(height + 38)\" font-size=\"11\">\(Format.time(s.perMinute.first?.minute))</text>"
        let last = Format.time(s.perMinute.last?.minute)
        svg += "<text x=\"\(width - 120)\" y=\"\(height + 38)\" font-size=\"11\">\(last)</text>"
        return svg + "</svg>"
    }

    func row(_ item: ReportItem) {
        let names = ReportColumns.names(kind)
        var cells = ""
        for (name, value) in zip(names, ReportColumns.values(item, kind: kind)) {
            let text = Format.html(Format.text(value))
            cells += name == "status" ? "<td class=\"\(text)\">\(text)</td>" : "<td>\(text)</td>"
        }
        output.write("<tr\(item.inDoubt ? " class=\"in-doubt\"" : "")>\(cells)</tr>\n")
    }

    func end() {
        output.write(
            """
            </tbody></table>
            <script>
            function filterRows(q){q=q.toLowerCase();\
            for(const r of document.querySelectorAll('#items tbody tr')){\
            r.style.display=r.textContent.toLowerCase().includes(q)?'':'none'}}
            </script></body></html>

            """)
    }
}
