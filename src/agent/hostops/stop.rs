//! `agent stop`: Ctrl-C on the control node. A deploy's agent does not die with its
//! connection (so that a cut deploy finishes), so the control node asks, over a fresh
//! connection, for the agent of its run to stop. The agent of a run is found by the event log
//! it holds open (`<state dir>/runs/<run id>.events.jsonl`); its process group gets SIGTERM,
//! and SIGKILL after [`GRACE`]. Servers under mp-remote's supervisor run in their own
//! sessions and are not touched.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::plan::probe::{StopRequest, Stopped};

/// How long the agent has to stop after SIGTERM.
const GRACE: Duration = Duration::from_secs(5);

pub async fn stop(request: &StopRequest) -> Stopped {
    let log = PathBuf::from(&request.state_dir)
        .join("runs")
        .join(format!("{}.events.jsonl", request.run_id));
    let pids = holders(Path::new("/proc"), &log);
    if pids.is_empty() {
        return Stopped::default();
    }
    let targets: Vec<i32> = pids
        .iter()
        .flat_map(|&pid| targets_of(pid, request.spare_group))
        .collect();
    signal(&targets, libc::SIGTERM);
    let deadline = tokio::time::Instant::now() + GRACE;
    let mut alive = pids.clone();
    while !alive.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        alive.retain(|&pid| running(pid));
    }
    let killed = !alive.is_empty();
    if killed {
        signal(&targets, libc::SIGKILL);
    }
    Stopped { pids, killed }
}

/// The processes with `log` open, found through `/proc/PID/fd`.
fn holders(proc: &Path, log: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(proc) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_dir(proc.join(pid.to_string()).join("fd"))
                .map(|fds| {
                    fds.flatten()
                        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l == log))
                })
                .unwrap_or(false)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// What to signal for the agent `pid`: its process group (negative), unless that group is
/// the one to spare (the control node's own, when the host is this machine) or init's; then
/// the agent and its children alone.
fn targets_of(pid: u32, spare_group: u32) -> Vec<i32> {
    let group = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| process_group(&stat));
    match group {
        Some(g) if g != spare_group && g > 1 => vec![-(g as i32)],
        _ => {
            let children = std::fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
                .flat_map(|c| {
                    c.split_whitespace()
                        .filter_map(|p| p.parse::<i32>().ok())
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>();
            std::iter::once(pid as i32).chain(children).collect()
        }
    }
}

/// The process group in a `/proc/PID/stat` line: the third field after the `)` that ends
/// the command name (which may itself hold spaces and parentheses).
fn process_group(stat: &str) -> Option<u32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(2)?.parse().ok()
}

fn signal(targets: &[i32], signal: i32) {
    for &target in targets {
        // SAFETY: kill(2) with a pid or a negated group id; errors (already gone) are fine.
        unsafe {
            libc::kill(target, signal);
        }
    }
}

/// Still there: a zombie has no open files left, so it counts as stopped.
fn running(pid: u32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|mut fds| fds.next().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn the_group_follows_the_command_name_whatever_it_holds() {
        assert_eq!(process_group("42 (mp-remote) S 1 4242 4242 0"), Some(4242));
        assert_eq!(process_group("42 (a) b) (c) S 7 99 99"), Some(99));
        assert_eq!(process_group("garbage"), None);
    }

    #[tokio::test]
    async fn stops_the_process_holding_the_run_log_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("runs")).unwrap();
        let log = dir.path().join("runs/r1.events.jsonl");
        std::fs::write(&log, "").unwrap();
        // A stand-in agent in its own process group, holding the run's log open.
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("exec 3>>'{}'; exec sleep 60", log.display()))
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        let found = wait_for(|| holders(Path::new("/proc"), &log).contains(&pid));
        assert!(found, "the stand-in agent never opened the log");
        let other = StopRequest {
            state_dir: dir.path().display().to_string(),
            run_id: "r2".into(),
            spare_group: 0,
        };
        assert_eq!(stop(&other).await, Stopped::default());
        let stopped = stop(&StopRequest {
            run_id: "r1".into(),
            ..other
        })
        .await;
        assert_eq!(stopped.pids, vec![pid]);
        assert!(!stopped.killed, "SIGTERM should have been enough");
        let status = child.wait().unwrap();
        assert!(!status.success());
    }

    fn wait_for(mut ok: impl FnMut() -> bool) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}
