//! A host behind a slow and lossy link (200 ms delay each way, 1 Mbit/s, 2% of chunks stalled
//! as a lost segment would stall TCP) between the control node and the host; the host's own
//! downloads from the package mirror are left at full speed. The deploy goes through, its
//! events arrive while it runs, an SSH connection cut in the middle of the install is
//! re-attached through the same link, and a re-run changes nothing.
//!
//! `tc netem` is what the issue names, but this machine's kernel has neither `sch_netem` nor
//! `sch_prio` ("Specified qdisc kind is unknown"), so the link is a user-space proxy
//! (`support::slow_proxy`) in front of the host's sshd.
//!
//! The agent itself travels as a two-line wrapper (`--agent-binary`) around a build copied
//! into the container beforehand: at 1 Mbit/s the debug build's 38 MiB would take five
//! minutes of CI for no more proof (what the upload costs in bytes is `bench/agent_relay.sh`).

use std::process::Command;

use crate::support::runs::{events, run_dirs};
use crate::support::slow_proxy::{self, Link};
use crate::support::{assert_nothing_changed, mp_remote, wait_for, Fleet};

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect(program);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_host_behind_a_slow_lossy_link_deploys_reattaches_and_reruns() {
    let fleet = Fleet::up("netem", 1, 0);
    let host = fleet.host("h1");
    // The agent: this build copied in at full speed, and a wrapper that runs it.
    run(
        "docker",
        &[
            "cp",
            env!("CARGO_BIN_EXE_mp-remote"),
            &format!("{}:/usr/local/lib/mp-remote-real", host.container),
        ],
    );
    let wrapper = fleet.path("agent-wrapper");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\nexec /usr/local/lib/mp-remote-real \"$@\"\n",
    )
    .unwrap();
    let proxy = slow_proxy::start(
        format!("{}:{}", host.address, host.ssh_port),
        Link::slow_and_lossy(),
    );

    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.roles = &["nats", "clickhouse"];
    options.connect_timeout = "30s";
    options.extra =
        "[components.nats]\nsource = \"os\"\n\n[components.clickhouse]\nsource = \"os\"\n";
    let inventory = fleet.inventory("inv.toml", &options);
    let text = std::fs::read_to_string(&inventory).unwrap().replace(
        &format!("port = {}\n", host.ssh_port),
        &format!("port = {proxy}\n"),
    );
    std::fs::write(&inventory, text).unwrap();
    let agent = ["--agent-binary", wrapper.to_str().unwrap()];
    let ping = mp_remote(Some(&inventory), &["ping"]);
    println!("ping behind netem:\n{}", ping.stdout);
    assert_eq!(ping.code, 0, "{ping:?}");

    // A deploy whose SSH connection is cut while the packages install.
    let deploy = {
        let inventory = inventory.clone();
        let args: Vec<String> = ["deploy"]
            .iter()
            .chain(&agent)
            .map(|s| s.to_string())
            .collect();
        std::thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            mp_remote(Some(&inventory), &args)
        })
    };
    wait_for("the package install to start", 300, || {
        !fleet
            .exec("h1", "pgrep -x apt-get || pgrep -x dpkg || true")
            .trim()
            .is_empty()
    });
    fleet.exec("h1", "pkill -KILL -f '[s]shd: root@notty' || true");
    let first = deploy.join().unwrap();
    println!("deploy behind netem:\n{}{}", first.stdout, first.stderr);
    assert_eq!(first.code, 0, "{first:?}");
    assert!(
        first
            .stderr
            .contains("re-attaching to the agent's event log"),
        "{}",
        first.stderr
    );
    let health = fleet.exec("h1", "curl -sf http://127.0.0.1:8222/healthz");
    assert!(health.contains("ok"), "{health}");

    // The live view moved: steps were recorded as they finished, not all at the end.
    let dirs = run_dirs(&fleet.path(".mp-remote/runs"));
    let events = events(dirs.last().unwrap());
    let at = |e: &serde_json::Value| e["time"].as_str().unwrap_or_default().to_string();
    let steps: Vec<String> = events
        .iter()
        .filter(|e| e["event"] == "step_finished")
        .map(at)
        .collect();
    assert!(steps.len() > 10, "{events:#?}");
    let distinct: std::collections::BTreeSet<&str> =
        steps.iter().map(|t| &t[..t.len().min(19)]).collect();
    assert!(
        distinct.len() >= 5,
        "step events spread over the run (seconds seen: {distinct:?})"
    );

    let mut again_args = vec!["deploy"];
    again_args.extend(agent);
    assert_nothing_changed(&mp_remote(Some(&inventory), &again_args));
}
