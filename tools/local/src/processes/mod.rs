//! The processes the stack starts, and the guarantee that every one of them, and everything they
//! start in turn, has ended when the stack stops.
//!
//! Killing our own children is not enough: cargo lambda watch starts each function binary in a
//! session of its own, so signalling cargo-lambda's process group misses them, and a process
//! whose parent exits first is re-parented to init, where nothing of ours sees it again. So:
//!
//! - this process becomes a *child subreaper*: an orphan anywhere below it is re-parented to it
//!   rather than to init, and so stays its descendant until it is reaped;
//! - each child runs in a process group of its own, away from the terminal's, so that Ctrl-C
//!   reaches only this process, which then stops the children in order; PR_SET_PDEATHSIG is the
//!   backstop if this process is killed outright;
//! - stopping asks each child's group to stop (SIGTERM), waits for the child, then ends every
//!   descendant still in /proc (SIGTERM, then SIGKILL) and reaps the ones re-parented here,
//!   until none is left.

use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

mod moto;
mod ports;
mod tree;
mod watch;

pub use moto::{start_moto, MotoError};
pub use ports::{free_port, wait_for_port};
pub use watch::{start_watch, Logs, SlackWebApi, WatchError};

/// How long a process may take to stop after SIGTERM before it gets SIGKILL.
const GRACE: Duration = Duration::from_secs(5);
/// How long stopping may take in all before it reports the processes that are left.
const LIMIT: Duration = Duration::from_secs(20);

/// Starting or stopping the stack's processes failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot adopt the stack's orphaned processes (PR_SET_CHILD_SUBREAPER): {0}")]
    Subreaper(#[source] nix::Error),
    #[error("starting {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("cannot list the processes the stack started: {0}")]
    ReadProc(#[source] procfs::ProcError),
    #[error("{} process(es) the stack started still run after {:?}: {}", .survivors.len(), LIMIT, .survivors.join("; "))]
    Survivors { survivors: Vec<String> },
}

/// The stack's child processes.
pub struct Supervisor {
    children: Vec<Child>,
}

impl Supervisor {
    /// Makes this process the reaper of every process below it; see the module's documentation.
    pub fn new() -> Result<Supervisor, ProcessError> {
        nix::sys::prctl::set_child_subreaper(true).map_err(ProcessError::Subreaper)?;
        Ok(Supervisor {
            children: Vec::new(),
        })
    }

    /// Starts `command` in a process group of its own, and keeps it until [`Supervisor::stop`].
    pub fn spawn(
        &mut self,
        program: &str,
        command: &mut Command,
    ) -> Result<&mut Child, ProcessError> {
        command.process_group(0).kill_on_drop(true);
        // SAFETY: the closure runs in the child between fork and exec and only makes one
        // async-signal-safe system call (prctl). The signal is sent when the thread that forked
        // the child ends: the stack starts its processes from the main thread, which lives as
        // long as this process.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
            });
        }
        let child = command.spawn().map_err(|source| ProcessError::Spawn {
            program: program.to_owned(),
            source,
        })?;
        let index = self.children.len();
        self.children.push(child);
        Ok(&mut self.children[index])
    }

    /// Stops every process the stack started, directly or not, and returns once all have ended
    /// and been reaped.
    pub async fn stop(&mut self) -> Result<(), ProcessError> {
        // The newest first: the functions under cargo lambda watch still use moto as they stop.
        while let Some(child) = self.children.pop() {
            stop_child(child).await;
        }
        tree::end_descendants(GRACE, LIMIT).await
    }
}

/// Asks the child's process group to stop, and waits for the child.
async fn stop_child(mut child: Child) {
    let Some(group) = child.id().and_then(|id| i32::try_from(id).ok()) else {
        return; // already waited for
    };
    let group = Pid::from_raw(group);
    let _ = killpg(group, Signal::SIGTERM);
    if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait().await;
    }
}
