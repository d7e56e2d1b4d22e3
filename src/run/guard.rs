//! What every run that changes hosts does around its work: a lease on each host before
//! anything changes (a second operator is refused), and afterwards one audit line on each
//! host it changed.

use std::collections::BTreeMap;

use super::audit::{self, AuditEntry, Releases};
use super::deploy::HostDeploy;
use super::lease::{self, LeaseRequest};
use super::session::{Connected, Ended};
use crate::agent::StepStatus;
use crate::plan::probe::LeaseAnswer;
use crate::report::HostStatus;

/// Takes a lease on every connected host. Hosts lost on the way end unreachable and the
/// others are leased again; a host held by another run, or whose lease file cannot be read,
/// refuses the whole run before anything changed. `already`: the hosts' answers to the same
/// acquire, asked beside the facts probe (`agent begin`).
pub async fn take_leases<'h>(
    mut connected: Vec<Connected<'h>>,
    request: &LeaseRequest,
    already: BTreeMap<String, LeaseAnswer>,
) -> anyhow::Result<(Vec<Connected<'h>>, Vec<Ended>)> {
    let mut ended = Vec::new();
    let mut already = already;
    loop {
        let taken = lease::acquire_all_with(&connected, request, &already).await;
        // A failed round gave back what it took: the next one asks again.
        already.clear();
        let Err(errors) = taken else {
            return Ok((connected, ended));
        };
        if !errors.iter().all(|e| e.is_unreachable()) {
            let lines: Vec<String> = errors
                .iter()
                .filter(|e| !e.is_unreachable())
                .map(|e| e.to_string())
                .collect();
            anyhow::bail!(
                "another run holds the fleet; nothing was changed:\n  {}",
                lines.join("\n  ")
            );
        }
        for error in errors {
            connected.retain(|c| c.host.name != error.host());
            ended.push(Ended {
                host: error.host().to_string(),
                status: HostStatus::Unreachable,
                error: error.to_string(),
            });
        }
    }
}

/// Appends one audit line on every host the run changed or failed on.
pub async fn audit(
    connected: &[Connected<'_>],
    request: &LeaseRequest,
    results: &BTreeMap<String, HostDeploy>,
) {
    let time = crate::report::builder::rfc3339(std::time::SystemTime::now());
    let lines = connected.iter().filter_map(|c| {
        let r = results.get(&c.host.name)?;
        let changed = r.count(StepStatus::Changed) as u64;
        if changed == 0 && r.status == HostStatus::Ok {
            return None;
        }
        if matches!(r.status, HostStatus::Unreachable | HostStatus::Skipped) {
            return None;
        }
        let entry = AuditEntry {
            time: time.clone(),
            owner: request.owner.clone(),
            run_id: request.run_id.clone(),
            command: request.command.clone(),
            releases: releases(&r.steps),
            result: r.status.as_str().into(),
            changed,
            detail: r.error.clone().or_else(|| r.note.clone()),
        };
        Some(async move {
            if let Err(e) = audit::append(c, &entry).await {
                tracing::warn!("{}: cannot append to the audit log: {e:#}", c.host.name);
            }
        })
    });
    futures::future::join_all(lines).await;
}

/// The pipeline release before and after the run, from what its release steps said:
/// "install release X", "switch … to release X (was Y)", "release X is current",
/// "rolled back to release X (was Y, …)".
pub fn releases(steps: &[crate::agent::StepEnd]) -> Releases {
    let mut out = Releases::default();
    let mut first = true;
    for step in steps
        .iter()
        .filter(|s| s.step == "install.app.release" || s.step == "start.app.rollback")
        .filter(|s| s.status != StepStatus::Failed)
    {
        let words: Vec<&str> = step.message.split_whitespace().collect();
        let to = words
            .iter()
            .position(|w| *w == "release")
            .and_then(|i| words.get(i + 1))
            .map(|w| {
                w.trim_matches(|c: char| !c.is_ascii_alphanumeric())
                    .to_string()
            });
        let was = words
            .iter()
            .position(|w| *w == "(was")
            .and_then(|i| words.get(i + 1))
            .map(|w| {
                w.trim_matches(|c: char| !c.is_ascii_alphanumeric())
                    .to_string()
            });
        if first {
            out.before = if step.message.starts_with("install release") {
                None
            } else {
                was.clone().or(to.clone())
            };
            first = false;
        }
        if to.is_some() {
            out.after = to;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::StepEnd;
    use crate::plan::LayerName;

    fn step(id: &str, message: &str) -> StepEnd {
        StepEnd {
            layer: LayerName::Install,
            step: id.into(),
            status: StepStatus::Changed,
            duration_ms: 0,
            message: message.into(),
            changes: vec![],
            output_tail: String::new(),
            hint: None,
            output: String::new(),
            data: BTreeMap::new(),
            diff: String::new(),
            cpu_ms: None,
        }
    }

    #[test]
    fn releases_before_and_after_from_the_steps() {
        let r = releases(&[step(
            "install.app.release",
            "switch /opt/marketprism/current to release bbbb (was aaaa)",
        )]);
        assert_eq!(
            (r.before.as_deref(), r.after.as_deref()),
            (Some("aaaa"), Some("bbbb"))
        );
        let r = releases(&[step(
            "install.app.release",
            "install release bbbb as /opt/marketprism/current",
        )]);
        assert_eq!(
            (r.before.as_deref(), r.after.as_deref()),
            (None, Some("bbbb"))
        );
        // An update rolled back automatically ends where it began.
        let r = releases(&[
            step(
                "install.app.release",
                "switch /o/current to release bbbb (was aaaa)",
            ),
            step(
                "start.app.rollback",
                "rolled back to release aaaa (was bbbb, kept as previous for inspection)",
            ),
        ]);
        assert_eq!(
            (r.before.as_deref(), r.after.as_deref()),
            (Some("aaaa"), Some("aaaa"))
        );
        let r = releases(&[step("install.app.release", "release cccc is current")]);
        assert_eq!(
            (r.before.as_deref(), r.after.as_deref()),
            (Some("cccc"), Some("cccc"))
        );
        assert_eq!(releases(&[]), Releases::default());
    }
}
