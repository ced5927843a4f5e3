//! The scripted demo: the original's story, Slack verification, and two backup runs, each step
//! checked against what it should produce, with a transcript a person can read.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use fanout_copy_core::ledger::{RunLedger, RunRecord};
use fanout_copy_dynamodb::RunTable;
use fanout_words_core::slack::sign;
use serde_json::{json, Value};

use crate::stack::{Stack, SIGNING_SECRET, VERIFICATION_TOKEN};
use crate::template::Trigger;

/// How long a step may wait for asynchronous work.
const PATIENCE: Duration = Duration::from_secs(120);

#[derive(Default)]
struct Transcript {
    failures: Vec<String>,
}

impl Transcript {
    fn step(&self, number: usize, title: &str) {
        println!("\n{number}. {title}");
    }

    fn check(&mut self, what: &str, ok: bool, detail: impl std::fmt::Display) {
        if ok {
            println!("   ✔ {what}: {detail}");
        } else {
            println!("   ✘ {what}: {detail}");
            self.failures.push(what.to_owned());
        }
    }

    fn note(&self, text: impl std::fmt::Display) {
        println!("   {text}");
    }
}

/// Plays the scenario; true when every check passed.
pub async fn play(stack: &Stack) -> bool {
    let mut t = Transcript::default();
    let started = Instant::now();
    let demo = Demo::new(stack);
    match demo {
        Ok(demo) => demo.run(&mut t).await,
        Err(err) => t.check("the stack has what the demo needs", false, err),
    }
    println!();
    if t.failures.is_empty() {
        println!(
            "demo passed: every step matched ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
        true
    } else {
        println!(
            "demo FAILED: {} step(s) did not match: {}",
            t.failures.len(),
            t.failures.join("; ")
        );
        false
    }
}

struct Demo<'a> {
    stack: &'a Stack,
    slack_url: String,
    words_table: String,
    runs_table: String,
    fanout: String,
    source_bucket: String,
    dest_bucket: String,
}

fn env_of<'a>(stack: &'a Stack, var: &str) -> Result<&'a str, String> {
    stack
        .plan
        .functions
        .iter()
        .find_map(|f| f.env.get(var))
        .map(String::as_str)
        .ok_or_else(|| format!("no function of the template sets {var}"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl<'a> Demo<'a> {
    fn new(stack: &'a Stack) -> Result<Demo<'a>, String> {
        let fanout = stack
            .plan
            .functions
            .iter()
            .find(|f| {
                f.triggers
                    .iter()
                    .any(|t| matches!(t, Trigger::Schedule { .. }))
            })
            .map(|f| f.binary.clone())
            .ok_or("the template has no scheduled function")?;
        Ok(Demo {
            stack,
            slack_url: stack
                .slack_url()
                .ok_or("the template routes no HTTP to a function")?,
            words_table: env_of(stack, "WORDS_TABLE")?.to_owned(),
            runs_table: env_of(stack, "COPY_RUNS_TABLE")?.to_owned(),
            fanout,
            source_bucket: env_of(stack, "SOURCE_BUCKET")?.to_owned(),
            dest_bucket: env_of(stack, "DEST_BUCKET")?.to_owned(),
        })
    }

    async fn run(&self, t: &mut Transcript) {
        let run_stamp = now();
        t.step(
            1,
            "The original's story: \"awsadvent some words\" as a Slack outgoing webhook",
        );
        let first_ts = format!("{run_stamp}.000100");
        let (status, reply) = self
            .post(
                &webhook("awsadvent some words", &first_ts),
                "application/x-www-form-urlencoded",
                SIGNING_SECRET,
            )
            .await;
        let text = reply["text"].as_str().unwrap_or_default().to_owned();
        t.check(
            "slack-counter replies with the counts",
            status == 200 && text == "awsadvent: 1, some: 1, words: 1",
            format!("{status} {text:?}"),
        );

        t.note("WordsTopic → MultiplierQueue → sns-multiplier adds 10 to each word…");
        let counts = self
            .wait_for_counts(&["awsadvent", "some", "words"], 11)
            .await;
        t.check(
            "sns-multiplier took every word to 11",
            counts.iter().all(|(_, n)| *n == Some(11)),
            show(&counts),
        );

        let (status, reply) = self
            .post(
                &webhook("awsadvent some words", &format!("{run_stamp}.000200")),
                "application/x-www-form-urlencoded",
                SIGNING_SECRET,
            )
            .await;
        let text = reply["text"].as_str().unwrap_or_default().to_owned();
        t.check(
            "the same words as a new message",
            status == 200 && text == "awsadvent: 12, some: 12, words: 12",
            format!("{status} {text:?}"),
        );

        let message_id = format!("T0DEMO:C0DEMO:{first_ts}");
        let line = self.wait_for_log_line(&message_id).await;
        t.check(
            "sns-logger wrote one JSON line for the message",
            line.is_some(),
            line.clone().unwrap_or_else(|| "no line".into()),
        );

        t.step(2, "A signed Events API message");
        let event = json!({"token": VERIFICATION_TOKEN, "team_id": "T0DEMO", "type": "event_callback", "event_id": format!("Ev{run_stamp}"),
            "event": {"type": "message", "channel": "C0DEMO", "user": "U0DEMO", "text": "Signed events count too :tada:", "ts": format!("{run_stamp}.000300")}})
        .to_string();
        let (status, reply) = self.post(&event, "application/json", SIGNING_SECRET).await;
        let text = reply["text"].as_str().unwrap_or_default().to_owned();
        t.check(
            "counted",
            status == 200 && text.starts_with("signed: 1") && text.contains(":tada:: 1"),
            format!("{status} {text:?}"),
        );

        t.step(3, "A forged request (signed with the wrong secret)");
        let forged = event.replace("Signed events", "Forged events");
        let (status, reply) = self
            .post(&forged, "application/json", "not-the-secret")
            .await;
        t.check(
            "refused with 401",
            status == 401,
            format!("{status} {}", reply["error"].as_str().unwrap_or_default()),
        );
        let forged_count = self.count("forged").await;
        t.check(
            "nothing counted",
            forged_count.is_none(),
            format!("count of \"forged\": {forged_count:?}"),
        );

        t.step(
            4,
            "A backup run: s3-fanout → CopyTopic → CopyQueue → s3-copier",
        );
        match self.fill_source_bucket().await {
            Ok(note) => t.note(note),
            Err(err) => t.check("fill the source bucket", false, err),
        }
        let first = self.backup(t, "2016-12-13T03:00:00Z").await;
        if let Some(run) = &first {
            t.check(
                "every object copied, none failed",
                run.copied == run.listed && run.failed == 0,
                summary(run),
            );
        }

        t.step(
            5,
            "The next night's backup: nothing changed, so everything is skipped",
        );
        if let Some(run) = self.backup(t, "2016-12-14T03:00:00Z").await {
            t.check(
                "everything skipped",
                run.copied == 0 && run.failed == 0 && run.skipped == run.listed,
                summary(&run),
            );
        }

        t.step(6, "The post-deploy smoke test, against this local stack");
        self.smoke_test(t).await;
    }

    /// Runs the post-deploy smoke test (tools/smoke) against this stack, as against a deployed one.
    async fn smoke_test(&self, t: &mut Transcript) {
        let binary = fanout_tests::workspace_root().join("target/debug/fanout-smoke");
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
            .env("AWS_REGION", crate::template::REGION)
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

    /// Posts a Slack request, signed with `secret`, to the counter's URL.
    async fn post(&self, body: &str, content_type: &str, secret: &str) -> (u16, Value) {
        let timestamp = now().to_string();
        let request = self
            .stack
            .http
            .post(&self.slack_url)
            .header("content-type", content_type)
            .header("x-slack-request-timestamp", &timestamp)
            .header(
                "x-slack-signature",
                sign(secret, &timestamp, body.as_bytes()),
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

    async fn count(&self, word: &str) -> Option<i64> {
        let item = aws_sdk_dynamodb::Client::new(&self.stack.sdk)
            .get_item()
            .table_name(&self.words_table)
            .key("word", AttributeValue::S(word.into()))
            .consistent_read(true)
            .send()
            .await
            .ok()?
            .item?;
        item.get("count")?.as_n().ok()?.parse().ok()
    }

    async fn wait_for_counts(&self, words: &[&str], expected: i64) -> Vec<(String, Option<i64>)> {
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

    async fn wait_for_log_line(&self, message_id: &str) -> Option<String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let found = self
                .stack
                .logs
                .lock()
                .unwrap()
                .iter()
                .find(|line| line.contains("\"words message\"") && line.contains(message_id))
                .cloned();
            if found.is_some() || Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn fill_source_bucket(&self) -> Result<String, String> {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.stack.sdk)
                .force_path_style(true)
                .build(),
        );
        let mut sizes: Vec<(String, usize)> = (0..20)
            .map(|i| (format!("daily/report-{i:02}.csv"), 1024 * (i + 1)))
            .collect();
        sizes.push(("images/large-12MiB.bin".into(), 12 << 20));
        sizes.push(("images/large-20MiB.bin".into(), 20 << 20));
        let total: usize = sizes.iter().map(|(_, n)| n).sum();
        for (key, size) in &sizes {
            let body: Vec<u8> = (0..*size).map(|i| (i % 251) as u8).collect();
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
                .map_err(|e| format!("put {key}: {}", aws_sdk_s3::error::DisplayErrorContext(e)))?;
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
    async fn backup(&self, t: &mut Transcript, night: &str) -> Option<RunRecord> {
        let started = Instant::now();
        let scheduled = json!({"version": "0", "id": format!("fanout-local-{night}"), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": crate::template::ACCOUNT, "time": night, "region": crate::template::REGION,
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
        let ledger = RunTable::new(
            aws_sdk_dynamodb::Client::new(&self.stack.sdk),
            &self.runs_table,
        );
        let deadline = Instant::now() + PATIENCE;
        loop {
            let record = ledger.get(&run_id).await.ok().flatten();
            if let Some(run) = &record {
                if run.listing_complete && run.copied + run.skipped + run.failed >= run.listed {
                    let seconds = started.elapsed().as_secs_f64();
                    t.note(format!("run summary: copied {}, skipped {}, failed {}, bytes {}, seconds {seconds:.1}", run.copied, run.skipped, run.failed, run.bytes_copied));
                    let copies = self.destination_count().await;
                    t.note(format!(
                        "s3://{} now holds {copies} objects",
                        self.dest_bucket
                    ));
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
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.stack.sdk)
                .force_path_style(true)
                .build(),
        );
        s3.list_objects_v2()
            .bucket(&self.dest_bucket)
            .send()
            .await
            .map(|o| o.contents().len())
            .unwrap_or_default()
    }
}

fn webhook(text: &str, timestamp: &str) -> String {
    serde_urlencoded::to_string([
        ("token", VERIFICATION_TOKEN),
        ("team_id", "T0DEMO"),
        ("team_domain", "demo"),
        ("channel_id", "C0DEMO"),
        ("channel_name", "general"),
        ("timestamp", timestamp),
        ("user_id", "U0DEMO"),
        ("user_name", "steve"),
        ("text", text),
        ("trigger_word", "awsadvent"),
    ])
    .unwrap_or_default()
}

fn show(counts: &[(String, Option<i64>)]) -> String {
    counts
        .iter()
        .map(|(w, n)| {
            format!(
                "{w}={}",
                n.map(|n| n.to_string()).unwrap_or_else(|| "-".into())
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn summary(run: &RunRecord) -> String {
    format!(
        "listed {}, copied {}, skipped {}, failed {}, bytes {}",
        run.listed, run.copied, run.skipped, run.failed, run.bytes_copied
    )
}
