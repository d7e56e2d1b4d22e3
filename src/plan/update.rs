//! `update`: the deploy plan without installs. Configs are re-rendered, the agent is the new
//! one, services restart only where their config changed; a server that is not installed is a
//! clear failure ("run deploy"), never a silent install.

use super::model::{Action, HostPlan, LayerName, Step};
use crate::stack::component::{self, Origin};

/// The vendors' servers, each with the step-id prefix of its install steps, its package and
/// the shell test that proves its binary is there.
fn servers() -> Vec<(String, &'static str, String)> {
    component::ALL
        .into_iter()
        .filter_map(|c| match c.origin {
            Origin::Vendor { package, .. } => {
                let probe = std::iter::once(format!("command -v {package}"))
                    .chain(c.binaries.iter().map(|b| format!("test -x {b}")))
                    .collect::<Vec<_>>()
                    .join(" || ");
                Some((format!("install.{}.", c.name), package, probe))
            }
            Origin::Release => None,
        })
        .collect()
}

/// Replaces the install steps (packages, binaries) with one "is it installed" check per server.
pub fn without_installs(mut plan: HostPlan) -> HostPlan {
    for layer in plan
        .layers
        .iter_mut()
        .filter(|l| l.name == LayerName::Install)
    {
        let mut steps = Vec::new();
        let servers = servers();
        for (prefix, server, probe) in &servers {
            let mine: Vec<&Step> = layer
                .steps
                .iter()
                .filter(|s| s.id.starts_with(prefix.as_str()))
                .collect();
            if mine.is_empty() {
                continue;
            }
            // Keep what only checks or writes config (ports, units, users); drop what installs.
            steps.extend(
                mine.iter()
                    .filter(|s| {
                        !matches!(
                            s.action,
                            Action::Packages { .. }
                                | Action::InstallBinary { .. }
                                | Action::InstallDeb { .. }
                                | Action::InstallVendorFiles { .. }
                        )
                    })
                    .map(|s| (*s).clone()),
            );
            steps.push(Step {
                id: format!("{prefix}present"),
                title: format!("{server} installed (update installs nothing)"),
                action: Action::Script {
                    check: Some(format!("{probe} >/dev/null 2>&1")),
                    apply: format!(
                        "echo '{server} is not installed here: update never installs; run mp-remote deploy' >&2; exit 1"
                    ),
                    creates: Vec::new(),
                },
                notify: vec![],
            });
        }
        // The pipeline's release is the new agent itself: update installs it (and restarts
        // the services when it changed), as it pushes the agent.
        steps.extend(
            layer
                .steps
                .iter()
                .filter(|s| {
                    !servers
                        .iter()
                        .any(|(prefix, _, _)| s.id.starts_with(prefix.as_str()))
                })
                .cloned(),
        );
        layer.steps = steps;
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::{Layer, PLAN_FORMAT};

    #[test]
    fn installs_become_presence_checks_and_ports_stay() {
        let port = Step {
            id: "install.nats.port-4222".into(),
            title: "port".into(),
            action: Action::PortFree {
                port: 4222,
                service: "NATS client".into(),
                allowed_processes: vec![],
                our_unit: None,
            },
            notify: vec![],
        };
        let packages = Step {
            id: "install.nats.packages".into(),
            title: "install nats-server".into(),
            action: Action::Packages {
                packages: vec!["nats-server".into()],
            },
            notify: vec![],
        };
        // The pipeline's release is the new agent: update installs it.
        let release = Step {
            id: "install.app.release".into(),
            title: "release".into(),
            action: Action::AppRelease {
                dir: "/opt/marketprism".into(),
                sha256: "ab".repeat(32),
            },
            notify: vec!["start.storage.service".into()],
        };
        let plan = HostPlan {
            format: PLAN_FORMAT,
            host: "h".into(),
            run_id: "r".into(),
            state_dir: "/s".into(),
            check_only: false,
            diff: false,
            layers: vec![Layer {
                name: LayerName::Install,
                steps: vec![port.clone(), packages, release],
            }],
        };
        let updated = without_installs(plan);
        let ids: Vec<&str> = updated.layers[0]
            .steps
            .iter()
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "install.nats.port-4222",
                "install.nats.present",
                "install.app.release"
            ]
        );
        assert!(matches!(
            updated.layers[0].steps[1].action,
            Action::Script { .. }
        ));
    }
}
