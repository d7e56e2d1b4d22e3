//! The collector's counters, and what `/health` and `/metrics` make of them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::http::{age_ms, Observed, Status};
use super::message::DataType;
use super::metrics::Exposition;
use super::nats::Link;
use super::source::exchanges::stats::FeedStats;

/// Within this, a publish error makes the collector "degraded", and an acked publish keeps
/// it "healthy"; NATS down for longer makes it "unhealthy".
pub const RECENT: Duration = Duration::from_secs(10);

pub struct CollectorState {
    pub id: String,
    /// Start time in UTC milliseconds: part of every message id, so a restart never reuses one.
    pub boot: i64,
    started: Instant,
    pub link: Arc<Link>,
    /// A live source's per-stream record; `None` for the synthetic generator.
    feeds: Option<Arc<FeedStats>>,
    counters: Mutex<Counters>,
}

#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub published: BTreeMap<DataType, u64>,
    /// Acks saying JetStream already had the message (a retry after a lost ack).
    pub duplicates: u64,
    pub dropped: u64,
    pub publish_errors: u64,
    /// Generated, not acked yet.
    pub buffered: u64,
    pub last_ack: Option<Instant>,
    pub last_error: Option<String>,
    pub last_error_at: Option<Instant>,
    /// The last publish found no stream for its subject (and none succeeded since).
    pub stream_missing: bool,
    /// When an error was last logged, and the errors since then.
    last_logged_error: Option<Instant>,
    errors_not_logged: u64,
}

impl Counters {
    pub fn published_total(&self) -> u64 {
        self.published.values().sum()
    }
}

/// What the status is decided from (pure, so it is tested without a server).
#[derive(Debug, Clone, Copy)]
pub struct StatusInputs {
    pub nats_down_for: Option<Duration>,
    pub since_start: Duration,
    pub last_ack_age: Option<Duration>,
    pub last_error_age: Option<Duration>,
    pub stream_missing: bool,
    /// A live source (exchanges): quiet spells are normal, its own stall check speaks instead.
    pub live_source: bool,
    /// What makes the live source degraded (stalled streams, connections down), named.
    pub source_degraded: bool,
}

/// healthy: connected, and a publish acked recently (or just started); degraded: connected
/// but publishes fail or stall, or NATS down briefly; unhealthy: no stream for the subjects,
/// or NATS down for longer than [`RECENT`].
pub fn status(i: &StatusInputs) -> Status {
    if i.stream_missing {
        return Status::Unhealthy;
    }
    match i.nats_down_for {
        Some(d) if d > RECENT => return Status::Unhealthy,
        Some(_) => return Status::Degraded,
        None => {}
    }
    if i.last_error_age.is_some_and(|a| a < RECENT) || i.source_degraded {
        return Status::Degraded;
    }
    if i.live_source {
        return Status::Healthy;
    }
    let fresh = i.last_ack_age.is_some_and(|a| a < RECENT);
    if fresh || i.since_start < RECENT {
        Status::Healthy
    } else {
        Status::Degraded
    }
}

impl CollectorState {
    pub fn new(
        id: &str,
        boot: i64,
        link: Arc<Link>,
        feeds: Option<Arc<FeedStats>>,
    ) -> Arc<CollectorState> {
        Arc::new(CollectorState {
            id: id.to_string(),
            boot,
            started: Instant::now(),
            link,
            feeds,
            counters: Mutex::new(Counters::default()),
        })
    }

    pub fn counters(&self) -> Counters {
        self.lock().clone()
    }

    pub fn buffered(&self, delta: i64) {
        let mut c = self.lock();
        c.buffered = c.buffered.saturating_add_signed(delta);
    }

    pub fn acked(&self, data_type: DataType, duplicate: bool) {
        let mut c = self.lock();
        *c.published.entry(data_type).or_default() += 1;
        c.duplicates += u64::from(duplicate);
        c.buffered = c.buffered.saturating_sub(1);
        c.last_ack = Some(Instant::now());
        c.stream_missing = false;
    }

    pub fn dropped(&self) -> u64 {
        let mut c = self.lock();
        c.dropped += 1;
        c.dropped
    }

    /// Records a failed publish. Returns the line to log, if any: the first error after a
    /// success, then at most one every 5 s with the count of the others (thousands of buffered
    /// messages fail together when NATS or the stream goes away).
    pub fn publish_failed(&self, error: String, stream_missing: bool) -> Option<String> {
        let now = Instant::now();
        let mut c = self.lock();
        c.publish_errors += 1;
        c.stream_missing = stream_missing;
        c.last_error_at = Some(now);
        let first_since_ack = match (c.last_ack, c.last_logged_error) {
            (Some(ack), Some(logged)) => ack > logged,
            (_, None) => true,
            (None, Some(_)) => false,
        };
        let due = c
            .last_logged_error
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(5));
        let line = if first_since_ack || due {
            let others = std::mem::take(&mut c.errors_not_logged);
            c.last_logged_error = Some(now);
            Some(if others > 0 {
                format!(
                    "{error}; retrying ({others} other failed attempt(s) since the last report)"
                )
            } else {
                format!("{error}; retrying")
            })
        } else {
            c.errors_not_logged += 1;
            None
        };
        c.last_error = Some(error);
        line
    }

    fn inputs(&self, c: &Counters, now: Instant, source_degraded: bool) -> StatusInputs {
        StatusInputs {
            live_source: self.feeds.is_some(),
            source_degraded,
            nats_down_for: self.link.down_for(now),
            since_start: now.saturating_duration_since(self.started),
            last_ack_age: c.last_ack.map(|t| now.saturating_duration_since(t)),
            last_error_age: c.last_error_at.map(|t| now.saturating_duration_since(t)),
            stream_missing: c.stream_missing,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Observed for CollectorState {
    fn health(&self) -> (Status, serde_json::Value) {
        let now = Instant::now();
        let c = self.counters();
        let degraded = self
            .feeds
            .as_ref()
            .map(|f| f.degraded(now))
            .unwrap_or_default();
        let status = status(&self.inputs(&c, now, !degraded.is_empty()));
        let by_type: BTreeMap<&str, u64> = DataType::ALL
            .iter()
            .map(|t| (t.as_str(), c.published.get(t).copied().unwrap_or(0)))
            .collect();
        let mut body = json!({
            "status": status,
            "id": self.id,
            "boot": self.boot,
            "nats": if self.link.connected() { "connected" } else { "disconnected" },
            "published": c.published_total(),
            "published_by_type": by_type,
            "duplicates": c.duplicates,
            "dropped": c.dropped,
            "buffered": c.buffered,
            "publish_errors": c.publish_errors,
            "last_publish_age_ms": age_ms(c.last_ack, now),
            "last_error": c.last_error,
        });
        body["source"] = match &self.feeds {
            None => json!({ "kind": "synthetic" }),
            Some(feeds) => {
                let mut source = feeds.health(now);
                source["kind"] = json!("exchanges");
                source["degraded"] = json!(degraded);
                source
            }
        };
        (status, body)
    }

    fn metrics(&self) -> String {
        let c = self.counters();
        let by_type: Vec<(&str, u64)> = DataType::ALL
            .iter()
            .map(|t| (t.as_str(), c.published.get(t).copied().unwrap_or(0)))
            .collect();
        let mut e = Exposition::new();
        e.labelled_counter(
            "mp_collector_published_total",
            "Messages acked by JetStream.",
            "data_type",
            &by_type,
        );
        e.counter(
            "mp_collector_dropped_total",
            "Messages lost because the buffer was full.",
            c.dropped,
        );
        e.counter(
            "mp_collector_publish_errors_total",
            "Publish attempts that failed (each is retried).",
            c.publish_errors,
        );
        e.gauge(
            "mp_collector_buffered",
            "Messages generated and not acked yet.",
            c.buffered as f64,
        );
        if let Some(feeds) = &self.feeds {
            feeds.metrics(&mut e, Instant::now());
        }
        e.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> StatusInputs {
        StatusInputs {
            nats_down_for: None,
            since_start: Duration::from_secs(60),
            last_ack_age: Some(Duration::from_secs(1)),
            last_error_age: None,
            stream_missing: false,
            live_source: false,
            source_degraded: false,
        }
    }

    #[test]
    fn healthy_when_connected_and_acked_recently() {
        assert_eq!(status(&inputs()), Status::Healthy);
    }

    #[test]
    fn healthy_right_after_start_before_any_ack() {
        let i = StatusInputs {
            since_start: Duration::from_secs(2),
            last_ack_age: None,
            ..inputs()
        };
        assert_eq!(status(&i), Status::Healthy);
    }

    #[test]
    fn degraded_when_stale_or_erroring_or_briefly_down() {
        let stale = StatusInputs {
            last_ack_age: Some(Duration::from_secs(11)),
            ..inputs()
        };
        let erroring = StatusInputs {
            last_error_age: Some(Duration::from_secs(3)),
            ..inputs()
        };
        let down = StatusInputs {
            nats_down_for: Some(Duration::from_secs(4)),
            ..inputs()
        };
        for i in [stale, erroring, down] {
            assert_eq!(status(&i), Status::Degraded, "{i:?}");
        }
    }

    #[test]
    fn unhealthy_when_down_long_or_stream_missing() {
        let down = StatusInputs {
            nats_down_for: Some(Duration::from_secs(11)),
            ..inputs()
        };
        let missing = StatusInputs {
            stream_missing: true,
            ..inputs()
        };
        assert_eq!(status(&down), Status::Unhealthy);
        assert_eq!(status(&missing), Status::Unhealthy);
    }

    #[test]
    fn publish_errors_are_logged_sparingly() {
        let state = CollectorState::new("mp-1", 1, Link::new(), None);
        let first = state.publish_failed("no ack".into(), false);
        assert_eq!(first.as_deref(), Some("no ack; retrying"));
        for _ in 0..100 {
            assert_eq!(state.publish_failed("no ack".into(), false), None);
        }
        state.acked(DataType::Trade, false);
        let after_ack = state.publish_failed("stream missing".into(), true).unwrap();
        assert!(after_ack.contains("100 other failed"), "{after_ack}");
        assert_eq!(state.counters().publish_errors, 102);
        assert!(state.counters().stream_missing);
    }

    #[test]
    fn health_json_has_every_field() {
        let state = CollectorState::new("mp-1", 1_700_000_000_000, Link::new(), None);
        state.buffered(2);
        state.acked(DataType::Trade, false);
        let (_, body) = state.health();
        for key in [
            "status",
            "id",
            "boot",
            "nats",
            "published",
            "published_by_type",
            "dropped",
            "buffered",
            "last_publish_age_ms",
            "last_error",
        ] {
            assert!(body.get(key).is_some(), "no {key} in {body}");
        }
        assert_eq!(body["published"], 1);
        assert_eq!(body["published_by_type"]["trade"], 1);
        assert_eq!(body["published_by_type"]["orderbook"], 0);
        assert_eq!(body["buffered"], 1);
        assert_eq!(body["nats"], "disconnected");
    }
}
