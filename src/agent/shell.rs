//! Running shell commands on the host, from the agent.

use std::process::Stdio;

use tokio::process::Command;

/// A finished command: exit code (None: killed by a signal) and its stdout and stderr together,
/// in order, as a person would have seen them.
#[derive(Debug, Clone)]
pub struct ShellOutput {
    pub code: Option<i32>,
    pub output: String,
}

impl ShellOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `script` with `sh -c`, stderr merged into stdout, no stdin.
pub async fn sh(script: &str) -> std::io::Result<ShellOutput> {
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!("exec 2>&1\n{script}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("LC_ALL", "C")
        .kill_on_drop(true)
        .output()
        .await?;
    Ok(ShellOutput {
        code: output.status.code(),
        output: String::from_utf8_lossy(&output.stdout).into_owned(),
    })
}
