//! `mp-remote facts`: layer 1 (detect) on every host, as a table or one JSON document; the
//! run is recorded like a deploy.

use serde::Serialize;

use super::progress::{Recorder, Settings};
use crate::facts::{self, Facts};
use crate::inventory::Host;
use crate::report::record::{installed_versions, FactsSummary, StepRecord, StepState};
use crate::report::render::gib;
use crate::report::{ExitCode, HostEnd, HostStatus, Redactor};
use crate::run::{for_each_host_seen, FanOut, HostOutcome};
use crate::transport::shell::quote;

use crate::plan::build::DEFAULT_DEPLOY_DIR;

/// The `facts --json` document. Field names are an API: see README "facts --json".
#[derive(Debug, Serialize)]
pub struct FactsReport {
    pub hosts: Vec<HostFacts>,
}

#[derive(Debug, Serialize)]
pub struct HostFacts {
    pub name: String,
    pub status: HostStatus,
    pub error: Option<String>,
    pub duration_ms: u64,
    pub facts: Option<Facts>,
}

pub async fn run(hosts: &[&Host], fanout: &FanOut, json: bool, settings: &Settings) -> ExitCode {
    let settings = if json {
        settings.clone().without_display()
    } else {
        settings.clone()
    };
    let names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
    let recorder = Recorder::start(&settings, "facts", false, &names, Redactor::default());
    // Each host is recorded as it ends, so the live view counts it and an interrupted run
    // keeps it.
    let seen = |o: &HostOutcome<Facts>| record_host(&recorder, o);
    let work = for_each_host_seen(
        hosts,
        fanout,
        |transport, host| async move {
            let deploy_dir = host
                .vars
                .get("deploy_dir")
                .and_then(|v| v.as_str())
                .unwrap_or(DEFAULT_DEPLOY_DIR);
            let command = format!("sh -s -- {}", quote(deploy_dir));
            let output = transport
                .exec(&command, facts::PROBE_SCRIPT.as_bytes())
                .await?;
            anyhow::ensure!(
                output.success(),
                "the facts probe exited with {:?}: {}",
                output.status,
                output.stderr_text().trim()
            );
            Ok(facts::parse(&output.stdout_text())?)
        },
        seen,
    );
    let outcomes = match recorder.interruptible(work).await {
        Ok(outcomes) => outcomes,
        Err(_signal) if json => {
            return recorder.end_interrupted_json(|h| {
                serde_json::json!({"name": h.name, "status": h.status, "error": h.error,
                    "duration_ms": h.duration_ms, "facts": null})
            })
        }
        Err(_signal) => return recorder.end_interrupted(),
    };
    let report = FactsReport {
        hosts: outcomes
            .into_iter()
            .map(|o| HostFacts {
                name: o.host,
                status: o.status,
                error: o.error,
                duration_ms: o.duration.as_millis() as u64,
                facts: o.value,
            })
            .collect(),
    };
    let code = ExitCode::from_statuses(report.hosts.iter().map(|h| h.status));
    // Clearing the live view erases the lines above it: it goes before anything is printed.
    recorder.finish(code, false, None);
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(error) => eprintln!("error: cannot encode the facts as JSON: {error}"),
        }
    } else {
        print_table(&report);
        if let Some(line) = not_ok(&report) {
            println!("\n{line}");
        }
    }
    code
}

/// `3 of 6 hosts not ok: 3 unreachable (exit 3)`: why the exit code is not 0.
fn not_ok(report: &FactsReport) -> Option<String> {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for host in report.hosts.iter().filter(|h| h.status != HostStatus::Ok) {
        *counts.entry(host.status.as_str()).or_default() += 1;
    }
    let bad: usize = counts.values().sum();
    if bad == 0 {
        return None;
    }
    let by_status: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let code = ExitCode::from_statuses(report.hosts.iter().map(|h| h.status));
    Some(format!(
        "{bad} of {} hosts not ok: {} (exit {})",
        report.hosts.len(),
        by_status.join(", "),
        code.code()
    ))
}

/// One `detect facts` step per host, and its facts summary and installed versions.
fn record_host(recorder: &Recorder, o: &HostOutcome<Facts>) {
    let status = match (&o.value, o.status) {
        (Some(_), _) => StepState::Ok,
        (None, HostStatus::Unreachable) => StepState::Unreachable,
        (None, HostStatus::TimedOut) => StepState::TimedOut,
        (None, _) => StepState::Failed,
    };
    let message = match &o.value {
        Some(f) => format!(
            "{} {}, {}, {} CPUs, {} memory, {} disk free",
            f.os.id,
            f.os.version_id,
            f.arch,
            f.cpus,
            gib(f.memory_bytes),
            gib(f.disk_free_bytes)
        ),
        None => o.error.clone().unwrap_or_default(),
    };
    recorder.step(
        &o.host,
        StepRecord {
            layer: "detect".into(),
            step: "detect.facts".into(),
            status,
            duration_ms: o.duration.as_millis() as u64,
            error: o.error.clone(),
            message,
            ..StepRecord::default()
        },
    );
    let mut end = HostEnd::new(o.status, o.error.clone(), o.duration);
    if let Some(facts) = &o.value {
        end.facts = Some(FactsSummary::from(facts));
        end.versions = installed_versions(facts);
    }
    recorder.host_done(&o.host, end);
}

fn print_table(report: &FactsReport) {
    println!(
        "{:<16} {:<11} {:<18} {:<8} {:>4} {:>8} {:>9} {:<8} {:<12} {:<12} listening",
        "HOST", "STATUS", "OS", "ARCH", "CPUS", "MEM GiB", "DISK GiB", "INIT", "NATS", "CLICKHOUSE"
    );
    const GIB: f64 = (1u64 << 30) as f64;
    for host in &report.hosts {
        match (&host.facts, &host.error) {
            (Some(f), _) => println!(
                "{:<16} {:<11} {:<18} {:<8} {:>4} {:>8.1} {:>9.1} {:<8} {:<12} {:<12} {}",
                host.name,
                host.status,
                format!("{} {}", f.os.id, f.os.version_id),
                f.arch,
                f.cpus,
                f.memory_bytes as f64 / GIB,
                f.disk_free_bytes as f64 / GIB,
                format!("{:?}", f.init).to_lowercase(),
                f.installed.nats_server.as_deref().unwrap_or("-"),
                f.installed.clickhouse_server.as_deref().unwrap_or("-"),
                f.listening_ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            (None, error) => println!(
                "{:<16} {:<11} {}",
                host.name,
                host.status,
                error.as_deref().unwrap_or("no facts")
            ),
        }
    }
}
