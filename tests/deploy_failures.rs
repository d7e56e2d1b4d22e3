//! Deploys that meet trouble on real hosts: a foreign process on a port, an interrupted dpkg,
//! an SSH connection cut mid-install (with and without its agent), a full disk under
//! ClickHouse.

use crate::support::{assert_nothing_changed, mp_remote, wait_for, Fleet};

const OS_SOURCES: &str =
    "[components.nats]\nsource = \"os\"\n\n[components.clickhouse]\nsource = \"os\"\n";

/// The hint of a deploy whose agent stopped before finishing.
const DEPLOY_AGAIN: &str = "deploy again: the next run resumes where this one stopped";

#[test]
fn port_held_by_a_foreign_process_fails_only_that_host() {
    let fleet = Fleet::up("port", 2, 0);
    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.extra = OS_SOURCES;
    let inventory = fleet.inventory("inv.toml", &options);
    // Someone else's server on 4222 (perl is in every Debian).
    fleet.exec(
        "h2",
        "setsid perl -MIO::Socket::INET -e 'my $s = IO::Socket::INET->new(LocalPort => 4222, Listen => 5, ReuseAddr => 1) or die; sleep 3600' >/dev/null 2>&1 < /dev/null &",
    );
    wait_for("the foreign listener", 10, || {
        fleet
            .exec("h2", "ss -Htln 'sport = :4222'")
            .contains("4222")
    });

    let run = mp_remote(Some(&inventory), &["deploy"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stdout
            .contains("port 4222 (NATS client) is already in use by perl (pid"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("does not kill"), "{}", run.stdout);
    // The foreign process lives on; the other host finished its servers phase, and the
    // streams wait for a whole cluster.
    assert!(run.stdout.contains("streams not created"), "{}", run.stdout);
    assert!(fleet
        .exec("h2", "ss -Htlnp 'sport = :4222'")
        .contains("perl"));
    let h1 = fleet.exec("h1", "systemctl is-active nats-server");
    assert_eq!(h1.trim(), "active");
    // Two fresh NATS nodes start together, after their servers plans: h1's started, and
    // h2's record lists its start as skipped, not as missing.
    let record = crate::support::rolling::latest_run(&fleet);
    let status = |host: &str, step: &str| {
        record["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == host)
            .and_then(|h| {
                h["steps"]
                    .as_array()?
                    .iter()
                    .find(|s| s["step"] == step)
                    .map(|s| s["status"].as_str().unwrap_or_default().to_string())
            })
    };
    assert_eq!(
        status("h1", "init.nats.service").as_deref(),
        Some("changed")
    );
    assert_eq!(
        status("h2", "init.nats.service").as_deref(),
        Some("skipped"),
        "{}",
        record["hosts"]
    );
}

#[test]
fn interrupted_dpkg_after_a_restart_is_repaired_by_the_next_deploy() {
    let fleet = Fleet::up("dpkg", 1, 0);
    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.extra = OS_SOURCES;
    let inventory = fleet.inventory("inv.toml", &options);
    // What a host restarted in the middle of `apt-get install` looks like: the package
    // unpacked but never configured, and dpkg refusing to go on until someone repairs it.
    fleet.exec(
        "h1",
        "cd /tmp && apt-get update -q >/dev/null && apt-get download -q nats-server >/dev/null && dpkg --unpack nats-server_*.deb >/dev/null",
    );
    assert!(!fleet.exec("h1", "dpkg --audit").trim().is_empty());
    fleet.on_host("stop", "h1");
    fleet.on_host("start", "h1");
    let inventory = {
        // `start` may move the host to another private IP: rewrite the inventory.
        let _ = &inventory;
        fleet.inventory("inv.toml", &options)
    };

    let run = mp_remote(Some(&inventory), &["deploy"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("repaired interrupted dpkg"),
        "{}",
        run.stdout
    );
    assert!(fleet.exec("h1", "dpkg --audit").trim().is_empty());
    let health = fleet.exec("h1", "curl -sf http://127.0.0.1:8222/healthz");
    assert!(health.contains("ok"), "{health}");
}

/// True while apt-get or dpkg runs on `host`.
fn installing(fleet: &Fleet, host: &str) -> bool {
    !fleet
        .exec(host, "pgrep -x apt-get || pgrep -x dpkg || true")
        .trim()
        .is_empty()
}

/// Cuts every SSH session of `host` (not the listener): its connections drop. The brackets
/// keep pkill from matching the shell that runs it.
/// A deploy started in the background, returned once h1's package install runs.
fn deploy_until_installing(
    fleet: &Fleet,
    inventory: &std::path::Path,
) -> std::thread::JoinHandle<crate::support::Run> {
    let inventory = inventory.to_path_buf();
    let deploy = std::thread::spawn(move || mp_remote(Some(&inventory), &["deploy"]));
    wait_for("the package install to start", 60, || {
        installing(fleet, "h1")
    });
    deploy
}

const CUT_SSH: &str = "pkill -KILL -f '[s]shd: root@notty' || true";

#[test]
fn ssh_cut_during_install_is_reattached_and_the_same_deploy_ends_healthy() {
    let fleet = Fleet::up("cut", 1, 0);
    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.roles = &["nats", "clickhouse"];
    options.extra = OS_SOURCES;
    let inventory = fleet.inventory("inv.toml", &options);

    let first = deploy_until_installing(&fleet, &inventory);
    fleet.exec("h1", CUT_SSH);
    let first = first.join().unwrap();
    println!("cut deploy:\n{}{}", first.stdout, first.stderr);
    // The agent went on; the control node reconnected, followed its event log, and went on
    // with the later phases.
    assert_eq!(first.code, 0, "{first:?}");
    assert!(
        first
            .stderr
            .lines()
            .any(|l| l.contains("h1: connection lost during the run")
                && l.ends_with("re-attaching to the agent's event log")),
        "{}",
        first.stderr
    );
    let health = fleet.exec("h1", "curl -sf http://127.0.0.1:8222/healthz");
    assert!(health.contains("ok"), "{health}");
    let tables = fleet.exec(
        "h1",
        "curl -sf --data-binary \"SELECT count() FROM system.tables WHERE database = 'marketprism_hot'\" http://127.0.0.1:8123/",
    );
    assert_eq!(tables.trim(), "8");
    assert!(fleet.exec("h1", "dpkg --audit").trim().is_empty());

    assert_nothing_changed(&mp_remote(Some(&inventory), &["deploy"]));
}

#[test]
fn ssh_cut_with_the_agent_killed_fails_saying_so_then_the_next_deploy_ends_healthy() {
    let fleet = Fleet::up("cutkill", 1, 0);
    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.extra = OS_SOURCES;
    let inventory = fleet.inventory("inv.toml", &options);

    let first = deploy_until_installing(&fleet, &inventory);
    // What an OOM kill of the agent (or a crash) while its connection drops looks like.
    fleet.exec(
        "h1",
        &format!("pkill -KILL -f '[m]p-remote-[0-9a-f]* agent run' || true; {CUT_SSH}"),
    );
    let first = first.join().unwrap();
    println!(
        "deploy with its agent killed:\n{}{}",
        first.stdout, first.stderr
    );
    assert_eq!(first.code, 2, "{first:?}");
    assert!(
        first.stdout.contains("stopped before finishing"),
        "{}",
        first.stdout
    );
    assert!(first.stdout.contains(DEPLOY_AGAIN), "{}", first.stdout);

    // The install the agent left behind may still be ending (or dying without it).
    wait_for("the orphaned package install to end", 300, || {
        !installing(&fleet, "h1")
    });
    let second = mp_remote(Some(&inventory), &["deploy"]);
    assert_eq!(second.code, 0, "{second:?}");
    let health = fleet.exec("h1", "curl -sf http://127.0.0.1:8222/healthz");
    assert!(health.contains("ok"), "{health}");
    assert!(fleet.exec("h1", "dpkg --audit").trim().is_empty());
}

#[test]
fn full_disk_under_clickhouse_is_reported_with_path_and_free_space() {
    let fleet = Fleet::up("disk", 1, 0);
    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.roles = &["nats", "clickhouse"];
    options.extra = OS_SOURCES;
    let inventory = fleet.inventory("inv.toml", &options);
    let first = mp_remote(Some(&inventory), &["deploy"]);
    assert_eq!(first.code, 0, "{first:?}");

    // Drop the schema, then give ClickHouse's metadata folder a tiny, full file system.
    fleet.exec(
        "h1",
        "set -e
curl -sf --data-binary 'DROP DATABASE marketprism_hot' http://127.0.0.1:8123/
systemctl stop clickhouse-server
cp -a /var/lib/clickhouse/metadata /tmp/metadata
mount -t tmpfs -o size=256k tmpfs /var/lib/clickhouse/metadata
cp -a /tmp/metadata/. /var/lib/clickhouse/metadata/
chown clickhouse:clickhouse /var/lib/clickhouse/metadata
dd if=/dev/zero of=/var/lib/clickhouse/metadata/filler bs=4k 2>/dev/null || true
systemctl start clickhouse-server",
    );

    let run = mp_remote(Some(&inventory), &["deploy"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stdout.contains("disk full"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("/var/lib/clickhouse/metadata: 0 KiB free of 256 KiB"),
        "{}",
        run.stdout
    );
    fleet.exec("h1", "umount /var/lib/clickhouse/metadata || true");
}

#[test]
fn an_agent_needing_a_newer_glibc_is_refused_before_it_is_pushed() {
    let fleet = crate::support::fleet::shared();
    let known_hosts = fleet.path("glibc-known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.only = &["h1"];
    options.extra = OS_SOURCES;
    let inventory = fleet.inventory("glibc.toml", &options);
    // A stand-in for a build made on a newer system than the host.
    let agent = fleet.path("future-agent");
    std::fs::write(&agent, b"\x7fELF...GLIBC_2.2.5\0GLIBC_2.99\0").unwrap();
    let agent_arg = agent.to_string_lossy().into_owned();
    let run = mp_remote(Some(&inventory), &["deploy", "--agent-binary", &agent_arg]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stdout
            .contains("it needs glibc 2.99 and the host has 2.36"),
        "{}",
        run.stdout
    );
    assert!(fleet
        .exec("h1", "ls /var/lib/mp-remote/bin 2>/dev/null || true")
        .trim()
        .is_empty());
}
