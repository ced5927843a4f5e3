//! Real function binaries run by the benchmarks under the fake Lambda Runtime API, and what
//! the benchmarks read of their processes (memory, CPU time) and of the machine (load).

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use fanout_tests::runtime_api::RuntimeApi;

/// How long a process may take to ask for its first invocation.
const INIT_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a function process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{binary} not found: build it first with `cargo build --release -p {name}` (or run `make bench-words`)")]
    Missing { binary: String, name: String },
    #[error("could not start {binary}: {source}")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    #[error("{binary} did not ask for an invocation within {INIT_TIMEOUT:?} (exit: {status}, init error: {init_error:?})")]
    NoPoll {
        binary: String,
        status: String,
        init_error: Option<String>,
    },
    #[error("could not open the log {path}: {source}")]
    Log {
        path: String,
        source: std::io::Error,
    },
}

/// A function binary and the environment it runs with (beyond what Lambda sets).
#[derive(Debug, Clone)]
pub struct Function {
    pub bin: PathBuf,
    /// The function's name, as Lambda would set it (and the crate that builds it).
    pub name: &'static str,
    pub env: Vec<(&'static str, String)>,
    /// Where its logs go; discarded when absent.
    pub log: Option<PathBuf>,
}

impl Function {
    /// Checks that the binary exists.
    pub fn new(bin: PathBuf, name: &'static str) -> Result<Function, StartError> {
        if !bin.exists() {
            return Err(StartError::Missing {
                binary: bin.display().to_string(),
                name: name.into(),
            });
        }
        Ok(Function {
            bin,
            name,
            env: Vec::new(),
            log: None,
        })
    }

    pub fn env(mut self, name: &'static str, value: impl Into<String>) -> Function {
        self.env.push((name, value.into()));
        self
    }

    /// Starts a process under `api`, without waiting for it.
    pub fn spawn(&self, api: &RuntimeApi) -> Result<Child, StartError> {
        let (stdout, stderr) = match &self.log {
            Some(path) => {
                let log = |source| StartError::Log {
                    path: path.display().to_string(),
                    source,
                };
                let file = File::options()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(log)?;
                (
                    Stdio::from(file.try_clone().map_err(log)?),
                    Stdio::from(file),
                )
            }
            None => (Stdio::null(), Stdio::null()),
        };
        // Only what Lambda would set, plus the emulator's endpoint and the function's own.
        let mut command = api.function_command(&self.bin, self.name);
        command
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        command.spawn().map_err(|source| StartError::Spawn {
            binary: self.bin.display().to_string(),
            source,
        })
    }

    /// Starts a process under `api` (which no other process polls yet) and waits for its first
    /// poll: returns the init time.
    pub async fn start(&self, api: &RuntimeApi) -> Result<(Duration, Child), StartError> {
        let started = Instant::now();
        let mut child = self.spawn(api)?;
        match tokio::time::timeout(INIT_TIMEOUT, api.first_poll()).await {
            Ok(at) => Ok((at - started, child)),
            Err(_) => {
                let status = format!("{:?}", child.try_wait());
                stop(&mut child);
                Err(StartError::NoPoll {
                    binary: self.bin.display().to_string(),
                    status,
                    init_error: api.init_error(),
                })
            }
        }
    }
}

/// Kills a function process and reaps it.
pub fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// VmHWM and VmRSS of a process, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub peak_kib: u64,
    pub current_kib: u64,
}

pub fn memory(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Memory {
        peak_kib: field("VmHWM:"),
        current_kib: field("VmRSS:"),
    }
}

/// User plus system CPU time of a process (from /proc/<pid>/stat, in USER_HZ = 100 ticks/s).
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |at: usize| {
        fields
            .get(at)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line: indices 11 and 12 after the name.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// The machine's load averages (1, 5, 15 minutes).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
