//! `cargo lambda watch`: the real function binaries behind a local Lambda API, with the
//! environment the template gives them, pointed at the emulator.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use super::{free_port, wait_for_port, ProcessError, Supervisor};
use crate::project::workspace_root;
use crate::template::{Plan, TemplateError, REGION};

/// How long `cargo lambda watch` may take to listen.
const START_LIMIT: Duration = Duration::from_secs(120);

/// The lines `cargo lambda watch` and the functions printed so far.
pub type Logs = Arc<Mutex<Vec<String>>>;

/// `cargo lambda watch` did not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cargo-lambda not found in {}: run `make dev-tools` first", .0.display())]
    Missing(PathBuf),
    #[error("no free port for cargo lambda watch: {0}")]
    NoPort(#[source] std::io::Error),
    #[error(transparent)]
    Environment(#[from] TemplateError),
    #[error("writing the functions' environment to {}: {source}", .path.display())]
    EnvFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("cargo lambda watch did not listen on port {port} within {START_LIMIT:?}")]
    NotListening { port: u16 },
}

/// A `cargo lambda watch` the supervisor runs.
pub struct Watch {
    /// Its address, `http://127.0.0.1:port`.
    pub url: String,
    pub logs: Logs,
}

/// Starts `cargo lambda watch` with the functions' environment, pointed at moto's `endpoint`,
/// and waits until it listens. With `echo`, the functions' output is printed as it comes.
pub async fn start_watch(
    supervisor: &mut Supervisor,
    plan: &Plan,
    endpoint: &str,
    slack: &SlackWebApi,
    echo: bool,
) -> Result<Watch, WatchError> {
    let root = workspace_root();
    let venv_bin = root.join(".venv/bin");
    if !venv_bin.join("cargo-lambda").exists() {
        return Err(WatchError::Missing(venv_bin));
    }
    let port = free_port().map_err(WatchError::NoPort)?;
    let url = format!("http://127.0.0.1:{port}");
    let env_file = write_env_file(plan, endpoint, &url, slack)?;
    println!("▸ starting cargo lambda watch on {url} (the real function binaries)…");
    let mut command = watch_command(&root, &venv_bin, port, &env_file);
    let child = supervisor.spawn("cargo lambda watch", &mut command)?;
    let logs = Logs::default();
    let streams: [Option<Box<dyn AsyncRead + Send + Unpin>>; 2] = [
        child.stdout.take().map(|s| Box::new(s) as _),
        child.stderr.take().map(|s| Box::new(s) as _),
    ];
    for stream in streams.into_iter().flatten() {
        tokio::spawn(collect_lines(stream, logs.clone(), echo));
    }
    if !wait_for_port(port, START_LIMIT).await {
        return Err(WatchError::NotListening { port });
    }
    Ok(Watch { url, logs })
}

/// Instances of each function at once.
const WATCH_CONCURRENCY: &str = "4";

fn watch_command(root: &Path, venv_bin: &Path, port: u16, env_file: &Path) -> Command {
    let path = format!(
        "{}:{}",
        venv_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new("cargo");
    command
        .args([
            "lambda",
            "watch",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port.to_string(),
            "--ignore-changes",
            // s3-fanout invokes itself (a continuation, an inventory's data files) while it
            // runs: one instance per function would wait on itself until the invoke times out.
            "--concurrency",
            WATCH_CONCURRENCY,
            "--env-file",
        ])
        .arg(env_file)
        .current_dir(root)
        .env("PATH", path)
        .env("CARGO_TERM_COLOR", "never")
        .env_remove("SLACK_SIGNING_SECRET")
        .env_remove("SLACK_VERIFICATION_TOKEN")
        .env_remove("SLACK_BOT_TOKEN")
        .env_remove("SLACK_API_URL")
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

async fn collect_lines(stream: Box<dyn AsyncRead + Send + Unpin>, logs: Logs, echo: bool) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if echo {
            println!("  │ {line}");
        }
        logs.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }
}

/// Where the functions that post to Slack post: the Web API's URL, and the bot token itself when
/// it is not the one the local stack keeps in SSM.
#[derive(Debug, Clone)]
pub struct SlackWebApi {
    pub url: String,
    pub bot_token: Option<String>,
}

/// The functions' environment as the template sets it, pointed at the emulator and at
/// `slack`.
fn write_env_file(
    plan: &Plan,
    endpoint: &str,
    watch_url: &str,
    slack: &SlackWebApi,
) -> Result<PathBuf, WatchError> {
    let mut env = plan.merged_env()?;
    env.insert("SLACK_API_URL".into(), slack.url.clone());
    if let Some(token) = &slack.bot_token {
        env.remove("SLACK_BOT_TOKEN_PARAM");
        env.insert("SLACK_BOT_TOKEN".into(), token.clone());
    }
    env.insert("AWS_ENDPOINT_URL".into(), endpoint.into());
    // s3-fanout continues long listings by invoking itself: locally, through cargo lambda.
    env.insert("AWS_ENDPOINT_URL_LAMBDA".into(), watch_url.into());
    env.insert("AWS_REGION".into(), REGION.into());
    env.insert("AWS_DEFAULT_REGION".into(), REGION.into());
    env.insert("AWS_ACCESS_KEY_ID".into(), "testing".into());
    env.insert("AWS_SECRET_ACCESS_KEY".into(), "testing".into());
    env.insert("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into());
    let text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    let dir = workspace_root().join("target/local-stack");
    let path = dir.join(format!("functions-{}.env", std::process::id()));
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, text)) {
        Ok(()) => Ok(path),
        Err(source) => Err(WatchError::EnvFile { path, source }),
    }
}
