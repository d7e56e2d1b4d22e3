//! Tests of `pipeline`.

use super::*;

const SYSTEMD: &str = include_str!("../../tests/fixtures/facts/debian12_vm.txt");
const CONTAINER: &str = include_str!("../../tests/fixtures/facts/debian12.txt");

fn host(roles: &str, vars: &str) -> Host {
    let inventory = crate::inventory::parse(
        &format!("[[hosts]]\nname = \"mp-1\"\naddress = \"10.0.0.5\"\nroles = [{roles}]\n{vars}"),
        std::path::Path::new("test.toml"),
        None,
    )
    .unwrap();
    inventory.hosts[0].clone()
}

fn facts(text: &str) -> Facts {
    crate::facts::parse(text).unwrap()
}

fn ids(plan: &HostPlan) -> Vec<&str> {
    plan.layers[0].steps.iter().map(|s| s.id.as_str()).collect()
}

fn remote_fleet() -> Fleet {
    Fleet {
        nats_nodes: vec![
            ("n1".into(), "10.0.0.1".into()),
            ("n2".into(), "10.0.0.2".into()),
        ],
        clickhouse_nodes: vec![("ch".into(), "10.0.0.9".into())],
        ..Fleet::single_host_for_tests()
    }
}

#[test]
fn the_release_step_restarts_both_services() {
    let steps = install_steps(
        &host("\"storage\", \"collector\"", ""),
        &facts(SYSTEMD),
        &remote_fleet(),
    );
    let release = steps
        .iter()
        .find(|s| s.id == "install.app.release")
        .unwrap();
    assert_eq!(
        release.notify,
        ["start.storage.service", "start.collector.service"]
    );
    let ports: Vec<&str> = steps
        .iter()
        .filter(|s| matches!(s.action, Action::PortFree { .. }))
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(
        ports,
        [
            "install.storage.port-8085",
            "install.storage.port-9094",
            "install.collector.port-8087",
            "install.collector.port-9093"
        ]
    );
    assert!(install_steps(&host("\"nats\"", ""), &facts(SYSTEMD), &remote_fleet()).is_empty());
}

#[test]
fn storage_on_its_own_host_writes_to_the_first_clickhouse_over_its_address() {
    let plan = services_plan(
        &host("\"storage\"", ""),
        &facts(SYSTEMD),
        &remote_fleet(),
        "run",
        false,
    )
    .unwrap();
    assert_eq!(
        ids(&plan),
        [
            "start.storage.nats-password",
            "start.storage.secret",
            "start.storage.config",
            "start.storage.unit",
            "start.storage.service",
            "start.storage.health"
        ]
    );
    let Action::File { content, .. } = &plan.layers[0].steps[2].action else {
        panic!()
    };
    assert!(
        content.contains("url = \"http://10.0.0.9:8123\""),
        "{content}"
    );
    assert!(
        content.contains("nats_urls = [\"nats://10.0.0.1:4222\", \"nats://10.0.0.2:4222\"]"),
        "{content}"
    );
    // The passwords go to files of their own, never into the config.
    assert!(!content.contains("secret"), "{content}");
    let fleet = remote_fleet();
    let nats_password = fleet.nats.password(crate::stack::nats::NatsUser::Storage);
    assert!(!content.contains(&nats_password), "{content}");
    assert!(
        content.contains(
            "[nats]\nuser = \"storage\"\npassword_file = \"/etc/marketprism/storage-nats-password\"\ninbox_prefix = \"_INBOX_storage\"\n"
        ),
        "{content}"
    );
    let Action::File {
        path,
        content,
        mode,
        owner,
    } = &plan.layers[0].steps[0].action
    else {
        panic!()
    };
    assert_eq!(
        (path.as_str(), content.as_str(), *mode, owner.as_deref()),
        (
            "/etc/marketprism/storage-nats-password",
            format!("{nats_password}\n").as_str(),
            0o640,
            Some("root:marketprism")
        )
    );
    let Action::WaitHttp { expect_json, .. } = &plan.layers[0].steps[5].action else {
        panic!()
    };
    assert_eq!(expect_json.as_ref().unwrap().equals, "healthy");
}

#[test]
fn without_systemd_the_agent_supervises_the_current_release() {
    let plan = services_plan(
        &host("\"collector\"", ""),
        &facts(CONTAINER),
        &Fleet::single_host_for_tests(),
        "run",
        false,
    )
    .unwrap();
    assert_eq!(
        ids(&plan),
        [
            "start.collector.nats-password",
            "start.collector.config",
            "start.collector.service",
            "start.collector.health"
        ]
    );
    let Action::Supervised {
        command,
        config_files,
        ..
    } = &plan.layers[0].steps[2].action
    else {
        panic!()
    };
    assert_eq!(command[0], "/opt/marketprism/current/mp-remote");
    // A new NATS password restarts it too.
    assert_eq!(
        config_files,
        &[
            "/etc/marketprism/collector-nats-password",
            "/etc/marketprism/collector.toml"
        ]
    );
}

#[test]
fn a_bad_collector_rate_is_refused_with_the_fix() {
    // The inventory refuses it with its place; a Host built otherwise is still refused here.
    let mut collector = host("\"collector\"", "");
    collector
        .vars
        .insert("collector_rate".into(), toml::Value::String("fast".into()));
    let error = services_plan(
        &collector,
        &facts(SYSTEMD),
        &Fleet::single_host_for_tests(),
        "run",
        false,
    )
    .unwrap_err();
    assert!(error.to_string().contains("collector_rate = 40"), "{error}");
}

#[test]
fn verify_checks_rows_only_where_collectors_exist() {
    let both = host("\"storage\", \"collector\"", "");
    let plan = verify_plan(&both, &Fleet::single_host_for_tests(), "run", false).unwrap();
    assert_eq!(
        ids(&plan),
        ["verify.collector.publishing", "verify.storage.data-flow"]
    );
    let none = Fleet {
        collectors: 0,
        flow_tables: TABLES.iter().map(|t| t.to_string()).collect(),
        ..Fleet::single_host_for_tests()
    };
    let plan = verify_plan(&host("\"storage\"", ""), &none, "run", false).unwrap();
    assert!(ids(&plan).is_empty());
}
