import FanoutCore
import FanoutStore

/// A job as the pages show it: counters, progress, rate and time to finish, from the job row only
/// (never a count over its items).
struct JobView {
    let job: JobSummary

    var total: Int { max(job.total, job.processed) }
    var pending: Int { max(0, total - job.processed) }
    var unfinished: Bool { JobStatus(rawValue: job.status)?.isRunnable == true }

    /// Items a minute since the job started, while it runs (to its last activity once it ended).
    var perMinute: Double? {
        guard let started = job.startedAt, job.processed > 0 else { return nil }
        let end = unfinished ? job.now : (job.lastActivityAt ?? job.now)
        let elapsed = end - started
        return elapsed >= 1 ? Double(job.processed) / elapsed * 60 : nil
    }

    func values(settings: WebSettings, back: String) -> [String: Any] {
        let percent = total > 0 ? job.processed * 100 / total : 0
        let rate = perMinute
        var eta = "-"
        if unfinished, let rate, rate > 0 { eta = Elapsed.text(Double(pending) / rate * 60) }
        // The list fills what holds a job up for unfinished jobs only.
        let waiting = job.waiting()
        return [
            "kind": job.kind.rawValue, "id": job.id, "company": job.companyID, "template": job.template,
            "created": Shown.time(job.createdAt), "status": job.status,
            "waiting": waiting ?? "",
            "reason": job.reason ?? "", "hasReason": job.reason?.isEmpty == false,
            "hasWaiting": waiting != nil, "done": job.processed, "total": total,
            "progressMax": max(total, 1),
            "percent": percent, "notFailed": job.processed - job.failed, "failed": job.failed, "pending": pending,
            "rate": rate.map { String(Int($0.rounded())) } ?? "-", "eta": eta,
            "active": Shown.ago(job.lastActivityAt, now: job.now),
            "canCancel": !settings.readOnly && unfinished,
            "canRetry": !settings.readOnly && job.failed > 0 && job.status != JobStatus.cancelled.rawValue,
            "formToken": settings.formToken, "back": back,
        ]
    }
}
