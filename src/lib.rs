//! mp-remote: deploys the MarketPrism pipeline onto Linux hosts over SSH.
//!
//! The modules follow the flow of a run: the `inventory` says which hosts and how to reach them,
//! the `transport` reaches them, `facts` is what layer 1 (detect) learns about each, `run` fans the
//! work out over all hosts and `report` turns per-host outcomes into what the user sees.

pub mod agent;
pub mod cli;
pub mod facts;
pub mod inventory;
pub mod pipeline;
pub mod plan;
pub mod report;
pub mod run;
pub mod stack;
pub mod transport;
