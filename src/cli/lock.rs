//! `mp-remote lock status|release`: who holds each selected host's lease, and removing one
//! left by a dead run (recorded in the host's audit log).

use std::time::SystemTime;

use crate::inventory::Host;
use crate::report::builder::{rfc3339, run_id};
use crate::report::ExitCode;
use crate::run::audit::{self, AuditEntry, Releases};
use crate::run::lease::{self, LeaseError, Observed, Removed};
use crate::run::session::Connected;
use crate::run::status::deploy_dir;
use crate::run::{for_each_host, FanOut, HostOutcome};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum LockCommand {
    /// Who holds each selected host's lease (run, command, since, expiry), or free.
    Status,
    /// Remove the lease on each selected host (pick them with --limit), whoever holds it: for
    /// a run that died. Recorded in each host's audit log with the reason.
    Release {
        /// Why (kept in the audit log), e.g. "laptop crashed during deploy".
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

pub async fn run(hosts: &[&Host], fanout: &FanOut, command: &LockCommand) -> ExitCode {
    match command {
        LockCommand::Status => status(hosts, fanout).await,
        LockCommand::Release { reason } => release(hosts, fanout, reason).await,
    }
}

async fn status(hosts: &[&Host], fanout: &FanOut) -> ExitCode {
    let outcomes = for_each_host(hosts, fanout, |transport, host| async move {
        let c = Connected::new(host, transport);
        lease::observe(&c).await.map_err(host_error)
    })
    .await;
    print_outcomes(&outcomes, status_line)
}

async fn release(hosts: &[&Host], fanout: &FanOut, reason: &str) -> ExitCode {
    let reason = reason.trim();
    if reason.is_empty() {
        eprintln!("error: lock release needs a --reason that says why (it goes to the audit log)");
        return ExitCode::Usage;
    }
    let owner = lease::local_owner();
    let now = SystemTime::now();
    let id = run_id(now, std::process::id());
    let outcomes = for_each_host(hosts, fanout, |transport, host| {
        let (owner, id) = (&owner, &id);
        async move {
            let c = Connected::new(host, transport);
            let Some(removed) = lease::force_release(&c).await.map_err(host_error)? else {
                return Ok(None);
            };
            let release = audit::current_release(&c, deploy_dir(host)).await;
            let entry = release_entry(&rfc3339(now), owner, id, reason, &removed, release);
            audit::append(&c, &entry).await.map_err(|error| {
                anyhow::anyhow!("{}: removed the {removed}, but {error:#}", host.name)
            })?;
            Ok(Some(removed))
        }
    })
    .await;
    print_outcomes(&outcomes, |removed| match removed {
        Some(removed) => format!("removed the {removed}"),
        None => "free: no lease to remove".into(),
    })
}

/// A transport failure stays one (an unreachable host exits 3); anything else fails the host.
fn host_error(error: LeaseError) -> anyhow::Error {
    match error {
        LeaseError::Transport { source, .. } => anyhow::Error::new(source),
        other => anyhow::Error::new(other),
    }
}

/// One line per host that answered, the errors on stderr; the exit code of them all.
fn print_outcomes<T>(outcomes: &[HostOutcome<T>], line: impl Fn(&T) -> String) -> ExitCode {
    let width = outcomes.iter().map(|o| o.host.len()).max().unwrap_or(0);
    for o in outcomes {
        match (&o.value, &o.error) {
            (Some(value), _) => println!("{:<width$}  {}", o.host, line(value)),
            (None, Some(error)) => eprintln!("{}: {error}", o.status),
            (None, None) => {}
        }
    }
    ExitCode::from_statuses(outcomes.iter().map(|o| o.status))
}

/// `held by alice@laptop  run 2025…  deploy  since …  expires in 4m12s`, `free`, or
/// `expired (run …, since …)`; expiry on the host's clock.
pub fn status_line(observed: &Observed) -> String {
    let Some(lease) = &observed.lease else {
        return "free".into();
    };
    match observed.remaining() {
        Some(seconds) => format!(
            "held by {}  run {}  {}  since {}  expires in {}",
            lease.owner,
            lease.run_id,
            lease.command,
            lease.started,
            short_duration(seconds)
        ),
        None => format!(
            "expired (run {}, {}, by {}, since {})",
            lease.run_id, lease.command, lease.owner, lease.started
        ),
    }
}

/// `4m12s`, `1h0m5s`, `9s`.
pub fn short_duration(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s:02}s"),
        _ => format!("{h}h{m:02}m{s:02}s"),
    }
}

/// The audit line of a `lock release` that removed `removed`.
pub fn release_entry(
    time: &str,
    owner: &str,
    run_id: &str,
    reason: &str,
    removed: &Removed,
    release: Option<String>,
) -> AuditEntry {
    AuditEntry {
        time: time.into(),
        owner: owner.into(),
        run_id: run_id.into(),
        command: "lock release".into(),
        releases: Releases {
            before: release.clone(),
            after: release,
        },
        result: "ok".into(),
        changed: 1,
        detail: Some(format!("{reason}; removed the {removed}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::lease::Lease;

    fn lease(expires_epoch: i64) -> Lease {
        Lease {
            format: 1,
            owner: "alice@laptop".into(),
            run_id: "20250102-030405-4242".into(),
            command: "deploy".into(),
            started: "2025-01-02T03:04:05Z".into(),
            expires: "2025-01-02T03:09:05Z".into(),
            expires_epoch,
        }
    }

    #[test]
    fn status_lines() {
        let at = |lease| Observed {
            host_now: 1000,
            lease,
        };
        assert_eq!(status_line(&at(None)), "free");
        assert_eq!(
            status_line(&at(Some(lease(1252)))),
            "held by alice@laptop  run 20250102-030405-4242  deploy  since 2025-01-02T03:04:05Z  expires in 4m12s"
        );
        assert_eq!(
            status_line(&at(Some(lease(1000)))),
            "expired (run 20250102-030405-4242, deploy, by alice@laptop, since 2025-01-02T03:04:05Z)"
        );
    }

    #[test]
    fn short_durations() {
        for (seconds, text) in [(9, "9s"), (252, "4m12s"), (60, "1m00s"), (3605, "1h00m05s")] {
            assert_eq!(short_duration(seconds), text);
        }
    }

    #[test]
    fn release_entry_says_why_and_what() {
        let entry = release_entry(
            "2025-01-02T04:00:00.000Z",
            "bob@desk",
            "20250102-040000-7",
            "dead run",
            &Removed::Lease(lease(1252)),
            Some("0.1.0-abc".into()),
        );
        assert_eq!(entry.command, "lock release");
        assert_eq!(entry.releases.before.as_deref(), Some("0.1.0-abc"));
        assert_eq!(entry.releases.after.as_deref(), Some("0.1.0-abc"));
        assert_eq!(
            entry.detail.as_deref(),
            Some("dead run; removed the lease of alice@laptop (run 20250102-030405-4242, deploy) since 2025-01-02T03:04:05Z, expiring 2025-01-02T03:09:05Z")
        );
    }
}
