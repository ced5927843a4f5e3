//! s3-fanout → topic → s3-copier against a real AWS emulator, driven with the sample events in
//! `events/`: what the topic publishes reaches the copier through an SQS queue subscribed to it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use fanout_common::events::Batch;
use fanout_common::Vars;
use fanout_copy_core::completion::Announcer;
use fanout_copy_core::fanout::{Answer, Budget, FanoutError};
use fanout_copy_core::ledger::{RunLedger, RunRecord};
use fanout_copy_core::location::Location;
use fanout_copy_core::mirror::Mirror;
use fanout_copy_core::size::MIB;
use fanout_copy_core::{Copier, CopyJob};
use fanout_copy_dynamodb::RunTable;
use fanout_copy_s3::S3Store as ObjectStore;
use fanout_sns::JobPublisher;
use fanout_tests::copy::{
    body, bytes, create_bucket, create_runs_table, delete, keys, open_uploads, put_object, s3,
    sample_event, Carried, FailPart, RefuseEntries, Unreachable,
};
use fanout_tests::iam::CallRecorder;
use fanout_tests::inventory;
use fanout_tests::words::{drain, drain_published, topic_with_probe_queue};
use fanout_tests::{unique, Emulator};
use lambda_runtime::{Context, LambdaEvent};
use s3_fanout::{Config, FanoutEvent};
use std::sync::Arc;

type Fanout = s3_fanout::Fanout<ObjectStore, JobPublisher, RunTable>;
type CopyHandler = s3_copier::CopyHandler<ObjectStore, RunTable, JobPublisher>;
use serde_json::{json, Value};

struct Fixture {
    sdk: SdkConfig,
    client: aws_sdk_s3::Client,
    source: String,
    destination: String,
    table: String,
    topic_arn: String,
    queue: String,
    /// Where runs announce themselves: their events (read through a probe queue) and reports.
    events_topic_arn: String,
    events_queue: String,
    reports: String,
}

/// An invocation context with fifteen minutes left.
fn context(request_id: &str) -> Context {
    let mut context = Context::default();
    context.request_id = request_id.to_owned();
    context.deadline = (SystemTime::now() + Duration::from_secs(900))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    context
}

/// Budget for tests: whole pages of S3's size, never a continuation.
fn unhurried() -> Budget {
    Budget {
        page_size: None,
        reserve: Duration::ZERO,
    }
}

impl Fixture {
    async fn new() -> Fixture {
        let sdk = Emulator::shared().sdk_config().await;
        let source = create_bucket(&sdk, "fanout-source").await;
        let destination = create_bucket(&sdk, "fanout-backup").await;
        let table = create_runs_table(&sdk).await;
        let (topic_arn, queue) = topic_with_probe_queue(&sdk).await;
        let (events_topic_arn, events_queue) = topic_with_probe_queue(&sdk).await;
        let reports = create_bucket(&sdk, "fanout-reports").await;
        Fixture {
            client: s3(&sdk),
            sdk,
            source,
            destination,
            table,
            topic_arn,
            queue,
            events_topic_arn,
            events_queue,
            reports,
        }
    }

    fn config(&self, source_prefix: &str, dest_prefix: &str, table: bool) -> Config {
        let mut pairs = vec![
            ("SOURCE_BUCKET", self.source.as_str()),
            ("DEST_BUCKET", self.destination.as_str()),
            ("SOURCE_PREFIX", source_prefix),
            ("DEST_PREFIX", dest_prefix),
            ("COPY_TOPIC_ARN", self.topic_arn.as_str()),
        ];
        if table {
            pairs.push(("COPY_RUNS_TABLE", self.table.as_str()));
        }
        Config::from_vars(&Vars::from_pairs(pairs)).unwrap()
    }

    /// What runs are announced with: events to the events topic, reports in the reports bucket,
    /// through clients that `calls` records.
    fn announcer(&self, calls: Option<&CallRecorder>) -> Announcer {
        let mut sns = aws_sdk_sns::config::Builder::from(&self.sdk);
        let mut s3 = aws_sdk_s3::config::Builder::from(&self.sdk).force_path_style(true);
        if let Some(calls) = calls {
            sns = sns.interceptor(calls.clone());
            s3 = s3.interceptor(calls.clone());
        }
        let reports: Location = format!("s3://{}/nightly", self.reports).parse().unwrap();
        fanout_sns::announcer(
            &aws_sdk_sns::Client::from_conf(sns.build()),
            Some(&self.events_topic_arn),
            Some(&reports),
            Arc::new(ObjectStore::new(aws_sdk_s3::Client::from_conf(s3.build()))),
        )
    }

    /// The completion events published so far.
    async fn completion_events(&self) -> Vec<Value> {
        drain_published(&self.sdk, &self.events_queue).await
    }

    fn ledger(&self) -> RunTable {
        RunTable::new(aws_sdk_dynamodb::Client::new(&self.sdk), &self.table)
    }

    fn fanout_with(&self, config: Config, budget: Budget, calls: Option<&CallRecorder>) -> Fanout {
        let ledger = config.runs_table.as_ref().map(|table| {
            let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(&self.sdk);
            if let Some(calls) = calls {
                dynamodb = dynamodb.interceptor(calls.clone());
            }
            RunTable::new(aws_sdk_dynamodb::Client::from_conf(dynamodb.build()), table)
        });
        let mut sns = aws_sdk_sns::config::Builder::from(&self.sdk);
        let mut s3 = aws_sdk_s3::config::Builder::from(&self.sdk).force_path_style(true);
        if let Some(calls) = calls {
            sns = sns.interceptor(calls.clone());
            s3 = s3.interceptor(calls.clone());
        }
        let publisher = JobPublisher::new(
            aws_sdk_sns::Client::from_conf(sns.build()),
            &config.topic_arn,
        );
        let store = ObjectStore::new(aws_sdk_s3::Client::from_conf(s3.build()));
        Fanout::new(config, store, publisher, ledger, None, budget)
            .with_announcer(self.announcer(calls))
    }

    fn fanout(&self) -> Fanout {
        self.fanout_with(self.config("", "", true), unhurried(), None)
    }

    fn copier_with(&self, ledger: bool, calls: Option<&CallRecorder>) -> CopyHandler {
        self.failing_copier(ledger, calls, None::<FailPart>)
    }

    fn failing_copier<I>(
        &self,
        ledger: bool,
        calls: Option<&CallRecorder>,
        fault: Option<I>,
    ) -> CopyHandler
    where
        I: aws_sdk_s3::config::Intercept + 'static,
    {
        let config = s3_copier::Config::from_vars(&Vars::from_pairs([
            ("COPY_MULTIPART_THRESHOLD", "5MiB"),
            ("COPY_PART_SIZE", "5MiB"),
        ]))
        .unwrap();
        let mut s3 = aws_sdk_s3::config::Builder::from(&self.sdk).force_path_style(true);
        let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(&self.sdk);
        if let Some(calls) = calls {
            s3 = s3.interceptor(calls.clone());
            dynamodb = dynamodb.interceptor(calls.clone());
        }
        if let Some(fault) = fault {
            s3 = s3.interceptor(fault);
        }
        let mut copier = Copier::new(
            ObjectStore::new(aws_sdk_s3::Client::from_conf(s3.build())),
            config.options,
            config.concurrency,
        );
        let ledger = ledger.then(|| {
            RunTable::new(
                aws_sdk_dynamodb::Client::from_conf(dynamodb.build()),
                &self.table,
            )
        });
        if let Some(ledger) = &ledger {
            // As s3-copier's main does.
            copier = copier.with_registry(std::sync::Arc::new(ledger.clone()));
        }
        CopyHandler::new(copier, ledger).with_announcer(self.announcer(calls))
    }

    /// A sample event from `events/`, naming this fixture's buckets.
    fn event(&self, file: &str) -> Value {
        sample_event(file, &self.source, &self.destination)
    }

    async fn put(&self, key: &str, len: usize, seed: u8) -> String {
        put_object(
            &self.client,
            &self.source,
            key,
            bytes(len, seed),
            &Carried::sample(),
        )
        .await
    }

    async fn run(&self, fanout: &Fanout, event: Value, request_id: &str) -> Answer {
        handle(fanout, event, context(request_id))
            .await
            .unwrap_or_else(|e| panic!("fanout failed: {e}"))
    }

    /// What the topic published so far (SNS notifications, as the queue received them).
    async fn published(&self) -> Vec<String> {
        drain(&self.sdk, &self.queue).await
    }

    /// The run's failures, as `(key, error)`.
    async fn failures(&self, run_id: &str) -> Vec<(String, String)> {
        let failures = self.ledger().failures(run_id).await.unwrap();
        failures.into_iter().map(|f| (f.key, f.error)).collect()
    }

    async fn run_record(&self, run_id: &str) -> RunRecord {
        self.ledger()
            .get(run_id)
            .await
            .unwrap()
            .expect("the run is recorded")
    }
}

/// A typed SNS or SQS event, as the Lambda runtime would deserialize it.
fn batch(event: Value) -> Batch {
    serde_json::from_value(event).expect("an SNS or SQS event")
}

/// What an invocation of s3-fanout with this event (as JSON) answers.
async fn handle(fanout: &Fanout, event: Value, context: Context) -> Result<Answer, FanoutError> {
    let event = FanoutEvent::try_from(event)?;
    fanout.handle(LambdaEvent::new(event, context)).await
}

/// The SQS event a queue subscribed to the topic makes of these notifications.
fn sqs_event(notifications: &[String]) -> Batch {
    let records: Vec<Value> = notifications
        .iter()
        .enumerate()
        .map(|(i, body)| json!({"messageId": format!("sqs-{i}"), "body": body, "eventSource": "aws:sqs"}))
        .collect();
    batch(json!({ "Records": records }))
}

/// An SQS event of these notifications, each on its `receive`th delivery.
fn sqs_event_received(notifications: &[String], receive: u32) -> Batch {
    let records: Vec<Value> = notifications
        .iter()
        .enumerate()
        .map(|(i, body)| {
            json!({"messageId": format!("sqs-{i}"), "body": body, "eventSource": "aws:sqs",
            "attributes": {"ApproximateReceiveCount": receive.to_string()}})
        })
        .collect();
    batch(json!({ "Records": records }))
}

/// The SNS event the topic makes of these notifications.
fn sns_event(notifications: &[String]) -> Batch {
    let records: Vec<Value> = notifications
        .iter()
        .map(|body| {
            let n: Value = serde_json::from_str(body).unwrap();
            json!({"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:copy:sub",
                   "Sns": {"Type": "Notification", "MessageId": n["MessageId"], "TopicArn": n["TopicArn"], "Subject": null,
                           "Message": n["Message"], "Timestamp": "2016-12-13T02:00:05.000Z", "SignatureVersion": "1",
                           "Signature": "x", "SigningCertUrl": "https://x", "UnsubscribeUrl": "https://x", "MessageAttributes": {}}})
        })
        .collect();
    batch(json!({ "Records": records }))
}

fn job_keys(notifications: &[String]) -> Vec<String> {
    let mut keys: Vec<String> = notifications
        .iter()
        .map(|body| {
            let n: Value = serde_json::from_str(body).unwrap();
            CopyJob::from_json(n["Message"].as_str().unwrap())
                .unwrap()
                .source
                .key
        })
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn the_manual_event_fans_out_and_the_copier_copies_through_sqs() {
    let f = Fixture::new().await;
    for i in 0..3 {
        f.put(&format!("photos/2016/{i}.jpg"), 1000 + i, i as u8)
            .await;
    }
    f.put("photos/2016/panorama.jpg", 11 * MIB as usize, 9)
        .await;
    f.put("videos/skip-me.mp4", 10, 1).await;
    let fanout = f.fanout();

    let answer = f
        .run(&fanout, f.event("s3-fanout-manual.json"), "req-1")
        .await;
    assert_eq!(answer.run_id, "manual-req-1");
    assert_eq!(
        (
            answer.listed,
            answer.enqueued,
            answer.skipped,
            answer.complete
        ),
        (4, 4, 0, true)
    );
    assert!(answer.continuation.is_none());
    let published = f.published().await;
    assert_eq!(
        job_keys(&published),
        [
            "photos/2016/0.jpg",
            "photos/2016/1.jpg",
            "photos/2016/2.jpg",
            "photos/2016/panorama.jpg"
        ]
    );

    let reply = f
        .copier_with(true, None)
        .handle(sqs_event(&published), None)
        .await
        .unwrap();
    assert_eq!(reply, json!({"batchItemFailures": []}));
    assert_eq!(
        keys(&f.client, &f.destination).await,
        [
            "photos/2016/0.jpg",
            "photos/2016/1.jpg",
            "photos/2016/2.jpg",
            "photos/2016/panorama.jpg"
        ]
    );
    let run = f.run_record("manual-req-1").await;
    assert_eq!(
        (
            run.listed,
            run.enqueued,
            run.copied,
            run.skipped,
            run.failed
        ),
        (4, 4, 4, 0, 0)
    );
    assert_eq!(run.bytes_copied, 1000 + 1001 + 1002 + 11 * MIB);
    assert!(run.listing_complete);
    assert_eq!(run.source, format!("s3://{}/photos/", f.source));

    // Again: the small copies match by ETag in the listing; the multipart copy's ETag differs,
    // so its job asks the copier to look, and the copier finds its recorded source ETag.
    let again = f
        .run(&fanout, f.event("s3-fanout-manual.json"), "req-2")
        .await;
    assert_eq!((again.listed, again.enqueued, again.skipped), (4, 1, 3));
    let published = f.published().await;
    assert_eq!(job_keys(&published), ["photos/2016/panorama.jpg"]);
    f.copier_with(true, None)
        .handle(sqs_event(&published), None)
        .await
        .unwrap();
    let run = f.run_record("manual-req-2").await;
    assert_eq!((run.enqueued, run.copied, run.skipped), (1, 0, 4));
}

#[tokio::test]
async fn the_scheduled_event_backs_up_what_the_environment_says_through_sns() {
    let f = Fixture::new().await;
    f.put("nightly/a.txt", 10, 1).await;
    f.put("nightly/deep/b.txt", 20, 2).await;
    f.put("other/c.txt", 30, 3).await;
    let fanout = f.fanout_with(
        f.config("nightly/", "backup/2016/", true),
        unhurried(),
        None,
    );

    let answer = f
        .run(&fanout, f.event("s3-fanout-scheduled.json"), "req-s")
        .await;
    assert_eq!(
        answer.run_id,
        "scheduled-20161213T020000Z-53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa"
    );
    assert_eq!((answer.enqueued, answer.complete), (2, true));
    let published = f.published().await;
    let reply = f
        .copier_with(true, None)
        .handle(sns_event(&published), None)
        .await
        .unwrap();
    assert_eq!(reply, Value::Null);
    assert_eq!(
        keys(&f.client, &f.destination).await,
        ["backup/2016/a.txt", "backup/2016/deep/b.txt"]
    );
    let run = f.run_record(&answer.run_id).await;
    assert_eq!((run.enqueued, run.copied, run.bytes_copied), (2, 2, 30));
}

#[tokio::test]
async fn the_dry_run_event_publishes_and_copies_nothing() {
    let f = Fixture::new().await;
    for i in 0..3 {
        f.put(&format!("photos/{i}"), 100, i).await;
    }
    let answer = f
        .run(
            &f.fanout(),
            f.event("s3-fanout-manual-dry-run.json"),
            "req-d",
        )
        .await;
    assert!(answer.dry_run);
    assert_eq!(
        (
            answer.listed,
            answer.planned,
            answer.planned_bytes,
            answer.enqueued
        ),
        (3, 3, 300, 0)
    );
    assert!(f.published().await.is_empty());
    assert!(keys(&f.client, &f.destination).await.is_empty());
    let run = f.run_record("manual-req-d").await;
    assert!(run.dry_run && run.listing_complete);
    assert_eq!((run.listed, run.enqueued, run.planned_bytes), (3, 0, 300));
}

#[tokio::test]
async fn a_long_listing_continues_in_follow_up_invocations_and_publishes_each_job_once() {
    let f = Fixture::new().await;
    let expected: Vec<String> = (0..25).map(|i| format!("photos/{i:03}")).collect();
    for key in &expected {
        f.put(key, 10, 0).await;
    }
    // Four keys a page, and always "out of time" after one page.
    let budget = Budget {
        page_size: Some(4),
        reserve: Duration::from_secs(3600),
    };
    let fanout = f.fanout_with(f.config("", "", true), budget, None);
    let first_event = f.event("s3-fanout-manual.json");

    let first = f.run(&fanout, first_event.clone(), "req-c").await;
    assert_eq!((first.enqueued, first.complete), (4, false));
    let next = first.continuation.clone().expect("a continuation");
    assert_eq!(next.run_id.as_deref(), Some("manual-req-c"));
    assert_eq!(next.start_after.as_deref(), Some("photos/003"));

    // Lambda retries the first invocation (same request id): it resumes after the recorded
    // cursor instead of publishing the first page again.
    let retried = f.run(&fanout, first_event, "req-c").await;
    assert_eq!(retried.enqueued, 4);
    assert_eq!(
        retried
            .continuation
            .as_ref()
            .unwrap()
            .start_after
            .as_deref(),
        Some("photos/007")
    );

    // The original continuation arrives too, and each invocation continues the next.
    let mut event = serde_json::to_value(next).unwrap();
    let mut invocations = 2;
    loop {
        let answer = f.run(&fanout, event, &unique("req")).await;
        invocations += 1;
        assert!(invocations < 20, "the run must end");
        match answer.continuation {
            Some(next) => event = serde_json::to_value(next).unwrap(),
            None => {
                assert!(answer.complete);
                break;
            }
        }
    }
    assert_eq!(invocations, 7, "25 keys, 4 a page");
    assert_eq!(
        job_keys(&f.published().await),
        expected,
        "each key exactly once"
    );
    let run = f.run_record("manual-req-c").await;
    assert_eq!((run.listed, run.enqueued), (25, 25));
    assert!(run.listing_complete);
    assert_eq!(run.cursor.as_deref(), Some("photos/024"));

    // Without a runs table the continuation alone carries the position.
    let untracked = f.fanout_with(f.config("", "", false), budget, None);
    let mut event = f.event("s3-fanout-manual.json");
    let mut total = 0;
    for _ in 0..10 {
        let answer = f.run(&untracked, event, &unique("req")).await;
        total += answer.enqueued;
        match answer.continuation {
            Some(next) => event = serde_json::to_value(next).unwrap(),
            None => break,
        }
    }
    assert_eq!(total, 25);
    assert_eq!(job_keys(&f.published().await), expected);
}

#[tokio::test]
async fn bad_events_get_a_clear_error_and_publish_nothing() {
    let f = Fixture::new().await;
    f.put("photos/a", 10, 0).await;
    let fanout = f.fanout();
    let src = format!("s3://{}/photos/", f.source);
    let dst = format!("s3://{}/photos/", f.destination);
    let cases = [
        (json!({"source": src}), "missing field `destination`"),
        (json!({"destination": dst}), "missing field `source`"),
        (
            json!({"source": "photos/", "destination": dst}),
            "is not an S3 URL",
        ),
        (
            json!({"source": src, "destination": "s3://"}),
            "names no bucket",
        ),
        (
            json!({"source": src, "destination": dst, "modified_since": "last week"}),
            "RFC 3339",
        ),
        (
            json!({"source": src, "destination": dst, "dryrun": true}),
            "unknown field `dryrun`",
        ),
        (json!({"source": src, "destination": src}), "overlap"),
        (
            json!({"detail-type": "Scheduled Event"}),
            "scheduled event is invalid",
        ),
        (json!([1, 2]), "the event is invalid"),
    ];
    for (event, expected) in cases {
        let err = handle(&fanout, event.clone(), context("bad"))
            .await
            .expect_err(&event.to_string())
            .to_string();
        assert!(err.contains(expected), "{event}: {err}");
        assert!(err.contains("a manual event looks like"), "{event}: {err}");
    }
    assert!(f.published().await.is_empty());
}

#[tokio::test]
async fn copy_failures_are_recorded_with_the_run_or_left_for_the_dead_letter_queue() {
    let f = Fixture::new().await;
    f.put("photos/kept.jpg", 100, 1).await;
    f.put("photos/deleted.jpg", 100, 2).await;
    let answer = f
        .run(&f.fanout(), f.event("s3-fanout-manual.json"), "req-f")
        .await;
    assert_eq!(answer.enqueued, 2);
    let published = f.published().await;
    // The object disappears between the listing and the copy.
    delete(&f.client, &f.source, "photos/deleted.jpg").await;

    // Without a runs table, the failed record is retried by SQS (and then dead-lettered).
    let reply = f
        .copier_with(false, None)
        .handle(sqs_event(&published), None)
        .await
        .unwrap();
    let failures = reply["batchItemFailures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{reply}");

    // With one, it is recorded with the run and not retried.
    let reply = f
        .copier_with(true, None)
        .handle(sqs_event(&published), None)
        .await
        .unwrap();
    assert_eq!(reply, json!({"batchItemFailures": []}));
    let run = f.run_record("manual-req-f").await;
    assert_eq!(run.failed, 1);
    let failures = f.failures("manual-req-f").await;
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, "photos/deleted.jpg");
    assert!(failures[0].1.contains("no longer exists"), "{failures:?}");

    // A missing destination bucket is a failure of each job too, never a crash.
    let nowhere = f.fanout_with(f.config("", "", true), unhurried(), None);
    let event = json!({"source": format!("s3://{}/photos/", f.source), "destination": format!("s3://{}/x/", unique("no-such-bucket"))});
    let answer = f.run(&nowhere, event, "req-n").await;
    assert_eq!(answer.enqueued, 1);
    let reply = f
        .copier_with(true, None)
        .handle(sqs_event(&f.published().await), None)
        .await
        .unwrap();
    assert_eq!(reply, json!({"batchItemFailures": []}));
    let run = f.run_record("manual-req-n").await;
    assert_eq!(run.failed, 1);
    let failures = f.failures("manual-req-n").await;
    assert!(failures[0].1.contains("NoSuchBucket"), "{failures:?}");

    // A message that is not a job fails, and is retried.
    let reply = f
        .copier_with(true, None)
        .handle(batch(json!({"Records":[{"messageId":"junk","body":"{\"schema_version\": 1}","eventSource":"aws:sqs"}]})), None)
        .await
        .unwrap();
    assert_eq!(
        reply,
        json!({"batchItemFailures": [{"itemIdentifier": "junk"}]})
    );
}

#[tokio::test]
async fn the_copier_sample_events_copy_their_job() {
    let f = Fixture::new().await;
    let etag = f
        .put("photos/2016/12/13/sunrise.jpg", MIB as usize, 7)
        .await;
    let sample_etag = "8f293a2f6c19b345152f7a49bb4c643c";
    for file in ["s3-copier-sns.json", "s3-copier-sqs.json"] {
        let event: Value = serde_json::from_str(
            &f.event(file)
                .to_string()
                .replace(sample_etag, etag.trim_matches('"')),
        )
        .unwrap();
        let reply = f.copier_with(false, None).handle(batch(event), None).await;
        let reply = reply.unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            reply.is_null() || reply == json!({"batchItemFailures": []}),
            "{file}: {reply}"
        );
        f.client
            .head_object()
            .bucket(&f.destination)
            .key("photos/2016/12/13/sunrise.jpg")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{file}: not copied: {e:?}"));
        delete(&f.client, &f.destination, "photos/2016/12/13/sunrise.jpg").await;
    }
}

#[tokio::test]
async fn declared_iam_actions_cover_every_sdk_call_made() {
    let f = Fixture::new().await;
    f.put("photos/small", 100, 1).await;
    f.put("photos/large", 11 * MIB as usize, 2).await;
    let fanout_calls = CallRecorder::default();
    let copier_calls = CallRecorder::default();
    let fanout = f.fanout_with(f.config("", "", true), unhurried(), Some(&fanout_calls));
    let copier = f.copier_with(true, Some(&copier_calls));
    // A run the fanout completes itself (a dry run has no jobs): it writes the report.
    f.run(&fanout, f.event("s3-fanout-manual-dry-run.json"), "req-i0")
        .await;
    assert!(f.run_record("manual-req-i0").await.announced);
    // A dry run over an inventory: its manifest and its data file read.
    let rows = [inventory::Row::current("photos/small", 100, "\"e\"")];
    let started = f
        .run(&fanout, put_inventory(&f, &rows, 1, true).await, "req-iv")
        .await;
    let file = serde_json::to_value(&started.data_file_runs[0]).unwrap();
    assert_eq!(f.run(&fanout, file, "req-iv-0").await.planned, 1);
    for request in ["req-i1", "req-i2"] {
        f.run(&fanout, f.event("s3-fanout-manual.json"), request)
            .await;
        copier
            .handle(sqs_event(&f.published().await), None)
            .await
            .unwrap();
    }
    // A multipart copy that fails and is aborted.
    f.put("photos/larger", 11 * MIB as usize, 3).await;
    f.run(&fanout, f.event("s3-fanout-manual.json"), "req-i3")
        .await;
    let failing = f.failing_copier(true, Some(&copier_calls), Some(FailPart(2)));
    failing
        .handle(sqs_event(&f.published().await), None)
        .await
        .unwrap();
    assert_eq!(f.run_record("manual-req-i3").await.failed, 1);
    assert!(open_uploads(&f.client, &f.destination).await.is_empty());
    // A copy that reaches its deadline and goes on in continuations.
    f.put("photos/largest", 11 * MIB as usize, 4).await;
    f.run(&fanout, f.event("s3-fanout-manual.json"), "req-i4")
        .await;
    let sns = aws_sdk_sns::config::Builder::from(&f.sdk)
        .interceptor(copier_calls.clone())
        .build();
    let pausing = f
        .copier_with(true, Some(&copier_calls))
        .with_continuations(Some(JobPublisher::new(
            aws_sdk_sns::Client::from_conf(sns),
            &f.topic_arn,
        )));
    let mut jobs = f.published().await;
    while !jobs.is_empty() {
        pausing
            .handle(sqs_event(&jobs), Some(SystemTime::now()))
            .await
            .unwrap();
        jobs = f.published().await;
    }
    let run = f.run_record("manual-req-i4").await;
    assert_eq!(
        (run.copied, run.failed),
        (2, 0),
        "largest, and larger again"
    );
    // A sweep that finds a registered stale upload and aborts it.
    let id = f
        .client
        .create_multipart_upload()
        .bucket(&f.destination)
        .key("left-behind")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    fanout_copy_core::uploads::UploadRegistry::started(
        &f.ledger(),
        &f.destination,
        "left-behind",
        &id,
    )
    .await
    .unwrap();
    let swept = respond(
        &fanout,
        json!({"sweep": format!("s3://{}/", f.destination), "older_than_hours": 0}),
    )
    .await;
    assert_eq!(swept["aborted"], 1);
    // Continuous backup: an object deleted from the source, its copy deleted too.
    let mirroring = f
        .copier_with(true, Some(&copier_calls))
        .with_mirror(Some(Mirror {
            source_prefix: "photos/".into(),
            destination: Location::new(&f.destination, "photos/"),
            propagate_deletes: true,
        }));
    delete(&f.client, &f.source, "photos/2016/12/13/sunrise.jpg").await;
    let deleted = f.event("s3-copier-sqs-eventbridge-object-deleted.json");
    mirroring.handle(batch(deleted), None).await.unwrap();

    // What IAM needs beyond the calls themselves: the continuation's Invoke (not made here),
    // s3:PutObjectTagging for the tags a copy carries, and the listing of uploads that looks
    // for one whose creation answer was lost (not made here). (s3:ListBucket, which also makes
    // HEAD of a missing object a 404, is the bucket-region HeadBucket's.)
    let needs_beyond_calls: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::from([
        ("s3-fanout", BTreeSet::from(["lambda:InvokeFunction"])),
        (
            "s3-copier",
            // and sqs:ChangeMessageVisibility, which the test of failed jobs coming back makes.
            BTreeSet::from([
                "s3:PutObjectTagging",
                "s3:ListBucketMultipartUploads",
                "sqs:ChangeMessageVisibility",
            ]),
        ),
    ]);
    for (function, declared, calls) in [
        ("s3-fanout", s3_fanout::IAM_ACTIONS, &fanout_calls),
        ("s3-copier", s3_copier::IAM_ACTIONS, &copier_calls),
    ] {
        let declared: BTreeSet<&str> = declared.iter().copied().collect();
        let made: BTreeSet<String> = calls.iam_actions();
        let made: BTreeSet<&str> = made.iter().map(String::as_str).collect();
        assert_eq!(
            declared.difference(&made).copied().collect::<BTreeSet<_>>(),
            needs_beyond_calls[function],
            "{function}: declared {declared:?}, calls {:?}",
            calls.operations()
        );
        assert!(
            made.is_subset(&declared),
            "{function} calls what it does not declare: {:?}",
            made.difference(&declared).collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn a_refused_publish_entry_is_published_again_alone_or_failed_in_its_run() {
    let f = Fixture::new().await;
    for i in 0..12 {
        f.put(&format!("k{i:02}"), 10, i as u8).await;
    }
    // An archived object is listed, counted as archived, and not published.
    f.client
        .put_object()
        .bucket(&f.source)
        .key("z-cold")
        .body(bytes(10, 1).into())
        .storage_class(aws_sdk_s3::types::StorageClass::Glacier)
        .send()
        .await
        .unwrap();
    // The first call carries k00..k09 as entries 0..9: k03 is refused for now, k05 for good.
    let refuse = RefuseEntries {
        for_now: "3",
        for_good: "5",
        ..RefuseEntries::default()
    };
    let sns = aws_sdk_sns::config::Builder::from(&f.sdk)
        .interceptor(refuse.clone())
        .build();
    let fanout = Fanout::new(
        f.config("", "", true),
        ObjectStore::from_sdk(&f.sdk),
        JobPublisher::new(aws_sdk_sns::Client::from_conf(sns), &f.topic_arn),
        Some(f.ledger()),
        None,
        unhurried(),
    );
    let event = json!({"source": format!("s3://{}/", f.source), "destination": format!("s3://{}/", f.destination)});
    let answer = f.run(&fanout, event, "req-refuse").await;
    assert_eq!(
        (
            answer.listed,
            answer.enqueued,
            answer.refused,
            answer.archived,
            answer.complete
        ),
        (13, 11, 1, 1, true),
        "the page was not failed for one entry: {answer:?}"
    );
    let mut calls = refuse.calls.lock().unwrap().clone();
    calls.sort();
    assert_eq!(calls, vec![1, 2, 10], "k03 was published again, alone");
    let run = f.ledger().get("manual-req-refuse").await.unwrap().unwrap();
    assert_eq!((run.enqueued, run.failed, run.archived), (11, 1, 1));
    let failures = f.failures("manual-req-refuse").await;
    assert_eq!(failures[0].0, "k05");
    assert!(failures[0].1.contains("InvalidParameter"), "{failures:?}");
    let published = job_keys(&f.published().await);
    assert_eq!(published.iter().filter(|k| *k == "k03").count(), 2);
}

#[tokio::test]
async fn the_sweep_aborts_stale_fanout_uploads_and_leaves_fresh_ones_and_others_alone() {
    use fanout_copy_core::uploads::UploadRegistry;
    let f = Fixture::new().await;
    // A multipart copy that completes leaves nothing open and nothing registered as open.
    f.put("big.bin", 11 * MIB as usize, 3).await;
    let fanout = f.fanout();
    let run = json!({"source": format!("s3://{}/", f.source), "destination": format!("s3://{}/backup/", f.destination)});
    f.run(&fanout, run, "req-big").await;
    let jobs = f.published().await;
    assert_eq!(jobs.len(), 1);
    let answer = f
        .copier_with(true, None)
        .handle(sqs_event(&jobs), None)
        .await
        .unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]));
    assert!(open_uploads(&f.client, &f.destination).await.is_empty());
    // A copier killed mid-copy leaves its registered upload open; someone else has one too.
    let upload = |key: &'static str| {
        let client = f.client.clone();
        let bucket = f.destination.clone();
        async move {
            client
                .create_multipart_upload()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap()
                .upload_id
                .unwrap()
        }
    };
    let ours = upload("backup/killed.bin").await;
    f.ledger()
        .started(&f.destination, "backup/killed.bin", &ours)
        .await
        .unwrap();
    let theirs = upload("backup/theirs.bin").await;
    let sweep = |hours: u64| json!({"sweep": format!("s3://{}/backup/", f.destination), "older_than_hours": hours});
    // moto dates every upload 2010-11-10: a limit of a million hours makes it fresh.
    let fresh = respond(&fanout, sweep(1_000_000)).await;
    assert_eq!(fresh, json!({"aborted": 0, "fresh": 1, "others": 1}));
    let stale = respond(&fanout, sweep(0)).await;
    assert_eq!(stale, json!({"aborted": 1, "fresh": 0, "others": 1}));
    assert_eq!(
        open_uploads(&f.client, &f.destination).await,
        vec![format!("backup/theirs.bin:{theirs}")]
    );
    assert!(!f
        .ledger()
        .is_open(&f.destination, "backup/killed.bin", &ours)
        .await
        .unwrap());
    // Without the runs table, a sweep refuses: it cannot tell fanout's uploads from others'.
    let bare = f.fanout_with(f.config("", "", false), unhurried(), None);
    let refused = bare
        .respond(LambdaEvent::new(
            serde_json::from_value(sweep(0)).unwrap(),
            context("req-sweep"),
        ))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("COPY_RUNS_TABLE"), "{refused}");
}

async fn respond(fanout: &Fanout, event: Value) -> Value {
    let event = LambdaEvent::new(serde_json::from_value(event).unwrap(), context("req-sweep"));
    serde_json::to_value(fanout.respond(event).await.unwrap()).unwrap()
}

#[tokio::test]
async fn a_copy_that_cannot_finish_before_the_deadline_goes_on_in_continuations() {
    let f = Fixture::new().await;
    let len = 40 * MIB as usize;
    f.put("big/forty.bin", len, 7).await;
    let fanout = f.fanout();
    let run = json!({"source": format!("s3://{}/big/", f.source), "destination": format!("s3://{}/", f.destination)});
    f.run(&fanout, run, "req-deadline").await;
    let calls = CallRecorder::default();
    let copier = f
        .copier_with(true, Some(&calls))
        .with_continuations(Some(JobPublisher::new(
            aws_sdk_sns::Client::new(&f.sdk),
            &f.topic_arn,
        )));
    // Each invocation's deadline has already come: it copies one part, then hands on.
    let mut invocations = 0;
    let mut jobs = f.published().await;
    while !jobs.is_empty() {
        invocations += 1;
        assert!(invocations <= 20, "the copy never finished");
        let answer = copier
            .handle(sqs_event(&jobs), Some(SystemTime::now()))
            .await
            .unwrap();
        assert_eq!(answer["batchItemFailures"], json!([]));
        jobs = f.published().await;
    }
    assert_eq!(invocations, 8, "eight parts of 5 MiB, one per invocation");
    assert_eq!(
        body(&f.client, &f.destination, "forty.bin").await,
        bytes(len, 7)
    );
    assert!(open_uploads(&f.client, &f.destination).await.is_empty());
    let run = f.run_record("manual-req-deadline").await;
    assert_eq!(
        (run.copied, run.bytes_copied),
        (1, len as u64),
        "counted once, when done"
    );
    let operations = calls.operations();
    assert!(operations.contains("S3:ListParts"), "{operations:?}");
    let parts = calls.count("S3:UploadPartCopy");
    assert_eq!(parts, 8, "no part copied twice");
}

#[tokio::test]
async fn a_poison_job_is_failed_in_its_run_on_its_last_receive_and_the_run_completes() {
    let f = Fixture::new().await;
    for (i, key) in ["photos/a.jpg", "photos/poison.jpg", "photos/b.jpg"]
        .iter()
        .enumerate()
    {
        f.put(key, 1_000 + i, i as u8).await;
    }
    let answer = f
        .run(&f.fanout(), f.event("s3-fanout-manual.json"), "req-poison")
        .await;
    assert_eq!(answer.enqueued, 3);
    let jobs = f.published().await;
    let copier = f
        .failing_copier(true, None, Some(Unreachable("photos/poison.jpg".into())))
        .with_max_receives(Some(5));
    // Receives 1 to 4: the good jobs are copied, the poison job fails and is retried.
    let mut pending = jobs.clone();
    for receive in 1..=4 {
        let reply = copier
            .handle(sqs_event_received(&pending, receive), None)
            .await
            .unwrap();
        let failed = reply["batchItemFailures"].as_array().unwrap();
        assert_eq!(failed.len(), 1, "receive {receive}: {reply}");
        let index: usize = failed[0]["itemIdentifier"].as_str().unwrap()[4..]
            .parse()
            .unwrap();
        pending = vec![pending[index].clone()];
        assert!(f.completion_events().await.is_empty(), "receive {receive}");
    }
    let run = f.run_record("manual-req-poison").await;
    assert_eq!((run.copied, run.failed, run.completed_at), (2, 0, None));
    // Receive 5, the last before the dead-letter queue: it fails again, and is recorded.
    let reply = copier
        .handle(sqs_event_received(&pending, 5), None)
        .await
        .unwrap();
    assert_eq!(reply["batchItemFailures"].as_array().unwrap().len(), 1);
    let run = f.run_record("manual-req-poison").await;
    assert_eq!(
        (run.copied, run.failed, run.jobs, run.jobs_done),
        (2, 1, 3, 3)
    );
    assert!(run.completed_at.is_some() && run.announced, "{run:?}");
    let events = f.completion_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    let report = format!(
        "s3://{}/nightly/manual-req-poison/failures.jsonl",
        f.reports
    );
    for (field, expected) in [
        ("run_id", json!("manual-req-poison")),
        ("status", json!("complete")),
        ("enqueued", json!(3)),
        ("copied", json!(2)),
        ("skipped", json!(0)),
        ("failed", json!(1)),
        ("archived", json!(0)),
        ("bytes_copied", json!(1_000 + 1_002)),
        ("report", json!(report)),
    ] {
        assert_eq!(event[field], expected, "{field}: {event}");
    }
    assert!(event["seconds"].as_f64().is_some(), "{event}");
    let lines = body(
        &f.client,
        &f.reports,
        "nightly/manual-req-poison/failures.jsonl",
    )
    .await;
    let lines: Vec<Value> = String::from_utf8(lines)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["key"], "photos/poison.jpg");
    assert_eq!(lines[0]["size"], 1_001);
    assert_eq!(lines[0]["error_class"], "transient");
    assert!(
        lines[0]["message"]
            .as_str()
            .unwrap()
            .contains("dead-letter queue"),
        "{lines:?}"
    );
    // The redrive of the dead-lettered job, or a late duplicate: nothing changes, no new event.
    copier
        .handle(sqs_event_received(&pending, 1), None)
        .await
        .unwrap();
    assert_eq!(f.run_record("manual-req-poison").await.failed, 1);
    assert!(f.completion_events().await.is_empty());
}

#[tokio::test]
async fn three_thousand_objects_are_counted_exactly_and_no_ledger_item_is_hot() {
    use futures::stream::{self, StreamExt};
    const OBJECTS: usize = 3_000;
    let f = Fixture::new().await;
    stream::iter(0..OBJECTS)
        .for_each_concurrent(16, |i| {
            let f = &f;
            async move {
                put_object(
                    &f.client,
                    &f.source,
                    &format!("photos/{i:05}.jpg"),
                    vec![i as u8; 3],
                    &Carried::default(),
                )
                .await;
            }
        })
        .await;
    let calls = CallRecorder::default();
    let fanout = f.fanout_with(f.config("", "", true), unhurried(), Some(&calls));
    let answer = f
        .run(&fanout, f.event("s3-fanout-manual.json"), "req-3k")
        .await;
    assert_eq!((answer.enqueued, answer.complete), (OBJECTS as u64, true));
    let jobs = f.published().await;
    assert_eq!(jobs.len(), OBJECTS);
    let copier = f.copier_with(true, Some(&calls));
    // Batches of ten, four invocations at once; every fifteenth batch is delivered twice at
    // once, as SQS may.
    let batches: Vec<Vec<String>> = jobs.chunks(10).map(<[String]>::to_vec).collect();
    let deliveries = batches
        .iter()
        .enumerate()
        .flat_map(|(i, batch)| std::iter::repeat_n(batch, if i % 15 == 0 { 2 } else { 1 }));
    stream::iter(deliveries)
        .for_each_concurrent(4, |batch| {
            let copier = &copier;
            async move {
                let reply = copier.handle(sqs_event(batch), None).await.unwrap();
                assert_eq!(reply, json!({"batchItemFailures": []}));
            }
        })
        .await;
    let run = f.run_record("manual-req-3k").await;
    assert_eq!(
        (
            run.copied,
            run.skipped,
            run.failed,
            run.bytes_copied,
            run.jobs,
            run.jobs_done
        ),
        (
            OBJECTS as u64,
            0,
            0,
            3 * OBJECTS as u64,
            OBJECTS as u64,
            OBJECTS as u64
        ),
        "{run:?}"
    );
    assert!(run.completed_at.is_some() && run.announced, "{run:?}");
    let events = f.completion_events().await;
    assert_eq!(events.len(), 1, "one completion event: {events:?}");
    assert_eq!(events[0]["copied"], OBJECTS);
    // No item of the ledger is written more than a small bound: the run's item once a page
    // and a few times more, each of the 64 counter shards about 1/64 of the outcomes (47 here)
    // and the page transactions.
    let writes = calls.item_writes();
    let run_writes = writes["manual-req-3k"];
    let busiest = writes
        .iter()
        .filter(|(id, _)| id.starts_with("shard#manual-req-3k#"))
        .map(|(_, n)| *n)
        .max()
        .unwrap();
    let shards = writes
        .keys()
        .filter(|id| id.starts_with("shard#manual-req-3k#"))
        .count();
    println!("ledger writes: run item {run_writes}, busiest of {shards} shards {busiest}, items written {}", writes.len());
    // Its start, a page each, the claim and mark of the announcement, and the claims of the
    // jobs in flight that found the run over at the same moment (refused: one announces): at
    // most the 4 invocations × 10 jobs, whatever the number of objects.
    assert!(
        run_writes <= 1 + 3 + 2 + 4 * 10,
        "the run's item: {run_writes} writes"
    );
    assert_eq!(shards, fanout_copy_core::ledger::COUNTER_SHARDS);
    assert!(
        busiest <= 2 * OBJECTS / 64 + 3 + 20,
        "a shard took {busiest} writes"
    );
}

/// Puts an S3 Inventory report of the source where the sample inventory event names it, with
/// `rows` in `files` data files; the sample event, with `dry_run` as asked.
async fn put_inventory(f: &Fixture, rows: &[inventory::Row], files: usize, dry_run: bool) -> Value {
    let mut event = f.event("s3-fanout-inventory.json");
    event["dry_run"] = json!(dry_run);
    let manifest: Location = event["manifest"].as_str().unwrap().parse().unwrap();
    let prefix = manifest.prefix.strip_suffix("/manifest.json").unwrap();
    inventory::put_report(&f.client, &manifest.bucket, prefix, &f.source, rows, files)
        .await
        .unwrap();
    event
}

#[tokio::test]
async fn an_inventory_of_three_data_files_copies_exactly_its_current_objects_in_one_run() {
    use futures::stream::{self, StreamExt};
    const CURRENT: usize = 2_500;
    let f = Fixture::new().await;
    let current: Vec<(String, String)> = stream::iter(0..CURRENT)
        .map(|i| {
            let f = &f;
            async move {
                let key = format!("photos/{i:05} a+b é.jpg");
                let etag = put_object(
                    &f.client,
                    &f.source,
                    &key,
                    vec![i as u8; 3],
                    &Carried::default(),
                )
                .await;
                (key, etag)
            }
        })
        .buffered(16)
        .collect()
        .await;
    // Written after the report: the next report lists it, not this one.
    f.put("photos/after-the-report.jpg", 10, 1).await;
    let mut rows = Vec::new();
    for (i, (key, etag)) in current.iter().enumerate() {
        if i % 5 == 0 {
            rows.push(inventory::Row::older(key, 2));
        }
        rows.push(inventory::Row::current(key, 3, etag));
        if i % 8 == 0 {
            let deleted = format!("deleted/{i:05}.jpg");
            rows.push(inventory::Row::delete_marker(&deleted));
            rows.push(inventory::Row::older(&deleted, 7));
        }
    }
    let event = put_inventory(&f, &rows, 3, false).await;
    let fanout = f.fanout();
    let started = f.run(&fanout, event, "req-inv").await;
    assert_eq!(started.run_id, "inventory-req-inv");
    assert_eq!((started.data_files, started.complete), (3, false));
    assert_eq!(started.data_file_runs.len(), 3);
    // Each data file read by an invocation of its own, all at once.
    let answers =
        futures::future::join_all(started.data_file_runs.iter().enumerate().map(|(i, run)| {
            let (f, fanout) = (&f, &fanout);
            async move {
                f.run(
                    fanout,
                    serde_json::to_value(run).unwrap(),
                    &format!("req-file-{i}"),
                )
                .await
            }
        }))
        .await;
    assert!(
        answers
            .iter()
            .all(|a| a.complete && a.run_id == "inventory-req-inv"),
        "{answers:?}"
    );
    let listed: u64 = answers.iter().map(|a| a.listed).sum();
    let enqueued: u64 = answers.iter().map(|a| a.enqueued).sum();
    assert_eq!((listed, enqueued), (CURRENT as u64, CURRENT as u64));
    let jobs = f.published().await;
    assert_eq!(jobs.len(), CURRENT);
    let copier = f.copier_with(true, None);
    let batches: Vec<Vec<String>> = jobs.chunks(10).map(<[String]>::to_vec).collect();
    stream::iter(batches)
        .for_each_concurrent(4, |batch| {
            let copier = &copier;
            async move {
                let reply = copier.handle(sqs_event(&batch), None).await.unwrap();
                assert_eq!(reply, json!({"batchItemFailures": []}));
            }
        })
        .await;
    let run = f.run_record("inventory-req-inv").await;
    let n = CURRENT as u64;
    assert_eq!(
        (
            run.listed,
            run.enqueued,
            run.copied,
            run.skipped,
            run.failed,
            run.jobs,
            run.jobs_done
        ),
        (n, n, n, 0, 0, n, n),
        "{run:?}"
    );
    assert_eq!((run.segments, run.segments_done), (3, 3));
    assert_eq!(run.source, format!("s3://{}/", f.source));
    assert!(run.completed_at.is_some() && run.announced, "{run:?}");
    let events = f.completion_events().await;
    assert_eq!(events.len(), 1, "one completion event: {events:?}");
    assert_eq!(events[0]["copied"], CURRENT);
    let mut copied = keys(&f.client, &f.destination).await;
    copied.retain(|key| key.starts_with("from-inventory/"));
    let mut expected: Vec<String> = current
        .iter()
        .map(|(key, _)| format!("from-inventory/{key}"))
        .collect();
    expected.sort();
    copied.sort();
    assert_eq!(
        copied, expected,
        "exactly the current objects of the report"
    );
}

#[tokio::test]
async fn bad_inventories_are_refused_before_any_job() {
    let f = Fixture::new().await;
    let fanout = f.fanout();
    // No manifest where the event says.
    let event = f.event("s3-fanout-inventory.json");
    let err = handle(&fanout, event.clone(), context("req-none"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("GetObject") && err.to_string().contains("manifest.json"),
        "{err}"
    );
    // A Parquet report.
    let manifest: Location = event["manifest"].as_str().unwrap().parse().unwrap();
    let parquet = json!({"sourceBucket": f.source, "destinationBucket": "arn:aws:s3:::x", "version": "2016-11-30",
                         "fileFormat": "Parquet", "fileSchema": "message s3.inventory { required binary bucket (UTF8); }", "files": []});
    f.client
        .put_object()
        .bucket(&manifest.bucket)
        .key(&manifest.prefix)
        .body(parquet.to_string().into_bytes().into())
        .send()
        .await
        .unwrap();
    let err = handle(&fanout, event.clone(), context("req-parquet"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Parquet") && err.contains("CSV inventories only"),
        "{err}"
    );
    // A report of the destination bucket itself.
    let mut overlapping = event.clone();
    overlapping["destination"] = json!(format!("s3://{}/copy/", f.source));
    put_inventory(&f, &[inventory::Row::current("a", 1, "\"e\"")], 1, true).await;
    let err = handle(&fanout, overlapping, context("req-overlap"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("overlap"), "{err}");
    // An event with a field that is not an inventory's.
    let mut unknown = event;
    unknown["source"] = json!("s3://x/");
    let err = handle(&fanout, unknown, context("req-unknown"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown field") && err.contains("an inventory event looks like"),
        "{err}"
    );
    assert!(f.published().await.is_empty());
}

/// The queue's messages as the SQS event source hands them to the function: each with its
/// receipt handle, receive count and queue ARN.
async fn receive_as_event(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Option<Batch> {
    use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
    let arn = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let received = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .unwrap();
    let records: Vec<Value> = (received.messages().iter())
        .map(|m| {
            let count = (m.attributes().and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount)))
                .cloned()
                .unwrap_or_else(|| "1".into());
            json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
                   "attributes": {"ApproximateReceiveCount": count}, "messageAttributes": {},
                   "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": "us-east-1"})
        })
        .collect();
    (!records.is_empty()).then(|| batch(json!({ "Records": records })))
}

#[tokio::test]
async fn a_job_that_fails_for_now_comes_back_in_seconds_not_after_the_visibility_timeout() {
    let f = Fixture::new().await;
    let sqs = aws_sdk_sqs::Client::new(&f.sdk);
    sqs.set_queue_attributes()
        .queue_url(&f.queue)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "60",
        )
        .send()
        .await
        .unwrap();
    f.put("photos/2016/throttled.jpg", 100, 1).await;
    f.run(&f.fanout(), f.event("s3-fanout-manual.json"), "req-soon")
        .await;
    let first = receive_as_event(&sqs, &f.queue).await.expect("the job");
    // S3 cannot be reached: the job fails for now, and comes back after a second.
    let unreachable = Unreachable("photos/2016/throttled.jpg".into());
    let copier = f
        .failing_copier(true, None, Some(unreachable))
        .with_redelivery(Some(fanout_sqs::Redelivery::new(sqs.clone())))
        .with_retry_base(Duration::from_secs(1));
    let event = s3_copier::CopierEvent::Jobs(first);
    let answer = copier.handle_event(event, None).await.unwrap();
    assert_eq!(
        fanout_common::events::failed_ids(&answer).len(),
        1,
        "{answer}"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let again = receive_as_event(&sqs, &f.queue)
        .await
        .expect("the job, again in seconds");
    let records = again.sqs_records();
    assert_eq!(records[0].receive_count, 2, "{records:?}");
    // Without the redelivery it would have waited the queue's 60 s: a second failure, not
    // brought back, is not there 2.5 s later.
    let plain = f.failing_copier(
        true,
        None,
        Some(Unreachable("photos/2016/throttled.jpg".into())),
    );
    plain
        .handle_event(s3_copier::CopierEvent::Jobs(again), None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        receive_as_event(&sqs, &f.queue).await.is_none(),
        "hidden for the visibility timeout"
    );
    // A working copier copies it once it is back (here: made visible at once).
    let sqs_records = records;
    fanout_sqs::Redelivery::new(sqs.clone())
        .delay_failures(
            &sqs_records,
            &json!({"batchItemFailures": [{"itemIdentifier": sqs_records[0].id}]}),
            |_| Duration::ZERO,
        )
        .await;
    let last = receive_as_event(&sqs, &f.queue)
        .await
        .expect("the job, made visible");
    f.copier_with(true, None)
        .handle_event(s3_copier::CopierEvent::Jobs(last), None)
        .await
        .unwrap();
    assert_eq!(f.run_record("manual-req-soon").await.copied, 1);
}

#[tokio::test]
async fn the_pre_traffic_hooks_probe_sweeps_and_aborts_nothing() {
    use pre_traffic_hook::{judge, probe, Answer, Config, Kind};
    let f = Fixture::new().await;
    let destination = format!("s3://{}/", f.destination);
    let mut vars: Vec<(&str, &str)> = [
        "SLACK_COUNTER_FUNCTION",
        "SNS_MULTIPLIER_FUNCTION",
        "SLACK_REPLIER_FUNCTION",
        "SNS_LOGGER_FUNCTION",
        "S3_FANOUT_FUNCTION",
        "S3_COPIER_FUNCTION",
    ]
    .map(|var| (var, "f"))
    .to_vec();
    vars.push(("BACKUP_SOURCE", "s3://photos/"));
    vars.push(("BACKUP_DESTINATION", &destination));
    let config = Config::from_vars(&Vars::from_pairs(vars)).unwrap();
    // An upload fanout registered an hour ago: stale for a nightly sweep, not for the probe's.
    let id = f
        .client
        .create_multipart_upload()
        .bucket(&f.destination)
        .key("in-progress")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    fanout_copy_core::uploads::UploadRegistry::started(
        &f.ledger(),
        &f.destination,
        "in-progress",
        &id,
    )
    .await
    .unwrap();
    let answer = respond(&f.fanout(), probe(Kind::S3Fanout, &config, 7)).await;
    assert_eq!(
        judge(Kind::S3Fanout, &Answer::Returned(answer.clone())),
        Ok(()),
        "{answer}"
    );
    assert_eq!(open_uploads(&f.client, &f.destination).await.len(), 1);
}
