//! The fleet lease and the audit log on one real host, through sudo (user `deploy`,
//! `become = true`): a lease another run left is shown as held, `lock release` removes it and
//! the audit log records why, and an unreadable lease file is an error naming host and path.

use crate::support::{mp_remote, Fleet};

const LEASE: &str = "/var/lib/mp-remote/lease.json";

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
            "mkdir -p /var/lib/mp-remote && now=$(date +%s) && printf '%s' \"{{\\\"format\\\":1,\\\"owner\\\":\\\"bob@desk\\\",\\\"run_id\\\":\\\"20250101-000000-7\\\",\\\"command\\\":\\\"deploy\\\",\\\"started\\\":\\\"2025-01-01T00:00:00Z\\\",\\\"expires\\\":\\\"later\\\",\\\"expires_epoch\\\":$((now + 3600))}}\" > {LEASE}"
        ),
    );
    let held = mp(&["lock", "status"]);
    assert_eq!(held.code, 0, "{held:?}");
    for part in [
        "h1  held by bob@desk  run 20250101-000000-7  deploy  since 2025-01-01T00:00:00Z  expires in ",
        "59m",
    ] {
        assert!(held.stdout.contains(part), "{part}: {held:?}");
    }

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
