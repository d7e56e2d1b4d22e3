//! Reading what a run recorded: run.json, events.jsonl, host logs.

use std::path::{Path, PathBuf};

/// The run directories under `runs_dir`, oldest first (ids sort by time).
pub fn run_dirs(runs_dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(runs_dir)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.retain(|d| d.join("run.json").exists());
    dirs.sort();
    dirs
}

pub fn run_json(run_dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run_dir.join("run.json")).expect("run.json");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("run.json is not JSON ({e}):\n{text}"))
}

/// Every line of events.jsonl, parsed (a line that is not JSON fails the test).
pub fn events(run_dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(run_dir.join("events.jsonl")).expect("events.jsonl");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event line ({e}): {l}")))
        .collect()
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// Sends SIGINT to a child (what Ctrl-C does).
pub fn interrupt(child: &std::process::Child) {
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(rc, 0, "cannot send SIGINT");
}

/// mp-remote started like [`super::mp_remote`] does, but not waited for.
pub fn spawn_mp_remote(inventory: Option<&Path>, args: &[&str]) -> std::process::Child {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mp-remote"));
    if let Some(path) = inventory {
        command.arg("-i").arg(path);
    }
    command
        .args(args)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("MP_REMOTE_INVENTORY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start mp-remote")
}
