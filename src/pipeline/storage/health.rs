//! Storage's counters, and what `/health` and `/metrics` make of them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::pipeline::http::{age_ms, Observed, Status};
use crate::pipeline::message::{DataType, STREAMS};
use crate::pipeline::metrics::Exposition;
use crate::pipeline::nats::Link;
use crate::stack::SchemaRendering;

/// An insert error within this makes storage "degraded".
const RECENT: Duration = Duration::from_secs(10);
/// ClickHouse or NATS down for longer makes storage "unhealthy".
const DOWN_TOO_LONG: Duration = Duration::from_secs(30);

pub struct StorageState {
    started: Instant,
    pub link: Arc<Link>,
    counters: Mutex<Counters>,
}

#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// Since when ClickHouse fails (None: the last request succeeded, or none was made yet).
    pub clickhouse_down_since: Option<Instant>,
    pub clickhouse_ok: bool,
    pub schema: Option<SchemaRendering>,
    pub schema_error: Option<String>,
    /// Streams that do not exist, with the error to show.
    pub missing_streams: BTreeMap<String, String>,
    /// Fetched and not acked, per stream.
    pub pending: BTreeMap<String, u64>,
    /// Messages in the stream not yet delivered to the consumer, per stream.
    pub consumer_lag: BTreeMap<String, u64>,
    /// Delivered and not acked, per stream: ours in flight, or a killed instance's, which
    /// JetStream delivers again after the ack wait.
    pub consumer_ack_pending: BTreeMap<String, u64>,
    /// The stream's last sequence and the consumer's ack floor (stream sequence), per stream,
    /// as JetStream's API last said: only streams read so far.
    pub stream_last_seq: BTreeMap<String, u64>,
    pub consumer_ack_floor: BTreeMap<String, u64>,
    pub inserted: BTreeMap<DataType, u64>,
    pub acked: u64,
    pub rejected: u64,
    /// Messages delivered more than once (an earlier delivery may be stored already).
    pub redelivered: u64,
    /// Messages whose id was stored already (delivered or published again): acked, not
    /// stored twice.
    pub duplicates_dropped: u64,
    pub insert_errors: u64,
    pub last_insert: Option<Instant>,
    pub last_insert_error_at: Option<Instant>,
    pub last_error: Option<String>,
}

/// What the status is decided from (pure, so it is tested without servers).
#[derive(Debug, Clone, Copy)]
pub struct StatusInputs {
    pub nats_down_for: Option<Duration>,
    pub clickhouse_down_for: Option<Duration>,
    pub schema_known: bool,
    pub schema_wrong: bool,
    pub stream_missing: bool,
    pub last_insert_error_age: Option<Duration>,
}

/// unhealthy: the schema is wrong, a stream is missing, or ClickHouse or NATS is down for
/// more than 30 s; degraded: retrying (an insert error in the last 10 s, a server down
/// briefly) or still starting; healthy otherwise.
pub fn status(i: &StatusInputs) -> Status {
    let long = |d: Option<Duration>| d.is_some_and(|d| d > DOWN_TOO_LONG);
    if i.schema_wrong || i.stream_missing || long(i.clickhouse_down_for) || long(i.nats_down_for) {
        return Status::Unhealthy;
    }
    if i.nats_down_for.is_some()
        || i.clickhouse_down_for.is_some()
        || !i.schema_known
        || i.last_insert_error_age.is_some_and(|a| a < RECENT)
    {
        return Status::Degraded;
    }
    Status::Healthy
}

impl StorageState {
    pub fn new(link: Arc<Link>) -> Arc<StorageState> {
        Arc::new(StorageState {
            started: Instant::now(),
            link,
            counters: Mutex::new(Counters::default()),
        })
    }

    pub fn counters(&self) -> Counters {
        self.lock().clone()
    }

    /// Applies `f` to the counters under the lock.
    pub fn update<R>(&self, f: impl FnOnce(&mut Counters) -> R) -> R {
        f(&mut self.lock())
    }

    pub fn clickhouse_ok(&self) {
        self.update(|c| {
            c.clickhouse_ok = true;
            c.clickhouse_down_since = None;
        });
    }

    /// Records a failed ClickHouse request; `insert` when it was an insert.
    pub fn clickhouse_failed(&self, error: String, insert: bool) {
        let now = Instant::now();
        self.update(|c| {
            c.clickhouse_ok = false;
            c.clickhouse_down_since.get_or_insert(now);
            if insert {
                c.insert_errors += 1;
                c.last_insert_error_at = Some(now);
            }
            c.last_error = Some(error);
        });
    }

    fn inputs(&self, c: &Counters, now: Instant) -> StatusInputs {
        StatusInputs {
            nats_down_for: self.link.down_for(now),
            clickhouse_down_for: c
                .clickhouse_down_since
                .map(|t| now.saturating_duration_since(t)),
            schema_known: c.schema.is_some(),
            schema_wrong: c.schema_error.is_some(),
            stream_missing: !c.missing_streams.is_empty(),
            last_insert_error_age: c
                .last_insert_error_at
                .map(|t| now.saturating_duration_since(t)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn per_stream(values: &BTreeMap<String, u64>) -> BTreeMap<&'static str, u64> {
    STREAMS
        .iter()
        .map(|s| (*s, values.get(*s).copied().unwrap_or(0)))
        .collect()
}

fn per_table(values: &BTreeMap<DataType, u64>) -> BTreeMap<&'static str, u64> {
    DataType::ALL
        .iter()
        .map(|t| (t.table(), values.get(t).copied().unwrap_or(0)))
        .collect()
}

impl Observed for StorageState {
    fn health(&self) -> (Status, serde_json::Value) {
        let now = Instant::now();
        let c = self.counters();
        let status = status(&self.inputs(&c, now));
        // A wrong schema or a missing stream stays the error to show until it is fixed.
        let last_error = c
            .schema_error
            .clone()
            .or_else(|| c.missing_streams.values().next().cloned())
            .or(c.last_error.clone());
        let body = json!({
            "status": status,
            "nats": if self.link.connected() { "connected" } else { "disconnected" },
            "clickhouse": if c.clickhouse_ok { "ok" } else { "error" },
            "schema": c.schema.map(|r| r.to_string()),
            "pending": c.pending.values().sum::<u64>(),
            "consumer_lag": per_stream(&c.consumer_lag),
            "consumer_ack_pending": per_stream(&c.consumer_ack_pending),
            "stream_last_seq": &c.stream_last_seq,
            "consumer_ack_floor": &c.consumer_ack_floor,
            "inserted": per_table(&c.inserted),
            "acked": c.acked,
            "rejected": c.rejected,
            "redelivered": c.redelivered,
            "duplicates_dropped": c.duplicates_dropped,
            "insert_errors": c.insert_errors,
            "last_insert_age_ms": age_ms(c.last_insert, now),
            "uptime_ms": now.saturating_duration_since(self.started).as_millis() as u64,
            "last_error": last_error,
        });
        (status, body)
    }

    fn metrics(&self) -> String {
        let c = self.counters();
        let inserted: Vec<(&str, u64)> = per_table(&c.inserted).into_iter().collect();
        let lag: Vec<(&str, f64)> = per_stream(&c.consumer_lag)
            .into_iter()
            .map(|(s, n)| (s, n as f64))
            .collect();
        let mut e = Exposition::new();
        e.labelled_counter(
            "mp_storage_inserted_rows_total",
            "Rows ClickHouse accepted.",
            "table",
            &inserted,
        );
        e.counter(
            "mp_storage_acked_total",
            "Messages acked after their batch was stored.",
            c.acked,
        );
        e.counter(
            "mp_storage_rejected_total",
            "Messages that could not be parsed (terminated, not stored).",
            c.rejected,
        );
        e.counter(
            "mp_storage_insert_errors_total",
            "Failed inserts (each is retried).",
            c.insert_errors,
        );
        e.gauge(
            "mp_storage_pending",
            "Messages fetched and not acked yet.",
            c.pending.values().sum::<u64>() as f64,
        );
        e.labelled_gauge(
            "mp_storage_consumer_lag",
            "Messages in the stream not yet delivered to storage.",
            "stream",
            &lag,
        );
        e.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> StatusInputs {
        StatusInputs {
            nats_down_for: None,
            clickhouse_down_for: None,
            schema_known: true,
            schema_wrong: false,
            stream_missing: false,
            last_insert_error_age: None,
        }
    }

    #[test]
    fn healthy_when_everything_answers() {
        assert_eq!(status(&ok()), Status::Healthy);
        let old_error = StatusInputs {
            last_insert_error_age: Some(Duration::from_secs(30)),
            ..ok()
        };
        assert_eq!(status(&old_error), Status::Healthy);
    }

    #[test]
    fn degraded_while_retrying_or_starting() {
        let cases = [
            StatusInputs {
                last_insert_error_age: Some(Duration::from_secs(2)),
                ..ok()
            },
            StatusInputs {
                clickhouse_down_for: Some(Duration::from_secs(20)),
                ..ok()
            },
            StatusInputs {
                nats_down_for: Some(Duration::from_secs(5)),
                ..ok()
            },
            StatusInputs {
                schema_known: false,
                ..ok()
            },
        ];
        for i in cases {
            assert_eq!(status(&i), Status::Degraded, "{i:?}");
        }
    }

    #[test]
    fn unhealthy_when_broken_for_good() {
        let cases = [
            StatusInputs {
                schema_wrong: true,
                schema_known: false,
                ..ok()
            },
            StatusInputs {
                stream_missing: true,
                ..ok()
            },
            StatusInputs {
                clickhouse_down_for: Some(Duration::from_secs(31)),
                ..ok()
            },
            StatusInputs {
                nats_down_for: Some(Duration::from_secs(31)),
                ..ok()
            },
        ];
        for i in cases {
            assert_eq!(status(&i), Status::Unhealthy, "{i:?}");
        }
    }

    #[test]
    fn health_json_shape() {
        let state = StorageState::new(Link::new());
        state.update(|c| {
            c.inserted.insert(DataType::Trade, 5);
            c.consumer_lag.insert("MARKET_DATA".into(), 7);
            c.missing_streams.insert(
                "ORDERBOOK_SNAP".into(),
                "stream ORDERBOOK_SNAP missing: run mp-remote deploy".into(),
            );
        });
        let (status, body) = state.health();
        assert_eq!(status, Status::Unhealthy);
        assert_eq!(body["status"], "unhealthy");
        assert_eq!(body["inserted"]["trades"], 5);
        assert_eq!(body["inserted"]["volatility_indices"], 0);
        assert_eq!(body["consumer_lag"]["MARKET_DATA"], 7);
        assert_eq!(body["consumer_lag"]["ORDERBOOK_SNAP"], 0);
        assert_eq!(body["schema"], serde_json::Value::Null);
        assert_eq!(
            body["last_error"],
            "stream ORDERBOOK_SNAP missing: run mp-remote deploy"
        );
        for key in [
            "nats",
            "clickhouse",
            "pending",
            "acked",
            "rejected",
            "insert_errors",
            "last_insert_age_ms",
        ] {
            assert!(body.get(key).is_some(), "no {key}");
        }
    }
}
