//! Facts over real SSH: several hosts at once, unreachable hosts, a bastion, 20 hosts.

use crate::support::{fleet, mp_remote, Fleet};

fn known_hosts_lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

#[test]
fn facts_from_three_hosts_in_parallel_and_accept_new_records_keys() {
    let fleet = fleet::shared();
    let known_hosts = fleet.path("facts-known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.only = &["h1", "h2", "h3"];
    let inventory = fleet.inventory("facts.toml", &options);

    let run = mp_remote(Some(&inventory), &["facts", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    let hosts = doc["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 3);
    for (host, name) in hosts.iter().zip(["h1", "h2", "h3"]) {
        assert_eq!(host["name"], name);
        assert_eq!(host["status"], "ok", "{host}");
        let facts = &host["facts"];
        assert_eq!(facts["os"]["id"], "debian");
        assert_eq!(facts["os"]["version_id"], "12");
        assert_eq!(facts["os"]["family"], "debian");
        assert_eq!(facts["init"], "systemd");
        assert_eq!(facts["is_root"], true);
        assert_eq!(facts["hostname"], fleet.host(name).container.as_str());
    }
    // accept-new wrote one line per host, and a second run adds none.
    assert_eq!(known_hosts_lines(&known_hosts), 3);
    let again = mp_remote(Some(&inventory), &["facts", "--json"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(known_hosts_lines(&known_hosts), 3);
}

#[test]
fn facts_through_a_bastion_with_proxy_jump() {
    let fleet = fleet::shared();
    let known_hosts = fleet.path("bastion-known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.only = &["x1"];
    let inventory = fleet.inventory("bastion.toml", &options);
    let run = mp_remote(Some(&inventory), &["facts", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let host = &run.json()["hosts"][0];
    assert_eq!(host["status"], "ok", "{host}");
    assert_eq!(
        host["facts"]["hostname"],
        fleet.host("x1").container.as_str()
    );
    // The hidden host is not reachable directly: the only way in was the tunnel.
    assert!(fleet.host("x1").hidden);
}

#[test]
fn sudo_facts_for_deploy_and_nosudo_users() {
    let fleet = fleet::shared();
    let known_hosts = fleet.path("sudo-known_hosts");
    for (user, expected) in [("deploy", true), ("nosudo", false)] {
        let mut options = fleet.default_options(&known_hosts);
        options.user = user;
        options.only = &["h1"];
        let inventory = fleet.inventory(&format!("sudo-{user}.toml"), &options);
        let run = mp_remote(Some(&inventory), &["facts", "--json"]);
        assert_eq!(run.code, 0, "{run:?}");
        let facts = &run.json()["hosts"][0]["facts"];
        assert_eq!(facts["is_root"], false, "{user}");
        assert_eq!(facts["passwordless_sudo"], expected, "{user}");
    }
}

#[test]
fn stopped_host_is_unreachable_while_the_others_succeed() {
    let fleet = Fleet::up("stop", 3, 0);
    let known_hosts = fleet.path("known_hosts");
    let inventory = fleet.inventory("inv.toml", &fleet.default_options(&known_hosts));
    fleet.on_host("stop", "h2");

    let run = mp_remote(Some(&inventory), &["facts", "--json"]);
    assert_eq!(
        run.code, 3,
        "exit code 3: one unreachable, none failed: {run:?}"
    );
    let doc = run.json();
    let statuses: Vec<_> = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["name"].as_str().unwrap().to_string(),
                h["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [("h1", "ok"), ("h2", "unreachable"), ("h3", "ok")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let error = doc["hosts"][1]["error"].as_str().unwrap();
    assert!(
        error.starts_with("h2: cannot connect to 127.0.0.1:"),
        "{error}"
    );
    assert!(error.contains("check that sshd runs there"), "{error}");
}

#[test]
fn twenty_hosts_in_parallel() {
    let fleet = Fleet::up("twenty", 20, 0);
    let known_hosts = fleet.path("known_hosts");
    let inventory = fleet.inventory("inv.toml", &fleet.default_options(&known_hosts));
    let run = mp_remote(Some(&inventory), &["facts", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    let hosts = doc["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 20);
    assert!(hosts.iter().all(|h| h["status"] == "ok"), "{doc}");
    let mut names: Vec<_> = hosts
        .iter()
        .map(|h| h["facts"]["hostname"].as_str().unwrap())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 20, "every host answered for itself");
}
