//! The processes below this one, read from /proc, and ending them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use super::ProcessError;

/// A process below this one.
struct Descendant {
    pid: Pid,
    parent: Pid,
    /// Ended, and waiting for its parent to reap it.
    zombie: bool,
}

/// Ends every descendant of this process, SIGTERM first and SIGKILL once `grace` has passed,
/// reaping the ones that were re-parented here; returns when none is left, or after `limit`
/// with the ones that are.
pub async fn end_descendants(grace: Duration, limit: Duration) -> Result<(), ProcessError> {
    let me = Pid::this();
    let started = Instant::now();
    let mut asked = BTreeSet::new();
    loop {
        let descendants = descendants(me).map_err(ProcessError::ReadProc)?;
        for child in descendants.iter().filter(|d| d.parent == me) {
            // Not blocking: a child still running is signalled below and reaped on a later round.
            let _ = waitpid(child.pid, Some(WaitPidFlag::WNOHANG));
        }
        if descendants.is_empty() {
            return Ok(());
        }
        if started.elapsed() > limit {
            return Err(ProcessError::Survivors {
                survivors: descendants
                    .iter()
                    .map(|d| format!("{} {}", d.pid, command(d.pid)))
                    .collect(),
            });
        }
        let force = started.elapsed() >= grace;
        for running in descendants.iter().filter(|d| !d.zombie) {
            if force {
                let _ = kill(running.pid, Signal::SIGKILL);
            } else if asked.insert(running.pid) {
                let _ = kill(running.pid, Signal::SIGTERM);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The processes whose chain of parents leads to `ancestor`, zombies included.
fn descendants(ancestor: Pid) -> procfs::ProcResult<Vec<Descendant>> {
    let all = procfs::process::all_processes()?;
    let mut by_parent: BTreeMap<Pid, Vec<Descendant>> = BTreeMap::new();
    for process in all.flatten() {
        // A process that ended between listing /proc and reading it has no stat any more.
        let Ok(stat) = process.stat() else { continue };
        by_parent
            .entry(Pid::from_raw(stat.ppid))
            .or_default()
            .push(Descendant {
                pid: Pid::from_raw(stat.pid),
                parent: Pid::from_raw(stat.ppid),
                zombie: stat.state == 'Z',
            });
    }
    let mut found = Vec::new();
    let mut parents = vec![ancestor];
    while let Some(parent) = parents.pop() {
        for child in by_parent.remove(&parent).unwrap_or_default() {
            parents.push(child.pid);
            found.push(child);
        }
    }
    Ok(found)
}

/// A process's command line, for a person to recognise it.
fn command(pid: Pid) -> String {
    let process = procfs::process::Process::new(pid.as_raw());
    let words = process.as_ref().ok().and_then(|p| p.cmdline().ok());
    match words {
        Some(words) if !words.is_empty() => words.join(" "),
        _ => process
            .and_then(|p| p.stat())
            .map(|stat| stat.comm)
            .unwrap_or_default(),
    }
}
