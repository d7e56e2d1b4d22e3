//! Waiting for a service to answer: poll until its health endpoint says so, or give up at the
//! deadline with the last lines of its log.

use std::time::{Duration, Instant};

use crate::agent::local_addr::here;
use crate::agent::outcome::{Outcome, StepError};
use crate::agent::shell::sh;
use crate::plan::JsonExpectation;
use crate::transport::shell::quote;

/// How often a wait asks: often while a server is starting (a loopback request costs
/// microseconds, and every step after this one waits for the answer), then less. A server
/// that answers "not yet" is asked less often than one not listening yet: NATS logs a
/// warning for every failed `/healthz`.
const POLL_NOT_LISTENING: Duration = Duration::from_millis(25);
const POLL_ANSWERED: Duration = Duration::from_millis(100);
const POLL: Duration = Duration::from_millis(200);
const FAST_FOR: Duration = Duration::from_secs(3);

pub async fn apply(
    url: &str,
    expect: Option<&JsonExpectation>,
    timeout: Duration,
    log_unit: Option<&str>,
    check_only: bool,
) -> Result<Outcome, StepError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| StepError::new(format!("cannot build an HTTP client: {e}")))?;
    let started = Instant::now();
    // A service that keeps exiting (a broken release) will not answer: say so in seconds,
    // not at the deadline.
    // Counted from the first probe that fails: a healthy service (a re-run) costs no systemctl.
    let unit = log_unit.filter(|_| !check_only);
    let mut base: Option<Option<u64>> = None;
    let mut looked = Instant::now();
    let last = loop {
        match probe(&client, url, expect).await {
            Ok(()) => {
                return Ok(Outcome::unchanged(format!(
                    "{url} healthy after {} ms",
                    started.elapsed().as_millis()
                )))
            }
            // A check run must not wait for a server it did not start.
            Err(why) if check_only || started.elapsed() >= timeout => break why.reason,
            Err(why) => {
                if let Some(u) = unit {
                    if base.is_none() {
                        base = Some(restarts(u).await);
                        looked = Instant::now();
                    }
                }
                if let (Some(u), Some(Some(base))) = (unit, base) {
                    if looked.elapsed() >= CRASH_LOOK {
                        looked = Instant::now();
                        let now = restarts(u).await.unwrap_or(base);
                        if now.saturating_sub(base) >= CRASH_LOOP {
                            break format!(
                                "{u} keeps exiting: systemd restarted it {} times in {} s ({why})",
                                now - base,
                                started.elapsed().as_secs()
                            );
                        }
                    }
                }
                tokio::time::sleep(next_poll(started.elapsed(), why.answered)).await
            }
        }
    };
    if check_only {
        // Not an error in a check: the deploy starts the server before this step and waits.
        return Ok(Outcome {
            status: crate::agent::event::StepStatus::Skipped,
            message: format!("{url} not healthy now ({last}); the deploy waits for it"),
            changes: vec![],
            output_tail: String::new(),
            output: String::new(),
            data: Default::default(),
        });
    }
    let log = match log_unit {
        Some(unit) => service_log(unit).await,
        None => String::new(),
    };
    Err(StepError::new(format!(
        "{url} not healthy within {} s: {last}",
        timeout.as_secs()
    ))
    .hint(match log_unit {
        Some(unit) => format!("the last lines of {unit}'s log are below"),
        None => "check the service on the host".into(),
    })
    .with_output(&log))
}

/// How long to wait before asking again, `waited` into the wait.
fn next_poll(waited: Duration, answered: bool) -> Duration {
    match (waited < FAST_FOR, answered) {
        (true, false) => POLL_NOT_LISTENING,
        (true, true) => POLL_ANSWERED,
        (false, _) => POLL,
    }
}

/// Automatic restarts during a wait that mean the service keeps exiting.
const CRASH_LOOP: u64 = 3;
/// How often the wait asks systemd how often it restarted the service.
const CRASH_LOOK: Duration = Duration::from_secs(2);

/// How many times systemd restarted `unit` by itself (None: not a systemd unit here).
async fn restarts(unit: &str) -> Option<u64> {
    let out = sh(&format!(
        "systemctl show -p NRestarts --value {}",
        quote(unit)
    ))
    .await
    .ok()?;
    out.output.trim().parse().ok()
}

/// The last lines of a service's log: the journal under systemd, else our supervisor's log.
pub async fn service_log(unit: &str) -> String {
    let journal = sh(&format!("journalctl -u {} -n 20 --no-pager", quote(unit)))
        .await
        .map(|o| o.output)
        .unwrap_or_default();
    let supervised = crate::agent::supervise::log_since(unit, 0);
    if !supervised.trim().is_empty()
        && (journal.contains("No journal files")
            || journal.trim().is_empty()
            || journal.contains("-- No entries --"))
    {
        crate::agent::outcome::tail(&supervised, 20)
    } else {
        journal
    }
}

/// Why a probe failed, and whether the server answered at all.
#[derive(Debug)]
pub(crate) struct Unhealthy {
    pub reason: String,
    pub answered: bool,
}

impl std::fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// One health probe: Ok when it answers 2xx and the expected JSON field has the wanted value.
/// The JSON is parsed, never substring-matched ("unhealthy" contains "healthy").
pub(crate) async fn probe(
    client: &reqwest::Client,
    url: &str,
    expect: Option<&JsonExpectation>,
) -> Result<(), Unhealthy> {
    let silent = |e: reqwest::Error| Unhealthy {
        reason: e.to_string(),
        answered: false,
    };
    let response = client.get(here(url)).send().await.map_err(silent)?;
    let status = response.status();
    let body = response.text().await.map_err(silent)?;
    let answered = |reason: String| Unhealthy {
        reason,
        answered: true,
    };
    if !status.is_success() {
        return Err(answered(format!("HTTP {status}: {}", body.trim())));
    }
    match expect {
        None => Ok(()),
        Some(expect) => check_json(&body, expect).map_err(answered),
    }
}

fn check_json(body: &str, expect: &JsonExpectation) -> Result<(), String> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("not JSON ({e}): {}", body.trim()))?;
    match value.get(&expect.field).and_then(|v| v.as_str()) {
        Some(actual) if actual == expect.equals => Ok(()),
        Some(actual) => Err(format!(
            "{} is {actual:?}, not {:?}",
            expect.field, expect.equals
        )),
        None => Err(format!("no {:?} field in {}", expect.field, body.trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quick while a server starts, slower once it answers "not yet" (NATS logs each failed
    /// `/healthz`), and slow after the first seconds.
    #[test]
    fn polls_quickly_only_while_a_server_is_starting() {
        let ms = Duration::from_millis;
        assert_eq!(next_poll(ms(100), false), ms(25));
        assert_eq!(next_poll(ms(100), true), ms(100));
        assert_eq!(next_poll(ms(5000), false), ms(200));
        assert_eq!(next_poll(ms(5000), true), ms(200));
    }

    #[test]
    fn unhealthy_never_passes_for_healthy() {
        let expect = JsonExpectation {
            field: "status".into(),
            equals: "healthy".into(),
        };
        assert!(check_json(r#"{"status":"healthy"}"#, &expect).is_ok());
        assert!(check_json(r#"{"status":"unhealthy"}"#, &expect).is_err());
        assert!(check_json(r#"{"state":"healthy"}"#, &expect).is_err());
        assert!(check_json("healthy", &expect).is_err());
    }
}
