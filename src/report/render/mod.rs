//! Renderers of a [`RunRecord`](super::RunRecord): pure functions, record in, string out.

pub mod html;
pub mod junit;
pub mod text;

use super::record::{HostRecord, RunRecord};

/// `12.3s`
pub fn secs(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

/// `3.8 GiB`
pub fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// `debian 12, x86_64, 2 CPUs, 3.8 GiB memory, 20.0 GiB disk free, init systemd`
pub fn facts_line(host: &HostRecord) -> Option<String> {
    let f = host.facts.as_ref()?;
    Some(format!(
        "{} {}, {}, {} CPUs, {} memory, {} disk free, init {}",
        f.os,
        f.version,
        f.arch,
        f.cpus,
        gib(f.memory_bytes),
        gib(f.disk_free_bytes),
        f.init
    ))
}

/// `clickhouse-server 18.16.1, nats-server 2.9.10`
pub fn versions_line(host: &HostRecord) -> String {
    host.versions
        .iter()
        .map(|(name, version)| format!("{name} {version}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `nats nats://10.0.0.1:4222 healthy; clickhouse http://10.0.0.1:8123 not healthy`
pub fn services_line(host: &HostRecord) -> String {
    host.services
        .iter()
        .map(|s| {
            let mut line = s.name.clone();
            if let Some(endpoint) = &s.endpoint {
                line.push(' ');
                line.push_str(endpoint);
            }
            line.push_str(match s.healthy {
                Some(true) => " healthy",
                Some(false) => " NOT healthy",
                None => "",
            });
            if let Some(detail) = &s.detail {
                line.push_str(&format!(" ({detail})"));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `trades 120, ticker 4`
pub fn data_line(host: &HostRecord) -> String {
    host.data_counts
        .iter()
        .map(|(table, count)| format!("{table} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `deploy --check`
pub fn command_line(record: &RunRecord) -> String {
    if record.check {
        format!("{} --check", record.command)
    } else {
        record.command.clone()
    }
}

/// A record to test the renderers with: two hosts, one failed with a hint, one unreachable.
#[cfg(test)]
pub fn sample() -> RunRecord {
    use super::record::*;
    let step =
        |layer: &str, step: &str, status: StepState, offset_ms: u64, duration_ms: u64| StepRecord {
            layer: layer.into(),
            step: step.into(),
            status,
            started: String::new(),
            offset_ms,
            duration_ms,
            message: format!("{step} {status}"),
            ..StepRecord::default()
        };
    let mut failed = step(
        "install",
        "install.clickhouse",
        StepState::Failed,
        1500,
        2500,
    );
    failed.error = Some("h1: install install.clickhouse: apt-get failed".into());
    failed.hint = Some("free disk space & retry".into());
    failed.output_tail = "E: <disk> full".into();
    failed.message = "apt-get failed".into();
    let mut changed = step("install", "install.nats", StepState::Changed, 200, 1300);
    changed.changes = vec!["install nats-server".into()];
    RunRecord {
        format: RECORD_FORMAT,
        id: "20240102-030405-7".into(),
        command: "deploy".into(),
        inventory: InventoryRef {
            path: "/srv/inv.toml".into(),
            sha256: "abc123".into(),
        },
        started: "2024-01-02T03:04:05.000Z".into(),
        ended: Some("2024-01-02T03:04:10.000Z".into()),
        duration_ms: 5000,
        result: RunResult::Failed,
        exit_code: Some(2),
        mp_remote_version: "0.1.0".into(),
        hosts: vec![
            HostRecord {
                name: "h1".into(),
                status: HostState::Failed,
                error: Some(
                    "h1: install install.clickhouse: apt-get failed; free disk space & retry"
                        .into(),
                ),
                duration_ms: 4000,
                facts: Some(FactsSummary {
                    hostname: "h1".into(),
                    os: "debian".into(),
                    version: "12".into(),
                    pretty_name: "Debian GNU/Linux 12 (bookworm)".into(),
                    arch: "x86_64".into(),
                    cpus: 2,
                    memory_bytes: 4 << 30,
                    disk_free_bytes: 20 << 30,
                    init: "systemd".into(),
                }),
                steps: vec![
                    step("detect", "detect.ports", StepState::Ok, 0, 200),
                    changed,
                    failed,
                    step("init", "init.schema", StepState::Skipped, 4000, 0),
                ],
                versions: [("nats-server".to_string(), "2.9.10".to_string())].into(),
                services: vec![ServiceRecord {
                    name: "nats".into(),
                    endpoint: Some("nats://10.0.0.1:4222".into()),
                    healthy: Some(true),
                    detail: None,
                }],
                data_counts: [("trades".to_string(), 12)].into(),
                batch: None,
                note: None,
                log: "hosts/h1.log".into(),
            },
            HostRecord {
                name: "h2".into(),
                status: HostState::Unreachable,
                error: Some("h2: cannot connect to 10.0.0.2:22: connection refused".into()),
                duration_ms: 10,
                log: "hosts/h2.log".into(),
                ..HostRecord::default()
            },
        ],
        ..RunRecord::default()
    }
}
