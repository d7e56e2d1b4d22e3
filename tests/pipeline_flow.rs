//! The whole pipeline on one real host (all four roles): the deploy proves that rows arrive in
//! every table; then storage stopped, ClickHouse stopped and storage killed with -9 in the
//! middle of a batch while the collector keeps publishing. Afterwards every trade and order
//! book sequence the collector published is in ClickHouse.

use crate::support::pipeline::{Pipeline, TABLES};
use crate::support::{assert_nothing_changed, mp_remote, recap_counts, wait_for, Fleet};

const COMPONENTS: &str =
    "[components.nats]\nsource = \"os\"\n\n[components.clickhouse]\nsource = \"os\"\n";

#[test]
fn pipeline_survives_outages_without_losing_a_message() {
    let fleet = Fleet::up("flow", 1, 0);
    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.roles = &["nats", "clickhouse", "storage", "collector"];
    options.extra = COMPONENTS;
    let inventory = fleet.inventory("inv.toml", &options);

    // --check on the fresh host counts what the deploy then changes, services included.
    let preview = mp_remote(Some(&inventory), &["deploy", "--check"]);
    assert_eq!(preview.code, 0, "{preview:?}");

    let first = mp_remote(Some(&inventory), &["deploy"]);
    println!("first deploy:\n{}{}", first.stdout, first.stderr);
    // Exit 0 includes layer 5: rows arrived in every table within its deadline.
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(
        recap_counts(&first.stdout, "h1").1,
        recap_counts(&preview.stdout, "h1").1,
        "--check predicted the changes:\n{}",
        preview.stdout
    );
    let p = Pipeline {
        fleet: &fleet,
        clickhouse: "h1",
        nats: &["h1"],
        storage: "h1",
        collector: "h1",
    };
    let rows = p.row_counts();
    for table in TABLES {
        assert!(
            rows.get(table).copied().unwrap_or(0) > 0,
            "{table}: {rows:?}"
        );
    }

    the_pipeline_is_secured(&fleet, &first.stdout);

    // A second deploy changes nothing and restarts neither service.
    let started = || ["mp-storage", "mp-collector"].map(|u| fleet.started_at("h1", u));
    let before = started();
    let second = mp_remote(Some(&inventory), &["deploy"]);
    assert_nothing_changed(&second);
    assert_eq!(started(), before, "a pipeline service was restarted");

    // Storage down while the collector publishes: the consumer keeps the backlog.
    p.systemctl(p.storage, "stop mp-storage");
    // The ids it stored are kept for the next start (a redelivery stores nothing twice).
    assert!(
        fleet.holds(
            p.storage,
            "[ $(stat -c %s /var/lib/mp-storage/seen-MARKET_DATA) -gt 16 ]"
        ),
        "storage saved no ids at its stop"
    );
    p.wait_for_messages("1000 messages published while storage is down", 1000);
    p.systemctl(p.storage, "start mp-storage");
    p.wait_healthy(p.storage, 8085);

    // ClickHouse down: storage retries (and says so in its health), then catches up.
    p.systemctl(p.clickhouse, "stop clickhouse-server");
    wait_for("storage to report ClickHouse down", 60, || {
        let health = p.health(p.storage, 8085);
        health["clickhouse"] != "ok" && health["status"] != "healthy"
    });
    p.wait_for_messages("600 messages published while ClickHouse is down", 600);
    p.systemctl(p.clickhouse, "start clickhouse-server");
    p.wait_healthy(p.storage, 8085);

    // kill -9 while a batch is in flight (fetched, not yet acked); systemd restarts it. A
    // healthy storage holds a batch for milliseconds, too briefly to catch by polling: with
    // ClickHouse stopped it holds one while it retries the insert.
    p.systemctl(p.clickhouse, "stop clickhouse-server");
    wait_for("storage to hold an unacked batch", 60, || {
        p.health(p.storage, 8085)["pending"].as_u64().unwrap_or(0) > 0
    });
    p.systemctl(p.storage, "kill -s KILL mp-storage");
    p.systemctl(p.clickhouse, "start clickhouse-server");
    p.wait_healthy(p.storage, 8085);

    p.assert_nothing_lost();
    a_backlog_does_not_wait_for_the_flush_interval(&p);

    // Bring the collector back: a deploy starts what was stopped, and reports it.
    let again = mp_remote(Some(&inventory), &["deploy"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(
        again.stdout.contains("start mp-collector"),
        "{}",
        again.stdout
    );

    update_with_a_new_build(&fleet, &inventory);
    day2_of_the_pipeline_services(&fleet, &inventory);
}

/// A backlog is stored as fast as it can be, its tail included: a second storage with a
/// 60 s `flush_interval` (its own consumers, into a copy of the tables) stores the whole of
/// the streams (the collector is stopped) in far less than 60 s. Before, the tail's fetch waited
/// out the interval for a batch that could not fill.
fn a_backlog_does_not_wait_for_the_flush_interval(p: &Pipeline) {
    let (fleet, host) = (p.fleet, p.storage);
    // What the streams hold now (their limits may have dropped the oldest): a new consumer
    // is given all of it.
    let jsz = fleet.exec(host, "curl -sf 'http://127.0.0.1:8222/jsz?streams=true'");
    let jsz: serde_json::Value = serde_json::from_str(&jsz).expect("jsz");
    let held: u64 = jsz["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["stream_detail"].as_array().into_iter().flatten())
        .map(|s| s["state"]["messages"].as_u64().unwrap_or(0))
        .sum();
    assert!(held > 0, "{jsz}");
    // The package's passwordless `default` user, allowed on loopback, makes the copy.
    let sql = |query: &str| {
        fleet.exec(
            host,
            &format!("curl -sf http://127.0.0.1:8123/ --data-binary '{query}'"),
        )
    };
    sql("CREATE DATABASE flushtest");
    for t in TABLES {
        sql(&format!(
            "CREATE TABLE flushtest.{t} AS marketprism_hot.{t}"
        ));
    }
    fleet.exec(
        host,
        r#"set -e
: > /tmp/flushtest-empty
{ echo 'flush_interval = "60s"'; echo 'consumer_prefix = "mp-flushtest"'
  sed -e 's/:8085"/:18085"/; s/:9094"/:19094"/' \
      -e '/^\[clickhouse\]/,${s/^database = .*/database = "flushtest"/; s/^user = .*/user = "default"/; s|^password_file = .*|password_file = "/tmp/flushtest-empty"|}' \
      /etc/marketprism/storage.toml; } > /tmp/flushtest.toml
systemd-run --unit mp-flushtest --collect /opt/marketprism/current/mp-remote service storage --config /tmp/flushtest.toml"#,
    );
    let started = std::time::Instant::now();
    let health = loop {
        let health = p.health(host, 18085);
        // A message that is not MarketPrism's (the security checks publish one) is rejected.
        let count = |k: &str| health[k].as_u64().unwrap_or(0);
        if count("acked") + count("rejected") >= held {
            break health;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the second storage did not store the {held} messages of the streams within 30 s: {health}\n{}",
            fleet.exec(host, "journalctl -u mp-flushtest --no-pager | tail -n 20")
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    fleet.exec(host, "systemctl stop mp-flushtest");
    let stored: u64 = TABLES
        .iter()
        .map(|t| {
            let count = sql(&format!("SELECT count() FROM flushtest.{t}"));
            count.trim().parse::<u64>().unwrap_or(0)
        })
        .sum();
    let skipped = ["duplicates_dropped", "rejected"].map(|k| health[k].as_u64().unwrap_or(0));
    assert!(
        stored + skipped.iter().sum::<u64>() >= held,
        "{stored} rows stored for {held} messages: {health}"
    );
    sql("DROP DATABASE flushtest");
}

/// Only the fleet's own clients get in, each only as far as its work needs: seen from the
/// control node, an address outside the fleet, over the host's private address.
fn the_pipeline_is_secured(fleet: &Fleet, deploy_output: &str) {
    use crate::support::wire::{clickhouse_says, nats_says_on};
    let h1 = fleet.host("h1");
    let secret = |file: &str| fleet.exec("h1", &format!("cat {file}")).trim().to_string();

    // A fleet of one host: NATS (client, monitoring) listens on loopback only.
    for port in [4222, 8222] {
        let from_outside = std::net::TcpStream::connect((h1.private_ip.as_str(), port));
        assert!(
            from_outside.is_err(),
            "port {port} open to the control node"
        );
    }
    let listening = fleet.exec("h1", "ss -Hltn 'sport = :4222'");
    assert!(listening.contains("127.0.0.1:4222"), "{listening}");
    let nats_says =
        |login: Option<(&str, &str)>, commands: &str| nats_says_on(fleet, "h1", login, commands);

    // No login, or a wrong one: refused.
    let anonymous = nats_says(None, "SUB trade.> 1\r\n");
    assert!(
        anonymous.contains("-ERR 'Authorization Violation'"),
        "{anonymous}"
    );
    let wrong = nats_says(Some(("collector", "not-the-password")), "");
    assert!(wrong.contains("-ERR 'Authorization Violation'"), "{wrong}");

    // The collector publishes its data, and can neither read it nor touch the streams.
    let collector = secret("/etc/marketprism/collector-nats-password");
    let said = nats_says(
        Some(("collector", &collector)),
        "PUB trade.test.spot.X 2\r\nhi\r\nSUB trade.> 1\r\nSUB $JS.API.> 2\r\n\
         PUB $JS.API.STREAM.DELETE.MARKET_DATA 0\r\n\r\n",
    );
    assert!(said.contains("PONG"), "{said}");
    assert!(!said.contains("Publish to \"trade.test.spot.X\""), "{said}");
    for refused in [
        "Permissions Violation for Subscription to \"trade.>\"",
        "Permissions Violation for Subscription to \"$JS.API.>\"",
        "Permissions Violation for Publish to \"$JS.API.STREAM.DELETE.MARKET_DATA\"",
    ] {
        assert!(said.contains(refused), "{refused}: {said}");
    }
    // The storage consumes, and cannot publish market data.
    let storage = secret("/etc/marketprism/storage-nats-password");
    let said = nats_says(
        Some(("storage", &storage)),
        "PUB trade.test.spot.X 2\r\nhi\r\n",
    );
    assert!(
        said.contains("Permissions Violation for Publish to \"trade.test.spot.X\""),
        "{said}"
    );

    // ClickHouse: the pipeline's user with its right password, from outside the fleet: refused.
    let password = secret("/etc/marketprism/clickhouse-password");
    let (status, body) =
        clickhouse_says(&format!("{}:8123", h1.private_ip), "marketprism", &password);
    println!("ClickHouse from the control node: {status}: {body}");
    assert!(!status.contains(" 200 "), "{status}: {body}");
    assert!(
        body.contains("not allowed") || body.contains("Authentication failed"),
        "{status}: {body}"
    );
    // The package's passwordless default user: from the host itself only.
    let (status, body) = clickhouse_says(&format!("{}:8123", h1.private_ip), "default", "");
    assert!(
        !status.contains(" 200 ") && body.contains("not allowed"),
        "{status}: {body}"
    );
    // It listens on loopback and the private address only.
    let listening = fleet.exec("h1", "ss -Hltn 'sport = :8123'");
    assert!(!listening.contains("0.0.0.0:8123"), "{listening}");
    assert!(
        listening.contains(&format!("{}:8123", h1.private_ip)),
        "{listening}"
    );

    // No secret in the output, the run's record or the host logs.
    let mut secrets = vec![password, collector, storage];
    secrets.push(secret("/etc/marketprism/nats-secret"));
    secrets.push(secret("/etc/marketprism/nats-admin-password"));
    let runs = fleet.path(".mp-remote/runs");
    for s in &secrets {
        assert_eq!(s.len(), 32, "a generated secret");
        assert!(
            !deploy_output.contains(s.as_str()),
            "the deploy printed a secret"
        );
        for file in crate::support::runs::files_under(&runs) {
            let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
            assert!(
                !text.contains(s.as_str()),
                "{} holds a secret",
                file.display()
            );
        }
    }
    assert_eq!(
        fleet.exec("h1", "stat -c '%a %U:%G' /etc/marketprism/nats-secret /etc/marketprism/nats-server.conf /etc/marketprism/collector-nats-password"),
        "600 root:root\n640 root:nats\n640 root:marketprism\n"
    );
}

/// `update --agent-binary` with another build: the release switches (the old one kept as
/// `previous`) and only the two pipeline services restart.
fn update_with_a_new_build(fleet: &Fleet, inventory: &std::path::Path) {
    // Another build, as far as any checksum can tell: one byte past the end of the ELF file.
    let next = fleet.path("mp-remote-next");
    let mut bytes = std::fs::read(env!("CARGO_BIN_EXE_mp-remote")).unwrap();
    bytes.push(b'\n');
    std::fs::write(&next, bytes).unwrap();
    let started = || {
        [
            "nats-server",
            "clickhouse-server",
            "mp-storage",
            "mp-collector",
        ]
        .map(|unit| fleet.started_at("h1", unit))
    };
    let before = started();
    let update = mp_remote(
        Some(inventory),
        &["update", "--agent-binary", next.to_str().unwrap()],
    );
    println!("update:\n{}{}", update.stdout, update.stderr);
    assert_eq!(update.code, 0, "{update:?}");
    assert!(
        update
            .stdout
            .contains("switch /opt/marketprism/current to release"),
        "{}",
        update.stdout
    );
    let after = started();
    assert_eq!(after[..2], before[..2], "a server was restarted");
    assert_ne!(after[2], before[2], "mp-storage runs the old release");
    assert_ne!(after[3], before[3], "mp-collector runs the old release");
    let previous = fleet.exec("h1", "readlink /opt/marketprism/previous");
    assert!(
        previous.contains("/opt/marketprism/releases/"),
        "{previous}"
    );
}

/// status, restart, stop and clean know the two services.
fn day2_of_the_pipeline_services(fleet: &Fleet, inventory: &std::path::Path) {
    let status = mp_remote(Some(inventory), &["status", "--json"]);
    assert_eq!(status.code, 0, "{status:?}");
    let host = &status.json()["hosts"][0];
    for service in ["storage", "collector"] {
        assert_eq!(host["services"][service]["running"], true, "{host}");
        assert_eq!(host["services"][service]["healthy"], true, "{host}");
    }
    assert!(host["tables"]["trades"].as_u64().unwrap_or(0) > 0, "{host}");

    let before = fleet.started_at("h1", "mp-storage");
    let restart = mp_remote(Some(inventory), &["restart", "--service", "storage"]);
    assert_eq!(restart.code, 0, "{restart:?}");
    assert_ne!(fleet.started_at("h1", "mp-storage"), before, "{restart:?}");

    let stop = mp_remote(Some(inventory), &["stop", "--service", "collector"]);
    assert!(stop.stdout.contains("mp-collector stopped"), "{stop:?}");
    let status = mp_remote(Some(inventory), &["status", "--json"]);
    assert_eq!(status.code, 2, "{status:?}");

    let clean = mp_remote(Some(inventory), &["clean", "--yes"]);
    assert_eq!(clean.code, 0, "{clean:?}");
    let left = fleet.exec(
        "h1",
        "for u in mp-storage mp-collector; do systemctl cat $u >/dev/null 2>&1 && echo unit:$u; done; \
         for f in /opt/marketprism/current /opt/marketprism/releases /etc/marketprism; do test -e $f && echo file:$f; done; \
         getent passwd marketprism >/dev/null && echo user:marketprism; true",
    );
    assert_eq!(left.trim(), "", "left behind after clean");
}

/// ClickHouse on one host, the pipeline services on another: the storage host's private
/// address is let in as `marketprism` (the deploy's data-flow check proves rows arrive), and
/// the package's passwordless `default` user is not, even from inside the fleet.
#[test]
fn clickhouse_lets_the_storage_host_in_and_nothing_else() {
    let fleet = Fleet::up("chnet", 2, 0);
    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.extra = COMPONENTS;
    let inventory = fleet.inventory("inv.toml", &options);
    crate::support::fleet::set_roles(&inventory, |host| {
        match host {
            "h1" => "[\"nats\", \"clickhouse\"]",
            _ => "[\"storage\", \"collector\"]",
        }
        .to_string()
    });
    let first = mp_remote(Some(&inventory), &["deploy"]);
    println!("deploy:\n{}{}", first.stdout, first.stderr);
    assert_eq!(first.code, 0, "{first:?}");

    let ch = format!("http://{}:8123/", fleet.host("h1").private_ip);
    let select = |user: &str, key: &str| {
        fleet.exec(
            "h2",
            &format!("curl -s -H 'X-ClickHouse-User: {user}' -H \"X-ClickHouse-Key: {key}\" --data-binary 'SELECT 1' {ch}"),
        )
    };
    let storage = select(
        "marketprism",
        "$(cat /etc/marketprism/storage-clickhouse-password)",
    );
    assert_eq!(storage.trim(), "1", "{storage}");
    let default = select("default", "");
    assert!(default.contains("not allowed"), "{default}");
}
