//! The fleet lease: before a run changes hosts it takes a lease on every one of them, so that
//! two operators never deploy the same fleet at once. A lease is a JSON file on the host
//! ([`LEASE_FILE`]), taken and renewed by one exec of `mp-remote agent lease` (the host side,
//! `agent::hostops::lease`) under a host-side lock; its expiry runs on the host's clock, so the
//! control node's clock does not matter.
//!
//! The request and the reading of the agent's answer are pure functions (tested beside this
//! file, the host side in-process against temp dirs); only the `async` functions touch hosts.

// Errors carry the holder's whole lease for the message; they are rare and cold.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use futures::future::join_all;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::session::Connected;
use crate::agent::hostops::lease::{CORRUPT, FUTURE, HELD, NOT_OURS};
use crate::plan::probe::{LeaseAnswer, LeaseCall, OpEvent};
use crate::transport::shell::quote;
use crate::transport::{ExecOutput, TransportError};

/// Where a host keeps its lease: runtime state, beside the supervisor's pid files, so that
/// `clean` (which removes /var/lib/mp-remote) never meets it and a reboot, which ends every
/// run on the host anyway, forgets it.
pub const LEASE_FILE: &str = "/run/mp-remote/lease.json";

/// How long a lease lives unless renewed (runs renew it every third of this).
pub const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);

/// The lease format this build writes and understands.
pub const FORMAT: u64 = 1;

/// How much of an unreadable lease file an error quotes.
const EXCERPT_CHARS: usize = 200;

/// A lease as the host's file holds it (`format` 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub format: u64,
    /// `user@control-host` of the run that took it.
    pub owner: String,
    pub run_id: String,
    pub command: String,
    /// RFC 3339, the host's clock.
    pub started: String,
    /// RFC 3339, the host's clock.
    pub expires: String,
    /// Seconds since the epoch, the host's clock: what expiry is decided on.
    pub expires_epoch: i64,
}

impl Lease {
    /// "alice@laptop (run 20250102-030405-4242, deploy) since 2025-01-02T03:04:05Z"
    pub fn holder(&self) -> String {
        format!(
            "{} (run {}, {}) since {}",
            self.owner, self.run_id, self.command, self.started
        )
    }
}

/// What a run asks for: who it is and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    pub owner: String,
    pub run_id: String,
    pub command: String,
    pub ttl: Duration,
    /// A run whose control node is gone (the one `--retry` repeats): its live leases are
    /// taken over instead of refusing, so a retry need not wait for them to expire.
    pub takeover: Option<String>,
}

impl LeaseRequest {
    /// A lease for `run_id` running `command`, owned by this user on this machine, for
    /// [`DEFAULT_TTL`].
    pub fn new(run_id: impl Into<String>, command: impl Into<String>) -> Self {
        Self {
            owner: local_owner(),
            run_id: run_id.into(),
            command: command.into(),
            ttl: DEFAULT_TTL,
            takeover: None,
        }
    }
}

/// Why a host's lease could not be taken, renewed, read or removed.
#[derive(Debug, Error)]
pub enum LeaseError {
    #[error("{host}: held by {} (run {}, {}) since {}; it expires at {}; wait, or run `mp-remote lock release --limit {host} --reason TEXT` if that run is dead", lease.owner, lease.run_id, lease.command, lease.started, lease.expires)]
    Held { host: String, lease: Lease },

    #[error("{host}: {path} is not a lease this mp-remote can read (it needs \"format\" and \"expires_epoch\"): {content_excerpt:?}; nothing was changed. Look at it, then remove it with `mp-remote lock release --limit {host} --reason TEXT`")]
    Corrupt {
        host: String,
        path: String,
        content_excerpt: String,
    },

    #[error("{host}: {path} has lease format {format}, newer than this mp-remote understands ({FORMAT}); nothing was changed. Use the newer mp-remote, or once no run is going on, `mp-remote lock release --limit {host} --reason TEXT`")]
    FutureFormat {
        host: String,
        path: String,
        format: u64,
    },

    /// Renewing found the lease gone or someone else's.
    #[error("{host}: the lease of run {run_id} is gone{}; this run no longer holds the host", now_there.as_ref().map(|l| format!(" (now held by {})", l.holder())).unwrap_or_default())]
    Lost {
        host: String,
        run_id: String,
        now_there: Option<Lease>,
    },

    #[error("{}", transport_line(host, source))]
    Transport {
        host: String,
        #[source]
        source: TransportError,
    },

    /// The agent failed (sudo refused, a read-only disk, a stuck lock) or answered nonsense.
    #[error("{host}: taking the lease on the host failed ({status}): {detail}")]
    Script {
        host: String,
        status: String,
        detail: String,
    },
}

impl LeaseError {
    pub fn host(&self) -> &str {
        match self {
            Self::Held { host, .. }
            | Self::Corrupt { host, .. }
            | Self::FutureFormat { host, .. }
            | Self::Lost { host, .. }
            | Self::Transport { host, .. }
            | Self::Script { host, .. } => host,
        }
    }

    /// Never got in (DNS, TCP, host key, authentication), as opposed to got in and failed.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Transport { source, .. } if source.is_unreachable())
    }
}

fn transport_line(host: &str, source: &TransportError) -> String {
    let text = source.to_string();
    if text.starts_with(&format!("{host}:")) {
        text
    } else {
        format!("{host}: {text}")
    }
}

/// What one action asks the script to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Acquire,
    Renew,
    /// Remove the lease if it names the run.
    Release,
    /// Remove whatever lease is there.
    Force,
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Acquire => "acquire",
            Action::Renew => "renew",
            Action::Release => "release",
            Action::Force => "force",
        }
    }
}

/// What the script found before acting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Absent,
    /// `read` does not judge what it found.
    Present,
    Corrupt,
    Future,
    Ours,
    Expired,
    Held,
}

/// The script's answer: the host's clock, what it found, and the lease text it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub now: i64,
    pub found: Found,
    pub body: String,
}

/// A lease as a host holds it at a moment of its own clock (`lock status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The host's `date +%s`.
    pub host_now: i64,
    pub lease: Option<Lease>,
}

impl Observed {
    /// Seconds until the lease expires on the host's clock; None when free or expired.
    pub fn remaining(&self) -> Option<i64> {
        let lease = self.lease.as_ref()?;
        (lease.expires_epoch > self.host_now).then(|| lease.expires_epoch - self.host_now)
    }
}

/// A lease removed by `lock release`: a lease, or a file that was not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    Lease(Lease),
    Unreadable { content_excerpt: String },
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Removed::Lease(lease) => {
                write!(f, "lease of {}, expiring {}", lease.holder(), lease.expires)
            }
            Removed::Unreadable { content_excerpt } => {
                write!(f, "unreadable lease file {content_excerpt:?}")
            }
        }
    }
}

/// `user@host` of whoever runs this process: `$USER` (else the uid's account name, else
/// "unknown") at this machine's hostname.
pub fn local_owner() -> String {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(uid_name)
        .unwrap_or_else(|| "unknown".into());
    format!("{user}@{}", hostname().unwrap_or_else(|| "unknown".into()))
}

fn uid_name() -> Option<String> {
    // SAFETY: getpwuid returns a pointer into static storage or null; we copy the name out at
    // once, before any other call could overwrite it.
    unsafe {
        let entry = libc::getpwuid(libc::getuid());
        if entry.is_null() || (*entry).pw_name.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr((*entry).pw_name);
        Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty())
    }
}

fn hostname() -> Option<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length; gethostname writes at most that much.
    let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if rc != 0 {
        return None;
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    Some(String::from_utf8_lossy(&buffer[..end]).into_owned()).filter(|h| !h.is_empty())
}

/// A run id the script can compare as plain text: `[A-Za-z0-9._-]`, not empty.
fn valid_run_id(run_id: &str) -> bool {
    !run_id.is_empty()
        && run_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// What the agent is asked for `action` (`request`: the run; None for `read` and `force`).
pub fn call(action: Action, path: &str, request: Option<&LeaseRequest>) -> LeaseCall {
    LeaseCall {
        action: action.word().into(),
        file: path.into(),
        run_id: request.map(|r| r.run_id.clone()).unwrap_or_default(),
        ttl_secs: request.map_or(0, |r| r.ttl.as_secs().max(1)),
        owner: request.map(|r| r.owner.clone()).unwrap_or_default(),
        command: request.map(|r| r.command.clone()).unwrap_or_default(),
        takeover: request.and_then(|r| r.takeover.clone()),
    }
}

/// The agent's answer among its output lines.
fn answer_in(stdout: &str) -> Option<LeaseAnswer> {
    stdout
        .lines()
        .find_map(|line| match serde_json::from_str(line.trim()) {
            Ok(OpEvent::Leased(answer)) => Some(answer),
            _ => None,
        })
}

fn found_of(state: &str) -> Option<Found> {
    Some(match state {
        "absent" => Found::Absent,
        "found" => Found::Present,
        "corrupt" => Found::Corrupt,
        "future" => Found::Future,
        "ours" => Found::Ours,
        "expired" => Found::Expired,
        "held" => Found::Held,
        _ => return None,
    })
}

/// The first `EXCERPT_CHARS` characters of a file's text, for messages.
fn excerpt(body: &str) -> String {
    let text = body.trim();
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// The number after `"format":` in a text that may not be JSON at all; None when there is
/// none, `u64::MAX` when it is too long to be one.
fn format_of(body: &str) -> Option<u64> {
    let at = body.find("\"format\"")?;
    let rest = body[at + "\"format\"".len()..].trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return None;
    }
    Some(digits.parse().unwrap_or(u64::MAX))
}

/// Parses a lease text the agent vouched for: a newer format is [`LeaseError::FutureFormat`]
/// (whatever its fields), anything else that is not a lease is [`LeaseError::Corrupt`].
fn parse_lease(host: &str, path: &str, body: &str) -> Result<Lease, LeaseError> {
    if let Some(format) = format_of(body).filter(|&f| f > FORMAT) {
        return Err(LeaseError::FutureFormat {
            host: host.into(),
            path: path.into(),
            format,
        });
    }
    serde_json::from_str(body.trim()).map_err(|_| LeaseError::Corrupt {
        host: host.into(),
        path: path.into(),
        content_excerpt: excerpt(body),
    })
}

/// The agent's answer (or its failure) as the outcome of `action` on `host`: the lease now in
/// effect (written, found, or removed), or why not.
pub fn interpret(
    host: &str,
    path: &str,
    action: Action,
    run_id: &str,
    output: &ExecOutput,
) -> Result<(Reply, Option<Lease>), LeaseError> {
    let stdout = output.stdout_text();
    let script_error = |detail: String| LeaseError::Script {
        host: host.into(),
        status: match output.status {
            Some(code) => format!("exit {code}"),
            None => "killed by a signal".into(),
        },
        detail,
    };
    let answer = answer_in(&stdout).filter(|a| found_of(&a.state).is_some());
    let Some(answer) = answer else {
        let stderr = output.stderr_text();
        let detail = if stderr.trim().is_empty() {
            format!("unexpected output {:?}", excerpt(&stdout))
        } else {
            crate::agent::outcome::tail(stderr.trim(), 5)
        };
        return Err(script_error(detail));
    };
    judge(host, path, action, run_id, answer)
}

/// The agent's answer to `action` on `host`: the lease now in effect (written, found, or
/// removed), or why not.
pub fn judge(
    host: &str,
    path: &str,
    action: Action,
    run_id: &str,
    answer: LeaseAnswer,
) -> Result<(Reply, Option<Lease>), LeaseError> {
    let Some(found) = found_of(&answer.state) else {
        return Err(LeaseError::Script {
            host: host.into(),
            status: format!("code {}", answer.code),
            detail: format!("unexpected state {:?}", answer.state),
        });
    };
    let reply = Reply {
        now: answer.now,
        found,
        body: answer.body,
    };
    let lease = || parse_lease(host, path, &reply.body);
    match answer.code {
        0 => {
            let kept = match (action, reply.found) {
                // Acquire and renew print the lease they wrote, whatever they found.
                (Action::Acquire | Action::Renew, _) => Some(lease()?),
                (_, Found::Absent) => None,
                // What force removed may not be a lease at all, and release leaves another
                // run's file as it is: neither is an error.
                (Action::Force | Action::Release, _) => lease().ok(),
                _ => Some(lease()?),
            };
            Ok((reply, kept))
        }
        HELD => Err(LeaseError::Held {
            host: host.into(),
            lease: lease()?,
        }),
        CORRUPT => Err(LeaseError::Corrupt {
            host: host.into(),
            path: path.into(),
            content_excerpt: excerpt(&reply.body),
        }),
        FUTURE => Err(LeaseError::FutureFormat {
            host: host.into(),
            path: path.into(),
            format: format_of(&reply.body).unwrap_or(0),
        }),
        NOT_OURS => Err(LeaseError::Lost {
            host: host.into(),
            run_id: run_id.into(),
            now_there: match reply.found {
                Found::Absent => None,
                _ => lease().ok(),
            },
        }),
        code => Err(LeaseError::Script {
            host: host.into(),
            status: format!("code {code}"),
            detail: answer.message.unwrap_or_default(),
        }),
    }
}

/// Runs `action` on one host.
async fn run_agent(
    c: &Connected<'_>,
    action: Action,
    request: Option<&LeaseRequest>,
) -> Result<(Reply, Option<Lease>), LeaseError> {
    let host = &c.host.name;
    let run_id = request.map(|r| r.run_id.as_str()).unwrap_or("");
    if request.is_some() && !valid_run_id(run_id) {
        return Err(LeaseError::Script {
            host: host.clone(),
            status: "not run".into(),
            detail: format!("run id {run_id:?} must be made of [A-Za-z0-9._-]"),
        });
    }
    let call = call(action, LEASE_FILE, request);
    let output = match &c.agent {
        // Placed by this run's detect: one exec.
        Some(path) => {
            let line = super::agent_call::run_line(&quote(path), "lease", c.host.become_);
            let stdin = serde_json::to_vec(&call).unwrap_or_default();
            c.transport.exec(&line, &stdin).await.map_err(Into::into)
        }
        None => match super::agent_call::day2_agents() {
            Ok(agents) => {
                super::agent_call::exec(c.transport.as_ref(), c.host, &agents, "lease", &call).await
            }
            Err(e) => Err(anyhow::anyhow!(e)),
        },
    };
    let output = output.map_err(|e| match e.downcast::<TransportError>() {
        Ok(source) => LeaseError::Transport {
            host: host.clone(),
            source,
        },
        Err(e) => LeaseError::Script {
            host: host.clone(),
            status: "not run".into(),
            detail: format!("{e:#}"),
        },
    })?;
    interpret(host, LEASE_FILE, action, run_id, &output)
}

/// Takes the lease on one host; returns it as written.
pub async fn acquire(c: &Connected<'_>, request: &LeaseRequest) -> Result<Lease, LeaseError> {
    let (_, lease) = run_agent(c, Action::Acquire, Some(request)).await?;
    lease.ok_or_else(|| LeaseError::Script {
        host: c.host.name.clone(),
        status: "exit 0".into(),
        detail: "the script wrote no lease".into(),
    })
}

/// Takes the lease on every host at once. If any host refuses, gives back the leases it took
/// (only those naming this run) and returns every host's error.
pub async fn acquire_all(
    hosts: &[Connected<'_>],
    request: &LeaseRequest,
) -> Result<(), Vec<LeaseError>> {
    acquire_all_with(hosts, request, &BTreeMap::new()).await
}

/// [`acquire_all`], where `already` holds the answers hosts gave to the same acquire asked
/// beside the facts probe (`agent begin`): those hosts are not asked again.
pub async fn acquire_all_with(
    hosts: &[Connected<'_>],
    request: &LeaseRequest,
    already: &BTreeMap<String, LeaseAnswer>,
) -> Result<(), Vec<LeaseError>> {
    let results = join_all(hosts.iter().map(|c| async move {
        match already.get(&c.host.name) {
            Some(answer) => judge(
                &c.host.name,
                LEASE_FILE,
                Action::Acquire,
                &request.run_id,
                answer.clone(),
            )
            .map(drop),
            None => acquire(c, request).await.map(drop),
        }
    }))
    .await;
    let errors: Vec<LeaseError> = results.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        return Ok(());
    }
    let failed: Vec<&str> = errors.iter().map(LeaseError::host).collect();
    let taken: Vec<Connected<'_>> = hosts
        .iter()
        .filter(|c| !failed.contains(&c.host.name.as_str()))
        .cloned()
        .collect();
    let mut errors = errors;
    errors.extend(release_all(&taken, &request.run_id).await);
    Err(errors)
}

/// Pushes the expiry of this run's leases one TTL ahead. Returns the hosts where that failed,
/// among them those where the lease is no longer this run's ([`LeaseError::Lost`]).
pub async fn renew_all(hosts: &[Connected<'_>], request: &LeaseRequest) -> Vec<LeaseError> {
    join_all(
        hosts
            .iter()
            .map(|c| run_agent(c, Action::Renew, Some(request))),
    )
    .await
    .into_iter()
    .filter_map(Result::err)
    .collect()
}

/// Runs `work` while renewing the leases every third of their TTL, concurrently in this task;
/// returns `work`'s output. Renewal failures are logged; see [`keep_renewed_with`] to act on
/// them. Does not release: that is the caller's, explicitly.
pub async fn keep_renewed<F: Future>(
    hosts: &[Connected<'_>],
    request: &LeaseRequest,
    work: F,
) -> F::Output {
    keep_renewed_with(hosts, request, work, |problems| {
        for problem in problems {
            tracing::warn!("lease renewal: {problem}");
        }
    })
    .await
}

/// [`keep_renewed`], handing every renewal's failures to `on_problems`.
pub async fn keep_renewed_with<F: Future>(
    hosts: &[Connected<'_>],
    request: &LeaseRequest,
    work: F,
    mut on_problems: impl FnMut(Vec<LeaseError>),
) -> F::Output {
    let period = renew_period(request.ttl);
    let renewing = async {
        loop {
            tokio::time::sleep(period).await;
            let problems = renew_all(hosts, request).await;
            if !problems.is_empty() {
                on_problems(problems);
            }
        }
    };
    tokio::select! {
        output = work => output,
        _ = renewing => unreachable!("renewing never ends"),
    }
}

/// A third of the TTL, at least a second.
pub fn renew_period(ttl: Duration) -> Duration {
    (ttl / 3).max(Duration::from_secs(1))
}

/// Removes this run's leases; leaves other runs' alone. Returns the hosts where that failed.
pub async fn release_all(hosts: &[Connected<'_>], run_id: &str) -> Vec<LeaseError> {
    let request = LeaseRequest {
        owner: String::new(),
        run_id: run_id.into(),
        command: String::new(),
        ttl: Duration::ZERO,
        takeover: None,
    };
    join_all(
        hosts
            .iter()
            .map(|c| run_agent(c, Action::Release, Some(&request))),
    )
    .await
    .into_iter()
    .filter_map(Result::err)
    .collect()
}

/// Removes whatever lease the host has (`lock release`), readable or not, and returns it;
/// None when there was none. The audit line is the caller's ([`super::audit`]).
pub async fn force_release(c: &Connected<'_>) -> Result<Option<Removed>, LeaseError> {
    let (reply, lease) = run_agent(c, Action::Force, None).await?;
    Ok(match (reply.found, lease) {
        (Found::Absent, _) => None,
        (_, Some(lease)) => Some(Removed::Lease(lease)),
        (_, None) => Some(Removed::Unreadable {
            content_excerpt: excerpt(&reply.body),
        }),
    })
}

/// The host's lease and its clock, in one exec (`lock status`). An unreadable lease file is
/// an error, [`LeaseError::Corrupt`] or [`LeaseError::FutureFormat`].
pub async fn observe(c: &Connected<'_>) -> Result<Observed, LeaseError> {
    let (reply, lease) = run_agent(c, Action::Read, None).await?;
    Ok(Observed {
        host_now: reply.now,
        lease,
    })
}

/// The host's lease, expired or not; None when there is none.
pub async fn read(c: &Connected<'_>) -> Result<Option<Lease>, LeaseError> {
    Ok(observe(c).await?.lease)
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
