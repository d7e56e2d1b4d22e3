//! The agent: the same binary, run on the host (`mp-remote agent run`). It executes one host's
//! plan step by step, checking before applying, streams events back as JSON lines and keeps
//! state for idempotency. It never uses `transport`: it talks back only through its events.

pub mod actions;
mod diff;
pub mod event;
pub mod follow;
pub mod hostops;
pub mod ledger;
pub mod local_addr;
pub mod lock;
pub mod outcome;
mod owner;
pub mod relay;
pub mod runner;
pub mod shell;
pub mod state;
pub mod supervise;
mod version_cache;

pub use event::{AgentEvent, StepEnd, StepStatus};
pub use outcome::{Outcome, StepError};
pub use runner::run_plan;
