//! The word-count pub/sub against a real AWS emulator: slack-counter, sns-multiplier and
//! sns-logger driven through their handlers with the real AWS SDK.

use aws_config::SdkConfig;
use fanout_common::events::Batch;
use fanout_sns::WordsPublisher as Publisher;
use fanout_tests::words::{count_of, create_words_table, drain, topic_with_probe_queue};
use fanout_tests::Emulator;
use fanout_words_core::slack::{sign, Verifier};
use fanout_words_core::store::WordCountStore;
use fanout_words_dynamodb::WordStore;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request};
use serde_json::{json, Value};

type Counter = slack_counter::Counter<WordStore, Option<Publisher>>;
type Multiplier = sns_multiplier::Multiplier<WordStore>;

/// A typed SNS or SQS event, as the Lambda runtime would deserialize it.
fn batch(event: Value) -> Batch {
    serde_json::from_value(event).expect("an SNS or SQS event")
}

const TOKEN: &str = "test-verification-token";
const SECRET: &str = "test-signing-secret";

struct Fixture {
    sdk: SdkConfig,
    table: String,
    topic_arn: String,
    probe_queue: String,
}

impl Fixture {
    async fn new() -> Fixture {
        let sdk = Emulator::shared().sdk_config().await;
        let table = create_words_table(&sdk).await;
        let (topic_arn, probe_queue) = topic_with_probe_queue(&sdk).await;
        Fixture {
            sdk,
            table,
            topic_arn,
            probe_queue,
        }
    }

    fn store(&self) -> WordStore {
        WordStore::new(aws_sdk_dynamodb::Client::new(&self.sdk), &self.table)
    }

    fn counter_with(&self, verifier: Verifier, topic_arn: Option<&str>) -> Counter {
        let publisher =
            topic_arn.map(|arn| Publisher::new(aws_sdk_sns::Client::new(&self.sdk), arn));
        Counter::new(verifier, self.store(), publisher)
    }

    fn counter(&self) -> Counter {
        self.counter_with(
            Verifier::new(None, Some(TOKEN.into())),
            Some(&self.topic_arn),
        )
    }

    fn multiplier(&self) -> Multiplier {
        Multiplier::new(self.store(), 10)
    }

    async fn count(&self, word: &str) -> Option<i64> {
        let dynamodb = aws_sdk_dynamodb::Client::new(&self.sdk);
        count_of(&dynamodb, &self.table, word)
            .await
            .expect("read a count")
    }

    /// Every item in the table whose key is a word (not an "applied once" record).
    async fn word_items(&self) -> usize {
        let scan = aws_sdk_dynamodb::Client::new(&self.sdk)
            .scan()
            .table_name(&self.table)
            .send()
            .await
            .unwrap();
        scan.items()
            .iter()
            .filter(|item| !item["word"].as_s().unwrap().starts_with('#'))
            .count()
    }

    /// What the topic received since the last call, as SNS notifications (SQS bodies).
    async fn published(&self) -> Vec<Value> {
        drain(&self.sdk, &self.probe_queue)
            .await
            .iter()
            .map(|body| serde_json::from_str(body).unwrap())
            .collect()
    }
}

fn webhook_body(text: &str, timestamp: &str) -> String {
    serde_urlencoded::to_string([
        ("token", TOKEN),
        ("team_id", "T0001"),
        ("team_domain", "example"),
        ("channel_id", "C2147483705"),
        ("channel_name", "general"),
        ("timestamp", timestamp),
        ("user_id", "U2147483697"),
        ("user_name", "steve"),
        ("text", text),
        ("trigger_word", "awsadvent"),
    ])
    .unwrap()
}

fn form_request(body: impl Into<Vec<u8>>) -> Request {
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("/slack")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body.into()))
        .unwrap()
}

fn signed_request(body: &str, content_type: &str, secret: &str, timestamp: i64) -> Request {
    let ts = timestamp.to_string();
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("/slack")
        .header("content-type", content_type)
        .header("x-slack-request-timestamp", &ts)
        .header("x-slack-signature", sign(secret, &ts, body.as_bytes()))
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn call(counter: &Counter, request: Request) -> (StatusCode, Value) {
    let response = counter.handle(request).await;
    let status = response.status();
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value =
        serde_json::from_slice(response.body().as_ref()).expect("every reply is JSON");
    (status, body)
}

/// Feeds what the topic published to the multiplier, as the SQS event a subscribed queue makes.
async fn deliver_via_sqs(multiplier: &Multiplier, notifications: &[Value]) -> Value {
    let records: Vec<Value> = notifications
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"messageId": format!("sqs-{i}"), "body": n.to_string(), "eventSource": "aws:sqs"}))
        .collect();
    multiplier
        .handle(batch(json!({ "Records": records })))
        .await
        .unwrap()
}

#[tokio::test]
async fn the_originals_story_1_then_11_then_12() {
    let f = Fixture::new().await;
    let counter = f.counter();

    let (status, reply) = call(
        &counter,
        form_request(webhook_body("awsadvent some words", "1481660433.000004")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply, json!({"text": "awsadvent: 1, some: 1, words: 1"}));

    let published = f.published().await;
    assert_eq!(published.len(), 1, "one message per Slack message");
    let message: Value = serde_json::from_str(published[0]["Message"].as_str().unwrap()).unwrap();
    assert_eq!(message["schema_version"], 1);
    assert_eq!(message["message_id"], "T0001:C2147483705:1481660433.000004");
    assert_eq!(
        message["words"],
        json!({"awsadvent": 1, "some": 1, "words": 1})
    );
    assert_eq!(message["text"], "awsadvent some words");
    assert_eq!(message["team_id"], "T0001");

    let answer = deliver_via_sqs(&f.multiplier(), &published).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
    for word in ["awsadvent", "some", "words"] {
        assert_eq!(f.count(word).await, Some(11), "{word}");
    }

    let (status, reply) = call(
        &counter,
        form_request(webhook_body("awsadvent some words", "1481660500.000002")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply, json!({"text": "awsadvent: 12, some: 12, words: 12"}));

    // The logger reads the same message.
    let line = sns_logger::LogLine::from_delivery(&fanout_common::events::Delivery {
        body: published[0]["Message"].as_str().unwrap().to_owned(),
        id: Some("m".into()),
        sender: None,
        receive_count: None,
    })
    .unwrap();
    assert_eq!(line.message_id, "T0001:C2147483705:1481660433.000004");
    assert_eq!(line.text_length, 20);
}

#[tokio::test]
async fn twenty_concurrent_invocations_add_exactly_twenty() {
    let f = Fixture::new().await;
    let counter = f.counter();
    let calls = (0..20).map(|i| {
        call(
            &counter,
            form_request(webhook_body("concurrency", &format!("1500000000.{i:06}"))),
        )
    });
    let replies = futures::future::join_all(calls).await;
    assert!(replies.iter().all(|(status, _)| *status == StatusCode::OK));
    assert_eq!(f.count("concurrency").await, Some(20));
    let mut seen: Vec<i64> = replies
        .iter()
        .map(|(_, body)| {
            body["text"]
                .as_str()
                .unwrap()
                .trim_start_matches("concurrency: ")
                .parse()
                .unwrap()
        })
        .collect();
    seen.sort();
    // Each reply reads the counts after its own message was committed: at least its own
    // count, at most all of them (a transaction cannot return the new values).
    assert!(seen.iter().all(|n| (1..=20).contains(n)), "{seen:?}");
    assert_eq!(
        seen.last(),
        Some(&20),
        "the last reply sees every add: {seen:?}"
    );
}

#[tokio::test]
async fn a_slack_retry_is_not_counted_or_published_twice() {
    let f = Fixture::new().await;
    let counter = f.counter();
    let body = webhook_body("retry me retry", "1481660433.000777");
    let first = call(&counter, form_request(body.clone())).await;
    let again = call(&counter, form_request(body)).await;
    assert_eq!(first, (StatusCode::OK, json!({"text": "retry: 2, me: 1"})));
    assert_eq!(again, first, "a repeat gets the same kind of reply");
    assert_eq!(f.count("retry").await, Some(2));
    // Every delivery publishes (so that a death between counting and publishing loses
    // nothing); the consumers apply each message once.
    let published = f.published().await;
    assert_eq!(published.len(), 2, "published by each delivery");
    deliver_via_sqs(&f.multiplier(), &published).await;
    assert_eq!(
        f.count("retry").await,
        Some(22),
        "multiplied once: 2 + 2 x 10"
    );
}

#[tokio::test]
async fn a_redelivered_sns_message_is_applied_once() {
    let f = Fixture::new().await;
    let multiplier = f.multiplier();
    let message = json!({"schema_version":1,"message_id":"Ev-redelivered","source":"events_api","team_id":"T1","channel_id":"C1","user_id":"U1","text":"echo echo","words":{"echo":2}});
    let event = json!({"Records":[{"EventSource":"aws:sns","EventVersion":"1.0","EventSubscriptionArn":"arn:aws:sns:us-east-1:123456789012:words:sub","Sns":{
        "Type":"Notification","MessageId":"sns-1","TopicArn":"arn:aws:sns:us-east-1:123456789012:words","Subject":null,
        "Message": message.to_string(),"Timestamp":"2016-12-13T20:20:33.000Z","SignatureVersion":"1","Signature":"x","SigningCertUrl":"https://x","UnsubscribeUrl":"https://x","MessageAttributes":{}}}]});
    multiplier.handle(batch(event.clone())).await.unwrap();
    multiplier.handle(batch(event)).await.unwrap();
    assert_eq!(f.count("echo").await, Some(20), "2 occurrences x 10, once");

    // A plain-text message (the original's format) is keyed on its SNS MessageId.
    let plain = |id: &str| {
        json!({"Records":[{"eventSource":"aws:sqs","messageId":"q","body":
        json!({"Type":"Notification","MessageId":id,"TopicArn":"arn:aws:sns:us-east-1:1:t","Message":"echo"}).to_string()}]})
    };
    multiplier.handle(batch(plain("plain-1"))).await.unwrap();
    multiplier.handle(batch(plain("plain-1"))).await.unwrap();
    assert_eq!(f.count("echo").await, Some(30));
    multiplier.handle(batch(plain("plain-2"))).await.unwrap();
    assert_eq!(f.count("echo").await, Some(40));
}

#[tokio::test]
async fn sqs_batches_retry_only_the_bad_record() {
    let f = Fixture::new().await;
    let good = json!({"schema_version":1,"message_id":"ok","source":"events_api","team_id":null,"channel_id":null,"user_id":null,"text":"fine","words":{"fine":1}});
    let event = json!({"Records":[
        {"eventSource":"aws:sqs","messageId":"good","body": good.to_string()},
        {"eventSource":"aws:sqs","messageId":"bad","body":"{\"schema_version\": 1, \"oops\""}
    ]});
    let answer = f.multiplier().handle(batch(event)).await.unwrap();
    assert_eq!(
        answer,
        json!({"batchItemFailures":[{"itemIdentifier":"bad"}]})
    );
    assert_eq!(f.count("fine").await, Some(10));
}

#[tokio::test]
async fn a_publish_failure_is_a_5xx_and_the_retry_publishes_without_counting_again() {
    let f = Fixture::new().await;
    let missing_topic = "arn:aws:sns:us-east-1:123456789012:no-such-topic";
    let broken = f.counter_with(Verifier::new(None, Some(TOKEN.into())), Some(missing_topic));
    let body = webhook_body("publish fails", "1481660433.000999");

    let (status, reply) = call(&broken, form_request(body.clone())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("SNS Publish"),
        "{reply}"
    );
    assert_eq!(f.count("publish").await, Some(1), "counted once");

    let (status, reply) = call(&f.counter(), form_request(body.clone())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply, json!({"text": "publish: 1, fails: 1"}));
    assert_eq!(
        f.count("publish").await,
        Some(1),
        "the retry does not count again"
    );
    assert_eq!(f.published().await.len(), 1, "the retry publishes");

    // And the next repeat counts nothing; it publishes again, which consumers apply once.
    let (status, _) = call(&f.counter(), form_request(body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(f.published().await.len(), 1);
    assert_eq!(f.count("fails").await, Some(1));
}

#[tokio::test]
async fn signed_events_api_messages_are_counted_and_url_verification_answers() {
    let f = Fixture::new().await;
    let counter = f.counter_with(Verifier::new(Some(SECRET.into()), None), Some(&f.topic_arn));
    let body = json!({"token":"ignored","team_id":"T1","type":"event_callback","event_id":"Ev-signed-1","event":{"type":"message","channel":"C1","user":"U1","text":"Signed <@U999> :tada: hello","ts":"1.000001"}}).to_string();
    let (status, reply) = call(
        &counter,
        signed_request(&body, "application/json", SECRET, now()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        reply,
        json!({"ok": true, "text": "signed: 1, :tada:: 1, hello: 1"})
    );

    let challenge = json!({"token":"x","challenge":"c-123","type":"url_verification"}).to_string();
    let (status, reply) = call(
        &counter,
        signed_request(&challenge, "application/json", SECRET, now()),
    )
    .await;
    assert_eq!(
        (status, reply),
        (StatusCode::OK, json!({"challenge": "c-123"}))
    );

    let bot = json!({"type":"event_callback","event_id":"Ev-bot","event":{"type":"message","bot_id":"B1","channel":"C1","text":"beep","ts":"2.0"}}).to_string();
    let (status, reply) = call(
        &counter,
        signed_request(&bot, "application/json", SECRET, now()),
    )
    .await;
    assert_eq!((status, reply), (StatusCode::OK, json!({"ok": true})));
    assert_eq!(f.count("beep").await, None, "bot messages are not counted");
}

#[tokio::test]
async fn every_refused_request_counts_nothing() {
    let f = Fixture::new().await;
    let token_only = f.counter();
    let signed = f.counter_with(Verifier::new(Some(SECRET.into()), None), Some(&f.topic_arn));
    let unconfigured = f.counter_with(Verifier::default(), Some(&f.topic_arn));
    let body = webhook_body("intruder words", "1481660433.000001");

    let cases: Vec<(&str, &Counter, Request)> = vec![
        (
            "wrong token",
            &token_only,
            form_request(body.replace(TOKEN, "not-the-token")),
        ),
        (
            "missing token",
            &token_only,
            form_request(body.replace(&format!("token={TOKEN}&"), "")),
        ),
        (
            "unsigned while a secret is set",
            &signed,
            form_request(body.clone()),
        ),
        (
            "wrong secret",
            &signed,
            signed_request(&body, "application/x-www-form-urlencoded", "other", now()),
        ),
        (
            "stale timestamp",
            &signed,
            signed_request(
                &body,
                "application/x-www-form-urlencoded",
                SECRET,
                now() - 301,
            ),
        ),
        (
            "nothing configured",
            &unconfigured,
            form_request(body.clone()),
        ),
    ];
    for (case, counter, request) in cases {
        let (status, reply) = call(counter, request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {reply}");
        assert!(
            reply["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{case}"
        );
    }
    // A body altered after signing.
    let ts = now().to_string();
    let tampered = lambda_http::http::Request::builder()
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", &ts)
        .header("x-slack-signature", sign(SECRET, &ts, body.as_bytes()))
        .body(Body::from(body.replace("intruder", "tampered")))
        .unwrap();
    assert_eq!(call(&signed, tampered).await.0, StatusCode::UNAUTHORIZED);

    assert_eq!(f.word_items().await, 0, "nothing counted");
    assert!(f.published().await.is_empty(), "nothing published");
}

#[tokio::test]
async fn malformed_requests_are_400_with_a_clear_message() {
    let f = Fixture::new().await;
    let counter = f.counter();
    let json_request = |body: &[u8]| {
        lambda_http::http::Request::builder()
            .header("content-type", "application/json")
            .body(Body::from(body.to_vec()))
            .unwrap()
    };
    let cases: Vec<(&str, Request, &str)> = vec![
        (
            "malformed JSON",
            json_request(b"{\"type\": \"event_callback\", "),
            "not valid JSON",
        ),
        (
            "JSON of the wrong shape",
            json_request(b"[1, 2, 3]"),
            "not valid JSON",
        ),
        (
            "non-UTF-8 body",
            form_request(vec![b't', b'e', b'x', b't', b'=', 0xff, 0xfe]),
            "not valid UTF-8",
        ),
        (
            "a form that is not Slack's",
            form_request("hello=world"),
            "not a Slack",
        ),
        (
            "no message id",
            form_request(format!("token={TOKEN}&command=%2Fcount&text=hi")),
            "does not identify",
        ),
    ];
    for (case, request, expected) in cases {
        let (status, reply) = call(&counter, request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {reply}");
        assert!(
            reply["error"].as_str().unwrap().contains(expected),
            "{case}: {reply}"
        );
    }
    assert_eq!(f.word_items().await, 0);
}

#[tokio::test]
async fn an_empty_text_gets_a_helpful_answer_and_counts_nothing() {
    let f = Fixture::new().await;
    let counter = f.counter();
    for text in ["", "   ", "<@U123> <https://example.com> !!!"] {
        let (status, reply) = call(
            &counter,
            form_request(webhook_body(text, "1481660433.000123")),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            reply["text"]
                .as_str()
                .unwrap()
                .starts_with("Nothing to count"),
            "{reply}"
        );
    }
    assert_eq!(f.word_items().await, 0);
    assert!(f.published().await.is_empty());
}

#[tokio::test]
async fn a_40000_character_message_counts_every_word() {
    let f = Fixture::new().await;
    let counter = f.counter();
    // 6,000 distinct words, each used at least once, padded to Slack's 40,000-character limit.
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 40_000 - 8 {
        text.push_str(&format!("w{} ", i % 6000));
        i += 1;
    }
    let text = text.trim_end().to_owned();
    assert!(text.chars().count() <= 40_000);
    let expected = fanout_words_core::tokenize(&text);
    let (status, reply) = call(
        &counter,
        form_request(webhook_body(&text, "1481660433.040000")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    // The reply lists 50 words, then says how many more (replies are capped); every word is
    // counted all the same.
    let text = reply["text"].as_str().unwrap();
    assert_eq!(text.split(", ").count(), 51, "{text:.200}");
    assert!(
        text.ends_with(&format!("…and {} more", expected.len() - 50)),
        "{text:.200}"
    );
    let store = f.store();
    let words: Vec<String> = expected.iter().map(|(w, _)| w.to_owned()).collect();
    let stored = store.counts(&words).await.unwrap();
    assert_eq!(stored.len(), expected.len(), "no word dropped");
    for (word, n) in expected.iter() {
        assert_eq!(stored[word], n as i64, "{word}");
    }
}

#[tokio::test]
async fn declared_iam_actions_are_exactly_the_sdk_calls_made() {
    use fanout_common::Vars;
    use fanout_tests::iam::CallRecorder;
    use std::collections::BTreeSet;

    let f = Fixture::new().await;
    let counter_calls = CallRecorder::default();
    let multiplier_calls = CallRecorder::default();
    let dynamodb = |calls: &CallRecorder| {
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&f.sdk)
                .interceptor(calls.clone())
                .build(),
        )
    };
    let sns = aws_sdk_sns::Client::from_conf(
        aws_sdk_sns::config::Builder::from(&f.sdk)
            .interceptor(counter_calls.clone())
            .build(),
    );
    let ssm = aws_sdk_ssm::Client::from_conf(
        aws_sdk_ssm::config::Builder::from(&f.sdk)
            .interceptor(counter_calls.clone())
            .build(),
    );

    // The counter reads its token from SSM, as deployed.
    let parameter = format!("/{}/slack-token", fanout_tests::unique("fanout"));
    aws_sdk_ssm::Client::new(&f.sdk)
        .put_parameter()
        .name(&parameter)
        .value(TOKEN)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let config = slack_counter::Config::from_vars(&Vars::from_pairs([
        ("WORDS_TABLE", f.table.as_str()),
        ("SLACK_VERIFICATION_TOKEN_PARAM", parameter.as_str()),
    ]))
    .unwrap();
    let verifier = slack_counter::verifier(&config, &fanout_ssm::Secrets::new(ssm))
        .await
        .unwrap();
    let store = WordStore::new(dynamodb(&counter_calls), &f.table);
    let missing_topic = "arn:aws:sns:us-east-1:123456789012:no-such-topic";
    let failing = Counter::new(
        verifier.clone(),
        store.clone(),
        Some(Publisher::new(sns.clone(), missing_topic)),
    );
    let counter = Counter::new(verifier, store, Some(Publisher::new(sns, &f.topic_arn)));

    // Every path: a failed publish (the words committed), the retry (nothing added, published),
    // a repeat (nothing added, counts read back).
    let body = webhook_body("every path", "1481660433.000321");
    assert_eq!(
        call(&failing, form_request(body.clone())).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        call(&counter, form_request(body.clone())).await.0,
        StatusCode::OK
    );
    assert_eq!(call(&counter, form_request(body)).await.0, StatusCode::OK);
    // A leaderboard command, and a count command.
    for text in ["top 3", "count awsadvent"] {
        let (status, reply) = call(&counter, slash_command(text, text)).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
    }

    // The multiplier: a message applied, its redelivery, and a message it can never apply,
    // which it sends to its dead-letter queue.
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&f.sdk)
            .interceptor(multiplier_calls.clone())
            .build(),
    );
    let dead_letter_queue = aws_sdk_sqs::Client::new(&f.sdk)
        .create_queue()
        .queue_name(fanout_tests::unique("dlq"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let multiplier =
        sns_multiplier::Multiplier::new(WordStore::new(dynamodb(&multiplier_calls), &f.table), 10)
            .with_dead_letters(fanout_sqs::SqsDeadLetters::new(sqs, dead_letter_queue));
    let published = f.published().await;
    let mut invalid =
        serde_json::from_str::<Value>(published[0]["Message"].as_str().unwrap()).unwrap();
    invalid["words"] = json!({"#count#x": 1});
    for messages in [
        published.clone(),
        published,
        vec![
            json!({"Type": "Notification", "MessageId": "m-invalid", "Message": invalid.to_string()}),
        ],
    ] {
        let records: Vec<Value> = messages
            .iter()
            .map(|n| json!({"messageId": "q", "body": n.to_string(), "eventSource": "aws:sqs"}))
            .collect();
        let answer = multiplier
            .handle(batch(json!({ "Records": records })))
            .await
            .unwrap();
        assert_eq!(answer, json!({"batchItemFailures": []}));
    }

    let declared = |list: &[&str]| list.iter().map(|a| a.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        counter_calls.iam_actions(),
        declared(slack_counter::IAM_ACTIONS),
        "slack-counter's IAM_ACTIONS must list exactly what its code calls: {:?}",
        counter_calls.operations()
    );
    assert_eq!(
        multiplier_calls.iam_actions(),
        declared(sns_multiplier::IAM_ACTIONS),
        "sns-multiplier's IAM_ACTIONS must list exactly what its code calls: {:?}",
        multiplier_calls.operations()
    );
    assert!(
        sns_logger::IAM_ACTIONS.is_empty(),
        "sns-logger makes no AWS calls"
    );
}

fn slash_command(text: &str, trigger: &str) -> Request {
    form_request(
        serde_urlencoded::to_string([
            ("token", TOKEN),
            ("team_id", "T0001"),
            ("channel_id", "C2147483705"),
            ("user_id", "U2147483697"),
            ("command", "/wordcount"),
            ("text", text),
            ("trigger_id", trigger),
        ])
        .unwrap(),
    )
}

/// 200 messages with known words, counted and multiplied: the leaderboard is exact, with the
/// multiplier's +10s, stop words left out unless asked for; and it is read without a Scan.
#[tokio::test]
async fn the_leaderboard_after_200_messages_is_exact_and_never_scans() {
    let f = Fixture::new().await;
    let calls = fanout_tests::iam::CallRecorder::default();
    let recorded = aws_sdk_dynamodb::config::Builder::from(&f.sdk)
        .interceptor(calls.clone())
        .build();
    let counter = Counter::new(
        Verifier::new(None, Some(TOKEN.into())),
        WordStore::new(aws_sdk_dynamodb::Client::from_conf(recorded), &f.table),
        Some(Publisher::new(
            aws_sdk_sns::Client::new(&f.sdk),
            &f.topic_arn,
        )),
    );
    let mut occurrences = std::collections::BTreeMap::<String, i64>::new();
    for i in 0..200 {
        let mut words = vec!["awsadvent".to_owned(), format!("once{i}")];
        for (every, word) in [(2, "lambda"), (3, "the"), (5, "serverless"), (8, "rust")] {
            if i % every == 0 {
                words.push(word.into());
            }
        }
        for word in &words {
            *occurrences.entry(word.clone()).or_default() += 1;
        }
        let body = webhook_body(&words.join(" "), &format!("1481660433.{i:06}"));
        let (status, reply) = call(&counter, form_request(body)).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        // The multiplier takes each message as it comes, as the queue feeds it.
        let published = f.published().await;
        assert_eq!(
            deliver_via_sqs(&f.multiplier(), &published).await,
            json!({"batchItemFailures": []})
        );
    }
    let expected = |word: &str| occurrences[word] * 11;
    assert_eq!((expected("awsadvent"), expected("the")), (2200, 737));

    let ask = |text: &'static str| {
        let counter = &counter;
        let request = slash_command(text, &format!("trigger-{text}"));
        async move {
            let (status, reply) = call(counter, request).await;
            assert_eq!(status, StatusCode::OK, "{text}: {reply}");
            assert_eq!(reply["response_type"], "ephemeral", "{text}: {reply}");
            reply["text"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(
        ask("top 3").await,
        "1. awsadvent: 2,200\n2. lambda: 1,100\n3. serverless: 440"
    );
    assert_eq!(
        ask("TOP 3 all").await,
        "1. awsadvent: 2,200\n2. lambda: 1,100\n3. the: 737"
    );
    let top = ask("top").await;
    assert_eq!(top.lines().count(), 10, "{top}");
    assert!(
        top.starts_with(
            "1. awsadvent: 2,200\n2. lambda: 1,100\n3. serverless: 440\n4. rust: 275\n5. "
        ),
        "{top}"
    );
    assert!(!top.contains("the:"), "stop words are left out: {top}");
    assert_eq!(
        ask("count awsadvent words").await,
        "awsadvent: 2200, words: 0"
    );
    assert!(ask("help").await.contains("`top N`"));
    for usage in ["top 0", "top 999", "top banana"] {
        assert!(ask(usage).await.contains("Try `top`"), "{usage}");
    }
    assert_eq!(f.count("top").await, None, "a command is not counted");
    let operations = calls.operations();
    assert!(operations.contains("DynamoDB:Query"), "{operations:?}");
    assert!(
        !operations.iter().any(|op| op.contains("Scan")),
        "the leaderboard scans: {operations:?}"
    );
}

/// Slack's `ssl_check=1` gets 200 and an empty body; a refused request's body says nothing of
/// why (the log does).
#[tokio::test]
async fn ssl_checks_are_answered_and_refusals_reveal_nothing() {
    let f = Fixture::new().await;
    let signed = f.counter_with(Verifier::new(Some(SECRET.into()), None), None);
    let response = signed
        .handle(form_request(format!("ssl_check=1&token={TOKEN}")))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.body().as_ref().is_empty());
    let body = webhook_body("forged words", "1481660433.000001");
    for request in [
        form_request(body.clone()),
        signed_request(&body, "application/x-www-form-urlencoded", "wrong", now()),
        signed_request(
            &body,
            "application/x-www-form-urlencoded",
            SECRET,
            now() - 3600,
        ),
    ] {
        let (status, reply) = call(&signed, request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply, json!({"error": "invalid request"}));
    }
    assert_eq!(f.word_items().await, 0);
}
