//! The phases of a run on a set of hosts, shared by the all-at-once deploy and each batch of
//! a rolling one: the servers (install and init), the streams behind their barrier, the
//! pipeline services (start and verify), and the switch back to an earlier release.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::deploy::{absorb, host_result, run, DeployOptions, HostDeploy, HostOver, Progress};
use super::session::{self, Connected};
use super::FanOut;
use crate::facts::Facts;
use crate::inventory::{Inventory, Role};
use crate::plan::{self, Components, LayerName};
use crate::report::HostStatus;

/// Everything the phases of one run share.
pub(super) struct Ctx<'a, 'h> {
    pub inventory: &'a Inventory,
    pub fanout: &'a FanOut,
    pub options: &'a DeployOptions,
    pub progress: &'a Progress,
    pub fleet: plan::Fleet,
    pub components: Components,
    /// The agents' run id (their event log's name).
    pub run_id: String,
    pub ready: Vec<Ready<'h>>,
    /// Told of each host as soon as its part of the run is over, for the live view and the
    /// run record (a host that failed in phase 1 need not wait for the others' phase 4).
    pub ended: &'a HostOver<'a>,
    /// The hosts `ended` was told of already.
    pub told: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// A host that passed detect: its connection, its facts and where its agent is.
#[derive(Clone)]
pub(super) struct Ready<'h> {
    pub c: Connected<'h>,
    pub facts: Facts,
    pub agent_path: String,
    /// How its agent got there (`detect.agent`), first in its record.
    pub arrival: crate::agent::StepEnd,
}

impl<'h> Ctx<'_, 'h> {
    /// Tells `ended` of the hosts among `names` (None: every host) that are over: those
    /// that failed or were lost (later phases leave them alone), or all of them with `all`.
    pub fn tell_ended(
        &self,
        results: &BTreeMap<String, HostDeploy>,
        names: Option<&[String]>,
        all: bool,
    ) {
        let mut told = self.told.lock().unwrap_or_else(|e| e.into_inner());
        for (name, entry) in results {
            let over = all || entry.status != HostStatus::Ok;
            let among = names.is_none_or(|n| n.contains(name));
            if over && among && told.insert(name.clone()) {
                (self.ended)(entry);
            }
        }
    }

    pub fn ready(&self, name: &str) -> Option<&Ready<'h>> {
        self.ready.iter().find(|r| r.c.host.name == name)
    }

    /// The ready hosts among `names`, in `names`' order.
    pub fn ready_among(&self, names: &[String]) -> Vec<Ready<'h>> {
        names
            .iter()
            .filter_map(|n| self.ready(n))
            .cloned()
            .collect()
    }
}

/// Phase 1 on the ready hosts among `names`: the servers (install and init layers), in
/// parallel; `update` installs nothing.
pub(super) async fn servers_phase(
    ctx: &Ctx<'_, '_>,
    names: &[String],
    results: &mut BTreeMap<String, HostDeploy>,
) {
    let hosts = ctx.ready_among(names);
    let connections: Vec<Connected> = hosts.iter().map(|r| r.c.clone()).collect();
    let options = ctx.options;
    let together = !options.check_only && nats_nodes_to_start(&hosts);
    // Where NATS nodes start together: their start, cut from each servers plan.
    let starts = std::sync::Mutex::new(BTreeMap::new());
    let outcomes = session::on_each(&connections, ctx.fanout.forks, |c| {
        let r = ctx.ready(&c.host.name).expect("every ready host has facts");
        let starts = &starts;
        async move {
            let plan = plan::servers_plan(
                c.host,
                &r.facts,
                &ctx.components,
                &ctx.fleet,
                &ctx.run_id,
                options.check_only,
            )?;
            let mut plan = if options.update {
                plan::update::without_installs(plan)
            } else {
                plan
            };
            if together {
                if let Some(start) = plan::cut_nats_start(&mut plan) {
                    starts
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(c.host.name.clone(), start);
                }
            }
            run(&c, &r.agent_path, &plan, ctx.progress, ctx.options.diff).await
        }
    })
    .await;
    for (r, (took, result)) in hosts.iter().zip(outcomes) {
        let mut entry = host_result(&r.c.host.name, Some(r.facts.clone()), took, result);
        entry.steps.insert(0, r.arrival.clone());
        results.insert(r.c.host.name.clone(), entry);
    }
    let starts = starts.into_inner().unwrap_or_else(|e| e.into_inner());
    start_nats_together(ctx, &hosts, starts, results).await;
}

/// Whether the NATS nodes among `hosts` start together ([`plan::cut_nats_start`]): two or
/// more of them, and one not running (its client port not listening).
fn nats_nodes_to_start(hosts: &[Ready]) -> bool {
    let port = crate::stack::nats::COMPONENT.port("client");
    let nodes: Vec<&Ready> = hosts
        .iter()
        .filter(|r| r.c.host.roles.contains(&Role::NATS))
        .collect();
    nodes.len() >= 2
        && nodes
            .iter()
            .any(|r| !r.facts.listening_ports.contains(&port))
}

/// The NATS starts cut from the servers plans, on every host whose servers plan went
/// through, at once.
async fn start_nats_together(
    ctx: &Ctx<'_, '_>,
    hosts: &[Ready<'_>],
    mut starts: BTreeMap<String, plan::HostPlan>,
    results: &mut BTreeMap<String, HostDeploy>,
) {
    let nodes: Vec<Connected> = hosts
        .iter()
        .filter(|r| starts.contains_key(&r.c.host.name))
        .filter(|r| results.get(&r.c.host.name).map(|e| e.status) == Some(HostStatus::Ok))
        .map(|r| r.c.clone())
        .collect();
    let plans: BTreeMap<String, plan::HostPlan> = nodes
        .iter()
        .filter_map(|c| Some((c.host.name.clone(), starts.remove(&c.host.name)?)))
        .collect();
    let outcomes = session::on_each(&nodes, ctx.fanout.forks, |c| {
        let r = ctx.ready(&c.host.name).expect("every ready host has facts");
        let plan = &plans[&c.host.name];
        async move { run(&c, &r.agent_path, plan, ctx.progress, ctx.options.diff).await }
    })
    .await;
    for (c, (took, result)) in nodes.iter().zip(outcomes) {
        if let Some(entry) = results.get_mut(&c.host.name) {
            absorb(entry, took, result);
        }
    }
    // The hosts that failed above: their record lists the start as skipped, as the agent
    // lists the steps after a failed one.
    for (name, plan) in starts {
        let Some(entry) = results.get_mut(&name) else {
            continue;
        };
        for layer in &plan.layers {
            for step in &layer.steps {
                let end = crate::agent::StepEnd::skipped(layer.name, &step.id);
                (ctx.progress)(&name, &crate::agent::AgentEvent::StepFinished(end.clone()));
                entry.steps.push(end);
            }
        }
    }
}

/// Barrier, then on one NATS node: the streams (R3 needs every node up). Nothing when no
/// NATS host is selected.
pub(super) async fn streams_phase(ctx: &Ctx<'_, '_>, results: &mut BTreeMap<String, HostDeploy>) {
    let nats_ok = ctx
        .ready
        .iter()
        .filter(|r| r.c.host.roles.contains(&Role::NATS))
        .all(|r| results.get(&r.c.host.name).map(|e| e.status) == Some(HostStatus::Ok));
    let Some(r) = ctx
        .ready
        .iter()
        .find(|r| r.c.host.roles.contains(&Role::NATS))
    else {
        return;
    };
    let Some(entry) = results.get_mut(&r.c.host.name) else {
        return;
    };
    if nats_ok && entry.status == HostStatus::Ok {
        let plan = plan::streams_plan(r.c.host, &ctx.fleet, &ctx.run_id, ctx.options.check_only);
        let took = Instant::now();
        let result = run(&r.c, &r.agent_path, &plan, ctx.progress, ctx.options.diff).await;
        absorb(entry, took.elapsed(), result);
    } else if entry.status == HostStatus::Ok {
        entry.status = HostStatus::Failed;
        entry.error = Some(format!(
            "{}: streams not created: a NATS node failed above; fix it and deploy again",
            r.c.host.name
        ));
    }
}

/// Phases 3 and 4 on the pipeline hosts among `names`: the services start once every server
/// among `names` is up, then the data flow is verified.
pub(super) async fn pipeline_phases(
    ctx: &Ctx<'_, '_>,
    names: &[String],
    results: &mut BTreeMap<String, HostDeploy>,
) {
    let servers_ok = names.iter().all(|name| {
        results.get(name).is_none_or(|r| r.status == HostStatus::Ok)
            || !ctx.inventory.hosts.iter().any(|h| {
                &h.name == name
                    && (h.roles.contains(&Role::NATS) || h.roles.contains(&Role::CLICKHOUSE))
            })
    });
    let pipeline_hosts: Vec<Ready> = ctx
        .ready_among(names)
        .into_iter()
        .filter(|r| !plan::pipeline::services_of(r.c.host).is_empty())
        .filter(|r| results.get(&r.c.host.name).map(|e| e.status) == Some(HostStatus::Ok))
        .collect();
    if !servers_ok {
        for r in &pipeline_hosts {
            let entry = results
                .get_mut(&r.c.host.name)
                .expect("phase 1 recorded it");
            entry.status = HostStatus::Failed;
            entry.error = Some(format!(
                "{}: storage and collectors not started: a NATS or ClickHouse host failed above; fix it and deploy again",
                r.c.host.name
            ));
        }
        return;
    }
    let options = ctx.options;
    for layer in [LayerName::Start, LayerName::Verify] {
        let hosts: Vec<Connected> = pipeline_hosts
            .iter()
            .filter(|r| results[&r.c.host.name].status == HostStatus::Ok)
            .map(|r| r.c.clone())
            .collect();
        let outcomes = session::on_each(&hosts, ctx.fanout.forks, |c| {
            let r = ctx.ready(&c.host.name).expect("every ready host has facts");
            async move {
                let plan = match layer {
                    LayerName::Start => plan::pipeline::services_plan(
                        c.host,
                        &r.facts,
                        &ctx.fleet,
                        &ctx.run_id,
                        options.check_only,
                    )?,
                    _ => plan::pipeline::verify_plan(
                        c.host,
                        &ctx.fleet,
                        &ctx.run_id,
                        options.check_only,
                    )?,
                };
                run(&c, &r.agent_path, &plan, ctx.progress, ctx.options.diff).await
            }
        })
        .await;
        for (c, (took, result)) in hosts.iter().zip(outcomes) {
            let entry = results.get_mut(&c.host.name).expect("phase 1 recorded it");
            absorb(entry, took, result);
        }
    }
}

/// `rollback`: the pipeline's services on the ready hosts among `names` switched to release
/// `to` (None: the previous one) and restarted on it. Hosts that run no pipeline service
/// have no release to switch, and say so.
pub(super) async fn rollback_hosts(
    ctx: &Ctx<'_, '_>,
    names: &[String],
    to: Option<String>,
    results: &mut BTreeMap<String, HostDeploy>,
) {
    let hosts = ctx.ready_among(names);
    let (with, without): (Vec<Ready>, Vec<Ready>) = hosts
        .into_iter()
        .partition(|r| plan::rollout::has_release(r.c.host));
    for r in without {
        let mut entry = host_result(
            &r.c.host.name,
            Some(r.facts.clone()),
            Duration::ZERO,
            Ok(vec![]),
        );
        entry.note = Some("runs no pipeline service: no release to roll back".into());
        results.insert(r.c.host.name.clone(), entry);
    }
    let connections: Vec<Connected> = with.iter().map(|r| r.c.clone()).collect();
    let options = ctx.options;
    let outcomes = session::on_each(&connections, ctx.fanout.forks, |c| {
        let r = ctx.ready(&c.host.name).expect("every ready host has facts");
        let to = to.clone();
        async move {
            let plan = plan::rollout::rollback_plan(
                c.host,
                &r.facts,
                &ctx.fleet,
                &ctx.run_id,
                to,
                options.check_only,
            )?;
            run(&c, &r.agent_path, &plan, ctx.progress, ctx.options.diff).await
        }
    })
    .await;
    for (r, (took, result)) in with.iter().zip(outcomes) {
        match results.get_mut(&r.c.host.name) {
            Some(entry) => absorb(entry, took, result),
            None => {
                let mut entry = host_result(&r.c.host.name, Some(r.facts.clone()), took, result);
                entry.steps.insert(0, r.arrival.clone());
                results.insert(r.c.host.name.clone(), entry);
            }
        }
    }
}
