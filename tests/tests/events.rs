//! Every sample event in `events/` is read by the function it is named after, and handled
//! against the emulator as `cargo lambda invoke <fn> --data-file events/<file>` would.

use std::path::PathBuf;

use fanout_common::events::Batch;
use fanout_tests::words::create_words_table;
use fanout_tests::{workspace_root, Emulator};
use fanout_words_core::slack::Verifier;
use fanout_words_dynamodb::WordStore;
use lambda_http::http::StatusCode;
use serde_json::{json, Value};

/// The verification token the sample events carry (the local default in slack-counter's
/// `[package.metadata.lambda.env]`).
const LOCAL_TOKEN: &str = "local-verification-token";

fn event_files(prefix: &str) -> Vec<(String, String)> {
    let dir = workspace_root().join("events");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&path).unwrap(),
            )
        })
        .filter(|(name, _)| name.starts_with(prefix))
        .collect()
}

#[test]
fn every_event_file_belongs_to_a_function_and_is_json() {
    let functions: Vec<String> = std::fs::read_dir(workspace_root().join("functions"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let all = event_files("");
    assert!(!all.is_empty());
    for (name, text) in all {
        assert!(
            functions
                .iter()
                .any(|function| name.starts_with(&format!("{function}-"))),
            "events/{name} is not named <function>-<shape>.json after one of {functions:?}"
        );
        serde_json::from_str::<Value>(&text)
            .unwrap_or_else(|e| panic!("events/{name} is not JSON: {e}"));
    }
    for function in &functions {
        assert!(
            !event_files(&format!("{function}-")).is_empty(),
            "{function} has no sample event in events/"
        );
    }
}

#[tokio::test]
async fn slack_counter_events_are_handled() {
    let sdk = Emulator::shared().sdk_config().await;
    for (name, text) in event_files("slack-counter-") {
        let request =
            lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("events/{name}: {e}"));
        let table = create_words_table(&sdk).await;
        let counter = slack_counter::Counter::new(
            Verifier::new(None, Some(LOCAL_TOKEN.into())),
            WordStore::new(aws_sdk_dynamodb::Client::new(&sdk), table),
            fanout_words_core::store::NoPublish,
        );
        let response = counter.handle(request).await;
        let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        assert_eq!(response.status(), StatusCode::OK, "events/{name}: {body}");
        if name.contains("url-verification") {
            assert!(body["challenge"].is_string(), "events/{name}: {body}");
        } else {
            let text = body["text"]
                .as_str()
                .unwrap_or_else(|| panic!("events/{name}: {body}"));
            assert!(
                text.contains(": 1"),
                "events/{name}: the words are counted: {body}"
            );
        }
    }
}

#[tokio::test]
async fn sns_multiplier_events_are_handled() {
    let sdk = Emulator::shared().sdk_config().await;
    for (name, text) in event_files("sns-multiplier-") {
        let table = create_words_table(&sdk).await;
        let multiplier = sns_multiplier::Multiplier::new(
            WordStore::new(aws_sdk_dynamodb::Client::new(&sdk), &table),
            10,
        );
        let event: Batch = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("events/{name} is not an SNS or SQS event: {e}"));
        let answer = multiplier
            .handle(event)
            .await
            .unwrap_or_else(|e| panic!("events/{name}: {e}"));
        assert!(
            answer.is_null() || answer == json!({"batchItemFailures": []}),
            "events/{name}: {answer}"
        );
        let count = fanout_tests::words::count_of(
            &aws_sdk_dynamodb::Client::new(&sdk),
            &table,
            if name.contains("sqs") {
                "hello"
            } else {
                "awsadvent"
            },
        )
        .await
        .expect("read a count");
        assert_eq!(count, Some(10), "events/{name}");
    }
}

#[tokio::test]
async fn slack_replier_events_are_handled() {
    let sdk = Emulator::shared().sdk_config().await;
    for (name, text) in event_files("slack-replier-") {
        let table = create_words_table(&sdk).await;
        let store = WordStore::new(aws_sdk_dynamodb::Client::new(&sdk), &table);
        // The words were counted before they were published.
        let deltas = [("awsadvent", 1), ("some", 1), ("words", 1)].map(|(w, n)| (w.to_owned(), n));
        fanout_words_core::store::WordCountStore::apply_chunk(
            &store,
            "#count#sample",
            &deltas,
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap();
        let slack = fanout_tests::slack_api::SlackApi::start("xoxb-sample")
            .await
            .unwrap();
        let replier = slack_replier::Replier::new(
            store,
            Some(fanout_slack_web::SlackApi::new(&slack.url(), "xoxb-sample")),
            slack_replier::DEFAULT_LEASE,
        );
        let event: Batch = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("events/{name} is not an SNS or SQS event: {e}"));
        let answer = replier
            .handle(event)
            .await
            .unwrap_or_else(|e| panic!("events/{name}: {e}"));
        assert_eq!(answer, json!({"batchItemFailures": []}), "events/{name}");
        let posts = slack.posts();
        assert_eq!(posts.len(), 1, "events/{name}");
        assert_eq!(
            posts[0].text, "awsadvent: 1, some: 1, words: 1",
            "events/{name}"
        );
    }
}

#[tokio::test]
async fn sns_logger_events_are_handled() {
    for (name, text) in event_files("sns-logger-") {
        let event: Batch = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("events/{name} is not an SNS or SQS event: {e}"));
        sns_logger::handle(event)
            .await
            .unwrap_or_else(|e| panic!("events/{name}: {e}"));
    }
}

#[tokio::test]
async fn the_pre_traffic_hooks_probes_are_answered_as_the_hook_expects() {
    use pre_traffic_hook::{judge, probe, Answer, Config, Kind};
    let sdk = Emulator::shared().sdk_config().await;
    let config = Config::from_vars(&fanout_common::Vars::from_pairs([
        ("SLACK_COUNTER_FUNCTION", "c"),
        ("SNS_MULTIPLIER_FUNCTION", "m"),
        ("SLACK_REPLIER_FUNCTION", "r"),
        ("SNS_LOGGER_FUNCTION", "l"),
        ("S3_FANOUT_FUNCTION", "f"),
        ("S3_COPIER_FUNCTION", "p"),
        ("BACKUP_SOURCE", "s3://photos/"),
        ("BACKUP_DESTINATION", "s3://backup/"),
    ]))
    .unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // slack-counter, signed by a Slack app, or also taking unsigned forms by their token: the
    // forged signature is refused either way, and nothing is counted.
    let table = create_words_table(&sdk).await;
    for verifier in [
        Verifier::new(Some("the-signing-secret".into()), None),
        Verifier::new(Some("the-signing-secret".into()), Some(LOCAL_TOKEN.into())),
    ] {
        let counter = slack_counter::Counter::new(
            verifier,
            WordStore::new(aws_sdk_dynamodb::Client::new(&sdk), &table),
            fanout_words_core::store::NoPublish,
        );
        let text = probe(Kind::SlackCounter, &config, now_ms).to_string();
        let request = lambda_http::request::from_str(&text).unwrap();
        let response = counter.handle(request).await;
        let answer = json!({"statusCode": response.status().as_u16()});
        assert_eq!(
            judge(Kind::SlackCounter, &Answer::Returned(answer.clone())),
            Ok(()),
            "{answer}"
        );
    }
    // sns-multiplier: an empty batch.
    let multiplier = sns_multiplier::Multiplier::new(
        WordStore::new(aws_sdk_dynamodb::Client::new(&sdk), &table),
        10,
    );
    let batch: Batch = serde_json::from_value(probe(Kind::SnsMultiplier, &config, now_ms)).unwrap();
    let answer = multiplier.handle(batch).await.unwrap();
    assert_eq!(
        judge(Kind::SnsMultiplier, &Answer::Returned(answer.clone())),
        Ok(()),
        "{answer}"
    );
    // slack-replier: nothing to reply to, and nothing posted.
    let slack = fanout_tests::slack_api::SlackApi::start("xoxb-sample")
        .await
        .unwrap();
    let replier = slack_replier::Replier::new(
        WordStore::new(aws_sdk_dynamodb::Client::new(&sdk), &table),
        Some(fanout_slack_web::SlackApi::new(&slack.url(), "xoxb-sample")),
        slack_replier::DEFAULT_LEASE,
    );
    let batch: Batch = serde_json::from_value(probe(Kind::SlackReplier, &config, now_ms)).unwrap();
    let answer = replier.handle(batch).await.unwrap();
    assert_eq!(
        judge(Kind::SlackReplier, &Answer::Returned(answer.clone())),
        Ok(()),
        "{answer}"
    );
    assert!(slack.posts().is_empty(), "the probe posted to Slack");
    // sns-logger: the message, through SNS.
    let batch: Batch = serde_json::from_value(probe(Kind::SnsLogger, &config, now_ms)).unwrap();
    let answer = sns_logger::handle(batch).await.unwrap();
    assert_eq!(
        judge(Kind::SnsLogger, &Answer::Returned(answer.clone())),
        Ok(()),
        "{answer}"
    );
    let words = fanout_tests::words::count_of(
        &aws_sdk_dynamodb::Client::new(&sdk),
        &table,
        "3ezbrw1abm2rzgrnfdxv2595e9cy3gmdalwmmhkvfxo7tyxaym8p",
    )
    .await
    .expect("read a count");
    assert_eq!(words, None, "the probes counted nothing");
}
