//! `mp-remote ping`: can we get in, and how long does it take.

use crate::inventory::Host;
use crate::report::ExitCode;
use crate::run::{for_each_host, FanOut};

pub async fn run(hosts: &[&Host], fanout: &FanOut, quiet: bool) -> ExitCode {
    let outcomes = for_each_host(hosts, fanout, |transport, _host| async move {
        let output = transport.exec("true", b"").await?;
        anyhow::ensure!(
            output.success(),
            "`true` exited with {:?}: {}",
            output.status,
            output.stderr_text().trim()
        );
        Ok(())
    })
    .await;
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
