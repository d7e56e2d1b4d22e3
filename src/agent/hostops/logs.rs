//! `agent logs`: the end of a service's log: its journal under systemd, else the log of
//! mp-remote's supervisor (`/var/log/mp-remote/UNIT.log`).

use tokio::process::Command;

use super::observe::systemd;
use crate::agent::supervise;

/// The last `lines` lines of `unit`'s log; Err says why it cannot be read.
pub async fn tail(unit: &str, lines: u32) -> Result<String, String> {
    if !systemd() {
        let path = supervise::Paths::of(unit).log;
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "cannot read {} (mp-remote's supervisor's log; no systemd here): {e}",
                path.display()
            )
        })?;
        return Ok(crate::agent::outcome::tail(&text, lines as usize));
    }
    let out = Command::new("journalctl")
        .args(["-u", unit, "-n", &lines.to_string(), "--no-pager"])
        .output()
        .await
        .map_err(|e| format!("cannot run journalctl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "journalctl -u {unit} failed ({}): {}; it needs root or the adm group: connect as root or set become = true",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
