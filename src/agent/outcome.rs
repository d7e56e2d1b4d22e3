//! What an action returns to the runner.

use super::event::StepStatus;

/// A step that did its work: either nothing was needed (`Ok`) or something changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: StepStatus,
    pub message: String,
    pub changes: Vec<String>,
    pub output_tail: String,
    /// Numbers the report keeps (rows per table after the data-flow check).
    pub data: std::collections::BTreeMap<String, u64>,
}

impl Outcome {
    /// Already as wanted; `message` says why nothing was done.
    pub fn unchanged(message: impl Into<String>) -> Self {
        Self {
            status: StepStatus::Ok,
            message: message.into(),
            changes: Vec::new(),
            output_tail: String::new(),
            data: Default::default(),
        }
    }

    /// Changed (or, in check mode, would change) these things.
    pub fn changed(message: impl Into<String>, changes: Vec<String>) -> Self {
        Self {
            status: StepStatus::Changed,
            message: message.into(),
            changes,
            output_tail: String::new(),
            data: Default::default(),
        }
    }

    pub fn with_output(mut self, output: &str) -> Self {
        self.output_tail = tail(output, 20);
        self
    }

    pub fn with_data(mut self, data: std::collections::BTreeMap<String, u64>) -> Self {
        self.data = data;
        self
    }
}

/// A failed step: what happened, what to do, and the last output lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    pub message: String,
    pub hint: Option<String>,
    pub output_tail: String,
}

impl StepError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
            output_tail: String::new(),
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_output(mut self, output: &str) -> Self {
        self.output_tail = tail(output, 20);
        self
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
