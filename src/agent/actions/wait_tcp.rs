//! Waiting for a service that answers on a TCP port (no HTTP health endpoint).

use std::time::{Duration, Instant};

use crate::agent::outcome::{Outcome, StepError};

const POLL: Duration = Duration::from_millis(200);

pub async fn apply(
    port: u16,
    timeout: Duration,
    log_unit: Option<&str>,
    check_only: bool,
) -> Result<Outcome, StepError> {
    let started = Instant::now();
    loop {
        // Where it listens may change while it starts (bound to one address: local_addr).
        let address = crate::agent::local_addr::socket(port);
        let connect = tokio::net::TcpStream::connect(&address);
        let why = match tokio::time::timeout(Duration::from_secs(2), connect).await {
            Ok(Ok(_)) => {
                return Ok(Outcome::unchanged(format!(
                    "{address} accepts connections after {} ms",
                    started.elapsed().as_millis()
                )))
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer within 2 s".to_string(),
        };
        if check_only {
            return Ok(Outcome {
                status: crate::agent::event::StepStatus::Skipped,
                message: format!("{address} not open now ({why}); the deploy waits for it"),
                changes: vec![],
                output_tail: String::new(),
                output: String::new(),
                data: Default::default(),
            });
        }
        if started.elapsed() >= timeout {
            let log = match log_unit {
                Some(unit) => super::wait_http::service_log(unit).await,
                None => String::new(),
            };
            return Err(StepError::new(format!(
                "{address} not open within {} s: {why}",
                timeout.as_secs()
            ))
            .hint(match log_unit {
                Some(unit) => format!("the last lines of {unit}'s log are below"),
                None => "check the service on the host".into(),
            })
            .with_output(&log));
        }
        tokio::time::sleep(POLL).await;
    }
}
