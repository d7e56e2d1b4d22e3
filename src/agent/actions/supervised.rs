//! A server kept running by the agent's own supervisor, on hosts without systemd. Left alone
//! when its supervisor runs it with the wanted command line and configuration; otherwise
//! started (or stopped and started again) detached, so it outlives the agent and the SSH
//! session. A step feeding it that changed in this run restarts it, as systemd's would.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::agent::outcome::{Outcome, StepError};
use crate::agent::supervise::{self, Paths, Running, ServerCommand};

/// How long a supervisor gets to show up with its server running.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// A server still running this long after its start did not die of a bad config at once.
const SETTLE: Duration = Duration::from_secs(1);
/// Longer than the supervisor's own grace for its server.
const STOP_TIMEOUT: Duration = Duration::from_secs(45);
/// A log above this size is moved to `NAME.log.1` when the supervisor (re)starts.
const LOG_ROTATE_BYTES: u64 = 16 << 20;

pub async fn apply(
    name: &str,
    user: &str,
    command: &[String],
    config_files: &[String],
    notified: bool,
    check_only: bool,
) -> Result<Outcome, StepError> {
    let program = command
        .first()
        .ok_or_else(|| StepError::new(format!("{name}: the plan gives no command line")))?;
    let wanted = ServerCommand {
        name: name.to_string(),
        user: user.to_string(),
        config_hash: config_hash(program, config_files),
        command: command.to_vec(),
    };
    let running = supervise::inspect(name);
    let change = match (&running.supervisor, running.supervised_server()) {
        (None, _) if orphan(&running, program).is_some() => {
            format!("restart {name} (its supervisor was gone)")
        }
        (None, _) => format!("start {name} (supervised: no systemd on this host)"),
        (Some((_, args)), _) if *args != wanted.supervisor_args() => format!(
            "restart {name} (its binary, configuration or command line changed since it started)"
        ),
        (Some(_), None) => format!(
            "restart {name} (it was not running: {})",
            crate::agent::outcome::tail(&supervise::log_since(name, 0), 1).trim()
        ),
        (Some(_), Some(_)) if notified => {
            format!("restart {name} (its configuration or binary changed)")
        }
        (Some((supervisor, _)), Some(server)) => {
            return Ok(Outcome::unchanged(format!(
                "{name} running (pid {server}, supervised by pid {supervisor}; log {})",
                Paths::of(name).log.display()
            )))
        }
    };
    if check_only {
        return Ok(Outcome::changed(change.clone(), vec![change]));
    }
    stop(name, &running, program).await;
    let (supervisor, server) = start(&wanted).await?;
    Ok(Outcome::changed(
        format!("{change}: pid {server}, supervised by pid {supervisor}"),
        vec![change],
    ))
}

/// What the server was started with, short enough to read in `ps`: the configuration files'
/// contents, and the binary by size and modification time (a package upgrade restarts the
/// server, as its postinst would under systemd; hashing a 200 MB binary on every deploy would
/// not pay).
fn config_hash(program: &str, config_files: &[String]) -> String {
    let mut hash = Sha256::new();
    match std::fs::metadata(program) {
        Ok(meta) => {
            use std::os::unix::fs::MetadataExt;
            hash.update(format!("{program} {} {}\0", meta.len(), meta.mtime()));
        }
        Err(_) => hash.update(format!("{program} missing\0")),
    }
    for path in config_files {
        hash.update(format!("{path}\0"));
        match std::fs::read(path) {
            Ok(bytes) => hash.update(&bytes),
            Err(_) => hash.update(b"missing"),
        }
        hash.update(b"\0");
    }
    hex::encode(hash.finalize())[..16].to_string()
}

/// A server of ours whose supervisor is gone (killed with SIGKILL): it still holds its ports.
fn orphan(running: &Running, program: &str) -> Option<u32> {
    running.server.filter(|pid| {
        running.supervisor.is_none()
            && supervise::cmdline(*pid).is_some_and(|args| args[0] == program)
    })
}

/// Stops the supervisor (which stops its server), and a server left without one.
async fn stop(name: &str, running: &Running, program: &str) {
    if let Some((pid, _)) = &running.supervisor {
        supervise::send_signal(*pid, "TERM").await;
        if !supervise::wait_gone(*pid, STOP_TIMEOUT).await {
            // Stuck: take it down with whatever it runs, or the new server finds its ports taken.
            for pid in [Some(*pid), running.server].into_iter().flatten() {
                supervise::send_signal(pid, "KILL").await;
            }
        }
    }
    if let Some(pid) = orphan(running, program) {
        supervise::send_signal(pid, "TERM").await;
        if !supervise::wait_gone(pid, STOP_TIMEOUT).await {
            supervise::send_signal(pid, "KILL").await;
            supervise::wait_gone(pid, Duration::from_secs(5)).await;
        }
    }
    let paths = Paths::of(name);
    for pid_file in [&paths.server_pid, &paths.supervisor_pid] {
        let _ = std::fs::remove_file(pid_file);
    }
}

/// Starts a supervisor in its own session (`setsid --fork`: no terminal, no parent to wait for
/// it), then waits until its server runs and is still running a moment later. Returns the pids
/// of the supervisor and the server.
async fn start(server: &ServerCommand) -> Result<(u32, u32), StepError> {
    let name = &server.name;
    let paths = Paths::of(name);
    let exe = std::env::current_exe()
        .map_err(|e| StepError::new(format!("cannot locate the agent's own binary: {e}")))?;
    let cannot_open =
        |e: std::io::Error| StepError::new(format!("cannot open {}: {e}", paths.log.display()));
    let log = open_log(&paths.log).map_err(cannot_open)?;
    // This start's lines begin here: only they tell how it went.
    let offset = log.metadata().map_err(cannot_open)?.len();
    let status = Command::new("setsid")
        .arg("--fork")
        .arg(&exe)
        .args(server.supervisor_args())
        .current_dir("/")
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(cannot_open)?)
        .stderr(log)
        .status()
        .await
        .map_err(|e| {
            StepError::new(format!(
                "cannot run setsid to start {name}'s supervisor: {e}"
            ))
            .hint("install util-linux (it provides setsid), then deploy again")
        })?;
    if !status.success() {
        let message = format!("setsid could not start {name}'s supervisor ({status})");
        return Err(failure(name, message, offset));
    }
    // Read from the log too: a server or supervisor that ends at once may never be seen alive.
    let logged = |event| supervise::supervisor_logged(&supervise::log_since(name, offset), event);
    let exited =
        || format!("{name} exited right after it started (its supervisor retries with backoff)");
    let deadline = Instant::now() + START_TIMEOUT;
    let (supervisor, pid) = loop {
        let running = supervise::inspect(name);
        if let (Some((supervisor, args)), Some(pid)) =
            (&running.supervisor, running.supervised_server())
        {
            if *args == server.supervisor_args() {
                break (*supervisor, pid);
            }
        }
        let message = if logged(supervise::SUPERVISOR_STOPPED) {
            format!("{name}'s supervisor exited")
        } else if logged(supervise::SERVER_EXITED) {
            exited()
        } else if Instant::now() >= deadline {
            format!(
                "{name}'s supervisor did not start within {} s",
                START_TIMEOUT.as_secs()
            )
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        return Err(failure(name, message, offset));
    };
    tokio::time::sleep(SETTLE).await;
    if logged(supervise::SERVER_EXITED) || supervise::inspect(name).supervised_server() != Some(pid)
    {
        return Err(failure(name, exited(), offset));
    }
    let mut argv = vec![exe.to_string_lossy().into_owned()];
    argv.extend(server.supervisor_args());
    if let Err(e) = save_launch(name, &argv) {
        tracing::warn!(
            "cannot save how {name} was started (mp-remote start will not restart it): {e}"
        );
    }
    Ok((supervisor, pid))
}

/// Where the command line that started a supervisor is kept, NUL-separated: `mp-remote
/// start`/`restart` run that very line again (the plan's user, command and configuration
/// hash), with no agent and no plan.
pub fn launch_path(name: &str) -> std::path::PathBuf {
    Path::new(crate::plan::build::STATE_DIR)
        .join("supervised")
        .join(format!("{name}.argv"))
}

fn save_launch(name: &str, argv: &[String]) -> std::io::Result<()> {
    let path = launch_path(name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, argv.join("\0"))?;
    std::fs::rename(tmp, path)
}

/// Appends to the service's log, moving a big one aside first.
fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if std::fs::metadata(path).is_ok_and(|m| m.len() > LOG_ROTATE_BYTES) {
        std::fs::rename(path, path.with_extension("log.1"))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// A start that failed, with what it wrote to the service's log: there is no journal.
fn failure(name: &str, message: String, offset: u64) -> StepError {
    StepError::new(message)
        .hint(format!(
            "what it logged is below (from {}); fix the cause and deploy again",
            Paths::of(name).log.display()
        ))
        .with_output(&supervise::log_since(name, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_hash_follows_the_files_contents() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("a.conf");
        std::fs::write(&config, "port: 4222\n").unwrap();
        let files = vec![config.to_string_lossy().into_owned()];
        let first = config_hash("/bin/sh", &files);
        assert_eq!(first.len(), 16);
        assert_eq!(config_hash("/bin/sh", &files), first, "stable");
        std::fs::write(&config, "port: 4223\n").unwrap();
        assert_ne!(config_hash("/bin/sh", &files), first, "content counts");
        std::fs::remove_file(&config).unwrap();
        assert_ne!(
            config_hash("/bin/sh", &files),
            first,
            "a missing file counts"
        );
    }
}
