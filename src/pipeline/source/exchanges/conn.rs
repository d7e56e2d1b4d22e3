//! One exchange websocket connection, kept up: connect, send the subscriptions paced to the
//! exchange's limit, hand every frame to the handler and carry out what it asks, publish the
//! books on a timer, send idle pings, renew before a forced disconnect, and reconnect with a
//! jittered backoff when the connection is lost or falls silent.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::Message;

use super::backoff;
use super::feed::{Action, Feed};
use super::poll;
use super::stats::FeedStats;
use crate::pipeline::message::MarketMessage;
use crate::pipeline::source::synthetic::now_ms;

/// No frame at all (data, ping or pong) for this long: the connection is dead even if TCP
/// has not noticed.
const SILENT_LIMIT: Duration = Duration::from_secs(90);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a session ended.
enum Ended {
    /// The collector is gone: stop.
    Stopped,
    /// Renewed on purpose (before the exchange's forced disconnect): reconnect at once.
    Renew,
    /// Lost; `delivered` says whether any frame came first (then the backoff starts over).
    Lost { why: String, delivered: bool },
}

/// Runs the connection until the collector drops its receiver.
pub async fn run(
    mut feed: Box<dyn Feed>,
    tx: mpsc::Sender<MarketMessage>,
    stats: Arc<FeedStats>,
    book_interval: Duration,
) {
    let name = feed.name();
    stats.attach(&name, &feed.streams());
    let http = poll::client();
    let mut failures = 0u32;
    let mut sessions = 0u64;
    loop {
        sessions += 1;
        let ended = session(feed.as_mut(), &tx, &stats, &http, book_interval).await;
        match ended {
            Ended::Stopped => return,
            Ended::Renew => {
                tracing::info!("{name}: renewing the connection before the exchange ends it");
                stats.reconnecting(&name, "renewed before the exchange's forced disconnect");
                failures = 0;
            }
            Ended::Lost { why, delivered } => {
                if delivered {
                    failures = 0;
                }
                let pause = backoff(failures, sessions ^ now_ms() as u64);
                failures = failures.saturating_add(1);
                tracing::warn!(
                    "{name}: {why}; reconnecting in {:.1} s",
                    pause.as_secs_f64()
                );
                stats.reconnecting(&name, &why);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = tx.closed() => return,
                }
            }
        }
    }
}

async fn session(
    feed: &mut dyn Feed,
    tx: &mpsc::Sender<MarketMessage>,
    stats: &FeedStats,
    http: &reqwest::Client,
    book_interval: Duration,
) -> Ended {
    let name = feed.name();
    let url = feed.url();
    let lost = |why: String, delivered: bool| Ended::Lost { why, delivered };
    let ws =
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(&url)).await {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(e)) => return lost(format!("cannot connect to {url}: {e}"), false),
            Err(_) => {
                return lost(
                    format!("cannot connect to {url}: no answer within {CONNECT_TIMEOUT:?}"),
                    false,
                )
            }
        };
    stats.connected(&name, true);
    tracing::info!("{name}: connected to {url}");
    let (mut sink, mut frames) = ws.split();
    let mut outbox: VecDeque<String> = feed.on_connect(now_ms()).into();
    let pace = feed.send_interval();
    let idle_ping = feed.idle_ping();
    let renew_at = feed.max_lifetime().map(|d| Instant::now() + d);
    let mut next_send = Instant::now();
    let mut last_frame = Instant::now();
    let mut delivered = false;
    let mut books = tokio::time::interval(book_interval);
    books.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (snap_tx, mut snap_rx) = mpsc::channel::<(String, Result<String, String>)>(16);
    let far = Duration::from_secs(86_400 * 365);

    loop {
        let idle_deadline = idle_ping
            .as_ref()
            .map_or(last_frame + far, |(after, _)| last_frame + *after);
        let actions = tokio::select! {
            frame = frames.next() => {
                last_frame = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        delivered = true;
                        feed.on_text(text.as_str(), now_ms())
                    }
                    Some(Ok(Message::Binary(bytes))) => match std::str::from_utf8(&bytes) {
                        Ok(text) => {
                            delivered = true;
                            feed.on_text(text, now_ms())
                        }
                        Err(_) => vec![Action::Problem {
                            stream: name.clone(),
                            what: format!("a binary frame of {} bytes, not text", bytes.len()),
                        }],
                    },
                    // Pongs to pings are queued by tungstenite and flushed on the next read.
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => vec![],
                    Some(Ok(Message::Close(frame))) => {
                        let why = frame.map_or_else(
                            || "closed by the exchange".to_string(),
                            |f| format!("closed by the exchange ({} {})", f.code, f.reason),
                        );
                        return lost(why, delivered);
                    }
                    Some(Err(e)) => return lost(format!("connection failed: {e}"), delivered),
                    None => return lost("connection ended".into(), delivered),
                }
            }
            _ = sleep_until(next_send), if !outbox.is_empty() => {
                if let Some(text) = outbox.pop_front() {
                    if let Err(e) = sink.send(Message::text(text)).await {
                        return lost(format!("cannot send: {e}"), delivered);
                    }
                }
                next_send = Instant::now() + pace;
                vec![]
            }
            Some((key, body)) = snap_rx.recv() => feed.on_snapshot(&key, body, now_ms()),
            _ = books.tick() => {
                let now = now_ms();
                feed.books(now).into_iter().map(Action::Publish).collect()
            }
            _ = sleep_until(idle_deadline) => {
                if let Some((_, ping)) = &idle_ping {
                    outbox.push_back(ping.clone());
                }
                // Count the ping as activity so one is sent per idle period, not a stream.
                last_frame = Instant::now();
                vec![]
            }
            _ = sleep_until(renew_at.unwrap_or(Instant::now() + far)), if renew_at.is_some() => {
                let _ = sink.send(Message::Close(None)).await;
                return Ended::Renew;
            }
            _ = sleep_until(last_frame + SILENT_LIMIT) => {
                return lost(format!("no frame for {} s", SILENT_LIMIT.as_secs()), delivered);
            }
            _ = tx.closed() => return Ended::Stopped,
        };
        for action in actions {
            match action {
                Action::Publish(message) => {
                    stats.message(&message.subject());
                    if tx.send(message).await.is_err() {
                        return Ended::Stopped;
                    }
                }
                Action::Seen(stream) => stats.message(&stream),
                Action::Send(text) => outbox.push_back(text),
                Action::FetchSnapshot { key, url } => {
                    let (http, snap_tx) = (http.clone(), snap_tx.clone());
                    tokio::spawn(async move {
                        let body = match poll::get(&http, &url).await {
                            Ok(body) => Ok(body),
                            Err(failed) => {
                                // Hand the failure back only once the wait the exchange asked
                                // for is over: the handler asks again at once.
                                let wait = failed.retry_after.unwrap_or(Duration::from_secs(2));
                                tokio::time::sleep(wait).await;
                                Err(failed.what)
                            }
                        };
                        let _ = snap_tx.send((key, body)).await;
                    });
                }
                Action::Gap { stream, what } => {
                    tracing::warn!("{stream}: {what}; re-snapshotting");
                    stats.gap(&stream, &what);
                }
                Action::Problem { stream, what } => {
                    tracing::warn!("{stream}: {what}");
                    stats.problem(&stream, &what);
                }
                Action::Reconnect(why) => return lost(why, delivered),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::message::{MarketData, Trade};

    /// Publishes one trade per text frame; counts its connects.
    struct Echo {
        url: String,
        connects: Arc<std::sync::atomic::AtomicU32>,
    }

    impl Feed for Echo {
        fn name(&self) -> String {
            "echo".into()
        }
        fn url(&self) -> String {
            self.url.clone()
        }
        fn streams(&self) -> Vec<String> {
            vec!["trade.binance.spot.BTC-USDT".into()]
        }
        fn on_connect(&mut self, _now_ms: i64) -> Vec<String> {
            self.connects
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            vec!["subscribe".into()]
        }
        fn send_interval(&self) -> Duration {
            Duration::from_millis(10)
        }
        fn on_text(&mut self, text: &str, now_ms: i64) -> Vec<Action> {
            let trade = Trade {
                trade_id: text.to_string(),
                price: "1".parse().unwrap(),
                quantity: "1".parse().unwrap(),
                side: "buy".into(),
                is_maker: false,
                trade_ts_ms: now_ms,
            };
            let data = MarketData::Trade(trade);
            let m =
                super::super::feed::message("binance", "spot", "BTC-USDT", now_ms, now_ms, data);
            vec![Action::Publish(m)]
        }
        fn on_snapshot(&mut self, _: &str, _: Result<String, String>, _: i64) -> Vec<Action> {
            vec![]
        }
        fn books(&mut self, _now_ms: i64) -> Vec<MarketMessage> {
            vec![]
        }
    }

    #[tokio::test]
    async fn a_closed_connection_is_reopened_resubscribed_and_nothing_delivered_is_lost() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        // First connection: two frames, then the exchange closes it; second: one frame.
        tokio::spawn(async move {
            for frames in [vec!["a", "b"], vec!["c"]] {
                let (socket, _) = listener.accept().await.unwrap();
                let mut ws = tokio_tungstenite::accept_async(socket).await.unwrap();
                let sub = ws.next().await.unwrap().unwrap();
                assert_eq!(sub.to_text().unwrap(), "subscribe");
                for f in &frames {
                    ws.send(Message::text(f.to_string())).await.unwrap();
                }
                if frames.len() == 2 {
                    ws.close(None).await.unwrap();
                } else {
                    // Hold the connection open until the test ends.
                    while ws.next().await.is_some() {}
                }
            }
        });
        let connects = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let feed = Box::new(Echo {
            url,
            connects: connects.clone(),
        });
        let stats = FeedStats::new(&feed.streams(), Duration::from_secs(60));
        let (tx, mut rx) = mpsc::channel(16);
        tokio::spawn(run(feed, tx, stats.clone(), Duration::from_secs(1)));
        let mut ids = Vec::new();
        for _ in 0..3 {
            let m = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("a message within 10 s")
                .unwrap();
            let MarketData::Trade(t) = m.data else {
                panic!("not a trade")
            };
            ids.push(t.trade_id);
        }
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(connects.load(std::sync::atomic::Ordering::SeqCst), 2);
        let health = stats.health(std::time::Instant::now());
        assert_eq!(health["connections"]["echo"]["reconnects"], 1);
        assert_eq!(health["connections"]["echo"]["connected"], true);
        assert_eq!(
            health["streams"]["trade.binance.spot.BTC-USDT"]["messages"],
            3
        );
    }
}
