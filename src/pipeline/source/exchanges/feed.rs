//! The contract between the connection loop (`conn`, `poll`) and an exchange's handlers: a
//! handler is pure (frames in, [`Action`]s out), so each exchange's rules are unit-tested on
//! recorded frames without a socket, and the loop that owns the socket is written once.

use std::time::Duration;

use crate::pipeline::message::{MarketData, MarketMessage};

/// What a handler wants done after a frame (or a snapshot, or a tick).
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Hand this message to the collector.
    Publish(MarketMessage),
    /// A frame updated the stream named (its subject) without publishing yet (an order book
    /// diff): it counts as a message of that stream, so a live book is never "stalled".
    Seen(String),
    /// Send this text on the connection (a pong, a heartbeat answer, a resubscribe).
    Send(String),
    /// GET this URL and give the body to [`Feed::on_snapshot`] with `key` (the REST order
    /// book snapshots of Binance and OKX).
    FetchSnapshot { key: String, url: String },
    /// A book of the stream named lost its sequence (or failed its checksum) and is being
    /// re-snapshotted: counted as a gap of that stream.
    Gap { stream: String, what: String },
    /// Something the handler could not use (a malformed frame, an unknown message, an error
    /// answer): counted and logged with the stream named (or the connection's name when no
    /// stream can be told), never fatal.
    Problem { stream: String, what: String },
    /// Drop the connection and connect again (a subscription refused for good is a Problem;
    /// this is for states only a fresh connection fixes).
    Reconnect(String),
}

/// One websocket connection of an exchange and its handler.
pub trait Feed: Send {
    /// Names the connection in logs and `/health`: `binance spot`.
    fn name(&self) -> String;
    /// Where to connect (`wss://…`; `ws://…` for mirrors and tests).
    fn url(&self) -> String;
    /// The streams (subjects) this connection delivers, known before any message, so a
    /// stream that never delivers shows up as stalled.
    fn streams(&self) -> Vec<String>;
    /// Called after each (re)connect: forget per-connection state (books wait for a new
    /// snapshot) and return the frames to send, in order (subscriptions).
    fn on_connect(&mut self, now_ms: i64) -> Vec<String>;
    /// The least time between two frames sent (the exchange's documented rate limit).
    fn send_interval(&self) -> Duration;
    /// One text frame received.
    fn on_text(&mut self, text: &str, now_ms: i64) -> Vec<Action>;
    /// The answer to a [`Action::FetchSnapshot`]: the body, or why there is none.
    /// A feed whose books come on the websocket never asks, so an answer is a problem.
    fn on_snapshot(
        &mut self,
        key: &str,
        _body: Result<String, String>,
        _now_ms: i64,
    ) -> Vec<Action> {
        vec![Action::Problem {
            stream: self.name(),
            what: format!("a snapshot for {key:?} that was never asked"),
        }]
    }
    /// A text frame to send when nothing was received for this long (OKX's `ping`).
    fn idle_ping(&self) -> Option<(Duration, String)> {
        None
    }
    /// Reconnect before the exchange's forced disconnect (Binance: 24 h).
    fn max_lifetime(&self) -> Option<Duration> {
        None
    }
    /// The order books to publish now (every `book_interval`): top-N of each synced book.
    fn books(&mut self, now_ms: i64) -> Vec<MarketMessage>;
}

/// An exchange's connections and polls, as its module's `feeds(plan)` builds them.
pub type Feeds = (Vec<Box<dyn Feed>>, Vec<Poll>);

/// A REST endpoint polled at an interval (types the exchange only serves over REST).
pub struct Poll {
    /// The stream (subject) it feeds.
    pub stream: String,
    pub url: String,
    pub every: Duration,
    /// The body of a successful answer into messages (an error names what was wrong).
    pub parse: fn(&str, &PollContext) -> Result<Vec<MarketMessage>, String>,
    pub context: PollContext,
}

/// What a poll's parser needs to build its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollContext {
    pub exchange: String,
    pub market_type: String,
    /// Normalised: `BTC-USDT`.
    pub symbol: String,
    pub now_ms: i64,
}

/// `trade.binance.spot.BTC-USDT`: the stream of a message is its subject.
pub fn stream_name(data_type: &str, exchange: &str, market_type: &str, symbol: &str) -> String {
    format!("{data_type}.{exchange}.{market_type}.{symbol}")
}

/// A message as every handler builds it: the sequence number and collector id are stamped
/// later by the collector.
pub fn message(
    exchange: &str,
    market_type: &str,
    symbol: &str,
    ts_ms: i64,
    now_ms: i64,
    data: MarketData,
) -> MarketMessage {
    MarketMessage {
        exchange: exchange.to_string(),
        market_type: market_type.to_string(),
        symbol: symbol.to_string(),
        ts_ms,
        collected_ts_ms: now_ms,
        data,
        collector_id: None,
        seq: None,
    }
}

/// At most one message per `every` per stream: for types an exchange pushes far more often
/// than MarketPrism stores them (Binance's mark price every second, Deribit's volatility).
#[derive(Debug, Default, Clone)]
pub struct Throttle {
    last: std::collections::HashMap<String, i64>,
}

impl Throttle {
    /// Whether a message of `stream` at `now_ms` is due (the first always is).
    pub fn due(&mut self, stream: &str, now_ms: i64, every: Duration) -> bool {
        let every = every.as_millis() as i64;
        match self.last.get(stream) {
            Some(&at) if now_ms - at < every => false,
            _ => {
                self.last.insert(stream.to_string(), now_ms);
                true
            }
        }
    }
}
