//! `deploy` with no `-i` on this very machine (the embedded inventory/local.toml): on a host
//! without systemd, such as CI's, the agent's own supervisor runs NATS and ClickHouse from
//! Debian's packages. Needs root, as `.ci/run` has. The servers are stopped again at the end
//! unless they were already running before the test (a developer's own deploy stays up), so
//! every run starts from the same place.

use std::time::Duration;

use mp_remote::agent::supervise::{self, Paths};

use crate::support::{assert_nothing_changed, mp_remote, wait_for};

const SERVERS: [&str; 4] = [
    "mp-collector",
    "mp-storage",
    "nats-server",
    "clickhouse-server",
];

/// The pid of the server `name` its supervisor runs now.
fn server_pid(name: &str) -> Option<u32> {
    supervise::inspect(name).supervised_server()
}

/// Stops, when dropped (after a failed assertion too), the supervisors this test started.
struct StopServers;

impl Drop for StopServers {
    fn drop(&mut self) {
        for name in SERVERS {
            if let Some(pid) = supervise::read_pid(&Paths::of(name).supervisor_pid) {
                kill("TERM", pid);
                wait_for(&format!("{name}'s supervisor to stop"), 60, || {
                    !supervise::alive(pid)
                });
            }
        }
    }
}

/// Through the shell's own `kill`: procps' is not on every host.
fn kill(signal: &str, pid: u32) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("kill -{signal} {pid}")])
        .status()
        .is_ok_and(|s| s.success())
}

/// GET (or POST `body`) on a local port; the body of a 2xx answer, else None.
fn http(url: &str, body: Option<&str>) -> Option<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .ok()?;
        let request = match body {
            Some(body) => client.post(url).body(body.to_string()),
            None => client.get(url),
        };
        let response = request.send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.text().await.ok()
    })
}

fn nats_healthy() -> bool {
    http("http://127.0.0.1:8222/healthz", None).is_some_and(|body| {
        serde_json::from_str::<serde_json::Value>(&body).is_ok_and(|v| v["status"] == "ok")
    })
}

#[test]
fn local_deploy_supervises_the_servers_without_systemd() {
    if std::path::Path::new("/run/systemd/system").exists() {
        // systemd runs the servers there; tests/deploy_single.rs covers that path.
        eprintln!("this machine runs systemd: the supervised path does not apply here");
        return;
    }
    let running_before = SERVERS.iter().all(|name| server_pid(name).is_some());
    // Not `then_some`: it would build the guard, drop it at once and stop the servers.
    let _stop = if running_before {
        None
    } else {
        Some(StopServers)
    };

    let first = mp_remote(None, &["deploy"]);
    println!("first deploy:\n{}{}", first.stdout, first.stderr);
    assert_eq!(first.code, 0, "{first:?}");

    assert!(nats_healthy(), "NATS /healthz");
    let jsz = http("http://127.0.0.1:8222/jsz?streams=true", None).unwrap_or_default();
    assert!(
        jsz.contains("MARKET_DATA") && jsz.contains("ORDERBOOK_SNAP"),
        "JetStream streams: {jsz}"
    );
    let tables = http(
        "http://127.0.0.1:8123/",
        Some("SELECT count() FROM system.tables WHERE database = 'marketprism_hot'"),
    );
    assert_eq!(
        tables.as_deref().map(str::trim),
        Some("8"),
        "ClickHouse tables"
    );

    let pids: Vec<Option<u32>> = SERVERS.iter().map(|name| server_pid(name)).collect();
    assert!(pids.iter().all(Option::is_some), "supervised: {pids:?}");

    let second = mp_remote(None, &["deploy"]);
    println!("second deploy:\n{}{}", second.stdout, second.stderr);
    assert_nothing_changed(&second);
    let after: Vec<Option<u32>> = SERVERS.iter().map(|name| server_pid(name)).collect();
    assert_eq!(after, pids, "the second deploy restarted a server");

    // A crash: the supervisor starts a new nats-server and JetStream comes back. 1 s later
    // normally; up to a minute when earlier runs of this test crashed it moments ago (backoff).
    let nats = server_pid("nats-server").expect("nats-server supervised");
    assert!(kill("KILL", nats));
    wait_for("a new nats-server", 90, || {
        server_pid("nats-server").is_some_and(|pid| pid != nats)
    });
    wait_for("NATS /healthz after the restart", 30, nats_healthy);
    let log = supervise::log_since("nats-server", 0);
    assert!(
        log.contains(&format!("nats-server (pid {nats}) exited (signal: 9")),
        "the supervisor logs why it restarted: {log}"
    );

    // Day-2 commands on this host without systemd: in this same test, so that one test owns
    // the local servers.
    day2_without_systemd();
}

/// `status --json` of the local host: per service `(running, healthy)`.
fn local_status() -> (i32, serde_json::Value) {
    let run = mp_remote(None, &["status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {run:?}"));
    (run.code, json["hosts"][0]["services"].clone())
}

fn running_healthy(services: &serde_json::Value, name: &str) -> (bool, bool) {
    (
        services[name]["running"] == true,
        services[name]["healthy"] == true,
    )
}

/// status, stop, logs, start and restart through mp-remote's supervisor; deploy brings back
/// what stop stopped.
fn day2_without_systemd() {
    // NATS was just killed: storage and the collector reconnect, and say healthy again once
    // they have stored and published since (their health looks at the last 10 s).
    // The status that said so is the one checked: asking again could catch the collector
    // between two health windows on a loaded machine (CI saw that once).
    let mut healthy = None;
    wait_for("every service healthy after the NATS crash", 90, || {
        let (code, services) = local_status();
        healthy = Some(services);
        code == 0
    });
    let services = healthy.unwrap_or_default();
    for name in ["nats", "clickhouse"] {
        assert_eq!(running_healthy(&services, name), (true, true), "{services}");
    }

    let start = mp_remote(None, &["start", "--service", "clickhouse"]);
    assert_eq!(start.code, 0, "{start:?}");
    assert!(
        start
            .stdout
            .contains("clickhouse-server already running, healthy"),
        "{start:?}"
    );

    let stop = mp_remote(None, &["stop", "--service", "nats"]);
    println!("stop:\n{}{}", stop.stdout, stop.stderr);
    assert_eq!(stop.code, 0, "{stop:?}");
    assert!(stop.stdout.contains("nats-server stopped"), "{stop:?}");
    assert_eq!(
        supervise::inspect("nats-server"),
        supervise::Running::default()
    );
    let again = mp_remote(None, &["stop", "--service", "nats"]);
    assert!(
        again.code == 0 && again.stdout.contains("nats-server already stopped"),
        "{again:?}"
    );

    let (code, services) = local_status();
    assert_eq!(code, 2, "{services}");
    assert_eq!(running_healthy(&services, "nats"), (false, false));
    assert_eq!(running_healthy(&services, "clickhouse"), (true, true));
    let status = mp_remote(None, &["status"]);
    assert!(
        status
            .stdout
            .contains("nats-server not running (mp-remote supervisor: inactive)")
            && status
                .stdout
                .contains("start it with `mp-remote start --service nats`"),
        "{status:?}"
    );

    let logs = mp_remote(None, &["logs", "--service", "nats", "-n", "5"]);
    println!("logs:\n{}{}", logs.stdout, logs.stderr);
    assert_eq!(logs.code, 0, "{logs:?}");
    assert_eq!(logs.stdout.lines().count(), 5, "{logs:?}");
    assert!(
        logs.stdout.contains("stopped supervising nats-server"),
        "{logs:?}"
    );

    // No unit to start: start and restart run again the command line deploy's supervisor
    // was started with, so the next deploy finds everything as it wants it.
    let start = mp_remote(None, &["start", "--service", "nats"]);
    println!("start:\n{}{}", start.stdout, start.stderr);
    assert_eq!(start.code, 0, "{start:?}");
    assert!(
        start.stdout.contains("nats-server started, healthy after"),
        "{start:?}"
    );
    let clickhouse = server_pid("clickhouse-server").expect("clickhouse-server supervised");
    let restart = mp_remote(None, &["restart", "--service", "clickhouse"]);
    println!("restart:\n{}{}", restart.stdout, restart.stderr);
    assert_eq!(restart.code, 0, "{restart:?}");
    assert!(
        server_pid("clickhouse-server").is_some_and(|pid| pid != clickhouse),
        "restart did not start a new clickhouse-server"
    );

    let deploy = mp_remote(None, &["deploy"]);
    println!("deploy:\n{}{}", deploy.stdout, deploy.stderr);
    assert_nothing_changed(&deploy);
    // The collector saw NATS go away: degraded until 10 s of clean publishing have passed.
    wait_for("every service healthy again", 90, || local_status().0 == 0);
    let (_, services) = local_status();
    assert_eq!(running_healthy(&services, "nats"), (true, true));
}
