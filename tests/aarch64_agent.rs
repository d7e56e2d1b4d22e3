//! The aarch64 agent (`scripts/build-agents.sh aarch64`, built by tests/run) does a real
//! deploy: facts, its file, package and service steps, JetStream's streams, and a re-run that
//! changes nothing. CI has no arm64 host (an arm64 test host boots under emulation in about
//! 15 minutes: `tests/arm64/mixed_fleet.sh` proves a mixed fleet by hand), so the agent runs
//! on an x86_64 test host under `qemu-aarch64-static`, called by name: no binfmt_misc needed.
//!
//! The wrapper logs each call, so the test knows the emulated build did the work.

use std::path::PathBuf;
use std::process::Command;

use crate::support::{assert_nothing_changed, mp_remote, Fleet};

const AGENT: &str = "/usr/local/lib/mp-remote-aarch64";
const QEMU: &str = "/usr/local/lib/qemu-aarch64-static";
const CALLS: &str = "/var/log/mp-remote-aarch64.calls";

/// The aarch64 agent and qemu, or why this machine has none (said, and the test skips).
fn prerequisites() -> Result<(PathBuf, PathBuf), String> {
    let agent = std::env::var("MP_REMOTE_TEST_AARCH64_AGENT")
        .map(PathBuf::from)
        .map_err(|_| "MP_REMOTE_TEST_AARCH64_AGENT is not set (tests/run sets it)".to_string())?;
    if !agent.exists() {
        return Err(format!("{} was not built", agent.display()));
    }
    let qemu = PathBuf::from("/usr/bin/qemu-aarch64-static");
    if !qemu.exists() {
        return Err("qemu-aarch64-static is missing (apt-get install qemu-user-static)".into());
    }
    Ok((agent, qemu))
}

fn docker_cp(from: &std::path::Path, container: &str, to: &str) {
    let out = Command::new("docker")
        .args(["cp", "-L"])
        .arg(from)
        .arg(format!("{container}:{to}"))
        .output()
        .expect("docker cp");
    assert!(
        out.status.success(),
        "docker cp {}: {}",
        from.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_aarch64_agent_deploys_nats_under_emulation() {
    let (agent, qemu) = match prerequisites() {
        Ok(found) => found,
        Err(why) => {
            eprintln!("SKIPPED: no aarch64 agent to prove: {why}");
            return;
        }
    };
    let fleet = Fleet::up("aarch64", 1, 0);
    let container = &fleet.host("h1").container;
    docker_cp(&agent, container, AGENT);
    docker_cp(&qemu, container, QEMU);
    // The build really is aarch64: ELF machine 183 (EM_AARCH64).
    let machine = fleet.exec("h1", &format!("od -An -tu2 -j18 -N2 {AGENT}"));
    assert_eq!(machine.trim(), "183", "{AGENT} is not an aarch64 ELF file");

    let wrapper = fleet.path("agent-aarch64");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\necho \"$1 $2\" >> {CALLS}\nexec {QEMU} {AGENT} \"$@\"\n"),
    )
    .unwrap();
    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.roles = &["nats"];
    options.extra = "[components.nats]\nsource = \"os\"\n";
    let inventory = fleet.inventory("inv.toml", &options);
    let args = ["deploy", "--agent-binary", wrapper.to_str().unwrap()];

    let first = mp_remote(Some(&inventory), &args);
    println!(
        "deploy with the aarch64 agent:\n{}{}",
        first.stdout, first.stderr
    );
    assert_eq!(first.code, 0, "{first:?}");
    let health = fleet.exec("h1", "curl -sf http://127.0.0.1:8222/healthz");
    assert!(health.contains("ok"), "{health}");
    let streams = fleet.exec("h1", "curl -sf 'http://127.0.0.1:8222/jsz?streams=true'");
    assert!(
        streams.contains("MARKET_DATA") && streams.contains("ORDERBOOK_SNAP"),
        "{streams}"
    );
    // The emulated build ran the host's side: its calls are in the wrapper's log.
    let calls = fleet.exec("h1", &format!("cat {CALLS}"));
    assert!(calls.lines().any(|l| l.starts_with("agent ")), "{calls}");

    assert_nothing_changed(&mp_remote(Some(&inventory), &args));
}
