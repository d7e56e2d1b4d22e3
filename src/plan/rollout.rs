//! The plans a rolling run adds: the health gate after each batch, and the rollback of a host
//! whose batch failed it (or of `mp-remote rollback`).

use crate::facts::Facts;
use crate::inventory::{Host, Role};
use crate::stack::component::{self, Probe};
use crate::stack::nats::COMPONENT as NATS;
use crate::stack::pipeline::PipelineService;

use super::build::{Fleet, PlanError};
use super::model::{Action, GateProbe, HostPlan, JsonExpectation, LayerName, Step};
use super::pipeline::{service_step_id, services_of, services_plan};

/// Healthy answers in a row that pass the gate, and how far apart they are.
pub const GATE_PROBES: u32 = 3;
const GATE_INTERVAL_MS: u64 = 1000;
const GATE_DEADLINE_SECS: u64 = 90;
/// How long a restarted NATS node's stream replicas get to catch up.
const STREAMS_CURRENT_SECS: u64 = 120;

fn json(field: &str, equals: &str) -> Option<JsonExpectation> {
    Some(JsonExpectation {
        field: field.into(),
        equals: equals.into(),
    })
}

/// Every service of the host's roles, as the gate probes it. A NATS node new in this run
/// only needs JetStream on: its cluster forms when the later nodes come up.
fn probes(host: &Host, fresh_nats: bool) -> Vec<GateProbe> {
    component::ALL
        .into_iter()
        .filter(|c| host.roles.iter().any(|r| r.as_str() == c.role))
        .filter_map(|c| {
            let url = c.health_url()?;
            let query = if fresh_nats && c.name == NATS.name {
                "?js-enabled-only=true"
            } else {
                ""
            };
            let expect_json = match c.health {
                // Parsed, never substring-matched: "unhealthy" contains "healthy".
                Probe::Http {
                    json_status: Some((field, equals)),
                    ..
                } => json(field, equals),
                _ => None,
            };
            Some(GateProbe {
                name: c.name.into(),
                url: format!("{url}{query}"),
                expect_json,
                log_unit: Some(c.unit.into()),
            })
        })
        .collect()
}

/// After a batch: every service of the host healthy [`GATE_PROBES`] times in a row, and on a
/// NATS node every stream's replicas current again before the next node restarts (unless
/// the node is new in this run, `fresh_nats`: no stream has a replica there yet).
pub fn gate_plan(
    host: &Host,
    fleet: &Fleet,
    run_id: &str,
    check_only: bool,
    fresh_nats: bool,
) -> HostPlan {
    let mut steps = vec![Step {
        id: "verify.gate.health".into(),
        title: format!("health gate: every service healthy {GATE_PROBES} times in a row"),
        action: Action::HealthGate {
            probes: probes(host, fresh_nats),
            consecutive: GATE_PROBES,
            interval_ms: GATE_INTERVAL_MS,
            timeout_secs: GATE_DEADLINE_SECS,
        },
        notify: vec![],
    }];
    if host.roles.contains(&Role::NATS) && !fresh_nats {
        steps.push(Step {
            id: "verify.gate.streams-current".into(),
            title: "health gate: no stream replica lags behind its leader".into(),
            action: Action::StreamsCurrent {
                url: format!("nats://127.0.0.1:{}", NATS.port("client")),
                streams: crate::stack::nats::streams_with_replicas(
                    fleet.replicas,
                    &fleet.stream_limits,
                )
                .into_iter()
                .map(|s| s.name)
                .collect(),
                timeout_secs: STREAMS_CURRENT_SECS,
            },
            notify: vec![],
        });
    }
    HostPlan::one_layer(
        &host.name,
        run_id,
        super::build::STATE_DIR,
        check_only,
        LayerName::Verify,
        steps,
    )
}

/// The pipeline's services switched back to release `to` (None: the previous one) and
/// restarted on it, then healthy: the start layer with the switch in front.
pub fn rollback_plan(
    host: &Host,
    facts: &Facts,
    fleet: &Fleet,
    run_id: &str,
    to: Option<String>,
    check_only: bool,
) -> Result<HostPlan, PlanError> {
    let services = services_of(host);
    let mut plan = services_plan(host, facts, fleet, run_id, check_only)?;
    let switch = Step {
        id: "start.app.rollback".into(),
        title: match &to {
            Some(id) => format!("roll back to release {id}"),
            None => "roll back to the previous release".into(),
        },
        action: Action::AppRollback {
            dir: facts.deploy_dir.clone(),
            to,
        },
        notify: services.iter().map(|s| service_step_id(*s)).collect(),
    };
    if let Some(layer) = plan.layers.first_mut() {
        layer.steps.insert(0, switch);
    }
    Ok(plan)
}

/// Whether a host runs a pipeline release that a rollback can switch.
pub fn has_release(host: &Host) -> bool {
    PipelineService::ALL
        .iter()
        .any(|s| services_of(host).contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYSTEMD: &str = include_str!("../../tests/fixtures/facts/debian12_vm.txt");

    fn host(roles: &[Role]) -> Host {
        let roles: Vec<String> = roles.iter().map(|r| format!("\"{r}\"")).collect();
        let inventory = crate::inventory::parse(
            &format!(
                "[[hosts]]\nname = \"h1\"\naddress = \"10.0.0.5\"\nroles = [{}]\n",
                roles.join(", ")
            ),
            std::path::Path::new("test.toml"),
            None,
        )
        .unwrap();
        inventory.hosts[0].clone()
    }

    #[test]
    fn the_gate_probes_every_service_and_waits_for_replicas_on_nats() {
        let fleet = Fleet::single_host_for_tests();
        let plan = gate_plan(
            &host(&[Role::NATS, Role::STORAGE]),
            &fleet,
            "r",
            false,
            false,
        );
        let steps = &plan.layers[0].steps;
        let Action::HealthGate {
            probes,
            consecutive,
            ..
        } = &steps[0].action
        else {
            panic!("{steps:?}")
        };
        assert_eq!(*consecutive, 3);
        let names: Vec<&str> = probes.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["nats", "storage"]);
        assert!(matches!(
            &steps[1].action,
            Action::StreamsCurrent { streams, .. } if streams == &["MARKET_DATA", "ORDERBOOK_SNAP"]
        ));
        let collector = gate_plan(&host(&[Role::COLLECTOR]), &fleet, "r", false, false);
        assert_eq!(collector.layers[0].steps.len(), 1);
        // A NATS node new in this run: JetStream on is enough, no replicas to wait for.
        let fresh = gate_plan(&host(&[Role::NATS]), &fleet, "r", false, true);
        assert_eq!(fresh.layers[0].steps.len(), 1);
        let Action::HealthGate { probes, .. } = &fresh.layers[0].steps[0].action else {
            panic!()
        };
        assert!(probes[0].url.ends_with("/healthz?js-enabled-only=true"));
    }

    #[test]
    fn a_rollback_switches_first_and_restarts_the_services() {
        let fleet = Fleet::single_host_for_tests();
        let facts = crate::facts::parse(SYSTEMD).unwrap();
        let plan = rollback_plan(
            &host(&[Role::STORAGE, Role::COLLECTOR]),
            &facts,
            &fleet,
            "r",
            None,
            false,
        )
        .unwrap();
        let first = &plan.layers[0].steps[0];
        assert!(matches!(
            &first.action,
            Action::AppRollback { to: None, .. }
        ));
        assert_eq!(
            first.notify,
            ["start.storage.service", "start.collector.service"]
        );
        assert!(has_release(&host(&[Role::COLLECTOR])));
        assert!(!has_release(&host(&[Role::NATS])));
    }
}
