//! Per stream and per connection: what the live source did, for `/health` and `/metrics`.
//! A stream is a subject (`trade.binance.spot.BTC-USDT`); it belongs to a websocket
//! connection or to a REST poll.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::pipeline::http::age_ms;
use crate::pipeline::metrics::Exposition;

#[derive(Debug, Clone, Default)]
struct Stream {
    /// The connection (`binance spot`) or `poll` that delivers it.
    via: Option<String>,
    messages: u64,
    last_message: Option<Instant>,
    gaps: u64,
    problems: u64,
    last_problem: Option<String>,
    /// Polls only: answers that could not be used.
    polls_failed: u64,
    /// Polls only: silence normal between two polls, which `stall_after` must not call a stall.
    expected_gap: Duration,
}

#[derive(Debug, Clone, Default)]
struct Connection {
    connected: bool,
    reconnects: u64,
    last_error: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    streams: BTreeMap<String, Stream>,
    connections: BTreeMap<String, Connection>,
}

pub struct FeedStats {
    stall_after: Duration,
    started: Instant,
    inner: Mutex<Inner>,
}

impl FeedStats {
    /// Every stream known from the start, so one that never delivers is reported stalled.
    pub fn new(streams: &[String], stall_after: Duration) -> Arc<FeedStats> {
        let inner = Inner {
            streams: streams
                .iter()
                .map(|s| (s.clone(), Stream::default()))
                .collect(),
            connections: BTreeMap::new(),
        };
        Arc::new(FeedStats {
            stall_after,
            started: Instant::now(),
            inner: Mutex::new(inner),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ties streams to the connection (or poll) delivering them.
    pub fn attach(&self, via: &str, streams: &[String]) {
        let mut inner = self.lock();
        for s in streams {
            inner.streams.entry(s.clone()).or_default().via = Some(via.to_string());
        }
        inner.connections.entry(via.to_string()).or_default();
    }

    /// A stream served by a REST poll: it has no connection to be up or down.
    pub fn attach_poll(&self, stream: &str, every: Duration) {
        let mut inner = self.lock();
        let s = inner.streams.entry(stream.to_string()).or_default();
        s.via = Some("poll".into());
        // Two intervals plus an HTTP timeout: one slow or failed answer is not a stall yet.
        s.expected_gap = every * 2 + Duration::from_secs(10);
    }

    pub fn connected(&self, via: &str, up: bool) {
        self.lock()
            .connections
            .entry(via.to_string())
            .or_default()
            .connected = up;
    }

    pub fn reconnecting(&self, via: &str, why: &str) {
        let mut inner = self.lock();
        let c = inner.connections.entry(via.to_string()).or_default();
        c.connected = false;
        c.reconnects += 1;
        c.last_error = Some(why.to_string());
    }

    pub fn message(&self, stream: &str) {
        self.message_at(stream, Instant::now());
    }

    fn message_at(&self, stream: &str, at: Instant) {
        let mut inner = self.lock();
        let s = inner.streams.entry(stream.to_string()).or_default();
        s.messages += 1;
        s.last_message = Some(at);
    }

    pub fn gap(&self, stream: &str, what: &str) {
        let mut inner = self.lock();
        let s = inner.streams.entry(stream.to_string()).or_default();
        s.gaps += 1;
        s.last_problem = Some(what.to_string());
    }

    /// A frame or answer that could not be used; `stream` may name a connection instead.
    pub fn problem(&self, stream: &str, what: &str) {
        let mut inner = self.lock();
        if let Some(c) = inner.connections.get_mut(stream) {
            c.last_error = Some(what.to_string());
            return;
        }
        let s = inner.streams.entry(stream.to_string()).or_default();
        s.problems += 1;
        s.last_problem = Some(what.to_string());
    }

    pub fn poll_failed(&self, stream: &str, what: &str) {
        let mut inner = self.lock();
        let s = inner.streams.entry(stream.to_string()).or_default();
        s.polls_failed += 1;
        s.last_problem = Some(what.to_string());
    }

    /// Why the source is degraded (empty: it is not): each stalled stream and each connection
    /// down, named. Before `stall_after` has passed since start nothing counts as stalled.
    pub fn degraded(&self, now: Instant) -> Vec<String> {
        let inner = self.lock();
        let mut out = Vec::new();
        for (name, c) in &inner.connections {
            if !c.connected && now.duration_since(self.started) > self.stall_after {
                out.push(format!(
                    "{name}: not connected ({})",
                    c.last_error.as_deref().unwrap_or("connecting")
                ));
            }
        }
        for (name, s) in &inner.streams {
            let since = s.last_message.unwrap_or(self.started);
            let silent = now.saturating_duration_since(since);
            if silent > self.stall_after.max(s.expected_gap) {
                let problem = s
                    .last_problem
                    .as_deref()
                    .map(|p| format!(": {p}"))
                    .unwrap_or_default();
                out.push(format!(
                    "{name}: no message for {} s{problem}",
                    silent.as_secs()
                ));
            }
        }
        out
    }

    /// `/health`'s `streams` and `connections`.
    pub fn health(&self, now: Instant) -> Value {
        let inner = self.lock();
        let streams: BTreeMap<&str, Value> = inner
            .streams
            .iter()
            .map(|(name, s)| {
                let connected = s
                    .via
                    .as_ref()
                    .and_then(|v| inner.connections.get(v))
                    .map(|c| c.connected);
                let reconnects = s
                    .via
                    .as_ref()
                    .and_then(|v| inner.connections.get(v))
                    .map_or(0, |c| c.reconnects);
                (
                    name.as_str(),
                    json!({
                        "via": s.via,
                        "connected": connected,
                        "messages": s.messages,
                        "last_message_age_ms": age_ms(s.last_message, now),
                        "reconnects": reconnects,
                        "gaps": s.gaps,
                        "problems": s.problems,
                        "polls_failed": s.polls_failed,
                        "last_problem": s.last_problem,
                    }),
                )
            })
            .collect();
        let connections: BTreeMap<&str, Value> = inner
            .connections
            .iter()
            .map(|(name, c)| {
                (
                    name.as_str(),
                    json!({
                        "connected": c.connected,
                        "reconnects": c.reconnects,
                        "last_error": c.last_error,
                    }),
                )
            })
            .collect();
        json!({ "streams": streams, "connections": connections })
    }

    /// Per-stream counters for `/metrics`.
    pub fn metrics(&self, e: &mut Exposition, now: Instant) {
        let inner = self.lock();
        let by = |f: fn(&Stream) -> u64| -> Vec<(&str, u64)> {
            inner
                .streams
                .iter()
                .map(|(n, s)| (n.as_str(), f(s)))
                .collect()
        };
        e.labelled_counter(
            "mp_collector_stream_messages_total",
            "Messages received per stream (book diffs included).",
            "stream",
            &by(|s| s.messages),
        );
        e.labelled_counter(
            "mp_collector_stream_gaps_total",
            "Order book sequence gaps and checksum mismatches (each re-snapshotted).",
            "stream",
            &by(|s| s.gaps),
        );
        e.labelled_counter(
            "mp_collector_stream_problems_total",
            "Frames or answers that could not be used.",
            "stream",
            &by(|s| s.problems + s.polls_failed),
        );
        let ages: Vec<(&str, f64)> = inner
            .streams
            .iter()
            .map(|(n, s)| {
                let since = s.last_message.unwrap_or(self.started);
                (
                    n.as_str(),
                    now.saturating_duration_since(since).as_secs_f64(),
                )
            })
            .collect();
        e.labelled_gauge(
            "mp_collector_stream_last_message_age_seconds",
            "Seconds since the stream's last message (since start when none came).",
            "stream",
            &ages,
        );
        let reconnects: Vec<(&str, u64)> = inner
            .connections
            .iter()
            .map(|(n, c)| (n.as_str(), c.reconnects))
            .collect();
        e.labelled_counter(
            "mp_collector_connection_reconnects_total",
            "Reconnects per exchange connection.",
            "connection",
            &reconnects,
        );
        let up: Vec<(&str, f64)> = inner
            .connections
            .iter()
            .map(|(n, c)| (n.as_str(), if c.connected { 1.0 } else { 0.0 }))
            .collect();
        e.labelled_gauge(
            "mp_collector_connection_up",
            "1 while the exchange connection is open.",
            "connection",
            &up,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_stream_is_named_once_stall_after_passed() {
        let streams = vec!["trade.okx.spot.BTC-USDT".to_string(), "x".to_string()];
        let stats = FeedStats::new(&streams, Duration::from_secs(5));
        stats.attach("okx", &streams);
        stats.connected("okx", true);
        let now = Instant::now();
        assert!(stats.degraded(now).is_empty());
        let later = now + Duration::from_secs(6);
        stats.message_at("x", later);
        let reasons = stats.degraded(later);
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].starts_with("trade.okx.spot.BTC-USDT: no message for"));
        stats.reconnecting("okx", "closed by the exchange");
        let health = stats.health(later);
        assert_eq!(health["streams"]["x"]["reconnects"], 1);
        assert_eq!(health["streams"]["x"]["connected"], false);
        assert!(stats.degraded(later)[0].starts_with("okx: not connected (closed"));
    }

    #[test]
    fn a_polled_stream_is_not_stalled_between_two_polls() {
        let streams = vec!["open_interest.binance.perpetual.BTC-USDT".to_string()];
        let stats = FeedStats::new(&streams, Duration::from_secs(5));
        stats.attach_poll(&streams[0], Duration::from_secs(30));
        let now = Instant::now();
        stats.message_at(&streams[0], now);
        assert!(stats.degraded(now + Duration::from_secs(40)).is_empty());
        let reasons = stats.degraded(now + Duration::from_secs(71));
        assert_eq!(reasons.len(), 1, "{reasons:?}");
    }
}
