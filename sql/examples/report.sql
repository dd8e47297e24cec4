-- A job's progress and outcome from SQL (what `fanout report email 42` summarises).

-- The job: counters Fanout keeps equal to what the items say.
SELECT id, company_id, template, status, reason, total_items, processed_items, failed_items,
       started_at, last_processed_at, completed_at
  FROM bulk_email_jobs WHERE id = 42;

-- Items by status, and how many are in doubt (sent again after a crash, same Message-ID).
SELECT status, COUNT(*) AS items, SUM(in_doubt) AS in_doubt
  FROM bulk_email_job_items WHERE bulk_email_job_id = 42 GROUP BY status;

-- The most common failure reasons (the SMTP server's reply, or why the item was refused).
SELECT reason, COUNT(*) AS items
  FROM bulk_email_job_items WHERE bulk_email_job_id = 42 AND status = 'failed'
 GROUP BY reason ORDER BY items DESC LIMIT 10;

-- Items waiting for a retry, and when.
SELECT id, email, attempts, next_attempt_at, reason
  FROM bulk_email_job_items
 WHERE bulk_email_job_id = 42 AND status = 'pending' AND next_attempt_at > NOW()
 ORDER BY next_attempt_at;
