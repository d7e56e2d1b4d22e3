//! The run record (`run.json`): what one command did, per host and step. Its schema is an API
//! (README, "Run records and reports"): fields only grow; `format` changes when a field
//! changes meaning. Every field has a default, so an older or newer record still reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ExitCode, HostStatus};
use crate::facts::Facts;

/// The `format` of the records this build writes.
pub const RECORD_FORMAT: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunRecord {
    pub format: u32,
    /// `<UTC start, YYYYMMDD-HHMMSS>-<pid>`; also the run's directory name.
    pub id: String,
    /// `deploy`, `update`, `clean` or `facts`.
    pub command: String,
    /// `--check`: nothing was changed.
    pub check: bool,
    /// The command line, as typed.
    pub argv: Vec<String>,
    pub inventory: InventoryRef,
    /// RFC 3339, UTC, milliseconds.
    pub started: String,
    /// None while the run goes on (or when the control node was lost).
    pub ended: Option<String>,
    pub duration_ms: u64,
    pub result: RunResult,
    /// Ctrl-C (or SIGTERM, SIGHUP) ended the run.
    pub interrupted: bool,
    pub exit_code: Option<i32>,
    /// What stopped the whole run before any host (a bad `[thresholds]` table ...).
    pub error: Option<String>,
    pub mp_remote_version: String,
    /// The control node's process: a `running` record whose process is gone was lost.
    pub pid: u32,
    pub hosts: Vec<HostRecord>,
    /// A rolling run (`--serial`): its batches in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub batches: Vec<BatchRecord>,
    /// Why a rolling run stopped before its last batch (a failure budget ran out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// One batch of a rolling run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BatchRecord {
    /// From 1.
    pub index: usize,
    /// `nats`, `clickhouse`, `storage` or `collectors`: what rolls in it.
    pub group: String,
    pub hosts: Vec<String>,
    /// `ok`, `failed`, `rolled_back`, `skipped`.
    pub result: String,
    pub duration_ms: u64,
    /// What the gate said of the data flow; what was rolled back.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InventoryRef {
    pub path: String,
    /// SHA-256 of the inventory file's bytes.
    pub sha256: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunResult {
    #[default]
    Running,
    Ok,
    Failed,
    Unreachable,
    Interrupted,
    /// Nothing ran: usage or inventory error.
    Error,
}

impl RunResult {
    pub fn from_exit(code: ExitCode) -> Self {
        match code {
            ExitCode::Ok => Self::Ok,
            ExitCode::Usage => Self::Error,
            ExitCode::HostFailed => Self::Failed,
            ExitCode::HostUnreachable => Self::Unreachable,
            ExitCode::Interrupted => Self::Interrupted,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Unreachable => "unreachable",
            Self::Interrupted => "interrupted",
            Self::Error => "error",
        }
    }
}

impl std::fmt::Display for RunResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// How a host ended: [`HostStatus`], plus the states of a run that did not end normally.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    /// Still at work (or the control node was lost while it was).
    #[default]
    Running,
    Ok,
    Failed,
    Unreachable,
    TimedOut,
    /// Still at work when the run was interrupted.
    Interrupted,
    /// Left alone: a rolling run stopped before its batch.
    Skipped,
}

impl From<HostStatus> for HostState {
    fn from(status: HostStatus) -> Self {
        match status {
            HostStatus::Ok => Self::Ok,
            HostStatus::Failed => Self::Failed,
            HostStatus::Unreachable => Self::Unreachable,
            HostStatus::TimedOut => Self::TimedOut,
            HostStatus::Skipped => Self::Skipped,
        }
    }
}

impl HostState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Unreachable => "unreachable",
            Self::TimedOut => "timed_out",
            Self::Interrupted => "interrupted",
            Self::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostRecord {
    pub name: String,
    pub status: HostState,
    /// One line: what went wrong and what to do.
    pub error: Option<String>,
    pub duration_ms: u64,
    pub facts: Option<FactsSummary>,
    pub steps: Vec<StepRecord>,
    /// Component -> version installed (`nats-server` -> `2.9.10`).
    pub versions: BTreeMap<String, String>,
    pub services: Vec<ServiceRecord>,
    /// Data-flow counts: table (or stream) -> rows (messages) seen.
    pub data_counts: BTreeMap<String, u64>,
    /// The host's full log, relative to the run directory.
    pub log: String,
    /// The batch of a rolling run it was in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
    /// Said of the host besides its steps: an automatic rollback, why it was not started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl HostRecord {
    pub fn count(&self, status: StepState) -> usize {
        self.steps.iter().filter(|s| s.status == status).count()
    }

    /// Steps that failed, timed out or were interrupted (unreachable is counted apart).
    pub fn failed_steps(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.status.is_failure() && s.status != StepState::Unreachable)
            .count()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FactsSummary {
    pub hostname: String,
    /// `debian`
    pub os: String,
    /// `12`
    pub version: String,
    pub pretty_name: String,
    pub arch: String,
    pub cpus: u32,
    pub memory_bytes: u64,
    pub disk_free_bytes: u64,
    /// `systemd`, `other` ...
    pub init: String,
}

impl From<&Facts> for FactsSummary {
    fn from(facts: &Facts) -> Self {
        Self {
            hostname: facts.hostname.clone(),
            os: facts.os.id.clone(),
            version: facts.os.version_id.clone(),
            pretty_name: facts.os.pretty_name.clone(),
            arch: facts.arch.clone(),
            cpus: facts.cpus,
            memory_bytes: facts.memory_bytes,
            disk_free_bytes: facts.disk_free_bytes,
            init: serde_json::to_value(facts.init)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        }
    }
}

/// The versions a host's facts found installed (before the run changed anything).
pub fn installed_versions(facts: &Facts) -> BTreeMap<String, String> {
    let mut versions = BTreeMap::new();
    if let Some(v) = &facts.installed.nats_server {
        versions.insert("nats-server".to_string(), v.clone());
    }
    if let Some(v) = &facts.installed.clickhouse_server {
        versions.insert("clickhouse-server".to_string(), v.clone());
    }
    versions
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceRecord {
    pub name: String,
    /// Where it answers (`http://10.0.0.11:8222/healthz`, `nats://10.0.0.11:4222`).
    pub endpoint: Option<String>,
    /// None: not checked.
    pub healthy: Option<bool>,
    pub detail: Option<String>,
}

/// How a step ended (or did not).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Ok,
    Changed,
    Skipped,
    Failed,
    Unreachable,
    TimedOut,
    /// Started, not finished when the run was interrupted.
    Interrupted,
    /// Started, not finished yet (a record of a run still going, or lost).
    #[default]
    Running,
    /// A state a newer mp-remote wrote.
    #[serde(other)]
    Unknown,
}

impl StepState {
    /// The agent's step status, by name: a status this build does not know reads as `Unknown`
    /// instead of breaking the record.
    pub fn from_agent(status: &crate::agent::StepStatus) -> Self {
        serde_json::to_value(status)
            .and_then(serde_json::from_value)
            .unwrap_or(Self::Unknown)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Changed => "changed",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
            Self::Unreachable => "unreachable",
            Self::TimedOut => "timed_out",
            Self::Interrupted => "interrupted",
            Self::Running => "running",
            Self::Unknown => "unknown",
        }
    }

    /// Failed, or never got to end well.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Self::Failed | Self::Unreachable | Self::TimedOut | Self::Interrupted
        )
    }
}

impl std::fmt::Display for StepState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StepRecord {
    /// `detect`, `install`, `init`, `start`, `verify` (deploy); `clean`.
    pub layer: String,
    pub step: String,
    pub title: Option<String>,
    pub status: StepState,
    /// RFC 3339, UTC, milliseconds (as the control node saw it start).
    pub started: String,
    /// Milliseconds from the run's start to the step's.
    pub offset_ms: u64,
    pub duration_ms: u64,
    /// One line: what happened.
    pub message: String,
    pub changes: Vec<String>,
    /// The last lines of the step's output.
    pub output_tail: String,
    /// For failures: what went wrong, on one line, naming host and step.
    pub error: Option<String>,
    /// For failures: what the user can do.
    pub hint: Option<String>,
    /// Numbers the step measured (rows per table ...).
    pub data: BTreeMap<String, u64>,
    /// Host CPU the step used (the agent and what it waited for); None when not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<u64>,
}
