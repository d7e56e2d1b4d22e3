//! How a server runs on a host: under systemd where the host booted with it (the package's
//! unit, pointed at our command line by a drop-in where the two differ), else under the
//! agent's own supervisor (plain containers, sysvinit). Either way it is one step under one
//! id, so the config steps that notify it need not know which.

use super::model::{Action, Step};
use crate::facts::Init;
use crate::stack::managed::{with_marker, CommentStyle};

/// One server, as the plan runs it.
#[derive(Debug, Clone)]
pub struct Server<'a> {
    /// The service step's id: what the config steps feeding it notify.
    pub step_id: &'a str,
    /// The systemd unit (without `.service`), and the supervised service's name.
    pub name: &'a str,
    /// The account it runs as (its package creates it).
    pub user: &'a str,
    /// Its command line; `command[0]` an absolute path.
    pub command: &'a [&'a str],
    /// Under systemd, where the package's unit runs another command line: the id of a step
    /// writing a drop-in that replaces the unit's `ExecStart` (and raises its file limit).
    pub drop_in_step: Option<&'a str>,
}

/// The steps that run `server` on a host with this init. `feeding`: the steps before it; the
/// files among them that notify it are what a supervised server is checked against.
pub fn service_steps(init: Init, server: &Server, feeding: &[Step]) -> Vec<Step> {
    match init {
        Init::Systemd => systemd_steps(server),
        // Launchd never gets here: the preflight refuses macOS hosts.
        Init::None | Init::Launchd => vec![supervised_step(server, feeding)],
    }
}

fn systemd_steps(server: &Server) -> Vec<Step> {
    let name = server.name;
    let mut steps = Vec::new();
    if let Some(id) = server.drop_in_step {
        let drop_in = with_marker(
            CommentStyle::Hash,
            &format!(
                "[Service]\nExecStart=\nExecStart={}\nLimitNOFILE=65536\n",
                server.command.join(" ")
            ),
        );
        steps.push(Step {
            id: id.into(),
            title: format!("point {name}.service at it"),
            action: Action::File {
                path: format!("/etc/systemd/system/{name}.service.d/mp-remote.conf"),
                content: drop_in,
                mode: 0o644,
                owner: None,
            },
            notify: vec![server.step_id.into()],
        });
    }
    steps.push(Step {
        id: server.step_id.into(),
        title: format!("{name} enabled and running"),
        action: Action::Service { unit: name.into() },
        notify: vec![],
    });
    steps
}

/// No drop-in and no file limit here: both servers raise their soft file limit to the hard
/// one themselves (Go's runtime for nats-server, ClickHouse at start-up).
fn supervised_step(server: &Server, feeding: &[Step]) -> Step {
    let config_files = feeding
        .iter()
        .filter(|step| step.notify.iter().any(|id| id == server.step_id))
        .filter_map(|step| match &step.action {
            Action::File { path, .. } => Some(path.clone()),
            _ => None,
        })
        .collect();
    Step {
        id: server.step_id.into(),
        title: format!("{} running (own supervisor: no systemd)", server.name),
        action: Action::Supervised {
            name: server.name.into(),
            user: server.user.into(),
            command: server.command.iter().map(|s| s.to_string()).collect(),
            config_files,
        },
        notify: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NATS: Server = Server {
        step_id: "init.nats.service",
        name: "nats-server",
        user: "nats",
        command: &[
            "/usr/sbin/nats-server",
            "-c",
            "/etc/marketprism/nats-server.conf",
        ],
        drop_in_step: Some("install.nats.drop-in"),
    };

    fn config_step(path: &str, notify: &[&str]) -> Step {
        Step {
            id: format!("init.x.{path}"),
            title: String::new(),
            action: Action::File {
                path: path.into(),
                content: String::new(),
                mode: 0o644,
                owner: None,
            },
            notify: notify.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn systemd_gets_the_drop_in_then_the_unit() {
        let steps = service_steps(Init::Systemd, &NATS, &[]);
        let ids: Vec<&str> = steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["install.nats.drop-in", "init.nats.service"]);
        let Action::File { path, content, .. } = &steps[0].action else {
            panic!("{steps:?}")
        };
        assert_eq!(
            path,
            "/etc/systemd/system/nats-server.service.d/mp-remote.conf"
        );
        assert!(content.ends_with(
            "[Service]\nExecStart=\nExecStart=/usr/sbin/nats-server -c /etc/marketprism/nats-server.conf\nLimitNOFILE=65536\n"
        ));
        assert_eq!(steps[0].notify, ["init.nats.service"]);
        assert_eq!(
            steps[1].action,
            Action::Service {
                unit: "nats-server".into()
            }
        );
        let without = Server {
            drop_in_step: None,
            ..NATS
        };
        assert_eq!(service_steps(Init::Systemd, &without, &[]).len(), 1);
    }

    #[test]
    fn no_systemd_gets_one_supervised_step_checked_against_its_config_files() {
        let feeding = [
            config_step("/etc/marketprism/nats-server.conf", &["init.nats.service"]),
            config_step("/etc/marketprism/secret", &[]),
            config_step("/etc/other.conf", &["init.other.service"]),
        ];
        let steps = service_steps(Init::None, &NATS, &feeding);
        assert_eq!(steps.len(), 1, "no drop-in without systemd");
        assert_eq!(
            steps[0].id, "init.nats.service",
            "the id config steps notify"
        );
        assert_eq!(
            steps[0].action,
            Action::Supervised {
                name: "nats-server".into(),
                user: "nats".into(),
                command: vec![
                    "/usr/sbin/nats-server".into(),
                    "-c".into(),
                    "/etc/marketprism/nats-server.conf".into()
                ],
                config_files: vec!["/etc/marketprism/nats-server.conf".into()],
            }
        );
    }

    /// The init layer of the whole servers plan for a host with these facts.
    fn init_steps(facts: &str) -> Vec<Step> {
        servers_plan(facts)
            .layers
            .into_iter()
            .filter(|l| l.name == crate::plan::LayerName::Init)
            .flat_map(|l| l.steps)
            .collect()
    }

    /// Starting NATS comes out of the servers plan whole, in order, and nothing else does;
    /// in its place the servers plan has systemd read the unit's files.
    #[test]
    fn the_nats_start_is_cut_into_a_plan_of_its_own() {
        let mut plan = servers_plan(include_str!("../../tests/fixtures/facts/debian12_vm.txt"));
        let before = plan.layers.iter().map(|l| l.steps.len()).sum::<usize>();
        let start = crate::plan::cut_nats_start(&mut plan).unwrap();
        assert_eq!(
            ids(&start.layers[0].steps),
            ["init.nats.service", "init.nats.health"]
        );
        assert_eq!(start.layers[0].name, crate::plan::LayerName::Init);
        assert_eq!(
            (start.run_id.as_str(), start.host.as_str()),
            ("run", "local")
        );
        let rest: Vec<&Step> = plan.layers.iter().flat_map(|l| &l.steps).collect();
        assert_eq!(rest.len() + 1, before);
        let loaded = rest
            .iter()
            .find(|s| s.id == "init.nats.service-files")
            .unwrap();
        assert_eq!(
            loaded.action,
            Action::UnitLoaded {
                unit: "nats-server".into()
            }
        );
        // What fed the service still notifies it: the agent keeps the restart it owes.
        assert!(rest
            .iter()
            .any(|s| s.notify.contains(&"init.nats.service".to_string())));
        assert!(crate::plan::cut_nats_start(&mut plan).is_none());
    }

    fn servers_plan(facts: &str) -> crate::plan::HostPlan {
        let facts = crate::facts::parse(facts).unwrap();
        let inventory = crate::inventory::parse(
            "[[hosts]]\nname = \"local\"\nconnection = \"local\"\nbecome = true\nroles = [\"nats\", \"clickhouse\"]\n\n[components.nats]\nsource = \"os\"\n\n[components.clickhouse]\nsource = \"os\"\n",
            std::path::Path::new("test.toml"),
            None,
        )
        .unwrap();
        let components = crate::plan::Components::from_table(&inventory.components).unwrap();
        let fleet = crate::plan::Fleet::single_host_for_tests();
        crate::plan::servers_plan(
            &inventory.hosts[0],
            &facts,
            &components,
            &fleet,
            "run",
            false,
        )
        .unwrap()
    }

    fn ids(steps: &[Step]) -> Vec<&str> {
        steps.iter().map(|s| s.id.as_str()).collect()
    }

    /// A Debian 12 container without systemd (a real capture): both servers supervised, each
    /// checked against the config files that notify it.
    #[test]
    fn servers_plan_without_systemd_supervises_both_servers() {
        let steps = init_steps(include_str!("../../tests/fixtures/facts/debian12.txt"));
        assert_eq!(
            ids(&steps),
            [
                "init.nats.secret",
                "init.nats.admin-password",
                "init.nats.store-dir",
                "init.nats.config",
                "init.nats.service",
                "init.nats.health",
                "init.clickhouse.data-dir",
                "init.clickhouse.secret",
                "init.clickhouse.listen",
                "init.clickhouse.users",
                "init.clickhouse.service",
                "init.clickhouse.health",
                "init.clickhouse.schema",
            ]
        );
        let Action::Supervised { config_files, .. } = &steps[10].action else {
            panic!("{:?}", steps[10])
        };
        assert_eq!(
            config_files,
            &[
                "/etc/clickhouse-server/config.d/mp-listen.xml",
                "/etc/clickhouse-server/users.d/mp-users.xml"
            ]
        );
    }

    /// Hosts with systemd get the very steps they got before the supervisor existed (the
    /// NATS drop-in moved ahead of the packages, its file unchanged): a deploy after an
    /// upgrade of mp-remote changes nothing there.
    #[test]
    fn servers_plan_with_systemd_is_unchanged() {
        let facts = include_str!("../../tests/fixtures/facts/debian12_vm.txt");
        let install: Vec<Step> = servers_plan(facts).layers.remove(0).steps;
        let at = |id: &str| install.iter().position(|s| s.id == id).unwrap();
        assert!(at("install.nats.drop-in") < at("install.packages"));
        assert!(install[..at("install.nats.drop-in")]
            .iter()
            .all(|s| matches!(s.action, Action::PortFree { .. })));
        let steps = init_steps(facts);
        assert_eq!(
            ids(&steps),
            [
                "init.nats.secret",
                "init.nats.admin-password",
                "init.nats.store-dir",
                "init.nats.config",
                "init.nats.service",
                "init.nats.health",
                "init.clickhouse.data-dir",
                "init.clickhouse.secret",
                "init.clickhouse.listen",
                "init.clickhouse.users",
                "init.clickhouse.service",
                "init.clickhouse.health",
                "init.clickhouse.schema",
            ]
        );
        assert!(!steps
            .iter()
            .any(|s| matches!(s.action, Action::Supervised { .. })));
        assert_eq!(steps[4].title, "nats-server enabled and running");
        assert_eq!(steps[10].title, "clickhouse-server enabled and running");
    }
}
