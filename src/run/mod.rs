//! The orchestrator on the control node: reach every selected host in parallel, run a task on
//! each, and collect one outcome per host. One host's failure never stops the others.

pub mod agent_call;
pub mod agent_exec;
pub mod agent_glibc;
pub mod agents;
pub mod audit;
pub mod clean;
pub mod connect;
pub mod day2;
pub mod deploy;
pub mod fanout;
pub mod guard;
pub mod lease;
pub mod nats_secret;
pub mod pack;
pub mod phases;
pub mod reattach;
pub mod relay;
pub mod rollout;
pub mod session;
pub mod status;
pub mod user_services;

pub use connect::connect;
pub use fanout::{for_each_host, for_each_host_seen, FanOut, HostOutcome};
