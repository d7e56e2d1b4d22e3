//! Layer 5: proof that the pipeline works, hop by hop. A collector's published count grows;
//! every table gains rows. When rows do not come, the stream's and the consumer's state and the
//! storage's health name the hop that is broken, and the failure carries that service's log.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::wait_http::service_log;
use crate::agent::outcome::{Outcome, StepError};
use crate::plan::FlowCheck;

const POLL: Duration = Duration::from_secs(1);

fn client() -> Result<reqwest::Client, StepError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| StepError::new(format!("cannot set up an HTTP client: {e}")))
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value, String> {
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("HTTP {status}: {}", body.trim()));
    }
    serde_json::from_str(&body).map_err(|e| format!("not JSON ({e}): {}", body.trim()))
}

fn count(value: &Value, field: &str) -> Option<u64> {
    value.get(field).and_then(Value::as_u64)
}

/// The collector's `published` count grows within the deadline, and (a live collector) each
/// of its slow streams has delivered at least once.
pub async fn publishing(
    health_url: &str,
    timeout: Duration,
    log_unit: &str,
    polled: &[String],
    check_only: bool,
) -> Result<Outcome, StepError> {
    if check_only {
        return Ok(Outcome::unchanged(
            "would check that the collector publishes",
        ));
    }
    let client = client()?;
    let started = Instant::now();
    let mut first: Option<u64> = None;
    let mut grew: Option<String> = None;
    let mut last = String::from("no answer yet");
    while started.elapsed() < timeout {
        match get_json(&client, health_url).await {
            Ok(health) => {
                let published = count(&health, "published").unwrap_or(0);
                match first {
                    Some(before) if published > before && grew.is_none() => {
                        grew = Some(format!(
                            "collector published {} messages in {:.1} s ({published} since start)",
                            published - before,
                            started.elapsed().as_secs_f64()
                        ));
                    }
                    None => first = Some(published),
                    _ => {}
                }
                let waiting = silent_streams(&health, polled);
                if let Some(grew) = &grew {
                    if waiting.is_empty() {
                        return Ok(Outcome::unchanged(polled_summary(grew, &health, polled)));
                    }
                }
                last = format!(
                    "status {}, nats {}, published {published}, last error {}",
                    health["status"], health["nats"], health["last_error"]
                );
                if !waiting.is_empty() {
                    last.push_str(&format!("; nothing yet from {}", waiting.join("; ")));
                }
            }
            Err(e) => last = format!("{health_url}: {e}"),
        }
        tokio::time::sleep(POLL).await;
    }
    let what = if grew.is_some() {
        "collector publishes, but not every slow stream delivered"
    } else {
        "collector not publishing: its published count did not grow"
    };
    Err(StepError::new(format!("{what} in {} s ({last})", timeout.as_secs()))
    .hint(format!(
        "check NATS and the exchanges from this host and the collector's log (`mp-remote logs --service collector`); the last lines of {log_unit} are below"
    ))
    .with_output(&service_log(log_unit).await))
}

/// The polled streams without a message yet, each with its last problem when there is one.
fn silent_streams(health: &Value, polled: &[String]) -> Vec<String> {
    polled
        .iter()
        .filter_map(|stream| {
            let s = &health["source"]["streams"][stream];
            if s["messages"].as_u64().unwrap_or(0) > 0 {
                return None;
            }
            Some(match s["last_problem"].as_str() {
                Some(problem) => format!("{stream} ({problem})"),
                None => stream.clone(),
            })
        })
        .collect()
}

/// What the step checked: the publishing, and for a live collector its slow streams.
fn polled_summary(grew: &str, health: &Value, polled: &[String]) -> String {
    if polled.is_empty() {
        return grew.to_string();
    }
    let seen: Vec<String> = polled
        .iter()
        .map(|s| {
            let n = health["source"]["streams"][s]["messages"]
                .as_u64()
                .unwrap_or(0);
            format!("{s} ({n})")
        })
        .collect();
    format!(
        "{grew}; slow types checked by a successful poll or message instead of rows: {}",
        seen.join(", ")
    )
}

/// The streams storage consumes and its durable consumers' names (`mp-storage-STREAM`).
const STREAMS: [&str; 2] = ["MARKET_DATA", "ORDERBOOK_SNAP"];
const CONSUMER_PREFIX: &str = "mp-storage";

/// What NATS says of one stream and storage's consumer on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct StreamState {
    last_seq: u64,
    /// None: storage has no consumer on this stream.
    ack_floor: Option<u64>,
    pending: u64,
    /// Read by storage through JetStream's API, not from a node's monitoring.
    from_storage: bool,
}

/// The streams storage has read its consumer on (its health: `stream_last_seq`,
/// `consumer_ack_floor`, `consumer_lag`).
fn states_from_health(health: &Value) -> BTreeMap<String, StreamState> {
    let Some(last) = health["stream_last_seq"].as_object() else {
        return BTreeMap::new();
    };
    last.iter()
        .filter_map(|(stream, seq)| {
            Some((
                stream.clone(),
                StreamState {
                    last_seq: seq.as_u64()?,
                    ack_floor: health["consumer_ack_floor"][stream].as_u64(),
                    pending: health["consumer_lag"][stream].as_u64().unwrap_or(0),
                    from_storage: true,
                },
            ))
        })
        .collect()
}

pub async fn rows_arrive(flow: &FlowCheck, check_only: bool) -> Result<Outcome, StepError> {
    if check_only {
        return Ok(Outcome::unchanged(
            "would check that rows arrive in every table",
        ));
    }
    let password = std::fs::read_to_string(&flow.password_file)
        .map_err(|e| StepError::new(format!("cannot read {}: {e}", flow.password_file)))?;
    let password = password.trim();
    let client = client()?;
    let started = Instant::now();
    let timeout = Duration::from_secs(flow.timeout_secs);
    let before = row_counts(&client, flow, password).await.map_err(|e| {
        StepError::new(format!("cannot count rows in ClickHouse: {e}"))
            .hint("ClickHouse must answer on its HTTP port; see `mp-remote status`")
    })?;
    let streams_before = stream_states(&client, flow).await;
    let mut after = before.clone();
    loop {
        let missing: Vec<&String> = flow
            .tables
            .iter()
            .filter(|t| after.get(*t) <= before.get(*t))
            .collect();
        if missing.is_empty() {
            let grown: Vec<String> = flow
                .tables
                .iter()
                .map(|t| format!("{t} +{}", after[t] - before.get(t).copied().unwrap_or(0)))
                .collect();
            return Ok(Outcome::unchanged(format!(
                "rows arrived in all {} tables within {:.1} s: {}",
                flow.tables.len(),
                started.elapsed().as_secs_f64(),
                grown.join(", ")
            ))
            .with_data(after));
        }
        if started.elapsed() >= timeout {
            let streams_after = stream_states(&client, flow).await;
            let health = get_json(&client, &flow.storage_health_url).await;
            let message = diagnose(&missing, &streams_before, &streams_after, &health);
            return Err(StepError::new(format!(
                "no data flow within {} s: {message}",
                flow.timeout_secs
            ))
            .hint(format!(
                "the last lines of {} are below; `mp-remote status` shows every hop",
                flow.log_unit
            ))
            .with_output(&service_log(&flow.log_unit).await));
        }
        tokio::time::sleep(POLL).await;
        if let Ok(now) = row_counts(&client, flow, password).await {
            after = now;
        }
    }
}

/// Rows per table, in one query (one statement per request, as ClickHouse wants).
async fn row_counts(
    client: &reqwest::Client,
    flow: &FlowCheck,
    password: &str,
) -> Result<BTreeMap<String, u64>, String> {
    let sql = flow
        .tables
        .iter()
        .map(|t| format!("SELECT '{t}', count() FROM {}.{t}", flow.database))
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
        + " FORMAT TabSeparated";
    let response = client
        .post(&flow.clickhouse_url)
        .header("X-ClickHouse-User", &flow.user)
        .header("X-ClickHouse-Key", password)
        .body(sql)
        .send()
        .await
        .map_err(|e| format!("{}: {e}", flow.clickhouse_url))?;
    let status = response.status();
    let body = response.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("HTTP {status}: {}", body.trim()));
    }
    Ok(parse_counts(&body))
}

fn parse_counts(body: &str) -> BTreeMap<String, u64> {
    body.lines()
        .filter_map(|line| {
            let (table, n) = line.split_once('\t')?;
            Some((table.to_string(), n.trim().parse().ok()?))
        })
        .collect()
}

/// Each stream's state from NATS monitoring (`/jsz`) of every node: the newest stream tail,
/// and the consumer as its leader sees it (a follower's copy lags). Empty when no node answers.
async fn stream_states(
    client: &reqwest::Client,
    flow: &FlowCheck,
) -> BTreeMap<String, StreamState> {
    let mut merged: BTreeMap<String, StreamState> = BTreeMap::new();
    // Storage's own view, from JetStream's API (the consumer's leader answers): what a node's
    // monitoring says below only fills in what storage did not read yet.
    if let Ok(health) = get_json(client, &flow.storage_health_url).await {
        merged = states_from_health(&health);
    }
    for monitor in &flow.nats_monitor_urls {
        let url = format!("{monitor}/jsz?streams=true&consumers=true");
        let Ok(jsz) = get_json(client, &url).await else {
            continue;
        };
        for (name, (state, leader)) in parse_jsz(&jsz) {
            if merged.get(&name).is_some_and(|s| s.from_storage) {
                continue;
            }
            let entry = merged.entry(name).or_default();
            entry.last_seq = entry.last_seq.max(state.last_seq);
            if leader || entry.ack_floor.is_none() {
                entry.ack_floor = state.ack_floor;
                entry.pending = state.pending;
            }
        }
    }
    merged
}

/// A consumer's state as one node reports it: authoritative on its leader, or when it has
/// no replicas (R1).
fn is_leader_view(consumer: &Value) -> bool {
    let cluster = &consumer["cluster"];
    let Some(leader) = cluster["leader"].as_str() else {
        return true;
    };
    !cluster["replicas"]
        .as_array()
        .is_some_and(|rs| rs.iter().any(|r| r["name"] == leader))
}

/// Per stream of interest: its state, and whether the consumer part is its leader's view.
fn parse_jsz(jsz: &Value) -> BTreeMap<String, (StreamState, bool)> {
    let mut states = BTreeMap::new();
    let accounts = jsz["account_details"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for stream in accounts
        .iter()
        .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
    {
        let Some(name) = stream["name"].as_str() else {
            continue;
        };
        if !STREAMS.contains(&name) {
            continue;
        }
        let consumer_name = format!("{CONSUMER_PREFIX}-{name}");
        let consumer = stream["consumer_detail"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == consumer_name.as_str()));
        let state = StreamState {
            last_seq: stream["state"]["last_seq"].as_u64().unwrap_or(0),
            ack_floor: consumer.map(|c| c["ack_floor"]["stream_seq"].as_u64().unwrap_or(0)),
            pending: consumer
                .and_then(|c| c["num_pending"].as_u64())
                .unwrap_or(0),
            from_storage: false,
        };
        states.insert(
            name.to_string(),
            (state, consumer.is_some_and(is_leader_view)),
        );
    }
    states
}

/// Names the broken hop from what the stream, the consumer and the storage say.
fn diagnose(
    missing: &[&String],
    before: &BTreeMap<String, StreamState>,
    after: &BTreeMap<String, StreamState>,
    health: &Result<Value, String>,
) -> String {
    let tables = missing
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let storage_error = match health {
        Ok(h) => h["last_error"].as_str().map(str::to_string),
        Err(e) => Some(format!("its health endpoint does not answer: {e}")),
    };
    let clickhouse_failing =
        matches!(health, Ok(h) if h["clickhouse"].as_str().is_some_and(|s| s != "ok"));
    if after.is_empty() {
        return format!(
            "no new rows in {tables}; neither storage (its health) nor NATS monitoring told the streams' state, so they cannot be checked"
        );
    }
    for stream in STREAMS {
        if !after.contains_key(stream) {
            return format!("stream {stream} missing: run mp-remote deploy to create it");
        }
    }
    let grew = |name: &str| {
        let old = before.get(name).map(|s| s.last_seq).unwrap_or(0);
        after[name].last_seq > old
    };
    if !STREAMS.iter().any(|s| grew(s)) {
        return format!(
            "stream not receiving: no new messages in {} (collectors not publishing: see verify.collector.publishing and `mp-remote logs --service collector`)",
            STREAMS.join(" or ")
        );
    }
    for stream in STREAMS {
        let state = &after[stream];
        let Some(floor) = state.ack_floor else {
            return format!(
                "storage not consuming: it has no consumer {CONSUMER_PREFIX}-{stream} on {stream}{}",
                storage_error.map(|e| format!(" ({e})")).unwrap_or_default()
            );
        };
        let old_floor = before.get(stream).and_then(|s| s.ack_floor).unwrap_or(0);
        // Storage acks only what ClickHouse took: a stuck floor with ClickHouse failing is
        // the insert hop, not the consumer.
        if grew(stream) && floor <= old_floor && clickhouse_failing {
            return format!(
                "inserts failing: {stream} grew to sequence {} but storage cannot insert{}",
                state.last_seq,
                storage_error.map(|e| format!(": {e}")).unwrap_or_default()
            );
        }
        if grew(stream) && floor <= old_floor {
            return format!(
                "storage not consuming: {stream} grew to sequence {} while its consumer's ack floor stayed at {floor} ({} pending){}",
                state.last_seq,
                state.pending,
                storage_error.map(|e| format!("; storage says: {e}")).unwrap_or_default()
            );
        }
    }
    format!(
        "inserts failing: storage consumes the streams but no rows reached {tables}{}",
        storage_error
            .map(|e| format!("; storage says: {e}"))
            .unwrap_or_default()
    )
}

#[cfg(test)]
#[path = "verify_flow_tests.rs"]
mod tests;
