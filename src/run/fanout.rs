//! Parallel fan-out over hosts with a cap on concurrent hosts (`--forks`) and on concurrent
//! SSH handshakes, and a per-host deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::Semaphore;

use crate::inventory::Host;
use crate::report::HostStatus;
use crate::transport::{ConnectOptions, Transport, TransportError};

/// How wide and how long a run may go.
#[derive(Debug, Clone)]
pub struct FanOut {
    /// Hosts worked on at once.
    pub forks: usize,
    /// SSH handshakes under way at once (sshd's MaxStartups defaults to 10).
    pub handshakes: usize,
    /// Deadline for one host's whole task, connection included.
    pub timeout: Option<Duration>,
}

impl Default for FanOut {
    fn default() -> Self {
        Self {
            forks: 50,
            handshakes: 10,
            timeout: None,
        }
    }
}

/// How one host's task ended.
#[derive(Debug, Clone)]
pub struct HostOutcome<T> {
    pub host: String,
    pub status: HostStatus,
    /// One line: what happened and what to do.
    pub error: Option<String>,
    pub value: Option<T>,
    pub duration: Duration,
}

/// Connects to each host and runs `task` on it, all at once up to `settings.forks`. Outcomes
/// come back in the order of `hosts`.
pub async fn for_each_host<'h, T, F, Fut>(
    hosts: &[&'h Host],
    settings: &FanOut,
    task: F,
) -> Vec<HostOutcome<T>>
where
    F: Fn(Arc<dyn Transport>, &'h Host) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    for_each_host_seen(hosts, settings, task, |_| {}).await
}

/// [`for_each_host`], calling `seen` with each outcome as its host ends: what a command cut
/// short by Ctrl-C still knows.
pub async fn for_each_host_seen<'h, T, F, Fut>(
    hosts: &[&'h Host],
    settings: &FanOut,
    task: F,
    seen: impl Fn(&HostOutcome<T>),
) -> Vec<HostOutcome<T>>
where
    F: Fn(Arc<dyn Transport>, &'h Host) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let forks = Arc::new(Semaphore::new(settings.forks.max(1)));
    let options = ConnectOptions {
        handshakes: Some(Arc::new(Semaphore::new(settings.handshakes.max(1)))),
    };
    let mut running: FuturesUnordered<_> = hosts
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let forks = forks.clone();
            let options = &options;
            let task = &task;
            async move {
                let _slot = forks.acquire_owned().await.ok();
                let started = Instant::now();
                let work = async {
                    let transport = super::connect(host, options).await?;
                    let result = task(transport.clone(), host).await;
                    transport.close().await;
                    result
                };
                let result = match settings.timeout {
                    Some(limit) => tokio::time::timeout(limit, work).await.map_err(|_| limit),
                    None => Ok(work.await),
                };
                (index, outcome(host, result, started.elapsed()))
            }
        })
        .collect();
    let mut outcomes: Vec<Option<HostOutcome<T>>> = hosts.iter().map(|_| None).collect();
    while let Some((index, outcome)) = running.next().await {
        seen(&outcome);
        outcomes[index] = Some(outcome);
    }
    outcomes.into_iter().flatten().collect()
}

fn outcome<T>(
    host: &Host,
    result: Result<anyhow::Result<T>, Duration>,
    duration: Duration,
) -> HostOutcome<T> {
    let (status, error, value) = match result {
        Ok(Ok(value)) => (HostStatus::Ok, None, Some(value)),
        Ok(Err(error)) => {
            let (status, line) = classify(&error, &host.name);
            (status, Some(line), None)
        }
        Err(limit) => (
            HostStatus::TimedOut,
            Some(format!(
                "{}: not finished within {} (--timeout); the host may be overloaded or a command hangs",
                host.name,
                humantime::format_duration(limit)
            )),
            None,
        ),
    };
    HostOutcome {
        host: host.name.clone(),
        status,
        error,
        value,
        duration,
    }
}

/// A host's error as its final status (unreachable or failed) and one line.
pub fn classify(error: &anyhow::Error, host: &str) -> (HostStatus, String) {
    if error
        .downcast_ref::<super::session::PastDeadline>()
        .is_some()
    {
        return (HostStatus::TimedOut, one_line(error, host));
    }
    let unreachable = error
        .downcast_ref::<TransportError>()
        .is_some_and(TransportError::is_unreachable);
    let status = if unreachable {
        HostStatus::Unreachable
    } else {
        HostStatus::Failed
    };
    (status, one_line(error, host))
}

/// The error and its causes on one line, always naming the host.
fn one_line(error: &anyhow::Error, host: &str) -> String {
    // A TransportError's message already carries its cause; `{:#}` would repeat it.
    let text = match error.downcast_ref::<TransportError>() {
        Some(transport) if error.chain().count() == 1 => transport.to_string(),
        _ => format!("{error:#}"),
    };
    if text.starts_with(&format!("{host}:")) {
        text
    } else {
        format!("{host}: {text}")
    }
}
