//! Ctrl-C during the commands that are not recorded otherwise (ping, status) and during
//! `facts --json`; usage errors of the global flags. Loopback only: no test hosts.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use crate::support::mp_remote;
use crate::support::runs::{interrupt, run_dirs, run_json, spawn_mp_remote};

/// An inventory whose one host accepts the TCP connection and never speaks SSH, so a run
/// hangs there until interrupted; the listener must be kept alive meanwhile.
fn mute_host(dir: &Path) -> (TcpListener, PathBuf) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let path = dir.join("inv.toml");
    std::fs::write(
        &path,
        format!(
            "[defaults]\nknown_hosts = \"{}\"\nconnect_timeout = \"120s\"\n\n[[hosts]]\nname = \"mute\"\naddress = \"127.0.0.1\"\nport = {port}\nroles = [\"nats\"]\n",
            dir.join("known_hosts").display()
        ),
    )
    .unwrap();
    (listener, path)
}

/// Runs `args` against the mute host, interrupts it once it connected, returns exit code,
/// stdout and the run it recorded.
fn interrupted(args: &[&str]) -> (Option<i32>, String, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let (listener, inv) = mute_host(dir.path());
    let child = spawn_mp_remote(Some(&inv), args);
    // Connected: the signal handlers are in place, the command is at work.
    let (_held, _) = listener.accept().unwrap();
    interrupt(&child);
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let dirs = run_dirs(&dir.path().join(".mp-remote/runs"));
    assert_eq!(
        dirs.len(),
        1,
        "one run recorded: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), stdout, run_json(&dirs[0]))
}

#[test]
fn facts_json_interrupted_prints_json() {
    let (code, stdout, record) = interrupted(&["facts", "--json"]);
    assert_eq!(code, Some(130), "{stdout}");
    let doc: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{stdout}"));
    assert_eq!(doc["hosts"][0]["name"], "mute");
    assert_eq!(doc["hosts"][0]["status"], "interrupted");
    assert_eq!(doc["hosts"][0]["facts"], serde_json::Value::Null);
    assert_eq!(record["interrupted"], true);
}

#[test]
fn ping_interrupted_is_recorded_and_says_so() {
    let (code, stdout, record) = interrupted(&["ping"]);
    assert_eq!(code, Some(130), "{stdout}");
    assert!(stdout.contains("mute"), "{stdout}");
    assert!(stdout.contains("(interrupted)"), "{stdout}");
    assert_eq!(record["command"], "ping");
    assert_eq!(record["result"], "interrupted");
    assert_eq!(record["hosts"][0]["status"], "interrupted");
}

#[test]
fn status_interrupted_is_recorded_and_says_so() {
    let (code, stdout, record) = interrupted(&["status"]);
    assert_eq!(code, Some(130), "{stdout}");
    assert!(stdout.contains("(interrupted)"), "{stdout}");
    assert_eq!(record["command"], "status");
    assert_eq!(record["hosts"][0]["status"], "interrupted");

    let (code, stdout, _) = interrupted(&["status", "--json"]);
    assert_eq!(code, Some(130), "{stdout}");
    let doc: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{stdout}"));
    assert_eq!(doc["hosts"][0]["status"], "interrupted");
}

/// A host that answered before the Ctrl-C keeps its own status in the record; only the one
/// still at work reads `interrupted`. `--forks 1` and the order make the refused host end
/// before the mute one is even connected to.
#[test]
fn status_interrupted_keeps_the_hosts_that_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (listener, inv) = mute_host(dir.path());
    let refused = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string(&inv).unwrap().replacen(
        "[[hosts]]",
        &format!("[[hosts]]\nname = \"gone\"\naddress = \"127.0.0.1\"\nport = {refused}\nroles = [\"nats\"]\n\n[[hosts]]"),
        1,
    );
    std::fs::write(&inv, text).unwrap();
    let child = spawn_mp_remote(Some(&inv), &["--forks", "1", "status"]);
    let (_held, _) = listener.accept().unwrap();
    interrupt(&child);
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(130), "{stdout}");
    let record = run_json(&run_dirs(&dir.path().join(".mp-remote/runs"))[0]);
    let status = |name: &str| {
        record["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .map(|h| h["status"].clone())
    };
    assert_eq!(status("gone"), Some("unreachable".into()), "{record}");
    assert_eq!(status("mute"), Some("interrupted".into()), "{record}");
}

#[test]
fn zero_forks_handshakes_or_timeout_are_usage_errors() {
    for args in [["--forks", "0"], ["--handshakes", "0"], ["--timeout", "0s"]] {
        let mut argv = args.to_vec();
        argv.extend(["inventory", "check"]);
        let run = mp_remote(None, &argv);
        assert_eq!(run.code, 1, "{args:?}: {run:?}");
        assert!(run.stderr.contains(args[0]), "{args:?}: {run:?}");
    }
}

#[test]
fn a_runs_dir_that_is_a_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("runs");
    std::fs::write(&file, "").unwrap();
    let path = file.to_str().unwrap();
    for command in ["runs", "report"] {
        let run = mp_remote(None, &["--runs-dir", path, command]);
        assert_eq!(run.code, 1, "{command}: {run:?}");
        assert!(run.stderr.contains("is not a directory"), "{run:?}");
    }
}
