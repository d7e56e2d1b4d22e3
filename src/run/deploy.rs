//! `deploy`: detect on every host, push the agent, run the servers phase everywhere in
//! parallel, then (behind a barrier: every NATS node up) the streams on one NATS node.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::agent_exec::{self, AgentBinary};
use super::session::{self, Connected, Ended};
use super::FanOut;
use crate::agent::{AgentEvent, StepEnd, StepStatus};
use crate::facts::{self, Facts};
use crate::inventory::{Inventory, Role};
use crate::plan::{self, Components, HostPlan, LayerName};
use crate::report::HostStatus;
use crate::transport::shell::{quote, with_become};

#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    pub check_only: bool,
    /// Go on below the memory and disk thresholds.
    pub force: bool,
    /// `update`: install nothing; re-render configs, push the agent, restart what changed.
    pub update: bool,
    /// The agent build to push, when the hosts cannot run this very binary.
    pub agent_binary: Option<PathBuf>,
    /// Learns the run's secrets (the ClickHouse password) before any event can carry them,
    /// so that the record, the logs and the reports mask them.
    pub redactor: crate::report::Redactor,
}

#[derive(Debug, Clone)]
pub struct HostDeploy {
    pub host: String,
    pub status: HostStatus,
    pub error: Option<String>,
    pub facts: Option<Facts>,
    pub steps: Vec<StepEnd>,
    pub duration: Duration,
}

impl HostDeploy {
    pub fn count(&self, status: StepStatus) -> usize {
        self.steps.iter().filter(|s| s.status == status).count()
    }
}

/// Receives progress as it happens (the CLI prints it).
pub type Progress = dyn Fn(&str, &AgentEvent) + Send + Sync;

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

pub async fn deploy(
    inventory: &Inventory,
    selected: &[&crate::inventory::Host],
    fanout: &FanOut,
    options: &DeployOptions,
    progress: &Progress,
) -> anyhow::Result<Vec<HostDeploy>> {
    let started = Instant::now();
    let components = Components::from_table(&inventory.components)
        .map_err(|e| anyhow::anyhow!("{}: {e}", inventory.path.display()))?;
    let nats_hosts = inventory.hosts_with_role(Role::Nats);
    let replicas = crate::stack::validate_layout(nats_hosts.len(), None)
        .map_err(|e| anyhow::anyhow!("{}: {e}", inventory.path.display()))?;
    let stream_limits = stream_limits(inventory)?;
    let limits = thresholds(inventory)?;
    let artifacts = agent_exec::load_push_artifacts(&components, &inventory.path, selected)?;
    let agent = match &options.agent_binary {
        Some(path) => AgentBinary::load(path)?,
        None => AgentBinary::load(&std::env::current_exe().context("cannot locate this program")?)?,
    };
    let run_id = run_id();

    let (connected, mut ended) = session::connect_all(selected, fanout).await;
    let mut results: BTreeMap<String, HostDeploy> = BTreeMap::new();
    for e in ended.drain(..) {
        results.insert(e.host.clone(), ended_host(e));
    }

    // Layer 1, detect: facts, the secret, the agent.
    let detected = session::on_each(&connected, fanout.forks, |c| {
        let agent = agent.clone();
        let artifacts = &artifacts;
        async move { detect(&c, &agent, artifacts, options, limits).await }
    })
    .await;
    let mut ready: Vec<(Connected, Facts, String)> = Vec::new();
    let mut password = None;
    for (c, (took, result)) in connected.iter().zip(detected) {
        match result {
            Ok(d) => {
                password = password.or(d.password);
                ready.push((c.clone(), d.facts, d.agent_path));
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
    let fleet = plan::Fleet {
        nats_nodes: nats_hosts
            .iter()
            .map(|h| (h.name.clone(), h.private_address.clone()))
            .collect(),
        clickhouse_password: match password {
            Some(p) => p,
            None => generate_password()?,
        },
        stream_limits,
        replicas,
        clickhouse_nodes: inventory
            .hosts_with_role(Role::Clickhouse)
            .iter()
            .map(|h| (h.name.clone(), h.private_address.clone()))
            .collect(),
        collectors: inventory.hosts_with_role(Role::Collector).len(),
        agent_sha256: agent.sha256.clone(),
    };
    options.redactor.register(&fleet.clickhouse_password);

    // Phase 1: servers on every host, in parallel.
    let phase1 = session::on_each(
        &ready.iter().map(|(c, _, _)| c.clone()).collect::<Vec<_>>(),
        fanout.forks,
        |c| {
            let (_, facts, agent_path) = ready
                .iter()
                .find(|(r, _, _)| r.host.name == c.host.name)
                .expect("every ready host has facts");
            let fleet = &fleet;
            let components = &components;
            let run_id = &run_id;
            async move {
                let plan = plan::servers_plan(
                    c.host,
                    facts,
                    components,
                    fleet,
                    run_id,
                    options.check_only,
                )?;
                let plan = if options.update {
                    plan::update::without_installs(plan)
                } else {
                    plan
                };
                run(&c, agent_path, &plan, progress).await
            }
        },
    )
    .await;
    let mut nats_ok = true;
    for ((c, facts, _), (took, result)) in ready.iter().zip(phase1) {
        let entry = host_result(&c.host.name, Some(facts.clone()), took, result);
        if c.host.roles.contains(&Role::Nats) && entry.status != HostStatus::Ok {
            nats_ok = false;
        }
        results.insert(c.host.name.clone(), entry);
    }

    // Barrier: streams need every NATS node up (R3 needs three).
    if let Some((c, _, agent_path)) = ready
        .iter()
        .find(|(c, _, _)| c.host.roles.contains(&Role::Nats))
    {
        let entry = results.get_mut(&c.host.name).expect("phase 1 recorded it");
        if nats_ok && entry.status == HostStatus::Ok {
            let plan = plan::streams_plan(c.host, &fleet, &run_id, options.check_only);
            let took = Instant::now();
            let result = run(c, agent_path, &plan, progress).await;
            absorb(entry, took.elapsed(), result);
        } else if entry.status == HostStatus::Ok {
            entry.status = HostStatus::Failed;
            entry.error = Some(format!(
                "{}: streams not created: a NATS node failed above; fix it and deploy again",
                c.host.name
            ));
        }
    }

    // Phases 3 and 4: the pipeline services start once every server they use is up (the
    // streams exist, the schema is there), then the data flow is verified on every host.
    let servers_ok = results.values().all(|r| {
        r.status == HostStatus::Ok
            || !inventory.hosts.iter().any(|h| {
                h.name == r.host
                    && (h.roles.contains(&Role::Nats) || h.roles.contains(&Role::Clickhouse))
            })
    });
    let pipeline_hosts: Vec<Connected> = ready
        .iter()
        .map(|(c, _, _)| c.clone())
        .filter(|c| !plan::pipeline::services_of(c.host).is_empty())
        .filter(|c| results[&c.host.name].status == HostStatus::Ok)
        .collect();
    if !servers_ok {
        for c in &pipeline_hosts {
            let entry = results.get_mut(&c.host.name).expect("phase 1 recorded it");
            entry.status = HostStatus::Failed;
            entry.error = Some(format!(
                "{}: storage and collectors not started: a NATS or ClickHouse host failed above; fix it and deploy again",
                c.host.name
            ));
        }
    } else {
        for layer in [LayerName::Start, LayerName::Verify] {
            let hosts: Vec<Connected> = pipeline_hosts
                .iter()
                .filter(|c| results[&c.host.name].status == HostStatus::Ok)
                .cloned()
                .collect();
            let outcomes = session::on_each(&hosts, fanout.forks, |c| {
                let (_, facts, agent_path) = ready
                    .iter()
                    .find(|(r, _, _)| r.host.name == c.host.name)
                    .expect("every ready host has facts");
                let fleet = &fleet;
                let run_id = &run_id;
                async move {
                    let plan = match layer {
                        LayerName::Start => plan::pipeline::services_plan(
                            c.host,
                            facts,
                            fleet,
                            run_id,
                            options.check_only,
                        )?,
                        _ => {
                            plan::pipeline::verify_plan(c.host, fleet, run_id, options.check_only)?
                        }
                    };
                    run(&c, agent_path, &plan, progress).await
                }
            })
            .await;
            for (c, (took, result)) in hosts.iter().zip(outcomes) {
                let entry = results.get_mut(&c.host.name).expect("phase 1 recorded it");
                absorb(entry, took, result);
            }
        }
    }
    for c in &connected {
        c.transport.close().await;
    }
    tracing::debug!("deploy took {:?}", started.elapsed());
    Ok(selected
        .iter()
        .filter_map(|h| results.remove(&h.name))
        .collect())
}

struct Detected {
    facts: Facts,
    agent_path: String,
    password: Option<String>,
}

async fn detect(
    c: &Connected<'_>,
    agent: &AgentBinary,
    artifacts: &[agent_exec::PushArtifact],
    options: &DeployOptions,
    limits: Thresholds,
) -> anyhow::Result<Detected> {
    let host = c.host;
    let deploy_dir = host
        .vars
        .get("deploy_dir")
        .and_then(|v| v.as_str())
        .unwrap_or(plan::build::DEFAULT_DEPLOY_DIR);
    let output = c
        .transport
        .exec(
            &format!("sh -s -- {}", quote(deploy_dir)),
            facts::PROBE_SCRIPT.as_bytes(),
        )
        .await?;
    let facts = facts::parse(&output.stdout_text())?;
    if options.agent_binary.is_none() && facts.target_arch() != Some(std::env::consts::ARCH) {
        anyhow::bail!(
            "{}: the agent cannot run here: the host is {} {}, this build is {} {}; pass --agent-binary PATH with a build for the host",
            host.name,
            facts.os.id,
            facts.arch,
            std::env::consts::OS,
            std::env::consts::ARCH
        );
    }
    if let (Some(needed), Some(host_glibc)) = (
        agent.glibc.clone(),
        facts.glibc.as_deref().and_then(super::agent_glibc::parse),
    ) {
        if host_glibc < needed && host.connection == crate::inventory::Connection::Ssh {
            anyhow::bail!(
                "{}: the agent cannot run here: it needs glibc {} and the host has {}; build mp-remote on an older system (or statically) and pass --agent-binary PATH",
                host.name,
                super::agent_glibc::display(&needed),
                super::agent_glibc::display(&host_glibc)
            );
        }
    }
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
    let password = if host.roles.contains(&Role::Clickhouse) {
        let read = c
            .transport
            .exec(&with_become(&read_secret_command(), host.become_), b"")
            .await?;
        Some(read.stdout_text().trim().to_string()).filter(|p| !p.is_empty())
    } else {
        None
    };
    let (agent_path, _) =
        agent_exec::push_agent(c.transport.as_ref(), host, facts.is_root, agent).await?;
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
        password,
    })
}

async fn run(
    c: &Connected<'_>,
    agent_path: &str,
    plan: &HostPlan,
    progress: &Progress,
) -> anyhow::Result<Vec<StepEnd>> {
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

fn host_result(
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
fn absorb(entry: &mut HostDeploy, took: Duration, result: anyhow::Result<Vec<StepEnd>>) {
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

fn first_failure(host: &str, steps: &[StepEnd]) -> Option<String> {
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

fn failed_host(name: &str, status: HostStatus, error: String, took: Duration) -> HostDeploy {
    HostDeploy {
        host: name.to_string(),
        status,
        error: Some(error),
        facts: None,
        steps: Vec::new(),
        duration: took,
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

/// Reads the ClickHouse password the host already has. An agent left running by a cut
/// connection may be about to write it: wait for that agent (its lock) first, or this run
/// would make a second password and replace the first one's.
fn read_secret_command() -> String {
    let lock = format!("{}/agent.lock", plan::build::STATE_DIR);
    format!(
        "if [ -e {lock} ] && command -v flock >/dev/null 2>&1; then flock -w {wait} {lock} true; fi; cat {secret} 2>/dev/null",
        wait = crate::agent::lock::WAIT.as_secs(),
        secret = plan::build::CLICKHOUSE_SECRET_PATH,
    )
}

fn run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}-{}", now.as_secs(), std::process::id())
}

/// 32 hex characters from the OS's random source; never a weak fallback.
fn generate_password() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    let mut file = std::fs::File::open("/dev/urandom").context("cannot open /dev/urandom")?;
    std::io::Read::read_exact(&mut file, &mut bytes).context("cannot read /dev/urandom")?;
    Ok(hex::encode(bytes))
}
