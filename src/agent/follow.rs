//! Following the event log of an agent that is still running (left behind by a cut
//! connection): while the new agent waits for the lock, the earlier run's events are forwarded
//! to the control node, wrapped as `resumed`, so the user sees that run finish live.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::event::AgentEvent;

pub struct Follower {
    path: Option<PathBuf>,
    run_id: String,
    offset: u64,
    /// Our own run's log, never followed.
    own: PathBuf,
    runs_dir: PathBuf,
}

impl Follower {
    pub fn new(state_dir: &str, own_run_id: &str) -> Self {
        let runs_dir = Path::new(state_dir).join("runs");
        Self {
            path: None,
            run_id: String::new(),
            offset: 0,
            own: runs_dir.join(format!("{own_run_id}.events.jsonl")),
            runs_dir,
        }
    }

    /// The events written since the last call, oldest first.
    pub fn poll(&mut self) -> Vec<AgentEvent> {
        if self.path.is_none() {
            self.path = self.newest_log();
            if let Some(path) = &self.path {
                self.run_id = run_id_of(path);
            }
        }
        let Some(path) = &self.path else {
            return Vec::new();
        };
        let Ok(mut file) = std::fs::File::open(path) else {
            return Vec::new();
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut events = Vec::new();
        let mut reader = BufReader::new(file);
        let mut line = String::new();
        // Only whole lines: a line being written is read at the next poll.
        while reader.read_line(&mut line).unwrap_or(0) > 0 && line.ends_with('\n') {
            self.offset += line.len() as u64;
            if let Ok(event) = serde_json::from_str::<AgentEvent>(&line) {
                events.push(AgentEvent::Resumed {
                    run_id: self.run_id.clone(),
                    of: Box::new(event),
                });
            }
            line.clear();
        }
        events
    }

    /// The most recently written event log that is not ours.
    fn newest_log(&self) -> Option<PathBuf> {
        std::fs::read_dir(&self.runs_dir)
            .ok()?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| *path != self.own && path.to_string_lossy().ends_with(".events.jsonl"))
            .max_by_key(|path| path.metadata().and_then(|m| m.modified()).ok())
    }
}

fn run_id_of(path: &Path) -> String {
    path.file_name()
        .map(|n| {
            n.to_string_lossy()
                .trim_end_matches(".events.jsonl")
                .to_string()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_other_run_line_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().to_str().unwrap();
        std::fs::create_dir_all(dir.path().join("runs")).unwrap();
        let other = dir.path().join("runs/111-1.events.jsonl");
        let finished =
            r#"{"event":"run_finished","ok":true,"changed":1,"failed":0,"duration_ms":5}"#;
        std::fs::write(&other, format!("{finished}\n{{\"event\":\"run_fin")).unwrap();
        let mut follower = Follower::new(state, "222-2");
        let events = follower.poll();
        assert_eq!(events.len(), 1, "the half-written line waits");
        assert!(matches!(&events[0], AgentEvent::Resumed { run_id, .. } if run_id == "111-1"));
        assert!(follower.poll().is_empty());
        std::fs::write(&other, format!("{finished}\n{finished}\n")).unwrap();
        assert_eq!(follower.poll().len(), 1);
    }
}
