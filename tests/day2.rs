//! Day-2 commands on one real deployed host, in one sequence (one fleet keeps it fast): status,
//! stop/start/restart, logs, clean (refused without --yes, then done, then a no-op), a deploy
//! that finds the kept data, and a purge after which a deploy still works.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use mp_remote::transport::shell::quote;

use crate::support::{mp_remote, Fleet};

const COMPONENTS: &str =
    "[components.nats]\nsource = \"os\"\n\n[components.clickhouse]\nsource = \"os\"\n";

/// The `status --json` document, pinned: an unknown field fails the test (README documents it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusDoc {
    hosts: Vec<HostDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostDoc {
    name: String,
    status: String,
    error: Option<String>,
    services: Option<BTreeMap<String, ServiceDoc>>,
    streams: Option<BTreeMap<String, StreamDoc>>,
    tables: Option<BTreeMap<String, u64>>,
    /// The pipeline release the host runs; null on a host without one.
    #[allow(dead_code)]
    release: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceDoc {
    running: bool,
    healthy: bool,
    version: Option<String>,
    ports: Vec<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamDoc {
    messages: u64,
}

/// `status --json` on the one host: its exit code and its entry.
fn status(inventory: &Path) -> (i32, HostDoc) {
    let run = mp_remote(Some(inventory), &["status", "--json"]);
    let doc: StatusDoc =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("status --json: {e}\n{run:?}"));
    assert_eq!(doc.hosts.len(), 1, "{run:?}");
    let host = doc.hosts.into_iter().next().unwrap();
    assert_eq!(host.name, "h1");
    (run.code, host)
}

fn service<'a>(host: &'a HostDoc, name: &str) -> &'a ServiceDoc {
    &host.services.as_ref().expect("services")[name]
}

fn assert_all_healthy(code: i32, host: &HostDoc) {
    assert_eq!(code, 0, "{host:?}");
    assert_eq!((host.status.as_str(), host.error.as_deref()), ("ok", None));
    for (name, version, ports) in [
        ("nats", "2.9.10", [4222, 8222]),
        ("clickhouse", "18.16.1", [8123, 9000]),
    ] {
        let s = service(host, name);
        assert!(s.running && s.healthy, "{name}: {s:?}");
        assert_eq!(s.version.as_deref(), Some(version), "{name}");
        for port in ports {
            assert!(s.ports.contains(&port), "{name} listens on {port}: {s:?}");
        }
    }
}

fn deploy(inventory: &Path) {
    let run = mp_remote(Some(inventory), &["deploy"]);
    assert_eq!(run.code, 0, "deploy: {run:?}");
}

#[test]
fn day2_status_control_logs_clean_and_redeploy() {
    let fleet = Fleet::up("day2", 1, 0);
    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.roles = &["nats", "clickhouse"];
    options.extra = COMPONENTS;
    let inventory = fleet.inventory("inv.toml", &options);
    deploy(&inventory);

    // One row and one message, to see real counts and that clean keeps them.
    fleet.exec(
        "h1",
        "curl -sSf --data-binary 'INSERT INTO marketprism_hot.trades FORMAT JSONEachRow {}' http://127.0.0.1:8123/",
    );
    // No NATS client on the host: speak the text protocol over bash's /dev/tcp, logged in as
    // the agent's admin user (NATS refuses anonymous clients).
    let publish = r#"p=$(cat /etc/marketprism/nats-admin-password); exec 3<>/dev/tcp/127.0.0.1/4222; printf 'CONNECT {"verbose":false,"user":"mp-admin","pass":"%s"}\r\nPUB trade.test 2\r\nhi\r\nPING\r\n' "$p" >&3; timeout 5 grep -m1 -q PONG <&3"#;
    fleet.exec("h1", &format!("bash -c {}", quote(publish)));
    let (code, host) = status(&inventory);
    assert_all_healthy(code, &host);
    let streams = host.streams.as_ref().expect("streams");
    assert_eq!(streams["MARKET_DATA"].messages, 1, "{streams:?}");
    assert_eq!(streams["ORDERBOOK_SNAP"].messages, 0, "{streams:?}");
    let tables = host.tables.as_ref().expect("tables");
    assert_eq!(tables.len(), 8, "{tables:?}");
    assert_eq!(tables["trades"], 1, "{tables:?}");
    let text = mp_remote(Some(&inventory), &["status"]);
    assert_eq!(text.code, 0, "{text:?}");
    assert!(
        text.stdout.contains("MARKET_DATA 1 msgs"),
        "{}",
        text.stdout
    );

    // stop -> exit 2 naming NATS; start -> healthy again.
    let stop = mp_remote(Some(&inventory), &["stop", "--service", "nats"]);
    assert_eq!(stop.code, 0, "{stop:?}");
    assert!(stop.stdout.contains("nats-server stopped"), "{stop:?}");
    assert!(!stop.stdout.contains("clickhouse"), "{stop:?}");
    let (code, host) = status(&inventory);
    assert_eq!(code, 2, "{host:?}");
    assert_eq!(host.status, "failed");
    assert!(!service(&host, "nats").running && !service(&host, "nats").healthy);
    assert!(service(&host, "clickhouse").healthy);
    let error = host.error.unwrap();
    assert!(
        error.contains("nats-server") && error.contains("mp-remote start --service nats"),
        "{error}"
    );
    let start = mp_remote(Some(&inventory), &["start"]);
    assert_eq!(start.code, 0, "{start:?}");
    assert!(
        start.stdout.contains("nats-server started, healthy after"),
        "{start:?}"
    );
    assert!(
        start.stdout.contains("clickhouse-server already running"),
        "{start:?}"
    );
    let (code, host) = status(&inventory);
    assert_all_healthy(code, &host);

    // restart restarts both, for real.
    let before = (
        fleet.started_at("h1", "nats-server"),
        fleet.started_at("h1", "clickhouse-server"),
    );
    let restart = mp_remote(Some(&inventory), &["restart"]);
    assert_eq!(restart.code, 0, "{restart:?}");
    assert_ne!(
        fleet.started_at("h1", "nats-server"),
        before.0,
        "{restart:?}"
    );
    assert_ne!(
        fleet.started_at("h1", "clickhouse-server"),
        before.1,
        "{restart:?}"
    );
    let (code, host) = status(&inventory);
    assert_all_healthy(code, &host);

    let logs = mp_remote(Some(&inventory), &["logs", "--service", "nats", "-n", "5"]);
    assert_eq!(logs.code, 0, "{logs:?}");
    let lines: Vec<&str> = logs.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{logs:?}");
    assert!(lines.iter().all(|l| l.starts_with("h1 | ")), "{logs:?}");

    // clean: without a TTY and without --yes it refuses and changes nothing.
    let refused = mp_remote(Some(&inventory), &["clean"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("--yes"), "{refused:?}");
    assert!(
        refused.stdout.contains("/var/lib/clickhouse"),
        "shows the plan: {refused:?}"
    );
    let (code, host) = status(&inventory);
    assert_all_healthy(code, &host);
    fleet.exec("h1", "test -f /etc/marketprism/nats-server.conf");

    let clean = mp_remote(Some(&inventory), &["clean", "--yes"]);
    println!("clean:\n{}{}", clean.stdout, clean.stderr);
    assert_eq!(clean.code, 0, "{clean:?}");
    let gone = fleet.exec(
        "h1",
        "for u in nats-server clickhouse-server; do systemctl cat $u >/dev/null 2>&1 && echo unit:$u; \
         dpkg-query -W -f '${Status}' $u 2>/dev/null | grep -q ' installed$' && echo package:$u; done; \
         for f in /etc/systemd/system/nats-server.service.d/mp-remote.conf /etc/marketprism \
         /etc/clickhouse-server/config.d/mp-listen.xml /etc/clickhouse-server/users.d/mp-users.xml \
         /var/lib/mp-remote; do test -e $f && echo file:$f; done; true",
    );
    assert_eq!(gone.trim(), "", "left behind after clean");
    fleet.exec(
        "h1",
        "test -d /var/lib/clickhouse/metadata/marketprism_hot && test -d /var/lib/nats/jetstream/jetstream",
    );
    let (code, host) = status(&inventory);
    assert_eq!(code, 2, "{host:?}");
    assert!(host.error.unwrap().contains("not installed"));
    let again = mp_remote(Some(&inventory), &["clean", "--yes"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("nothing left to remove"), "{again:?}");

    // deploy again: the data kept is there.
    deploy(&inventory);
    let (code, host) = status(&inventory);
    assert_all_healthy(code, &host);
    let tables = host.tables.unwrap();
    assert_eq!((tables.len(), tables["trades"]), (8, 1), "{tables:?}");
    assert_eq!(host.streams.unwrap()["MARKET_DATA"].messages, 1);

    // --purge-data deletes the data; a deploy after it still works and starts empty.
    let purge = mp_remote(Some(&inventory), &["clean", "--yes", "--purge-data"]);
    assert_eq!(purge.code, 0, "{purge:?}");
    assert!(
        purge
            .stdout
            .contains("deleted the data in /var/lib/clickhouse"),
        "{purge:?}"
    );
    deploy(&inventory);
    let (code, host) = status(&inventory);
    assert_all_healthy(code, &host);
    let tables = host.tables.unwrap();
    assert_eq!((tables.len(), tables["trades"]), (8, 0), "{tables:?}");
    assert_eq!(host.streams.unwrap()["MARKET_DATA"].messages, 0);
}
