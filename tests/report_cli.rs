//! Run records and reports against this machine (`connection = "local"`) and loopback only:
//! `facts` records a run, `runs` lists it, `report` renders it; every exit code.

use std::net::TcpListener;
use std::path::Path;

use crate::support::mp_remote;
use crate::support::runs::{events, interrupt, run_dirs, run_json, spawn_mp_remote};
use crate::support::wait_for;

fn arg(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

#[test]
fn facts_is_recorded_then_listed_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let run = mp_remote(None, &["--runs-dir", arg(&runs), "facts"]);
    assert_eq!(run.code, 0, "{run:?}");

    let dirs = run_dirs(&runs);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let record = run_json(&dirs[0]);
    assert_eq!(record["format"], 1);
    assert_eq!(record["command"], "facts");
    assert_eq!(record["result"], "ok");
    assert_eq!(record["interrupted"], false);
    assert_eq!(record["exit_code"], 0);
    assert_eq!(
        record["inventory"]["path"],
        "<embedded inventory/local.toml>"
    );
    assert_eq!(record["inventory"]["sha256"].as_str().unwrap().len(), 64);
    assert!(record["ended"].as_str().unwrap() >= record["started"].as_str().unwrap());
    let host = &record["hosts"][0];
    assert_eq!(host["name"], "local");
    assert_eq!(host["status"], "ok");
    assert_eq!(host["facts"]["arch"], std::env::consts::ARCH);
    assert!(host["facts"]["cpus"].as_u64().unwrap() >= 1);
    assert_eq!(host["steps"][0]["step"], "detect.facts");
    assert_eq!(host["steps"][0]["status"], "ok");
    assert_eq!(host["log"], "hosts/local.log");
    let log = std::fs::read_to_string(dirs[0].join("hosts/local.log")).unwrap();
    assert!(log.contains("detect.facts ok"), "{log}");
    let kinds: Vec<String> = events(&dirs[0])
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "run_started",
            "step_finished",
            "host_finished",
            "run_finished"
        ]
    );

    let id = record["id"].as_str().unwrap();
    let listed = mp_remote(None, &["--runs-dir", arg(&runs), "runs"]);
    assert_eq!(listed.code, 0, "{listed:?}");
    let line = listed.stdout.lines().nth(1).unwrap_or_default();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&fields[..2], [id, "facts"], "{}", listed.stdout);
    assert_eq!(&fields[3..5], ["1", "ok"], "{}", listed.stdout);

    let json = mp_remote(
        None,
        &[
            "--runs-dir",
            arg(&runs),
            "report",
            "latest",
            "--format",
            "json",
        ],
    );
    assert_eq!(json.code, 0, "{json:?}");
    assert_eq!(json.json(), record, "report --format json is run.json");

    let junit = mp_remote(
        None,
        &["--runs-dir", arg(&runs), "report", id, "--format", "junit"],
    );
    assert_eq!(junit.code, 0, "{junit:?}");
    assert!(junit.stdout.starts_with("<?xml"), "{}", junit.stdout);
    assert!(
        junit
            .stdout
            .contains("<testcase classname=\"local.detect\" name=\"detect.facts\""),
        "{}",
        junit.stdout
    );

    let html_file = dir.path().join("report.html");
    let html = mp_remote(
        None,
        &[
            "--runs-dir",
            arg(&runs),
            "report",
            "--format",
            "html",
            "-o",
            arg(&html_file),
        ],
    );
    assert_eq!(html.code, 0, "{html:?}");
    let page = std::fs::read_to_string(&html_file).unwrap();
    assert!(
        page.contains("<section class=\"host\" id=\"host-local\">"),
        "{page}"
    );
    assert!(page.contains("<svg class=\"timeline\""), "{page}");

    let text = mp_remote(
        None,
        &["--runs-dir", arg(&runs), "report", "--host", "local"],
    );
    assert_eq!(text.code, 0, "{text:?}");
    assert!(text.stdout.contains("\nlocal: ok in "), "{}", text.stdout);

    // Exit 1: nothing to report.
    let missing = mp_remote(None, &["--runs-dir", arg(&runs), "report", "nosuchrun"]);
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(missing.stderr.contains("mp-remote runs"), "{missing:?}");
    let no_host = mp_remote(
        None,
        &["--runs-dir", arg(&runs), "report", "--host", "nohost"],
    );
    assert_eq!(no_host.code, 1, "{no_host:?}");
}

/// A port on loopback where nothing listens.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn inventory(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("inv.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn runs_beside_the_inventory_and_exit_3_for_an_unreachable_host() {
    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");
    let inv = inventory(
        dir.path(),
        &format!(
            "[defaults]\nknown_hosts = \"{}\"\nconnect_timeout = \"5s\"\n\n[[hosts]]\nname = \"local\"\nconnection = \"local\"\nroles = [\"nats\"]\n\n[[hosts]]\nname = \"gone\"\naddress = \"127.0.0.1\"\nport = {}\nroles = [\"nats\"]\n",
            known_hosts.display(),
            closed_port()
        ),
    );
    let run = mp_remote(Some(&inv), &["facts"]);
    assert_eq!(run.code, 3, "{run:?}");
    let dirs = run_dirs(&dir.path().join(".mp-remote/runs"));
    assert_eq!(dirs.len(), 1, "recorded beside the inventory");
    let record = run_json(&dirs[0]);
    assert_eq!(record["result"], "unreachable");
    assert_eq!(record["exit_code"], 3);
    assert_eq!(record["hosts"][0]["status"], "ok");
    assert_eq!(record["hosts"][1]["status"], "unreachable");
    assert_eq!(record["hosts"][1]["steps"][0]["status"], "unreachable");
    assert!(record["hosts"][1]["error"]
        .as_str()
        .unwrap()
        .starts_with("gone: "));
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(std::fs::read(&inv).unwrap()));
    assert_eq!(record["inventory"]["sha256"], sha);

    let junit = mp_remote(Some(&inv), &["report", "--format", "junit"]);
    assert!(
        junit.stdout.contains("<failure type=\"unreachable\""),
        "{junit:?}"
    );
}

#[test]
fn exit_2_when_a_host_fails() {
    // Far below the memory threshold: the host fails in detect, before anything is pushed
    // or changed (and --check changes nothing anyway).
    let dir = tempfile::tempdir().unwrap();
    let inv = inventory(
        dir.path(),
        "[[hosts]]\nname = \"local\"\nconnection = \"local\"\nroles = [\"nats\"]\n\n[components.nats]\nsource = \"os\"\n\n[thresholds]\nmin_memory_gib = 1000000\n",
    );
    let run = mp_remote(Some(&inv), &["deploy", "--check"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stdout.contains("failed: local: "), "{}", run.stdout);
    let dirs = run_dirs(&dir.path().join(".mp-remote/runs"));
    let record = run_json(&dirs[0]);
    assert_eq!(record["command"], "deploy");
    assert_eq!(record["check"], true);
    assert_eq!(record["result"], "failed");
    assert_eq!(record["hosts"][0]["status"], "failed");
    assert!(
        record["hosts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("min_memory_gib"),
        "{record}"
    );
}

#[test]
fn ctrl_c_records_an_interrupted_run_and_exits_130() {
    // A "host" that accepts the connection and never says a word: the run hangs there.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");
    let inv = inventory(
        dir.path(),
        &format!(
            "[defaults]\nknown_hosts = \"{}\"\nconnect_timeout = \"120s\"\n\n[[hosts]]\nname = \"mute\"\naddress = \"127.0.0.1\"\nport = {port}\nroles = [\"nats\"]\n",
            known_hosts.display()
        ),
    );
    let runs = dir.path().join(".mp-remote/runs");
    let child = spawn_mp_remote(Some(&inv), &["facts"]);
    let (_held, _) = listener.accept().unwrap();
    wait_for("run.json", 30, || !run_dirs(&runs).is_empty());
    interrupt(&child);
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(130),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let record = run_json(&run_dirs(&runs)[0]);
    assert_eq!(record["interrupted"], true);
    assert_eq!(record["result"], "interrupted");
    assert_eq!(record["exit_code"], 130);
    assert_eq!(record["hosts"][0]["status"], "interrupted");
    assert!(stdout.contains("(interrupted)"), "{stdout}");
    let last = events(&run_dirs(&runs)[0]).pop().unwrap();
    assert_eq!(last["event"], "run_finished");
    assert_eq!(last["interrupted"], true);
}
