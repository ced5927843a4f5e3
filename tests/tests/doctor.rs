//! `make doctor` (tools/doctor.sh) on a machine without Rust: it says what is missing and how to
//! get it, and fails.

use std::path::Path;
use std::process::Command;

use fanout_tests::workspace_root;

/// A PATH of just the tools the doctor itself uses, without cargo or rustc.
fn path_without_rust(dir: &Path) -> String {
    for tool in [
        "bash", "sed", "sort", "head", "awk", "df", "nproc", "grep", "tr", "python3",
    ] {
        // python3 may be a shim that needs its manager on the PATH: link the interpreter.
        let find = if tool == "python3" {
            "python3 -c 'import sys; print(sys.executable)'".to_owned()
        } else {
            format!("command -v {tool}")
        };
        let found = Command::new("bash")
            .args(["-c", &find])
            .output()
            .expect("bash runs");
        let target = String::from_utf8(found.stdout).unwrap();
        let target = target.trim();
        assert!(!target.is_empty(), "{tool} is on this machine's PATH");
        std::os::unix::fs::symlink(target, dir.join(tool)).unwrap();
    }
    dir.display().to_string()
}

#[test]
fn the_doctor_names_what_is_missing_and_how_to_get_it() {
    let dir = std::env::temp_dir().join(format!("fanout-doctor-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let output = Command::new(dir.join("bash"))
        .arg("tools/doctor.sh")
        .current_dir(workspace_root())
        .env("PATH", path_without_rust(&dir))
        .output()
        .expect("the doctor runs");
    std::fs::remove_dir_all(&dir).unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("MISSING  Rust"), "{text}");
    assert!(text.contains("rustup"), "{text}");
    assert!(text.contains("ok       Python"), "{text}");
    assert!(text.contains("Fix what is MISSING above"), "{text}");
}
