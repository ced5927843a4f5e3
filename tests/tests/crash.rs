//! Exactly once through a kill -9: the real slack-counter binary, under the Runtime API
//! stand-in, is killed while one of its requests is held at a gate in front of the emulator
//! (before the write reached DynamoDB, or after it was done but before its answer came back),
//! and the same Slack request is then delivered to a fresh process. Every word must end with
//! exactly its count, the message must have been published, and the multiplier (fed what was
//! published, twice) must add its share exactly once. The same for the real s3-copier, killed
//! in the middle of a multipart copy: the job delivered again resumes its upload, and no upload
//! is left open.

use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fanout_common::events::Batch;
use fanout_copy_core::job::{CopyJob, DestinationObject, SourceObject, SCHEMA_VERSION};
use fanout_copy_core::ledger::RunLedger;
use fanout_copy_core::size::MIB;
use fanout_copy_dynamodb::RunTable;
use fanout_tests::copy::{
    body, bytes, create_bucket, create_runs_table, open_uploads, put_object, s3, Carried,
};
use fanout_tests::gate::{Gate, Hold};
use fanout_tests::runtime_api::RuntimeApi;
use fanout_tests::words::{count_of, create_words_table, drain, topic_with_probe_queue};
use fanout_tests::{built_binary, Emulator};
use fanout_words_dynamodb::WordStore;
use serde_json::{json, Value};

const TOKEN: &str = "crash-token";
/// Distinct words in the message: three chunks of at most 99.
const WORDS: usize = 250;

/// An HTTP API event carrying an outgoing-webhook post of `text`.
fn event(text: &str, timestamp: &str) -> Bytes {
    let body = serde_urlencoded::to_string([
        ("token", TOKEN),
        ("team_id", "T0CRASH"),
        ("channel_id", "C0CRASH"),
        ("timestamp", timestamp),
        ("user_id", "U0CRASH"),
        ("text", text),
    ])
    .unwrap();
    let event = json!({
        "version": "2.0", "routeKey": "POST /slack", "rawPath": "/slack", "rawQueryString": "",
        "headers": {"content-type": "application/x-www-form-urlencoded"},
        "requestContext": {"accountId": "123456789012", "apiId": "crash", "domainName": "crash.example",
            "domainPrefix": "crash", "http": {"method": "POST", "path": "/slack", "protocol": "HTTP/1.1",
            "sourceIp": "203.0.113.7", "userAgent": "Slackbot 1.0"}, "requestId": timestamp,
            "routeKey": "POST /slack", "stage": "$default", "time": "14/Nov/2023:22:13:20 +0000",
            "timeEpoch": 1700000000000u64},
        "body": body, "isBase64Encoded": false
    });
    Bytes::from(event.to_string())
}

/// slack-counter under `api`, talking to AWS at `endpoint`.
fn start_counter(api: &RuntimeApi, endpoint: &str, table: &str, topic_arn: &str) -> Child {
    let binary = built_binary("slack-counter");
    api.function_command(&binary, "slack-counter")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("WORDS_TABLE", table)
        .env("WORDS_TOPIC_ARN", topic_arn)
        .env("SLACK_VERIFICATION_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("slack-counter starts")
}

async fn crash_then_redeliver(operation: &'static str, nth: usize, hold: Hold, timestamp: &str) {
    let emulator = Emulator::shared();
    let sdk = emulator.sdk_config().await;
    let table = create_words_table(&sdk).await;
    let (topic_arn, queue) = topic_with_probe_queue(&sdk).await;
    let words: Vec<String> = (0..WORDS).map(|i| format!("k{i}")).collect();
    // Every word twice, so that a double count or a lost one both show.
    let text = format!("{} {}", words.join(" "), words.join(" "));
    let event = event(&text, timestamp);

    // The first process is killed with the gate holding its request.
    let gate = Gate::start(&emulator.endpoint, operation, nth, hold)
        .await
        .unwrap();
    kill_when_held(&gate, &event, |api| {
        start_counter(api, &gate.url(), &table, &topic_arn)
    })
    .await;

    // Slack's retry (or the next delivery) reaches a fresh process.
    let outcome = deliver_to_fresh(event, |api| {
        start_counter(api, &emulator.endpoint, &table, &topic_arn)
    })
    .await;
    let outcome = outcome.expect("the retry is answered");
    let answer: Value = serde_json::from_slice(&outcome.body).unwrap();
    assert_eq!(
        answer["statusCode"], 200,
        "{operation} #{nth} {hold:?}: {answer}"
    );

    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    for word in &words {
        let count = count_of(&dynamodb, &table, word).await.unwrap();
        assert_eq!(
            count,
            Some(2),
            "{word} after a kill at {operation} #{nth} {hold:?}"
        );
    }
    let published = drain(&sdk, &queue).await;
    assert!(
        !published.is_empty(),
        "never published ({operation} #{nth} {hold:?})"
    );

    // The multiplier applies what was published exactly once, even delivered twice.
    let multiplier = sns_multiplier::Multiplier::new(WordStore::new(dynamodb.clone(), &table), 10);
    for _ in 0..2 {
        let records: Vec<Value> = published
            .iter()
            .enumerate()
            .map(|(i, n)| json!({"messageId": format!("sqs-{i}"), "body": n, "eventSource": "aws:sqs"}))
            .collect();
        let batch: Batch = serde_json::from_value(json!({ "Records": records })).unwrap();
        let answer = multiplier.handle(batch).await.unwrap();
        assert_eq!(answer, json!({"batchItemFailures": []}));
    }
    for word in &words {
        let count = count_of(&dynamodb, &table, word).await.unwrap();
        assert_eq!(count, Some(22), "{word}: 2 + 2 x 10, once");
    }
}

#[tokio::test]
async fn killed_before_its_second_chunk_reached_dynamodb() {
    crash_then_redeliver(
        "TransactWriteItems",
        2,
        Hold::BeforeForwarding,
        "1700000100.000001",
    )
    .await;
}

#[tokio::test]
async fn killed_after_its_second_chunk_was_committed_but_before_the_answer() {
    crash_then_redeliver(
        "TransactWriteItems",
        2,
        Hold::AfterAnswer,
        "1700000100.000002",
    )
    .await;
}

#[tokio::test]
async fn killed_after_counting_while_publishing() {
    crash_then_redeliver("Publish", 1, Hold::BeforeForwarding, "1700000100.000003").await;
}

/// sns-multiplier killed mid-batch: a batch of five words messages (through SQS, as the stack
/// delivers them), the third message's write committed and its answer held when the process
/// dies; the whole batch is delivered again to a fresh process.
#[tokio::test]
async fn the_multiplier_killed_mid_batch_applies_each_message_once() {
    let emulator = Emulator::shared();
    let sdk = emulator.sdk_config().await;
    let table = create_words_table(&sdk).await;
    let records: Vec<Value> = (0..5)
        .map(|i| {
            let message = json!({"schema_version": 1, "message_id": format!("T0:C0:17000002.{i:06}"),
                "source": "outgoing_webhook", "team_id": "T0", "channel_id": "C0", "user_id": "U0",
                "text": format!("batch m{i}"), "words": {"batch": 1, format!("m{i}"): 1}});
            json!({"messageId": format!("sqs-{i}"), "body": message.to_string(), "eventSource": "aws:sqs"})
        })
        .collect();
    let event = Bytes::from(json!({ "Records": records }).to_string());
    let binary = built_binary("sns-multiplier");
    let start = |api: &RuntimeApi, endpoint: &str| {
        api.function_command(&binary, "sns-multiplier")
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("WORDS_TABLE", &table)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sns-multiplier starts")
    };

    let gate = Gate::start(
        &emulator.endpoint,
        "TransactWriteItems",
        3,
        Hold::AfterAnswer,
    )
    .await
    .unwrap();
    kill_when_held(&gate, &event, |api| start(api, &gate.url())).await;

    let outcome = deliver_to_fresh(event, |api| start(api, &emulator.endpoint)).await;
    let answer: Value = serde_json::from_slice(&outcome.expect("answered").body).unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    assert_eq!(
        count_of(&dynamodb, &table, "batch").await.unwrap(),
        Some(50)
    );
    for i in 0..5 {
        let word = format!("m{i}");
        assert_eq!(
            count_of(&dynamodb, &table, &word).await.unwrap(),
            Some(10),
            "{word}"
        );
    }
}

/// s3-copier under `api`, talking to AWS at `endpoint`, copying one part at a time.
fn start_copier(api: &RuntimeApi, endpoint: &str, runs_table: &str) -> Child {
    let binary = built_binary("s3-copier");
    api.function_command(&binary, "s3-copier")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("COPY_RUNS_TABLE", runs_table)
        .env("COPY_MULTIPART_THRESHOLD", "5MiB")
        .env("COPY_PART_SIZE", "5MiB")
        .env("COPY_CONCURRENCY", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("s3-copier starts")
}

#[tokio::test]
async fn a_copier_killed_mid_multipart_copy_resumes_on_redelivery_and_leaves_no_upload() {
    let emulator = Emulator::shared();
    let sdk = emulator.sdk_config().await;
    let (source, destination) = (
        create_bucket(&sdk, "crash-src").await,
        create_bucket(&sdk, "crash-dst").await,
    );
    let runs = create_runs_table(&sdk).await;
    let client = s3(&sdk);
    let len = 22 * MIB as usize;
    let etag = put_object(
        &client,
        &source,
        "big.bin",
        bytes(len, 5),
        &Carried::default(),
    )
    .await;
    let job = CopyJob {
        schema_version: SCHEMA_VERSION,
        run_id: "crash-run".into(),
        source: SourceObject {
            bucket: source.clone(),
            key: "big.bin".into(),
            size: len as u64,
            etag,
        },
        destination: DestinationObject {
            bucket: destination.clone(),
            key: "big.bin".into(),
        },
        check_destination: false,
        resume: None,
    };
    let event = Bytes::from(
        json!({"Records": [{"messageId": "m-1", "body": job.to_json(), "eventSource": "aws:sqs",
            "attributes": {"ApproximateReceiveCount": "1"}}]})
        .to_string(),
    );

    // Killed while its third part (of five) is held: two are in the upload.
    let gate = Gate::start(
        &emulator.endpoint,
        "UploadPartCopy",
        3,
        Hold::BeforeForwarding,
    )
    .await
    .unwrap();
    kill_when_held(&gate, &event, |api| start_copier(api, &gate.url(), &runs)).await;
    assert_eq!(open_uploads(&client, &destination).await.len(), 1);

    // SQS delivers the job again, to a fresh process.
    let outcome = deliver_to_fresh(event, |api| start_copier(api, &emulator.endpoint, &runs)).await;
    let answer: Value = serde_json::from_slice(&outcome.expect("answered").body).unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert_eq!(body(&client, &destination, "big.bin").await, bytes(len, 5));
    assert!(
        open_uploads(&client, &destination).await.is_empty(),
        "the upload the killed copier left was resumed and completed"
    );
    let ledger = RunTable::new(aws_sdk_dynamodb::Client::new(&sdk), &runs);
    let run = ledger.get("crash-run").await.unwrap().unwrap();
    assert_eq!((run.copied, run.failed), (1, 0));
}

/// Starts a process under a Runtime API of its own, hands it `event`, and kills it (kill -9)
/// as soon as `gate` holds the request it waits for.
async fn kill_when_held(gate: &Gate, event: &Bytes, start: impl FnOnce(&RuntimeApi) -> Child) {
    let api = Arc::new(RuntimeApi::start().await.unwrap());
    let mut doomed = start(&api);
    let invocation = {
        let (api, event) = (api.clone(), event.clone());
        tokio::spawn(async move { api.invoke(event, Duration::from_secs(60)).await })
    };
    let held = tokio::time::timeout(Duration::from_secs(30), gate.held()).await;
    doomed.kill().expect("kill -9");
    doomed.wait().unwrap();
    invocation.abort();
    held.expect("the request to hold never came");
}

/// Hands `event` to a fresh process and returns how it went.
async fn deliver_to_fresh(
    event: Bytes,
    start: impl FnOnce(&RuntimeApi) -> Child,
) -> Result<fanout_tests::runtime_api::Outcome, fanout_tests::runtime_api::InvokeError> {
    let api = RuntimeApi::start().await.unwrap();
    let mut fresh = start(&api);
    let outcome = api.invoke(event, Duration::from_secs(60)).await;
    let _ = fresh.kill();
    fresh.wait().unwrap();
    outcome
}

/// Found by fuzzing (docs/reliability.md): lambda_http panics turning an event whose `Host`
/// header no URL can hold into a request (an ALB passes the client's header on). The runtime's
/// panic layer makes it an invocation error; the real binary then serves the next request.
#[tokio::test]
async fn a_host_header_no_url_can_hold_is_an_invocation_error_and_the_next_request_is_served() {
    let sdk = Emulator::shared().sdk_config().await;
    let table = create_words_table(&sdk).await;
    let (topic_arn, _queue) = topic_with_probe_queue(&sdk).await;
    let api = RuntimeApi::start().await.unwrap();
    let mut counter = start_counter(&api, &Emulator::shared().endpoint, &table, &topic_arn);
    let body = format!("token={TOKEN}&channel_id=C0ALB&timestamp=1.000001&text=alb+words");
    let alb = json!({
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/fanout/1"}},
        "httpMethod": "POST", "path": "/slack", "queryStringParameters": {},
        "headers": {"host": "a[b.example", "content-type": "application/x-www-form-urlencoded"},
        "body": body, "isBase64Encoded": false
    });
    let refused = api
        .invoke(Bytes::from(alb.to_string()), Duration::from_secs(60))
        .await
        .expect("answered");
    assert!(
        refused.is_error,
        "{:?}",
        String::from_utf8_lossy(&refused.body)
    );
    let served = api
        .invoke(event("alb words", "2.000001"), Duration::from_secs(60))
        .await
        .expect("answered");
    let answer: Value = serde_json::from_slice(&served.body).unwrap();
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert!(
        counter.try_wait().unwrap().is_none(),
        "the process is still running"
    );
    let _ = counter.kill();
    counter.wait().unwrap();
}
