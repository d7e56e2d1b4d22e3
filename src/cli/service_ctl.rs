//! `mp-remote start|stop|restart`: systemctl on each host's services (NATS, ClickHouse, storage,
//! collector; stop in reverse), then (start, restart) a wait until they answer healthy; one
//! line per service and host.

use std::time::Duration;

use crate::inventory::{Host, UserService};
use crate::report::{ExitCode, HostStatus};
use crate::run::day2::{control_all, targets, Control, Named};
use crate::run::FanOut;

#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    /// Only this service: nats, clickhouse, storage, collector or a user service's name
    /// (default: every service of the host's roles, then its user services).
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// How long to wait for health, e.g. 30s (default: 90s ClickHouse, 60s the others).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub wait: Option<Duration>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StopArgs {
    /// Only this service: nats, clickhouse, storage, collector or a user service's name
    /// (default: every service of the host's roles, then its user services).
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
}

/// The hosts that run `only` (any service when None); an error line when none does.
pub fn hosts_with<'h>(
    hosts: &[&'h Host],
    only: Option<&Named>,
    users: &[UserService],
) -> Result<Vec<&'h Host>, String> {
    let chosen: Vec<&Host> = hosts
        .iter()
        .copied()
        .filter(|h| !targets(h, Control::Start, only, users).is_empty())
        .collect();
    if chosen.is_empty() {
        return Err(match only {
            Some(Named::Builtin(s)) => format!(
                "no selected host has the {} role; check --limit and the hosts' roles",
                s.role()
            ),
            Some(Named::User(name)) => format!(
                "no selected host runs the service {name:?}; check --limit and its roles or hosts in [services.{name}]"
            ),
            None => "no selected host has a nats, clickhouse, storage or collector role or a user service; check --limit and the hosts' roles".into(),
        });
    }
    Ok(chosen)
}

/// `--service` resolved against the built-ins and the inventory's services.
pub fn named(service: Option<&str>, users: &[UserService]) -> Result<Option<Named>, String> {
    service.map(|s| Named::resolve(s, users)).transpose()
}

pub async fn run(
    hosts: &[&Host],
    fanout: &FanOut,
    control: Control,
    service: Option<&str>,
    wait: Option<Duration>,
    users: &[UserService],
) -> ExitCode {
    let only = match named(service, users) {
        Ok(only) => only,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::Usage;
        }
    };
    let hosts = match hosts_with(hosts, only.as_ref(), users) {
        Ok(hosts) => hosts,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::Usage;
        }
    };
    let outcomes = control_all(&hosts, fanout, control, only.as_ref(), wait, users).await;
    let mut statuses = Vec::new();
    for outcome in &outcomes {
        let mut status = outcome.status;
        for done in outcome.value.iter().flatten() {
            let unit = &done.unit;
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
