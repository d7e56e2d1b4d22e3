//! `mp-remote ping`: can we get in, and how long does it take. Not recorded, unless cut short
//! by Ctrl-C: then the hosts done so far and the recap are, like any interrupted run.

use std::sync::Mutex;

use super::progress::{record_interrupted, until_interrupted, Settings};
use crate::inventory::Host;
use crate::report::{ExitCode, HostEnd};
use crate::run::{for_each_host_seen, FanOut};

pub async fn run(hosts: &[&Host], fanout: &FanOut, quiet: bool, settings: &Settings) -> ExitCode {
    let finished = Mutex::new(Vec::new());
    let task = |transport: std::sync::Arc<dyn crate::transport::Transport>, _host| async move {
        let output = transport.exec("true", b"").await?;
        anyhow::ensure!(
            output.success(),
            "`true` exited with {:?}: {}",
            output.status,
            output.stderr_text().trim()
        );
        Ok(())
    };
    let work = for_each_host_seen(hosts, fanout, task, |o| {
        let end = HostEnd::new(o.status, o.error.clone(), o.duration);
        finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((o.host.clone(), end));
    });
    let outcomes = match until_interrupted(work).await {
        Ok(outcomes) => outcomes,
        Err(_signal) => {
            let names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
            let done = finished.into_inner().unwrap_or_else(|e| e.into_inner());
            return record_interrupted(settings, "ping", &names, done).end_interrupted();
        }
    };
    for outcome in &outcomes {
        match &outcome.error {
            None if quiet => {}
            None => println!(
                "{:<16} {:<11} {} ms",
                outcome.host,
                outcome.status,
                outcome.duration.as_millis()
            ),
            Some(error) => println!("{:<16} {:<11} {error}", outcome.host, outcome.status),
        }
    }
    ExitCode::from_statuses(outcomes.iter().map(|o| o.status))
}
