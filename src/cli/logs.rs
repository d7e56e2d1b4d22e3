//! `mp-remote logs --service NAME`: the journal tail of a service from each host that runs it,
//! every line prefixed by the host's name.

use crate::inventory::{Host, Inventory};
use crate::report::ExitCode;
use crate::run::day2::{logs, Named};
use crate::run::FanOut;

use super::service_ctl::{hosts_with, named};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Whose journal: nats (unit nats-server), clickhouse (clickhouse-server), storage
    /// (mp-storage), collector (mp-collector) or a user service (mp-svc-NAME).
    #[arg(long, value_name = "NAME")]
    pub service: String,
    /// Only this host (instead of every selected host that runs the service).
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// How many lines from each host.
    #[arg(short = 'n', long, default_value_t = 50, value_name = "LINES")]
    pub lines: u32,
}

pub async fn run(
    inventory: &Inventory,
    selected: &[&Host],
    fanout: &FanOut,
    args: Args,
) -> ExitCode {
    let service = match named(Some(&args.service), &inventory.services) {
        Ok(Some(service)) => service,
        Ok(None) | Err(_) => {
            let error = named(Some(&args.service), &inventory.services).err();
            eprintln!("error: {}", error.unwrap_or_default());
            return ExitCode::Usage;
        }
    };
    let candidates: Vec<&Host> = match &args.host {
        Some(name) => match inventory.hosts.iter().find(|h| &h.name == name) {
            Some(host) => vec![host],
            None => {
                eprintln!(
                    "error: no host {name:?} in {}; hosts: {}",
                    inventory.path.display(),
                    inventory
                        .hosts
                        .iter()
                        .map(|h| h.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return ExitCode::Usage;
            }
        },
        None => selected.to_vec(),
    };
    let hosts = match hosts_with(&candidates, Some(&service), &inventory.services) {
        Ok(hosts) => hosts,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::Usage;
        }
    };
    let unit = match &service {
        Named::Builtin(s) => s.unit().to_string(),
        Named::User(name) => crate::plan::services::unit_name(name),
    };
    let outcomes = logs(&hosts, fanout, &unit, args.lines).await;
    let width = hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
    for outcome in &outcomes {
        match (&outcome.value, &outcome.error) {
            (Some(text), _) => {
                for line in text.lines() {
                    println!("{:<width$} | {line}", outcome.host);
                }
            }
            (None, Some(error)) => eprintln!("{}: {error}", outcome.status),
            (None, None) => {}
        }
    }
    ExitCode::from_statuses(outcomes.iter().map(|o| o.status))
}
