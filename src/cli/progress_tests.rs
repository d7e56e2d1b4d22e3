//! The recorder's cost per host: run.json is rewritten a bounded number of times, not once
//! per host (which made a run quadratic in its hosts).

use std::time::{Duration, Instant};

use super::*;

fn settings(runs_dir: &std::path::Path) -> Settings {
    Settings {
        runs_dir: runs_dir.to_path_buf(),
        inventory: InventoryRef::default(),
        argv: vec!["mp-remote".into(), "facts".into()],
        quiet: true,
        verbose: false,
        color: false,
        live: false,
    }
}

#[tokio::test]
async fn many_hosts_write_run_json_a_bounded_number_of_times() {
    let dir = tempfile::tempdir().unwrap();
    let hosts: Vec<String> = (0..2000).map(|i| format!("h{i:05}")).collect();
    let started = Instant::now();
    let recorder = Recorder::start(
        &settings(dir.path()),
        "facts",
        false,
        &hosts,
        Redactor::default(),
    );
    for host in &hosts {
        let end = HostEnd::new(
            crate::report::HostStatus::Unreachable,
            Some(format!("{host}: refused")),
            Duration::from_millis(1),
        );
        recorder.host_done(host, end);
    }
    let record = recorder.finish(ExitCode::HostUnreachable, false, None);
    let writes = recorder.writer.as_ref().unwrap().records_written();
    // The start, the end, and at most one per RECORD_EVERY between (and one more for the
    // flusher's last tick): however many hosts there are.
    let bound = 3 + (started.elapsed().as_millis() / RECORD_EVERY.as_millis()) as usize;
    assert!(
        writes <= bound,
        "{writes} writes of run.json for {} hosts",
        hosts.len()
    );
    assert_eq!(record.hosts.len(), hosts.len());
    let written: RunRecord = serde_json::from_str(
        &std::fs::read_to_string(recorder.writer.as_ref().unwrap().dir().join("run.json")).unwrap(),
    )
    .unwrap();
    assert!(written
        .hosts
        .iter()
        .all(|h| h.status == crate::report::record::HostState::Unreachable));
    let events =
        std::fs::read_to_string(recorder.writer.as_ref().unwrap().dir().join("events.jsonl"))
            .unwrap();
    assert_eq!(events.matches("\"host_finished\"").count(), hosts.len());
}

#[tokio::test]
async fn a_host_recorded_between_writes_reaches_run_json_without_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = vec!["a".to_string(), "b".to_string()];
    let recorder = Recorder::start(
        &settings(dir.path()),
        "facts",
        false,
        &hosts,
        Redactor::default(),
    );
    for host in &hosts {
        let end = HostEnd::new(crate::report::HostStatus::Ok, None, Duration::ZERO);
        recorder.host_done(host, end);
    }
    let path = recorder.writer.as_ref().unwrap().dir().join("run.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let record: RunRecord =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if record
            .hosts
            .iter()
            .all(|h| h.status == crate::report::record::HostState::Ok)
        {
            break;
        }
        assert!(Instant::now() < deadline, "run.json never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    recorder.finish(ExitCode::Ok, false, None);
}
