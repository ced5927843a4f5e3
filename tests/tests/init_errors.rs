//! A function whose configuration is missing or invalid reports it to the Lambda Runtime API's
//! init error endpoint, naming the variable, and exits: it never waits for an invocation to
//! fail. The real binaries run under the test tools' Runtime API stand-in.

use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use fanout_tests::built_binary;
use fanout_tests::runtime_api::RuntimeApi;

/// How long a function may take to report its init error and exit.
const EXIT_LIMIT: Duration = Duration::from_secs(30);

/// Runs `binary` with `env` under a Runtime API until it exits (or is killed after
/// [`EXIT_LIMIT`]); returns the request line of the first request it made, the init error it
/// reported, and the process's exit status.
async fn first_runtime_request(binary: &str, env: &[(&str, &str)]) -> (String, String, ExitStatus) {
    let path = built_binary(binary);
    let api = RuntimeApi::start().await.unwrap();
    let mut command = api.function_command(&path, binary);
    command
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (var, value) in env {
        command.env(var, value);
    }
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + EXIT_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            // Still running: it waits for an invocation. The assertions say what it did.
            let _ = child.kill();
            break child.wait().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let first = api.requests().into_iter().next().unwrap_or_default();
    (first, api.init_error().unwrap_or_default(), status)
}

/// A function, its environment, and the variable its init error must name.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

#[tokio::test]
async fn a_missing_variable_is_posted_to_the_init_error_endpoint() {
    let cases: &[Case] = &[
        ("slack-counter", &[], "WORDS_TABLE"),
        ("sns-multiplier", &[], "WORDS_TABLE"),
        (
            "sns-multiplier",
            &[("WORDS_TABLE", "words"), ("MULTIPLIER", "ten")],
            "MULTIPLIER",
        ),
        ("s3-fanout", &[("DEST_BUCKET", "b")], "SOURCE_BUCKET"),
        ("s3-copier", &[("COPY_PART_SIZE", "huge")], "COPY_PART_SIZE"),
    ];
    for (binary, env, variable) in cases {
        let (request, body, status) = first_runtime_request(binary, env).await;
        assert_eq!(
            request, "POST /2018-06-01/runtime/init/error HTTP/1.1",
            "{binary}"
        );
        let report: serde_json::Value = serde_json::from_str(&body).unwrap();
        let message = report["errorMessage"].as_str().unwrap_or_default();
        assert!(message.contains(variable), "{binary}: {message}");
        assert!(!status.success(), "{binary} exits after an init error");
    }
}
