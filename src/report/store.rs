//! The runs directory on disk (the one part of `report` that does I/O):
//! `<runs dir>/<run id>/run.json`, `events.jsonl` and `hosts/<host>.log`. Everything written
//! goes through the run's [`Redactor`] first.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::record::{RunRecord, RunResult};
use super::redact::Redactor;

pub const RUN_FILE: &str = "run.json";
pub const EVENTS_FILE: &str = "events.jsonl";

/// `<inventory dir>/.mp-remote/runs`; `./.mp-remote/runs` for the embedded inventory.
pub fn default_runs_dir(inventory: Option<&Path>) -> PathBuf {
    let base = inventory
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    base.join(".mp-remote").join("runs")
}

/// One run's directory, open for writing while the run goes on.
pub struct RunWriter {
    dir: PathBuf,
    redactor: Redactor,
    events: Mutex<File>,
    logs: Mutex<HashMap<String, File>>,
    /// Times run.json was written: a run's cost grows with it.
    records_written: AtomicUsize,
}

impl RunWriter {
    /// Creates `<runs_dir>/<id>/` with `run.json` (as it is now) and an empty `events.jsonl`.
    pub fn create(
        runs_dir: &Path,
        record: &RunRecord,
        redactor: Redactor,
    ) -> std::io::Result<Self> {
        let dir = runs_dir.join(&record.id);
        std::fs::create_dir_all(dir.join("hosts"))?;
        let events = File::options()
            .create(true)
            .append(true)
            .open(dir.join(EVENTS_FILE))?;
        let writer = Self {
            dir,
            redactor,
            events: Mutex::new(events),
            logs: Mutex::new(HashMap::new()),
            records_written: AtomicUsize::new(0),
        };
        writer.write_record(record)?;
        Ok(writer)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Replaces `run.json` atomically (temp file, then rename): a reader never sees half.
    pub fn write_record(&self, record: &RunRecord) -> std::io::Result<()> {
        let json = self
            .redactor
            .to_json(record)
            .map_err(std::io::Error::other)?;
        let text = serde_json::to_string_pretty(&json).map_err(std::io::Error::other)?;
        let temp = self.dir.join(format!(".{RUN_FILE}.tmp"));
        let mut file = File::create(&temp)?;
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&temp, self.dir.join(RUN_FILE))?;
        self.records_written.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// How many times run.json was written so far.
    pub fn records_written(&self) -> usize {
        self.records_written.load(Ordering::Relaxed)
    }

    /// Appends one event (a JSON object) as one line, written through at once.
    pub fn write_event(&self, mut event: serde_json::Value) -> std::io::Result<()> {
        self.redactor.redact_json(&mut event);
        let mut line = serde_json::to_string(&event).map_err(std::io::Error::other)?;
        line.push('\n');
        let mut file = self.events.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(line.as_bytes())
    }

    /// Appends `text` to the host's log (`log` is the path relative to the run directory, as
    /// the record names it).
    pub fn append_log(&self, log: &str, text: &str) -> std::io::Result<()> {
        let text = self.redactor.redact(text);
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        if !logs.contains_key(log) {
            let file = File::options()
                .create(true)
                .append(true)
                .open(self.dir.join(log))?;
            logs.insert(log.to_string(), file);
        }
        let file = logs.get_mut(log).expect("opened above");
        file.write_all(text.as_bytes())
    }

    /// Closes the host's log (a host that is done); a later line opens it again.
    pub fn close_log(&self, log: &str) {
        self.logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(log);
    }
}

/// A run found in the runs directory.
#[derive(Debug, Clone)]
pub struct StoredRun {
    pub dir: PathBuf,
    pub record: RunRecord,
}

/// Every readable run under `runs_dir`, oldest first. A run still marked `running` whose
/// control process is gone was lost (killed, machine down): it reads as interrupted.
pub fn list(runs_dir: &Path) -> Vec<StoredRun> {
    let Ok(entries) = std::fs::read_dir(runs_dir) else {
        return Vec::new();
    };
    let mut runs: Vec<StoredRun> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| read(&entry.path()).ok())
        .collect();
    runs.sort_by(|a, b| (&a.record.started, &a.record.id).cmp(&(&b.record.started, &b.record.id)));
    runs
}

/// One run: its id, a unique prefix of it, or `latest`.
pub fn find(runs_dir: &Path, which: &str) -> Result<StoredRun, String> {
    let runs = list(runs_dir);
    if runs.is_empty() {
        return Err(format!(
            "no runs recorded in {} (deploy, update, clean and facts record one; --runs-dir to look elsewhere)",
            runs_dir.display()
        ));
    }
    if which == "latest" {
        return Ok(runs.last().cloned().expect("not empty"));
    }
    if let Some(run) = runs.iter().find(|r| r.record.id == which) {
        return Ok(run.clone());
    }
    let matching: Vec<&StoredRun> = runs
        .iter()
        .filter(|r| r.record.id.starts_with(which))
        .collect();
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!(
            "no run {which} in {}: `mp-remote runs` lists them",
            runs_dir.display()
        )),
        many => Err(format!(
            "{which} names {} runs in {}; give more of the id",
            many.len(),
            runs_dir.display()
        )),
    }
}

fn read(dir: &Path) -> Result<StoredRun, String> {
    let path = dir.join(RUN_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut record: RunRecord =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if record.result == RunResult::Running && !process_alive(record.pid) {
        record.result = RunResult::Interrupted;
        record.interrupted = true;
    }
    Ok(StoredRun {
        dir: dir.to_path_buf(),
        record,
    })
}

fn process_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let result = unsafe { libc::kill(pid as i32, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::record::RECORD_FORMAT;

    fn record(id: &str, started: &str, pid: u32) -> RunRecord {
        RunRecord {
            format: RECORD_FORMAT,
            id: id.into(),
            command: "facts".into(),
            started: started.into(),
            pid,
            ..RunRecord::default()
        }
    }

    #[test]
    fn default_dir_is_beside_the_inventory() {
        assert_eq!(
            default_runs_dir(Some(Path::new("/x/inv.toml"))),
            Path::new("/x/.mp-remote/runs")
        );
        assert_eq!(
            default_runs_dir(Some(Path::new("inv.toml"))),
            Path::new("./.mp-remote/runs")
        );
        assert_eq!(default_runs_dir(None), Path::new("./.mp-remote/runs"));
    }

    #[test]
    fn writes_redacted_and_finds_runs() {
        let dir = tempfile::tempdir().unwrap();
        let redactor = Redactor::default();
        let first = record(
            "20240101-000000-1",
            "2024-01-01T00:00:00.000Z",
            std::process::id(),
        );
        let writer = RunWriter::create(dir.path(), &first, redactor.clone()).unwrap();
        redactor.register("s3cr3t-password");
        writer
            .write_event(serde_json::json!({"event": "x", "message": "pw s3cr3t-password"}))
            .unwrap();
        writer
            .append_log("hosts/h1.log", "s3cr3t-password\n")
            .unwrap();
        let mut done = first.clone();
        done.error = Some("s3cr3t-password".into());
        writer.write_record(&done).unwrap();
        let run_dir = dir.path().join("20240101-000000-1");
        let events = std::fs::read_to_string(run_dir.join(EVENTS_FILE)).unwrap();
        assert_eq!(events, "{\"event\":\"x\",\"message\":\"pw ********\"}\n");
        let log = std::fs::read_to_string(run_dir.join("hosts/h1.log")).unwrap();
        assert_eq!(log, "********\n");
        assert!(!std::fs::read_to_string(run_dir.join(RUN_FILE))
            .unwrap()
            .contains("s3cr3t"));

        // A second run, from a process long gone and never finished: lost, so interrupted.
        let lost = record("20240102-000000-2", "2024-01-02T00:00:00.000Z", u32::MAX);
        RunWriter::create(dir.path(), &lost, Redactor::default()).unwrap();
        let runs = list(dir.path());
        assert_eq!(runs.len(), 2);
        assert_eq!(
            runs[0].record.result,
            RunResult::Running,
            "its process is this one"
        );
        assert_eq!(runs[1].record.result, RunResult::Interrupted);
        assert!(runs[1].record.interrupted);
        assert_eq!(
            find(dir.path(), "latest").unwrap().record.id,
            "20240102-000000-2"
        );
        assert_eq!(
            find(dir.path(), "20240101").unwrap().record.id,
            "20240101-000000-1"
        );
        assert!(find(dir.path(), "2024").unwrap_err().contains("2 runs"));
        assert!(find(dir.path(), "1999")
            .unwrap_err()
            .contains("mp-remote runs"));
    }
}
