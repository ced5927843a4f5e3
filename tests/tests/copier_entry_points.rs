//! s3-copier's entry points beside copy jobs, against the emulator, with the sample events in
//! `events/`: S3 Batch Operations invocations of schema 1.0 and 2.0, answered task by task as
//! S3 expects; and S3's Object Created and Object Deleted events from EventBridge (continuous
//! backup), with deletions propagated or not.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_lambda_events::event::s3::batch_job::S3BatchJobEvent;
use fanout_common::Vars;
use fanout_copy_core::copier::unlimited;
use fanout_copy_core::memory::time_for;
use fanout_copy_core::size::MIB;
use fanout_copy_core::Copier;
use fanout_copy_dynamodb::RunTable;
use fanout_copy_s3::S3Store as ObjectStore;
use fanout_sns::JobPublisher;
use fanout_tests::copy::{
    body, bytes, carried, create_bucket, create_runs_table, delete, open_uploads, put_object, s3,
    sample_event, Carried,
};
use fanout_tests::Emulator;
use s3_copier::CopierEvent;
use serde_json::{json, Value};

type CopyHandler = s3_copier::CopyHandler<ObjectStore, RunTable, JobPublisher>;

const PIER: &str = "photos/2016/12/13/sunrise at the pier+1.jpg";

struct Fixture {
    sdk: SdkConfig,
    client: aws_sdk_s3::Client,
    source: String,
    destination: String,
    table: String,
}

impl Fixture {
    async fn new() -> Fixture {
        let sdk = Emulator::shared().sdk_config().await;
        Fixture {
            client: s3(&sdk),
            source: create_bucket(&sdk, "batch-source").await,
            destination: create_bucket(&sdk, "batch-backup").await,
            table: create_runs_table(&sdk).await,
            sdk,
        }
    }

    /// s3-copier's handler as its main builds it, with 5 MiB parts above 5 MiB, and
    /// `BATCH_DESTINATION` the whole destination bucket.
    fn handler(&self) -> CopyHandler {
        self.handler_with(&[])
    }

    /// The same, with more of the environment.
    fn handler_with(&self, more: &[(&str, &str)]) -> CopyHandler {
        let destination = format!("s3://{}/", self.destination);
        let mut vars = vec![
            ("COPY_MULTIPART_THRESHOLD", "5MiB"),
            ("COPY_PART_SIZE", "5MiB"),
            ("COPY_RUNS_TABLE", self.table.as_str()),
            ("BATCH_DESTINATION", destination.as_str()),
        ];
        vars.extend_from_slice(more);
        let config = s3_copier::Config::from_vars(&Vars::from_pairs(vars)).unwrap();
        let ledger = RunTable::new(aws_sdk_dynamodb::Client::new(&self.sdk), &self.table);
        let copier = Copier::new(
            ObjectStore::new(s3(&self.sdk)),
            config.options,
            config.concurrency,
        )
        .with_registry(std::sync::Arc::new(ledger.clone()));
        CopyHandler::new(copier, Some(ledger))
            .with_batch_destination(config.batch_destination)
            .with_mirror(config.mirror)
    }

    /// A sample event from `events/` as it is, naming this fixture's buckets.
    fn sample(&self, file: &str) -> Value {
        sample_event(file, &self.source, &self.destination)
    }

    async fn exists(&self, bucket: &str, key: &str) -> bool {
        (self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await)
            .is_ok()
    }

    /// A sample event from `events/`, naming this fixture's buckets, with these tasks' keys
    /// (encoded as the schema does) in place of the sample's one task.
    fn event(&self, file: &str, keys: &[&str]) -> Value {
        let mut event = self.sample(file);
        let sample = event["tasks"][0].clone();
        let v1 = event["invocationSchemaVersion"] == "1.0";
        event["tasks"] = (keys.iter().enumerate())
            .map(|(i, key)| {
                let mut task = sample.clone();
                task["taskId"] = json!(format!("task-{i}"));
                task["s3Key"] = json!(if v1 {
                    form_encoded(key)
                } else {
                    key.to_string()
                });
                task
            })
            .collect();
        event
    }

    async fn put(&self, key: &str, len: usize, seed: u8) {
        put_object(
            &self.client,
            &self.source,
            key,
            bytes(len, seed),
            &Carried::sample(),
        )
        .await;
    }
}

/// A key as S3 Batch Operations 1.0 sends it.
fn form_encoded(key: &str) -> String {
    let mut out = String::new();
    for byte in key.bytes() {
        match byte {
            b' ' => out.push('+'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' => {
                out.push(byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

fn batch_event(value: Value) -> S3BatchJobEvent {
    match serde_json::from_value::<CopierEvent>(value).unwrap() {
        CopierEvent::BatchOperations(event) => event,
        other => panic!("not read as a Batch Operations invocation: {other:?}"),
    }
}

/// Each result's code and string, by task id.
fn results_of(answer: &Value) -> Vec<(String, String, String)> {
    (answer["results"].as_array().unwrap().iter())
        .map(|r| {
            (
                r["taskId"].as_str().unwrap().to_owned(),
                r["resultCode"].as_str().unwrap().to_owned(),
                r["resultString"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn invoke(handler: &CopyHandler, event: Value) -> Value {
    let event = serde_json::from_value::<CopierEvent>(event).unwrap();
    handler.handle_event(event, None).await.unwrap()
}

#[tokio::test]
async fn schema_1_0_and_2_0_jobs_copy_each_task_and_say_what_failed() {
    let f = Fixture::new().await;
    f.put("photos/plain.jpg", 1000, 1).await;
    f.put(PIER, 2000, 2).await;
    f.put("photos/large.bin", 12 * MIB as usize, 3).await;
    let handler = f.handler();
    let keys = [
        "photos/plain.jpg",
        PIER,
        "photos/missing.jpg",
        "photos/large.bin",
    ];
    for (file, destination) in [
        // 1.0: BATCH_DESTINATION, keys kept whole.
        ("s3-copier-batch-operations-1.0.json", "photos/"),
        // 2.0: the user arguments' destination, source_prefix stripped.
        ("s3-copier-batch-operations-2.0.json", "batch/"),
    ] {
        let event = f.event(file, &keys);
        let answer = invoke(&handler, event.clone()).await;
        assert_eq!(
            answer["invocationSchemaVersion"], event["invocationSchemaVersion"],
            "{file}"
        );
        assert_eq!(answer["invocationId"], event["invocationId"], "{file}");
        assert_eq!(answer["treatMissingKeysAs"], "PermanentFailure", "{file}");
        let results = results_of(&answer);
        let codes: Vec<&str> = results.iter().map(|(_, code, _)| code.as_str()).collect();
        assert_eq!(
            codes,
            ["Succeeded", "Succeeded", "PermanentFailure", "Succeeded"],
            "{file}: {results:?}"
        );
        assert_eq!(
            results
                .iter()
                .map(|(id, ..)| id.as_str())
                .collect::<Vec<_>>(),
            ["task-0", "task-1", "task-2", "task-3"]
        );
        assert!(results[2].2.contains("NoSuchKey"), "{file}: {results:?}");
        for (key, len, seed) in [
            ("plain.jpg", 1000, 1),
            ("sunrise at the pier+1.jpg", 2000, 2),
            ("large.bin", 12 * MIB as usize, 3),
        ] {
            let key = if key.starts_with("sunrise") {
                format!("{destination}2016/12/13/{key}")
            } else {
                format!("{destination}{key}")
            };
            assert_eq!(
                body(&f.client, &f.destination, &key).await,
                bytes(len, seed),
                "{file}: {key}"
            );
            assert_eq!(
                carried(&f.client, &f.destination, &key).await,
                Carried::sample(),
                "{file}: {key}"
            );
        }
        // The same invocation again (S3 retries a task it had no answer for): in place.
        let again = results_of(&invoke(&handler, event).await);
        assert!(
            again[0].2.starts_with("already in place")
                && again[3].2.starts_with("already in place"),
            "{file}: {again:?}"
        );
    }
    assert!(open_uploads(&f.client, &f.destination).await.is_empty());
}

#[tokio::test]
async fn a_copy_cut_short_by_the_deadline_is_a_temporary_failure_and_the_retry_finishes_it() {
    let f = Fixture::new().await;
    f.put("photos/huge.bin", 23 * MIB as usize, 9).await;
    let handler = f.handler();
    let event = batch_event(f.event("s3-copier-batch-operations-2.0.json", &["photos/huge.bin"]));
    // Time for two parts to start; then the deadline is a second away.
    let short = time_for(2, Duration::from_secs(1));
    let first = handler.batch_operations_within(&event, &short).await;
    let first = serde_json::to_value(first).unwrap();
    assert_eq!(
        first["results"][0]["resultCode"], "TemporaryFailure",
        "{first}"
    );
    assert_eq!(open_uploads(&f.client, &f.destination).await.len(), 1);
    assert!(f
        .client
        .head_object()
        .bucket(&f.destination)
        .key("batch/huge.bin")
        .send()
        .await
        .is_err());
    // S3 retries the task: the copy goes on from its two parts.
    let retry =
        serde_json::to_value(handler.batch_operations_within(&event, &unlimited).await).unwrap();
    assert_eq!(retry["results"][0]["resultCode"], "Succeeded", "{retry}");
    assert_eq!(
        body(&f.client, &f.destination, "batch/huge.bin").await,
        bytes(23 * MIB as usize, 9)
    );
    assert!(open_uploads(&f.client, &f.destination).await.is_empty());
}

#[tokio::test]
async fn a_job_with_no_destination_or_an_unknown_schema_fails_every_task_for_good() {
    let f = Fixture::new().await;
    f.put("photos/plain.jpg", 10, 1).await;
    let handler = f.handler().with_batch_destination(None);
    let v1 = f.event("s3-copier-batch-operations-1.0.json", &["photos/plain.jpg"]);
    let answer = results_of(&invoke(&handler, v1.clone()).await);
    assert_eq!(answer[0].1, "PermanentFailure");
    assert!(answer[0].2.contains("BATCH_DESTINATION"), "{answer:?}");
    let mut v3 = v1;
    v3["invocationSchemaVersion"] = json!("3.0");
    let answer = results_of(&invoke(&f.handler(), v3).await);
    assert_eq!(answer[0].1, "PermanentFailure");
    assert!(answer[0].2.contains("not supported"), "{answer:?}");
    assert!(fanout_tests::copy::keys(&f.client, &f.destination)
        .await
        .is_empty());
}

const SUNRISE: &str = "photos/2016/12/13/sunrise.jpg";
const CREATED: &str = "s3-copier-sqs-eventbridge-object-created.json";
const DELETED: &str = "s3-copier-sqs-eventbridge-object-deleted.json";

#[tokio::test]
async fn an_object_created_is_copied_at_once_and_a_deletion_is_propagated_only_when_asked() {
    let f = Fixture::new().await;
    f.put(SUNRISE, 6 * MIB as usize, 4).await;
    let copy = "mirror/2016/12/13/sunrise.jpg";
    for propagate in ["false", "true"] {
        let handler = f.handler_with(&[
            ("DEST_BUCKET", f.destination.as_str()),
            ("SOURCE_PREFIX", "photos/"),
            ("DEST_PREFIX", "mirror/"),
            ("PROPAGATE_DELETES", propagate),
        ]);
        f.put(SUNRISE, 6 * MIB as usize, 4).await;
        let answer = invoke(&handler, f.sample(CREATED)).await;
        assert_eq!(answer, json!({"batchItemFailures": []}), "{propagate}");
        assert_eq!(
            body(&f.client, &f.destination, copy).await,
            bytes(6 * MIB as usize, 4)
        );
        assert_eq!(
            carried(&f.client, &f.destination, copy).await,
            Carried::sample()
        );
        // Something of the destination's that no event names.
        put_object(
            &f.client,
            &f.destination,
            "kept/other.jpg",
            bytes(10, 1),
            &Carried::sample(),
        )
        .await;
        delete(&f.client, &f.source, SUNRISE).await;
        let answer = invoke(&handler, f.sample(DELETED)).await;
        assert_eq!(answer, json!({"batchItemFailures": []}), "{propagate}");
        assert_eq!(
            !f.exists(&f.destination, copy).await,
            propagate == "true",
            "{propagate}"
        );
        assert!(f.exists(&f.destination, "kept/other.jpg").await);
    }
    // Deleted, then written again before the deletion's event came: the copy stays.
    let handler = f.handler_with(&[
        ("DEST_BUCKET", f.destination.as_str()),
        ("SOURCE_PREFIX", "photos/"),
        ("DEST_PREFIX", "mirror/"),
        ("PROPAGATE_DELETES", "true"),
    ]);
    f.put(SUNRISE, 100, 5).await;
    invoke(&handler, f.sample(CREATED)).await;
    let answer = invoke(&handler, f.sample(DELETED)).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert!(f.exists(&f.destination, copy).await);
    assert!(open_uploads(&f.client, &f.destination).await.is_empty());
}

#[tokio::test]
async fn events_outside_the_source_prefix_or_without_a_destination_are_not_lost() {
    let f = Fixture::new().await;
    f.put(SUNRISE, 100, 6).await;
    // Outside SOURCE_PREFIX: nothing copied, the record done.
    let elsewhere = f.handler_with(&[
        ("DEST_BUCKET", f.destination.as_str()),
        ("SOURCE_PREFIX", "videos/"),
    ]);
    let answer = invoke(&elsewhere, f.sample(CREATED)).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert!(fanout_tests::copy::keys(&f.client, &f.destination)
        .await
        .is_empty());
    // No DEST_BUCKET: the record fails, so that it is retried and dead-lettered, not dropped.
    let unset = f.handler();
    let answer = invoke(&unset, f.sample(CREATED)).await;
    assert_eq!(
        answer["batchItemFailures"].as_array().map(Vec::len),
        Some(1),
        "{answer}"
    );
    // An object gone before its event came: dropped with its reason, not retried.
    let handler = f.handler_with(&[("DEST_BUCKET", f.destination.as_str())]);
    delete(&f.client, &f.source, SUNRISE).await;
    let answer = invoke(&handler, f.sample(CREATED)).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert!(fanout_tests::copy::keys(&f.client, &f.destination)
        .await
        .is_empty());
}

/// The PreTraffic hook's configuration, for this fixture's buckets.
fn hook_config(f: &Fixture) -> pre_traffic_hook::Config {
    let (source, destination) = (
        format!("s3://{}/", f.source),
        format!("s3://{}/", f.destination),
    );
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
    vars.push(("BACKUP_SOURCE", &source));
    vars.push(("BACKUP_DESTINATION", &destination));
    pre_traffic_hook::Config::from_vars(&Vars::from_pairs(vars)).unwrap()
}

#[tokio::test]
async fn the_pre_traffic_hooks_probe_is_handled_and_deletes_nothing() {
    use pre_traffic_hook::{judge, probe, Answer, Kind};
    let f = Fixture::new().await;
    let config = hook_config(&f);
    // Whatever the destination holds, also under the hook's own prefix, stays.
    for key in ["photos/kept.jpg", "fanout-pre-traffic-hook/kept"] {
        put_object(
            &f.client,
            &f.destination,
            key,
            bytes(10, 1),
            &Carried::sample(),
        )
        .await;
    }
    for (prefix, propagate) in [("photos/", "false"), ("", "false"), ("", "true")] {
        let handler = f.handler_with(&[
            ("DEST_BUCKET", f.destination.as_str()),
            ("SOURCE_PREFIX", prefix),
            ("PROPAGATE_DELETES", propagate),
        ]);
        let answer = invoke(&handler, probe(Kind::S3Copier, &config, 7)).await;
        let verdict = judge(Kind::S3Copier, &Answer::Returned(answer.clone()));
        assert_eq!(verdict, Ok(()), "{prefix:?} {propagate}: {answer}");
    }
    for key in ["photos/kept.jpg", "fanout-pre-traffic-hook/kept"] {
        assert!(f.exists(&f.destination, key).await, "{key}");
    }
}
