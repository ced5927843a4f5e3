//! Hostile and odd input against a real AWS emulator: tokens that are no words, one Slack
//! message arriving three ways, message subtypes, forged messages for the multiplier (refused
//! and dead-lettered at once into a real SQS queue), the legacy plain-text format delivered
//! twice over raw SQS, and timestamps at the edges of i64.

use aws_config::SdkConfig;
use fanout_common::events::Batch;
use fanout_sns::WordsPublisher;
use fanout_sqs::SqsDeadLetters;
use fanout_tests::words::{
    count_of, create_words_table, drain_published, receive_all, subscribed_queue,
    topic_with_probe_queue,
};
use fanout_tests::{unique, Emulator};
use fanout_words_core::slack::{sign, Verifier};
use fanout_words_core::tokenize::{MAX_WORD_BYTES, MAX_WORD_CHARS};
use fanout_words_dynamodb::WordStore;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request};
use serde_json::{json, Value};
use slack_counter::NO_RETRY_HEADER;

const TOKEN: &str = "hostile-test-token";
const SECRET: &str = "hostile-test-secret";

type Counter = slack_counter::Counter<WordStore, Option<WordsPublisher>>;

/// A words table, a topic the counter publishes to (with a queue that shows what it published),
/// and a dead-letter queue for the multiplier.
struct Stack {
    sdk: SdkConfig,
    table: String,
    topic_arn: String,
    published_queue: String,
    dead_letter_queue: String,
}

impl Stack {
    async fn new() -> Stack {
        let sdk = Emulator::shared().sdk_config().await;
        let table = create_words_table(&sdk).await;
        let (topic_arn, published_queue) = topic_with_probe_queue(&sdk).await;
        let dead_letter_queue = sqs(&sdk)
            .create_queue()
            .queue_name(unique("multiplier-dlq"))
            .send()
            .await
            .expect("create the dead-letter queue")
            .queue_url
            .expect("a queue URL");
        Stack {
            sdk,
            table,
            topic_arn,
            published_queue,
            dead_letter_queue,
        }
    }

    fn store(&self) -> WordStore {
        WordStore::new(aws_sdk_dynamodb::Client::new(&self.sdk), &self.table)
    }

    fn counter(&self, verifier: Verifier) -> Counter {
        let publisher = WordsPublisher::new(aws_sdk_sns::Client::new(&self.sdk), &self.topic_arn);
        Counter::new(verifier, self.store(), Some(publisher))
    }

    fn multiplier(&self) -> sns_multiplier::Multiplier<WordStore, SqsDeadLetters> {
        let dead_letters = SqsDeadLetters::new(sqs(&self.sdk), &self.dead_letter_queue);
        sns_multiplier::Multiplier::new(self.store(), 10).with_dead_letters(dead_letters)
    }

    async fn count(&self, word: &str) -> Option<i64> {
        count_of(&aws_sdk_dynamodb::Client::new(&self.sdk), &self.table, word)
            .await
            .expect("the count reads")
    }

    /// Every key in the table: words, and the records of applied messages (`#…`).
    async fn keys(&self) -> Vec<String> {
        let scan = aws_sdk_dynamodb::Client::new(&self.sdk)
            .scan()
            .table_name(&self.table)
            .send()
            .await
            .expect("scan the words table");
        scan.items()
            .iter()
            .filter_map(|item| item.get("word")?.as_s().ok().cloned())
            .collect()
    }

    /// The words messages the counter published since the last call.
    async fn published(&self) -> Vec<Value> {
        drain_published(&self.sdk, &self.published_queue).await
    }

    /// What the dead-letter queue holds: (body, `reason` attribute).
    async fn dead_letters(&self) -> Vec<(String, String)> {
        let mut letters = Vec::new();
        for message in receive_all(&self.sdk, &self.dead_letter_queue).await {
            let reason = message
                .message_attributes()
                .and_then(|attributes| attributes.get(fanout_sqs::REASON_ATTRIBUTE))
                .and_then(|reason| reason.string_value())
                .unwrap_or_default()
                .to_owned();
            letters.push((message.body().unwrap_or_default().to_owned(), reason));
        }
        letters
    }
}

fn sqs(sdk: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(sdk)
}

/// An SQS event whose records carry `bodies` raw (as with raw message delivery).
fn sqs_event(bodies: &[String]) -> Batch {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| json!({"messageId": format!("record-{i}"), "body": body, "eventSource": "aws:sqs"}))
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("an SQS event")
}

/// The words messages `published` as the multiplier's queue would carry them.
fn as_sqs_event(published: &[Value]) -> Batch {
    let bodies: Vec<String> = published.iter().map(Value::to_string).collect();
    sqs_event(&bodies)
}

fn post(content_type: &str, body: &str) -> Request {
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("/slack")
        .header("content-type", content_type)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn webhook(text: &str, timestamp: &str) -> Request {
    let form = serde_urlencoded::to_string([
        ("token", TOKEN),
        ("team_id", "T0HOSTILE"),
        ("channel_id", "C0HOSTILE"),
        ("timestamp", timestamp),
        ("user_id", "U0PERSON"),
        ("text", text),
        ("trigger_word", "count"),
    ])
    .unwrap();
    post("application/x-www-form-urlencoded", &form)
}

/// An Events API callback with the given event (and the app's bot user among its
/// authorizations, as Slack sends it).
fn event(event_id: &str, event: Value) -> Request {
    let body = json!({"token": TOKEN, "team_id": "T0HOSTILE", "api_app_id": "A0APP", "type": "event_callback",
        "event_id": event_id, "event": event, "authorizations": [{"user_id": "U0APP", "is_bot": true}]});
    post("application/json", &body.to_string())
}

async fn call(counter: &Counter, request: Request) -> (StatusCode, Value) {
    let response = counter.handle(request).await;
    let body = serde_json::from_slice(response.body().as_ref()).expect("every reply is JSON");
    (response.status(), body)
}

#[tokio::test]
async fn tokens_that_are_no_words_are_dropped_and_the_rest_counts() {
    let stack = Stack::new().await;
    let counter = stack.counter(Verifier::new(None, Some(TOKEN.into())));
    let hex = "0123456789abcdef".repeat(150);
    let katakana = "ア".repeat(700);
    let wide = format!("{}e", "é".repeat(1024));
    assert_eq!(
        (hex.len(), katakana.chars().count(), wide.len()),
        (2400, 700, 2049)
    );
    let text = format!("keep {hex} these {katakana} words {wide} here");

    let (status, reply) = call(&counter, webhook(&text, "1700000001.000100")).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(
        reply,
        json!({"text": "keep: 1, these: 1, words: 1, here: 1"})
    );

    let published = stack.published().await;
    assert_eq!(published.len(), 1);
    assert_eq!(
        published[0]["words"],
        json!({"keep": 1, "these": 1, "words": 1, "here": 1})
    );
    let answer = stack
        .multiplier()
        .handle(as_sqs_event(&published))
        .await
        .unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    for word in ["keep", "these", "words", "here"] {
        assert_eq!(stack.count(word).await, Some(11), "{word}");
    }
    for key in stack.keys().await {
        assert!(
            key.chars().count() <= MAX_WORD_CHARS && key.len() <= MAX_WORD_BYTES
                || key.starts_with('#'),
            "stored: {key:.40}…"
        );
    }
    assert_eq!(
        stack.keys().await.len(),
        4 + 2,
        "four words and two records"
    );
    assert!(
        stack.dead_letters().await.is_empty(),
        "nothing dead-lettered"
    );
}

#[tokio::test]
async fn one_message_arriving_as_message_mention_and_webhook_counts_once() {
    let stack = Stack::new().await;
    let counter = stack.counter(Verifier::new(None, Some(TOKEN.into())));
    let (ts, text) = ("1700000002.000200", "<@U0APP> counting this once");
    let slack_event = |kind: &str| json!({"type": kind, "channel": "C0HOSTILE", "user": "U0PERSON", "text": text, "ts": ts, "event_ts": ts});
    let requests = [
        event("Ev0MESSAGE", slack_event("message")),
        event("Ev0MENTION", slack_event("app_mention")),
        webhook(text, ts),
    ];
    for request in requests {
        let (status, reply) = call(&counter, request).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        assert_eq!(reply["text"], "counting: 1, this: 1, once: 1", "{reply}");
    }
    for word in ["counting", "this", "once"] {
        assert_eq!(stack.count(word).await, Some(1), "{word} counted once");
    }
    // Every delivery publishes the same message (consumers apply it once).
    let published = stack.published().await;
    assert_eq!(published.len(), 3, "published by each delivery");
    for message in &published {
        assert_eq!(message["message_id"], format!("T0HOSTILE:C0HOSTILE:{ts}"));
    }
}

#[tokio::test]
async fn counted_subtypes_count_and_others_are_acknowledged_only() {
    let stack = Stack::new().await;
    let counter = stack.counter(Verifier::new(None, Some(TOKEN.into())));
    let message = |subtype: Option<&str>, text: &str, ts: &str| {
        let mut event = json!({"type": "message", "channel": "C0HOSTILE", "user": "U0PERSON", "text": text, "ts": ts});
        if let Some(subtype) = subtype {
            event["subtype"] = json!(subtype);
        }
        event
    };
    for (i, subtype) in ["file_share", "thread_broadcast", "me_message"]
        .into_iter()
        .enumerate()
    {
        let word = subtype.replace('_', "");
        let ts = format!("1700000003.00000{i}");
        let (status, reply) = call(
            &counter,
            event(&format!("Ev{i}"), message(Some(subtype), &word, &ts)),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{subtype}: {reply}");
        assert_eq!(stack.count(&word).await, Some(1), "{subtype} is counted");
    }
    let mut changed = message(Some("message_changed"), "", "1700000003.000010");
    changed["message"] =
        json!({"type": "message", "user": "U0PERSON", "text": "edited", "ts": "1700000003.000001"});
    let mut bot = message(Some("bot_message"), "beep", "1700000003.000012");
    bot["bot_id"] = json!("B0BOT");
    let mut bot_without_subtype = message(None, "boop", "1700000003.000013");
    bot_without_subtype["bot_id"] = json!("B0BOT");
    let mut own = message(None, "mine", "1700000003.000014");
    own["user"] = json!("U0APP");
    let ignored = [
        changed,
        message(Some("message_deleted"), "", "1700000003.000011"),
        bot,
        bot_without_subtype,
        own,
        message(
            Some("channel_join"),
            "<@U0PERSON> has joined",
            "1700000003.000015",
        ),
    ];
    for (i, ignored) in ignored.into_iter().enumerate() {
        let (status, reply) = call(&counter, event(&format!("EvIgnored{i}"), ignored)).await;
        assert_eq!((status, reply), (StatusCode::OK, json!({"ok": true})));
    }
    for word in ["edited", "beep", "boop", "mine", "joined"] {
        assert_eq!(stack.count(word).await, None, "{word} is not counted");
    }
    assert_eq!(
        stack.published().await.len(),
        3,
        "only the counted ones are published"
    );
}

#[tokio::test]
async fn forged_multiplier_messages_are_refused_at_once_into_the_dead_letter_queue() {
    let stack = Stack::new().await;
    let forged = |id: &str, words: String| {
        format!(
            r#"{{"schema_version":1,"message_id":"{id}","source":"events_api","team_id":"T1","channel_id":"C1","user_id":"U1","text":"forged","words":{words}}}"#
        )
    };
    let bad = vec![
        forged("m-hash", r##"{"innocent":1,"#count#T1:C1:1.0":1}"##.into()),
        forged("m-empty", r#"{"innocent":1,"":1}"#.into()),
        forged(
            "m-3kb",
            format!(r#"{{"innocent":1,"{}":1}}"#, "x".repeat(3 * 1024)),
        ),
        forged(
            "m-huge",
            r#"{"innocent":1,"many":18446744073709551615}"#.into(),
        ),
    ];
    let good = forged("m-good", r#"{"fine":2}"#.into());

    // Without a dead-letter queue, a refused message stays a batch item failure, for the
    // queue's redrive policy.
    let no_queue = sns_multiplier::Multiplier::new(stack.store(), 10);
    let answer = no_queue.handle(sqs_event(&bad)).await.unwrap();
    assert_eq!(
        answer["batchItemFailures"].as_array().unwrap().len(),
        bad.len()
    );

    let mut batch = bad.clone();
    batch.push(good);
    let answer = stack.multiplier().handle(sqs_event(&batch)).await.unwrap();
    assert_eq!(
        answer,
        json!({"batchItemFailures": []}),
        "refused records are handled, not retried"
    );
    assert_eq!(stack.count("fine").await, Some(20));
    assert_eq!(
        stack.count("innocent").await,
        None,
        "nothing of a refused message is written"
    );
    let mut keys = stack.keys().await;
    keys.sort();
    assert_eq!(keys, ["#multiply#m-good#0", "fine"]);

    let mut letters = stack.dead_letters().await;
    letters.sort();
    let mut expected = bad.clone();
    expected.sort();
    assert_eq!(
        letters
            .iter()
            .map(|(body, _)| body.clone())
            .collect::<Vec<_>>(),
        expected,
        "each refused message, as delivered"
    );
    for (body, reason) in &letters {
        let expected = if body.contains("m-hash") {
            "starts with '#'"
        } else if body.contains("m-empty") {
            "is empty"
        } else if body.contains("m-3kb") {
            "3072 bytes long"
        } else {
            "occurs 18446744073709551615 times"
        };
        assert!(reason.contains(expected), "{reason}");
    }
}

#[tokio::test]
async fn the_plain_text_format_delivered_twice_over_raw_sqs_is_applied_once() {
    let stack = Stack::new().await;
    let sns = aws_sdk_sns::Client::new(&stack.sdk);
    let queue = subscribed_queue(&stack.sdk, &stack.topic_arn, true).await;
    for text in ["echo legacy echo", "another legacy"] {
        sns.publish()
            .topic_arn(&stack.topic_arn)
            .message(text)
            .send()
            .await
            .unwrap();
    }
    let received = receive_all(&stack.sdk, &queue).await;
    assert_eq!(received.len(), 2);
    // SNS delivers at least once: a duplicate is the same body from the same sender, in an SQS
    // message of its own.
    let record = |message: &aws_sdk_sqs::types::Message, message_id: String| {
        let attributes: serde_json::Map<String, Value> = message
            .attributes()
            .into_iter()
            .flatten()
            .map(|(name, value)| (name.as_str().to_owned(), json!(value)))
            .collect();
        assert!(
            !message.body().unwrap_or_default().starts_with('{'),
            "raw delivery: the text itself, no SNS envelope"
        );
        json!({"messageId": message_id, "body": message.body(), "attributes": attributes, "eventSource": "aws:sqs"})
    };
    let mut records: Vec<Value> = received
        .iter()
        .map(|m| record(m, m.message_id().unwrap().to_owned()))
        .collect();
    let first = &received[0];
    records.push(record(first, "duplicate-sqs-message-id".into()));
    assert_ne!(records[0]["messageId"], records[2]["messageId"]);

    let multiplier = stack.multiplier();
    for half in [&records[..2], &records[2..]] {
        let event: Batch = serde_json::from_value(json!({ "Records": half })).unwrap();
        let answer = multiplier.handle(event).await.unwrap();
        assert_eq!(answer, json!({"batchItemFailures": []}));
    }
    assert_eq!(
        stack.count("echo").await,
        Some(20),
        "2 occurrences x 10, once"
    );
    assert_eq!(
        stack.count("legacy").await,
        Some(20),
        "10 for each of the two messages"
    );
    assert_eq!(stack.count("another").await, Some(10));
    assert!(stack.dead_letters().await.is_empty());
}

#[tokio::test]
async fn extreme_timestamps_are_a_clean_refusal() {
    let overflow_panics = std::panic::catch_unwind(|| std::hint::black_box(i64::MIN) - 1).is_err();
    assert!(
        overflow_panics,
        "this test means something only with overflow checks: run it in a debug build"
    );
    let stack = Stack::new().await;
    let counter = stack.counter(Verifier::new(Some(SECRET.into()), None));
    let body =
        json!({"type": "event_callback", "team_id": "T0HOSTILE", "event": {"type": "message",
        "channel": "C0HOSTILE", "user": "U0PERSON", "text": "overflow", "ts": "1.0"}})
        .to_string();
    let huge = "9".repeat(4096);
    let negative_huge = format!("-{huge}");
    for timestamp in [
        "-9223372036854775808",
        "9223372036854775807",
        "-9223372036854775807",
        "9223372036854775808",
        huge.as_str(),
        negative_huge.as_str(),
        "0",
        "",
    ] {
        let request = lambda_http::http::Request::builder()
            .method("POST")
            .header("content-type", "application/json")
            .header("x-slack-request-timestamp", timestamp)
            .header(
                "x-slack-signature",
                sign(SECRET, timestamp, body.as_bytes()),
            )
            .body(Body::from(body.clone()))
            .unwrap();
        let response = counter.handle(request).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{timestamp:.30}"
        );
        assert_eq!(response.headers()[NO_RETRY_HEADER], "1", "{timestamp:.30}");
    }
    assert_eq!(stack.count("overflow").await, None);
    assert!(stack.published().await.is_empty());
}
