//! The CLI against this machine (`connection = "local"`) and against bad input: no test hosts.

use std::path::Path;

use crate::support::mp_remote;

fn shipped(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("inventory")
        .join(name)
}

#[test]
fn facts_without_inventory_uses_this_machine() {
    let run = mp_remote(None, &["facts", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    let hosts = doc["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0]["name"], "local");
    assert_eq!(hosts[0]["status"], "ok");
    assert_eq!(hosts[0]["error"], serde_json::Value::Null);
    assert_eq!(hosts[0]["facts"]["arch"], std::env::consts::ARCH);
    assert!(hosts[0]["facts"]["cpus"].as_u64().unwrap() >= 1);
    assert!(hosts[0]["facts"]["memory_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn ping_local_host() {
    let run = mp_remote(Some(&shipped("local.toml")), &["ping"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("local"), "{run:?}");
}

#[test]
fn shipped_inventories_check_ok() {
    for name in ["single-host.toml", "multi-node.toml", "local.toml"] {
        let run = mp_remote(Some(&shipped(name)), &["inventory", "check"]);
        assert_eq!(run.code, 0, "{name}: {run:?}");
    }
}

#[test]
fn limit_selects_groups_and_rejects_unknown_terms() {
    let inventory = shipped("multi-node.toml");
    let run = mp_remote(
        Some(&inventory),
        &["inventory", "check", "--limit", "collectors"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("2 selected"), "{run:?}");
    let run = mp_remote(
        Some(&inventory),
        &["inventory", "check", "--limit", "nosuchhost"],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("nosuchhost"), "{run:?}");
}

#[test]
fn bad_inventory_exits_1_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[hosts]]\nname = \"a\"\naddress = \"127.0.0.1\"\nroles = [\"natz\"]\n",
    )
    .unwrap();
    let run = mp_remote(Some(&path), &["facts"]);
    assert_eq!(run.code, 1, "{run:?}");
    let expected = format!("{}:4:", path.display());
    assert!(run.stderr.contains(&expected), "{run:?}");
    assert!(run.stderr.contains("natz"), "{run:?}");
}

#[test]
fn missing_inventory_and_usage_errors_exit_1() {
    let run = mp_remote(Some(Path::new("/nonexistent/inv.toml")), &["ping"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("/nonexistent/inv.toml"), "{run:?}");
    let run = mp_remote(None, &["no-such-command"]);
    assert_eq!(run.code, 1, "{run:?}");
}

#[test]
fn deploy_below_the_memory_threshold_fails_before_installing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.toml");
    let local = std::fs::read_to_string(shipped("local.toml")).unwrap();
    std::fs::write(
        &path,
        format!("{local}\n[thresholds]\nmin_memory_gib = 100000\n"),
    )
    .unwrap();
    let run = mp_remote(Some(&path), &["deploy"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stdout.contains("below the 100000 GiB"), "{run:?}");
    assert!(run.stdout.contains("--force"), "{run:?}");
    // Its lease (taken beside the facts probe, before detect refused the host) was given
    // back: a lease left behind would refuse every run here for 5 minutes. Another test's
    // deploy may hold the lease now, but never this run's.
    let all = format!("{}{}", run.stdout, run.stderr);
    let run_id = all
        .split("/runs/")
        .nth(1)
        .and_then(|rest| rest.split([' ', '\n']).next())
        .unwrap_or_else(|| panic!("no record path: {run:?}"));
    let lease = std::fs::read_to_string("/run/mp-remote/lease.json").unwrap_or_default();
    assert!(!lease.contains(run_id), "{run_id} left its lease: {lease}");
}

#[test]
fn a_server_that_never_speaks_ssh_times_out_as_unreachable() {
    // Accepts TCP connections (the kernel's backlog) but never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent.toml");
    std::fs::write(
        &path,
        format!(
            "[defaults]\nconnect_timeout = \"1s\"\nknown_hosts = \"{}\"\n\n[[hosts]]\nname = \"silent\"\naddress = \"127.0.0.1\"\nport = {port}\nroles = [\"nats\"]\n",
            dir.path().join("known_hosts").display()
        ),
    )
    .unwrap();
    let run = mp_remote(Some(&path), &["ping"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stdout.contains("no SSH answer from 127.0.0.1"),
        "{run:?}"
    );
    assert!(run.stdout.contains("within 1s"), "{run:?}");
    drop(silent);
}

#[test]
fn a_host_past_its_deadline_ends_timed_out() {
    let run = mp_remote(None, &["facts", "--json", "--timeout", "1ns"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.json()["hosts"][0]["status"], "timed_out");
}

/// `--timeout` bounds each host's whole task in deploy and update too, not only in the
/// commands that fan out once.
#[test]
fn deploy_and_update_honour_the_timeout() {
    for command in ["deploy", "update"] {
        let run = mp_remote(None, &[command, "--check", "--timeout", "1ns"]);
        assert_eq!(run.code, 2, "{command}: {run:?}");
        assert!(
            run.stdout.contains("not finished within 1ns (--timeout)"),
            "{command}: {run:?}"
        );
    }
}

/// A server that says it speaks SSH and then cuts the handshake (what sshd's MaxStartups does
/// under load) leaves the host unreachable after a few tries, not failed.
#[test]
fn a_handshake_cut_by_the_server_is_unreachable_after_retries() {
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cut = Arc::new(AtomicUsize::new(0));
    let counter = cut.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.2p1\r\n");
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.toml");
    std::fs::write(
        &path,
        format!(
            "[defaults]\nconnect_timeout = \"5s\"\nknown_hosts = \"{}\"\n\n[[hosts]]\nname = \"busy\"\naddress = \"127.0.0.1\"\nport = {port}\nroles = [\"nats\"]\n",
            dir.path().join("known_hosts").display()
        ),
    )
    .unwrap();
    let run = mp_remote(Some(&path), &["ping"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stdout.contains("was cut by the server") && run.stdout.contains("3 times"),
        "{run:?}"
    );
    assert_eq!(cut.load(Ordering::SeqCst), 3, "three handshakes tried");
}

/// `deploy` records a host as soon as its part is over: one lost at the connect is in
/// events.jsonl (and the live view's count) before the other host's first step ends, not
/// when the whole run ends.
#[test]
fn deploy_records_a_lost_host_before_the_others_finish() {
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inv.toml");
    std::fs::write(
        &path,
        format!(
            "[defaults]\nknown_hosts = \"{}\"\nconnect_timeout = \"2s\"\n\n\
             [[hosts]]\nname = \"local\"\nconnection = \"local\"\nroles = [\"nats\", \"clickhouse\", \"storage\", \"collector\"]\n\n\
             [[hosts]]\nname = \"gone\"\naddress = \"127.0.0.1\"\nport = {refused}\nroles = [\"collector\"]\n\n\
             [components.nats]\nsource = \"os\"\n\n[components.clickhouse]\nsource = \"os\"\n",
            dir.path().join("known_hosts").display()
        ),
    )
    .unwrap();
    let runs = dir.path().join("runs");
    let run = mp_remote(
        Some(&path),
        &["--runs-dir", runs.to_str().unwrap(), "deploy", "--check"],
    );
    assert_eq!(run.code, 3, "{run:?}");
    let dirs = crate::support::runs::run_dirs(&runs);
    let events = crate::support::runs::events(&dirs[0]);
    let position = |ok: &dyn Fn(&serde_json::Value) -> bool| {
        events
            .iter()
            .position(ok)
            .unwrap_or_else(|| panic!("{events:#?}"))
    };
    let gone = position(&|e| e["host"] == "gone" && e["event"] == "host_finished");
    // The first step the agent ran (detect's record of the agent comes with the facts).
    let first_step = position(&|e| {
        e["host"] == "local" && e["event"] == "step_finished" && e["layer"] != "detect"
    });
    let local = position(&|e| e["host"] == "local" && e["event"] == "host_finished");
    assert!(gone < first_step && first_step < local, "{events:#?}");
}
