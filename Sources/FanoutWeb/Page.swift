import Hummingbird
import Mustache

/// The pages, rendered on the server from Mustache templates compiled into the binary. Every value
/// goes through `{{…}}`, which escapes it for HTML; only the layout's `{{{content}}}` (a page this
/// file rendered) is inserted as it is.
enum Page {
    static let library: MustacheLibrary = {
        var library = MustacheLibrary()
        for (name, text) in [
            ("layout", PageTemplates.layout), ("jobs", PageTemplates.jobs), ("job", PageTemplates.job),
            ("actions", PageTemplates.actions), ("workers", PageTemplates.workers), ("confirm", PageTemplates.confirm),
            ("message", PageTemplates.message), ("unsubscribe", PageTemplates.unsubscribe),
        ] {
            // The templates are part of the program: one that does not parse is a bug found by every test.
            try! library.register(text, named: name)
        }
        return library
    }()

    /// A whole page: `template` rendered with `values`, inside the layout.
    static func html(
        _ template: String, title: String, values: [String: Any], context: WebContext, running: Bool = false,
        status: HTTPResponse.Status = .ok, forOperators: Bool = true
    ) -> Response {
        let content = library.render(withoutEmptyText(values), withTemplate: template) ?? ""
        let page: [String: Any] = [
            "title": title, "content": content, "nonce": context.nonce, "running": running ? "1" : "0",
            "metaRefresh": running, "operators": forOperators,
        ]
        var layout = page
        layout["user"] = context.user
        let body = library.render(layout, withTemplate: "layout") ?? ""
        return Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// The values without empty text, so that `{{#notice}}…{{/notice}}` shows only a notice there
    /// is (Mustache counts an empty string as true). Only at the top: a row keeps its empty fields,
    /// or `{{reason}}` in an item's row would find the job's reason further up the context stack.
    static func withoutEmptyText(_ values: [String: Any]) -> [String: Any] {
        values.filter { ($0.value as? String) != "" }
    }

    /// A short page that says one thing (an error, a refusal).
    static func message(_ status: HTTPResponse.Status, _ text: String, context: WebContext) -> Response {
        html(
            "message", title: "\(status.code) \(status.reasonPhrase)",
            values: ["code": status.code, "phrase": status.reasonPhrase, "text": text], context: context,
            status: status)
    }
}

/// The templates' text.
enum PageTemplates {
    static let layout = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{title}} · Fanout</title>
        {{#metaRefresh}}<noscript><meta http-equiv="refresh" content="10"></noscript>{{/metaRefresh}}
        <style nonce="{{nonce}}">
        body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
        header{background:#1d2330;color:#fff;padding:8px 16px;display:flex;gap:16px;align-items:center}
        header a{color:#fff;text-decoration:none;font-weight:600}header .who{margin-left:auto;opacity:.7}
        main{padding:16px}h1{font-size:20px;margin:0 0 12px}h2{font-size:16px;margin:20px 0 8px}
        table{border-collapse:collapse;background:#fff;width:100%}
        th,td{padding:5px 8px;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}
        th{background:#eef0f3;font-weight:600;white-space:nowrap}td.n{text-align:right}
        .badge{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px;background:#dde1e6}
        .badge.processing{background:#cfe2ff}.badge.pending{background:#fff1c2}
        .badge.completed,.badge.sent{background:#d1f0d8}.badge.failed,.badge.bounced{background:#f8d3d3}
        .badge.cancelled,.badge.suppressed{background:#e2e2e2}.waiting,.reason{font-size:12px;color:#8a5a00}
        .reason{color:#555}progress{width:110px;vertical-align:middle}
        form.inline{display:inline}button{cursor:pointer}button.danger{color:#a40000}
        .filters{display:flex;flex-wrap:wrap;gap:10px;align-items:end;margin-bottom:12px}
        .filters label{display:flex;flex-direction:column;font-size:12px}.refresh{margin-left:auto}
        .cards{display:flex;gap:10px;flex-wrap:wrap}.card{background:#fff;padding:8px 12px;border-radius:6px}
        tr.in-doubt td{background:#fff8e1}.doubt{font-size:11px;color:#8a5a00}.ro{background:#8a5a00;
        padding:1px 6px;border-radius:4px}.notice{background:#d1f0d8;padding:6px 10px;border-radius:4px}
        </style></head>
        <body data-running="{{running}}">
        {{#operators}}<header><a href="/">Jobs</a><a href="/workers">Workers</a>
        <span class="who">{{#user}}signed in as {{user}}{{/user}}</span></header>{{/operators}}
        <main>{{{content}}}</main>
        <script nonce="{{nonce}}">
        (function () {
          document.querySelectorAll('form[data-confirm]').forEach(function (form) {
            form.addEventListener('submit', function (event) {
              if (!window.confirm(form.getAttribute('data-confirm'))) { event.preventDefault(); return; }
              form.querySelector('input[name=confirmed]').value = '1';
            });
          });
          var choice = document.getElementById('refresh');
          if (!choice) return;
          var saved = window.localStorage.getItem('fanout.refresh');
          if (saved !== null) choice.value = saved;
          var timer = null;
          function arm() {
            window.clearTimeout(timer);
            var seconds = parseInt(choice.value, 10);
            if (!seconds || document.hidden || document.body.getAttribute('data-running') !== '1') return;
            timer = window.setTimeout(function () { window.location.reload(); }, seconds * 1000);
          }
          choice.addEventListener('change', function () {
            window.localStorage.setItem('fanout.refresh', choice.value); arm();
          });
          document.addEventListener('visibilitychange', arm);
          arm();
        })();
        </script>
        </body></html>
        """

    static let jobs = """
        <h1>Jobs</h1>
        <form class="filters" method="get" action="/">
        <label>Kind<select name="kind">{{#kinds}}<option value="{{value}}"{{#selected}} selected{{/selected}}>\
        {{label}}</option>{{/kinds}}</select></label>
        <label>Status<select name="status">{{#statuses}}<option value="{{value}}"{{#selected}} selected{{/selected}}>\
        {{label}}</option>{{/statuses}}</select></label>
        <label>Company<input name="company" value="{{company}}" size="8" inputmode="numeric"></label>
        <label>Created from<input type="date" name="from" value="{{from}}"></label>
        <label>Created before<input type="date" name="to" value="{{to}}"></label>
        <button>Show</button>
        <label class="refresh">Refresh<select id="refresh">
        <option value="2">every 2 s</option><option value="5">every 5 s</option>
        <option value="10" selected>every 10 s</option><option value="30">every 30 s</option>
        <option value="0">off</option></select></label>
        </form>
        {{#problem}}<p class="reason">{{problem}}</p>{{/problem}}
        <table id="jobs"><thead><tr><th>ID</th><th>Kind</th><th>Company</th><th>Template</th><th>Created</th>
        <th>Status</th><th>Progress</th>
        <th title="ended without failing: sent, or suppressed or cancelled">Not failed</th>
        <th>Failed</th><th>Pending</th><th>Rate/min</th><th>Finishes in</th><th>Last activity</th><th></th>
        </tr></thead><tbody>
        {{#jobs}}<tr id="job-{{kind}}-{{id}}" data-status="{{status}}">
        <td><a href="/jobs/{{kind}}/{{id}}">{{id}}</a></td><td>{{kind}}</td><td>{{company}}</td>
        <td>{{template}}</td><td>{{created}}</td>
        <td><span class="badge {{status}}">{{status}}</span>{{#hasWaiting}}<div class="waiting">{{waiting}}</div>\
        {{/hasWaiting}}{{#hasReason}}<div class="reason">{{reason}}</div>{{/hasReason}}</td>
        <td><progress max="{{progressMax}}" value="{{done}}"></progress>
        <span class="progress-text">{{done}}/{{total}} ({{percent}}%)</span></td>
        <td class="n">{{notFailed}}</td><td class="n">{{failed}}</td><td class="n">{{pending}}</td>
        <td class="n">{{rate}}</td><td>{{eta}}</td><td>{{active}}</td>
        <td>{{> actions}}</td></tr>
        {{/jobs}}</tbody></table>
        {{^jobs}}<p>No jobs{{#filtered}} match these filters{{/filtered}}.</p>{{/jobs}}
        """

    /// Cancel and Retry failed, for one job (`jobs` rows and the job page).
    static let actions = """
        {{#canCancel}}<form class="inline" method="post" action="/jobs/{{kind}}/{{id}}/cancel" \
        data-confirm="Cancel {{kind}} job {{id}}? Its {{pending}} unsent items will not be sent.">\
        <input type="hidden" name="token" value="{{formToken}}"><input type="hidden" name="confirmed" value="0">\
        <input type="hidden" name="back" value="{{back}}"><button class="danger">Cancel</button></form>{{/canCancel}}
        {{#canRetry}}<form class="inline" method="post" action="/jobs/{{kind}}/{{id}}/retry" \
        data-confirm="Send the {{failed}} failed items of {{kind}} job {{id}} again?">\
        <input type="hidden" name="token" value="{{formToken}}"><input type="hidden" name="confirmed" value="0">\
        <input type="hidden" name="back" value="{{back}}"><button>Retry failed</button></form>{{/canRetry}}
        """

    static let job = """
        <h1>{{kind}} job {{id}} <span class="badge {{status}}">{{status}}</span></h1>
        {{#notice}}<p class="notice">{{notice}}</p>{{/notice}}
        <p>Company {{company}} · template {{template}} · created {{created}} · last activity {{active}}</p>
        {{#hasReason}}<p class="reason">{{reason}}</p>{{/hasReason}}\
        {{#hasWaiting}}<p class="waiting">{{waiting}}</p>{{/hasWaiting}}
        <p><progress max="{{progressMax}}" value="{{done}}"></progress>
        <span class="progress-text">{{done}}/{{total}} ({{percent}}%)</span> · {{rate}} a minute · finishes in {{eta}}
        {{> actions}}</p>
        <div class="cards">{{#counts}}<div class="card"><span class="badge {{status}}">{{status}}</span>
        <b>{{count}}</b></div>{{/counts}}</div>
        {{#hasInDoubt}}<p class="waiting">Items marked <i>in doubt</i> below were in flight when the process
        sending them ended: the server may already have taken them once.</p>{{/hasInDoubt}}
        <h2>Why items failed</h2>
        {{#hasFailures}}<table id="failures"><thead><tr><th>Items</th><th>Reason</th></tr></thead><tbody>
        {{#failures}}<tr><td class="n">{{count}}</td><td>{{reason}}</td></tr>{{/failures}}</tbody></table>
        {{/hasFailures}}{{^hasFailures}}<p>No item failed.</p>{{/hasFailures}}
        <h2>Report</h2>
        <p><a href="/jobs/{{kind}}/{{id}}/report/csv">CSV</a> · <a href="/jobs/{{kind}}/{{id}}/report/json">JSON</a> ·
        <a href="/jobs/{{kind}}/{{id}}/report/html">HTML</a></p>
        <h2>Items</h2>
        <form class="filters" method="get" action="/jobs/{{kind}}/{{id}}">
        <label>Status<select name="status">{{#itemStatuses}}<option value="{{value}}"\
        {{#selected}} selected{{/selected}}>{{label}}</option>{{/itemStatuses}}</select></label>
        <label>{{searchLabel}}<input name="q" value="{{q}}" size="28"></label><button>Show</button></form>
        <table id="items"><thead><tr><th>ID</th>{{#email}}<th>Email</th><th>Name</th>{{/email}}\
        {{^email}}<th>Card</th><th>Platform</th>{{/email}}<th>Status</th><th>Attempts</th><th>Code</th>\
        <th>Processed</th><th>Reason</th></tr></thead><tbody>
        {{#items}}<tr{{#inDoubt}} class="in-doubt"{{/inDoubt}}><td>{{id}}</td><td>{{target}}</td><td>{{detail}}</td>
        <td><span class="badge {{status}}">{{status}}</span>{{#inDoubt}} <span class="doubt"
        title="its transfer may have reached the server before the process that sent it ended">in doubt</span>\
        {{/inDoubt}}</td><td class="n">{{attempts}}</td><td>{{code}}</td><td>{{processed}}</td><td>{{reason}}</td></tr>
        {{/items}}</tbody></table>
        {{^items}}<p>No items{{#filtered}} match{{/filtered}}.</p>{{/items}}
        <p>{{#firstPage}}<a href="{{firstPage}}">First page</a>{{/firstPage}}
        {{#nextPage}} · <a href="{{nextPage}}" id="next">Next page</a>{{/nextPage}}</p>
        """

    static let workers = """
        <h1>Workers</h1>
        {{#notice}}<p class="notice">{{notice}}</p>{{/notice}}
        <p>Last recorded cron tick: {{lastTick}} · last batch by any tick or worker: {{lastBatch}}</p>
        {{#hasWorkers}}
        <table id="workers"><thead><tr><th>Name</th><th>Host</th><th>PID</th><th>Version</th><th>Kinds</th>
        <th>State</th><th>Job</th><th>Items done</th><th>Memory</th><th>Started</th><th>Heartbeat</th></tr></thead>
        <tbody>{{#workers}}<tr><td>{{name}}</td><td>{{host}}</td><td>{{pid}}</td><td>{{version}}</td>
        <td>{{types}}</td><td><span class="badge">{{state}}</span></td><td>{{job}}</td><td class="n">{{itemsDone}}</td>
        <td class="n">{{memory}}</td><td>{{started}}</td><td>{{heartbeat}}</td></tr>{{/workers}}</tbody></table>
        {{#canControl}}<p>
        {{#controls}}<form class="inline" method="post" action="/workers/{{action}}" data-confirm="{{question}}">\
        <input type="hidden" name="token" value="{{formToken}}"><input type="hidden" name="confirmed" value="0">\
        <input type="hidden" name="type" value="{{type}}"><button>{{label}}</button></form> {{/controls}}
        </p>{{/canControl}}
        {{/hasWorkers}}
        {{^hasWorkers}}<p>No worker is running: jobs are sent by cron ticks (fanout emails:process-jobs,
        fanout wallet:process-jobs), or start one with fanout work.</p>{{/hasWorkers}}
        """

    /// The confirmation a browser without JavaScript gets before a change.
    static let confirm = """
        <h1>{{question}}</h1>
        <form method="post" action="{{action}}"><input type="hidden" name="token" value="{{formToken}}">
        <input type="hidden" name="confirmed" value="1"><input type="hidden" name="back" value="{{back}}">
        {{#type}}<input type="hidden" name="type" value="{{type}}">{{/type}}
        <button class="danger">Yes</button> <a href="{{back}}">No, go back</a></form>
        """

    /// The recipient's page before unsubscribing (a GET changes nothing: link scanners follow links).
    static let unsubscribe = """
        <h1>Unsubscribe {{address}}?</h1>
        <p>You will get no more marketing mail from this sender. Messages you asked for (receipts, password
        resets) still reach you.</p>
        <form method="post" action="/unsubscribe/{{token}}"><input type="hidden" name="confirmed" value="1">
        <button class="danger">Unsubscribe</button></form>
        """

    static let message = """
        <h1>{{code}} {{phrase}}</h1><p id="message">{{text}}</p><p><a href="/">Jobs</a></p>
        """
}
