//! Rolling runs: `--serial` batches in an order that keeps the pipeline up, a health gate after
//! each batch, failure budgets, and the automatic rollback of a batch that failed its gate.

pub mod budget;
pub mod order;
pub mod spec;

pub use order::{Batch, Group};
pub use spec::{Budget, Serial};

mod engine;

pub(in crate::run) use engine::roll;

use std::time::Duration;

/// `--serial` and the failure budgets of a rolling run.
#[derive(Debug, Clone)]
pub struct Rolling {
    pub serial: Serial,
    pub max_failed: Budget,
    pub max_unreachable: Budget,
}

/// How a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchResult {
    Ok,
    Failed,
    /// Failed its gate, and its hosts whose release changed are back on the one before.
    RolledBack,
    /// Not started: the rollout stopped before it.
    Skipped,
}

impl BatchResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
            Self::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BatchOutcome {
    pub index: usize,
    pub group: Group,
    pub hosts: Vec<String>,
    pub result: BatchResult,
    pub duration: Duration,
    /// What the gate said of the data flow, and what was rolled back.
    pub detail: Option<String>,
}

impl BatchOutcome {
    fn of(batch: &Batch, result: BatchResult, duration: Duration, detail: Option<String>) -> Self {
        Self {
            index: batch.index,
            group: batch.group,
            hosts: batch.hosts.clone(),
            result,
            duration,
            detail,
        }
    }
}

/// What a rolling run tells as it goes (the CLI shows it and records it).
pub enum RolloutNote<'a> {
    /// Before the first batch: all of them, and where the layout cannot roll without a pause.
    Plan {
        batches: &'a [Batch],
        gaps: Option<String>,
    },
    BatchStarted(&'a Batch),
    BatchEnded(&'a BatchOutcome),
    /// A budget ran out: the later batches are left alone.
    Stopped(&'a str),
}

pub type Notes = dyn Fn(RolloutNote) + Send + Sync;
