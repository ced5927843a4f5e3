//! What the tests that run `fanout-local` share: where the workspace is, what must be built
//! first, a shell-like environment, and the processes left behind.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

/// The variables cargo sets for a crate's tests, not found in a shell (cargo's reference,
/// "Environment variables Cargo sets for crates").
pub fn set_by_cargo_for_tests(var: &str) -> bool {
    var.starts_with("CARGO_PKG_")
        || var.starts_with("CARGO_BIN_EXE_")
        || [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
        ]
        .contains(&var)
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tools/local is two levels below the workspace root")
        .to_path_buf()
}

/// Fails with what to run when the demo cannot start; returns the names of the programs the demo
/// starts, to look for afterwards.
pub fn check_prerequisites(root: &Path) -> Vec<String> {
    let venv_bin = root.join(".venv/bin");
    for tool in ["moto_server", "cargo-lambda"] {
        assert!(
            venv_bin.join(tool).exists(),
            "{} is missing: run `make dev-tools` (it installs moto server and cargo-lambda into .venv)",
            venv_bin.join(tool).display()
        );
    }
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_fanout-local"))
        .parent()
        .expect("binaries live in a directory");
    let mut programs: Vec<String> = std::fs::read_dir(root.join("functions"))
        .expect("the functions directory")
        .filter_map(|entry| Some(entry.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    programs.push("fanout-smoke".into());
    for binary in &programs {
        assert!(
            bin_dir.join(binary).exists(),
            "{} is missing: run `make local-bins` (or `cargo build --workspace --bins`) first",
            bin_dir.join(binary).display()
        );
    }
    programs.extend(["moto_server".into(), "cargo-lambda".into()]);
    programs
}

#[derive(Debug)]
pub struct Process {
    pub pid: u32,
    pub parent: u32,
    /// Clock ticks after boot.
    pub started: u64,
    pub zombie: bool,
    pub command: String,
    pub cwd: Option<PathBuf>,
    /// Below this test process: the demo's for certain.
    pub descendant: bool,
}

/// The live processes that are descendants of this one, or were started after it and name one of
/// `programs` and this work tree.
pub fn survivors(me: u32, began: u64, root: &Path, programs: &[String]) -> Vec<Process> {
    let all = processes();
    let is_descendant = |mut pid: u32| {
        while let Some(process) = all.get(&pid) {
            if process.parent == me {
                return true;
            }
            pid = process.parent;
        }
        false
    };
    let root_text = root.display().to_string();
    let names_ours = |p: &Process| {
        let here = p.command.contains(&root_text) || p.cwd.as_deref() == Some(root);
        here && programs
            .iter()
            .any(|name| p.command.contains(name.as_str()))
    };
    let descendants: Vec<u32> = all
        .keys()
        .copied()
        .filter(|pid| is_descendant(*pid))
        .collect();
    all.into_values()
        .map(|p| Process {
            descendant: descendants.contains(&p.pid),
            ..p
        })
        .filter(|p| p.pid != me && !p.zombie)
        .filter(|p| p.descendant || (p.started >= began && names_ours(p)))
        .collect()
}

/// Ends the survivors below this process, so that a failing run leaves nothing behind either.
/// The others only match by name, and may be someone else's `make up`: they are only reported.
pub fn end(survivors: &[Process]) {
    let me = std::process::id();
    for process in survivors.iter().filter(|p| p.descendant) {
        let _ = kill(Pid::from_raw(process.pid as i32), Signal::SIGKILL);
    }
    for process in survivors.iter().filter(|p| p.parent == me) {
        let _ = waitpid(Pid::from_raw(process.pid as i32), None);
    }
}

pub fn processes() -> BTreeMap<u32, Process> {
    let Ok(all) = procfs::process::all_processes() else {
        return BTreeMap::new();
    };
    all.flatten()
        .filter_map(|process| {
            // A process that ended since /proc was listed has no stat any more.
            let stat = process.stat().ok()?;
            let command = process.cmdline().unwrap_or_default().join(" ");
            Some(Process {
                pid: u32::try_from(stat.pid).ok()?,
                parent: u32::try_from(stat.ppid).ok()?,
                started: stat.starttime,
                zombie: stat.state == 'Z',
                command,
                cwd: process.cwd().ok(),
                descendant: false,
            })
        })
        .map(|p| (p.pid, p))
        .collect()
}

/// A command for a `fanout-local` binary (or a shell) run as from a shell in `root`: the
/// variables cargo sets for tests removed, `.venv/bin` first on PATH, the project's moto launcher.
pub fn as_from_a_shell(mut command: Command, root: &Path) -> Command {
    // As from a shell: the variables cargo sets for this test would reach the builds cargo
    // lambda watch runs, and one that a build script tracks (ring's CARGO_MANIFEST_DIR) would
    // make them rebuild the AWS SDK, here and again in the next ordinary build.
    for (var, _) in std::env::vars_os() {
        if var.to_str().is_some_and(set_by_cargo_for_tests) {
            command.env_remove(var);
        }
    }
    let path = format!(
        "{}:{}",
        root.join(".venv/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    command
        .current_dir(root)
        .env("PATH", path)
        // The project's moto launcher, as `make demo` runs it (it fixes what moto serves
        // differently from AWS).
        .env("MOTO_SERVER", root.join("tools/moto/moto-server"))
        .env("CARGO_TERM_COLOR", "never");
    command
}

/// Makes this test process a child subreaper (whatever a command leaves orphaned is re-parented
/// here, so it is found by ancestry); returns its pid and start time, for `survivors`.
pub fn become_subreaper() -> (u32, u64) {
    nix::sys::prctl::set_child_subreaper(true).expect("becoming a child subreaper");
    let me = std::process::id();
    let began = processes()
        .get(&me)
        .map(|p| p.started)
        .expect("this test process is in /proc");
    (me, began)
}
