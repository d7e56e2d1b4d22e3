//! What a run produced, per host, and how it maps to an exit code; the run record, the live
//! view's model and the renderers (text, JSON, JUnit, HTML). No I/O here but in `store`, which
//! writes and reads the runs directory.

pub mod builder;
pub mod exit;
pub mod live;
pub mod record;
pub mod redact;
pub mod render;
pub mod store;

pub use builder::{HostEnd, RecordBuilder, RunMeta};
pub use exit::ExitCode;
pub use record::RunRecord;
pub use redact::{Redactor, Secret};

use serde::{Deserialize, Serialize};

/// How one host ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostStatus {
    Ok,
    /// Reached, but something it had to do failed.
    Failed,
    /// Never reached or never let in: DNS, TCP, host key, authentication.
    Unreachable,
    /// Still busy when its deadline (`--timeout`) ran out.
    TimedOut,
    /// Not started: a rolling run stopped (a failure budget ran out) before its batch, so it
    /// stays on what it ran before.
    Skipped,
}

impl HostStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Unreachable => "unreachable",
            Self::TimedOut => "timed_out",
            Self::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for HostStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}
