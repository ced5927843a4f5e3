//! The project's test tools, shared by the integration tests (in `tests/`), the benchmarks, the
//! smoke test and the local stack:
//!
//! - [`Emulator`]: a real AWS emulator (moto server) on a free port, and [`sdk_config`] for it;
//! - [`runtime_api::RuntimeApi`]: a stand-in for the Lambda Runtime API that drives a real
//!   function binary, times its invocations and keeps its init error; [`serve`], the HTTP/1.1
//!   loop under it and under the benchmark's latency proxy;
//! - [`ports`]: a free local port, and a wait until a server listens on it;
//! - fixtures: [`create_table`] and [`create_unique_table`], [`words`] (the words table and its
//!   counts, topics and probe queues), [`copy`] (buckets, objects, the runs table, a failing
//!   part);
//! - [`iam`]: the SDK operations a client sends, as the IAM actions they need;
//! - [`slack_api::SlackApi`]: a stand-in for Slack's Web API, recording the posts.
//!
//! moto is installed by `make test` into the project's `.venv`. When it is missing the tests fail
//! with a message that says how to install it; they never skip.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the workspace")
        .to_path_buf()
}

/// Where the moto server executable is: `$MOTO_SERVER`, else the project's launcher
/// (`tools/moto/moto-server`: moto from `.venv`, DynamoDB served one request at a time).
pub fn moto_server_path() -> PathBuf {
    std::env::var_os("MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("tools/moto/moto-server"))
}

/// A running moto server. One is shared by all the tests of a test binary; each test makes
/// its own uniquely named resources. It stops when the test process exits (its watchdog shell
/// sees standard input close), so no server outlives the tests.
pub struct Emulator {
    pub endpoint: String,
    _child: Child,
}

static EMULATOR: OnceLock<Emulator> = OnceLock::new();

impl Emulator {
    /// The shared emulator, started on first use.
    pub fn shared() -> &'static Emulator {
        EMULATOR.get_or_init(Emulator::start)
    }

    /// Starts a new moto server on a free port and waits until it answers.
    pub fn start() -> Emulator {
        let moto = moto_server_path();
        assert!(
            moto.exists() && workspace_root().join(".venv/bin/moto_server").exists(),
            "moto server not found at {}: run `make test` (it installs the pinned moto[server] into .venv), or set MOTO_SERVER to a moto_server executable",
            moto.display()
        );
        let port = ports::free_port().expect("a free local port");
        // The shell kills moto when our end of its stdin closes, even if this process is killed.
        let script = format!(
            "\"$0\" -H 127.0.0.1 -p {port} >/dev/null 2>&1 & pid=$!; echo started; cat >/dev/null; kill $pid 2>/dev/null; wait $pid 2>/dev/null"
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(&moto)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", moto.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("the moto watchdog starts");
        let endpoint = format!("http://127.0.0.1:{port}");
        if ports::wait_for_port(port, Duration::from_secs(60)).is_err() {
            panic!("moto server did not start listening on port {port} within 60 s");
        }
        Emulator {
            endpoint,
            _child: child,
        }
    }

    /// Points a child process's AWS SDK at the emulator with the test credentials, and keeps
    /// the rest of the environment's AWS configuration (profiles, files, IMDS) out of it.
    pub fn configure<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env("AWS_EC2_METADATA_DISABLED", "true")
    }

    /// SDK configuration for the emulator: fixed test credentials, us-east-1.
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config(&self.endpoint).await
    }
}

/// SDK configuration for an emulator at `endpoint`, or for a proxy in front of one: fixed test
/// credentials, us-east-1.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "fanout-tests",
        ))
        .load()
        .await
}

/// A function binary built beside this test binary (target/<profile>/<name>); a clear failure
/// when it is not built.
pub fn built_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let binary = dir.join(name);
    assert!(
        binary.exists(),
        "{} is not built: run `cargo build --workspace --bins` first (make test does)",
        binary.display()
    );
    binary
}

/// A name no other test in this process uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A global secondary index of a table, keys only: a partition key and a sort key, both
/// numbers (the words table's leaderboard, `by-count`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberIndex {
    pub name: String,
    pub partition_key: String,
    pub sort_key: String,
}

/// Creates an on-demand DynamoDB table `name` with a String partition key `key`, and the
/// `indexes`.
pub async fn create_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
    key: &str,
    indexes: &[NumberIndex],
) -> Result<(), SdkError<CreateTableError>> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType,
    };
    let attribute = |name: &str, kind: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .expect("a complete attribute definition")
    };
    let key_element = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("a complete key schema")
    };
    let mut request = dynamodb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(key, ScalarAttributeType::S))
        .key_schema(key_element(key, KeyType::Hash));
    let mut defined = vec![key.to_owned()];
    for index in indexes {
        for number in [&index.partition_key, &index.sort_key] {
            if !defined.contains(number) {
                request = request.attribute_definitions(attribute(number, ScalarAttributeType::N));
                defined.push(number.clone());
            }
        }
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&index.name)
                .key_schema(key_element(&index.partition_key, KeyType::Hash))
                .key_schema(key_element(&index.sort_key, KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .expect("a complete index"),
        );
    }
    request.send().await?;
    Ok(())
}

/// Creates a table as [`create_table`] does, named after `prefix` and unique in this process,
/// and returns its name.
pub async fn create_unique_table(
    sdk: &SdkConfig,
    prefix: &str,
    key: &str,
    indexes: &[NumberIndex],
) -> String {
    let name = unique(prefix);
    create_table(&aws_sdk_dynamodb::Client::new(sdk), &name, key, indexes)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "create table {name}: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(e)
            )
        });
    name
}

pub mod copy;
pub mod gate;
pub mod iam;
pub mod inventory;
pub mod ports;
pub mod runtime_api;
pub mod serve;
pub mod slack_api;
pub mod words;
