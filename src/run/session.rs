//! Connections to many hosts, opened in parallel and kept for the whole run, so that every
//! phase of a deploy reuses them.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;
use tokio::sync::Semaphore;

use super::fanout::{classify, FanOut};
use crate::inventory::Host;
use crate::report::HostStatus;
use crate::transport::{ConnectOptions, Transport};

/// A host we got into, with its connection.
#[derive(Clone)]
pub struct Connected<'h> {
    pub host: &'h Host,
    pub transport: Arc<dyn Transport>,
    /// When the host's whole task must be done (`--timeout`, counted from the connect):
    /// [`on_each`] ends its work there as `timed_out`.
    pub deadline: Option<(Instant, std::time::Duration)>,
    /// The agent this run placed on the host (its path there), once detect has: what the
    /// lease is taken with. None: looked for, or pushed, when needed.
    pub agent: Option<String>,
}

impl<'h> Connected<'h> {
    /// A connection without a deadline.
    pub fn new(host: &'h Host, transport: Arc<dyn Transport>) -> Self {
        Connected {
            host,
            transport,
            deadline: None,
            agent: None,
        }
    }
}

/// A host's task went past its `--timeout`.
#[derive(Debug, thiserror::Error)]
#[error("not finished within {} (--timeout); the host may be overloaded or a command hangs", humantime::format_duration(*.0))]
pub struct PastDeadline(pub std::time::Duration);

/// A host that ended early, with its status and error line.
#[derive(Debug, Clone)]
pub struct Ended {
    pub host: String,
    pub status: HostStatus,
    pub error: String,
}

/// Connects to every host; returns those we got into and those we did not.
pub async fn connect_all<'h>(
    hosts: &[&'h Host],
    fanout: &FanOut,
) -> (Vec<Connected<'h>>, Vec<Ended>) {
    let options = ConnectOptions {
        handshakes: Some(Arc::new(Semaphore::new(fanout.handshakes.max(1)))),
    };
    let deadline = fanout.timeout.map(|t| (Instant::now() + t, t));
    let results = join_all(hosts.iter().map(|host| {
        let options = &options;
        async move { (*host, super::connect(host, options).await) }
    }))
    .await;
    let mut connected = Vec::new();
    let mut ended = Vec::new();
    for (host, result) in results {
        match result {
            Ok(transport) => connected.push(Connected {
                host,
                transport,
                deadline,
                agent: None,
            }),
            Err(error) => {
                let error = anyhow::Error::new(error);
                let (status, line) = classify(&error, &host.name);
                ended.push(Ended {
                    host: host.name.clone(),
                    status,
                    error: line,
                });
            }
        }
    }
    (connected, ended)
}

/// Runs `task` on every connected host at once (up to `forks`); results in input order, each
/// with how long it took.
pub async fn on_each<'h, T, F, Fut>(
    hosts: &[Connected<'h>],
    forks: usize,
    task: F,
) -> Vec<(std::time::Duration, anyhow::Result<T>)>
where
    F: Fn(Connected<'h>) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let slots = Semaphore::new(forks.max(1));
    join_all(hosts.iter().cloned().map(|c| {
        let slots = &slots;
        let task = &task;
        async move {
            let _slot = slots.acquire().await.ok();
            let started = Instant::now();
            let result = match c.deadline {
                Some((deadline, limit)) => {
                    match tokio::time::timeout_at(deadline.into(), task(c)).await {
                        Ok(result) => result,
                        Err(_) => Err(anyhow::Error::new(PastDeadline(limit))),
                    }
                }
                None => task(c).await,
            };
            (started.elapsed(), result)
        }
    }))
    .await
}
