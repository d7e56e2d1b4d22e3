//! `mp-remote start|stop|restart`: systemctl on each host's services (NATS, ClickHouse, storage,
//! collector; stop in reverse), then (start, restart) a wait until they answer healthy; one
//! line per service and host.

use std::time::Duration;

use crate::inventory::Host;
use crate::report::{ExitCode, HostStatus};
use crate::run::day2::{control_all, Control, Service};
use crate::run::FanOut;

/// `--service` as typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceName {
    Nats,
    Clickhouse,
    Storage,
    Collector,
}

impl From<ServiceName> for Service {
    fn from(name: ServiceName) -> Self {
        match name {
            ServiceName::Nats => Service::Nats,
            ServiceName::Clickhouse => Service::Clickhouse,
            ServiceName::Storage => Service::Storage,
            ServiceName::Collector => Service::Collector,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    /// Only this service (default: every service of the host's roles).
    #[arg(long, value_enum)]
    pub service: Option<ServiceName>,
    /// How long to wait for health, e.g. 30s (default: 90s ClickHouse, 60s the others).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub wait: Option<Duration>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StopArgs {
    /// Only this service (default: every service of the host's roles).
    #[arg(long, value_enum)]
    pub service: Option<ServiceName>,
}

/// The hosts that run `only` (all when None); an error line when none does.
pub fn hosts_with<'h>(hosts: &[&'h Host], only: Option<Service>) -> Result<Vec<&'h Host>, String> {
    let chosen: Vec<&Host> = hosts
        .iter()
        .copied()
        .filter(|h| !crate::run::day2::services_of(h, only).is_empty())
        .collect();
    if chosen.is_empty() {
        return Err(match only {
            Some(s) => format!(
                "no selected host has the {} role; check --limit and the hosts' roles",
                s.role()
            ),
            None => "no selected host has a nats, clickhouse, storage or collector role; check --limit and the hosts' roles".into(),
        });
    }
    Ok(chosen)
}

pub async fn run(
    hosts: &[&Host],
    fanout: &FanOut,
    control: Control,
    service: Option<ServiceName>,
    wait: Option<Duration>,
) -> ExitCode {
    let only = service.map(Service::from);
    let hosts = match hosts_with(hosts, only) {
        Ok(hosts) => hosts,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::Usage;
        }
    };
    let outcomes = control_all(&hosts, fanout, control, only, wait).await;
    let mut statuses = Vec::new();
    for outcome in &outcomes {
        let mut status = outcome.status;
        for done in outcome.value.iter().flatten() {
            let unit = done.service.unit();
            match (&done.failure, done.healthy_after) {
                (Some(failure), _) => {
                    status = HostStatus::Failed;
                    println!("{:<16} FAILED  {unit}: {failure}", outcome.host);
                    for line in done.journal.lines() {
                        println!("{:>16}| {line}", "");
                    }
                }
                (None, Some(_)) if done.already => println!(
                    "{:<16} {:<7} {unit} already running, healthy",
                    outcome.host, "ok"
                ),
                (None, Some(after)) => println!(
                    "{:<16} {:<7} {unit} {}, healthy after {:.1} s",
                    outcome.host,
                    "ok",
                    done.control.past(),
                    after.as_secs_f64()
                ),
                (None, None) if done.already => {
                    println!("{:<16} {:<7} {unit} already stopped", outcome.host, "ok")
                }
                (None, None) => println!(
                    "{:<16} {:<7} {unit} {}",
                    outcome.host,
                    "ok",
                    done.control.past()
                ),
            }
        }
        if let Some(error) = &outcome.error {
            println!("{:<16} {:<7} {error}", outcome.host, outcome.status);
        }
        statuses.push(status);
    }
    ExitCode::from_statuses(statuses)
}
