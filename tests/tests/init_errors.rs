//! A function whose configuration is missing or invalid reports it to the Lambda Runtime API's
//! init error endpoint, naming the variable, and exits: it never waits for an invocation to
//! fail. The real binaries run against a minimal Runtime API served here.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The directory of the binaries built with these tests (target/<profile>).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .to_path_buf()
}

/// Runs `binary` with `env` under a Runtime API that answers one request; returns that
/// request's request line and body, and the process's exit status.
fn first_runtime_request(
    binary: &str,
    env: &[(&str, &str)],
) -> (String, String, std::process::ExitStatus) {
    let path = bin_dir().join(binary);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` first (make test does)",
        path.display()
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let mut command = Command::new(&path);
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &address)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (var, value) in env {
        command.env(var, value);
    }
    let mut child = command.spawn().unwrap();
    listener.set_nonblocking(false).unwrap();
    let (mut stream, _) = listener.accept().unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        if header.trim().is_empty() {
            break;
        }
        if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    stream
        .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .unwrap();
    drop(stream);
    let status = child.wait().unwrap();
    (
        request_line.trim().to_owned(),
        String::from_utf8(body).unwrap(),
        status,
    )
}

/// A function, its environment, and the variable its init error must name.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

#[test]
fn a_missing_variable_is_posted_to_the_init_error_endpoint() {
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
        let (request, body, status) = first_runtime_request(binary, env);
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
