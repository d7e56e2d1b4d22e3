//! Day 2 of a fleet, on three real hosts (h1: NATS, ClickHouse and storage; h2 and h3: NATS
//! and a collector at 1,000 msgs/s each; R3 streams): a second operator is refused by the
//! fleet lock; a rolling update with a new build and a NATS config change restarts every
//! NATS node one at a time behind health gates; a build that exits at start fails its gate,
//! is rolled back by itself and stops the rollout; `--retry` and `rollback` finish the job;
//! and every trade the collectors published is in ClickHouse once, with no gap.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::support::fleet::set_roles;
use crate::support::pipeline::Pipeline;
use crate::support::rolling::{build, latest_run, release, roll, sha16};
use crate::support::runs::spawn_mp_remote;
use crate::support::{assert_nothing_changed, mp_remote, wait_for, Fleet};

const COMPONENTS: &str =
    "[components.nats]\nsource = \"os\"\n\n[components.clickhouse]\nsource = \"os\"\n";

/// The inventory of the three hosts; `nats_vars` go into every host's vars.
fn inventory(fleet: &Fleet, file: &str, nats_vars: &str) -> PathBuf {
    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.extra = COMPONENTS;
    let path = fleet.inventory(file, &options);
    set_roles(&path, |host| {
        let roles = match host {
            "h1" => "[\"nats\", \"clickhouse\", \"storage\"]",
            _ => "[\"nats\", \"collector\"]",
        };
        format!("{roles}\nvars = {{ collector_rate = 1000{nats_vars} }}")
    });
    path
}

/// Monotonic start of a unit; containers share the kernel, so hosts compare.
fn started(fleet: &Fleet, host: &str, unit: &str) -> u64 {
    let line = fleet.started_at(host, unit);
    line.trim_start_matches("ActiveEnterTimestampMonotonic=")
        .parse()
        .unwrap_or_else(|_| panic!("{host} {unit}: {line}"))
}

#[test]
fn rolling_update_gates_rolls_back_and_loses_nothing() {
    let fleet = Fleet::up("roll", 3, 0);
    let inv = inventory(&fleet, "inv.toml", "");
    let first = mp_remote(Some(&inv), &["deploy"]);
    println!("deploy:\n{}{}", first.stdout, first.stderr);
    assert_eq!(first.code, 0, "{first:?}");
    let original = release(&fleet, "h2");

    // A second operator: a live lease of another run on h2 refuses the whole run at once.
    fleet.exec(
        "h2",
        r#"mkdir -p /run/mp-remote && printf '%s\n' '{"format":1,"owner":"bob@desk","run_id":"20990101-000000-1","command":"deploy","started":"2099-01-01T00:00:00Z","expires":"2100-01-01T00:00:00Z","expires_epoch":4102444800}' > /run/mp-remote/lease.json"#,
    );
    let nats_before = started(&fleet, "h1", "nats-server");
    let refused = mp_remote(Some(&inv), &["update", "--serial", "1"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("h2: held by bob@desk (run 20990101-000000-1, deploy)"),
        "{refused:?}"
    );
    assert_eq!(started(&fleet, "h1", "nats-server"), nats_before);
    assert!(
        !fleet.holds("h1", "test -e /run/mp-remote/lease.json"),
        "the refused run left its lease on h1"
    );
    let released = mp_remote(
        Some(&inv),
        &[
            "lock",
            "release",
            "--limit",
            "h2",
            "--reason",
            "test: bob is gone",
        ],
    );
    assert_eq!(released.code, 0, "{released:?}");

    // A rolling update: a new build and a NATS config change (every node restarts).
    let next = build(&fleet, "mp-remote-next", b"\n");
    let inv2 = inventory(&fleet, "inv2.toml", ", nats_max_store_gib = 6");
    let update = roll(&inv2, &next, &[]);
    println!("rolling update:\n{}{}", update.stdout, update.stderr);
    assert_eq!(update.code, 0, "{update:?}");
    let record = latest_run(&fleet);
    let batches: Vec<(u64, &str, &str, &str)> = record["batches"]
        .as_array()
        .expect("batches in run.json")
        .iter()
        .map(|b| {
            (
                b["index"].as_u64().unwrap(),
                b["group"].as_str().unwrap(),
                b["hosts"][0].as_str().unwrap(),
                b["result"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        batches,
        [
            (1, "nats", "h1", "ok"),
            (2, "nats", "h2", "ok"),
            (3, "nats", "h3", "ok")
        ]
    );
    for (i, host) in ["h1", "h2", "h3"].iter().enumerate() {
        assert_eq!(record["hosts"][i]["batch"], i as u64 + 1, "{host}");
        assert_eq!(release(&fleet, host), sha16(&next), "{host}");
    }
    // One NATS node at a time, each after the one before passed its gate.
    let nats: Vec<u64> = ["h1", "h2", "h3"]
        .iter()
        .map(|h| started(&fleet, h, "nats-server"))
        .collect();
    assert!(
        nats_before < nats[0] && nats[0] < nats[1] && nats[1] < nats[2],
        "{nats:?}"
    );
    for word in ["batch  1/3", "batch  3/3"] {
        assert!(update.stdout.contains(word), "{word}: {}", update.stdout);
    }
    let again = roll(&inv2, &next, &[]);
    assert_nothing_changed(&again);

    // The audit log on h1 has the update, with the releases before and after.
    let audit = mp_remote(Some(&inv2), &["audit", "--host", "h1"]);
    assert_eq!(audit.code, 0, "{audit:?}");
    assert!(
        audit.stdout.contains("update") && audit.stdout.contains(&sha16(&next)),
        "{}",
        audit.stdout
    );

    // A build whose services exit at start: batch 1 fails its gate and is rolled back by
    // itself; the rollout stops there and h2, h3 keep the release they run.
    let broken = fleet.path("mp-remote-broken");
    std::fs::write(
        &broken,
        format!(
            "#!/bin/sh\n# a build whose services exit at start\nif [ \"$1\" = service ]; then echo 'this build exits at start' >&2; exit 1; fi\nexec /var/lib/mp-remote/bin/mp-remote-{} \"$@\"\n",
            sha16(&next)
        ),
    )
    .unwrap();
    let failing = roll(&inv2, &broken, &[]);
    println!("broken update:\n{}{}", failing.stdout, failing.stderr);
    assert_eq!(failing.code, 2, "{failing:?}");
    let record = latest_run(&fleet);
    let results: Vec<&str> = record["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["rolled_back", "skipped", "skipped"]);
    assert!(
        record["stopped"].as_str().unwrap().contains(
            "rollout stopped at batch 1 (nats): h1 failed, over the budget --max-failed 0"
        ),
        "{record}"
    );
    assert!(
        record["hosts"][0]["note"]
            .as_str()
            .unwrap()
            .starts_with("automatic rollback: rolled back to release"),
        "{record}"
    );
    for host in ["h1", "h2", "h3"] {
        assert_eq!(release(&fleet, host), sha16(&next), "{host}");
    }
    assert!(fleet.holds(
        "h1",
        &format!(
            "test -x /opt/marketprism/releases/{}/mp-remote",
            sha16(&broken)
        )
    ));
    // NATS's /healthz says "not current" for moments under this load: wait for a clean look.
    wait_for("the fleet healthy on the old release", 90, || {
        mp_remote(Some(&inv2), &["status", "--json"]).code == 0
    });
    let status = mp_remote(Some(&inv2), &["status", "--json"]);
    assert_eq!(status.json()["hosts"][0]["release"], sha16(&next));

    // --retry needs the same inventory; with it, only the hosts not done run again.
    let other = mp_remote(Some(&inv), &["update", "--retry", "latest"]);
    assert_eq!(other.code, 1, "{other:?}");
    assert!(other.stderr.contains("used another inventory"), "{other:?}");
    let retry = roll(&inv2, &next, &["--retry", "latest"]);
    assert_eq!(retry.code, 0, "{retry:?}");

    // The control node killed mid-rollout: its leases stay, but a --retry of that run takes
    // them over (its process is gone) and finishes the rollout.
    let third = build(&fleet, "mp-remote-third", b"\n\n");
    let third_path = third.to_str().unwrap();
    let mut killed = spawn_mp_remote(
        Some(&inv2),
        &["update", "--serial", "1", "--agent-binary", third_path],
    );
    wait_for("batch 1 to switch h1's release", 240, || {
        release(&fleet, "h1") == sha16(&third)
    });
    killed.kill().unwrap();
    killed.wait().unwrap();
    assert!(fleet.holds("h2", "test -e /run/mp-remote/lease.json"));
    let finish = roll(&inv2, &third, &["--retry", "latest"]);
    println!("retry after kill -9:\n{}{}", finish.stdout, finish.stderr);
    assert_eq!(finish.code, 0, "{finish:?}");
    for host in ["h1", "h2", "h3"] {
        assert_eq!(release(&fleet, host), sha16(&third), "{host}");
        assert!(
            !fleet.holds(host, "test -e /run/mp-remote/lease.json"),
            "{host}"
        );
    }

    // By hand: h3's collector back to the release before the current one.
    let back = mp_remote(Some(&inv2), &["rollback", "--limit", "h3", "--serial", "1"]);
    println!("rollback:\n{}{}", back.stdout, back.stderr);
    assert_eq!(back.code, 0, "{back:?}");
    assert_eq!(release(&fleet, "h3"), sha16(&next));
    assert_eq!(release(&fleet, "h2"), sha16(&third));
    let further = mp_remote(
        Some(&inv2),
        &["rollback", "--limit", "h3", "--to", &original],
    );
    assert_eq!(further.code, 0, "{further:?}");
    assert_eq!(release(&fleet, "h3"), original);

    let p = Pipeline {
        fleet: &fleet,
        clickhouse: "h1",
        nats: &["h1", "h2", "h3"],
        storage: "h1",
        collector: "h2",
    };
    assert_every_trade_stored_once(&p, &["h2", "h3"]);
}

/// Stops the collectors, waits until storage drained the streams, then checks that every
/// trade of every collector boot is in ClickHouse exactly once, sequences 1..=max with no
/// gap, and as many as each collector's last boot says it published.
fn assert_every_trade_stored_once(p: &Pipeline, collectors: &[&str]) {
    let mut published = BTreeMap::new();
    for host in collectors {
        let health = p.health(host, 8087);
        published.insert(
            format!("{host}-{}", health["boot"]),
            health["published_by_type"]["trade"].as_u64().unwrap_or(0),
        );
        p.systemctl(host, "stop mp-collector");
    }
    wait_for("storage to store everything in the streams", 180, || {
        p.streams().values().all(|(_, pending)| *pending == 0)
    });
    let ids = p.sql("SELECT trade_id, count() FROM marketprism_hot.trades GROUP BY trade_id FORMAT TabSeparated");
    let mut boots: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut duplicates = 0u64;
    for line in ids.lines() {
        let (id, n) = line.split_once('\t').unwrap();
        let copies = n.trim().parse::<u64>().unwrap();
        if copies > 1 && duplicates < 5 {
            println!("stored {copies} times: {id}");
        }
        duplicates += copies - 1;
        let (boot, seq) = id.rsplit_once('-').unwrap();
        boots
            .entry(boot.to_string())
            .or_default()
            .insert(seq.parse().unwrap());
    }
    for (boot, seqs) in &boots {
        let max = *seqs.iter().next_back().unwrap();
        let missing: Vec<u64> = (1..=max).filter(|s| !seqs.contains(s)).take(10).collect();
        assert!(
            missing.is_empty(),
            "{boot}: trades missing, first {missing:?}"
        );
    }
    for (boot, count) in &published {
        let stored = boots.get(boot).map_or(0, |s| s.len() as u64);
        assert!(
            stored >= *count,
            "{boot}: published {count}, stored {stored}"
        );
    }
    let storage = p.health(p.storage, 8085);
    println!(
        "storage: redelivered {}, duplicates dropped {}",
        storage["redelivered"], storage["duplicates_dropped"]
    );
    let total: usize = boots.values().map(BTreeSet::len).sum();
    println!(
        "nothing lost: {total} trades over {} collector boots, {duplicates} duplicate rows",
        boots.len()
    );
    assert_eq!(duplicates, 0, "trades stored more than once");
}
