//! The s3-copy binary as a user runs it: arguments, output and exit status, against a real AWS
//! emulator through `AWS_ENDPOINT_URL`.

use std::process::{Command, Output};

use fanout_tests::copy::{bytes, create_bucket, keys, put_object, s3, Carried};
use fanout_tests::{unique, Emulator};
use serde_json::Value;

/// Runs s3-copy with the emulator's endpoint and test credentials, and nothing else from the
/// environment's AWS configuration.
fn s3_copy(args: &[&str]) -> Output {
    Emulator::shared()
        .configure(&mut Command::new(env!("CARGO_BIN_EXE_s3-copy")))
        .args(args)
        .output()
        .expect("run s3-copy")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The JSON summary: the last line of standard output.
fn summary(output: &Output) -> Value {
    let stdout = text(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "the last line of stdout is not JSON ({e}): {stdout}\nstderr: {}",
            text(&output.stderr)
        )
    })
}

#[test]
fn bad_arguments_exit_2_with_a_clear_message() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "Usage"),
        (&["s3://src-bucket"], "DESTINATION"),
        (&["bucket/x", "s3://dst-bucket/"], "is not an S3 URL"),
        (&["s3://src-bucket", "s3://Dst"], "invalid bucket name"),
        (
            &["s3://aaa", "s3://bbb", "--part-size", "1MiB"],
            "below 5 MiB",
        ),
        (
            &["s3://aaa", "s3://bbb", "--part-size", "8MB"],
            "is not a part size: write auto",
        ),
        (
            &["s3://aaa", "s3://bbb", "--multipart-threshold", "6GiB"],
            "above 5 GiB",
        ),
        (
            &["s3://aaa", "s3://bbb", "--concurrency", "0"],
            "from 1 to 4096",
        ),
        (
            &["s3://aaa", "s3://bbb", "--concurrency", "lots"],
            "from 1 to 4096",
        ),
        (
            &["s3://aaa", "s3://bbb", "--modified-since", "yesterday"],
            "RFC 3339",
        ),
        (
            &["s3://aaa", "s3://bbb", "--storage-class", "cheap"],
            "not an S3 storage class",
        ),
        (&["s3://aaa/x/", "s3://aaa/x/y/"], "overlap"),
        (&["s3://aaa", "s3://bbb", "--bogus"], "unexpected argument"),
    ];
    for (args, expected) in cases {
        let output = s3_copy(args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let help = s3_copy(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).contains("--multipart-threshold <SIZE>"));
}

#[tokio::test]
async fn copies_then_skips_what_is_unchanged_and_prints_a_json_summary() {
    let sdk = Emulator::shared().sdk_config().await;
    let client = s3(&sdk);
    let (src, dst) = (
        create_bucket(&sdk, "cli-src").await,
        create_bucket(&sdk, "cli-dst").await,
    );
    for i in 0..5u8 {
        put_object(
            &client,
            &src,
            &format!("logs/{i}.log"),
            bytes(1000, i),
            &Carried::sample(),
        )
        .await;
    }
    put_object(
        &client,
        &src,
        "logs/big.bin",
        bytes(6 << 20, 9),
        &Carried::sample(),
    )
    .await;
    put_object(&client, &src, "other/x", bytes(10, 1), &Carried::default()).await;
    let (from, to) = (format!("s3://{src}/logs/"), format!("s3://{dst}/archive/"));
    let args = [
        from.as_str(),
        to.as_str(),
        "--json",
        "--multipart-threshold",
        "5MiB",
        "--part-size",
        "5MiB",
        "--concurrency",
        "8",
    ];

    let first = s3_copy(&args);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let json = summary(&first);
    assert!(!json["run_id"].as_str().unwrap().is_empty());
    assert_eq!(json["copied"], 6, "{json}");
    assert_eq!(json["skipped"], 0);
    assert_eq!(json["failed"], 0);
    assert_eq!(json["archived"], 0);
    assert!(json["verified"].as_u64().is_some_and(|v| v <= 6), "{json}");
    assert_eq!(json["bytes_copied"], 5 * 1000 + (6 << 20));
    assert!(json["seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(keys(&client, &dst).await.len(), 6);
    assert!(keys(&client, &dst)
        .await
        .iter()
        .all(|k| k.starts_with("archive/")));

    let again = s3_copy(&args);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    let json = summary(&again);
    assert_eq!(
        (json["copied"].clone(), json["skipped"].clone()),
        (0.into(), 6.into())
    );

    // Without --json, a summary for people.
    let plain = s3_copy(&[from.as_str(), to.as_str()]);
    assert_eq!(plain.status.code(), Some(0));
    assert!(
        text(&plain.stdout).contains("0 copied"),
        "{}",
        text(&plain.stdout)
    );
}

#[tokio::test]
async fn a_dry_run_copies_nothing() {
    let sdk = Emulator::shared().sdk_config().await;
    let client = s3(&sdk);
    let (src, dst) = (
        create_bucket(&sdk, "cli-src").await,
        create_bucket(&sdk, "cli-dst").await,
    );
    for i in 0..3u8 {
        put_object(
            &client,
            &src,
            &format!("{i}"),
            bytes(100, i),
            &Carried::default(),
        )
        .await;
    }
    let output = s3_copy(&[
        &format!("s3://{src}"),
        &format!("s3://{dst}"),
        "--dry-run",
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let json = summary(&output);
    assert_eq!(
        (json["planned"].clone(), json["copied"].clone()),
        (3.into(), 0.into())
    );
    assert!(keys(&client, &dst).await.is_empty());
}

#[tokio::test]
async fn failures_make_the_exit_status_non_zero() {
    let sdk = Emulator::shared().sdk_config().await;
    let client = s3(&sdk);
    let src = create_bucket(&sdk, "cli-src").await;
    put_object(&client, &src, "a", bytes(10, 1), &Carried::default()).await;
    put_object(&client, &src, "b", bytes(10, 2), &Carried::default()).await;

    let missing = unique("no-such-bucket");
    let report = std::env::temp_dir().join(format!("{}.jsonl", unique("report")));
    let output = s3_copy(&[
        &format!("s3://{src}"),
        &format!("s3://{missing}"),
        "--json",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let json = summary(&output);
    assert_eq!(json["failed"], 2, "{json}");
    assert!(json["failures"][0]["error"]
        .as_str()
        .unwrap()
        .contains("NoSuchBucket"));
    // The report: one line per failed object.
    let lines: Vec<Value> = std::fs::read_to_string(&report)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let _ = std::fs::remove_file(&report);
    let mut failed: Vec<&str> = lines.iter().map(|l| l["key"].as_str().unwrap()).collect();
    failed.sort_unstable();
    assert_eq!(failed, ["a", "b"]);
    for line in &lines {
        assert_eq!(line["size"], 10);
        assert_eq!(line["error_class"], "permanent", "{line}");
        assert!(line["message"].as_str().unwrap().contains("NoSuchBucket"));
    }
    // An unwritable report is an error, said so, after an otherwise good copy.
    let dst = create_bucket(&sdk, "cli-dst").await;
    let output = s3_copy(&[
        &format!("s3://{src}"),
        &format!("s3://{dst}"),
        "--report",
        "/nonexistent-dir/report.jsonl",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("could not write the report"));
    assert_eq!(keys(&client, &dst).await.len(), 2);

    let output = s3_copy(&[
        &format!("s3://{missing}"),
        &format!("s3://{src}/copy/"),
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("NoSuchBucket"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(summary(&output)["copied"], 0);
}
