//! Following an event log (`<state_dir>/runs/<run_id>.events.jsonl`) of an agent that is still
//! running, left behind by a cut connection. Two readers: [`Follower`], for the next deploy's
//! agent, which forwards an earlier run's events wrapped as `resumed` while it waits for the
//! lock; and [`follow_run`], behind `agent follow`, with which the control node re-attaches to
//! its own run after a dropped connection.

use std::fs::{File, TryLockError};
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::event::{AgentEvent, StepStatus};

/// Where the agent of run `run_id` writes its events.
pub fn log_path(state_dir: &Path, run_id: &str) -> PathBuf {
    state_dir
        .join("runs")
        .join(format!("{run_id}.events.jsonl"))
}

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
        Self {
            path: None,
            run_id: String::new(),
            offset: 0,
            own: log_path(Path::new(state_dir), own_run_id),
            runs_dir: Path::new(state_dir).join("runs"),
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

/// The part of a run's log written by its latest agent, from that agent's line `skip` on,
/// whole lines only. One deploy runs an agent per phase under the same run id, all appending
/// to one log, and each starts with `run_started`: a caller re-attaching to the agent of the
/// current phase counts that agent's events only.
pub struct LogReader {
    path: PathBuf,
    offset: u64,
    skip: usize,
    /// Lines of the latest agent read so far, the skipped ones included.
    lines: usize,
    /// The last whole line, for saying where a stopped agent was.
    last: Option<String>,
    /// The latest agent's `run_finished` was read.
    finished: bool,
}

impl LogReader {
    pub fn new(path: PathBuf, skip: usize) -> Self {
        Self {
            path,
            offset: 0,
            skip,
            lines: 0,
            last: None,
            finished: false,
        }
    }

    /// The latest agent's lines past `skip` written since the last call (without their
    /// newline). Lines of earlier agents are read but not returned, provided the latest
    /// agent's `run_started` is already in the log (the caller has seen it on the agent's
    /// stdout, which gets each event just before the log does). The file is open only during
    /// the call, so that it never counts as a holder of the log.
    pub fn poll(&mut self) -> std::io::Result<Vec<String>> {
        let mut file = File::open(&self.path)?;
        file.seek(SeekFrom::Start(self.offset))?;
        let mut reader = BufReader::new(file);
        let (mut new, mut line) = (Vec::new(), String::new());
        // A line being written is read at the next poll.
        while reader.read_line(&mut line)? > 0 && line.ends_with('\n') {
            self.offset += line.len() as u64;
            let text = line.trim_end_matches('\n').to_string();
            match serde_json::from_str::<AgentEvent>(&text) {
                Ok(AgentEvent::RunStarted { .. }) => {
                    // A later agent: what came before was an earlier phase's.
                    new.clear();
                    (self.lines, self.finished) = (0, false);
                }
                Ok(AgentEvent::RunFinished { .. }) => self.finished = true,
                _ => {}
            }
            self.lines += 1;
            if self.lines > self.skip {
                new.push(text.clone());
            }
            self.last = Some(text);
            line.clear();
        }
        Ok(new)
    }

    pub fn finished(&self) -> bool {
        self.finished
    }

    pub fn last(&self) -> Option<&str> {
        self.last.as_deref()
    }
}

/// How a follow of a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowEnd {
    /// Its `run_finished` was printed.
    Finished,
    /// Its agent is gone without `run_finished`; `last` is the last line of its log.
    Stopped { last: Option<String> },
}

/// How often [`follow_run`] looks, and how long it waits for a log that is not there yet.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub poll: Duration,
    /// The most a run's agent waits for the host's agent lock before it opens its log.
    pub lock_wait: Duration,
    /// How long a missing log with a free lock is given: the agent opens its log a moment
    /// after it takes the lock (a check takes none).
    pub grace: Duration,
    /// How often a quiet log's holders are looked for (a scan of /proc).
    pub liveness: Duration,
}

impl Pace {
    pub const DEFAULT: Pace = Pace {
        poll: Duration::from_millis(200),
        lock_wait: super::lock::WAIT,
        grace: Duration::from_secs(3),
        liveness: Duration::from_secs(1),
    };
}

/// Hands `out` the lines of run `run_id`'s latest agent after its first `skip` (see
/// [`LogReader`]), as they are written, until its `run_finished` (→ `Finished`) or until no
/// process holds the log open any more (→ `Stopped`, after a last read). Err: the log exists
/// but cannot be read.
pub async fn follow_run(
    state_dir: &Path,
    run_id: &str,
    skip: usize,
    out: &mut (dyn FnMut(&str) + Send),
    pace: Pace,
) -> std::io::Result<FollowEnd> {
    let path = log_path(state_dir, run_id);
    let mut reader = LogReader::new(path.clone(), skip);
    let started = Instant::now();
    let mut absent_since: Option<Instant> = None;
    let mut looked = Instant::now();
    loop {
        match reader.poll() {
            Ok(lines) => {
                lines.iter().for_each(|line| out(line));
                if reader.finished() {
                    return Ok(FollowEnd::Finished);
                }
                let look = lines.is_empty() && looked.elapsed() >= pace.liveness;
                if look && !held_open(&path) {
                    // It may have written its last lines just before it exited.
                    reader.poll()?.iter().for_each(|line| out(line));
                    return Ok(if reader.finished() {
                        FollowEnd::Finished
                    } else {
                        FollowEnd::Stopped {
                            last: reader.last().map(str::to_string),
                        }
                    });
                }
                if look {
                    looked = Instant::now();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Not opened yet: while another agent holds the lock, ours waits for it.
                let waiting = lock_held(state_dir) && started.elapsed() < pace.lock_wait;
                let since = *absent_since.get_or_insert_with(Instant::now);
                if waiting {
                    absent_since = None;
                } else if since.elapsed() >= pace.grace {
                    return Ok(FollowEnd::Stopped { last: None });
                }
            }
            Err(e) => return Err(e),
        }
        tokio::time::sleep(pace.poll).await;
    }
}

/// True when some process has `path` open: the agent of a run holds its log for its whole
/// life (as `agent_exec`'s stop script finds it), and the OS closes it when it dies.
pub fn held_open(path: &Path) -> bool {
    let Ok(target) = path.canonicalize() else {
        return false;
    };
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return false;
    };
    processes
        .filter_map(Result::ok)
        .filter(|p| {
            p.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .any(|process| {
            std::fs::read_dir(process.path().join("fd"))
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|link| link == target))
        })
}

/// True when an agent holds the host's agent lock (`lock.rs`); tried without waiting and
/// released at once.
fn lock_held(state_dir: &Path) -> bool {
    let Ok(file) = File::open(state_dir.join("agent.lock")) else {
        return false;
    };
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(TryLockError::WouldBlock) => true,
        Err(TryLockError::Error(_)) => false,
    }
}

/// The one line `agent follow` ends with when the agent is gone.
pub fn stopped_message(run_id: &str, last: Option<&str>) -> String {
    let last = match last {
        Some(line) => summary(line),
        None => "none (it wrote no event log)".to_string(),
    };
    format!("the agent of run {run_id} stopped before finishing (killed, or the host restarted); its last event: {last}")
}

/// An event log line in a few words.
fn summary(line: &str) -> String {
    match serde_json::from_str::<AgentEvent>(line) {
        Ok(AgentEvent::RunStarted { .. }) => "run started".into(),
        // Step ids name their layer ("install.nats.packages").
        Ok(AgentEvent::StepStarted { step, title, .. }) => format!("{step} started ({title})"),
        Ok(AgentEvent::StepFinished(end)) => {
            let status = match end.status {
                StepStatus::Ok => "ok",
                StepStatus::Changed => "changed",
                StepStatus::Skipped => "skipped",
                StepStatus::Failed => "failed",
            };
            format!("{} {status}: {}", end.step, end.message)
        }
        Ok(AgentEvent::RunFinished { ok, .. }) => format!("run finished (ok: {ok})"),
        Ok(AgentEvent::Resumed { run_id, .. }) => format!("an event of run {run_id}"),
        Err(_) => line.chars().take(120).collect(),
    }
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

    const STARTED: &str = r#"{"event":"run_started","host":"h1","run_id":"1-1","agent_version":"0.1.0","check_only":false}"#;
    const STEP: &str = r#"{"event":"step_started","layer":"install","step":"install.nats.packages","title":"install nats-server"}"#;
    const FINISHED: &str =
        r#"{"event":"run_finished","ok":true,"changed":1,"failed":0,"duration_ms":5}"#;

    const FAST: Pace = Pace {
        poll: Duration::from_millis(10),
        lock_wait: Duration::from_secs(5),
        grace: Duration::from_millis(50),
        liveness: Duration::ZERO,
    };

    fn state_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("runs")).unwrap();
        dir
    }

    async fn follow(state: &Path, skip: usize, pace: Pace) -> (FollowEnd, Vec<String>) {
        let mut seen = Vec::new();
        let end = follow_run(state, "1-1", skip, &mut |l| seen.push(l.to_string()), pace)
            .await
            .unwrap();
        (end, seen)
    }

    #[test]
    fn the_reader_skips_lines_and_leaves_a_half_written_one_for_later() {
        let state = state_dir();
        let path = log_path(state.path(), "1-1");
        std::fs::write(&path, format!("{STARTED}\n{STEP}\n{{\"event\":\"run_fin")).unwrap();
        let mut reader = LogReader::new(path.clone(), 1);
        assert_eq!(reader.poll().unwrap(), vec![STEP.to_string()]);
        assert!(reader.poll().unwrap().is_empty());
        std::fs::write(&path, format!("{STARTED}\n{STEP}\n{FINISHED}\n")).unwrap();
        assert_eq!(reader.poll().unwrap(), vec![FINISHED.to_string()]);
        assert!(reader.finished());
        assert_eq!(reader.last(), Some(FINISHED));
    }

    #[tokio::test]
    async fn follows_the_latest_agent_of_the_run_in_pieces_until_its_run_finished() {
        use std::io::Write;
        let state = state_dir();
        // Held open for the whole test, as the agent holds its log: it is alive.
        let mut log = std::fs::File::create(log_path(state.path(), "1-1")).unwrap();
        // An earlier phase's agent, done; then the one to follow, half-way through a line.
        write!(log, "{STARTED}\n{STEP}\n{FINISHED}\n").unwrap();
        write!(log, "{STARTED}\n{}", &STEP[..20]).unwrap();
        let following = tokio::spawn({
            let state = state.path().to_path_buf();
            async move { follow(&state, 1, FAST).await }
        });
        write!(log, "{}\n{FINISHED}\n", &STEP[20..]).unwrap();
        let (end, seen) = following.await.unwrap();
        assert_eq!(end, FollowEnd::Finished);
        assert_eq!(seen, vec![STEP.to_string(), FINISHED.to_string()]);
        drop(log);
    }

    #[tokio::test]
    async fn a_log_nobody_holds_without_run_finished_means_the_agent_stopped() {
        let state = state_dir();
        std::fs::write(
            log_path(state.path(), "1-1"),
            format!("{STARTED}\n{STEP}\n"),
        )
        .unwrap();
        let (end, seen) = follow(state.path(), 0, FAST).await;
        assert_eq!(seen, vec![STARTED.to_string(), STEP.to_string()]);
        let FollowEnd::Stopped { last } = end else {
            panic!("{end:?}")
        };
        assert_eq!(
            stopped_message("1-1", last.as_deref()),
            "the agent of run 1-1 stopped before finishing (killed, or the host restarted); its last event: install.nats.packages started (install nats-server)"
        );
    }

    #[tokio::test]
    async fn a_finished_log_is_finished_even_when_nobody_holds_it() {
        let state = state_dir();
        std::fs::write(
            log_path(state.path(), "1-1"),
            format!("{STARTED}\n{FINISHED}\n"),
        )
        .unwrap();
        let (end, seen) = follow(state.path(), 2, FAST).await;
        assert_eq!(end, FollowEnd::Finished);
        assert!(seen.is_empty(), "everything was skipped: {seen:?}");
    }

    #[tokio::test]
    async fn a_missing_log_is_waited_for_only_while_the_agent_lock_is_held() {
        let state = state_dir();
        let (end, _) = follow(state.path(), 0, FAST).await;
        assert_eq!(end, FollowEnd::Stopped { last: None });

        let dir = state.path().to_str().unwrap();
        let _lock = crate::agent::lock::acquire(dir, Duration::ZERO, || {})
            .await
            .unwrap();
        let pace = Pace {
            lock_wait: Duration::from_millis(300),
            grace: Duration::ZERO,
            ..FAST
        };
        let started = Instant::now();
        let (end, _) = follow(state.path(), 0, pace).await;
        assert_eq!(end, FollowEnd::Stopped { last: None });
        assert!(started.elapsed() >= pace.lock_wait, "it did not wait");
    }
}
