//! Bad inventories through the binary: refused with `file:line:col` and exit 1 before any
//! host is contacted, never a panic; and `report` on a record with names past any limit.
//! Loopback only: no test hosts.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use crate::support::mp_remote;

fn write(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("inv.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn deploy_refuses_what_it_would_refuse_later_before_connecting() {
    // A host that would answer: the listener tells whether anything connected.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let host = format!("[[hosts]]\nname = \"h\"\naddress = \"127.0.0.1\"\nport = {port}\nroles = [\"nats\", \"clickhouse\", \"collector\"]\n");
    for (extra, line, says) in [
        (
            "vars = { deploy_dri = \"/opt/mp\" }\n",
            6,
            "unknown var \"deploy_dri\"",
        ),
        (
            "vars = { collector_rate = \"fast\" }\n",
            6,
            "collector_rate",
        ),
        (
            "vars = { deploy_dir = \"/opt/x; rm -rf /\" }\n",
            6,
            "deploy_dir",
        ),
        (
            "[components.nats]\nsource = \"npm\"\n",
            7,
            "unknown source \"npm\"",
        ),
        (
            "[components.clickhouse]\nsource = \"release\"\nversion = \"25.10.1\"\n",
            8,
            "four-part",
        ),
        ("[thresholds]\nmin_memory_gib = -4\n", 7, "min_memory_gib"),
        ("user = \"root;id\"\n", 6, "invalid user"),
    ] {
        let inv = write(dir.path(), &format!("{host}{extra}"));
        for command in [&["inventory", "check"][..], &["deploy"][..]] {
            let run = mp_remote(Some(&inv), command);
            assert_eq!(run.code, 1, "{extra}{command:?}: {run:?}");
            let place = format!("{}:{line}:", inv.display());
            assert!(run.stderr.contains(&place), "{extra}: {place} in {run:?}");
            assert!(run.stderr.contains(says), "{extra}: {says} in {run:?}");
        }
    }
    assert!(
        listener.accept().is_err(),
        "a host was contacted for an inventory that is refused"
    );
}

#[test]
fn huge_and_hostile_names_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    for (name, says) in [
        ("h".repeat(65_536), "is too long"),
        ("h".repeat(252), "is too long"),
        ("x\\u001b[2J".to_string(), "is not allowed"),
    ] {
        let inv = write(
            dir.path(),
            &format!("[[hosts]]\nname = \"{name}\"\nconnection = \"local\"\n"),
        );
        let run = mp_remote(Some(&inv), &["facts"]);
        assert_eq!(run.code, 1, "{}", &run.stderr[..run.stderr.len().min(500)]);
        assert!(
            run.stderr.contains(says),
            "{}",
            &run.stderr[..run.stderr.len().min(500)]
        );
        assert!(
            run.stderr.len() < 2_000,
            "the name is cut: {} bytes",
            run.stderr.len()
        );
        assert!(
            !run.stderr.contains('\u{1b}'),
            "raw escape: {:?}",
            run.stderr
        );
    }
}

#[test]
fn a_missing_key_file_is_a_warning_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let inv = write(
        dir.path(),
        "[[hosts]]\nname = \"local\"\nconnection = \"local\"\nidentity_file = \"keys/not-yet\"\n",
    );
    let run = mp_remote(Some(&inv), &["inventory", "check"]);
    assert_eq!(run.code, 0, "{run:?}");
    let expected = format!("warning: {}:4:17: identity_file", inv.display());
    assert!(run.stderr.contains(&expected), "{run:?}");
}

#[test]
fn report_on_a_record_with_a_name_past_the_formatter_limit_does_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let run = mp_remote(None, &["--runs-dir", runs.to_str().unwrap(), "facts"]);
    assert_eq!(run.code, 0, "{run:?}");
    let run_dir = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let file = run_dir.join("run.json");
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let long = "h".repeat(65_536);
    record["hosts"][0]["name"] = long.clone().into();
    record["hosts"][0]["status"] = "failed".into();
    std::fs::write(&file, record.to_string()).unwrap();
    let report = mp_remote(None, &["--runs-dir", runs.to_str().unwrap(), "report"]);
    assert_eq!(
        report.code,
        0,
        "{}",
        &report.stderr[..report.stderr.len().min(500)]
    );
    assert!(report.stdout.contains(&long));
}
