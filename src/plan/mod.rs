//! From inventory, facts and stack to each host's plan (layers of steps). No I/O.

pub mod build;
pub mod components;
pub mod install;
pub mod model;
pub mod pipeline;
pub mod probe;
pub mod rollout;
pub mod service;
pub mod services;
pub mod update;
pub mod vendor;

pub use build::{cut_nats_start, servers_plan, streams_plan, Fleet, PlanError};
pub use components::{Artifacts, Checksums, Components, Source};
pub use model::{
    Action, FlowCheck, GateProbe, HostPlan, JsonExpectation, Layer, LayerName, Step, PLAN_FORMAT,
};
pub use pipeline::flow_tables;
