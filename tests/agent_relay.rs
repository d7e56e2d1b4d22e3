//! The agent relayed over the fleet's private network: three test hosts on one network get
//! one upload from here between them, the other two copy it from the first (sha256 checked);
//! a relay that hands over a cut file (as one lost mid-copy would) leaves the others to a
//! direct upload, and `--no-relay` uploads to each.

use crate::support::runs::{run_dirs, run_json};
use crate::support::{mp_remote, mp_remote_env, Fleet};

/// Each host's `detect.agent` message in the newest run.
fn arrivals(fleet: &Fleet) -> Vec<(String, String)> {
    let dirs = run_dirs(&fleet.path(".mp-remote/runs"));
    let record = run_json(dirs.last().expect("a run"));
    record["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let step = h["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["step"] == "detect.agent")
                .unwrap_or_else(|| panic!("no detect.agent step: {h}"));
            (
                h["name"].as_str().unwrap().to_string(),
                step["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn count(arrivals: &[(String, String)], prefix: &str) -> usize {
    arrivals
        .iter()
        .filter(|(_, m)| m.starts_with(prefix))
        .count()
}

/// Every host has exactly one agent, with the sha256 of this build.
fn agents_match(fleet: &Fleet) {
    use sha2::Digest;
    let ours = hex::encode(sha2::Sha256::digest(
        std::fs::read(env!("CARGO_BIN_EXE_mp-remote")).unwrap(),
    ));
    for host in ["h1", "h2", "h3"] {
        let there = fleet.exec(
            host,
            "sha256sum /var/lib/mp-remote/bin/mp-remote-* | cut -d' ' -f1",
        );
        assert_eq!(there.trim(), ours, "{host}");
    }
}

fn remove_agents(fleet: &Fleet) {
    for host in ["h1", "h2", "h3"] {
        fleet.exec(host, "rm -f /var/lib/mp-remote/bin/mp-remote-*");
    }
}

#[test]
fn one_upload_per_network_then_copies_checked_and_fallbacks() {
    let fleet = Fleet::up("relay", 3, 0);
    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.extra = "[components.nats]\nsource = \"os\"\n";
    let inventory = fleet.inventory("inv.toml", &options);

    let first = mp_remote(Some(&inventory), &["deploy", "--check"]);
    assert_eq!(first.code, 0, "{first:?}");
    let said = arrivals(&fleet);
    println!("first: {said:#?}");
    assert_eq!(count(&said, "upload agent"), 1, "{said:?}");
    assert_eq!(count(&said, "copy agent"), 2, "{said:?}");
    assert!(
        said.iter()
            .filter(|(_, m)| m.starts_with("copy agent"))
            .all(|(_, m)| m.contains("over the private network (sha256 checked)")),
        "{said:?}"
    );
    agents_match(&fleet);
    // The relay was stopped at the end of detect.
    for host in ["h1", "h2", "h3"] {
        assert!(fleet.holds(host, "! pgrep -f '[a]gent relay'"), "{host}");
    }

    // Already there: nothing travels.
    let again = mp_remote(Some(&inventory), &["deploy", "--check"]);
    assert_eq!(again.code, 0, "{again:?}");
    let said = arrivals(&fleet);
    assert_eq!(count(&said, "agent "), 3, "{said:?}");
    assert!(
        said.iter().all(|(_, m)| m.ends_with("is there")),
        "{said:?}"
    );

    // A relay that hands over half the file: the copies are refused, the hosts get a
    // direct upload, and each says why.
    remove_agents(&fleet);
    let cut = mp_remote_env(
        Some(&inventory),
        &["deploy", "--check"],
        &[("MP_REMOTE_RELAY_CUT", "1")],
    );
    assert_eq!(cut.code, 0, "{cut:?}");
    let said = arrivals(&fleet);
    println!("cut relay: {said:#?}");
    assert_eq!(count(&said, "upload agent"), 3, "{said:?}");
    assert_eq!(
        said.iter()
            .filter(|(_, m)| m.contains("failed (got ") && m.contains("bytes with another sha256"))
            .count(),
        2,
        "{said:?}"
    );
    agents_match(&fleet);

    // --no-relay: one upload per host.
    remove_agents(&fleet);
    let direct = mp_remote(Some(&inventory), &["--no-relay", "deploy", "--check"]);
    assert_eq!(direct.code, 0, "{direct:?}");
    let said = arrivals(&fleet);
    assert_eq!(count(&said, "upload agent"), 3, "{said:?}");
    assert!(said.iter().all(|(_, m)| !m.contains("failed")), "{said:?}");
    agents_match(&fleet);
}
