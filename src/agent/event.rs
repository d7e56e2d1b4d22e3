//! The agent's event stream: one JSON object per line on stdout (and in its event log on the
//! host). The control node turns these into the live view and the report.

use serde::{Deserialize, Serialize};

use crate::plan::LayerName;

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Checked; already as wanted.
    Ok,
    /// Applied a change (in `--check` mode: would apply one).
    Changed,
    /// Not run (an earlier step failed, or it does not apply here).
    Skipped,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AgentEvent {
    RunStarted {
        host: String,
        run_id: String,
        agent_version: String,
        check_only: bool,
    },
    StepStarted {
        layer: LayerName,
        step: String,
        title: String,
    },
    StepFinished(StepEnd),
    RunFinished {
        ok: bool,
        changed: usize,
        failed: usize,
        duration_ms: u64,
    },
    /// An event of an earlier run still going on this host (its connection was cut), seen
    /// while this run waits for it.
    Resumed {
        run_id: String,
        of: Box<AgentEvent>,
    },
}

/// How one step ended: what the live view, the run record and the deploy's result are made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepEnd {
    pub layer: LayerName,
    pub step: String,
    pub status: StepStatus,
    pub duration_ms: u64,
    /// One line: what happened ("nats-server 2.9.10 already installed").
    pub message: String,
    /// What changed, one item per line, for the report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// The last lines of the step's output (on failure, of the service log too).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output_tail: String,
    /// For failures: what the user can do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The step's whole output (capped), for the host log of the run record.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
    /// Numbers for the report (the data-flow check: rows per table).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub data: std::collections::BTreeMap<String, u64>,
    /// `--diff`: the unified diff of the file the step wrote (or would write).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub diff: String,
    /// CPU the agent and the programs it waited for used on the host in this step (user +
    /// system); None for steps the control node did itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<u64>,
}

impl StepEnd {
    /// A step's end with `message` and nothing else to tell (no output, changes or data).
    pub fn new(layer: LayerName, step: &str, status: StepStatus, message: String) -> Self {
        StepEnd {
            layer,
            step: step.to_string(),
            status,
            duration_ms: 0,
            message,
            changes: vec![],
            output_tail: String::new(),
            hint: None,
            output: String::new(),
            data: Default::default(),
            diff: String::new(),
            cpu_ms: None,
        }
    }

    /// A step that did not run because one before it failed.
    pub fn skipped(layer: LayerName, step: &str) -> Self {
        Self::new(
            layer,
            step,
            StepStatus::Skipped,
            "skipped: an earlier step failed".into(),
        )
    }
}
