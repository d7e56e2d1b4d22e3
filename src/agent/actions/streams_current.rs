//! After a NATS node restarts: wait until every stream has a leader and every replica has
//! caught up with it, before the next node may restart. Restarting the next node while one
//! replica still lags would leave an R3 stream with a single current copy.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::stream::ClusterInfo;

use crate::agent::outcome::{Outcome, StepError};

const POLL: Duration = Duration::from_millis(500);

pub async fn apply(
    url: &str,
    streams: &[String],
    timeout: Duration,
    check_only: bool,
) -> Result<Outcome, StepError> {
    if check_only {
        return Ok(Outcome::unchanged(format!(
            "would wait until the replicas of {} are current",
            streams.join(", ")
        )));
    }
    let started = Instant::now();
    let mut last = String::from("no answer yet");
    while started.elapsed() < timeout {
        match lagging(url, streams).await {
            Ok(None) => {
                return Ok(Outcome::unchanged(format!(
                    "{} current on every replica after {:.1} s",
                    streams.join(", "),
                    started.elapsed().as_secs_f64()
                )))
            }
            Ok(Some(why)) | Err(why) => last = why,
        }
        tokio::time::sleep(POLL).await;
    }
    Err(StepError::new(format!(
        "streams not current within {} s: {last}",
        timeout.as_secs()
    ))
    .hint("a replica has not caught up with its leader; the next NATS node is not restarted. Check `mp-remote status` and the NATS log (`mp-remote logs --service nats`)"))
}

/// None when every stream is current; else what lags. A stream that does not exist yet is
/// current (a first deploy creates it later).
async fn lagging(url: &str, streams: &[String]) -> Result<Option<String>, String> {
    let client = super::nats_admin::connect_options()?
        .connection_timeout(Duration::from_secs(3))
        .request_timeout(Some(Duration::from_secs(3)))
        .connect(crate::agent::local_addr::here(url))
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    let js = jetstream::new(client);
    for name in streams {
        let mut stream = match js.get_stream(name).await {
            Ok(stream) => stream,
            Err(e) if e.to_string().contains("not found") => continue,
            Err(e) => return Err(format!("{name}: {e}")),
        };
        let info = stream.info().await.map_err(|e| format!("{name}: {e}"))?;
        if let Some(why) = info.cluster.as_ref().and_then(|c| replica_problem(name, c)) {
            return Ok(Some(why));
        }
    }
    Ok(None)
}

/// What keeps a stream's cluster from being current, if anything.
fn replica_problem(stream: &str, cluster: &ClusterInfo) -> Option<String> {
    if cluster.leader.is_none() {
        return Some(format!("{stream} has no leader"));
    }
    cluster.replicas.iter().find_map(|peer| {
        if peer.offline {
            Some(format!("{stream}: replica {} is offline", peer.name))
        } else if !peer.current {
            Some(format!(
                "{stream}: replica {} is not current (lag {})",
                peer.name,
                peer.lag.unwrap_or(0)
            ))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lagging_or_offline_replica_or_no_leader_is_named() {
        let cluster = |leader: Option<&str>, current: bool, offline: bool| -> ClusterInfo {
            serde_json::from_value(serde_json::json!({
                "name": "mp",
                "leader": leader,
                "replicas": [{"name": "n2", "current": current, "active": 1000, "offline": offline, "lag": 7}]
            }))
            .unwrap()
        };
        assert_eq!(
            replica_problem("S", &cluster(Some("n1"), true, false)),
            None
        );
        assert_eq!(
            replica_problem("S", &cluster(Some("n1"), false, false)).unwrap(),
            "S: replica n2 is not current (lag 7)"
        );
        assert_eq!(
            replica_problem("S", &cluster(Some("n1"), true, true)).unwrap(),
            "S: replica n2 is offline"
        );
        assert_eq!(
            replica_problem("S", &cluster(None, true, false)).unwrap(),
            "S has no leader"
        );
    }
}
