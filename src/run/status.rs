//! `status`: the state of every service on every host, learned in ONE exec per host: the
//! agent's `agent status` looks (unit state, package, files, health, versions, NATS `/jsz`,
//! ClickHouse's tables, listening ports) and answers with typed data ([`ProbeReply`]), which
//! the pure [`interpret`] turns into each service's state here, judged by the same
//! [`crate::stack::health::judge`] the agent's health waits use.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::agent_call;
use super::day2::{services_of, Service};
use super::{for_each_host_seen, FanOut, HostOutcome};
use crate::facts::normalize_version;
use crate::inventory::{Host, Role, UserService};
use crate::plan::probe::{
    component_target, one_line, user_target, ProbeReply, ProbeRequest, Reply, Seen, Target,
};
use crate::report::HostStatus;

/// Where the host keeps MarketPrism's releases: its `deploy_dir` var, else deploy's default.
pub fn deploy_dir(host: &Host) -> &str {
    host.vars
        .get("deploy_dir")
        .and_then(|v| v.as_str())
        .unwrap_or(crate::plan::build::DEFAULT_DEPLOY_DIR)
}

/// What the agent looks at for a built-in service of `host`.
pub fn target(host: &Host, service: Service) -> Target {
    component_target(service.component(), deploy_dir(host))
}

/// `agent status`'s question for `services` and the user services `users` of `host`.
pub fn request(
    host: &Host,
    services: &[Service],
    users: &[&UserService],
    full: bool,
) -> ProbeRequest {
    let mut targets: Vec<Target> = services.iter().map(|s| target(host, *s)).collect();
    targets.extend(users.iter().map(|u| user_target(u)));
    ProbeRequest {
        full,
        targets,
        release_link: Some(format!("{}/current", deploy_dir(host))),
    }
}

/// One service as `status --json` shows it. Field names are an API (README).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServiceState {
    pub running: bool,
    pub healthy: bool,
    pub version: Option<String>,
    pub ports: Vec<u16>,
    /// `systemctl is-active` said this (`inactive`, `failed`, ...); empty when unknown. Under
    /// mp-remote's supervisor (no systemd): `active`, `restarting` (the supervisor runs, its
    /// server not) or `inactive` (no supervisor).
    #[serde(skip)]
    pub active: String,
    /// Run by mp-remote's own supervisor, the host having no systemd.
    #[serde(skip)]
    pub supervised: bool,
    #[serde(skip)]
    pub installed: bool,
    /// Why it is not healthy, when it is not.
    #[serde(skip)]
    pub health_error: Option<String>,
}

impl ServiceState {
    /// What is wrong with it and what to do, None when it runs and is healthy.
    pub fn problem(&self) -> Option<String> {
        if !self.running {
            let state = if self.active.is_empty() {
                "unknown"
            } else {
                &self.active
            };
            return Some(if self.supervised {
                format!("not running (mp-remote supervisor: {state})")
            } else {
                format!("not running (systemctl is-active: {state})")
            });
        }
        if !self.healthy {
            return Some(format!(
                "running but not healthy: {}",
                self.health_error.as_deref().unwrap_or("no answer")
            ));
        }
        None
    }
}

/// A stream's state as `status --json` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamState {
    pub messages: u64,
}

/// What the probe found on one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostProbe {
    pub services: BTreeMap<Service, ServiceState>,
    /// The user services (`[services.NAME]`) placed on the host, by name.
    pub users: BTreeMap<String, ServiceState>,
    /// From NATS `/jsz`; None when NATS is not probed here, Err when jsz did not answer.
    pub streams: Option<Result<BTreeMap<String, StreamState>, String>>,
    /// Rows per table of `marketprism_hot`; None when ClickHouse is not probed here.
    pub tables: Option<Result<BTreeMap<String, u64>, String>>,
    /// The pipeline release `{deploy_dir}/current` points at, when there is one.
    pub release: Option<String>,
}

impl HostProbe {
    /// The state of `service`; not running and not healthy when the probe did not look at it.
    pub fn service(&self, service: Service) -> ServiceState {
        self.services.get(&service).cloned().unwrap_or_default()
    }
}

/// What the agent's answer means: each service's state, the streams (from `/jsz`) and the
/// tables' rows (ClickHouse), judged against the request's targets.
pub fn interpret(request: &ProbeRequest, reply: &ProbeReply) -> HostProbe {
    let mut probe = HostProbe::default();
    let listening = reply.listening.clone().unwrap_or_default();
    for seen in &reply.services {
        let Some(target) = request.targets.iter().find(|t| t.name == seen.name) else {
            continue;
        };
        let builtin = Service::from_name(&seen.name);
        let state = state_of(target, seen, builtin, &listening);
        match builtin {
            Some(service) => {
                probe.services.insert(service, state);
            }
            None => {
                probe.users.insert(seen.name.clone(), state);
            }
        }
        if builtin == Some(Service::NATS) && request.full {
            probe.streams = Some(
                call(seen, "nats.jsz")
                    .ok_body("nats.jsz")
                    .map_err(|e| e.to_string())
                    .and_then(streams),
            );
        }
        if builtin == Some(Service::CLICKHOUSE) && request.full {
            probe.tables = Some(if seen.health.answered && seen.health.code == 200 {
                tables(seen)
            } else {
                Err("ClickHouse did not answer /ping".into())
            });
        }
    }
    probe.release = reply.release.clone().filter(|r| !r.is_empty());
    probe
}

fn call<'a>(seen: &'a Seen, name: &str) -> std::borrow::Cow<'a, Reply> {
    match seen.calls.get(name) {
        Some(reply) => std::borrow::Cow::Borrowed(reply),
        None => std::borrow::Cow::Owned(Reply::none("not asked")),
    }
}

fn state_of(
    target: &Target,
    seen: &Seen,
    builtin: Option<Service>,
    listening: &[u16],
) -> ServiceState {
    let pkg_version = seen
        .package
        .as_deref()
        .and_then(|p| p.strip_prefix("install ok installed|"))
        .and_then(normalize_version);
    let installed = match &target.package {
        Some(_) => pkg_version.is_some(),
        None => seen.files_present,
    };
    let version = match builtin {
        Some(Service::CLICKHOUSE) => seen
            .calls
            .get("clickhouse.version")
            .and_then(|r| r.ok_body("clickhouse.version").ok())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty()),
        _ => seen.version.as_deref().and_then(normalize_version),
    };
    let running = seen.active == "active";
    let health = target.judge(&seen.health);
    ServiceState {
        running,
        healthy: running && health.is_ok(),
        version: version.or(pkg_version),
        ports: listening
            .iter()
            .copied()
            .filter(|p| target.ports.contains(p))
            .collect(),
        active: seen.active.clone(),
        supervised: seen.supervised,
        installed,
        health_error: health.err(),
    }
}

/// Per stream its message count, from `/jsz?streams=true`.
fn streams(body: &str) -> Result<BTreeMap<String, StreamState>, String> {
    #[derive(Deserialize)]
    struct Jsz {
        #[serde(default)]
        account_details: Vec<Account>,
    }
    #[derive(Deserialize)]
    struct Account {
        #[serde(default)]
        stream_detail: Vec<Detail>,
    }
    #[derive(Deserialize)]
    struct Detail {
        name: String,
        #[serde(default)]
        state: State,
    }
    #[derive(Deserialize, Default)]
    struct State {
        #[serde(default)]
        messages: u64,
    }
    let jsz: Jsz = serde_json::from_str(body)
        .map_err(|e| format!("/jsz is not JSON ({e}): {}", one_line(body)))?;
    Ok(jsz
        .account_details
        .into_iter()
        .flat_map(|a| a.stream_detail)
        .map(|d| {
            (
                d.name,
                StreamState {
                    messages: d.state.messages,
                },
            )
        })
        .collect())
}

/// Every table of `marketprism_hot` with its rows in active parts (0 when it has none).
fn tables(seen: &Seen) -> Result<BTreeMap<String, u64>, String> {
    #[derive(Deserialize)]
    struct Table {
        name: String,
    }
    #[derive(Deserialize)]
    struct Parts {
        table: String,
        /// ClickHouse quotes 64-bit integers in JSON by default.
        rows: serde_json::Value,
    }
    let mut tables = BTreeMap::new();
    for line in call(seen, "clickhouse.tables")
        .ok_body("clickhouse.tables")?
        .lines()
    {
        if line.trim().is_empty() {
            continue;
        }
        let t: Table = serde_json::from_str(line)
            .map_err(|e| format!("unexpected table row ({e}): {line}"))?;
        tables.insert(t.name, 0);
    }
    for line in call(seen, "clickhouse.parts")
        .ok_body("clickhouse.parts")?
        .lines()
    {
        if line.trim().is_empty() {
            continue;
        }
        let p: Parts = serde_json::from_str(line)
            .map_err(|e| format!("unexpected parts row ({e}): {line}"))?;
        let rows = match &p.rows {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| format!("unexpected row count in {line}"))?;
        tables.insert(p.table, rows);
    }
    Ok(tables)
}

/// Probes every service of every host (by its roles) in one exec per host. A host with a
/// service not running or not healthy ends `failed`, naming each and what to do. Streams are
/// kept on the first NATS host that answered `/jsz` (the cluster's view), cleared elsewhere.
pub async fn gather<'h>(
    hosts: &[&'h Host],
    fanout: &FanOut,
    users: &[UserService],
    seen: impl Fn(&HostOutcome<HostProbe>),
) -> Vec<HostOutcome<HostProbe>> {
    let agent = agent_call::day2_agents();
    let task = |transport: std::sync::Arc<dyn crate::transport::Transport>, host: &'h Host| {
        let agent = agent.clone();
        let mine = crate::plan::services::services_on(host, users);
        let request = request(host, &services_of(host, None), &mine, true);
        async move {
            let agent = agent.map_err(|e| anyhow::anyhow!("{e}"))?;
            probe(transport.as_ref(), host, &agent, &request).await
        }
    };
    // What an interrupted `status` records of the hosts that answered: judged the same way.
    let judged_seen = |o: &HostOutcome<HostProbe>| {
        let mut o = o.clone();
        mark_problems(&mut o);
        seen(&o);
    };
    let mut outcomes = for_each_host_seen(hosts, fanout, task, judged_seen).await;
    let shown = stream_host(
        &outcomes
            .iter()
            .zip(hosts)
            .map(|(o, h)| (h.has_role(Role::NATS), o.value.as_ref()))
            .collect::<Vec<_>>(),
    );
    for (index, outcome) in outcomes.iter_mut().enumerate() {
        if let (Some(probe), false) = (&mut outcome.value, Some(index) == shown) {
            probe.streams = None;
        }
        mark_problems(outcome);
    }
    outcomes
}

/// A host with a service not running or not healthy ends `failed`, naming each.
fn mark_problems(outcome: &mut HostOutcome<HostProbe>) {
    let Some(probe) = &outcome.value else {
        return;
    };
    let users = probe.users.iter().map(|(name, state)| {
        let unit = crate::plan::services::unit_name(name);
        (name.clone(), unit, state)
    });
    let problems: Vec<String> = probe
        .services
        .iter()
        .map(|(s, state)| (s.name().to_string(), s.unit().to_string(), state))
        .chain(users)
        .filter_map(|(name, unit, state)| {
            state
                .problem()
                .map(|p| problem_line_for(&name, &unit, state, &p))
        })
        .collect();
    if !problems.is_empty() {
        outcome.status = HostStatus::Failed;
        outcome.error = Some(format!("{}: {}", outcome.host, problems.join("; ")));
    }
}

/// Asks the host's agent and interprets its answer.
pub async fn probe(
    transport: &dyn crate::transport::Transport,
    host: &Host,
    agent: &super::agents::Agents,
    request: &ProbeRequest,
) -> anyhow::Result<HostProbe> {
    let events = agent_call::call(transport, host, agent, "status", request).await?;
    let reply = events
        .into_iter()
        .find_map(|e| match e {
            crate::plan::probe::OpEvent::Probed(reply) => Some(reply),
            _ => None,
        })
        .ok_or_else(|| anyhow::anyhow!("`mp-remote agent status` gave no answer"))?;
    Ok(interpret(request, &reply))
}

/// Which host speaks for the cluster's streams: the first NATS host whose /jsz answered, else
/// the first reached NATS host (to show why not); None without one.
fn stream_host(hosts: &[(bool, Option<&HostProbe>)]) -> Option<usize> {
    let reached = || {
        hosts
            .iter()
            .enumerate()
            .filter_map(|(i, (nats, probe))| (*nats).then_some((i, (*probe)?)))
    };
    reached()
        .find(|(_, p)| matches!(p.streams, Some(Ok(_))))
        .or_else(|| reached().next())
        .map(|(i, _)| i)
}

#[cfg(test)]
fn problem_line(service: Service, state: &ServiceState, problem: &str) -> String {
    problem_line_for(service.name(), service.unit(), state, problem)
}

/// What is wrong with the service `name` (unit `unit`) and what to do about it.
fn problem_line_for(name: &str, unit: &str, state: &ServiceState, problem: &str) -> String {
    if !state.installed && !state.running {
        return format!("{unit} is not installed: run `mp-remote deploy`");
    }
    let todo = if !state.running && state.supervised {
        format!("start it with `mp-remote start --service {name}` (mp-remote's supervisor: no systemd there) or `mp-remote deploy`")
    } else if !state.running {
        format!("start it with `mp-remote start --service {name}`")
    } else {
        format!("see `mp-remote logs --service {name}`")
    };
    format!("{unit} {problem}: {todo}")
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
