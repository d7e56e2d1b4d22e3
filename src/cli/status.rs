//! `mp-remote status`: every service on every host, its streams and tables, as a table or one
//! JSON document.

use std::collections::BTreeMap;

use serde::Serialize;

use super::progress::{record_interrupted, until_interrupted, Settings};
use crate::inventory::Host;
use crate::report::{ExitCode, HostStatus};
use crate::run::status::{gather, HostProbe, ServiceState, StreamState};
use crate::run::{FanOut, HostOutcome};

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
    /// By service name (`nats`, `clickhouse`, `storage`, `collector`), only the host's
    /// roles'; null when not reached.
    pub services: Option<BTreeMap<String, ServiceState>>,
    /// Per stream its messages; only on the one NATS host that speaks for the cluster.
    pub streams: Option<BTreeMap<String, StreamState>>,
    /// Rows per table of `marketprism_hot` (`"tables":{"trades":1234,...}`); only on
    /// ClickHouse hosts, null when ClickHouse did not answer.
    pub tables: Option<BTreeMap<String, u64>>,
    /// The pipeline release the host runs (`{deploy_dir}/current`); null without one.
    pub release: Option<String>,
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
                    .chain(p.users.clone())
                    .collect()
            }),
            streams: probe.and_then(|p| p.streams.clone()).and_then(Result::ok),
            tables: probe.and_then(|p| p.tables.clone()).and_then(Result::ok),
            release: probe.and_then(|p| p.release.clone()),
        }
    }
}

/// Not recorded, unless cut short by Ctrl-C: then like any interrupted run (the hosts that
/// answered with their status, the others `interrupted`).
pub async fn run(
    hosts: &[&Host],
    fanout: &FanOut,
    json: bool,
    settings: &Settings,
    users: &[crate::inventory::UserService],
) -> ExitCode {
    // The hosts that answered before a Ctrl-C keep their own status in its record.
    let finished = std::sync::Mutex::new(Vec::new());
    let seen = |o: &crate::run::HostOutcome<crate::run::status::HostProbe>| {
        let end = crate::report::HostEnd::new(o.status, o.error.clone(), o.duration);
        finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((o.host.clone(), end));
    };
    let Ok(outcomes) = until_interrupted(gather(hosts, fanout, users, seen)).await else {
        let names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
        let done = finished.into_inner().unwrap_or_else(|e| e.into_inner());
        let settings = if json {
            settings.clone().without_display()
        } else {
            settings.clone()
        };
        let recorder = record_interrupted(&settings, "status", &names, done);
        if !json {
            return recorder.end_interrupted();
        }
        return recorder.end_interrupted_json(|h| {
            serde_json::json!({"name": h.name, "status": h.status, "error": h.error,
                "services": null, "streams": null, "tables": null, "release": null})
        });
    };
    let code = ExitCode::from_statuses(outcomes.iter().map(|o| o.status));
    if json {
        match serde_json::to_string_pretty(&report(&outcomes)) {
            Ok(text) => println!("{text}"),
            Err(error) => eprintln!("error: cannot encode the status as JSON: {error}"),
        }
    } else {
        print!("{}", text(&outcomes));
    }
    code
}

/// The `status --json` document.
fn report(outcomes: &[HostOutcome<HostProbe>]) -> StatusReport {
    StatusReport {
        hosts: outcomes
            .iter()
            .map(|o| HostReport::new(o.host.clone(), o.status, o.error.clone(), o.value.as_ref()))
            .collect(),
    }
}

/// The table: a line per host and service, then streams, rows per table and errors.
fn text(outcomes: &[HostOutcome<HostProbe>]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<11} {:<11} {:<8} {:<8} {:<10} ports",
        "HOST", "STATUS", "SERVICE", "RUNNING", "HEALTHY", "VERSION"
    );
    let yes_no = |b: bool| if b { "yes" } else { "NO" };
    for o in outcomes {
        let Some(probe) = &o.value else {
            let _ = writeln!(out, "{:<16} {:<11} -", o.host, o.status);
            continue;
        };
        if probe.services.is_empty() && probe.users.is_empty() {
            let _ = writeln!(out, "{:<16} {:<11} (no service role)", o.host, o.status);
        }
        let rows = probe
            .services
            .iter()
            .map(|(s, state)| (s.name(), state))
            .chain(probe.users.iter().map(|(n, state)| (n.as_str(), state)));
        for (service, state) in rows {
            // The pipeline services run the host's current release.
            let release = match (service, &probe.release) {
                ("storage" | "collector", Some(r)) => format!(" (release {r})"),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "{:<16} {:<11} {:<11} {:<8} {:<8} {:<10} {}{release}",
                o.host,
                o.status,
                service,
                yes_no(state.running),
                yes_no(state.healthy),
                state.version.as_deref().unwrap_or("-"),
                join(state.ports.iter().map(u16::to_string))
            );
        }
    }
    for o in outcomes {
        let Some(probe) = &o.value else { continue };
        match &probe.streams {
            Some(Ok(streams)) if streams.is_empty() => {
                let _ = writeln!(out, "\n{} streams: none", o.host);
            }
            Some(Ok(streams)) => {
                let _ = writeln!(
                    out,
                    "\n{} streams: {}",
                    o.host,
                    join(
                        streams
                            .iter()
                            .map(|(n, s)| format!("{n} {} msgs", s.messages))
                    )
                );
            }
            Some(Err(why)) => {
                let _ = writeln!(out, "\n{} streams: unknown ({why})", o.host);
            }
            None => {}
        }
        match &probe.tables {
            Some(Ok(tables)) if tables.is_empty() => {
                let _ = writeln!(
                    out,
                    "\n{} tables of marketprism_hot: none (run `mp-remote deploy`)",
                    o.host
                );
            }
            Some(Ok(tables)) => {
                let _ = writeln!(
                    out,
                    "\n{} rows in marketprism_hot: {}",
                    o.host,
                    join(tables.iter().map(|(t, rows)| format!("{t} {rows}")))
                );
            }
            Some(Err(why)) => {
                let _ = writeln!(out, "\n{} tables: unknown ({why})", o.host);
            }
            None => {}
        }
    }
    for o in outcomes {
        if let Some(error) = &o.error {
            let _ = writeln!(out, "\n{}: {error}", o.status);
        }
    }
    out
}

fn join(items: impl Iterator<Item = String>) -> String {
    let all: Vec<String> = items.collect();
    if all.is_empty() {
        "-".into()
    } else {
        all.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::day2::Service;
    use std::time::Duration;

    fn outcome(host: &str, probe: HostProbe) -> HostOutcome<HostProbe> {
        HostOutcome {
            host: host.into(),
            status: HostStatus::Ok,
            error: None,
            value: Some(probe),
            duration: Duration::ZERO,
        }
    }

    fn state(running: bool, healthy: bool, version: &str, ports: &[u16]) -> ServiceState {
        ServiceState {
            running,
            healthy,
            version: Some(version.into()),
            ports: ports.to_vec(),
            ..Default::default()
        }
    }

    /// A ClickHouse + storage host and a NATS + collector host.
    fn fleet() -> Vec<HostOutcome<HostProbe>> {
        let db = HostProbe {
            users: BTreeMap::new(),
            services: BTreeMap::from([
                (
                    Service::CLICKHOUSE,
                    state(true, true, "18.16.1", &[8123, 9000]),
                ),
                (Service::STORAGE, state(true, true, "0.1.0", &[8085, 9094])),
            ]),
            streams: None,
            tables: Some(Ok(BTreeMap::from([
                ("orderbooks".to_string(), 0),
                ("trades".to_string(), 1234),
            ]))),
            release: Some("0123456789abcdef".into()),
        };
        let edge = HostProbe {
            users: BTreeMap::new(),
            services: BTreeMap::from([
                (Service::NATS, state(true, true, "2.9.10", &[4222, 8222])),
                (
                    Service::COLLECTOR,
                    state(true, false, "0.1.0", &[8087, 9093]),
                ),
            ]),
            streams: Some(Ok(BTreeMap::from([(
                "MARKET_DATA".to_string(),
                StreamState { messages: 7 },
            )]))),
            tables: None,
            release: None,
        };
        vec![outcome("db", db), outcome("edge", edge)]
    }

    #[test]
    fn json_has_the_pipeline_services_and_the_rows_per_table() {
        let json = serde_json::to_value(report(&fleet())).unwrap();
        let db = &json["hosts"][0];
        assert_eq!(
            db["services"]["storage"],
            serde_json::json!({"running": true, "healthy": true, "version": "0.1.0", "ports": [8085, 9094]})
        );
        assert_eq!(
            db["tables"],
            serde_json::json!({"orderbooks": 0, "trades": 1234})
        );
        assert_eq!(db["streams"], serde_json::Value::Null);
        let edge = &json["hosts"][1];
        assert_eq!(
            edge["services"]["collector"],
            serde_json::json!({"running": true, "healthy": false, "version": "0.1.0", "ports": [8087, 9093]})
        );
        assert_eq!(edge["tables"], serde_json::Value::Null);
        assert_eq!(edge["streams"]["MARKET_DATA"]["messages"], 7);
        let mut keys: Vec<&String> = edge.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["error", "name", "release", "services", "status", "streams", "tables"]
        );
        assert_eq!(json["hosts"][0]["release"], "0123456789abcdef");
        assert_eq!(edge["release"], serde_json::Value::Null);
    }

    #[test]
    fn table_shows_the_pipeline_services_and_the_rows() {
        let text = text(&fleet());
        assert!(
            text.contains(
                "db               ok          storage     yes      yes      0.1.0      8085, 9094 (release 0123456789abcdef)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "edge             ok          collector   yes      NO       0.1.0      8087, 9093\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("db rows in marketprism_hot: orderbooks 0, trades 1234\n"),
            "{text}"
        );
        assert!(
            text.contains("edge streams: MARKET_DATA 7 msgs\n"),
            "{text}"
        );
    }
}
