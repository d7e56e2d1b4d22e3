//! The audit log: every run that changes a host appends one JSON line to [`AUDIT_FILE`] on that
//! host (who, which run, what, which release before and after, how it ended). The commands are
//! pure functions (tested below); the `async` functions run them.

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::session::Connected;
use crate::transport::shell::{quote, with_become};

pub const AUDIT_DIR: &str = "/var/log/mp-remote";
pub const AUDIT_FILE: &str = "/var/log/mp-remote/audit.jsonl";

/// A `detail` longer than this is cut, so that a line stays one short write.
const DETAIL_MAX_CHARS: usize = 1000;

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// RFC 3339, the control node's clock.
    pub time: String,
    /// `user@control-host`.
    pub owner: String,
    pub run_id: String,
    /// `deploy`, `update`, `rollback`, `clean`, `lock release`.
    pub command: String,
    pub releases: Releases,
    /// `ok`, `failed`, `timed_out`, `interrupted`.
    pub result: String,
    /// Steps that changed something on the host.
    pub changed: u64,
    pub detail: Option<String>,
}

/// The release `{deploy_dir}/current` pointed at before and after the run (None: none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Releases {
    pub before: Option<String>,
    pub after: Option<String>,
}

/// A line read back: an entry, or text that is not one (kept, not an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditLine {
    Entry(AuditEntry),
    Raw(String),
}

impl AuditEntry {
    /// The line to append, newline included; `detail` cut to [`DETAIL_MAX_CHARS`].
    pub fn to_line(&self) -> String {
        let mut entry = self.clone();
        if let Some(detail) = &mut entry.detail {
            if let Some((end, _)) = detail.char_indices().nth(DETAIL_MAX_CHARS) {
                detail.truncate(end);
                detail.push('…');
            }
        }
        // Plain strings and numbers: serialising cannot fail.
        let mut line = serde_json::to_string(&entry).unwrap_or_default();
        line.push('\n');
        line
    }
}

/// Appends the one line on stdin to `file` in one write (O_APPEND: concurrent appends do not
/// interleave), creating the directory 0750 and the file 0640.
pub fn append_command(dir: &str, file: &str) -> String {
    format!(
        "umask 027 && mkdir -p {dir} && chmod 0750 {dir} && IFS= read -r line && printf '%s\\n' \"$line\" >> {file} && chmod 0640 {file}",
        dir = quote(dir),
        file = quote(file)
    )
}

/// The last `n` lines of `file`; nothing when it does not exist.
pub fn read_command(file: &str, n: usize) -> String {
    format!(
        "if [ -e {file} ]; then tail -n {n} {file}; fi",
        file = quote(file)
    )
}

/// The target of `{deploy_dir}/current`; empty when there is none.
pub fn current_command(deploy_dir: &str) -> String {
    format!(
        "readlink {} || true",
        quote(&format!("{}/current", deploy_dir.trim_end_matches('/')))
    )
}

/// The release id in `readlink`'s answer: its last path component.
pub fn parse_current(stdout: &str) -> Option<String> {
    let target = stdout.trim().trim_end_matches('/');
    let id = target.rsplit('/').next()?;
    (!id.is_empty()).then(|| id.to_string())
}

/// Parses `tail`'s lines, oldest first; blank lines are skipped.
pub fn parse_lines(text: &str) -> Vec<AuditLine> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str(l) {
            Ok(entry) => AuditLine::Entry(entry),
            Err(_) => AuditLine::Raw(l.to_string()),
        })
        .collect()
}

/// Appends `entry` to the host's audit log; the line travels on stdin.
pub async fn append(c: &Connected<'_>, entry: &AuditEntry) -> anyhow::Result<()> {
    let command = with_become(&append_command(AUDIT_DIR, AUDIT_FILE), c.host.become_);
    let output = c
        .transport
        .exec(&command, entry.to_line().as_bytes())
        .await?;
    if !output.success() {
        anyhow::bail!(
            "{}: cannot append to {AUDIT_FILE}: {}",
            c.host.name,
            output.stderr_text().trim()
        );
    }
    Ok(())
}

/// The release `{deploy_dir}/current` points at; None when there is none or the host cannot
/// say.
pub async fn current_release(c: &Connected<'_>, deploy_dir: &str) -> Option<String> {
    let command = with_become(&current_command(deploy_dir), c.host.become_);
    let output = c.transport.exec(&command, b"").await.ok()?;
    parse_current(&output.stdout_text())
}

/// The last `n` lines of the host's audit log, oldest first.
pub async fn read(c: &Connected<'_>, n: usize) -> anyhow::Result<Vec<AuditLine>> {
    let command = with_become(&read_command(AUDIT_FILE, n), c.host.become_);
    let output = c
        .transport
        .exec(&command, b"")
        .await
        .with_context(|| format!("reading {AUDIT_FILE}"))?;
    if !output.success() {
        anyhow::bail!(
            "{}: cannot read {AUDIT_FILE}: {}",
            c.host.name,
            output.stderr_text().trim()
        );
    }
    Ok(parse_lines(&output.stdout_text()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    fn entry(detail: Option<&str>) -> AuditEntry {
        AuditEntry {
            time: "2025-01-02T03:04:05.000Z".into(),
            owner: "alice@laptop".into(),
            run_id: "20250102-030405-4242".into(),
            command: "deploy".into(),
            releases: Releases {
                before: Some("0.1.0-abc".into()),
                after: None,
            },
            result: "ok".into(),
            changed: 3,
            detail: detail.map(str::to_string),
        }
    }

    #[test]
    fn line_is_pinned() {
        assert_eq!(
            entry(None).to_line(),
            "{\"time\":\"2025-01-02T03:04:05.000Z\",\"owner\":\"alice@laptop\",\"run_id\":\"20250102-030405-4242\",\"command\":\"deploy\",\"releases\":{\"before\":\"0.1.0-abc\",\"after\":null},\"result\":\"ok\",\"changed\":3,\"detail\":null}\n"
        );
        let long = "x\ny".repeat(1000);
        let line = entry(Some(&long)).to_line();
        assert_eq!(line.matches('\n').count(), 1, "one line");
        let back: AuditEntry = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(back.detail.unwrap().chars().count(), DETAIL_MAX_CHARS + 1);
    }

    #[test]
    fn commands() {
        assert_eq!(
            append_command(AUDIT_DIR, AUDIT_FILE),
            "umask 027 && mkdir -p /var/log/mp-remote && chmod 0750 /var/log/mp-remote && IFS= read -r line && printf '%s\\n' \"$line\" >> /var/log/mp-remote/audit.jsonl && chmod 0640 /var/log/mp-remote/audit.jsonl"
        );
        assert_eq!(
            read_command(AUDIT_FILE, 20),
            "if [ -e /var/log/mp-remote/audit.jsonl ]; then tail -n 20 /var/log/mp-remote/audit.jsonl; fi"
        );
        assert_eq!(
            current_command("/opt/market prism/"),
            "readlink '/opt/market prism/current' || true"
        );
    }

    #[test]
    fn current_release_is_the_last_component() {
        assert_eq!(
            parse_current("/opt/marketprism/releases/0.1.0-abc\n"),
            Some("0.1.0-abc".into())
        );
        assert_eq!(parse_current("releases/7/\n"), Some("7".into()));
        assert_eq!(parse_current(""), None);
    }

    #[test]
    fn unparsable_lines_are_kept_raw() {
        let text = format!(
            "{}garbage\n\n{}",
            entry(None).to_line(),
            entry(Some("d")).to_line()
        );
        assert_eq!(
            parse_lines(&text),
            vec![
                AuditLine::Entry(entry(None)),
                AuditLine::Raw("garbage".into()),
                AuditLine::Entry(entry(Some("d"))),
            ]
        );
    }

    /// The append command run with `sh`: creates the directory and file with their modes,
    /// appends, and a hostile detail stays data.
    #[test]
    fn append_command_appends_lines_with_modes() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        let file = dir.join("audit.jsonl");
        let (dir, file) = (dir.to_str().unwrap(), file.to_str().unwrap());
        for detail in [None, Some("'$(touch pwned)' \\n \"x\"")] {
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(append_command(dir, file))
                .current_dir(tmp.path())
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            let line = entry(detail).to_line();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(line.as_bytes())
                .unwrap();
            assert!(child.wait().unwrap().success());
        }
        let mode = |p: &str| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(dir), mode(file)), (0o750, 0o640));
        let text = std::fs::read_to_string(file).unwrap();
        assert_eq!(
            parse_lines(&text),
            vec![
                AuditLine::Entry(entry(None)),
                AuditLine::Entry(entry(Some("'$(touch pwned)' \\n \"x\""))),
            ]
        );
        assert!(!tmp.path().join("pwned").exists());
        let tail = Command::new("sh")
            .arg("-c")
            .arg(read_command(file, 1))
            .output()
            .unwrap();
        assert_eq!(parse_lines(&String::from_utf8_lossy(&tail.stdout)).len(), 1);
    }
}
