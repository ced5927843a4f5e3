//! fanout-smoke as a user runs it: argument errors, and a run against a stand-in for the counter
//! (a local HTTP server that checks the signature and answers like slack-counter).

mod support;

use std::net::TcpListener;
use std::process::{Command, Output};

use fanout_words_core::slack::{self, Verifier};
use support::{serve_once, Received};

const SECRET: &str = "smoke-test-secret";

fn smoke(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fanout-smoke"))
        .args(args)
        .env_remove("SLACK_SIGNING_SECRET")
        .env_remove("SLACK_VERIFICATION_TOKEN")
        // Nothing here may reach AWS.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("fanout-smoke runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Answers like slack-counter with `secret`: 401 on a bad signature, else the word's count.
fn counter(count: i64) -> impl FnOnce(&Received) -> (u16, String) {
    move |request| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let verifier = Verifier::new(Some(SECRET.into()), None);
        if verifier
            .check_signature(
                request.header("x-slack-request-timestamp"),
                request.header("x-slack-signature"),
                &request.body,
                now,
            )
            .is_err()
        {
            return (
                401,
                r#"{"error":"X-Slack-Signature does not match the request"}"#.into(),
            );
        }
        let parsed = slack::parse(Some(&request.content_type), &request.body)
            .expect("a request Slack would send");
        let slack::RequestKind::Message(message) = parsed.kind else {
            panic!("not a message");
        };
        let text = format!("{}: {count}", message.text);
        (
            200,
            serde_json::json!({ "ok": true, "text": text }).to_string(),
        )
    }
}

#[test]
fn a_target_is_required() {
    let output = smoke(&["--signing-secret", "s"]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains("--stack") && err.contains("--slack-url"),
        "{err}"
    );
}

#[test]
fn stack_and_url_exclude_each_other() {
    let output = smoke(&[
        "--stack",
        "s",
        "--slack-url",
        "http://x/slack",
        "--signing-secret",
        "s",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[test]
fn credentials_are_required() {
    let output = smoke(&["--slack-url", "http://127.0.0.1:9/slack"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("--signing-secret, --signing-secret-param or --verification-token"),
        "{err}"
    );
}

#[test]
fn a_word_must_be_one_word() {
    let output = smoke(&[
        "--slack-url",
        "http://127.0.0.1:9/slack",
        "--signing-secret",
        "s",
        "--word",
        "fanoutsmoke Two",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("is not one lowercase word"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_word_outside_the_reserved_prefix_is_refused_before_anything_is_sent() {
    // Port 9 refuses connections: a request sent would fail otherwise.
    let output = smoke(&[
        "--slack-url",
        "http://127.0.0.1:9/slack",
        "--signing-secret",
        "s",
        "--word",
        "awsadvent",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("does not start with \"fanoutsmoke\"") && !err.contains("127.0.0.1:9"),
        "{err}"
    );
}

#[test]
fn a_secret_and_a_secret_parameter_exclude_each_other() {
    let output = smoke(&[
        "--slack-url",
        "http://x/slack",
        "--signing-secret",
        "s",
        "--signing-secret-param",
        "/fanout/slack/signing-secret",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[test]
fn bad_numbers_are_argument_errors() {
    let output = smoke(&[
        "--slack-url",
        "u",
        "--signing-secret",
        "s",
        "--timeout",
        "soon",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--timeout"), "{}", stderr(&output));
}

#[test]
fn an_unreachable_counter_is_a_clear_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/slack", listener.local_addr().unwrap());
    drop(listener);
    let output = smoke(&["--slack-url", &url, "--signing-secret", SECRET]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("smoke test FAILED") && err.contains(&url),
        "{err}"
    );
}

#[test]
fn a_signed_request_counted_once_passes() {
    let (url, server) = serve_once(counter(1));
    let output = smoke(&["--slack-url", &url, "--signing-secret", SECRET]);
    server.join().unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{out}\n{}", stderr(&output));
    assert!(out.contains("-> 200") && out.contains(": 1"), "{out}");
    // Without a table, nothing can be deleted; it says so.
    assert!(out.contains("give --words-table to delete it"), "{out}");
}

#[test]
fn a_wrong_secret_fails_with_the_status_and_a_hint() {
    let (url, server) = serve_once(counter(1));
    let output = smoke(&["--slack-url", &url, "--signing-secret", "not-the-secret"]);
    server.join().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("401") && err.contains("SSM parameter"),
        "{err}"
    );
}

#[test]
fn a_word_counted_twice_fails() {
    let (url, server) = serve_once(counter(2));
    let output = smoke(&[
        "--slack-url",
        &url,
        "--signing-secret",
        SECRET,
        "--word",
        "fanoutsmokeonce",
    ]);
    server.join().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("does not count \"fanoutsmokeonce\" once"),
        "{err}"
    );
}

#[test]
fn a_token_is_sent_as_an_outgoing_webhook_form() {
    let (url, server) = serve_once(|request| {
        assert_eq!(request.content_type, "application/x-www-form-urlencoded");
        assert!(request.header("x-slack-signature").is_none());
        let parsed = slack::parse(Some(&request.content_type), &request.body).unwrap();
        assert_eq!(parsed.token.as_deref(), Some("tok"));
        (200, r#"{"text":"fanoutsmoketoken: 1"}"#.into())
    });
    let output = smoke(&[
        "--slack-url",
        &url,
        "--verification-token",
        "tok",
        "--word",
        "fanoutsmoketoken",
    ]);
    server.join().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
}
