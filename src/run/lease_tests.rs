//! Tests of `lease`: the pure parts on plain data, and the host side (`agent lease`) run
//! in-process against a temp dir.

use std::path::Path;

use super::*;

fn request(run_id: &str, ttl_secs: u64) -> LeaseRequest {
    LeaseRequest {
        owner: "alice@laptop".into(),
        run_id: run_id.into(),
        command: "deploy".into(),
        ttl: Duration::from_secs(ttl_secs),
        takeover: None,
    }
}

/// Runs the host side on this machine against `path`, as the agent would on a host.
fn script(action: Action, path: &Path, request: Option<&LeaseRequest>) -> ExecOutput {
    let call = call(action, path.to_str().unwrap(), request);
    ExecOutput {
        status: Some(0),
        stdout: crate::agent::hostops::lease::answer_line(&call).into_bytes(),
        stderr: Vec::new(),
    }
}

fn outcome(
    action: Action,
    path: &Path,
    request: Option<&LeaseRequest>,
) -> Result<(Reply, Option<Lease>), LeaseError> {
    let output = script(action, path, request);
    let run_id = request.map(|r| r.run_id.as_str()).unwrap_or("");
    interpret("h1", path.to_str().unwrap(), action, run_id, &output)
}

fn lease_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    // A directory the script must create, as /var/lib/mp-remote may not exist yet.
    let path = dir.path().join("state").join("lease.json");
    (dir, path)
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Another run's lease, expiring at `expires_epoch`.
fn bobs(expires_epoch: i64) -> String {
    format!(
        r#"{{"format":1,"owner":"bob@desk","run_id":"20250101-000000-7","command":"update","started":"2025-01-01T00:00:00Z","expires":"2099-01-01T00:00:00Z","expires_epoch":{expires_epoch}}}"#
    )
}

#[test]
fn calls_carry_the_run() {
    let read = call(Action::Read, LEASE_FILE, None);
    assert_eq!(
        (
            read.action.as_str(),
            read.file.as_str(),
            read.run_id.as_str()
        ),
        ("read", "/run/mp-remote/lease.json", "")
    );
    let mut r = request("20250102-030405-4242", 300);
    r.owner = "o'brien@it's".into();
    r.command = "lock \"release\"".into();
    r.takeover = Some("20250102-030405-1".into());
    let acquire = call(Action::Acquire, LEASE_FILE, Some(&r));
    assert_eq!(
        (
            acquire.action.as_str(),
            acquire.ttl_secs,
            acquire.owner.as_str(),
            acquire.command.as_str(),
            acquire.takeover.as_deref()
        ),
        (
            "acquire",
            300,
            "o'brien@it's",
            "lock \"release\"",
            Some("20250102-030405-1")
        )
    );
    r.ttl = Duration::from_millis(10);
    assert_eq!(call(Action::Renew, "/l", Some(&r)).ttl_secs, 1);
}

#[test]
fn run_ids_are_plain() {
    assert!(valid_run_id("20250102-030405-4242"));
    assert!(valid_run_id("a.b_c"));
    for bad in ["", "a b", "a\"b", "a/b", "x;y"] {
        assert!(!valid_run_id(bad), "{bad:?}");
    }
}

/// The agent's answer line for `code`, from the old text form `now N\nstate S\nBODY`.
fn answer(code: u32, text: &str) -> String {
    let mut lines = text.splitn(3, '\n');
    let now = lines
        .next()
        .unwrap()
        .strip_prefix("now ")
        .unwrap()
        .parse()
        .unwrap();
    let state = lines
        .next()
        .unwrap()
        .strip_prefix("state ")
        .unwrap()
        .to_string();
    let event = OpEvent::Leased(LeaseAnswer {
        now,
        state,
        code,
        body: lines.next().unwrap_or("").to_string(),
        message: (code >= 20).then(|| "cannot lock".to_string()),
    });
    serde_json::to_string(&event).unwrap() + "\n"
}

#[test]
fn answers_are_found_among_other_lines() {
    let line = answer(10, "now 17\nstate held\n{\"x\":1}\nmore\n");
    let found = answer_in(&format!("a banner\n{line}")).unwrap();
    assert_eq!((found.now, found.state.as_str()), (17, "held"));
    assert_eq!(found.body, "{\"x\":1}\nmore\n");
    assert_eq!(answer_in("sudo: a password is required\n"), None);
    assert_eq!(found_of("weird"), None);
    assert_eq!(found_of("found"), Some(Found::Present));
}

#[test]
fn format_of_reads_a_number_or_nothing() {
    assert_eq!(format_of(r#"{"format": 2,"x":1}"#), Some(2));
    assert_eq!(format_of(r#"{"format":"two"}"#), None);
    assert_eq!(format_of("garbage"), None);
    assert_eq!(
        format_of(r#"{"format":99999999999999999999999}"#),
        Some(u64::MAX)
    );
}

#[test]
fn exit_codes_become_errors() {
    let output = |code, text: &str, stderr: &str| ExecOutput {
        status: Some(if text.is_empty() { code } else { 0 }),
        stdout: if text.is_empty() {
            Vec::new()
        } else {
            answer(code, text).into_bytes()
        },
        stderr: stderr.as_bytes().to_vec(),
    };
    let run = |o: &ExecOutput| interpret("h1", LEASE_FILE, Action::Acquire, "r1", o);
    let held = run(&output(
        10,
        &format!("now 1\nstate held\n{}\n", bobs(99)),
        "",
    ))
    .unwrap_err();
    let message = held.to_string();
    assert_eq!(
        message,
        "h1: held by bob@desk (run 20250101-000000-7, update) since 2025-01-01T00:00:00Z; it expires at 2099-01-01T00:00:00Z; wait, or run `mp-remote lock release --limit h1 --reason TEXT` if that run is dead"
    );
    let corrupt = run(&output(11, "now 1\nstate corrupt\n{oops\n", "")).unwrap_err();
    assert!(
        matches!(&corrupt, LeaseError::Corrupt { host, path, content_excerpt }
            if host == "h1" && path == LEASE_FILE && content_excerpt == "{oops"),
        "{corrupt:?}"
    );
    assert!(corrupt.to_string().contains("/run/mp-remote/lease.json"));
    assert!(corrupt.to_string().contains("lock release --limit h1"));
    let future = run(&output(12, "now 1\nstate future\n{\"format\":2}\n", "")).unwrap_err();
    assert!(
        matches!(future, LeaseError::FutureFormat { format: 2, .. }),
        "{future:?}"
    );
    let sudo = run(&output(1, "", "sudo: a password is required\n")).unwrap_err();
    assert_eq!(
        sudo.to_string(),
        "h1: taking the lease on the host failed (exit 1): sudo: a password is required"
    );
    let stuck = run(&output(21, "now 1\nstate absent\n", "")).unwrap_err();
    assert!(stuck.to_string().contains("cannot lock"), "{stuck}");
}

#[test]
fn absent_is_taken() {
    let (_dir, path) = lease_dir();
    let (reply, lease) = outcome(Action::Acquire, &path, Some(&request("r1", 300))).unwrap();
    assert_eq!(reply.found, Found::Absent);
    let lease = lease.unwrap();
    assert_eq!(
        (
            lease.format,
            lease.owner.as_str(),
            lease.run_id.as_str(),
            lease.command.as_str()
        ),
        (1, "alice@laptop", "r1", "deploy")
    );
    assert_eq!(lease.expires_epoch, reply.now + 300);
    assert_eq!(
        lease.expires.len(),
        "2025-01-02T03:04:05Z".len(),
        "{lease:?}"
    );
    let on_disk: Lease = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(on_disk, lease);
}

#[test]
fn ours_is_renewed_and_keeps_its_start() {
    let (_dir, path) = lease_dir();
    let (_, first) = outcome(Action::Acquire, &path, Some(&request("r1", 60))).unwrap();
    let (reply, again) = outcome(Action::Acquire, &path, Some(&request("r1", 600))).unwrap();
    assert_eq!(reply.found, Found::Ours);
    let again = again.unwrap();
    assert_eq!(again.started, first.unwrap().started);
    assert_eq!(again.expires_epoch, reply.now + 600);
    let (reply, renewed) = outcome(Action::Renew, &path, Some(&request("r1", 900))).unwrap();
    assert_eq!(renewed.unwrap().expires_epoch, reply.now + 900);
}

#[test]
fn someone_elses_live_lease_is_held() {
    let (_dir, path) = lease_dir();
    write(&path, &bobs(i64::from(i32::MAX) * 2));
    let error = outcome(Action::Acquire, &path, Some(&request("r1", 300))).unwrap_err();
    let LeaseError::Held { host, lease } = error else {
        panic!("{error:?}")
    };
    assert_eq!(host, "h1");
    assert_eq!(
        (
            lease.owner.as_str(),
            lease.run_id.as_str(),
            lease.command.as_str()
        ),
        ("bob@desk", "20250101-000000-7", "update")
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        bobs(i64::from(i32::MAX) * 2)
    );
    // Renewing it is not ours to do; releasing ours leaves it.
    let lost = outcome(Action::Renew, &path, Some(&request("r1", 300))).unwrap_err();
    assert!(
        matches!(&lost, LeaseError::Lost { now_there: Some(l), .. } if l.owner == "bob@desk"),
        "{lost:?}"
    );
    let (reply, _) = outcome(Action::Release, &path, Some(&request("r1", 0))).unwrap();
    assert_eq!(reply.found, Found::Held);
    assert!(path.exists());
}

#[test]
fn someone_elses_expired_lease_is_taken() {
    let (_dir, path) = lease_dir();
    write(&path, &bobs(1000));
    let (reply, lease) = outcome(Action::Acquire, &path, Some(&request("r1", 300))).unwrap();
    assert_eq!(reply.found, Found::Expired);
    assert_eq!(lease.unwrap().run_id, "r1");
}

#[test]
fn unreadable_lease_is_never_taken() {
    let (_dir, path) = lease_dir();
    for text in [
        "garbage\n",
        r#"{"format":1,"run_id":"x"}"#,
        r#"{"expires_epoch":5}"#,
    ] {
        write(&path, text);
        let error = outcome(Action::Acquire, &path, Some(&request("r1", 300))).unwrap_err();
        assert!(
            matches!(error, LeaseError::Corrupt { .. }),
            "{text}: {error:?}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        let error = outcome(Action::Read, &path, None).unwrap_err();
        assert!(
            matches!(error, LeaseError::Corrupt { .. }),
            "{text}: {error:?}"
        );
    }
}

#[test]
fn newer_format_is_never_taken() {
    let (_dir, path) = lease_dir();
    let text = r#"{"format":2,"holder":{"name":"carol"},"expires_epoch":1000}"#;
    write(&path, text);
    let error = outcome(Action::Acquire, &path, Some(&request("r1", 300))).unwrap_err();
    assert!(
        matches!(&error, LeaseError::FutureFormat { format: 2, path: p, .. } if p.ends_with("lease.json")),
        "{error:?}"
    );
    let error = outcome(Action::Read, &path, None).unwrap_err();
    assert!(
        matches!(error, LeaseError::FutureFormat { format: 2, .. }),
        "{error:?}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn release_removes_only_ours() {
    let (_dir, path) = lease_dir();
    outcome(Action::Acquire, &path, Some(&request("r1", 300))).unwrap();
    let (_, other) = outcome(Action::Release, &path, Some(&request("r2", 0))).unwrap();
    assert_eq!(other.unwrap().run_id, "r1");
    assert!(path.exists());
    let (reply, removed) = outcome(Action::Release, &path, Some(&request("r1", 0))).unwrap();
    assert_eq!(
        (reply.found, removed.unwrap().run_id.as_str()),
        (Found::Ours, "r1")
    );
    assert!(!path.exists());
    let (reply, none) = outcome(Action::Release, &path, Some(&request("r1", 0))).unwrap();
    assert_eq!((reply.found, none), (Found::Absent, None));
    // Where clean removed the state directory, a release leaves nothing behind.
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    let (reply, _) = outcome(Action::Release, &path, Some(&request("r1", 0))).unwrap();
    assert_eq!(reply.found, Found::Absent);
    assert!(!path.parent().unwrap().exists());
    let lost = outcome(Action::Renew, &path, Some(&request("r1", 300))).unwrap_err();
    assert!(
        matches!(
            lost,
            LeaseError::Lost {
                now_there: None,
                ..
            }
        ),
        "{lost:?}"
    );
}

#[test]
fn force_removes_anything_and_read_reports_the_hosts_clock() {
    let (_dir, path) = lease_dir();
    let (reply, none) = outcome(Action::Read, &path, None).unwrap();
    assert_eq!((reply.found, none), (Found::Absent, None));
    write(&path, &bobs(1000));
    let (reply, lease) = outcome(Action::Read, &path, None).unwrap();
    assert!(reply.now > 1_600_000_000, "{reply:?}");
    let observed = Observed {
        host_now: reply.now,
        lease,
    };
    assert_eq!(observed.remaining(), None, "expired");
    let (_, removed) = outcome(Action::Force, &path, None).unwrap();
    assert_eq!(removed.unwrap().owner, "bob@desk");
    assert!(!path.exists());
    write(&path, "garbage");
    let (reply, removed) = outcome(Action::Force, &path, None).unwrap();
    assert_eq!(
        (reply.found, removed, reply.body.as_str()),
        (Found::Corrupt, None, "garbage")
    );
    assert!(!path.exists());
}

#[test]
fn observed_remaining_uses_the_hosts_clock() {
    let lease: Lease = serde_json::from_str(&bobs(1300)).unwrap();
    let observed = Observed {
        host_now: 1000,
        lease: Some(lease),
    };
    assert_eq!(observed.remaining(), Some(300));
}

/// Eight acquirers at once with different run ids, each with its own open lock file (as
/// separate agents would have): exactly one gets the lease, the others see it held by the
/// winner.
#[test]
fn racing_acquirers_one_wins() {
    let (_dir, path) = lease_dir();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (path, barrier) = (path.clone(), barrier.clone());
            std::thread::spawn(move || {
                let call = call(
                    Action::Acquire,
                    path.to_str().unwrap(),
                    Some(&request(&format!("run{i}"), 300)),
                );
                barrier.wait();
                crate::agent::hostops::lease::answer(&call)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut held = 0;
    for (i, thread) in threads.into_iter().enumerate() {
        let answer = thread.join().unwrap();
        match answer.code {
            0 => winners.push(format!("run{i}")),
            10 => held += 1,
            other => panic!("run{i}: {other} {:?}", answer.message),
        }
    }
    assert_eq!((winners.len(), held), (1, 7), "{winners:?}");
    let lease: Lease = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(lease.run_id, winners[0]);
}

#[tokio::test(start_paused = true)]
async fn keep_renewed_returns_the_works_output() {
    let request = request("r1", 3);
    let work = async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        42
    };
    assert_eq!(keep_renewed(&[], &request, work).await, 42);
    assert_eq!(
        renew_period(Duration::from_secs(300)),
        Duration::from_secs(100)
    );
    assert_eq!(
        renew_period(Duration::from_millis(10)),
        Duration::from_secs(1)
    );
}

#[test]
fn local_owner_is_user_at_host() {
    let owner = local_owner();
    let (user, host) = owner.split_once('@').unwrap();
    assert!(!user.is_empty() && !host.is_empty(), "{owner}");
    let r = LeaseRequest::new("r1", "deploy");
    assert_eq!((r.ttl, r.command.as_str()), (DEFAULT_TTL, "deploy"));
}

#[test]
fn a_dead_runs_live_lease_is_taken_over_by_its_retry_only() {
    let (_dir, path) = lease_dir();
    write(&path, &bobs(4_102_444_800));
    let mut retry = request("20250101-000000-9", 60);
    retry.takeover = Some("20250101-000000-8".into());
    assert!(matches!(
        outcome(Action::Acquire, &path, Some(&retry)),
        Err(LeaseError::Held { .. })
    ));
    retry.takeover = Some("20250101-000000-7".into());
    let (reply, lease) = outcome(Action::Acquire, &path, Some(&retry)).unwrap();
    assert_eq!(reply.found, Found::Expired);
    assert_eq!(lease.unwrap().run_id, "20250101-000000-9");
}
