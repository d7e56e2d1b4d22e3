//! `agent control`: start, stop or restart services in the order given, then (start,
//! restart) wait here, on the host, until each answers healthy: one exec for the whole host
//! instead of a round trip per poll. Under systemd through `systemctl`; without it through
//! mp-remote's supervisor, started again with the command line deploy last gave it.

use std::time::{Duration, Instant};

use tokio::process::Command;

use super::logs::tail;
use super::observe::{self, systemd};
use crate::agent::actions::supervised::launch_path;
use crate::agent::supervise;
use crate::plan::probe::{Control, ControlRequest, Controlled, Target};

/// How often a start asks whether the service is healthy yet.
const POLL: Duration = Duration::from_millis(250);
/// Longer than the supervisor's own grace for its server.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Refused on a host without systemd where deploy never started the service.
pub const NO_SYSTEMD: &str =
    "no systemd here and no record of how mp-remote started it: run `mp-remote deploy` to start it under mp-remote's supervisor";

pub async fn control(request: &ControlRequest, emit: &mut dyn FnMut(Controlled)) {
    for target in &request.targets {
        emit(one(request.control, target, request.journal_lines).await);
    }
}

async fn one(control: Control, target: &Target, journal_lines: u32) -> Controlled {
    let started = Instant::now();
    let mut done = Controlled {
        name: target.name.clone(),
        supervised: !systemd(),
        ..Controlled::default()
    };
    let acted = if done.supervised {
        supervised(control, &target.unit).await
    } else {
        systemctl(control, &target.unit).await
    };
    let mut show_log = true;
    match acted {
        Ok(already) => done.already = already,
        Err(Refused) => {
            done.failure = Some(NO_SYSTEMD.to_string());
            // The log tells nothing about a missing record.
            show_log = false;
        }
        Err(Failed(why)) => done.failure = Some(why),
    }
    if done.failure.is_none() && control.waits_for_health() {
        let deadline = Duration::from_secs(target.deadline_secs);
        match wait_healthy(target, deadline).await {
            Ok(()) => done.healthy_after_ms = Some(started.elapsed().as_millis() as u64),
            Err(why) => {
                done.failure = Some(format!(
                    "{} not healthy after {:.1} s (deadline {} s): {why}; its last {journal_lines} journal lines are below",
                    target.unit,
                    started.elapsed().as_secs_f64(),
                    deadline.as_secs()
                ))
            }
        }
    }
    if done.failure.is_some() && show_log {
        done.journal = tail(&target.unit, journal_lines)
            .await
            .unwrap_or_else(|e| e);
    }
    done
}

/// Why a start or stop did not happen.
enum NotDone {
    /// No systemd and no record of the supervisor's command line.
    Refused,
    Failed(String),
}
use NotDone::{Failed, Refused};

/// `systemctl` as asked; Ok(true) when the unit already was so (start, stop look first).
async fn systemctl(control: Control, unit: &str) -> Result<bool, NotDone> {
    let active = observe::unit_state(unit).await.0 == "active";
    match control {
        Control::Start if active => return Ok(true),
        Control::Stop if !active => return Ok(true),
        _ => {}
    }
    let out = Command::new("systemctl")
        .args([control.verb(), unit])
        .output()
        .await
        .map_err(|e| Failed(format!("cannot run systemctl: {e}")))?;
    if out.status.success() {
        Ok(false)
    } else {
        Err(Failed(format!(
            "`systemctl {} {unit}` failed ({}): {}; see its journal below",
            control.verb(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The supervisor's way: stop sends it SIGTERM (it stops its server) and waits; start runs
/// again the command line the deploy's `Supervised` step recorded.
async fn supervised(control: Control, unit: &str) -> Result<bool, NotDone> {
    let running = supervise::inspect(unit);
    let supervisor = running.supervisor.as_ref().map(|(pid, _)| *pid);
    match control {
        // A live supervisor (even one restarting its server) is the only one: never a second.
        Control::Start if supervisor.is_some() => Ok(true),
        Control::Start => launch(unit).await.map(|_| false),
        Control::Stop => match supervisor {
            None => Ok(true),
            Some(pid) => stop(unit, pid, running.server).await.map(|_| false),
        },
        Control::Restart => {
            // Stopped only when it can be started again.
            let argv = recorded(unit).ok_or(Refused)?;
            if let Some(pid) = supervisor {
                stop(unit, pid, running.server).await?;
            }
            spawn(unit, &argv).await.map(|_| false)
        }
    }
}

async fn stop(unit: &str, supervisor: u32, server: Option<u32>) -> Result<(), NotDone> {
    stop_supervised(unit, supervisor, server)
        .await
        .map_err(Failed)
}

/// Sends the supervisor SIGTERM (it stops its server) and waits for both to be gone; `stop`
/// and `clean` alike.
pub(super) async fn stop_supervised(
    unit: &str,
    supervisor: u32,
    server: Option<u32>,
) -> Result<(), String> {
    supervise::send_signal(supervisor, "TERM").await;
    let mut gone = supervise::wait_gone(supervisor, STOP_TIMEOUT).await;
    if let Some(server) = server {
        gone = gone && supervise::wait_gone(server, Duration::from_secs(5)).await;
    }
    if gone {
        Ok(())
    } else {
        Err(format!(
            "{unit} still running {} s after SIGTERM to its supervisor (pid {supervisor})",
            STOP_TIMEOUT.as_secs()
        ))
    }
}

/// The recorded command line, when its program is still there.
fn recorded(unit: &str) -> Option<Vec<String>> {
    let raw = std::fs::read(launch_path(unit)).ok()?;
    let argv: Vec<String> = raw
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    std::path::Path::new(argv.first()?).exists().then_some(argv)
}

async fn launch(unit: &str) -> Result<(), NotDone> {
    let argv = recorded(unit).ok_or(Refused)?;
    spawn(unit, &argv).await
}

/// Starts the supervisor detached (`setsid --fork`), its output appended to its log.
async fn spawn(unit: &str, argv: &[String]) -> Result<(), NotDone> {
    let log_path = supervise::Paths::of(unit).log;
    let open = || {
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
    };
    let cannot = |e: std::io::Error| Failed(format!("cannot open {}: {e}", log_path.display()));
    let log = open().map_err(cannot)?;
    let status = Command::new("setsid")
        .arg("--fork")
        .args(argv)
        .current_dir("/")
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().map_err(cannot)?)
        .stderr(log)
        .status()
        .await
        .map_err(|e| {
            Failed(format!(
                "cannot run setsid to start {unit}'s supervisor: {e}"
            ))
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(Failed(format!(
            "setsid could not start {unit}'s supervisor ({status}); the end of its log is below"
        )))
    }
}

/// Polls the target until it runs and answers healthy, or the deadline passes; the error
/// says what was wrong at the last look. `failed`: systemd gave up, waiting cannot help.
async fn wait_healthy(target: &Target, deadline: Duration) -> Result<(), String> {
    let client = observe::client();
    let started = Instant::now();
    loop {
        let seen = observe::look(&client, target, false).await;
        let why = if seen.active != "active" {
            Some(if seen.supervised {
                format!("not running (mp-remote supervisor: {})", seen.active)
            } else {
                format!("not running (systemctl is-active: {})", seen.active)
            })
        } else {
            target
                .judge(&seen.health)
                .err()
                .map(|e| format!("running but not healthy: {e}"))
        };
        match why {
            None => return Ok(()),
            Some(why) if started.elapsed() >= deadline || seen.active == "failed" => {
                return Err(why)
            }
            Some(_) => tokio::time::sleep(POLL).await,
        }
    }
}
