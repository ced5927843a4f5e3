//! `fanout-local demo`, run as `make demo` runs it, ends every process it started (moto server
//! and its helpers, `cargo lambda watch`, the function binaries cargo-lambda spawns in sessions of
//! their own, the smoke test) before it returns.
//!
//! This test process becomes a child subreaper first: whatever the demo leaves orphaned is
//! re-parented here instead of to init, so it is found by ancestry, and reaped. As a second net,
//! any process started since this test began whose command line names one of those programs and
//! this work tree counts too.
//!
//! It needs what `make demo` needs: moto server and cargo-lambda in `.venv` (`make dev-tools`)
//! and the function binaries (`make local-bins`, or `cargo build --workspace --bins` as
//! `make test` does). Without them it fails and says so; it never skips.

mod support;

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use support::{
    as_from_a_shell, become_subreaper, check_prerequisites, end, survivors, workspace_root,
};

#[test]
fn demo_returns_only_after_every_process_it_started_has_ended() {
    let root = workspace_root();
    let programs = check_prerequisites(&root);
    let (me, began) = become_subreaper();

    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fanout-local-demo-{me}.log"));
    let status = demo(&root, &log);

    // Straight away: the guarantee is about the moment the command returns.
    let survivors = survivors(me, began, &root, &programs);
    end(&survivors);

    let transcript = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert!(
        status.success(),
        "fanout-local demo failed ({status}):\n{transcript}"
    );
    assert!(
        transcript.contains("demo passed: every step matched"),
        "{transcript}"
    );
    assert!(
        survivors.is_empty(),
        "fanout-local demo returned while processes it started were still running:\n{}",
        survivors
            .iter()
            .map(|p| format!("  {} (parent {}) {}", p.pid, p.parent, p.command))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Runs `fanout-local demo` as `make demo` does, its transcript written to `log`.
fn demo(root: &Path, log: &Path) -> ExitStatus {
    // The transcript goes to a file, not a pipe: waiting for a pipe to close would also wait for
    // every process that inherited it, and hide the very processes this test looks for.
    let file = std::fs::File::create(log).expect("creating the transcript file");
    let mut demo = as_from_a_shell(Command::new(env!("CARGO_BIN_EXE_fanout-local")), root);
    demo.arg("demo")
        .stdin(Stdio::null())
        .stdout(
            file.try_clone()
                .expect("a second handle on the transcript file"),
        )
        .stderr(file)
        .status()
        .expect("running fanout-local demo")
}
