//! What the servers' plan secures: the NATS secret and the admin password root's only, the
//! server config (with the users' passwords) the server's group's, the TLS key the server's
//! account's; ClickHouse reachable on loopback and the private address, its user from the
//! storage hosts only.

use super::*;
use crate::stack::nats::{NatsTlsFiles, NatsUser};

const FACTS: &str = include_str!("../../tests/fixtures/facts/debian12_vm.txt");

fn init_steps(fleet: &Fleet) -> Vec<Step> {
    init_steps_on(fleet, &[])
}

/// The init steps on a host whose facts list `addresses`.
fn init_steps_on(fleet: &Fleet, addresses: &[&str]) -> Vec<Step> {
    let mut facts = crate::facts::parse(FACTS).unwrap();
    facts.addresses = addresses.iter().map(|a| a.to_string()).collect();
    let inventory = crate::inventory::parse(
        "[[hosts]]\nname = \"db1\"\naddress = \"10.0.0.5\"\nbecome = true\nroles = [\"nats\", \"clickhouse\"]\n\n\
         [components.nats]\nsource = \"os\"\n\n[components.clickhouse]\nsource = \"os\"\n",
        std::path::Path::new("test.toml"),
        None,
    )
    .unwrap();
    let components = Components::from_table(&inventory.components).unwrap();
    let plan = servers_plan(
        &inventory.hosts[0],
        &facts,
        &components,
        fleet,
        "run",
        false,
    )
    .unwrap();
    plan.layers
        .into_iter()
        .filter(|l| l.name == LayerName::Init)
        .flat_map(|l| l.steps)
        .collect()
}

/// (path, mode, owner, content) of the step `id`'s file.
fn file<'a>(steps: &'a [Step], id: &str) -> (&'a str, u32, Option<&'a str>, &'a str) {
    let step = steps
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("{id}"));
    let Action::File {
        path,
        mode,
        owner,
        content,
    } = &step.action
    else {
        panic!("{id}: {:?}", step.action)
    };
    (path, *mode, owner.as_deref(), content)
}

fn fleet() -> Fleet {
    Fleet {
        nats_nodes: vec![("db1".into(), "10.0.0.5".into())],
        clickhouse_nodes: vec![("db1".into(), "10.0.0.5".into())],
        storage_addresses: vec!["10.0.0.7".into()],
        nats: stack::nats::NatsCredentials::new("fleet-secret-0123456789"),
        ..Fleet::single_host_for_tests()
    }
}

#[test]
fn nats_secrets_are_root_s_and_the_config_the_server_group_s() {
    let fleet = fleet();
    let steps = init_steps(&fleet);
    let (path, mode, owner, content) = file(&steps, "init.nats.secret");
    assert_eq!(
        (path, mode, owner),
        ("/etc/marketprism/nats-secret", 0o600, None)
    );
    assert_eq!(content, "fleet-secret-0123456789\n");
    let (path, mode, owner, content) = file(&steps, "init.nats.admin-password");
    assert_eq!(
        (path, mode, owner),
        ("/etc/marketprism/nats-admin-password", 0o600, None)
    );
    assert_eq!(
        content,
        format!("{}\n", fleet.nats.password(NatsUser::Admin))
    );
    let (_, mode, owner, content) = file(&steps, "init.nats.config");
    assert_eq!((mode, owner), (0o640, Some("root:nats")));
    assert!(content.contains(&fleet.nats.password(NatsUser::Collector)));
    assert!(!content.contains("fleet-secret-0123456789"));
    assert!(!steps.iter().any(|s| s.id.starts_with("init.nats.tls")));
}

#[test]
fn tls_files_go_first_and_the_key_is_the_server_account_s() {
    let fleet = Fleet {
        nats_tls: Some(NatsTlsFiles {
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
            ca_pem: "CA".into(),
        }),
        ..fleet()
    };
    let steps = init_steps(&fleet);
    assert_eq!(
        steps[..3].iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [
            "init.nats.tls-ca",
            "init.nats.tls-cert",
            "init.nats.tls-key"
        ]
    );
    assert_eq!(
        file(&steps, "init.nats.tls-key"),
        (
            "/etc/marketprism/nats-key.pem",
            0o600,
            Some("nats:nats"),
            "KEY"
        )
    );
    assert!(steps[..3].iter().all(|s| s.notify == ["init.nats.service"]));
    assert!(file(&steps, "init.nats.config").3.contains("tls {"));
}

#[test]
fn a_host_without_nats_gets_the_ca_for_its_clients() {
    let facts = crate::facts::parse(FACTS).unwrap();
    let inventory = crate::inventory::parse(
        "[[hosts]]\nname = \"c1\"\naddress = \"10.0.0.8\"\nbecome = true\nroles = [\"collector\"]\n",
        std::path::Path::new("test.toml"),
        None,
    )
    .unwrap();
    let components = Components::from_table(&inventory.components).unwrap();
    let fleet = Fleet {
        nats_tls: Some(NatsTlsFiles {
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
            ca_pem: "CA".into(),
        }),
        ..fleet()
    };
    let plan = servers_plan(
        &inventory.hosts[0],
        &facts,
        &components,
        &fleet,
        "run",
        false,
    )
    .unwrap();
    let init: Vec<Step> = plan
        .layers
        .into_iter()
        .filter(|l| l.name == LayerName::Init)
        .flat_map(|l| l.steps)
        .collect();
    assert_eq!(
        file(&init, "init.nats.tls-ca"),
        ("/etc/marketprism/nats-ca.pem", 0o644, None, "CA")
    );
    assert!(init[0].notify.is_empty(), "no NATS server here to restart");
    assert!(!init.iter().any(|s| s.id == "init.nats.tls-key"));
}

#[test]
fn clickhouse_listens_on_loopback_and_its_address_and_lets_storage_in() {
    let steps = init_steps(&fleet());
    let listen = file(&steps, "init.clickhouse.listen").3;
    assert!(
        listen.contains(
            "<listen_host>127.0.0.1</listen_host>\n    <listen_host>10.0.0.5</listen_host>"
        ),
        "{listen}"
    );
    assert!(!listen.contains("0.0.0.0"), "{listen}");
    let users = file(&steps, "init.clickhouse.users").3;
    assert!(
        users.contains("<ip>127.0.0.1</ip>\n                <ip>::1</ip>\n                <ip>10.0.0.7</ip>\n            </networks>"),
        "{users}"
    );
    assert!(!users.contains("::/0"), "{users}");
}

#[test]
fn nats_binds_loopback_alone_or_the_private_address_in_a_fleet() {
    let title = |steps: &[Step]| {
        steps
            .iter()
            .find(|s| s.id == "init.nats.config")
            .map(|s| s.title.clone())
            .unwrap()
    };
    let alone = init_steps_on(&fleet(), &["127.0.0.1", "10.0.0.5"]);
    assert!(file(&alone, "init.nats.config")
        .3
        .contains("listen: \"127.0.0.1:4222\""));
    assert!(title(&alone).contains("listening on 127.0.0.1: every client is on this host"));

    let fleet = Fleet {
        one_host: false,
        ..fleet()
    };
    let steps = init_steps_on(&fleet, &["127.0.0.1", "10.0.0.5"]);
    let conf = file(&steps, "init.nats.config").3;
    assert!(
        conf.contains("listen: \"10.0.0.5:4222\"") && conf.contains("http: \"127.0.0.1:8222\"")
    );
    // Facts without the address (a NAT's): every address, with the login still required.
    let nat = init_steps_on(&fleet, &[]);
    assert!(file(&nat, "init.nats.config")
        .3
        .contains("listen: \"0.0.0.0:4222\""));
    assert!(
        title(&nat).contains("not one of this host's"),
        "{}",
        title(&nat)
    );
}
