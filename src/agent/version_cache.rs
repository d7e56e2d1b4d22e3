//! Leaves the facts probe's version cache warm after a run that changed the host.
//!
//! The probe remembers each server binary's `--version` in the agents' directory, keyed by
//! path, inode, size and mtime (`probe.sh`, `bin_version`): ClickHouse takes ~25 ms of CPU to
//! say its version. A fresh deploy probes before the servers exist, so without this the first
//! re-run after it asks every host's binaries again (on 10 hosts, a re-run's CPU-bound
//! wall time grew by a fifth). Running the probe here, once the install is done, fills the
//! cache with the very keys the next probe computes.

use std::process::Stdio;

/// Runs the probe for its cache alone (its output is dropped), with this agent's directory
/// as the one agents' directory: the first writable one of the control node's list, where
/// the next probe looks. Nothing when this binary is not an installed agent (a test's
/// `--agent-binary`), so the cache never lands beside some other program.
pub async fn remember() {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let is_agent = exe
        .file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with("mp-remote-"));
    let Some(dir) = exe.parent().filter(|_| is_agent) else {
        return;
    };
    let _ = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(crate::facts::PROBE_SCRIPT)
        .arg("mp-facts")
        // The deploy directory: only the facts dropped here read it (the default then).
        .arg("")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}
