//! The rolling run itself: batch after batch, each deployed (the servers, the pipeline, the
//! user's services; or rolled back), then gated;
//! a batch that fails its gate is rolled back; a failure budget that runs out stops the
//! rollout and leaves the later batches alone.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::budget::{verdict, Tally};
use super::order::{self, Batch, Group};
use super::{BatchOutcome, BatchResult, Notes, Rolling, RolloutNote};
use crate::agent::StepStatus;
use crate::inventory::{Host, Role};
use crate::plan;
use crate::report::HostStatus;
use crate::run::deploy::{absorb, run, HostDeploy};
use crate::run::phases::{pipeline_phases, rollback_hosts, servers_phase, streams_phase, Ctx};
use crate::run::session;
use crate::run::user_services::{rollback_services, services_phase, Bundle};

/// Runs every batch; returns each batch's outcome and, when a budget stopped the rollout, why.
pub(in crate::run) async fn roll(
    ctx: &Ctx<'_, '_>,
    selected: &[&Host],
    rolling: &Rolling,
    results: &mut BTreeMap<String, HostDeploy>,
    notes: &Notes,
    bundles: &[Bundle],
) -> (Vec<BatchOutcome>, Option<String>) {
    let rollback = ctx.options.rollback.clone();
    // A rollback only touches hosts that run a release.
    let rolled: Vec<(String, Vec<Role>)> = selected
        .iter()
        .filter(|h| rollback.is_none() || plan::rollout::has_release(h))
        .map(|h| (h.name.clone(), h.roles.clone()))
        .collect();
    let fleet: Vec<(String, Vec<Role>)> = ctx
        .inventory
        .hosts
        .iter()
        .map(|h| (h.name.clone(), h.roles.clone()))
        .collect();
    // Hosts a rollback leaves alone still end with a word on why.
    let untouched: Vec<String> = selected
        .iter()
        .filter(|h| !rolled.iter().any(|(n, _)| *n == h.name))
        .map(|h| h.name.clone())
        .collect();
    if !untouched.is_empty() {
        rollback_hosts(ctx, &untouched, None, results).await;
    }
    let batches = order::batches(&rolled, &rolling.serial);
    notes(RolloutNote::Plan {
        batches: &batches,
        gaps: order::gaps(&fleet),
    });
    let total = rolled.len();
    let last_nats = batches.iter().rposition(|b| b.group == Group::Nats);
    let (mut failed_total, mut unreachable_total) = (0usize, 0usize);
    let mut stopped: Option<String> = None;
    let mut outcomes = Vec::new();
    for (i, batch) in batches.iter().enumerate() {
        if let Some(why) = &stopped {
            for name in &batch.hosts {
                results.insert(name.clone(), skipped(name, batch.index, why));
            }
            let outcome = BatchOutcome::of(batch, BatchResult::Skipped, Duration::ZERO, None);
            notes(RolloutNote::BatchEnded(&outcome));
            outcomes.push(outcome);
            continue;
        }
        notes(RolloutNote::BatchStarted(batch));
        let started = Instant::now();
        match &rollback {
            Some(to) => rollback_hosts(ctx, &batch.hosts, to.clone(), results).await,
            None => {
                servers_phase(ctx, &batch.hosts, results).await;
                pipeline_phases(ctx, &batch.hosts, results).await;
                // The user's services roll with their hosts: a service that does not come up
                // healthy fails its host in this batch, before later batches are touched.
                services_phase(ctx, &batch.hosts, bundles, results).await;
            }
        }
        let mut detail = gate(ctx, batch, rollback.is_some(), results).await;
        if rollback.is_none() && Some(i) == last_nats && ok(results, &batch.hosts) {
            // Every NATS node runs its new config: now the streams may change.
            streams_phase(ctx, results).await;
        }
        // A rollback restores each host's status, so these hold for the whole batch.
        let failed_hosts = hosts_with(results, batch, &[HostStatus::Failed, HostStatus::TimedOut]);
        let unreachable_hosts = hosts_with(results, batch, &[HostStatus::Unreachable]);
        let rolled_back = if rollback.is_none() && !failed_hosts.is_empty() {
            roll_back_failed(ctx, batch, results).await
        } else {
            Vec::new()
        };
        for name in &batch.hosts {
            if let Some(entry) = results.get_mut(name) {
                entry.batch = Some(batch.index);
            }
        }
        // The batch's hosts are done: rolled back or not, no later batch touches them.
        ctx.tell_ended(results, Some(&batch.hosts), true);
        let (failed, unreachable) = (failed_hosts.len(), unreachable_hosts.len());
        failed_total += failed;
        unreachable_total += unreachable;
        if !rolled_back.is_empty() {
            let line = format!("rolled back: {}", rolled_back.join(", "));
            detail = Some(match detail {
                Some(d) => format!("{d}; {line}"),
                None => line,
            });
        }
        let result = if failed + unreachable == 0 {
            BatchResult::Ok
        } else if !rolled_back.is_empty() {
            BatchResult::RolledBack
        } else {
            BatchResult::Failed
        };
        let outcome = BatchOutcome::of(batch, result, started.elapsed(), detail);
        notes(RolloutNote::BatchEnded(&outcome));
        outcomes.push(outcome);
        let tally = Tally {
            failed: failed_hosts,
            unreachable: unreachable_hosts,
            failed_total,
            unreachable_total,
            hosts: total,
            later: batches[i + 1..].iter().map(|b| b.hosts.len()).sum(),
        };
        if let Some(why) = verdict(rolling, batch, &tally) {
            notes(RolloutNote::Stopped(&why));
            stopped = Some(why);
        }
    }
    (outcomes, stopped)
}

fn status(results: &BTreeMap<String, HostDeploy>, name: &str) -> HostStatus {
    results.get(name).map_or(HostStatus::Skipped, |e| e.status)
}

/// The hosts of `batch` that ended with one of `wanted`.
fn hosts_with(
    results: &BTreeMap<String, HostDeploy>,
    batch: &Batch,
    wanted: &[HostStatus],
) -> Vec<String> {
    batch
        .hosts
        .iter()
        .filter(|n| wanted.contains(&status(results, n)))
        .cloned()
        .collect()
}

fn ok(results: &BTreeMap<String, HostDeploy>, names: &[String]) -> bool {
    names.iter().all(|n| status(results, n) == HostStatus::Ok)
}

fn skipped(name: &str, batch: usize, why: &str) -> HostDeploy {
    HostDeploy {
        host: name.to_string(),
        status: HostStatus::Skipped,
        error: None,
        facts: None,
        steps: Vec::new(),
        duration: Duration::ZERO,
        batch: Some(batch),
        note: Some(format!("not started: {why}")),
    }
}

/// The batch's gate: every service of its hosts healthy several probes in a row (and NATS
/// replicas current), then data still flowing into ClickHouse, checked on a storage host.
/// Returns what the gate said of the data flow.
async fn gate(
    ctx: &Ctx<'_, '_>,
    batch: &Batch,
    rollback: bool,
    results: &mut BTreeMap<String, HostDeploy>,
) -> Option<String> {
    let hosts: Vec<_> = ctx
        .ready_among(&batch.hosts)
        .into_iter()
        .filter(|r| status(results, &r.c.host.name) == HostStatus::Ok)
        .collect();
    if hosts.is_empty() {
        return None;
    }
    let check_only = ctx.options.check_only;
    let connections: Vec<_> = hosts.iter().map(|r| r.c.clone()).collect();
    let outcomes = session::on_each(&connections, ctx.fanout.forks, |c| {
        let r = ctx.ready(&c.host.name).expect("every ready host has facts");
        async move {
            let fresh_nats = r.facts.installed.nats_server.is_none();
            let plan =
                plan::rollout::gate_plan(c.host, &ctx.fleet, &ctx.run_id, check_only, fresh_nats);
            run(&c, &r.agent_path, &plan, ctx.progress, false).await
        }
    })
    .await;
    for (c, (took, result)) in connections.iter().zip(outcomes) {
        if let Some(entry) = results.get_mut(&c.host.name) {
            absorb(entry, took, result);
        }
    }
    // A deploy's storage host verified the flow itself (layer 5); else look from one.
    let verified_here = !rollback
        && hosts
            .iter()
            .any(|r| r.c.host.roles.contains(&Role::STORAGE) && ctx.fleet.collectors > 0);
    if verified_here || !ok(results, &batch.hosts) || check_only {
        return None;
    }
    // A storage host that runs the pipeline: deployed before this run, or in a batch of it.
    let storage = ctx.ready.iter().find(|r| {
        r.c.host.roles.contains(&Role::STORAGE)
            && match results.get(&r.c.host.name) {
                Some(done) => done.status == HostStatus::Ok,
                None => r.facts.app_release.is_some(),
            }
    })?;
    if ctx.fleet.collectors == 0 {
        return None;
    }
    let plan = match plan::pipeline::verify_plan(storage.c.host, &ctx.fleet, &ctx.run_id, false) {
        Ok(plan) => plan,
        Err(e) => return Some(format!("data flow not checked: {e}")),
    };
    let took = Instant::now();
    let steps = match run(&storage.c, &storage.agent_path, &plan, ctx.progress, false).await {
        Ok(steps) => steps,
        Err(e) => {
            let line = format!("{}: data flow not checked: {e:#}", storage.c.host.name);
            fail_batch(results, batch, &line);
            return Some(line);
        }
    };
    let failure = steps.iter().find(|s| s.status == StepStatus::Failed);
    let said = match failure {
        Some(step) => {
            let line = format!(
                "data stopped flowing after batch {} (seen on {}): {}",
                batch.index, storage.c.host.name, step.message
            );
            fail_batch(results, batch, &line);
            line
        }
        None => format!(
            "data flows (seen on {}: {})",
            storage.c.host.name,
            steps
                .iter()
                .map(|s| s.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    // The check's steps belong to the batch: kept with its first host.
    if let Some(entry) = batch.hosts.first().and_then(|n| results.get_mut(n)) {
        entry.duration += took.elapsed();
        entry.steps.extend(steps.into_iter().map(|mut s| {
            s.step = format!("verify.gate.{}", s.step.trim_start_matches("verify."));
            s.message = format!("on {}: {}", storage.c.host.name, s.message);
            s
        }));
    }
    Some(said)
}

fn fail_batch(results: &mut BTreeMap<String, HostDeploy>, batch: &Batch, line: &str) {
    for name in &batch.hosts {
        if let Some(entry) = results.get_mut(name) {
            if entry.status == HostStatus::Ok {
                entry.status = HostStatus::Failed;
                entry.error = Some(format!("{name}: {line}"));
            }
        }
    }
}

/// Switches the failed hosts of a batch whose releases changed in this run (the pipeline's,
/// a user service's) back to the releases before, restarting their services on them;
/// returns "host" for each rolled back.
async fn roll_back_failed(
    ctx: &Ctx<'_, '_>,
    batch: &Batch,
    results: &mut BTreeMap<String, HostDeploy>,
) -> Vec<String> {
    let failed: Vec<&String> = batch
        .hosts
        .iter()
        .filter(|n| status(results, n) == HostStatus::Failed)
        .collect();
    let pipeline: Vec<String> = failed
        .iter()
        .filter(|n| {
            results[**n]
                .steps
                .iter()
                .any(|s| s.step == "install.app.release" && s.status == StepStatus::Changed)
        })
        .map(|n| n.to_string())
        .collect();
    let services: Vec<String> = failed
        .iter()
        .filter(|n| !plan::services::changed_releases(&results[**n].steps).is_empty())
        .map(|n| n.to_string())
        .collect();
    let switched: Vec<String> = failed
        .iter()
        .filter(|n| pipeline.contains(n) || services.contains(n))
        .map(|n| n.to_string())
        .collect();
    if switched.is_empty() {
        return Vec::new();
    }
    let before: BTreeMap<String, (HostStatus, Option<String>, usize)> = switched
        .iter()
        .map(|n| {
            let e = &results[n];
            (n.clone(), (e.status, e.error.clone(), e.steps.len()))
        })
        .collect();
    if !pipeline.is_empty() {
        rollback_hosts(ctx, &pipeline, None, results).await;
    }
    if !services.is_empty() {
        rollback_services(ctx, &services, results).await;
    }
    let mut said = Vec::new();
    for name in &switched {
        let (status, error, steps) = before[name].clone();
        let Some(entry) = results.get_mut(name) else {
            continue;
        };
        let rollback_ok = entry.steps[steps..]
            .iter()
            .all(|s| s.status != StepStatus::Failed)
            && entry.status == HostStatus::Failed
            && entry.error == error;
        let switches: Vec<String> = entry.steps[steps..]
            .iter()
            .filter(|s| s.step.ends_with(".rollback") && s.status == StepStatus::Changed)
            .map(|s| s.message.clone())
            .collect();
        let switch = (!switches.is_empty()).then(|| switches.join("; "));
        // The host failed its update whatever the rollback did; the error stays the update's.
        let note = match (rollback_ok, switch) {
            (true, Some(message)) => {
                said.push(name.clone());
                format!("automatic rollback: {message}")
            }
            (_, message) => format!(
                "automatic rollback failed: {}",
                entry
                    .error
                    .clone()
                    .or(message)
                    .unwrap_or_else(|| "no rollback step ran".into())
            ),
        };
        entry.status = status;
        entry.error = error;
        entry.note = Some(note);
    }
    said
}
