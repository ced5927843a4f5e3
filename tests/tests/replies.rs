//! Replies people see: an Events API message's counts posted in its Slack thread exactly once,
//! against moto (the words table, the topic and its queue) and a stand-in Slack Web API on a
//! free port. Through Slack's retries, the message and the app_mention of the same message,
//! racing deliveries, a rate limit, a token Slack refuses, and a poster killed with -9 after
//! Slack took its post but before it heard back.

use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fanout_common::events::Batch;
use fanout_slack_web::SlackApi as WebApi;
use fanout_tests::runtime_api::RuntimeApi;
use fanout_tests::slack_api::{Answer, SlackApi};
use fanout_tests::words::{create_words_table, drain, topic_with_probe_queue};
use fanout_tests::{built_binary, Emulator};
use fanout_words_core::slack::{sign, Verifier};
use fanout_words_core::store::WordCountStore;
use fanout_words_dynamodb::WordStore;
use lambda_http::{Body, Request};
use serde_json::{json, Value};

const SECRET: &str = "replies-signing-secret";
const BOT_TOKEN: &str = "xoxb-replies-test";
const LEASE: Duration = Duration::from_secs(30);

type Replier = slack_replier::Replier<WordStore, WebApi>;
type Counter = slack_counter::Counter<WordStore, Option<fanout_sns::WordsPublisher>>;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A signed Events API request of a `message` or `app_mention` event.
fn event_request(kind: &str, text: &str, ts: &str) -> Request {
    let body = json!({
        "type": "event_callback", "team_id": "T1",
        "authorizations": [{"user_id": "UAPP", "is_bot": true}],
        "event": {"type": kind, "user": "U1", "channel": "C1", "text": text, "ts": ts}
    })
    .to_string();
    let timestamp = now().to_string();
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("/slack")
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", &timestamp)
        .header(
            "x-slack-signature",
            sign(SECRET, &timestamp, body.as_bytes()),
        )
        .body(Body::from(body))
        .unwrap()
}

/// An SQS event of these queue bodies, as the replier's queue would deliver them.
fn sqs_event(bodies: &[String]) -> Batch {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| json!({"messageId": format!("m{i}"), "body": body, "eventSource": "aws:sqs"}))
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

struct Fixture {
    sdk: aws_config::SdkConfig,
    table: String,
    topic_arn: String,
    queue: String,
    slack: SlackApi,
}

impl Fixture {
    async fn new() -> Fixture {
        let sdk = Emulator::shared().sdk_config().await;
        let table = create_words_table(&sdk).await;
        let (topic_arn, queue) = topic_with_probe_queue(&sdk).await;
        let slack = SlackApi::start(BOT_TOKEN).await.unwrap();
        Fixture {
            sdk,
            table,
            topic_arn,
            queue,
            slack,
        }
    }

    fn store(&self) -> WordStore {
        WordStore::new(aws_sdk_dynamodb::Client::new(&self.sdk), &self.table)
    }

    /// slack-counter, publishing to the fixture's topic.
    fn counter(&self, verifier: Verifier) -> Counter {
        slack_counter::Counter::new(
            verifier,
            self.store(),
            Some(fanout_sns::WordsPublisher::new(
                aws_sdk_sns::Client::new(&self.sdk),
                &self.topic_arn,
            )),
        )
    }

    fn replier(&self, token: &str) -> Replier {
        Replier::new(
            self.store(),
            Some(WebApi::new(&self.slack.url(), token)),
            LEASE,
        )
    }

    /// A words message for the replier, its words counted first (as the counter would have).
    async fn counted_message(&self, ts: &str, words: &[&str]) -> String {
        let deltas: Vec<(String, i64)> = words.iter().map(|w| (w.to_string(), 1)).collect();
        self.store()
            .apply_chunk(&format!("#test#{ts}"), &deltas, Duration::from_secs(60))
            .await
            .unwrap();
        let counts: serde_json::Map<String, Value> =
            words.iter().map(|w| (w.to_string(), json!(1))).collect();
        json!({"schema_version": 1, "message_id": format!("T1:C1:{ts}"), "source": "events_api",
            "team_id": "T1", "channel_id": "C1", "user_id": "U1", "text": words.join(" "),
            "words": counts, "thread_ts": ts})
        .to_string()
    }
}

#[tokio::test]
async fn a_message_and_its_mention_retried_three_times_and_raced_get_one_reply_in_the_thread() {
    let f = Fixture::new().await;
    let counter = f.counter(Verifier::new(Some(SECRET.into()), None));
    let ts = "1700000000.000100";
    for _slack_retry in 0..3 {
        for (kind, text) in [
            ("message", "awsadvent some words"),
            ("app_mention", "<@UAPP> awsadvent some words"),
        ] {
            let response = counter.handle(event_request(kind, text, ts)).await;
            assert_eq!(response.status(), 200);
        }
    }
    let published = drain(&f.sdk, &f.queue).await;
    assert_eq!(published.len(), 6, "every delivery publishes");
    // Two pollers take the six deliveries at once.
    let (first, second) = (f.replier(BOT_TOKEN), f.replier(BOT_TOKEN));
    let (a, b) = tokio::join!(
        first.handle(sqs_event(&published[..3])),
        second.handle(sqs_event(&published[3..]))
    );
    // A delivery that met the other's running claim is retried, as SQS would.
    for answer in [a.unwrap(), b.unwrap()] {
        let failed: Vec<String> = answer["batchItemFailures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
            .collect();
        let again: Vec<String> = failed
            .iter()
            .map(|id| published[id.trim_start_matches('m').parse::<usize>().unwrap()].clone())
            .collect();
        if !again.is_empty() {
            let retried = first.handle(sqs_event(&again)).await.unwrap();
            assert_eq!(retried, json!({"batchItemFailures": []}));
        }
    }
    let posts = f.slack.posts();
    assert_eq!(posts.len(), 1, "{:?}", f.slack.calls());
    assert_eq!(posts[0].channel, "C1");
    assert_eq!(posts[0].thread_ts.as_deref(), Some(ts));
    assert_eq!(posts[0].text, "awsadvent: 1, some: 1, words: 1");
    assert_eq!(
        posts[0].metadata,
        json!({"event_type": "fanout_counts", "event_payload": {"message_id": format!("T1:C1:{ts}")}})
    );
}

/// "@fanout top 3": Slack ignores the Events API answer, so the command's answer is posted in
/// the message's thread by slack-replier; the channel's `message` event of it counts nothing.
#[tokio::test]
async fn a_command_in_a_mention_is_answered_in_the_thread() {
    let f = Fixture::new().await;
    f.counted_message("1700000000.000050", &["leader", "leader2"])
        .await;
    let counter = f.counter(Verifier::new(Some(SECRET.into()), None));
    let ts = "1700000000.000600";
    for kind in ["message", "app_mention", "app_mention"] {
        let response = counter
            .handle(event_request(kind, "<@UAPP> top 3", ts))
            .await;
        assert_eq!(response.status(), 200);
    }
    let published = drain(&f.sdk, &f.queue).await;
    assert_eq!(
        published.len(),
        2,
        "each mention delivery publishes its answer"
    );
    // One delivery at a time, as a second one meeting the first's claim would be retried.
    for delivery in &published {
        let answer = f
            .replier(BOT_TOKEN)
            .handle(sqs_event(std::slice::from_ref(delivery)))
            .await
            .unwrap();
        assert_eq!(answer, json!({"batchItemFailures": []}));
    }
    let posts = f.slack.posts();
    assert_eq!(posts.len(), 1, "{:?}", f.slack.calls());
    assert_eq!(posts[0].thread_ts.as_deref(), Some(ts));
    assert!(posts[0].text.starts_with("1. leader"), "{}", posts[0].text);
    assert_eq!(
        f.store().counts(&["top".into()]).await.unwrap().get("top"),
        None
    );
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_and_the_reply_posted_once() {
    let f = Fixture::new().await;
    let message = f.counted_message("1700000000.000200", &["patience"]).await;
    f.slack.then(Answer::RateLimited(1));
    let started = Instant::now();
    let answer = f
        .replier(BOT_TOKEN)
        .handle(sqs_event(&[message]))
        .await
        .unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        f.slack.calls(),
        ["chat.postMessage 429", "chat.postMessage"]
    );
    assert_eq!(f.slack.posts().len(), 1);
}

#[tokio::test]
async fn a_token_slack_refuses_is_not_retried_and_breaks_nothing_else() {
    let f = Fixture::new().await;
    let message = f.counted_message("1700000000.000300", &["refused"]).await;
    let replier = f.replier("xoxb-revoked");
    for _delivery in 0..2 {
        let answer = replier
            .handle(sqs_event(std::slice::from_ref(&message)))
            .await
            .unwrap();
        assert_eq!(
            answer,
            json!({"batchItemFailures": []}),
            "handled, not retried"
        );
    }
    assert_eq!(f.slack.calls(), ["chat.postMessage invalid_auth"]);
    assert!(f.slack.posts().is_empty());
    // Another message with a good token is replied to.
    let other = f.counted_message("1700000000.000301", &["fine"]).await;
    f.replier(BOT_TOKEN)
        .handle(sqs_event(&[other]))
        .await
        .unwrap();
    assert_eq!(f.slack.posts().len(), 1);
}

/// slack-replier under `api`, its claims leased for 1 s.
fn start_replier(api: &RuntimeApi, f: &Fixture) -> Child {
    api.function_command(&built_binary("slack-replier"), "slack-replier")
        .env("AWS_ENDPOINT_URL", &Emulator::shared().endpoint)
        .env("WORDS_TABLE", &f.table)
        .env("SLACK_BOT_TOKEN", BOT_TOKEN)
        .env("SLACK_API_URL", f.slack.url())
        .env("SLACK_REPLY_LEASE_SECONDS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("slack-replier starts")
}

/// The real binary is killed with -9 after Slack took its post and before the answer came back;
/// the redelivery finds the reply in the thread and posts nothing more.
#[tokio::test]
async fn a_poster_killed_after_slack_took_its_post_is_not_followed_by_a_second_post() {
    let f = Fixture::new().await;
    let message = f.counted_message("1700000000.000400", &["survivor"]).await;
    let event = Bytes::from(
        json!({"Records": [{"messageId": "m0", "body": message, "eventSource": "aws:sqs"}]})
            .to_string(),
    );
    f.slack.then(Answer::PostAndHold);
    let api = Arc::new(RuntimeApi::start().await.unwrap());
    let mut doomed = start_replier(&api, &f);
    let invocation = {
        let (api, event) = (api.clone(), event.clone());
        tokio::spawn(async move { api.invoke(event, Duration::from_secs(60)).await })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while f.slack.posts().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    doomed.kill().expect("kill -9");
    doomed.wait().unwrap();
    invocation.abort();
    assert_eq!(
        f.slack.posts().len(),
        1,
        "the post reached Slack before the kill"
    );

    // The lease (1 s) runs out; SQS delivers the message again, to a fresh process.
    // (Leases are kept in whole seconds: a 1-second lease has run out 2 seconds on.)
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let api = RuntimeApi::start().await.unwrap();
    let mut fresh = start_replier(&api, &f);
    let outcome = api.invoke(event, Duration::from_secs(60)).await;
    let _ = fresh.kill();
    fresh.wait().unwrap();
    let answer: Value = serde_json::from_slice(&outcome.unwrap().body).unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert_eq!(f.slack.posts().len(), 1, "{:?}", f.slack.calls());
    assert_eq!(
        f.slack.calls(),
        ["chat.postMessage held", "conversations.replies"]
    );
}

/// A slash command whose counting outlasts its deadline (here 0) is answered at once and handed
/// to slack-replier with its response_url; the replier finishes the counting (once, however
/// often the message is delivered) and posts the counts there, to the channel.
#[tokio::test]
async fn a_slow_slash_command_is_acknowledged_at_once_and_answered_at_its_response_url() {
    let f = Fixture::new().await;
    let counter = f
        .counter(Verifier::new(None, Some("token".into())))
        .with_command_deadline(Duration::ZERO);
    let response_url = f.slack.response_url("T1/1/slow");
    let body = serde_urlencoded::to_string([
        ("token", "token"),
        ("team_id", "T1"),
        ("channel_id", "C1"),
        ("user_id", "U1"),
        ("command", "/wordcount"),
        ("text", "slow slow words"),
        ("trigger_id", "1.2.slow"),
        ("response_url", response_url.as_str()),
    ])
    .unwrap();
    let request = lambda_http::http::Request::builder()
        .method("POST")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    let response = counter.handle(request).await;
    assert_eq!(response.status(), 200);
    let answer: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert_eq!(answer["response_type"], "ephemeral", "{answer}");
    assert!(
        answer["text"].as_str().unwrap().starts_with("Counting"),
        "{answer}"
    );

    let published = drain(&f.sdk, &f.queue).await;
    assert_eq!(published.len(), 1);
    let calls = fanout_tests::iam::CallRecorder::default();
    let recorded = aws_sdk_dynamodb::config::Builder::from(&f.sdk)
        .interceptor(calls.clone())
        .build();
    let replier = Replier::new(
        WordStore::new(aws_sdk_dynamodb::Client::from_conf(recorded), &f.table),
        Some(WebApi::new(&f.slack.url(), BOT_TOKEN)),
        LEASE,
    );
    for _delivery in 0..2 {
        let answer = replier.handle(sqs_event(&published)).await.unwrap();
        assert_eq!(answer, json!({"batchItemFailures": []}));
    }
    // Another message's threaded reply, so that every call the replier makes is recorded.
    let threaded = f.counted_message("1700000000.000700", &["recorded"]).await;
    replier.handle(sqs_event(&[threaded])).await.unwrap();
    let mut made = calls.iam_actions();
    made.insert("ssm:GetParameter".into()); // at init, for SLACK_BOT_TOKEN_PARAM
    let declared: std::collections::BTreeSet<String> = slack_replier::IAM_ACTIONS
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(
        made, declared,
        "slack-replier's IAM_ACTIONS are exactly what it calls"
    );
    let counts = f
        .store()
        .counts(&["slow".into(), "words".into()])
        .await
        .unwrap();
    assert_eq!((counts["slow"], counts["words"]), (2, 1), "counted once");
    let responses = f.slack.responses();
    assert_eq!(responses.len(), 1, "{:?}", f.slack.calls());
    assert_eq!(responses[0].0, "/response/T1/1/slow");
    assert_eq!(
        responses[0].1,
        json!({"response_type": "in_channel", "text": "slow: 2, words: 1"})
    );
    assert_eq!(
        f.slack.posts().len(),
        1,
        "no threaded reply for the slash command: only the other message's"
    );
}
