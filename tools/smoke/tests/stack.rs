//! fanout-smoke --stack against the emulator: the stack's Outputs are read through
//! CloudFormation (AWS_ENDPOINT_URL honoured), the Slack request goes to a stand-in counter, and
//! the words table is polled until the multiplier's share arrives, or the wait times out.

mod support;

use std::process::{Command, Output};
use std::thread::JoinHandle;

use aws_sdk_cloudformation::types::Parameter;
use aws_sdk_dynamodb::types::AttributeValue;
use fanout_tests::{unique, Emulator};
use support::serve_once;

const WORD: &str = "smokestack";

/// A stand-in counter that answers one request: `WORD: 1`.
fn counter_once() -> (String, JoinHandle<()>) {
    serve_once(|_| (200, format!(r#"{{"text":"{WORD}: 1"}}"#)))
}

/// A stack in the emulator with a words table and the Outputs fanout's template has.
async fn stack(emulator: &Emulator, slack_url: &str) -> (String, String) {
    let sdk = emulator.sdk_config().await;
    let name = unique("smoke-stack");
    let template = serde_json::json!({
        "Parameters": { "SlackUrl": { "Type": "String" } },
        "Resources": {
            "WordsTable": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "BillingMode": "PAY_PER_REQUEST",
                    "AttributeDefinitions": [{ "AttributeName": "word", "AttributeType": "S" }],
                    "KeySchema": [{ "AttributeName": "word", "KeyType": "HASH" }]
                }
            }
        },
        "Outputs": {
            "SlackUrl": { "Value": { "Ref": "SlackUrl" } },
            "WordsTableName": { "Value": { "Ref": "WordsTable" } }
        }
    });
    aws_sdk_cloudformation::Client::new(&sdk)
        .create_stack()
        .stack_name(&name)
        .template_body(template.to_string())
        .parameters(
            Parameter::builder()
                .parameter_key("SlackUrl")
                .parameter_value(slack_url)
                .build(),
        )
        .send()
        .await
        .expect("the emulator creates the stack");
    let outputs = fanout_smoke::stack_outputs(&aws_sdk_cloudformation::Client::new(&sdk), &name)
        .await
        .unwrap();
    let table = fanout_smoke::output(&outputs, &name, "WordsTableName").unwrap();
    (name, table)
}

fn smoke(emulator: &Emulator, args: &[&str]) -> Output {
    emulator
        .configure(&mut Command::new(env!("CARGO_BIN_EXE_fanout-smoke")))
        .args(args)
        .env_remove("SLACK_VERIFICATION_TOKEN")
        .env("SLACK_SIGNING_SECRET", "stack-test-secret")
        .output()
        .expect("fanout-smoke runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stack_outputs_lead_to_the_counter_and_the_multipliers_share() {
    let emulator = Emulator::shared();
    let (url, server) = counter_once();
    let (stack, table) = stack(emulator, &url).await;
    // The multiplier's share, as sns-multiplier would leave it: 1 + 10.
    let dynamodb = aws_sdk_dynamodb::Client::new(&emulator.sdk_config().await);
    dynamodb
        .put_item()
        .table_name(&table)
        .item("word", AttributeValue::S(WORD.into()))
        .item("count", AttributeValue::N("11".into()))
        .send()
        .await
        .unwrap();
    let output = tokio::task::spawn_blocking(move || {
        smoke(Emulator::shared(), &["--stack", &stack, "--word", WORD])
    })
    .await
    .unwrap();
    server.join().unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(out.contains(&format!("SlackUrl {url}")), "{out}");
    assert!(out.contains("= 11 after"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multiplier_that_never_comes_is_a_timeout_that_says_where_to_look() {
    let emulator = Emulator::shared();
    let (url, server) = counter_once();
    let (stack, _table) = stack(emulator, &url).await;
    let output = tokio::task::spawn_blocking(move || {
        smoke(
            Emulator::shared(),
            &["--stack", &stack, "--word", WORD, "--timeout", "2"],
        )
    })
    .await
    .unwrap();
    server.join().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("is 0, not 11") && err.contains("MultiplierQueue"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_stack_is_named() {
    let output = tokio::task::spawn_blocking(|| {
        smoke(
            Emulator::shared(),
            &["--stack", "no-such-stack", "--word", WORD],
        )
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("no-such-stack"), "{err}");
}
