//! `--diff`: what a managed file's change looks like, as a unified diff (`diff -u`), the way
//! Ansible's `--check --diff` shows it. The control node prints it through the run's
//! redactor, so a secret registered for the run never shows; files whose name says they hold
//! one show only how many lines changed.

use similar::TextDiff;

/// The file's current text (empty when it does not exist or cannot be read: the diff then
/// shows every line as added).
pub async fn read(path: &str) -> String {
    tokio::fs::read(path)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// `--- path` / `+++ path` and the hunks, 3 lines of context; empty when nothing differs.
pub fn unified(path: &str, before: &str, after: &str) -> String {
    if before == after {
        return String::new();
    }
    let diff = TextDiff::from_lines(before, after);
    if secret_name(path) {
        let (mut added, mut removed) = (0, 0);
        for change in diff.iter_all_changes() {
            match change.tag() {
                similar::ChangeTag::Insert => added += 1,
                similar::ChangeTag::Delete => removed += 1,
                similar::ChangeTag::Equal => {}
            }
        }
        return format!("{path}: {added} line(s) added, {removed} removed (a secret: not shown)\n");
    }
    let old = if before.is_empty() { "/dev/null" } else { path };
    diff.unified_diff()
        .context_radius(3)
        .header(old, path)
        .to_string()
}

/// Files that hold a secret by their name: passwords, keys, tokens.
fn secret_name(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    ["password", "secret", "token", "key", ".env"]
        .iter()
        .any(|word| name.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_line_is_a_hunk_with_context() {
        let before = "a\nb\nrate = 40\nc\n";
        let after = "a\nb\nrate = 80\nc\n";
        let d = unified("/etc/marketprism/collector.toml", before, after);
        assert!(
            d.starts_with(
                "--- /etc/marketprism/collector.toml\n+++ /etc/marketprism/collector.toml\n"
            ),
            "{d}"
        );
        assert!(d.contains("-rate = 40\n+rate = 80\n"), "{d}");
        assert!(d.contains(" b\n"), "{d}");
    }

    #[test]
    fn a_new_file_comes_from_dev_null_and_nothing_changed_is_empty() {
        let d = unified("/etc/x.conf", "", "one\n");
        assert!(d.starts_with("--- /dev/null\n+++ /etc/x.conf\n"), "{d}");
        assert!(d.contains("+one\n"), "{d}");
        assert_eq!(unified("/etc/x.conf", "same\n", "same\n"), "");
    }

    #[test]
    fn a_secret_file_shows_only_counts() {
        let d = unified(
            "/etc/marketprism/storage-clickhouse-password",
            "old\n",
            "new\n",
        );
        assert_eq!(
            d,
            "/etc/marketprism/storage-clickhouse-password: 1 line(s) added, 1 removed (a secret: not shown)\n"
        );
        assert!(!d.contains("new"));
    }
}
