//! Plain text: the recap table that ends every run, each failure with its hint, one host's
//! details, and the list of runs.

use std::fmt::Write;

use super::{command_line, data_line, facts_line, secs, services_line, versions_line};
use crate::report::record::{HostRecord, HostState, RunRecord, StepState};

/// The widest a padded column gets: a longer value (a record written by another version, a
/// hand-edited run.json) overflows its column instead of widening every line, and the
/// formatter's width limit (65,535) is never reached.
pub const MAX_COLUMN: usize = 64;

/// ANSI colours, or none (NO_COLOR, --no-color, not a terminal, a file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paint(pub bool);

impl Paint {
    /// `text` (already padded) in the colour of `word`: failures red, changes yellow, ok green.
    pub fn status(self, text: &str, word: &str) -> String {
        let code = match word {
            "ok" => "32",
            "changed" | "would" | "rolled_back" => "33",
            "skipped" | "running" => "2",
            "failed" | "FAILED" | "unreachable" | "timed_out" | "interrupted" | "error" => "31",
            _ => return text.to_string(),
        };
        self.code(code, text)
    }

    /// One line of a unified diff: additions green, removals red, hunk headers cyan.
    pub fn diff_line(self, line: &str) -> String {
        let code = match line.as_bytes().first() {
            Some(b'+') if !line.starts_with("+++") => "32",
            Some(b'-') if !line.starts_with("---") => "31",
            Some(b'@') => "36",
            _ => return line.to_string(),
        };
        self.code(code, line)
    }

    pub fn bold(self, text: &str) -> String {
        self.code("1", text)
    }

    pub fn dim(self, text: &str) -> String {
        self.code("2", text)
    }

    fn code(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// The table that ends a run: per host ok, changed, failed, skipped, unreachable, time and
/// versions; then "nothing changed" when so, then each host's error (with its hint).
pub fn recap(record: &RunRecord, paint: Paint) -> String {
    let width = record
        .hosts
        .iter()
        .map(|h| h.name.len())
        .max()
        .unwrap_or(0)
        .clamp(14, MAX_COLUMN);
    let mut out = String::from("\n");
    let header = format!(
        "{:<width$} {:<11} {:>4} {:>8} {:>7} {:>8} {:>8} {:>9}  versions",
        "HOST",
        "STATUS",
        "OK",
        if record.check { "WOULD" } else { "CHANGED" },
        "FAILED",
        "SKIPPED",
        "UNREACH",
        "TIME"
    );
    let _ = writeln!(out, "{}", paint.bold(&header));
    for host in &record.hosts {
        let status = paint.status(
            &format!("{:<11}", host.status.as_str()),
            host.status.as_str(),
        );
        let _ = writeln!(
            out,
            "{:<width$} {status} {:>4} {:>8} {:>7} {:>8} {:>8} {:>9}  {}",
            host.name,
            host.count(StepState::Ok),
            host.count(StepState::Changed),
            host.failed_steps(),
            host.count(StepState::Skipped),
            usize::from(host.status == HostState::Unreachable),
            secs(host.duration_ms),
            versions_line(host)
        );
    }
    let _ = writeln!(out, "{}", totals(record));
    out.push_str(&batches(record, paint));
    let changed: usize = record
        .hosts
        .iter()
        .map(|h| h.count(StepState::Changed))
        .sum();
    let all_ok = record.hosts.iter().all(|h| h.status == HostState::Ok);
    if all_ok && changed == 0 && !record.interrupted && record.command != "facts" {
        let _ = writeln!(out, "\nnothing changed: every host already as wanted");
    }
    out.push_str(&failures(record, paint));
    out
}

/// A rolling run: one line per batch (`batch 2/5  nats        ok           12.3s  h2`), its
/// data-flow or rollback detail below it, then why the rollout stopped.
pub fn batches(record: &RunRecord, paint: Paint) -> String {
    let mut out = String::new();
    if record.batches.is_empty() {
        return out;
    }
    let total = record.batches.len();
    let _ = writeln!(out);
    for b in &record.batches {
        let result = paint.status(&format!("{:<11}", b.result), &b.result);
        let _ = writeln!(
            out,
            "batch {:>2}/{total} {:<10} {result} {:>9}  {}",
            b.index,
            b.group,
            secs(b.duration_ms),
            b.hosts.join(", ")
        );
        if let Some(detail) = &b.detail {
            let _ = writeln!(out, "  {}", paint.dim(detail));
        }
    }
    if let Some(why) = &record.stopped {
        let _ = writeln!(out, "{}: {why}", paint.status("stopped", "failed"));
    }
    out
}

/// `3 hosts: 1 ok, 1 failed, 1 unreachable in 5.0s`
pub fn totals(record: &RunRecord) -> String {
    let mut counts: Vec<(HostState, usize)> = Vec::new();
    for host in &record.hosts {
        match counts.iter_mut().find(|(s, _)| *s == host.status) {
            Some((_, n)) => *n += 1,
            None => counts.push((host.status, 1)),
        }
    }
    counts.sort_by_key(|(s, _)| s.as_str());
    let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let mut line = format!(
        "{} host{}: {} in {}",
        record.hosts.len(),
        if record.hosts.len() == 1 { "" } else { "s" },
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        },
        secs(record.duration_ms)
    );
    if record.interrupted {
        line.push_str(" (interrupted)");
    }
    line
}

/// Each host's error on its own line: `failed: h1: install x: ...; hint`.
pub fn failures(record: &RunRecord, paint: Paint) -> String {
    let mut out = String::new();
    if let Some(error) = &record.error {
        let _ = writeln!(out, "\n{}: {error}", paint.status("error", "error"));
    }
    for host in &record.hosts {
        if let Some(error) = &host.error {
            let status = host.status.as_str();
            let _ = writeln!(out, "\n{}: {error}", paint.status(status, status));
            if let Some(note) = &host.note {
                let _ = writeln!(out, "  {note}");
            }
            // The hint of a failed step, unless the error line carries it already.
            for step in host.steps.iter().filter(|s| s.status.is_failure()) {
                if let Some(hint) = step.hint.as_ref().filter(|h| !error.contains(h.as_str())) {
                    let _ = writeln!(out, "  hint: {hint}");
                }
            }
        }
    }
    out
}

/// One host: facts, versions, services, data, then every step with its changes, output and
/// hint.
pub fn host_details(host: &HostRecord) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} in {}",
        host.name,
        host.status,
        secs(host.duration_ms)
    );
    let lines = [
        ("facts", facts_line(host).unwrap_or_default()),
        ("versions", versions_line(host)),
        ("services", services_line(host)),
        ("data", data_line(host)),
        ("error", host.error.clone().unwrap_or_default()),
        ("log", host.log.clone()),
    ];
    for (label, value) in lines.iter().filter(|(_, v)| !v.is_empty()) {
        let _ = writeln!(out, "  {label:<9} {value}");
    }
    if host.steps.is_empty() {
        return out;
    }
    let width = host
        .steps
        .iter()
        .map(|s| s.step.len())
        .max()
        .unwrap_or(0)
        .clamp(4, MAX_COLUMN);
    let _ = writeln!(
        out,
        "\n  {:<8} {:<width$} {:<11} {:>8} {:>8}  MESSAGE",
        "LAYER", "STEP", "STATUS", "START", "TIME"
    );
    for s in &host.steps {
        let _ = writeln!(
            out,
            "  {:<8} {:<width$} {:<11} {:>8} {:>8}  {}",
            s.layer,
            s.step,
            s.status.as_str(),
            format!("+{}", secs(s.offset_ms)),
            secs(s.duration_ms),
            s.message
        );
        for change in s.changes.iter().filter(|c| !s.message.contains(c.as_str())) {
            let _ = writeln!(out, "      - {change}");
        }
        if s.status.is_failure() {
            for line in s.output_tail.lines() {
                let _ = writeln!(out, "      | {line}");
            }
        }
        if let Some(hint) = &s.hint {
            let _ = writeln!(out, "      hint: {hint}");
        }
    }
    out
}

/// `report --format text`: the run, its recap, and the details of `host` (else of every host
/// that did not end ok, else of the only host).
pub fn report(record: &RunRecord, host: Option<&str>) -> String {
    let mut out = format!(
        "run {}: {} {}, started {}, {}{}\ninventory {} (sha256 {})\n",
        record.id,
        "mp-remote",
        command_line(record),
        record.started,
        record.result,
        record
            .exit_code
            .map(|c| format!(" (exit {c})"))
            .unwrap_or_default(),
        record.inventory.path,
        record.inventory.sha256
    );
    out.push_str(&recap(record, Paint(false)));
    let chosen: Vec<&HostRecord> = match host {
        Some(name) => record.hosts.iter().filter(|h| h.name == name).collect(),
        None => {
            let bad: Vec<&HostRecord> = record
                .hosts
                .iter()
                .filter(|h| h.status != HostState::Ok)
                .collect();
            if bad.is_empty() && record.hosts.len() == 1 {
                record.hosts.iter().collect()
            } else {
                bad
            }
        }
    };
    for host in chosen {
        out.push('\n');
        out.push_str(&host_details(host));
    }
    out
}

/// `mp-remote runs`: one line per run, oldest first.
pub fn runs_table(records: &[&RunRecord]) -> String {
    let width = records
        .iter()
        .map(|r| r.id.len())
        .max()
        .unwrap_or(0)
        .clamp(6, MAX_COLUMN);
    let mut out = format!(
        "{:<width$} {:<15} {:<24} {:>5} {:<12} {:>9}\n",
        "RUN", "COMMAND", "STARTED", "HOSTS", "RESULT", "TIME"
    );
    for r in records {
        let _ = writeln!(
            out,
            "{:<width$} {:<15} {:<24} {:>5} {:<12} {:>9}",
            r.id,
            command_line(r),
            r.started,
            r.hosts.len(),
            r.result.as_str(),
            secs(r.duration_ms)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::sample;
    use super::*;

    #[test]
    fn recap_table_and_failures() {
        let expected = "
HOST           STATUS        OK  CHANGED  FAILED  SKIPPED  UNREACH      TIME  versions
h1             failed         1        1       1        1        0      4.0s  nats-server 2.9.10
h2             unreachable    0        0       0        0        1      0.0s  
2 hosts: 1 failed, 1 unreachable in 5.0s

failed: h1: install install.clickhouse: apt-get failed; free disk space & retry

unreachable: h2: cannot connect to 10.0.0.2:22: connection refused
";
        assert_eq!(recap(&sample(), Paint(false)), expected);
    }

    #[test]
    fn names_past_the_formatter_width_limit_do_not_panic() {
        let mut record = sample();
        let long = "h".repeat(70_000);
        record.id = long.clone();
        record.hosts[0].name = long.clone();
        record.hosts[0].steps[0].step = long.clone();
        let text = recap(&record, Paint(false));
        assert!(
            text.contains(&format!("{long} failed")),
            "the name is kept whole"
        );
        assert!(host_details(&record.hosts[0]).contains(&long));
        assert!(runs_table(&[&record]).contains(&long));
        assert!(report(&record, None).contains(&long));
    }

    #[test]
    fn recap_says_nothing_changed() {
        let mut record = sample();
        record.hosts.truncate(1);
        record.hosts[0].status = HostState::Ok;
        record.hosts[0].error = None;
        record.hosts[0].steps.truncate(1);
        record.check = true;
        let text = recap(&record, Paint(false));
        assert!(text.contains(" WOULD "), "{text}");
        assert!(
            text.ends_with(
                "1 host: 1 ok in 5.0s\n\nnothing changed: every host already as wanted\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn colours_only_when_asked() {
        let text = recap(&sample(), Paint(true));
        assert!(text.contains("\x1b[31mfailed     \x1b[0m"), "{text:?}");
        assert!(!recap(&sample(), Paint(false)).contains('\x1b'));
    }

    #[test]
    fn host_details_show_steps_changes_output_and_hint() {
        let expected = "\
h1: failed in 4.0s
  facts     debian 12, x86_64, 2 CPUs, 4.0 GiB memory, 20.0 GiB disk free, init systemd
  versions  nats-server 2.9.10
  services  nats nats://10.0.0.1:4222 healthy
  data      trades 12
  error     h1: install install.clickhouse: apt-get failed; free disk space & retry
  log       hosts/h1.log

  LAYER    STEP               STATUS         START     TIME  MESSAGE
  detect   detect.ports       ok             +0.0s     0.2s  detect.ports ok
  install  install.nats       changed        +0.2s     1.3s  install.nats changed
      - install nats-server
  install  install.clickhouse failed         +1.5s     2.5s  apt-get failed
      | E: <disk> full
      hint: free disk space & retry
  init     init.schema        skipped        +4.0s     0.0s  init.schema skipped
";
        assert_eq!(host_details(&sample().hosts[0]), expected);
    }

    #[test]
    fn report_picks_the_hosts_that_did_not_end_ok() {
        let text = report(&sample(), None);
        assert!(text.starts_with("run 20240102-030405-7: mp-remote deploy, started 2024-01-02T03:04:05.000Z, failed (exit 2)\ninventory /srv/inv.toml (sha256 abc123)\n"), "{text}");
        assert!(
            text.contains("\nh1: failed in 4.0s\n") && text.contains("\nh2: unreachable in 0.0s\n")
        );
        let one = report(&sample(), Some("h2"));
        assert!(!one.contains("h1: failed in"));
    }

    #[test]
    fn runs_list() {
        let record = sample();
        let expected = "\
RUN               COMMAND         STARTED                  HOSTS RESULT            TIME
20240102-030405-7 deploy          2024-01-02T03:04:05.000Z     2 failed            5.0s
";
        assert_eq!(runs_table(&[&record]), expected);
    }
}
