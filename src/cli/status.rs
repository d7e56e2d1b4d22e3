//! `mp-remote status`: every service on every host, its streams and tables, as a table or one
//! JSON document.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::inventory::Host;
use crate::report::{ExitCode, HostStatus};
use crate::run::status::{gather, HostProbe, ServiceState, StreamState};
use crate::run::FanOut;

/// The `status --json` document. Field names are an API (README usage table), pinned by
/// tests/day2.rs.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub hosts: Vec<HostReport>,
}

#[derive(Debug, Serialize)]
pub struct HostReport {
    pub name: String,
    pub status: HostStatus,
    pub error: Option<String>,
    /// By service name (`nats`, `clickhouse`), only the host's roles'; null when not reached.
    pub services: Option<BTreeMap<String, ServiceState>>,
    /// Per stream its messages; only on the one NATS host that speaks for the cluster.
    pub streams: Option<BTreeMap<String, StreamState>>,
    /// Rows per table of `marketprism_hot`; only on ClickHouse hosts.
    pub tables: Option<BTreeMap<String, u64>>,
}

impl HostReport {
    fn new(
        name: String,
        status: HostStatus,
        error: Option<String>,
        probe: Option<&HostProbe>,
    ) -> Self {
        HostReport {
            name,
            status,
            error,
            services: probe.map(|p| {
                p.services
                    .iter()
                    .map(|(s, state)| (s.name().to_string(), state.clone()))
                    .collect()
            }),
            streams: probe.and_then(|p| p.streams.clone()).and_then(Result::ok),
            tables: probe.and_then(|p| p.tables.clone()).and_then(Result::ok),
        }
    }
}

pub async fn run(hosts: &[&Host], fanout: &FanOut, json: bool) -> ExitCode {
    let outcomes = gather(hosts, fanout).await;
    let code = ExitCode::from_statuses(outcomes.iter().map(|o| o.status));
    if json {
        let report = StatusReport {
            hosts: outcomes
                .iter()
                .map(|o| {
                    HostReport::new(o.host.clone(), o.status, o.error.clone(), o.value.as_ref())
                })
                .collect(),
        };
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(error) => eprintln!("error: cannot encode the status as JSON: {error}"),
        }
        return code;
    }
    println!(
        "{:<16} {:<11} {:<11} {:<8} {:<8} {:<10} ports",
        "HOST", "STATUS", "SERVICE", "RUNNING", "HEALTHY", "VERSION"
    );
    let yes_no = |b: bool| if b { "yes" } else { "NO" };
    for o in &outcomes {
        let Some(probe) = &o.value else {
            println!("{:<16} {:<11} -", o.host, o.status);
            continue;
        };
        if probe.services.is_empty() {
            println!(
                "{:<16} {:<11} (no nats or clickhouse role)",
                o.host, o.status
            );
        }
        for (service, state) in &probe.services {
            println!(
                "{:<16} {:<11} {:<11} {:<8} {:<8} {:<10} {}",
                o.host,
                o.status,
                service.name(),
                yes_no(state.running),
                yes_no(state.healthy),
                state.version.as_deref().unwrap_or("-"),
                join(state.ports.iter().map(u16::to_string))
            );
        }
    }
    for o in &outcomes {
        let Some(probe) = &o.value else { continue };
        match &probe.streams {
            Some(Ok(streams)) if streams.is_empty() => println!("\n{} streams: none", o.host),
            Some(Ok(streams)) => println!(
                "\n{} streams: {}",
                o.host,
                join(
                    streams
                        .iter()
                        .map(|(n, s)| format!("{n} {} msgs", s.messages))
                )
            ),
            Some(Err(why)) => println!("\n{} streams: unknown ({why})", o.host),
            None => {}
        }
        match &probe.tables {
            Some(Ok(tables)) if tables.is_empty() => {
                println!(
                    "\n{} tables of marketprism_hot: none (run `mp-remote deploy`)",
                    o.host
                )
            }
            Some(Ok(tables)) => println!(
                "\n{} rows in marketprism_hot: {}",
                o.host,
                join(tables.iter().map(|(t, rows)| format!("{t} {rows}")))
            ),
            Some(Err(why)) => println!("\n{} tables: unknown ({why})", o.host),
            None => {}
        }
    }
    for o in &outcomes {
        if let Some(error) = &o.error {
            println!("\n{}: {error}", o.status);
        }
    }
    code
}

fn join(items: impl Iterator<Item = String>) -> String {
    let all: Vec<String> = items.collect();
    if all.is_empty() {
        "-".into()
    } else {
        all.join(", ")
    }
}
