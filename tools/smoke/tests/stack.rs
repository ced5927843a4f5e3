//! fanout-smoke --stack against the emulator: the stack's Outputs and Parameters are read
//! through CloudFormation (AWS_ENDPOINT_URL honoured), the signing secret from SSM, the Slack
//! request goes to a stand-in counter, the words table is polled until the multiplier's share
//! arrives and the word is deleted after; the copy check seeds, starts a run through a
//! stand-in for Lambda's Invoke (AWS_ENDPOINT_URL_LAMBDA: the emulator runs no functions), polls
//! the destination and the runs table, and deletes its objects.

mod support;

use std::process::{Command, Output};
use std::sync::mpsc;
use std::thread::JoinHandle;

use aws_sdk_cloudformation::types::Parameter;
use aws_sdk_dynamodb::types::AttributeValue;
use fanout_smoke::WORD_PREFIX;
use fanout_tests::{copy, unique, Emulator};
use fanout_words_core::slack::{self, Verifier};
use support::{serve_once, serve_one, Received};

/// A word under the reserved prefix, new in this process.
fn reserved_word() -> String {
    unique(WORD_PREFIX).replace('-', "")
}

/// A stand-in counter that answers one request for `word` with `word: 1`, after checking its
/// signature with `secret` (401 otherwise, as slack-counter answers).
fn counter_once(word: &str, secret: &str) -> (String, JoinHandle<()>) {
    let (word, secret) = (word.to_owned(), secret.to_owned());
    serve_once(move |request| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let signed = Verifier::new(Some(secret), None).check_signature(
            request.header("x-slack-request-timestamp"),
            request.header("x-slack-signature"),
            &request.body,
            now,
        );
        if signed.is_err() {
            return (401, r#"{"error":"bad signature"}"#.into());
        }
        let parsed = slack::parse(Some(&request.content_type), &request.body).unwrap();
        let slack::RequestKind::Message(message) = parsed.kind else {
            panic!("not a message");
        };
        assert_eq!(message.text, word);
        (200, format!(r#"{{"text":"{word}: 1"}}"#))
    })
}

/// What the stand-in for s3-fanout's alias `live` does with the run it is asked to start.
#[derive(Clone, Copy)]
enum Fanout {
    /// Copies every object under the event's source to its destination, and records the run
    /// complete and each object `copied` in the runs table, as s3-fanout and s3-copier would.
    Copies,
    /// Answers, and copies nothing.
    DoesNothing,
    /// Fails, as a function whose code raised an error.
    Fails,
}

/// A stand-in for Lambda's Invoke: the endpoint and the request it got.
fn lambda_once(
    fanout: Fanout,
    runs_table: String,
) -> (
    String,
    JoinHandle<()>,
    mpsc::Receiver<(String, serde_json::Value)>,
) {
    let (sent, received) = mpsc::channel();
    let (url, handle) = serve_one(move |request: &Received| {
        let event: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        sent.send((request.path.clone(), event.clone())).unwrap();
        match fanout {
            Fanout::Copies => {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(copy_run(&event, &runs_table));
                (200, Vec::new(), r#"{"published":1}"#.into())
            }
            Fanout::DoesNothing => (200, Vec::new(), "null".into()),
            Fanout::Fails => (
                200,
                vec![("x-amz-function-error", "Unhandled".into())],
                r#"{"errorMessage":"the source is not readable","errorType":"FanoutError"}"#.into(),
            ),
        }
    });
    (url, handle, received)
}

async fn copy_run(event: &serde_json::Value, runs_table: &str) {
    let sdk = Emulator::shared().sdk_config().await;
    let s3 = copy::s3(&sdk);
    let location = |url: &serde_json::Value| {
        let (bucket, prefix) = url
            .as_str()
            .unwrap()
            .strip_prefix("s3://")
            .unwrap()
            .split_once('/')
            .unwrap();
        (bucket.to_owned(), prefix.to_owned())
    };
    let (source, source_prefix) = location(&event["source"]);
    let (destination, destination_prefix) = location(&event["destination"]);
    let run_id = event["run_id"].as_str().unwrap();
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let listed = s3
        .list_objects_v2()
        .bucket(&source)
        .prefix(&source_prefix)
        .send()
        .await
        .unwrap();
    for object in listed.contents() {
        let key = object.key().unwrap();
        let copied = format!("{destination_prefix}{}", &key[source_prefix.len()..]);
        s3.copy_object()
            .copy_source(format!("{source}/{key}"))
            .bucket(&destination)
            .key(&copied)
            .send()
            .await
            .unwrap();
        dynamodb
            .put_item()
            .table_name(runs_table)
            .item(
                "run_id",
                AttributeValue::S(format!("object#{run_id}#{key}")),
            )
            .item("outcome", AttributeValue::S("copied".into()))
            .send()
            .await
            .unwrap();
    }
    dynamodb
        .put_item()
        .table_name(runs_table)
        .item("run_id", AttributeValue::S(run_id.into()))
        .item(
            "completed_at",
            AttributeValue::S("2024-12-13T03:00:09Z".into()),
        )
        .send()
        .await
        .unwrap();
}

/// A fanout-like stack in the emulator: its words table, buckets, runs table and secret.
struct Stack {
    name: String,
    words_table: String,
    source: String,
    destination: String,
    runs_table: String,
}

/// The secret the stack's SSM parameter holds.
const SECRET: &str = "stack-test-secret";

/// Creates the stack, with the Parameters and Outputs fanout's template has (Multiplier 3,
/// the signing secret in an SSM SecureString).
async fn stack(emulator: &Emulator, slack_url: &str) -> Stack {
    let sdk = emulator.sdk_config().await;
    let name = unique("smoke-stack");
    let secret_parameter = format!("/{name}/slack/signing-secret");
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name(&secret_parameter)
        .value(SECRET)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("the emulator stores the parameter");
    let source = copy::create_bucket(&sdk, "smoke-source").await;
    let destination = copy::create_bucket(&sdk, "smoke-destination").await;
    let runs_table = copy::create_runs_table(&sdk).await;
    let template = serde_json::json!({
        "Parameters": {
            "SlackUrl": { "Type": "String" },
            "Multiplier": { "Type": "Number", "Default": 10 },
            "SlackSigningSecretParameter": { "Type": "String" },
            "SourceBucket": { "Type": "String" },
            "DestinationBucket": { "Type": "String" },
            "RunsTable": { "Type": "String" },
            "FanoutName": { "Type": "String" }
        },
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
            "WordsTableName": { "Value": { "Ref": "WordsTable" } },
            "RunsTableName": { "Value": { "Ref": "RunsTable" } },
            "S3FanoutFunctionName": { "Value": { "Ref": "FanoutName" } }
        }
    });
    let parameter = |key: &str, value: &str| {
        Parameter::builder()
            .parameter_key(key)
            .parameter_value(value)
            .build()
    };
    let cloudformation = aws_sdk_cloudformation::Client::new(&sdk);
    cloudformation
        .create_stack()
        .stack_name(&name)
        .template_body(template.to_string())
        .parameters(parameter("SlackUrl", slack_url))
        .parameters(parameter("Multiplier", "3"))
        .parameters(parameter("SlackSigningSecretParameter", &secret_parameter))
        .parameters(parameter("SourceBucket", &source))
        .parameters(parameter("DestinationBucket", &destination))
        .parameters(parameter("RunsTable", &runs_table))
        .parameters(parameter("FanoutName", &format!("{name}-S3Fanout")))
        .send()
        .await
        .expect("the emulator creates the stack");
    let facts = fanout_smoke::describe_stack(&cloudformation, &name)
        .await
        .unwrap();
    Stack {
        words_table: facts.output("WordsTableName").unwrap(),
        name,
        source,
        destination,
        runs_table,
    }
}

/// Runs fanout-smoke against the emulator, with no Slack secret in the environment, off the
/// test's runtime (the stand-ins and the emulator's clients stay on it). `lambda` is where
/// Lambda's Invoke goes (none: a closed port); `more` adds environment variables.
async fn smoke_run(
    lambda: Option<String>,
    more: &[(&'static str, &str)],
    args: &[&str],
) -> (Output, String, String) {
    let owned = |pairs: &[&str]| pairs.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let args = owned(args);
    let more: Vec<(&'static str, String)> = more.iter().map(|(k, v)| (*k, v.to_string())).collect();
    let output = tokio::task::spawn_blocking(move || {
        Emulator::shared()
            .configure(&mut Command::new(env!("CARGO_BIN_EXE_fanout-smoke")))
            .args(&args)
            .env_remove("SLACK_VERIFICATION_TOKEN")
            .env_remove("SLACK_SIGNING_SECRET")
            .env(
                "AWS_ENDPOINT_URL_LAMBDA",
                lambda.as_deref().unwrap_or("http://127.0.0.1:9"),
            )
            .envs(more)
            .output()
            .expect("fanout-smoke runs")
    })
    .await
    .unwrap();
    let (out, err) = texts(&output);
    (output, out, err)
}

fn texts(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn put_count(table: &str, word: &str, count: i64) {
    let sdk = Emulator::shared().sdk_config().await;
    aws_sdk_dynamodb::Client::new(&sdk)
        .put_item()
        .table_name(table)
        .item("word", AttributeValue::S(word.into()))
        .item("count", AttributeValue::N(count.to_string()))
        .send()
        .await
        .unwrap();
}

async fn count(table: &str, word: &str) -> Option<i64> {
    let sdk = Emulator::shared().sdk_config().await;
    fanout_tests::words::count_of(&aws_sdk_dynamodb::Client::new(&sdk), table, word)
        .await
        .unwrap()
}

/// Keys under the reserved prefix in a bucket.
async fn reserved_keys(bucket: &str) -> Vec<String> {
    let sdk = Emulator::shared().sdk_config().await;
    copy::keys(&copy::s3(&sdk), bucket)
        .await
        .into_iter()
        .filter(|key| key.starts_with(fanout_smoke::copy::COPY_PREFIX))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn both_products_pass_with_the_stacks_multiplier_and_secret_and_leave_nothing_behind() {
    let emulator = Emulator::shared();
    let word = reserved_word();
    let (url, counter) = counter_once(&word, SECRET);
    let stack = stack(emulator, &url).await;
    let sdk = emulator.sdk_config().await;
    // The multiplier's share, as sns-multiplier would leave it with the stack's Multiplier 3:
    // 1 + 3. Beside it, a word and an object that are not the smoke test's.
    put_count(&stack.words_table, &word, 4).await;
    put_count(&stack.words_table, "fanoutsmok", 7).await;
    copy::put_object(
        &copy::s3(&sdk),
        &stack.source,
        "photos/kept.jpg",
        b"kept".to_vec(),
        &copy::Carried::default(),
    )
    .await;
    let (lambda, fanout, invoked) = lambda_once(Fanout::Copies, stack.runs_table.clone());

    let (output, out, err) = smoke_run(
        Some(lambda),
        &[],
        &["--stack", &stack.name, "--word", &word],
    )
    .await;
    counter.join().unwrap();
    fanout.join().unwrap();
    assert!(output.status.success(), "{out}\n{err}");

    assert!(
        out.contains(&format!("SlackUrl {url}, Multiplier 3")),
        "{out}"
    );
    assert!(
        out.contains("signing secret: SSM parameter /smoke-stack"),
        "{out}"
    );
    assert!(
        out.contains("= 4 after") && out.contains("added 3"),
        "{out}"
    );
    assert!(
        out.contains(&format!("deleted {}[{word}] (count 4)", stack.words_table)),
        "{out}"
    );
    assert_eq!(count(&stack.words_table, &word).await, None);
    assert_eq!(count(&stack.words_table, "fanoutsmok").await, Some(7));

    // The run: s3-fanout's alias live, limited to the run's own prefix.
    let (path, event) = invoked.recv().unwrap();
    assert!(
        path.starts_with(&format!(
            "/2015-03-31/functions/{}-S3Fanout/invocations",
            stack.name
        )) && path.contains("Qualifier=live"),
        "{path}"
    );
    let run_id = event["run_id"].as_str().unwrap();
    assert!(run_id.starts_with("fanout-smoke-"), "{event}");
    assert_eq!(
        event["source"],
        format!("s3://{}/fanout-smoke/{run_id}/", stack.source)
    );
    assert_eq!(
        event["destination"],
        format!("s3://{}/fanout-smoke/{run_id}/", stack.destination)
    );
    assert!(
        out.contains("the same ETag") && out.contains(&format!("run {run_id} complete")),
        "{out}"
    );
    assert!(out.contains("copy: deleted s3://"), "{out}");
    assert_eq!(reserved_keys(&stack.source).await, Vec::<String>::new());
    assert_eq!(
        reserved_keys(&stack.destination).await,
        Vec::<String>::new()
    );
    assert_eq!(
        copy::keys(&copy::s3(&sdk), &stack.source).await,
        vec!["photos/kept.jpg".to_owned()]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multiplier_that_never_comes_fails_and_the_word_is_still_deleted() {
    let emulator = Emulator::shared();
    let word = reserved_word();
    let (url, counter) = counter_once(&word, SECRET);
    let stack = stack(emulator, &url).await;
    // The counter's own 1; the multiplier's 3 never comes.
    put_count(&stack.words_table, &word, 1).await;
    let (output, out, err) = smoke_run(
        None,
        &[],
        &[
            "--stack",
            &stack.name,
            "--word",
            &word,
            "--timeout",
            "2",
            "--skip-copy",
        ],
    )
    .await;
    counter.join().unwrap();
    assert_eq!(output.status.code(), Some(1), "{out}\n{err}");
    assert!(
        err.contains("is 1, not 4") && err.contains("MultiplierQueue"),
        "{err}"
    );
    assert!(
        out.contains(&format!("deleted {}[{word}] (count 1)", stack.words_table)),
        "{out}"
    );
    assert_eq!(count(&stack.words_table, &word).await, None);
    // --skip-copy: nothing seeded, nothing invoked (Lambda's endpoint is a closed port).
    assert!(out.contains("copy check skipped (--skip-copy)"), "{out}");
    assert!(
        !out.contains("copy: ") && !err.contains("invoking"),
        "{out}\n{err}"
    );
    assert_eq!(reserved_keys(&stack.source).await, Vec::<String>::new());
}

/// A run of the word count (the reply only) and the copy against a new stack whose s3-fanout
/// does `fanout`; the stack, the output, its stdout and stderr.
async fn copy_with(fanout: Fanout, more: &[&str]) -> (Stack, Output, String, String) {
    let word = reserved_word();
    let (url, counter) = counter_once(&word, SECRET);
    let stack = stack(Emulator::shared(), &url).await;
    let (lambda, invoke, _invoked) = lambda_once(fanout, stack.runs_table.clone());
    let mut args = vec!["--stack", &stack.name, "--word", &word, "--skip-multiplier"];
    args.extend_from_slice(more);
    let (output, out, err) = smoke_run(Some(lambda), &[], &args).await;
    counter.join().unwrap();
    invoke.join().unwrap();
    (stack, output, out, err)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_that_never_comes_times_out_and_its_object_is_deleted() {
    let (stack, output, out, err) = copy_with(Fanout::DoesNothing, &["--copy-timeout", "2"]).await;
    assert_eq!(output.status.code(), Some(1), "{out}\n{err}");
    assert!(
        err.contains("there is no copy at") && err.contains("CopyDLQ"),
        "{err}"
    );
    assert!(out.contains("copy: seeded s3://"), "{out}");
    assert!(
        out.contains(&format!("copy: deleted s3://{}/", stack.source)),
        "{out}"
    );
    assert_eq!(reserved_keys(&stack.source).await, Vec::<String>::new());
    // The word check passed, and its word (never stored here) needed no delete.
    assert!(out.contains("no item to delete"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fanout_that_fails_is_reported_and_the_seeded_object_deleted() {
    let (stack, output, out, err) = copy_with(Fanout::Fails, &[]).await;
    assert_eq!(output.status.code(), Some(1), "{out}\n{err}");
    assert!(
        err.contains(&format!(
            "invoking {}-S3Fanout:live failed: Unhandled",
            stack.name
        )) && err.contains("the source is not readable"),
        "{err}"
    );
    assert_eq!(reserved_keys(&stack.source).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_secret_parameter_flag_reads_ssm_and_a_missing_one_is_named() {
    let emulator = Emulator::shared();
    let sdk = emulator.sdk_config().await;
    let parameter = format!("/{}/signing-secret", unique("smoke-flag"));
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name(&parameter)
        .value("flag-secret")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let word = reserved_word();
    let (url, counter) = counter_once(&word, "flag-secret");
    let (output, out, err) = smoke_run(
        None,
        &[],
        &[
            "--slack-url",
            &url,
            "--signing-secret-param",
            &parameter,
            "--word",
            &word,
        ],
    )
    .await;
    counter.join().unwrap();
    assert!(output.status.success(), "{out}\n{err}");
    assert!(
        out.contains(&format!("signing secret: SSM parameter {parameter}")),
        "{out}"
    );

    let (output, out, err) = smoke_run(
        None,
        &[],
        &[
            "--slack-url",
            &url,
            "--signing-secret-param",
            "/fanout/no/such/parameter",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{out}\n{err}");
    assert!(
        err.contains("/fanout/no/such/parameter") && err.contains("ssm:GetParameter"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delete_the_role_may_not_make_fails_and_says_what_is_left() {
    let word = reserved_word();
    let (url, counter) = counter_once(&word, SECRET);
    // DynamoDB refuses the DeleteItem, as it does for a role without dynamodb:DeleteItem.
    let (dynamodb, refused) = serve_one(|request| {
        assert_eq!(
            request.header("x-amz-target"),
            Some("DynamoDB_20120810.DeleteItem")
        );
        let asked: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            asked["ConditionExpression"],
            "begins_with(#word, :reserved)"
        );
        assert_eq!(
            asked["ExpressionAttributeValues"][":reserved"]["S"],
            "fanoutsmoke"
        );
        (
            400,
            vec![("x-amzn-errortype", "AccessDeniedException".into())],
            r#"{"__type":"com.amazon.coral.service#AccessDeniedException","Message":"User: arn:aws:sts::123456789012:assumed-role/smoke is not authorized to perform: dynamodb:DeleteItem"}"#.into(),
        )
    });
    let (output, out, err) = smoke_run(
        None,
        &[("AWS_ENDPOINT_URL_DYNAMODB", &dynamodb)],
        &[
            "--slack-url",
            &url,
            "--signing-secret",
            SECRET,
            "--words-table",
            "words",
            "--skip-multiplier",
            "--word",
            &word,
        ],
    )
    .await;
    counter.join().unwrap();
    refused.join().unwrap();
    assert_eq!(output.status.code(), Some(1), "{out}\n{err}");
    assert!(
        err.contains(&format!("could not delete words[{word}]"))
            && err.contains("AccessDenied")
            && err.contains("needs dynamodb:DeleteItem"),
        "{err}"
    );
    assert!(!out.contains("smoke test passed"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_stack_is_named() {
    let (output, _, err) = smoke_run(
        None,
        &[],
        &["--stack", "no-such-stack", "--signing-secret", "s"],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("no-such-stack"), "{err}");
}
