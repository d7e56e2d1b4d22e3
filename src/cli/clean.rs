//! `mp-remote clean`: shows what it will remove on which host, asks (or needs `--yes`), then
//! undoes the deploy; data directories stay unless `--purge-data`. The run is recorded.

use std::io::{BufRead, IsTerminal, Write};

use super::progress::{Recorder, Settings};
use crate::inventory::Host;
use crate::report::record::{StepRecord, StepState};
use crate::report::{ExitCode, HostEnd, HostStatus, Redactor};
use crate::run::clean::{clean, plan, CleanDone, CleanPlan};
use crate::run::lease::{self, LeaseRequest};
use crate::run::{audit, guard, session, FanOut, HostOutcome};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Do not ask; needed when stdin is not a terminal.
    #[arg(long)]
    pub yes: bool,
    /// Also delete the data (JetStream store, ClickHouse data) and purge the packages.
    #[arg(long)]
    pub purge_data: bool,
}

pub async fn run(
    hosts: &[&Host],
    services: &[crate::inventory::UserService],
    fanout: &FanOut,
    args: Args,
    settings: &Settings,
) -> ExitCode {
    let mut plans: Vec<CleanPlan> = hosts
        .iter()
        .map(|h| plan(h, args.purge_data).with_user_services(services))
        .collect();
    for p in &plans {
        describe(p);
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            eprintln!(
                "error: clean removes the above from {} host(s) and stdin is not a terminal to ask: pass --yes to go ahead",
                plans.len()
            );
            return ExitCode::Usage;
        }
        if !confirm(plans.len()) {
            eprintln!("nothing done");
            return ExitCode::Usage;
        }
    }
    let names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
    let recorder = Recorder::start(settings, "clean", false, &names, Redactor::default());
    // The fleet lock, as for deploy: nothing is removed while another run works here.
    let request = LeaseRequest::new(recorder.id(), "clean");
    let (connected, _) = session::connect_all(hosts, fanout).await;
    let leased = match guard::take_leases(connected, &request, Default::default()).await {
        Ok((leased, _)) => leased,
        Err(error) => {
            eprintln!("error: {error:#}");
            recorder.finish(ExitCode::Usage, false, Some(format!("{error:#}")));
            return ExitCode::Usage;
        }
    };
    // The agent gives the lease back once it is done: clean removes it from the host.
    let release = lease::call(lease::Action::Release, lease::LEASE_FILE, Some(&request));
    for p in &mut plans {
        p.release_lease = Some(release.clone());
    }
    let work = lease::keep_renewed(&leased, &request, clean(&plans, hosts, fanout));
    let outcomes = match recorder.interruptible(work).await {
        Ok(outcomes) => outcomes,
        Err(_signal) => {
            lease::release_all(&leased, &request.run_id).await;
            return recorder.end_interrupted();
        }
    };
    audit(&leased, &request, &outcomes).await;
    // Where the agent did not answer, it could not give the lease back.
    let unanswered: Vec<session::Connected<'_>> = leased
        .iter()
        .filter(|c| {
            !outcomes
                .iter()
                .any(|o| o.host == c.host.name && o.value.is_some())
        })
        .cloned()
        .collect();
    lease::release_all(&unanswered, &request.run_id).await;
    for c in &leased {
        c.transport.close().await;
    }
    for o in &outcomes {
        record_host(&recorder, o);
    }
    let code = ExitCode::from_statuses(outcomes.iter().map(|o| o.status));
    // Clearing the live view erases the lines above it: it goes before anything is printed.
    recorder.finish(code, false, None);
    for o in &outcomes {
        if let Some(done) = &o.value {
            if done.did.is_empty() && done.failed.is_empty() {
                println!("{:<16} {:<7} nothing left to remove", o.host, o.status);
            }
            for line in &done.did {
                println!("{:<16} {:<7} {line}", o.host, o.status);
            }
            for dir in &done.kept {
                println!("{:<16} {:<7} kept {dir}", o.host, o.status);
            }
        }
        if let Some(error) = &o.error {
            println!("{:<16} {:<7} {error}", o.host, o.status);
        }
    }
    code
}

/// One audit line on each host clean removed something from.
async fn audit(
    leased: &[session::Connected<'_>],
    request: &LeaseRequest,
    outcomes: &[HostOutcome<CleanDone>],
) {
    let time = crate::report::builder::rfc3339(std::time::SystemTime::now());
    for c in leased {
        let Some(o) = outcomes.iter().find(|o| o.host == c.host.name) else {
            continue;
        };
        let Some(done) = o
            .value
            .as_ref()
            .filter(|d| !d.did.is_empty() || !d.failed.is_empty())
        else {
            continue;
        };
        let entry = audit::AuditEntry {
            time: time.clone(),
            owner: request.owner.clone(),
            run_id: request.run_id.clone(),
            command: "clean".into(),
            releases: audit::Releases::default(),
            result: o.status.as_str().into(),
            changed: done.did.len() as u64,
            detail: (!done.failed.is_empty()).then(|| done.failed.join("; ")),
        };
        if let Err(e) = audit::append(c, &entry).await {
            eprintln!(
                "warning: {}: cannot append to the audit log: {e:#}",
                c.host.name
            );
        }
    }
}

/// One `clean` step per host: what it removed, what it kept, what it could not remove.
fn record_host(recorder: &Recorder, o: &HostOutcome<CleanDone>) {
    let (status, message, mut changes) = match &o.value {
        Some(done) if !done.failed.is_empty() => {
            (StepState::Failed, done.failed.join("; "), done.did.clone())
        }
        Some(done) if done.did.is_empty() => (
            StepState::Ok,
            "nothing left to remove".to_string(),
            Vec::new(),
        ),
        Some(done) => (
            StepState::Changed,
            format!("removed {} item(s)", done.did.len()),
            done.did.clone(),
        ),
        None if o.status == HostStatus::Unreachable => (
            StepState::Unreachable,
            o.error.clone().unwrap_or_default(),
            Vec::new(),
        ),
        None => (
            StepState::Failed,
            o.error.clone().unwrap_or_default(),
            Vec::new(),
        ),
    };
    if let Some(done) = &o.value {
        changes.extend(done.kept.iter().map(|dir| format!("kept {dir}")));
    }
    recorder.step(
        &o.host,
        StepRecord {
            layer: "clean".into(),
            step: "clean".into(),
            status,
            duration_ms: o.duration.as_millis() as u64,
            error: status
                .is_failure()
                .then(|| o.error.clone().unwrap_or(message.clone())),
            message,
            changes,
            ..StepRecord::default()
        },
    );
    recorder.host_done(&o.host, HostEnd::new(o.status, o.error.clone(), o.duration));
}

fn describe(p: &CleanPlan) {
    println!("{}:", p.host);
    println!("  user services     every mp-svc-* unit mp-remote wrote (with its release, env file and account), declared or not");
    for service in &p.user_services {
        println!(
            "  user service      {} (stop {}; delete {}; account {})",
            service.name,
            service.unit,
            service.files.join(", "),
            service.user
        );
    }
    if !p.units.is_empty() {
        println!("  stop and disable  {}", p.units.join(", "));
        let how = if p.purge_data { "purge" } else { "remove" };
        println!("  apt-get {how:<9} {}", p.packages.join(", "));
    }
    let mut files = p.files.clone();
    files.extend(p.user_files.iter().cloned());
    println!("  delete            {}", files.join(", "));
    if !p.data.is_empty() {
        let dirs: Vec<&str> = p.data.iter().map(|d| d.path).collect();
        if p.purge_data {
            println!("  DELETE DATA in    {}", dirs.join(", "));
        } else {
            println!(
                "  keep data         {} (--purge-data deletes it)",
                dirs.join(", ")
            );
        }
    }
}

fn confirm(hosts: usize) -> bool {
    print!("Remove the above from {hosts} host(s)? [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
}
