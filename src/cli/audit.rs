//! `mp-remote audit [--host H] [-n N]`: the last lines of each selected host's audit log, as
//! one table, hosts in inventory order.

use std::fmt::Write;

use crate::inventory::Host;
use crate::report::ExitCode;
use crate::run::audit::{self, AuditEntry, AuditLine};
use crate::run::session::Connected;
use crate::run::{for_each_host, FanOut};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Only this host (one of the selected hosts).
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// How many lines from each host (the latest).
    #[arg(short = 'n', long, default_value_t = 20, value_name = "LINES")]
    pub lines: usize,
}

pub async fn run(selected: &[&Host], fanout: &FanOut, args: &Args) -> ExitCode {
    let hosts: Vec<&Host> = match &args.host {
        Some(name) => match selected.iter().find(|h| &h.name == name) {
            Some(host) => vec![*host],
            None => {
                eprintln!(
                    "error: --host {name:?} is not a selected host; selected: {}",
                    selected
                        .iter()
                        .map(|h| h.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return ExitCode::Usage;
            }
        },
        None => selected.to_vec(),
    };
    let lines = args.lines;
    let outcomes = for_each_host(&hosts, fanout, |transport, host| async move {
        audit::read(&Connected::new(host, transport), lines).await
    })
    .await;
    let answered: Vec<(&str, &[AuditLine])> = outcomes
        .iter()
        .filter_map(|o| Some((o.host.as_str(), o.value.as_deref()?)))
        .collect();
    print!("{}", table(&answered));
    for o in &outcomes {
        if let Some(error) = &o.error {
            eprintln!("{}: {error}", o.status);
        }
    }
    ExitCode::from_statuses(outcomes.iter().map(|o| o.status))
}

/// One row per line (oldest first within a host), a `detail` on its own indented line.
pub fn table(hosts: &[(&str, &[AuditLine])]) -> String {
    let mut out = String::new();
    let width = hosts
        .iter()
        .map(|(h, _)| h.len())
        .chain([4])
        .max()
        .unwrap_or(4);
    let _ = writeln!(
        out,
        "{:<width$}  {:<24}  {:<20}  {:<20}  {:<12}  {:<27}  {:<7}  CHANGED",
        "HOST", "TIME", "OWNER", "RUN", "COMMAND", "RELEASE BEFORE -> AFTER", "RESULT"
    );
    for (host, lines) in hosts {
        if lines.is_empty() {
            let _ = writeln!(out, "{host:<width$}  (no audit lines)");
        }
        for line in lines.iter() {
            match line {
                AuditLine::Entry(entry) => row(&mut out, host, width, entry),
                AuditLine::Raw(text) => {
                    let _ = writeln!(out, "{host:<width$}  (not an audit entry) {text}");
                }
            }
        }
    }
    out
}

fn row(out: &mut String, host: &str, width: usize, e: &AuditEntry) {
    let release = |r: &Option<String>| r.clone().unwrap_or_else(|| "-".into());
    let releases = format!(
        "{} -> {}",
        release(&e.releases.before),
        release(&e.releases.after)
    );
    let _ = writeln!(
        out,
        "{host:<width$}  {:<24}  {:<20}  {:<20}  {:<12}  {:<27}  {:<7}  {}",
        e.time, e.owner, e.run_id, e.command, releases, e.result, e.changed
    );
    if let Some(detail) = &e.detail {
        let _ = writeln!(out, "{:<width$}    {detail}", "");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::audit::Releases;

    #[test]
    fn table_rows() {
        let entry = AuditEntry {
            time: "2025-01-02T03:04:05.000Z".into(),
            owner: "alice@laptop".into(),
            run_id: "20250102-030405-4242".into(),
            command: "deploy".into(),
            releases: Releases {
                before: None,
                after: Some("0.1.0-abc".into()),
            },
            result: "ok".into(),
            changed: 12,
            detail: Some("why".into()),
        };
        let h1 = [AuditLine::Entry(entry), AuditLine::Raw("junk".into())];
        let text = table(&[("h1", &h1), ("h2", &[])]);
        assert_eq!(
            text,
            "HOST  TIME                      OWNER                 RUN                   COMMAND       RELEASE BEFORE -> AFTER      RESULT   CHANGED\n\
             h1    2025-01-02T03:04:05.000Z  alice@laptop          20250102-030405-4242  deploy        - -> 0.1.0-abc               ok       12\n\
             \x20       why\n\
             h1    (not an audit entry) junk\n\
             h2    (no audit lines)\n"
        );
    }
}
