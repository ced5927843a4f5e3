//! What the demo does to the stack and how it looks at the outcome: Slack requests, the words
//! table, the functions' log lines, the backup buckets and the runs' ledger, the smoke test.

use std::time::{Duration, Instant};

use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::operation::put_object::PutObjectError;
use serde_json::{json, Value};

use super::{now, Demo, Transcript, PATIENCE};
use crate::project::{sign_slack_request, workspace_root, RunLedger, RunRecord, RunTable};
use crate::resources::s3_client;
use crate::settings::SIGNING_SECRET;
use crate::template::{ACCOUNT, REGION};

/// An object of the demo's source bucket could not be written.
#[derive(Debug, thiserror::Error)]
#[error("put {key}: {}", DisplayErrorContext(.source))]
pub(super) struct PutError {
    key: String,
    source: Box<SdkError<PutObjectError>>,
}

impl Demo<'_> {
    /// Posts a Slack request, signed with `secret`, to the counter's URL.
    pub(super) async fn post(&self, body: &str, content_type: &str, secret: &str) -> (u16, Value) {
        let timestamp = now().to_string();
        let request = self
            .stack
            .http
            .post(&self.slack_url)
            .header("content-type", content_type)
            .header("x-slack-request-timestamp", &timestamp)
            .header(
                "x-slack-signature",
                sign_slack_request(secret, &timestamp, body.as_bytes()),
            )
            .body(body.to_owned())
            .timeout(PATIENCE);
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                (
                    status,
                    serde_json::from_str(&text).unwrap_or(Value::String(text)),
                )
            }
            Err(err) => (0, json!({ "error": err.to_string() })),
        }
    }

    pub(super) async fn count(&self, word: &str) -> Option<i64> {
        let dynamodb = aws_sdk_dynamodb::Client::new(&self.stack.sdk);
        fanout_tests::words::count_of(&dynamodb, &self.words_table, word)
            .await
            .ok()
            .flatten()
    }

    pub(super) async fn wait_for_counts(
        &self,
        words: &[&str],
        expected: i64,
    ) -> Vec<(String, Option<i64>)> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut counts = Vec::new();
            for word in words {
                counts.push((word.to_string(), self.count(word).await));
            }
            if counts.iter().all(|(_, n)| *n == Some(expected)) || Instant::now() > deadline {
                return counts;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub(super) async fn wait_for_log_line(&self, message_id: &str) -> Option<String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let found = self
                .stack
                .logs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .find(|line| line.contains("\"words message\"") && line.contains(message_id))
                .cloned();
            if found.is_some() || Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub(super) async fn fill_source_bucket(&self) -> Result<String, PutError> {
        let s3 = s3_client(&self.stack.sdk);
        let mut sizes: Vec<(String, usize)> = (0..20)
            .map(|i| (format!("daily/report-{i:02}.csv"), 1024 * (i + 1)))
            .collect();
        sizes.push(("images/large-12MiB.bin".into(), 12 << 20));
        sizes.push(("images/large-20MiB.bin".into(), 20 << 20));
        let total: usize = sizes.iter().map(|(_, n)| n).sum();
        for (key, size) in &sizes {
            let body = crate::settings::sample_bytes(*size);
            s3.put_object()
                .bucket(&self.source_bucket)
                .key(key)
                .body(body.into())
                .content_type(if key.ends_with(".csv") {
                    "text/csv"
                } else {
                    "application/octet-stream"
                })
                .metadata("origin", "fanout-demo")
                .tagging("backup=nightly")
                .send()
                .await
                .map_err(|source| PutError {
                    key: key.clone(),
                    source: source.into(),
                })?;
        }
        Ok(format!(
            "s3://{} holds {} objects, {:.1} MiB; two are above the 8 MiB multipart threshold",
            self.source_bucket,
            sizes.len(),
            total as f64 / (1 << 20) as f64
        ))
    }

    /// Triggers s3-fanout as the schedule would, waits for the copier, and prints the run.
    /// `night` is the schedule's firing time: each night is its own run.
    pub(super) async fn backup(&self, t: &mut Transcript, night: &str) -> Option<RunRecord> {
        let started = Instant::now();
        let scheduled = json!({"version": "0", "id": format!("fanout-local-{night}"), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": ACCOUNT, "time": night, "region": REGION,
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/fanout-nightly"], "detail": {}});
        let answer = match self.stack.invoker.invoke(&self.fanout, &scheduled).await {
            Ok(answer) => answer,
            Err(err) => {
                t.check("s3-fanout ran", false, err);
                return None;
            }
        };
        let run_id = answer["run_id"].as_str().unwrap_or_default().to_owned();
        t.check(
            "s3-fanout listed the source and published the jobs",
            !run_id.is_empty(),
            format!(
                "run {run_id}: listed {}, enqueued {}, skipped {}",
                answer["listed"], answer["enqueued"], answer["skipped"]
            ),
        );
        let record = self.wait_for_run(t, &run_id).await?;
        let seconds = started.elapsed().as_secs_f64();
        t.note(format!(
            "run summary: copied {}, skipped {}, failed {}, bytes {}, seconds {seconds:.1}",
            record.copied, record.skipped, record.failed, record.bytes_copied
        ));
        let failures = self.ledger().failures(&run_id).await.unwrap_or_default();
        for failure in &failures {
            t.note(format!("failed: {}: {}", failure.key, failure.error));
        }
        // The run announced itself: its failure report is where the template says.
        let report = format!("fanout-reports/{run_id}/failures.jsonl");
        let report_bytes = s3_client(&self.stack.sdk)
            .get_object()
            .bucket(&self.dest_bucket)
            .key(&report)
            .send()
            .await
            .ok()
            .map(|object| object.content_length().unwrap_or_default());
        t.check(
            "the run completed and wrote its failure report",
            record.announced && report_bytes.is_some(),
            format!(
                "completed at {}, report s3://{}/{report} ({} bytes)",
                record.completed_at.as_deref().unwrap_or("-"),
                self.dest_bucket,
                report_bytes.unwrap_or_default()
            ),
        );
        let copies = self.destination_count().await;
        t.note(format!(
            "s3://{} now holds {copies} objects",
            self.dest_bucket
        ));
        Some(record)
    }

    fn ledger(&self) -> RunTable {
        RunTable::new(
            aws_sdk_dynamodb::Client::new(&self.stack.sdk),
            &self.runs_table,
        )
    }

    /// Waits until the run announces itself complete: every object copied, skipped or failed.
    async fn wait_for_run(&self, t: &mut Transcript, run_id: &str) -> Option<RunRecord> {
        let ledger = self.ledger();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let record = ledger.get(run_id).await.ok().flatten();
            if let Some(run) = &record {
                if run.announced {
                    return record;
                }
            }
            if Instant::now() > deadline {
                t.check("the copier finished the run", false, format!("{record:?}"));
                return None;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn destination_count(&self) -> usize {
        s3_client(&self.stack.sdk)
            .list_objects_v2()
            .bucket(&self.dest_bucket)
            .send()
            .await
            .map(|o| o.contents().len())
            .unwrap_or_default()
    }

    /// Runs the post-deploy smoke test (tools/smoke) against this stack, as against a deployed one.
    pub(super) async fn smoke_test(&self, t: &mut Transcript) {
        let binary = workspace_root().join("target/debug/fanout-smoke");
        let output = tokio::process::Command::new(&binary)
            .args([
                "--slack-url",
                &self.slack_url,
                "--signing-secret",
                SIGNING_SECRET,
                "--words-table",
                &self.words_table,
            ])
            .env("AWS_ENDPOINT_URL", &self.stack.endpoint)
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .output()
            .await;
        match output {
            Ok(output) => {
                let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
                let errors = String::from_utf8_lossy(&output.stderr).trim().to_owned();
                t.check(
                    "fanout-smoke passed",
                    output.status.success(),
                    format!("{text} {errors}").trim().to_owned(),
                );
            }
            Err(err) => t.check(
                "fanout-smoke ran",
                false,
                format!("{}: {err} (make local-bins builds it)", binary.display()),
            ),
        }
    }
}
