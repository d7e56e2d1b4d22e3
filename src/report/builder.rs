//! Builds a [`RunRecord`] from the run's event stream as it comes. Pure: the caller passes the
//! clock, so tests replay a run exactly.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use super::record::*;
use super::{ExitCode, HostStatus};
use crate::agent::{AgentEvent, StepEnd};

/// What identifies a run, known before it starts.
#[derive(Debug, Clone, Default)]
pub struct RunMeta {
    pub id: String,
    pub command: String,
    pub check: bool,
    pub argv: Vec<String>,
    pub inventory: InventoryRef,
    pub pid: u32,
}

/// How a host ended, with what the run learnt about it.
#[derive(Debug, Clone)]
pub struct HostEnd {
    pub status: HostStatus,
    pub error: Option<String>,
    pub duration: Duration,
    pub facts: Option<FactsSummary>,
    pub versions: BTreeMap<String, String>,
    pub services: Vec<ServiceRecord>,
    pub data_counts: BTreeMap<String, u64>,
    pub batch: Option<usize>,
    pub note: Option<String>,
}

impl HostEnd {
    pub fn new(status: HostStatus, error: Option<String>, duration: Duration) -> Self {
        Self {
            status,
            error,
            duration,
            facts: None,
            versions: BTreeMap::new(),
            services: Vec::new(),
            data_counts: BTreeMap::new(),
            batch: None,
            note: None,
        }
    }
}

pub struct RecordBuilder {
    record: RunRecord,
    start: SystemTime,
    /// Host name -> its place in `record.hosts`: a scan per event was quadratic in hosts.
    index: HashMap<String, usize>,
}

impl RecordBuilder {
    pub fn new(meta: RunMeta, hosts: impl IntoIterator<Item = String>, now: SystemTime) -> Self {
        let record = RunRecord {
            format: RECORD_FORMAT,
            id: meta.id,
            command: meta.command,
            check: meta.check,
            argv: meta.argv,
            inventory: meta.inventory,
            started: rfc3339(now),
            result: RunResult::Running,
            mp_remote_version: env!("CARGO_PKG_VERSION").to_string(),
            pid: meta.pid,
            hosts: hosts
                .into_iter()
                .map(|name| HostRecord {
                    log: host_log_path(&name),
                    name,
                    ..HostRecord::default()
                })
                .collect(),
            ..RunRecord::default()
        };
        let index = record
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.name.clone(), i))
            .collect();
        Self {
            record,
            start: now,
            index,
        }
    }

    pub fn record(&self) -> &RunRecord {
        &self.record
    }

    /// Milliseconds since the run started.
    pub fn offset_ms(&self, now: SystemTime) -> u64 {
        now.duration_since(self.start)
            .unwrap_or_default()
            .as_millis() as u64
    }

    /// One event of a host's agent. Events of an earlier, cut run (`resumed`) belong to that
    /// run's record, not to this one's steps.
    pub fn agent_event(&mut self, host: &str, event: &AgentEvent, now: SystemTime) {
        match event {
            AgentEvent::StepStarted {
                layer, step, title, ..
            } => {
                let step = StepRecord {
                    layer: layer.to_string(),
                    step: step.clone(),
                    title: Some(title.clone()),
                    status: StepState::Running,
                    started: rfc3339(now),
                    offset_ms: self.offset_ms(now),
                    ..StepRecord::default()
                };
                self.host(host).steps.push(step);
            }
            AgentEvent::StepFinished(StepEnd {
                layer,
                step,
                status,
                duration_ms,
                message,
                changes,
                output_tail,
                hint,
                data,
                cpu_ms,
                ..
            }) => {
                let status = StepState::from_agent(status);
                let finished = StepRecord {
                    layer: layer.to_string(),
                    step: step.clone(),
                    status,
                    duration_ms: *duration_ms,
                    message: message.clone(),
                    changes: changes.clone(),
                    output_tail: output_tail.clone(),
                    error: status
                        .is_failure()
                        .then(|| format!("{host}: {layer} {step}: {message}")),
                    hint: hint.clone(),
                    data: data.clone(),
                    cpu_ms: *cpu_ms,
                    ..StepRecord::default()
                };
                self.finish_step(host, finished, now);
            }
            _ => {}
        }
    }

    /// A step that ran without the agent (facts, clean): recorded as finished `now`.
    pub fn finish_step(&mut self, host: &str, mut finished: StepRecord, now: SystemTime) {
        let end = self.offset_ms(now);
        let record = self.host(host);
        for (table, count) in &finished.data {
            record.data_counts.insert(table.clone(), *count);
        }
        let open = record.steps.iter_mut().rev().find(|s| {
            s.status == StepState::Running && s.layer == finished.layer && s.step == finished.step
        });
        match open {
            Some(open) => {
                finished.title = finished.title.or(open.title.take());
                finished.started = std::mem::take(&mut open.started);
                finished.offset_ms = open.offset_ms;
                *open = finished;
            }
            None => {
                finished.offset_ms = end.saturating_sub(finished.duration_ms);
                let start = now
                    .checked_sub(Duration::from_millis(finished.duration_ms))
                    .unwrap_or(now);
                finished.started = rfc3339(start);
                record.steps.push(finished);
            }
        }
    }

    pub fn host_finished(&mut self, host: &str, end: HostEnd) {
        let record = self.host(host);
        record.status = end.status.into();
        record.error = end.error;
        record.duration_ms = end.duration.as_millis() as u64;
        if end.facts.is_some() {
            record.facts = end.facts;
        }
        record.versions.extend(end.versions);
        if !end.services.is_empty() {
            record.services = end.services;
        }
        record.data_counts.extend(end.data_counts);
        record.batch = end.batch.or(record.batch);
        record.note = end.note.or(record.note.take());
    }

    /// A rolling run's batches, and why it stopped early, if it did.
    pub fn batches(&mut self, batches: Vec<BatchRecord>, stopped: Option<String>) {
        self.record.batches = batches;
        self.record.stopped = stopped;
    }

    /// Ends the run: steps and hosts still at work become `interrupted` (or `failed`, when
    /// the run ended without them for another reason).
    pub fn finish(
        &mut self,
        code: ExitCode,
        interrupted: bool,
        error: Option<String>,
        now: SystemTime,
    ) {
        let end = self.offset_ms(now);
        let (step_state, host_state, why) = if interrupted {
            (
                StepState::Interrupted,
                HostState::Interrupted,
                "interrupted (Ctrl-C)",
            )
        } else {
            (
                StepState::Failed,
                HostState::Failed,
                "ended without a result",
            )
        };
        for host in &mut self.record.hosts {
            let mut last = None;
            for step in host
                .steps
                .iter_mut()
                .filter(|s| s.status == StepState::Running)
            {
                step.status = step_state;
                step.duration_ms = end.saturating_sub(step.offset_ms);
                step.message = format!("{why} while running");
                step.error = Some(format!(
                    "{}: {} {}: {why} while running",
                    host.name, step.layer, step.step
                ));
                last = Some(format!("{} {}", step.layer, step.step));
            }
            if host.status == HostState::Running {
                host.status = host_state;
                host.duration_ms = end;
                host.error = Some(match last {
                    Some(step) => format!("{}: {why} during {step}", host.name),
                    None => format!("{}: {why} connecting or detecting", host.name),
                });
            }
        }
        let record = &mut self.record;
        record.interrupted = interrupted;
        record.result = if interrupted {
            RunResult::Interrupted
        } else {
            RunResult::from_exit(code)
        };
        record.exit_code = Some(code.code());
        record.error = error;
        record.ended = Some(rfc3339(now));
        record.duration_ms = end;
    }

    fn host(&mut self, name: &str) -> &mut HostRecord {
        let index = match self.index.get(name) {
            Some(&index) => index,
            None => {
                self.record.hosts.push(HostRecord {
                    name: name.to_string(),
                    log: host_log_path(name),
                    ..HostRecord::default()
                });
                let index = self.record.hosts.len() - 1;
                self.index.insert(name.to_string(), index);
                index
            }
        };
        &mut self.record.hosts[index]
    }
}

/// RFC 3339, UTC, milliseconds.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// `20250102-030405-<pid>`: sorts by time, unique per control node.
pub fn run_id(now: SystemTime, pid: u32) -> String {
    let stamp: String = humantime::format_rfc3339_seconds(now)
        .to_string()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    format!("{}-{}-{pid}", &stamp[..8], &stamp[8..])
}

/// `hosts/<name>.log`, with anything but `[A-Za-z0-9._-]` as `_`.
pub fn host_log_path(host: &str) -> String {
    let safe: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = if safe.starts_with('.') {
        format!("_{safe}")
    } else {
        safe
    };
    format!("hosts/{safe}.log")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::StepStatus;
    use crate::plan::LayerName;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms)
    }

    fn meta() -> RunMeta {
        RunMeta {
            id: run_id(at(0), 42),
            command: "deploy".into(),
            argv: vec!["mp-remote".into(), "deploy".into()],
            inventory: InventoryRef {
                path: "inv.toml".into(),
                sha256: "ab".into(),
            },
            pid: 42,
            ..RunMeta::default()
        }
    }

    fn finished(step: &str, status: StepStatus, ms: u64) -> AgentEvent {
        serde_json::from_value(serde_json::json!({
            "event": "step_finished", "layer": "install", "step": step,
            "status": status, "duration_ms": ms, "message": format!("{step} done"),
            "hint": if status == StepStatus::Failed { Some("do this") } else { None },
        }))
        .unwrap()
    }

    #[test]
    fn ids_sort_by_time() {
        assert_eq!(run_id(at(0), 42), "20231114-221320-42");
        assert_eq!(host_log_path("mp-1"), "hosts/mp-1.log");
        assert_eq!(host_log_path("../x y"), "hosts/_.._x_y.log");
    }

    #[test]
    fn steps_get_their_start_from_step_started() {
        let mut b = RecordBuilder::new(meta(), ["h1".to_string()], at(0));
        let started = AgentEvent::StepStarted {
            layer: LayerName::Install,
            step: "install.nats".into(),
            title: "NATS".into(),
        };
        b.agent_event("h1", &started, at(1000));
        b.agent_event(
            "h1",
            &finished("install.nats", StepStatus::Changed, 500),
            at(1600),
        );
        b.agent_event(
            "h1",
            &finished("install.ch", StepStatus::Failed, 200),
            at(2000),
        );
        b.agent_event("h1", &finished("init.x", StepStatus::Skipped, 0), at(2000));
        let mut end = HostEnd::new(
            HostStatus::Failed,
            Some("h1: boom".into()),
            Duration::from_secs(2),
        );
        end.versions.insert("nats-server".into(), "2.9.10".into());
        b.host_finished("h1", end);
        b.finish(ExitCode::HostFailed, false, None, at(2500));
        let r = b.record();
        assert_eq!(r.result, RunResult::Failed);
        assert_eq!(r.exit_code, Some(2));
        assert_eq!(r.started, "2023-11-14T22:13:20.000Z");
        assert_eq!(r.ended.as_deref(), Some("2023-11-14T22:13:22.500Z"));
        let h = &r.hosts[0];
        assert_eq!(h.status, HostState::Failed);
        let s = &h.steps;
        assert_eq!(s.len(), 3);
        assert_eq!(
            (s[0].status, s[0].offset_ms, s[0].duration_ms),
            (StepState::Changed, 1000, 500)
        );
        assert_eq!(s[0].title.as_deref(), Some("NATS"));
        assert_eq!(s[0].started, "2023-11-14T22:13:21.000Z");
        assert_eq!((s[1].status, s[1].offset_ms), (StepState::Failed, 1800));
        assert_eq!(
            s[1].error.as_deref(),
            Some("h1: install install.ch: install.ch done")
        );
        assert_eq!(s[1].hint.as_deref(), Some("do this"));
        assert_eq!(s[2].status, StepState::Skipped);
        assert_eq!(h.versions["nats-server"], "2.9.10");
    }

    #[test]
    fn an_interrupted_run_marks_what_was_running() {
        let mut b = RecordBuilder::new(meta(), ["h1".to_string(), "h2".to_string()], at(0));
        b.agent_event(
            "h1",
            &AgentEvent::StepStarted {
                layer: LayerName::Install,
                step: "install.nats".into(),
                title: "NATS".into(),
            },
            at(100),
        );
        b.host_finished(
            "h2",
            HostEnd::new(HostStatus::Ok, None, Duration::from_millis(50)),
        );
        b.finish(ExitCode::Interrupted, true, None, at(1100));
        let r = b.record();
        assert!(r.interrupted);
        assert_eq!(r.result, RunResult::Interrupted);
        let h1 = &r.hosts[0];
        assert_eq!(h1.status, HostState::Interrupted);
        assert_eq!(
            h1.error.as_deref(),
            Some("h1: interrupted (Ctrl-C) during install install.nats")
        );
        assert_eq!(
            (h1.steps[0].status, h1.steps[0].duration_ms),
            (StepState::Interrupted, 1000)
        );
        assert_eq!(r.hosts[1].status, HostState::Ok);
    }
}
