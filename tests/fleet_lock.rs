//! The fleet lease and the audit log on one real host, through sudo (user `deploy`,
//! `become = true`): a lease another run left is shown as held, `lock release` removes it and
//! the audit log records why, and an unreadable lease file is an error naming host and path.

use std::path::Path;
use std::time::Duration;

use mp_remote::run::lease::{self, LeaseError, LeaseRequest};
use mp_remote::run::session::connect_all;
use mp_remote::run::FanOut;

use crate::support::{mp_remote, Fleet};

const LEASE: &str = "/run/mp-remote/lease.json";

#[test]
fn lock_status_release_and_audit() {
    let fleet = Fleet::up("lock", 1, 0);
    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.user = "deploy";
    let inventory = fleet.inventory("inv.toml", &options);
    let text = std::fs::read_to_string(&inventory).unwrap();
    std::fs::write(
        &inventory,
        text.replacen("[defaults]\n", "[defaults]\nbecome = true\n", 1),
    )
    .unwrap();
    let mp = |args: &[&str]| {
        let run = mp_remote(Some(&inventory), args);
        println!("{args:?} -> {}\n{}{}", run.code, run.stdout, run.stderr);
        run
    };

    let free = mp(&["lock", "status"]);
    assert_eq!(
        (free.code, free.stdout.as_str()),
        (0, "h1  free\n"),
        "{free:?}"
    );

    // Another run's live lease, as its control node would have left it.
    fleet.exec(
        "h1",
        &format!(
            "mkdir -p /run/mp-remote && now=$(date +%s) && printf '%s' \"{{\\\"format\\\":1,\\\"owner\\\":\\\"bob@desk\\\",\\\"run_id\\\":\\\"20250101-000000-7\\\",\\\"command\\\":\\\"deploy\\\",\\\"started\\\":\\\"2025-01-01T00:00:00Z\\\",\\\"expires\\\":\\\"later\\\",\\\"expires_epoch\\\":$((now + 3000))}}\" > {LEASE}"
        ),
    );
    let held = mp(&["lock", "status"]);
    assert_eq!(held.code, 0, "{held:?}");
    assert!(
        held.stdout.starts_with(
            "h1  held by bob@desk  run 20250101-000000-7  deploy  since 2025-01-01T00:00:00Z  expires in "
        ),
        "{held:?}"
    );
    // 3000 s from when it was written, on the host's clock, less the time this call took (on
    // a host never deployed, `lock status` first uploads the agent: seconds for a debug build).
    let left = held.stdout.trim_end().rsplit(' ').next().unwrap_or("");
    let seconds = left
        .strip_suffix('s')
        .and_then(|l| l.split_once('m'))
        .and_then(|(m, s)| Some(m.parse::<u64>().ok()? * 60 + s.parse::<u64>().ok()?));
    assert!(
        seconds.is_some_and(|s| (2880..=3000).contains(&s)),
        "{held:?}"
    );

    let empty = mp(&["audit"]);
    assert_eq!(empty.code, 0, "{empty:?}");
    assert!(empty.stdout.contains("h1    (no audit lines)"), "{empty:?}");
    let unknown = mp(&["audit", "--host", "h9"]);
    assert_eq!(unknown.code, 1, "{unknown:?}");

    let no_reason = mp(&["lock", "release", "--reason", " "]);
    assert_eq!(no_reason.code, 1, "{no_reason:?}");
    assert!(fleet.holds("h1", &format!("test -f {LEASE}")));

    let release = mp(&["lock", "release", "--reason", "dead run"]);
    assert_eq!(release.code, 0, "{release:?}");
    assert!(
        release.stdout.starts_with(
            "h1  removed the lease of bob@desk (run 20250101-000000-7, deploy) since 2025-01-01T00:00:00Z"
        ),
        "{release:?}"
    );
    assert!(!fleet.holds("h1", &format!("test -e {LEASE}")));
    let again = mp(&["lock", "release", "--reason", "dead run"]);
    assert_eq!(
        (again.code, again.stdout.as_str()),
        (0, "h1  free: no lease to remove\n")
    );

    let audit = mp(&["audit", "-n", "5"]);
    assert_eq!(audit.code, 0, "{audit:?}");
    let rows: Vec<&str> = audit
        .stdout
        .lines()
        .filter(|l| l.starts_with("h1 "))
        .collect();
    assert_eq!(
        rows.len(),
        1,
        "one line: the release that removed something: {audit:?}"
    );
    assert!(
        rows[0].contains("lock release") && rows[0].contains("- -> -") && rows[0].contains(" ok "),
        "{audit:?}"
    );
    assert!(
        audit
            .stdout
            .contains("dead run; removed the lease of bob@desk (run 20250101-000000-7"),
        "{audit:?}"
    );
    assert_eq!(
        fleet
            .exec(
                "h1",
                "stat -c %a /var/log/mp-remote /var/log/mp-remote/audit.jsonl"
            )
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["750", "640"]
    );
    let line = fleet.exec("h1", "cat /var/log/mp-remote/audit.jsonl");
    let entry: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(entry["command"], "lock release");
    assert_eq!(
        entry["releases"],
        serde_json::json!({"before": null, "after": null})
    );

    library_api(&inventory);

    // An unreadable lease is an error naming the host and the file, and is left alone.
    fleet.exec("h1", &format!("echo 'not a lease' > {LEASE}"));
    let corrupt = mp(&["lock", "status"]);
    assert_eq!(corrupt.code, 2, "{corrupt:?}");
    assert!(
        corrupt.stderr.contains("h1: ") && corrupt.stderr.contains(LEASE),
        "{corrupt:?}"
    );
    assert_eq!(fleet.exec("h1", &format!("cat {LEASE}")), "not a lease\n");
}

/// What deploy will call, over SSH and sudo: two runs race for the fleet, the loser gets the
/// winner's details and keeps nothing; renewal pushes the expiry on; release leaves other runs'
/// leases alone.
fn library_api(inventory: &Path) {
    let inventory = mp_remote::inventory::load(inventory).unwrap();
    let hosts = inventory.select(None).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (mut connected, ended) = connect_all(&hosts, &FanOut::default()).await;
        assert!(ended.is_empty(), "{ended:?}");
        // The lease is the agent's (`agent lease`): placed as deploy's detect would, since
        // this test program is not one.
        let agent = std::fs::read(env!("CARGO_BIN_EXE_mp-remote")).unwrap();
        let path = ".mp-remote/bin/mp-remote-fleet-lock-test";
        connected[0].transport.upload(&agent, path, 0o755).await.unwrap();
        connected[0].agent = Some(path.to_string());
        let mut ours = LeaseRequest::new("20250102-030405-1", "deploy");
        ours.ttl = Duration::from_secs(3);
        let theirs = LeaseRequest::new("20250102-030405-2", "clean");
        lease::acquire_all(&connected, &ours).await.unwrap();
        let first = lease::read(&connected[0]).await.unwrap().unwrap();
        assert_eq!((first.run_id.as_str(), first.owner.as_str()), (ours.run_id.as_str(), ours.owner.as_str()));

        let refused = lease::acquire_all(&connected, &theirs).await.unwrap_err();
        assert!(
            matches!(&refused[..], [LeaseError::Held { host, lease }] if host == "h1" && lease.run_id == ours.run_id),
            "{refused:?}"
        );
        assert!(lease::release_all(&connected, &theirs.run_id).await.is_empty());

        // Longer than the TTL: only the renewals keep the lease alive.
        let value = lease::keep_renewed(&connected, &ours, async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            7
        })
        .await;
        assert_eq!(value, 7);
        let renewed = lease::observe(&connected[0]).await.unwrap();
        let lease = renewed.lease.clone().unwrap();
        assert_eq!((lease.run_id.as_str(), lease.started.as_str()), (ours.run_id.as_str(), first.started.as_str()));
        assert!(lease.expires_epoch > first.expires_epoch, "{first:?} then {lease:?}");
        assert!(renewed.remaining().is_some(), "{renewed:?}");

        assert!(lease::release_all(&connected, &ours.run_id).await.is_empty());
        assert_eq!(lease::read(&connected[0]).await.unwrap(), None);
        let lost = lease::renew_all(&connected, &ours).await;
        assert!(matches!(&lost[..], [LeaseError::Lost { now_there: None, .. }]), "{lost:?}");
    });
}
