//! Failure budgets of a rolling update on three real hosts (h1: the whole pipeline, h2 and h3:
//! a collector each): an unreachable host trips `--max-unreachable` (exit 3, the later batch
//! left on its old release), is tolerated within a budget of 1, and `--retry` finishes it
//! once the host is back.

use std::path::Path;

use crate::support::fleet::set_roles;
use crate::support::rolling::{build, latest_run, release, roll};
use crate::support::{mp_remote, wait_for, Fleet};

const COMPONENTS: &str =
    "[components.nats]\nsource = \"os\"\n\n[components.clickhouse]\nsource = \"os\"\n";

/// A rolling update (see [`roll`]), printed.
fn update(inventory: &Path, build: &Path, extra: &[&str]) -> crate::support::Run {
    let run = roll(inventory, build, extra);
    println!("update {extra:?}:\n{}{}", run.stdout, run.stderr);
    run
}

#[test]
fn unreachable_hosts_trip_their_own_budget_and_retry_finishes() {
    let fleet = Fleet::up("budget", 3, 0);
    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.extra = COMPONENTS;
    options.connect_timeout = "3s";
    let inventory = fleet.inventory("inv.toml", &options);
    set_roles(&inventory, |host| match host {
        "h1" => "[\"nats\", \"clickhouse\", \"storage\", \"collector\"]".into(),
        _ => "[\"collector\"]".into(),
    });
    let first = mp_remote(Some(&inventory), &["deploy"]);
    assert_eq!(first.code, 0, "{first:?}");
    let old = release(&fleet, "h3");

    // h2 is down: batch 2 trips --max-unreachable 0; h3 (batch 3) keeps its release; exit 3.
    let next = build(&fleet, "mp-remote-next", b"\n");
    fleet.on_host("stop", "h2");
    let stopped = update(&inventory, &next, &[]);
    assert_eq!(stopped.code, 3, "{stopped:?}");
    let record = latest_run(&fleet);
    assert!(
        record["stopped"]
            .as_str()
            .unwrap()
            .contains("batch 2 (collectors): h2 unreachable, over the budget --max-unreachable 0"),
        "{record}"
    );
    let states: Vec<&str> = record["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["ok", "unreachable", "skipped"]);
    assert_eq!(release(&fleet, "h3"), old);

    // Within a budget of 1 the rollout goes on past it; a failed budget does not count it.
    let tolerated = update(&inventory, &next, &["--max-unreachable", "1"]);
    assert_eq!(tolerated.code, 3, "{tolerated:?}");
    assert_ne!(release(&fleet, "h3"), old);

    // h2 back: --retry runs on it alone and finishes the rollout.
    fleet.on_host("start", "h2");
    let retry = update(&inventory, &next, &["--retry", "latest"]);
    assert_eq!(retry.code, 0, "{retry:?}");
    let record = latest_run(&fleet);
    let names: Vec<&str> = record["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["h2"]);
    assert_eq!(release(&fleet, "h2"), release(&fleet, "h3"));

    // h3 lost during the rollout: frozen (`docker pause`) as a network loss freezes it,
    // so no step of its agent fails first; a 1 s keepalive notices within seconds. It counts
    // against the unreachable budget, not the failed one.
    let text = std::fs::read_to_string(&inventory).unwrap();
    std::fs::write(
        &inventory,
        text.replacen("[defaults]\n", "[defaults]\nkeepalive = \"1s\"\n", 1),
    )
    .unwrap();
    let third = build(&fleet, "mp-remote-third", b"\n\n");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_mp-remote"))
        .arg("-i")
        .arg(&inventory)
        .args([
            "update",
            "--serial",
            "1",
            "--agent-binary",
            third.to_str().unwrap(),
        ])
        .env("MP_REMOTE_REATTACH", "5s")
        .env_remove("SSH_AUTH_SOCK")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Frozen while the batch before its own works (h2's): h3's batch then finds it gone,
    // whatever the timing. Waiting for h3's own batch raced it on a loaded machine: its batch
    // could end in the seconds the poll took.
    let logs = "ls /var/lib/mp-remote/runs/*.events.jsonl 2>/dev/null || true";
    let before = fleet.exec("h2", logs);
    wait_for("h2's batch at work", 240, || {
        fleet.exec("h2", logs).lines().any(|log| {
            !before.lines().any(|b| b == log)
                && fleet.holds("h2", &format!("grep -q 'install.app.release' {log}"))
        })
    });
    let container = fleet.host("h3").container.clone();
    crate::support::run_ok(std::process::Command::new("docker").args(["pause", &container]));
    let lost = child.wait_with_output().unwrap();
    crate::support::run_ok(std::process::Command::new("docker").args(["unpause", &container]));
    let stdout = String::from_utf8_lossy(&lost.stdout);
    println!(
        "update with h3 lost:\n{stdout}{}",
        String::from_utf8_lossy(&lost.stderr)
    );
    assert_eq!(lost.status.code(), Some(3), "{stdout}");
    let record = latest_run(&fleet);
    assert_eq!(record["hosts"][2]["status"], "unreachable", "{record}");
    assert!(
        record["stopped"]
            .as_str()
            .unwrap_or_default()
            .contains("h3 unreachable, over the budget --max-unreachable 0"),
        "{record}"
    );
}
