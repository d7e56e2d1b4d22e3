//! What the plan asks of a vendor's server (NATS, ClickHouse): its install and init steps on a
//! host that runs it, and what a host without it still needs from it. Each server answers in
//! its own module beside its declaration (`stack::nats::plan`, `stack::clickhouse::plan`),
//! hooked into its [`Origin::Vendor`](crate::stack::component::Origin); [`super::servers_plan`]
//! walks the host's components in start order and names none of them.

use crate::facts::Facts;
use crate::inventory::Host;
use crate::stack::component::Component;

use super::build::{Fleet, PlanError};
use super::components::{Checksums, Source};
use super::model::{Action, Step};

/// One vendor server's part in the servers plan.
pub struct VendorPlan {
    /// What `ss` shows as the server's process (the first 15 characters of its name): the
    /// port checks before installing let it hold its own ports.
    pub process: &'static str,
    /// What `[components.NAME]` takes beside the source (NATS: `tls`).
    pub settings: &'static [Setting],
    /// What `inventory check` asks of a source for the hosts that will install it (the sums
    /// its release's files need, how many artifacts it takes), before any host is reached.
    pub check_source: fn(&SourceCheck) -> Result<(), SourceProblem>,
    /// Its install and init steps on a host with its role.
    pub steps: fn(&VendorContext) -> Result<VendorSteps, PlanError>,
    /// Init steps on a host without its role (NATS: the TLS CA its clients there trust).
    pub elsewhere: fn(&Fleet) -> Vec<Step>,
}

/// A key of `[components.NAME]` beside the source, read by the server's own module.
pub struct Setting {
    pub key: &'static str,
    /// Checks the value as written; the error says what to write instead (the caller puts
    /// `[components.NAME]: KEY: ` before it).
    pub check: fn(&toml::Value) -> Result<(), String>,
}

/// A `[components.NAME]` source as written, checked for the hosts that will install it.
pub struct SourceCheck<'a> {
    /// `os`, `release` or `push`.
    pub kind: &'a str,
    pub version: Option<&'a str>,
    pub sums: Option<&'a Checksums>,
    pub artifacts: &'a [String],
}

/// What is wrong with a source, at which of its keys, and what to write instead.
#[derive(Debug, PartialEq, Eq)]
pub struct SourceProblem {
    pub at: SourceKey,
    pub message: String,
    pub hint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKey {
    Version,
    Sha256,
    Artifact,
}

impl SourceProblem {
    /// The sums do not cover what the source installs.
    pub fn sums(message: String) -> Self {
        SourceProblem {
            at: SourceKey::Sha256,
            message,
            hint: String::new(),
        }
    }
}

/// The declaration is data compared by identity: one plan per server.
impl PartialEq for VendorPlan {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for VendorPlan {}

impl std::fmt::Debug for VendorPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VendorPlan")
            .field("process", &self.process)
            .finish_non_exhaustive()
    }
}

/// What a server's steps are built from.
pub struct VendorContext<'a> {
    pub host: &'a Host,
    pub facts: &'a Facts,
    /// Where the server comes from (`[components.NAME]`, or its pinned release).
    pub source: &'a Source,
    pub fleet: &'a Fleet,
}

impl VendorContext<'_> {
    /// A renderer's error (a config the stack refused).
    pub fn stack_error(&self, e: impl std::fmt::Display) -> PlanError {
        PlanError::Stack {
            host: self.host.name.clone(),
            message: e.to_string(),
        }
    }
}

/// A server's steps in the two layers of the servers plan.
#[derive(Debug, Default)]
pub struct VendorSteps {
    pub install: Vec<Step>,
    pub init: Vec<Step>,
}

/// The component's ports checked before installing: free, or held by `process` of its unit.
pub fn port_steps(component: &Component, process: &str) -> Vec<Step> {
    component
        .ports
        .iter()
        .filter(|p| p.checked_before_install)
        .map(|p| Step {
            id: format!("install.{}.port-{}", component.name, p.number),
            title: format!("port {} ({}) free or ours", p.number, p.purpose),
            action: Action::PortFree {
                port: p.number,
                service: p.purpose.to_string(),
                allowed_processes: vec![process.to_string()],
                our_unit: Some(component.unit.to_string()),
            },
            notify: vec![],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Components;
    use crate::stack::component::ALL;

    /// `update` and the agent's state find a server's steps by their ids: every step a
    /// server's plan returns is `install.NAME.*` or `init.NAME.*`.
    #[test]
    fn every_vendor_server_names_its_steps_after_itself() {
        let facts = crate::facts::parse(include_str!("../../tests/fixtures/facts/debian12_vm.txt"))
            .unwrap();
        let inventory = crate::inventory::parse(
            "[[hosts]]\nname = \"a\"\naddress = \"10.0.0.1\"\nbecome = true\nroles = [\"nats\", \"clickhouse\"]\n\n[components.nats]\nsource = \"os\"\n\n[components.clickhouse]\nsource = \"os\"\n",
            std::path::Path::new("test.toml"),
            None,
        )
        .unwrap();
        let components = Components::from_table(&inventory.components).unwrap();
        let fleet = Fleet::single_host_for_tests();
        let mut seen = 0;
        for c in ALL {
            let Some(plan) = c.vendor_plan() else {
                assert!(components.source(c.name).is_none(), "{}", c.name);
                continue;
            };
            assert!(c.pinned().is_some(), "{}", c.name);
            let ctx = VendorContext {
                host: &inventory.hosts[0],
                facts: &facts,
                source: components.source(c.name).expect("a source"),
                fleet: &fleet,
            };
            let steps = (plan.steps)(&ctx).unwrap();
            assert!(!steps.install.is_empty() && !steps.init.is_empty());
            for s in &steps.install {
                assert!(
                    s.id.starts_with(&format!("install.{}.", c.name)),
                    "{}",
                    s.id
                );
            }
            for s in &steps.init {
                assert!(s.id.starts_with(&format!("init.{}.", c.name)), "{}", s.id);
            }
            assert!(steps.init.iter().any(|s| s.id == c.health_step()));
            seen += 1;
        }
        assert_eq!(seen, 2);
    }
}
