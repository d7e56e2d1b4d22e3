//! The static (musl) agent that `scripts/build-agents.sh` builds deploys the whole pipeline on
//! a real host and runs it (the collector and storage are its release), and an agent for
//! another arch is refused before anything changes.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{assert_nothing_changed, mp_remote, Fleet};

const COMPONENTS: &str =
    "[components.nats]\nsource = \"os\"\n\n[components.clickhouse]\nsource = \"os\"\n";

/// The x86_64 static agent: `MP_REMOTE_TEST_STATIC_AGENT` (tests/run builds it), else built
/// here. None when this machine cannot build it (no rustup musl target reachable): said.
fn static_agent() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("MP_REMOTE_TEST_STATIC_AGENT") {
        return Some(PathBuf::from(path)).filter(|p| p.exists());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target/agents");
    let agent = dir.join("mp-remote-x86_64-unknown-linux-musl");
    let built = Command::new(root.join("scripts/build-agents.sh"))
        .arg("x86_64")
        .env("AGENTS_DIR", &dir)
        .env("PROFILE", "dev")
        .status()
        .is_ok_and(|s| s.success());
    built.then_some(agent)
}

#[test]
fn a_static_agent_deploys_and_runs_the_pipeline() {
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("the test hosts are x86_64 only on x86_64 machines");
        return;
    }
    let Some(agent) = static_agent() else {
        eprintln!(
            "SKIPPED: no static agent: scripts/build-agents.sh x86_64 failed here (is rustup's x86_64-unknown-linux-musl target reachable?)"
        );
        return;
    };
    let agent = agent.to_str().unwrap().to_string();
    let fleet = Fleet::up("static", 1, 0);
    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.roles = &["nats", "clickhouse", "storage", "collector"];
    options.extra = COMPONENTS;
    let inventory = fleet.inventory("inv.toml", &options);

    // An agent for another CPU: refused naming the host and the arch, nothing changed.
    let mut elf = std::fs::read(&agent).unwrap();
    elf[18..20].copy_from_slice(&183u16.to_le_bytes());
    let wrong = fleet.path("mp-remote-aarch64");
    std::fs::write(&wrong, elf).unwrap();
    let refused = mp_remote(
        Some(&inventory),
        &["deploy", "--agent-binary", wrong.to_str().unwrap()],
    );
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused
            .stdout
            .contains("is an aarch64 build and the host is x86_64"),
        "{refused:?}"
    );
    assert!(
        fleet.holds("h1", "! command -v nats-server"),
        "nothing installed"
    );

    let first = mp_remote(Some(&inventory), &["deploy", "--agent-binary", &agent]);
    println!(
        "deploy with the static agent:\n{}{}",
        first.stdout, first.stderr
    );
    assert_eq!(first.code, 0, "{first:?}");
    // The pipeline runs the static build: its release is that very file.
    let release = fleet.exec("h1", "sha256sum /opt/marketprism/current/mp-remote");
    let sum = String::from_utf8(
        Command::new("sha256sum")
            .arg(&agent)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(
        release.split_whitespace().next(),
        sum.split_whitespace().next()
    );
    assert!(
        fleet.holds(
            "h1",
            "! ldd /opt/marketprism/current/mp-remote 2>&1 | grep -q '=>'"
        ),
        "static: no dynamic libraries"
    );
    let again = mp_remote(Some(&inventory), &["deploy", "--agent-binary", &agent]);
    assert_nothing_changed(&again);
    // Day 2 works on it.
    let status = mp_remote(Some(&inventory), &["status", "--json"]);
    assert_eq!(status.code, 0, "{status:?}");
}
