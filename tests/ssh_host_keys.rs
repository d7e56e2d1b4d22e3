//! Host-key policy against real sshd: unknown hosts under strict, changed keys always refused.

use std::path::Path;

use mp_remote::transport::known_hosts;

use crate::support::{fleet, mp_remote, Fleet};

/// The SHA256 fingerprint of the ed25519 host key a test host presents now.
fn host_fingerprint(fleet: &Fleet, host: &str) -> String {
    let line = fleet.exec(host, "cat /etc/ssh/ssh_host_ed25519_key.pub");
    let base64 = line.split_whitespace().nth(1).expect("public key line");
    let key = russh::keys::parse_public_key_base64(base64).expect("parse host key");
    known_hosts::fingerprint(&key)
}

fn facts(inventory: &Path) -> crate::support::Run {
    mp_remote(Some(inventory), &["facts", "--json"])
}

#[test]
fn strict_refuses_an_unknown_host_and_records_nothing() {
    let fleet = fleet::shared();
    let known_hosts = fleet.path("strict-known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.host_key_checking = "strict";
    options.only = &["h1"];
    let inventory = fleet.inventory("strict.toml", &options);

    let run = facts(&inventory);
    assert_eq!(run.code, 3, "{run:?}");
    let error = run.json()["hosts"][0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("host_key_checking is strict"), "{error}");
    assert!(error.contains(&host_fingerprint(fleet, "h1")), "{error}");
    assert!(!known_hosts.exists() || std::fs::read_to_string(&known_hosts).unwrap().is_empty());
}

#[test]
fn changed_host_key_is_refused_under_accept_new_and_strict_but_not_off() {
    let fleet = Fleet::up("rekey", 1, 0);
    let known_hosts = fleet.path("known_hosts");
    let options = fleet.default_options(&known_hosts);
    let accept_new = fleet.inventory("accept-new.toml", &options);
    assert_eq!(facts(&accept_new).code, 0);
    let old = host_fingerprint(&fleet, "h1");
    let recorded = std::fs::read_to_string(&known_hosts).unwrap();

    fleet.on_host("rekey", "h1");
    let new = host_fingerprint(&fleet, "h1");
    assert_ne!(old, new, "rekey must give the host a new key");

    let mut strict_options = fleet.default_options(&known_hosts);
    strict_options.host_key_checking = "strict";
    let strict = fleet.inventory("strict.toml", &strict_options);
    for inventory in [&accept_new, &strict] {
        let run = facts(inventory);
        assert_eq!(run.code, 3, "{run:?}");
        let error = run.json()["hosts"][0]["error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(error.contains("HOST KEY CHANGED"), "{error}");
        assert!(
            error.contains(&old) && error.contains(&new),
            "both fingerprints: {error}"
        );
        assert!(
            error.contains(&format!("{}:1", known_hosts.display())),
            "the line: {error}"
        );
        assert!(error.contains("ssh-keygen -R"), "{error}");
    }
    // Refusing never rewrites the file.
    assert_eq!(std::fs::read_to_string(&known_hosts).unwrap(), recorded);

    let mut off_options = fleet.default_options(&known_hosts);
    off_options.host_key_checking = "off";
    let off = fleet.inventory("off.toml", &off_options);
    assert_eq!(facts(&off).code, 0);
}
