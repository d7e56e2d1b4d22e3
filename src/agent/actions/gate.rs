//! A rolling run's health gate: the services of a batch must answer healthy on several polls
//! in a row, so that one lucky answer between two crashes of a restart loop never lets the
//! rollout go on to the next batch.

use std::time::{Duration, Instant};

use super::wait_http::{probe, service_log};
use crate::agent::outcome::{Outcome, StepError};
use crate::plan::GateProbe;

pub async fn apply(
    probes: &[GateProbe],
    consecutive: u32,
    interval: Duration,
    timeout: Duration,
    check_only: bool,
) -> Result<Outcome, StepError> {
    let names: Vec<&str> = probes.iter().map(|p| p.name.as_str()).collect();
    if check_only {
        return Ok(Outcome::unchanged(format!(
            "would check that {} answer healthy {consecutive} times in a row",
            names.join(", ")
        )));
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| StepError::new(format!("cannot build an HTTP client: {e}")))?;
    let started = Instant::now();
    let mut streak = 0u32;
    let mut resets = 0u32;
    let mut last_failure: Option<(&GateProbe, String)> = None;
    loop {
        let mut failed = None;
        for p in probes {
            if let Err(why) = probe(&client, &p.url, p.expect_json.as_ref()).await {
                failed = Some((p, why.reason));
                break;
            }
        }
        match failed {
            None => {
                streak += 1;
                if streak >= consecutive {
                    let flaps = if resets > 0 {
                        format!(" ({resets} failed probe(s) before)")
                    } else {
                        String::new()
                    };
                    return Ok(Outcome::unchanged(format!(
                        "{} healthy on {consecutive} probes in a row after {:.1} s{flaps}",
                        names.join(", "),
                        started.elapsed().as_secs_f64()
                    )));
                }
            }
            Some(failure) => {
                if streak > 0 || last_failure.is_none() {
                    resets += 1;
                }
                streak = 0;
                last_failure = Some(failure);
            }
        }
        if started.elapsed() >= timeout {
            break;
        }
        tokio::time::sleep(interval).await;
    }
    let (failing, why) = last_failure.expect("a gate that times out saw a failure");
    let log = match &failing.log_unit {
        Some(unit) => service_log(unit).await,
        None => String::new(),
    };
    Err(StepError::new(format!(
        "health gate: {} not healthy {consecutive} times in a row within {} s: {} {why}",
        failing.name,
        timeout.as_secs(),
        failing.url
    ))
    .hint(match &failing.log_unit {
        Some(unit) => format!("the batch is rolled back; the last lines of {unit}'s log are below"),
        None => "the batch is rolled back; check the service on the host".into(),
    })
    .with_output(&log))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::JsonExpectation;

    #[tokio::test]
    async fn a_service_that_does_not_answer_fails_the_gate_naming_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let probes = [GateProbe {
            name: "storage".into(),
            url: format!("http://127.0.0.1:{port}/health"),
            expect_json: Some(JsonExpectation {
                field: "status".into(),
                equals: "healthy".into(),
            }),
            log_unit: None,
        }];
        let error = apply(
            &probes,
            3,
            Duration::from_millis(10),
            Duration::from_millis(50),
            false,
        )
        .await
        .unwrap_err();
        assert!(
            error
                .message
                .starts_with("health gate: storage not healthy 3 times in a row"),
            "{error:?}"
        );
        let preview = apply(&probes, 3, Duration::ZERO, Duration::ZERO, true)
            .await
            .unwrap();
        assert!(preview.message.contains("storage answer healthy 3 times"));
    }
}
