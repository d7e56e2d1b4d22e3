//! `deploy` on one real host: NATS JetStream and ClickHouse from Debian's packages, the schema
//! and the streams; then a second deploy and `--check` that change nothing.

use crate::support::{assert_nothing_changed, mp_remote, recap_counts, Fleet};

const COMPONENTS: &str =
    "[components.nats]\nsource = \"os\"\n\n[components.clickhouse]\nsource = \"os\"\n";

#[test]
fn deploy_single_host_then_nothing_changes() {
    let fleet = Fleet::up("deploy1", 1, 0);
    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.roles = &["nats", "clickhouse"];
    options.extra = COMPONENTS;
    let inventory = fleet.inventory("inv.toml", &options);

    // On the fresh host, --check changes nothing and counts what the deploy then changes.
    let preview = mp_remote(Some(&inventory), &["deploy", "--check"]);
    assert_eq!(preview.code, 0, "{preview:?}");
    assert_eq!(
        fleet
            .exec("h1", "command -v nats-server || echo none")
            .trim(),
        "none"
    );
    let would = recap_counts(&preview.stdout, "h1").1;

    let first = mp_remote(Some(&inventory), &["deploy"]);
    println!("first deploy:\n{}{}", first.stdout, first.stderr);
    assert_eq!(first.code, 0, "{first:?}");
    assert!(first.stdout.contains("changed"), "{}", first.stdout);
    assert_eq!(
        recap_counts(&first.stdout, "h1").1,
        would,
        "--check predicted the changes"
    );

    // NATS healthy, JetStream with both streams; ClickHouse with the 8 tables.
    let health = fleet.exec("h1", "curl -sf http://127.0.0.1:8222/healthz");
    assert!(
        health.contains(r#""status":"ok""#) || health.contains(r#""status": "ok""#),
        "{health}"
    );
    let jsz = fleet.exec("h1", "curl -sf 'http://127.0.0.1:8222/jsz?streams=true'");
    assert!(
        jsz.contains("MARKET_DATA") && jsz.contains("ORDERBOOK_SNAP"),
        "{jsz}"
    );
    let tables = fleet.exec(
        "h1",
        "curl -sf --data-binary \"SELECT count() FROM system.tables WHERE database = 'marketprism_hot'\" http://127.0.0.1:8123/",
    );
    assert_eq!(tables.trim(), "8");
    let listening = fleet.exec("h1", "ss -Htln");
    assert!(
        listening.contains("127.0.0.1:8123")
            && listening.contains(&format!("{}:8123", fleet.host("h1").private_ip))
            && !listening.contains("0.0.0.0:8123"),
        "ClickHouse listens on loopback and the private address: {listening}"
    );
    for port in [4222, 8222] {
        assert!(
            listening.contains(&format!("127.0.0.1:{port}"))
                && !listening.contains(&format!("0.0.0.0:{port}"))
                && !listening.contains(&format!("*:{port}")),
            "NATS of a one-host fleet listens on loopback only: {listening}"
        );
    }

    // The deploy left the probe's version cache filled (the probe before it found no
    // servers), so the re-run below asks no binary its version: the cached answer is what
    // the binary says. (ClickHouse 18.16 has no `--version`: its version is the package's.)
    let cached = fleet.exec(
        "h1",
        "tail -n 1 /var/lib/mp-remote/bin/version-cache-nats-server",
    );
    let asked = fleet.exec("h1", "nats-server --version | head -n 1");
    assert!(
        asked.contains("v2.") && cached.trim() == asked.trim(),
        "cache {cached:?}, binary {asked:?}"
    );
    assert!(fleet.holds(
        "h1",
        "test -f /var/lib/mp-remote/bin/version-cache-clickhouse-server"
    ));

    let started = |fleet: &Fleet| {
        ["nats-server", "clickhouse-server"].map(|unit| fleet.started_at("h1", unit))
    };
    let first_started = started(&fleet);

    let second = mp_remote(Some(&inventory), &["deploy"]);
    println!("second deploy:\n{}{}", second.stdout, second.stderr);
    assert_nothing_changed(&second);
    assert_eq!(started(&fleet), first_started, "a server was restarted");

    let check = mp_remote(Some(&inventory), &["deploy", "--check"]);
    assert_nothing_changed(&check);

    // update: installs nothing and, with nothing new, changes nothing.
    let update = mp_remote(Some(&inventory), &["update"]);
    assert_nothing_changed(&update);
    // A new stream limit: updated in place, no server restarted.
    let mut text = std::fs::read_to_string(&inventory).unwrap();
    text.push_str("\n[streams]\nmax_age_secs = 86400\n");
    std::fs::write(&inventory, text).unwrap();
    let update = mp_remote(Some(&inventory), &["update"]);
    assert_eq!(update.code, 0, "{update:?}");
    assert!(
        update.stdout.contains("max_age 48h -> 24h"),
        "{}",
        update.stdout
    );
    assert_eq!(started(&fleet), first_started, "a server was restarted");

    // The generated ClickHouse password appears in no output.
    let secret = fleet.exec("h1", "cat /etc/marketprism/clickhouse-password");
    let secret = secret.trim();
    assert_eq!(secret.len(), 32);
    for run in [&preview, &first, &second, &check, &update] {
        assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret));
    }

    // A hand edit on the host: --check --diff shows the change deploy would make, as a
    // unified diff, and makes none; the password file's content never shows.
    let conf = "/etc/marketprism/nats-server.conf";
    fleet.exec("h1", &format!("echo '# edited by hand' >> {conf}"));
    let diff = mp_remote(Some(&inventory), &["deploy", "--check", "--diff"]);
    println!("deploy --check --diff:\n{}{}", diff.stdout, diff.stderr);
    assert_eq!(diff.code, 0, "{diff:?}");
    assert!(
        diff.stdout.contains(&format!("--- {conf}"))
            && diff.stdout.contains(&format!("+++ {conf}")),
        "{}",
        diff.stdout
    );
    assert!(diff.stdout.contains("-# edited by hand"), "{}", diff.stdout);
    assert!(!diff.stdout.contains(secret) && !diff.stderr.contains(secret));
    assert!(fleet.holds("h1", &format!("grep -q 'edited by hand' {conf}")));
    // Without --diff, the same check prints no diff.
    let plain = mp_remote(Some(&inventory), &["deploy", "--check"]);
    assert!(
        !plain.stdout.contains("-# edited by hand"),
        "{}",
        plain.stdout
    );
}
