import Foundation
import MariaDB
import Testing
import TestSupport

@Suite(.enabled(if: TestEnvironment.hasDatabase && TestEnvironment.canStartServers))
struct ReportCommandTests {
    @Test func everyFormatOfAFinishedJob() throws {
        try withMailSetup { fixture, smtp, env in
            let job = try fixture.emailJob(
                company: 3,
                recipients: [
                    ("a@example.test", "A", nil), ("reject550-b@example.test", "B, \"the\" second", nil),
                    ("bad address", nil, nil),
                ])
            _ = try runFanout(["emails:process-jobs"], environment: env)

            let table = try runFanout(["report", "email", String(job)], environment: env)
            #expect(table.status == 0, "\(table.stderr)")
            #expect(table.stdout.contains("items: 3"))
            #expect(table.stdout.contains("550 5.1.1"))

            let folder = TestEnvironment.makeTemporaryDirectory("report")
            let csvFile = folder.appendingPathComponent("r.csv")
            let csv = try runFanout(
                ["report", "email", String(job), "--format", "csv", "--output", csvFile.path], environment: env)
            #expect(csv.status == 0, "\(csv.stderr)")
            // Python's csv module is the standard reader the acceptance asks for.
            let parsed = try runProcess(
                URL(fileURLWithPath: "/usr/bin/python3"),
                [
                    "-c", "import csv,sys,json; print(json.dumps(list(csv.reader(open(sys.argv[1], newline='')))))",
                    csvFile.path,
                ])
            let rows = try #require(try JSONSerialization.jsonObject(with: Data(parsed.stdout.utf8)) as? [[String]])
            #expect(rows.count == 4)
            // The item table's own column names, in every format (contract, "Reports").
            let columns = [
                "id", "email", "name", "status", "attempts", "in_doubt", "response_code", "processed_at", "reason",
            ]
            #expect(rows[0] == columns)
            #expect(rows[2][2] == "B, \"the\" second")
            #expect(rows[2][3] == "failed")
            #expect(rows[2][6] == "550")
            #expect(rows[2][8].hasPrefix("550 5.1.1"))
            #expect(rows[3][8].contains("invalid email address"))
            let iso = #/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/#
            #expect(
                rows.dropFirst().allSatisfy { $0[7].wholeMatch(of: iso) != nil },
                "ISO 8601 in UTC: \(rows.map { $0[7] })")

            let json = try runFanout(["report", "email", String(job), "--format", "json"], environment: env)
            let document = try #require(
                try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
            let items = try #require(document["items"] as? [[String: Any]])
            #expect(items.count == 3)
            #expect((document["summary"] as? [String: Any])?["total"] as? Int == 3)
            #expect(items.allSatisfy { Set($0.keys) == Set(columns) })
            #expect(items[0]["email"] as? String == "a@example.test")
            #expect(items[0]["in_doubt"] as? Bool == false)
            #expect(items[1]["response_code"] as? Int == 550)
            #expect(items.allSatisfy { ($0["processed_at"] as? String)?.wholeMatch(of: iso) != nil })

            let lines = try runFanout(["report", "email", String(job), "--format", "jsonl"], environment: env)
            let objects = lines.stdout.split(separator: "\n")
            #expect(objects.count == 4)
            for line in objects.dropFirst() {
                let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                #expect(Set(object.keys) == Set(columns))
                #expect((object["processed_at"] as? String)?.wholeMatch(of: iso) != nil)
            }
            for name in columns { #expect(table.stdout.contains(name), "table header names \(name)") }

            let html = try runFanout(["report", "email", String(job), "--format", "html"], environment: env)
            #expect(html.stdout.hasPrefix("<!DOCTYPE html>"))
            #expect(html.stdout.contains("<svg"))
            #expect(html.stdout.contains("Outcomes by status"))
            // Self-contained: nothing is loaded from the network.
            #expect(!html.stdout.contains("src=\"http") && !html.stdout.contains("href=\"http"))
            for name in columns { #expect(html.stdout.contains("<th>\(name)</th>")) }
            // The server's reply is shown HTML-escaped.
            #expect(html.stdout.contains("&lt;reject550-b@example.test&gt;"))

            let unknown = try runFanout(["report", "email", "987654"], environment: env)
            #expect(unknown.status == 1)
            #expect(unknown.stderr == "fanout: no email job 987654\n")
        }
    }
}
