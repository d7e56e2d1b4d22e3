//! One agent at a time per host. After a dropped connection the first agent keeps going (it is
//! not tied to the SSH session); the next deploy's agent waits for it here, then finds its
//! work done and reports it unchanged: that is how a cut deploy resumes.

use std::fs::{File, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a new agent waits for a running one (a package install can take minutes).
pub const WAIT: Duration = Duration::from_secs(20 * 60);

/// Holds the host's agent lock until dropped (the OS releases it if the agent dies).
#[derive(Debug)]
pub struct AgentLock {
    _file: File,
}

/// Takes the lock, waiting up to `wait` for another agent; `on_wait` is called at every poll
/// while it waits (the caller follows the other agent's events meanwhile).
pub async fn acquire(
    state_dir: &str,
    wait: Duration,
    mut on_wait: impl FnMut(),
) -> Result<AgentLock, String> {
    std::fs::create_dir_all(state_dir).map_err(|e| format!("cannot create {state_dir}: {e}"))?;
    let path = Path::new(state_dir).join("agent.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(AgentLock { _file: file }),
            Err(TryLockError::WouldBlock) => {
                on_wait();
                if started.elapsed() >= wait {
                    return Err(format!(
                        "another mp-remote agent has held {} for {} s; if none runs (ps aux | grep mp-remote), remove the file",
                        path.display(),
                        wait.as_secs()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", path.display()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_agent_waits_then_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().to_str().unwrap();
        let first = acquire(dir, WAIT, || {}).await.unwrap();
        let mut waited = false;
        let second = acquire(dir, Duration::from_millis(300), || waited = true).await;
        assert!(waited);
        assert!(second.unwrap_err().contains("agent.lock"));
        drop(first);
        assert!(acquire(dir, Duration::from_millis(300), || {})
            .await
            .is_ok());
    }
}
