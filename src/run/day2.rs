//! Day-2 operations on deployed hosts: which services a host runs, start/stop/restart with a
//! health wait, and log tails. Each runs as the agent's `agent control` or `agent logs` on the
//! host (one exec per host, typed events back); the fan-out runs them, one host's trouble
//! never stopping the others.

use std::time::Duration;

use super::{agent_call, status};
use super::{for_each_host, FanOut, HostOutcome};
use crate::inventory::{Host, Role, UserService};
pub use crate::plan::probe::Control;
use crate::plan::probe::{user_target, ControlRequest, LogsRequest, OpEvent, Target};
use crate::stack::component::{self, Component};
use crate::stack::pipeline::PipelineService;

/// A built-in component mp-remote deploys, by the name users type (`--service nats`): an
/// index into `stack::component::ALL`, so that a new component needs no line here, and the
/// order is the start order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Service(usize);

impl Service {
    /// In start order: NATS, ClickHouse, then the storage that writes into it and the
    /// collector that publishes (stop goes the other way).
    pub const ALL: [Service; component::ALL.len()] = {
        let mut all = [Service(0); component::ALL.len()];
        let mut i = 0;
        while i < all.len() {
            all[i] = Service(i);
            i += 1;
        }
        all
    };
    /// The two whose `status` says more than health (streams, tables).
    pub const NATS: Service = Service::named("nats");
    pub const CLICKHOUSE: Service = Service::named("clickhouse");
    #[cfg(test)]
    pub const STORAGE: Service = Service::named("storage");
    #[cfg(test)]
    pub const COLLECTOR: Service = Service::named("collector");

    /// At compile time: a misspelt name fails the build.
    const fn named(name: &str) -> Service {
        let mut i = 0;
        while i < component::ALL.len() {
            if crate::stack::component::same_name(component::ALL[i].name, name) {
                return Service(i);
            }
            i += 1;
        }
        panic!("no such component")
    }

    /// Its declaration: unit, ports, health, files (`stack::component`).
    pub fn component(self) -> &'static Component {
        component::ALL[self.0]
    }

    pub fn name(self) -> &'static str {
        self.component().name
    }

    /// The pipeline service mp-remote itself runs (`mp-remote service NAME`), None for the
    /// vendors' servers.
    pub fn pipeline(self) -> Option<PipelineService> {
        PipelineService::ALL
            .into_iter()
            .find(|p| p.component().name == self.name())
    }

    /// The systemd unit (Debian's package's, or deploy's `mp-storage`/`mp-collector`), and
    /// the supervised service's name on hosts without systemd.
    pub fn unit(self) -> &'static str {
        self.component().unit
    }

    pub fn role(self) -> Role {
        let role = self.component().role;
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == role)
            .unwrap_or(Role::COLLECTOR)
    }

    /// The ports the service may listen on, as declared.
    pub fn ports(self) -> Vec<u16> {
        self.component().port_numbers()
    }

    /// How long start/restart waits for health unless `--wait` says otherwise; the same
    /// deadlines deploy uses (ClickHouse loads its tables before it answers).
    pub fn health_deadline(self) -> Duration {
        self.component().health_deadline
    }

    pub fn from_name(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The services `host` runs by its roles, in start order, narrowed to `only` when given.
pub fn services_of(host: &Host, only: Option<Service>) -> Vec<Service> {
    Service::ALL
        .into_iter()
        .filter(|s| host.has_role(s.role()) && only.is_none_or(|o| o == *s))
        .collect()
}

/// A service named with `--service`: a built-in component, or one of the inventory's own
/// (`[services.NAME]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    Builtin(Service),
    User(String),
}

impl Named {
    /// The name as typed; an unknown one is an error listing the names there are.
    pub fn resolve(name: &str, users: &[UserService]) -> Result<Named, String> {
        if let Some(service) = Service::from_name(name) {
            return Ok(Named::Builtin(service));
        }
        if users.iter().any(|u| u.name == name) {
            return Ok(Named::User(name.to_string()));
        }
        let mut known: Vec<&str> = Service::ALL.iter().map(|s| s.name()).collect();
        known.extend(users.iter().map(|u| u.name.as_str()));
        Err(format!(
            "no service {name:?}: the services are {} (user services come from the inventory's [services.NAME] tables)",
            known.join(", ")
        ))
    }

    fn builtin(&self) -> Option<Service> {
        match self {
            Named::Builtin(s) => Some(*s),
            Named::User(_) => None,
        }
    }
}

/// What `control` goes through on `host`, one after the other: the built-in services of its
/// roles in start order (NATS, ClickHouse, storage, collector), then its user services (each
/// after what it names in `after`); stop goes the other way (the collector stops publishing
/// before anything it feeds goes away). `only` narrows it to one.
pub fn targets(
    host: &Host,
    control: Control,
    only: Option<&Named>,
    users: &[UserService],
) -> Vec<Target> {
    let mut targets: Vec<Target> = match only {
        Some(Named::User(_)) => Vec::new(),
        _ => services_of(host, only.and_then(Named::builtin))
            .into_iter()
            .map(|s| status::target(host, s))
            .collect(),
    };
    if !matches!(only, Some(Named::Builtin(_))) {
        targets.extend(
            crate::plan::services::services_on(host, users)
                .into_iter()
                .filter(|u| only.is_none_or(|o| *o == Named::User(u.name.clone())))
                .map(user_target),
        );
    }
    if control == Control::Stop {
        targets.reverse();
    }
    targets
}

/// What happened to one service on one host.
#[derive(Debug, Clone)]
pub struct ServiceControl {
    pub name: String,
    pub unit: String,
    pub control: Control,
    /// The unit already was as asked (running for start, stopped for stop).
    pub already: bool,
    /// How long it took to answer healthy (start/restart).
    pub healthy_after: Option<Duration>,
    /// What went wrong and what to do; None when it went as asked.
    pub failure: Option<String>,
    /// The unit's last journal lines when it failed.
    pub journal: String,
}

/// Journal lines shown when a service fails to start.
const JOURNAL_TAIL: u32 = 20;

/// Runs `control` on the services of each host ([`targets`]) with one `agent control` per
/// host: hosts in parallel, services of one host in order; start/restart then wait on the
/// host for health until `wait` (default: each service's own deadline).
pub async fn control_all(
    hosts: &[&Host],
    fanout: &FanOut,
    control: Control,
    only: Option<&Named>,
    wait: Option<Duration>,
    users: &[UserService],
) -> Vec<HostOutcome<Vec<ServiceControl>>> {
    let agent = agent_call::day2_agents();
    for_each_host(hosts, fanout, |transport, host| {
        let agent = agent.clone();
        async move {
            let agent = agent.map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut targets = targets(host, control, only, users);
            if let Some(wait) = wait {
                targets
                    .iter_mut()
                    .for_each(|t| t.deadline_secs = wait.as_secs().max(1));
            }
            let units: Vec<(String, String)> = targets
                .iter()
                .map(|t| (t.name.clone(), t.unit.clone()))
                .collect();
            let request = ControlRequest {
                control,
                targets,
                journal_lines: JOURNAL_TAIL,
            };
            let events =
                agent_call::call(transport.as_ref(), host, &agent, "control", &request).await?;
            Ok(events
                .into_iter()
                .filter_map(|e| match e {
                    OpEvent::Controlled(done) => Some(done),
                    _ => None,
                })
                .map(|done| ServiceControl {
                    unit: units
                        .iter()
                        .find(|(n, _)| *n == done.name)
                        .map(|(_, u)| u.clone())
                        .unwrap_or_default(),
                    name: done.name,
                    control,
                    already: done.already,
                    healthy_after: done.healthy_after_ms.map(Duration::from_millis),
                    failure: done.failure,
                    journal: done.journal,
                })
                .collect())
        }
    })
    .await
}

/// The last `lines` lines of the log of `unit` on each host (the journal, or without
/// systemd mp-remote's supervisor's log).
pub async fn logs(
    hosts: &[&Host],
    fanout: &FanOut,
    unit: &str,
    lines: u32,
) -> Vec<HostOutcome<String>> {
    let agent = agent_call::day2_agents();
    for_each_host(hosts, fanout, |transport, host| {
        let agent = agent.clone();
        async move {
            let agent = agent.map_err(|e| anyhow::anyhow!("{e}"))?;
            let request = LogsRequest {
                unit: unit.to_string(),
                lines,
            };
            let events =
                agent_call::call(transport.as_ref(), host, &agent, "logs", &request).await?;
            Ok(events
                .into_iter()
                .filter_map(|e| match e {
                    OpEvent::Log { text } => Some(text),
                    _ => None,
                })
                .collect())
        }
    })
    .await
}

#[cfg(test)]
#[path = "day2_tests.rs"]
mod tests;
