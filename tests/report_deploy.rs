//! The run record of real deploys on one test host: Ctrl-C in the middle of the install stops
//! the agent on the host and leaves an interrupted record (exit 130); the next deploy ends ok
//! with a full record (run.json, events.jsonl, the host's log), and the generated ClickHouse
//! password (or its sha256) appears in no file of any run nor in any report.

use sha2::Digest;

use crate::support::runs::{events, files_under, interrupt, run_dirs, run_json, spawn_mp_remote};
use crate::support::wait_for;
use crate::support::{mp_remote, Fleet};

const COMPONENTS: &str =
    "[components.nats]\nsource = \"os\"\n\n[components.clickhouse]\nsource = \"os\"\n";

#[test]
fn deploy_records_runs_and_never_the_password() {
    let fleet = Fleet::up("report1", 1, 0);
    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.roles = &["nats", "clickhouse"];
    options.extra = COMPONENTS;
    let inventory = fleet.inventory("inv.toml", &options);
    let runs = fleet.path(".mp-remote/runs");

    // Ctrl-C while the packages install.
    let child = spawn_mp_remote(Some(&inventory), &["deploy"]);
    wait_for("the package install to start", 240, || {
        !fleet
            .exec("h1", "pgrep -x apt-get || pgrep -x dpkg || true")
            .trim()
            .is_empty()
    });
    // The run holds the fleet lock while it works; Ctrl-C gives it back.
    assert!(fleet.holds("h1", "test -e /run/mp-remote/lease.json"));
    interrupt(&child);
    let cut = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&cut.stdout),
        String::from_utf8_lossy(&cut.stderr),
    );
    println!("interrupted deploy:\n{stdout}{stderr}");
    assert_eq!(cut.status.code(), Some(130), "{stdout}{stderr}");
    assert!(
        !fleet.holds("h1", "test -e /run/mp-remote/lease.json"),
        "the interrupted run kept its lease"
    );
    assert!(
        stderr.contains("telling the agents on 1 host(s) to stop"),
        "{stderr}"
    );
    // The agent was told to stop; on a loaded machine it can end its plan before the word
    // arrives, and then says none is running. Either way it must be gone just after.
    assert!(
        (stderr.contains("agent (pid ")
            && (stderr.contains(") stopped") || stderr.contains(") killed")))
            || stderr.contains("no agent of this run is running"),
        "{stderr}"
    );
    // The agent (and the install under it) is gone from the host.
    wait_for("the agent to be gone", 20, || {
        fleet
            .exec("h1", "pgrep -f '[a]gent run --plan' || true")
            .trim()
            .is_empty()
    });
    let dirs = run_dirs(&runs);
    assert_eq!(dirs.len(), 1);
    let record = run_json(&dirs[0]);
    assert_eq!(record["interrupted"], true, "{record}");
    assert_eq!(record["result"], "interrupted");
    assert_eq!(record["exit_code"], 130);
    let host = &record["hosts"][0];
    assert_eq!(host["status"], "interrupted", "{record}");
    let steps = host["steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s["status"] == "interrupted" && s["layer"] == "install"),
        "{record}"
    );

    // The next deploy finishes the job (repairing what the cut install left).
    let full = mp_remote(Some(&inventory), &["deploy"]);
    println!("deploy:\n{}{}", full.stdout, full.stderr);
    assert_eq!(full.code, 0, "{full:?}");
    let dirs = run_dirs(&runs);
    assert_eq!(dirs.len(), 2);
    let record = run_json(&dirs[1]);
    assert_eq!(record["format"], 1);
    assert_eq!(record["command"], "deploy");
    assert_eq!(record["result"], "ok");
    assert_eq!(record["interrupted"], false);
    let host = &record["hosts"][0];
    assert_eq!(host["status"], "ok");
    assert_eq!(host["facts"]["os"], "debian");
    assert_eq!(host["facts"]["version"], "12");
    let nats = host["versions"]["nats-server"].as_str().unwrap_or_default();
    assert!(nats.starts_with("2.9.10"), "{record}");
    assert!(
        host["versions"]["clickhouse-server"].is_string(),
        "{record}"
    );
    let steps = host["steps"].as_array().unwrap();
    assert!(steps.len() > 10, "{record}");
    for step in steps {
        assert!(
            ["ok", "changed", "skipped"].contains(&step["status"].as_str().unwrap()),
            "{step}"
        );
        assert!(step["started"].as_str().unwrap().ends_with('Z'), "{step}");
        assert!(
            step["duration_ms"].is_u64() && step["offset_ms"].is_u64(),
            "{step}"
        );
    }
    for layer in ["install", "init"] {
        assert!(
            steps.iter().any(|s| s["layer"] == layer),
            "no {layer} step: {record}"
        );
    }
    let finished = events(&dirs[1])
        .iter()
        .filter(|e| e["event"] == "step_finished" && e["host"] == "h1")
        .count();
    assert_eq!(finished, steps.len(), "every step is in events.jsonl");
    let log = std::fs::read_to_string(dirs[1].join("hosts/h1.log")).unwrap();
    assert!(log.contains(" started: "), "{log}");

    // Reports of the full deploy, written beside the runs.
    let reports = fleet.path("reports");
    std::fs::create_dir_all(&reports).unwrap();
    for format in ["text", "json", "junit", "html"] {
        let file = reports.join(format!("report.{format}"));
        let run = mp_remote(
            Some(&inventory),
            &["report", "--format", format, "-o", file.to_str().unwrap()],
        );
        assert_eq!(run.code, 0, "{run:?}");
    }

    // The password, and its sha256 (which users.d holds), in no file of either run, in no
    // report, and in no terminal output.
    let secret = fleet.exec("h1", "cat /etc/marketprism/clickhouse-password");
    let secret = secret.trim();
    assert_eq!(secret.len(), 32);
    let hash = hex::encode(sha2::Sha256::digest(secret.as_bytes()));
    let mut files = files_under(&fleet.path(".mp-remote"));
    files.extend(files_under(&reports));
    assert!(files.len() >= 10, "{files:?}");
    for file in &files {
        let text = String::from_utf8_lossy(&std::fs::read(file).unwrap()).to_lowercase();
        assert!(
            !text.contains(secret),
            "the password is in {}",
            file.display()
        );
        assert!(
            !text.contains(&hash),
            "the password's sha256 is in {}",
            file.display()
        );
    }
    for text in [
        &full.stdout,
        &full.stderr,
        &stdout.to_string(),
        &stderr.to_string(),
    ] {
        assert!(!text.contains(secret) && !text.contains(&hash));
    }
}
