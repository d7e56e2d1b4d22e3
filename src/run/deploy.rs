//! `deploy`: detect on every host, push the agent, run the servers phase everywhere in
//! parallel, then (behind a barrier: every NATS node up) the streams on one NATS node.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::agent_exec;
use super::phases::{pipeline_phases, rollback_hosts, servers_phase, streams_phase, Ctx, Ready};
use super::session::{self, Connected, Ended};
use super::FanOut;
use crate::agent::{AgentEvent, StepEnd, StepStatus};
use crate::facts::{self, Facts};
use crate::inventory::{Inventory, Role};
use crate::plan::probe::{BeginRequest, LeaseAnswer, OpEvent};
use crate::plan::{self, Components, HostPlan};
use crate::report::HostStatus;
use crate::transport::shell::{quote, with_become};

#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    pub check_only: bool,
    /// `--diff`: the agent reports each file's change as a unified diff.
    pub diff: bool,
    /// Go on below the memory and disk thresholds.
    pub force: bool,
    /// `update`: install nothing; re-render configs, push the agent, restart what changed.
    pub update: bool,
    /// The agent build to push, when the hosts cannot run this very binary.
    pub agent_binary: Option<PathBuf>,
    /// `--no-relay`: upload the agent to every host, not once per private network.
    pub no_relay: bool,
    /// Learns the run's secrets (the ClickHouse password) before any event can carry them,
    /// so that the record, the logs and the reports mask them.
    pub redactor: crate::report::Redactor,
    /// `--serial`: a rolling run in batches behind health gates.
    pub rolling: Option<super::rollout::Rolling>,
    /// `rollback [--to RELEASE]`: switch the pipeline's release instead of deploying (the
    /// inner None: to the previous release).
    pub rollback: Option<Option<String>>,
    /// The fleet lock this run takes on every host (None: `--check`, which changes nothing).
    pub lease: Option<super::lease::LeaseRequest>,
}

#[derive(Debug, Clone)]
pub struct HostDeploy {
    pub host: String,
    pub status: HostStatus,
    pub error: Option<String>,
    pub facts: Option<Facts>,
    pub steps: Vec<StepEnd>,
    pub duration: Duration,
    /// The batch of a rolling run it was in (from 1).
    pub batch: Option<usize>,
    /// Said of the host besides its steps ("rolled back to release …", "not started: …").
    pub note: Option<String>,
}

impl HostDeploy {
    pub fn count(&self, status: StepStatus) -> usize {
        self.steps.iter().filter(|s| s.status == status).count()
    }
}

/// Receives progress as it happens (the CLI prints it).
pub type Progress = dyn Fn(&str, &AgentEvent) + Send + Sync;

/// Told of each host once its part of the run is over: early for a host that failed or was
/// lost, at its batch's end in a rolling run, else when the run ends.
pub type HostOver<'a> = dyn Fn(&HostDeploy) + Send + Sync + 'a;

/// `[thresholds]` of the inventory: below them a host fails before anything is installed,
/// unless `--force`. Defaults from the seed: 4 GiB of memory, 20 GiB free disk.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    pub min_memory_gib: f64,
    pub min_disk_gib: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            min_memory_gib: 4.0,
            min_disk_gib: 20.0,
        }
    }
}

fn thresholds(inventory: &Inventory) -> anyhow::Result<Thresholds> {
    match inventory.extra.get("thresholds") {
        Some(value) => value.clone().try_into().map_err(|e| {
            anyhow::anyhow!(
                "{}: [thresholds]: {e}; use min_memory_gib and min_disk_gib",
                inventory.path.display()
            )
        }),
        None => Ok(Thresholds::default()),
    }
}

const GIB: f64 = (1u64 << 30) as f64;

/// What a deploy (update, rollback) returns: each host's result, and for a rolling run each
/// batch's and why the rollout stopped, if it did.
#[derive(Debug, Clone, Default)]
pub struct DeployResult {
    pub hosts: Vec<HostDeploy>,
    pub batches: Vec<super::rollout::BatchOutcome>,
    pub stopped: Option<String>,
}

pub async fn deploy(
    inventory: &Inventory,
    selected: &[&crate::inventory::Host],
    fanout: &FanOut,
    options: &DeployOptions,
    progress: &Progress,
    notes: &super::rollout::Notes,
    over: &HostOver<'_>,
) -> anyhow::Result<DeployResult> {
    let started = Instant::now();
    let components = Components::from_table(&inventory.components)
        .map_err(|e| anyhow::anyhow!("{}: {e}", inventory.path.display()))?;
    let nats_hosts = inventory.hosts_with_role(Role::NATS);
    let replicas = crate::stack::validate_layout(nats_hosts.len(), None)
        .map_err(|e| anyhow::anyhow!("{}: {e}", inventory.path.display()))?;
    let stream_limits = stream_limits(inventory)?;
    let limits = thresholds(inventory)?;
    let artifacts = agent_exec::load_push_artifacts(&components, &inventory.path, selected)?;
    // Before any host is touched: a directory that cannot be packed or a secret file that
    // cannot be read stops the run here.
    let bundles = super::user_services::prepare(&inventory.services, selected, &options.redactor)?;
    // Reading and hashing the agents (tens of MB) overlaps the SSH handshakes.
    let pinned = options.agent_binary.clone();
    let agents = tokio::task::spawn_blocking(move || super::agents::Agents::new(pinned.as_deref()));
    let relays = super::relay::Relays::new(selected, !options.no_relay);
    let run_id = run_id();

    // `-vv`: when each part of the run ended, to see where a re-run's time goes.
    let mark = |what: &str| tracing::debug!("{what} done at {:?}", started.elapsed());
    mark("preparing");
    let (connected, mut ended) = session::connect_all(selected, fanout).await;
    let agents = agents.await??;
    mark("connecting");
    let mut results: BTreeMap<String, HostDeploy> = BTreeMap::new();
    for e in ended.drain(..) {
        results.insert(e.host.clone(), ended_host(e));
    }

    // Layer 1, detect: facts, the secret, the agent. It changes nothing but the agents'
    // directory (content-addressed), so it goes before the lease, which the agent takes.
    // Each host's `agent begin` (secrets and lease, beside the facts probe) runs as a task of
    // its own: a host whose detect is cut short (its deadline) still says whether it took the
    // lease, so that the lease is given back instead of left to expire.
    let begins = std::sync::Mutex::new(tokio::task::JoinSet::new());
    let detected = session::on_each(&connected, fanout.forks, |c| {
        let (agents, artifacts, relays, begins) = (&agents, &artifacts, &relays, &begins);
        async move { detect(&c, agents, relays, artifacts, options, limits, begins).await }
    })
    .await;
    let mut begins = begins.into_inner().unwrap_or_default();
    let mut begun: BTreeMap<String, LeaseAnswer> = BTreeMap::new();
    let _ = tokio::time::timeout(BEGIN_WAIT, async {
        while let Some(joined) = begins.join_next().await {
            if let Ok((host, Some(answer))) = joined {
                begun.insert(host, answer);
            }
        }
    })
    .await;
    relays.stop(&connected).await;
    mark("detect");
    let mut ready: Vec<Ready> = Vec::new();
    let mut password = None;
    let mut nats_secret = None;
    let mut agent_sha256 = BTreeMap::new();
    let mut connected = connected;
    for (c, (took, result)) in connected.iter_mut().zip(detected) {
        match result {
            Ok(d) => {
                password = password.or(d.password);
                nats_secret = nats_secret.or(d.nats_secret);
                agent_sha256.insert(c.host.name.clone(), d.agent_sha256);
                c.agent = Some(d.agent_path.clone());
                ready.push(Ready {
                    c: c.clone(),
                    facts: d.facts,
                    agent_path: d.agent_path,
                    arrival: d.arrival,
                });
            }
            Err(error) => {
                let (status, line) = super::fanout::classify(&error, &c.host.name);
                results.insert(
                    c.host.name.clone(),
                    failed_host(&c.host.name, status, line, took),
                );
            }
        }
    }
    // The fleet lock: taken before anything changes, kept renewed while the run works.
    let leased = match &options.lease {
        Some(request) => {
            // A host that failed detect after `agent begin` took its lease gives it back.
            let failed: Vec<Connected<'_>> = connected
                .iter()
                .filter(|c| begun.get(&c.host.name).is_some_and(|a| a.code == 0))
                .filter(|c| !ready.iter().any(|r| r.c.host.name == c.host.name))
                .cloned()
                .collect();
            for error in super::lease::release_all(&failed, &request.run_id).await {
                tracing::warn!("{error}");
            }
            begun.retain(|name, _| ready.iter().any(|r| &r.c.host.name == name));
            let detected: Vec<Connected<'_>> = ready.iter().map(|r| r.c.clone()).collect();
            let (leased, lost) = super::guard::take_leases(detected, request, begun).await?;
            for e in lost {
                ready.retain(|r| r.c.host.name != e.host);
                results.insert(e.host.clone(), ended_host(e));
            }
            leased
        }
        None => Vec::new(),
    };
    mark("taking the leases");
    for r in &ready {
        progress(&r.c.host.name, &AgentEvent::StepFinished(r.arrival.clone()));
    }
    let work = async {
        // One host: NATS binds loopback only (stack::nats::listen_address), so its clients and
        // the data-flow check reach it there.
        let one_host = inventory.hosts.len() == 1;
        let fleet = plan::Fleet {
            nats_nodes: nats_hosts
                .iter()
                .map(|h| {
                    let address = if one_host {
                        "127.0.0.1"
                    } else {
                        &h.private_address
                    };
                    (h.name.clone(), address.to_string())
                })
                .collect(),
            clickhouse_password: match password {
                Some(p) => p,
                None => generate_password()?,
            },
            nats: crate::stack::nats::NatsCredentials::new(match nats_secret {
                Some(s) => s,
                None => {
                    let others: Vec<&crate::inventory::Host> = nats_hosts
                        .iter()
                        .filter(|h| !selected.iter().any(|s| s.name == h.name))
                        .copied()
                        .collect();
                    let kept = if others.is_empty() {
                        None
                    } else {
                        super::nats_secret::from_other_hosts(&others, fanout).await?
                    };
                    match kept {
                        Some(s) => s,
                        None => generate_password()?,
                    }
                }
            }),
            stream_limits,
            replicas,
            clickhouse_nodes: inventory
                .hosts_with_role(Role::CLICKHOUSE)
                .iter()
                .map(|h| (h.name.clone(), h.private_address.clone()))
                .collect(),
            nats_tls: match crate::stack::nats::plan::tls_paths(&components) {
                Some(paths) => Some(read_nats_tls(&inventory.path, &paths)?),
                None => None,
            },
            storage_addresses: inventory
                .hosts_with_role(Role::STORAGE)
                .iter()
                .map(|h| h.private_address.clone())
                .collect(),
            collectors: inventory.hosts_with_role(Role::COLLECTOR).len(),
            flow_tables: plan::flow_tables(&inventory.hosts_with_role(Role::COLLECTOR)),
            agent_sha256,
            one_host,
        };
        options.redactor.register(&fleet.clickhouse_password);
        for secret in fleet.nats.all_secrets() {
            options.redactor.register(&secret);
        }
        if let Some(tls) = &fleet.nats_tls {
            options.redactor.register(tls.key_pem.trim());
        }
        let ctx = Ctx {
            inventory,
            fanout,
            options,
            progress,
            fleet,
            components,
            run_id,
            ready,
            ended: over,
            told: Default::default(),
        };
        // Lost at the connect, the lock or detect: over before any layer runs.
        ctx.tell_ended(&results, None, false);

        let mut outcome = DeployResult::default();
        match &options.rolling {
            Some(rolling) => {
                let (batches, stopped) =
                    super::rollout::roll(&ctx, selected, rolling, &mut results, notes, &bundles)
                        .await;
                outcome.batches = batches;
                outcome.stopped = stopped;
            }
            None => {
                let names: Vec<String> = selected.iter().map(|h| h.name.clone()).collect();
                match &options.rollback {
                    Some(to) => rollback_hosts(&ctx, &names, to.clone(), &mut results).await,
                    None => {
                        servers_phase(&ctx, &names, &mut results).await;
                        ctx.tell_ended(&results, None, false);
                        mark("the servers phase");
                        streams_phase(&ctx, &mut results).await;
                        ctx.tell_ended(&results, None, false);
                        mark("the streams phase");
                        pipeline_phases(&ctx, &names, &mut results).await;
                        ctx.tell_ended(&results, None, false);
                        mark("the pipeline phases");
                        super::user_services::services_phase(&ctx, &names, &bundles, &mut results)
                            .await;
                    }
                }
            }
        }
        Ok::<_, anyhow::Error>((results, outcome))
    };
    let worked = match &options.lease {
        Some(request) => super::lease::keep_renewed(&leased, request, work).await,
        None => work.await,
    };
    if let Some(request) = &options.lease {
        if let Ok((results, _)) = &worked {
            super::guard::audit(&connected, request, results).await;
        }
        for error in super::lease::release_all(&leased, &request.run_id).await {
            tracing::warn!("{error}");
        }
        mark("auditing and releasing the leases");
    }
    for c in &connected {
        c.transport.close().await;
    }
    tracing::debug!("deploy took {:?}", started.elapsed());
    let (mut results, mut outcome) = worked?;
    outcome.hosts = selected
        .iter()
        .filter_map(|h| results.remove(&h.name))
        .collect();
    Ok(outcome)
}

struct Detected {
    facts: Facts,
    agent_path: String,
    /// How the agent got there: the host's `detect.agent` step.
    arrival: StepEnd,
    /// The agent this host got (its build, for its arch): the pipeline's release there.
    agent_sha256: String,
    password: Option<String>,
    /// The fleet's NATS secret, where this NATS host already has one.
    nats_secret: Option<String>,
}

async fn detect(
    c: &Connected<'_>,
    agents: &super::agents::Agents,
    relays: &super::relay::Relays,
    artifacts: &[agent_exec::PushArtifact],
    options: &DeployOptions,
    limits: Thresholds,
    begins: &std::sync::Mutex<tokio::task::JoinSet<(String, Option<LeaseAnswer>)>>,
) -> anyhow::Result<Detected> {
    let host = c.host;
    let deploy_dir = host
        .vars
        .get("deploy_dir")
        .and_then(|v| v.as_str())
        .unwrap_or(plan::build::DEFAULT_DEPLOY_DIR);
    // The secrets its roles keep, (ClickHouse password, NATS secret), read in one exec
    // beside the facts probe's (two channels of one connection): both only read.
    let wanted: Vec<&str> = [
        (Role::CLICKHOUSE, plan::build::CLICKHOUSE_SECRET_PATH),
        (Role::NATS, crate::stack::nats::SECRET_FILE),
    ]
    .into_iter()
    .filter(|(role, _)| host.roles.contains(role))
    .map(|(_, path)| path)
    .collect();
    let probe_command = format!(
        "sh -s -- {} {}",
        quote(deploy_dir),
        agent_exec::agent_dirs().map(|d| quote(&d)).join(" ")
    );
    // Where this very build is on the host (any re-run), `agent begin` reads them and takes
    // the run's lease in the same exec; elsewhere a shell reads them, and the lease comes
    // after detect has placed the agent.
    let begin = BeginRequest {
        state_dir: plan::build::STATE_DIR.into(),
        secrets: wanted.iter().map(|p| p.to_string()).collect(),
        lease: options.lease.as_ref().map(|r| {
            super::lease::call(
                super::lease::Action::Acquire,
                super::lease::LEASE_FILE,
                Some(r),
            )
        }),
    };
    let shell_read = if wanted.is_empty() {
        "true".to_string()
    } else {
        with_become(&read_secret_command(&wanted), host.become_)
    };
    let secrets_command = if host.connection == crate::inventory::Connection::Local {
        let me = std::env::current_exe().context("cannot locate this program")?;
        super::agent_call::run_line(&quote(&me.to_string_lossy()), "begin", host.become_)
    } else {
        match agents.own() {
            Ok(own) => {
                super::agent_call::find_then(&own.sha256, "begin", host.become_, &shell_read)
            }
            Err(_) => shell_read,
        }
    };
    let request = serde_json::to_vec(&begin)?;
    let (sent, answer) = tokio::sync::oneshot::channel();
    let asked = !(wanted.is_empty() && begin.lease.is_none());
    if asked {
        let (transport, name) = (c.transport.clone(), host.name.clone());
        if let Ok(mut begins) = begins.lock() {
            begins.spawn(async move {
                // Parsed once: its lease for the run, its secrets for detect below.
                let answer = transport
                    .exec(&secrets_command, &request)
                    .await
                    .map(|o| (begun_in(&o.stdout_text()), o));
                let lease = match &answer {
                    Ok((Some(begun), _)) => begun.lease.clone(),
                    _ => None,
                };
                let _ = sent.send(answer);
                (name, lease)
            });
        }
    }
    let (output, read) = tokio::join!(
        c.transport
            .exec(&probe_command, facts::PROBE_SCRIPT.as_bytes()),
        async {
            if !asked {
                return Ok(None);
            }
            match answer.await {
                Ok(output) => Ok(Some(output?)),
                Err(_) => Err(anyhow::anyhow!(
                    "{}: `agent begin` ended without an answer",
                    host.name
                )),
            }
        }
    );
    let (output, read) = (output?, read?);
    let facts = facts::parse(&output.stdout_text())?;
    let agent = agents.for_host(&super::agents::HostKind {
        name: &host.name,
        uname: &facts.arch,
        glibc: facts.glibc.as_deref().and_then(super::agent_glibc::parse),
        local: host.connection == crate::inventory::Connection::Local,
    })?;
    if !options.force {
        let (memory, disk) = (
            facts.memory_bytes as f64 / GIB,
            facts.disk_free_bytes as f64 / GIB,
        );
        if facts.memory_bytes > 0 && memory < limits.min_memory_gib {
            anyhow::bail!(
                "{}: {memory:.1} GiB of memory, below the {} GiB MarketPrism needs ([thresholds] min_memory_gib); add memory or pass --force",
                host.name,
                limits.min_memory_gib
            );
        }
        if facts.disk_free_bytes > 0 && disk < limits.min_disk_gib {
            anyhow::bail!(
                "{}: {disk:.1} GiB free at {}, below the {} GiB MarketPrism needs ([thresholds] min_disk_gib); free space or pass --force",
                host.name,
                facts.disk_path,
                limits.min_disk_gib
            );
        }
    }
    let mut secrets = BTreeMap::new();
    if let Some((begun, read)) = read {
        let lines: Vec<String> = match begun {
            Some(b) => b.secrets,
            None => read.stdout_text().lines().map(str::to_string).collect(),
        };
        for (path, line) in wanted.iter().zip(lines) {
            if !line.trim().is_empty() {
                secrets.insert(*path, line.trim().to_string());
            }
        }
    }
    let password = secrets.remove(plan::build::CLICKHOUSE_SECRET_PATH);
    let nats_secret = secrets.remove(crate::stack::nats::SECRET_FILE);
    let placing = Instant::now();
    let known = facts
        .agent_files
        .get(&agent_exec::agent_path(facts.is_root, &agent.sha256))
        .copied();
    let (agent_path, arrival) = relays.place(c, facts.is_root, &agent, known).await?;
    let arrival = arrival_step(&arrival, &agent.sha256, placing.elapsed());
    agent_exec::push_artifacts(
        c.transport.as_ref(),
        host,
        facts.is_root,
        artifacts,
        options.check_only,
    )
    .await?;
    Ok(Detected {
        facts,
        agent_path,
        arrival,
        agent_sha256: agent.sha256.clone(),
        password,
        nats_secret,
    })
}

/// How long a run waits for the `agent begin` of hosts whose detect ended early.
const BEGIN_WAIT: Duration = Duration::from_secs(30);

/// `agent begin`'s answer among the lines of its output.
fn begun_in(stdout: &str) -> Option<crate::plan::probe::Begun> {
    stdout
        .lines()
        .find_map(|l| match serde_json::from_str(l.trim()) {
            Ok(OpEvent::Begun(b)) => Some(b),
            _ => None,
        })
}

/// The record's step for how the agent got onto the host (uploaded, copied from a relay,
/// already there). Always `ok`: the agent is mp-remote's tool, not a change to the
/// deployment, so `--check` (which pushes it too) and the deploy after it count the same.
fn arrival_step(arrival: &super::relay::Arrival, sha256: &str, took: Duration) -> StepEnd {
    StepEnd {
        duration_ms: took.as_millis() as u64,
        ..StepEnd::new(
            crate::plan::LayerName::Detect,
            "detect.agent",
            StepStatus::Ok,
            arrival.message(sha256),
        )
    }
}

pub(super) async fn run(
    c: &Connected<'_>,
    agent_path: &str,
    plan: &HostPlan,
    progress: &Progress,
    diff: bool,
) -> anyhow::Result<Vec<StepEnd>> {
    let with_diff;
    let plan = if diff {
        with_diff = HostPlan {
            diff: true,
            ..plan.clone()
        };
        &with_diff
    } else {
        plan
    };
    let events =
        agent_exec::run_plan(c.transport.as_ref(), c.host, agent_path, plan, progress).await?;
    Ok(events
        .into_iter()
        .filter_map(|event| match event {
            AgentEvent::StepFinished(end) => Some(end),
            _ => None,
        })
        .collect())
}

pub(super) fn host_result(
    name: &str,
    facts: Option<Facts>,
    took: Duration,
    result: anyhow::Result<Vec<StepEnd>>,
) -> HostDeploy {
    match result {
        Ok(steps) => {
            let error = first_failure(name, &steps);
            HostDeploy {
                host: name.to_string(),
                status: if error.is_some() {
                    HostStatus::Failed
                } else {
                    HostStatus::Ok
                },
                error,
                facts,
                steps,
                duration: took,
                batch: None,
                note: None,
            }
        }
        Err(error) => {
            let (status, line) = super::fanout::classify(&error, name);
            HostDeploy {
                facts,
                ..failed_host(name, status, line, took)
            }
        }
    }
}

/// Adds a later phase's steps to a host's result; its first failure fails the host.
pub(super) fn absorb(entry: &mut HostDeploy, took: Duration, result: anyhow::Result<Vec<StepEnd>>) {
    entry.duration += took;
    match result {
        Ok(steps) => {
            if let Some(error) = first_failure(&entry.host, &steps) {
                entry.status = HostStatus::Failed;
                entry.error = Some(error);
            }
            entry.steps.extend(steps);
        }
        Err(error) => {
            let (status, line) = super::fanout::classify(&error, &entry.host);
            entry.status = status;
            entry.error = Some(line);
        }
    }
}

pub(super) fn first_failure(host: &str, steps: &[StepEnd]) -> Option<String> {
    steps
        .iter()
        .find(|s| s.status == StepStatus::Failed)
        .map(|s| {
            let mut line = format!("{host}: {} {}: {}", s.layer, s.step, s.message);
            if let Some(hint) = &s.hint {
                line.push_str(&format!("; {hint}"));
            }
            line
        })
}

pub(super) fn failed_host(
    name: &str,
    status: HostStatus,
    error: String,
    took: Duration,
) -> HostDeploy {
    HostDeploy {
        host: name.to_string(),
        status,
        error: Some(error),
        facts: None,
        steps: Vec::new(),
        duration: took,
        batch: None,
        note: None,
    }
}

fn ended_host(e: Ended) -> HostDeploy {
    failed_host(&e.host, e.status, e.error, Duration::ZERO)
}

fn stream_limits(inventory: &Inventory) -> anyhow::Result<crate::stack::StreamLimits> {
    let limits = match inventory.extra.get("streams") {
        Some(value) => value
            .clone()
            .try_into()
            .map_err(|e| anyhow::anyhow!("{}: [streams]: {e}", inventory.path.display()))?,
        None => crate::stack::StreamLimits::default(),
    };
    limits
        .validate()
        .map_err(|e| anyhow::anyhow!("{}: [streams]: {e}", inventory.path.display()))?;
    Ok(limits)
}

/// Reads secrets the host already has (the ClickHouse password, the NATS secret), one line
/// each (empty when missing), in order. An agent left running by a cut connection may be
/// about to write one: wait for that agent (its lock) first, or this run would make a second
/// secret and replace the first one's.
pub(super) fn read_secret_command(secrets: &[&str]) -> String {
    let lock = format!("{}/agent.lock", plan::build::STATE_DIR);
    let files: Vec<String> = secrets.iter().map(|s| quote(s)).collect();
    format!(
        "if [ -e {lock} ] && command -v flock >/dev/null 2>&1; then flock -w {wait} {lock} true; fi; for f in {files}; do printf '%s\\n' \"$(cat \"$f\" 2>/dev/null)\"; done",
        wait = crate::agent::lock::WAIT.as_secs(),
        files = files.join(" "),
    )
}

/// The TLS files `[components.nats] tls` names, relative to the inventory's directory.
fn read_nats_tls(
    inventory: &std::path::Path,
    paths: &crate::stack::nats::NatsTlsPaths,
) -> anyhow::Result<crate::stack::nats::NatsTlsFiles> {
    let dir = inventory.parent().unwrap_or(std::path::Path::new("."));
    let read = |name: &str, path: &str| {
        let file = dir.join(path);
        std::fs::read_to_string(&file).with_context(|| {
            format!(
                "{}: [components.nats] tls {name}: cannot read {}",
                inventory.display(),
                file.display()
            )
        })
    };
    Ok(crate::stack::nats::NatsTlsFiles {
        cert_pem: read("cert", &paths.cert)?,
        key_pem: read("key", &paths.key)?,
        ca_pem: read("ca", &paths.ca)?,
    })
}

fn run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}-{}", now.as_secs(), std::process::id())
}

/// 32 hex characters from the OS's random source; never a weak fallback.
pub(super) fn generate_password() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    let mut file = std::fs::File::open("/dev/urandom").context("cannot open /dev/urandom")?;
    std::io::Read::read_exact(&mut file, &mut bytes).context("cannot read /dev/urandom")?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_read_one_line_each_in_order_and_a_missing_one_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a b"), dir.path().join("missing"));
        std::fs::write(&a, "first\n").unwrap();
        let c = dir.path().join("c");
        std::fs::write(&c, "third").unwrap();
        let paths = [a, b, c].map(|p| p.to_string_lossy().into_owned());
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        let out = std::process::Command::new("sh")
            .args(["-c", &super::read_secret_command(&refs)])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "first\n\nthird\n");
    }
}
