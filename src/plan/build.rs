//! Building each host's plan from its roles, its facts and the layout of the whole fleet.
//! Pure: the same inputs give the same plan, byte for byte, which is what makes a second
//! deploy a no-op.

use crate::facts::Facts;
use crate::inventory::Host;
use crate::stack::{self, component};

use super::components::Components;
use super::install;
use super::model::{Action, HostPlan, Layer, LayerName, Step, PLAN_FORMAT};
use super::vendor::{port_steps, VendorContext};

/// Where MarketPrism goes on a host unless the inventory's `deploy_dir` var says otherwise.
pub const DEFAULT_DEPLOY_DIR: &str = "/opt/marketprism";
pub use crate::stack::clickhouse::DATA_DIR as CLICKHOUSE_DATA_DIR;
pub use crate::stack::clickhouse::{
    PIPELINE_USER as CLICKHOUSE_USER, SECRET_FILE as CLICKHOUSE_SECRET_PATH,
};
use crate::stack::nats::COMPONENT as NATS;
pub use crate::stack::nats::DROP_IN as NATS_DROP_IN;
/// Where the agent keeps its state on every host.
pub const STATE_DIR: &str = "/var/lib/mp-remote";
pub use crate::stack::pipeline::CONFIG_DIR;

/// What every host's plan needs to know about the rest of the fleet.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// (name, private address) of every NATS node, in inventory order.
    pub nats_nodes: Vec<(String, String)>,
    pub clickhouse_password: String,
    /// Every NATS client and route logs in with a password derived from this.
    pub nats: stack::nats::NatsCredentials,
    /// `[components.nats] tls`: the files pushed to the hosts; None: plain connections.
    pub nats_tls: Option<stack::nats::NatsTlsFiles>,
    pub stream_limits: stack::StreamLimits,
    pub replicas: usize,
    /// (name, private address) of every ClickHouse host, in inventory order.
    pub clickhouse_nodes: Vec<(String, String)>,
    /// The private addresses of the storage hosts: the only ones, besides loopback, ClickHouse
    /// lets the pipeline's user in from.
    pub storage_addresses: Vec<String>,
    /// How many collectors the fleet runs: without one, no data flow is expected.
    pub collectors: usize,
    /// The tables layer 5 expects rows in: what the fleet's collectors fill at a steady rate.
    pub flow_tables: Vec<String>,
    /// The agent binary's sha256: the pipeline's release is this very binary.
    /// Per host, the sha256 of the agent it got (its arch's build): its pipeline release.
    pub agent_sha256: std::collections::BTreeMap<String, String>,
    /// The inventory has one host: every NATS client is on it, so NATS binds loopback only.
    pub one_host: bool,
}

#[cfg(test)]
impl Fleet {
    /// One host running everything, as `inventory/local.toml` lays it out.
    pub fn single_host_for_tests() -> Self {
        Fleet {
            nats_nodes: vec![("local".into(), "127.0.0.1".into())],
            clickhouse_password: "secret".into(),
            nats: stack::nats::NatsCredentials::new("nats-secret"),
            nats_tls: None,
            stream_limits: stack::StreamLimits::default(),
            replicas: 1,
            clickhouse_nodes: vec![("local".into(), "127.0.0.1".into())],
            storage_addresses: vec!["127.0.0.1".into()],
            collectors: 1,
            flow_tables: super::pipeline::TABLES
                .iter()
                .map(|t| t.to_string())
                .collect(),
            agent_sha256: Default::default(),
            one_host: true,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// `[components.*]` cannot be installed on this host as written: what to change.
    #[error("{host}: [components.{component}] {message}")]
    Source {
        host: String,
        component: &'static str,
        message: String,
    },
    #[error("{host}: {pid1} is PID 1 (macOS): the servers run on Linux only; deploy them to a Linux host")]
    NoSystemd { host: String, pid1: String },
    #[error("{host}: cannot become root: user {user} is not root and `sudo -n` needs a password; set `become = true` with passwordless sudo, or connect as root")]
    NoRoot { host: String, user: String },
    #[error("{host}: {message}")]
    Stack { host: String, message: String },
}

/// Phase 1 on one host: install and start its servers, apply the schema where ClickHouse runs.
pub fn servers_plan(
    host: &Host,
    facts: &Facts,
    components: &Components,
    fleet: &Fleet,
    run_id: &str,
    check_only: bool,
) -> Result<HostPlan, PlanError> {
    preflight(host, facts)?;
    let mut install = Vec::new();
    let mut init = Vec::new();
    // The vendors' servers in start order, each from its own module.
    for c in component::ALL {
        let (Some(plan), Some(source)) = (c.vendor_plan(), components.source(c.name)) else {
            continue;
        };
        if !host.roles.iter().any(|r| r.as_str() == c.role) {
            init.extend((plan.elsewhere)(fleet));
            continue;
        }
        let ctx = VendorContext {
            host,
            facts,
            source,
            fleet,
        };
        let steps = (plan.steps)(&ctx)?;
        install.extend(port_steps(c, plan.process));
        install.extend(steps.install);
        init.extend(steps.init);
    }
    install.extend(super::pipeline::install_steps(host, facts, fleet));
    let install = install::one_package_transaction(install);
    Ok(HostPlan {
        format: PLAN_FORMAT,
        host: host.name.clone(),
        run_id: run_id.to_string(),
        state_dir: STATE_DIR.into(),
        check_only,
        diff: false,
        layers: vec![
            Layer {
                name: LayerName::Install,
                steps: install,
            },
            Layer {
                name: LayerName::Init,
                steps: init,
            },
        ],
    })
}

/// Cuts starting NATS (its service step and its health) out of `plan` into a second plan;
/// None when `plan` does not start NATS. A fresh NATS cluster elects its JetStream meta
/// leader within a second when its nodes start together. Started one by one, as each host's
/// install ends (over a second or more on a busy fleet), the first campaign finds no quorum,
/// and nats-server 2.9 waits 4 to 9 s for the next (measured on 10 test hosts: about 0.6 s
/// to a leader when started together; 1.6 s or 5.9 s when started 150 ms apart). So where
/// NATS nodes are not running yet, the run starts them together after the rest of the
/// servers plan. The config steps' restart requests carry over in the agent's state.
pub fn cut_nats_start(plan: &mut HostPlan) -> Option<HostPlan> {
    let ids = [
        stack::nats::plan::SERVICE_STEP.to_string(),
        NATS.health_step(),
    ];
    let mut cut = Vec::new();
    for layer in &mut plan.layers {
        let mut kept = Vec::new();
        for step in std::mem::take(&mut layer.steps) {
            if !ids.contains(&step.id) {
                kept.push(step);
                continue;
            }
            // The reload a new drop-in needs happens here, while other hosts still install.
            if let Action::Service { unit } = &step.action {
                kept.push(Step {
                    id: format!("{}-files", step.id),
                    title: format!("systemd has read {unit}'s files"),
                    action: Action::UnitLoaded { unit: unit.clone() },
                    notify: vec![],
                });
            }
            cut.push(step);
        }
        layer.steps = kept;
    }
    (!cut.is_empty()).then(|| {
        HostPlan::one_layer(
            &plan.host,
            &plan.run_id,
            &plan.state_dir,
            plan.check_only,
            LayerName::Init,
            cut,
        )
    })
}

/// Phase 2, on one NATS node once every node is up: the streams, then a check that they exist.
pub fn streams_plan(host: &Host, fleet: &Fleet, run_id: &str, check_only: bool) -> HostPlan {
    let streams = stack::nats::streams_with_replicas(fleet.replicas, &fleet.stream_limits);
    HostPlan::one_layer(
        &host.name,
        run_id,
        STATE_DIR,
        check_only,
        LayerName::Init,
        vec![
            Step {
                id: "init.nats.cluster-health".into(),
                title: "NATS cluster healthy (JetStream meta leader)".into(),
                action: stack::nats::plan::nats_healthz(""),
                notify: vec![],
            },
            Step {
                id: "init.nats.streams".into(),
                title: "create or update JetStream streams".into(),
                action: Action::NatsStreams {
                    url: format!("nats://127.0.0.1:{}", NATS.port("client")),
                    streams,
                },
                notify: vec![],
            },
        ],
    )
}

fn preflight(host: &Host, facts: &Facts) -> Result<(), PlanError> {
    // Without systemd the agent supervises the servers itself (plan/service.rs).
    if facts.init == crate::facts::Init::Launchd {
        return Err(PlanError::NoSystemd {
            host: host.name.clone(),
            pid1: if facts.pid1.is_empty() {
                "unknown".into()
            } else {
                facts.pid1.clone()
            },
        });
    }
    if !(facts.is_root || (host.become_ && facts.passwordless_sudo)) {
        return Err(PlanError::NoRoot {
            host: host.name.clone(),
            user: facts.user.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "security_tests.rs"]
mod security_tests;
