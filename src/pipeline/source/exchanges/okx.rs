//! OKX v5 public websocket: trades and 400-level books of spot and USDT swaps, and the swaps'
//! funding rate, open interest and liquidations, all on one connection.
//!
//! Books are kept from OKX's in-band snapshot plus updates chained by `prevSeqId`/`seqId` and
//! verified by OKX's CRC32 checksum of the top 25 levels; a broken chain or a failed checksum
//! resubscribes that book, whose new subscription starts with a fresh snapshot. Funding and
//! open interest carry the mark and index prices cached from their own channels.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use serde_json::{json, Value};

use super::book::{LocalBook, Side};
use super::feed::{self, Action, Feed, Feeds, Throttle};
use super::{markets, split_symbol, VenuePlan};
use crate::pipeline::message::{
    DataType, Decimal8, Exchange, FundingRate, Liquidation, MarketData, MarketMessage, MarketType,
    OpenInterest, Trade,
};

/// ws, rest, futures ws, futures rest.
pub const DEFAULT_URLS: [&str; 4] = [
    "wss://ws.okx.com:8443/ws/v5/public",
    "https://www.okx.com",
    "",
    "",
];

const EXCHANGE: &str = "okx";
/// OKX allows 3 requests a second per connection.
const SEND_INTERVAL: Duration = Duration::from_millis(400);
/// OKX closes a connection silent for 30 s; its keepalive is the text `ping`.
const IDLE_PING: Duration = Duration::from_secs(25);
/// Open interest is pushed every few seconds; MarketPrism stores it every 30 s.
const OPEN_INTEREST_EVERY: Duration = Duration::from_secs(30);
/// OKX's checksum covers the best 25 levels of each side.
const CHECKSUM_LEVELS: usize = 25;
/// Subscription args per request: few requests, far below OKX's 64 KB frame limit.
const ARGS_PER_REQUEST: usize = 50;
/// OKX allows 480 subscribe/unsubscribe requests an hour per connection: resubscribing books
/// stops short of that, and waits for the oldest request to age out.
const OPS_PER_HOUR: usize = 400;
const HOUR_MS: i64 = 3_600_000;

pub fn feeds(plan: &VenuePlan) -> Feeds {
    let feed = OkxFeed::new(plan);
    if feed.args.is_empty() {
        return (Vec::new(), Vec::new());
    }
    (vec![Box::new(feed)], Vec::new())
}

/// What an OKX `instId` is in MarketPrism's terms.
#[derive(Debug, Clone)]
struct Instrument {
    market: MarketType,
    /// Normalised: `BTC-USDT` for both `BTC-USDT` and `BTC-USDT-SWAP`.
    symbol: String,
}

pub struct OkxFeed {
    url: String,
    depth: usize,
    /// Spot and swap instIds configured.
    instruments: HashMap<String, Instrument>,
    /// Every subscription arg, in the order sent.
    args: Vec<Value>,
    streams: Vec<String>,
    stream_set: HashSet<String>,
    /// By instId.
    books: BTreeMap<String, LocalBook>,
    /// Last mark price by normalised symbol (from `mark-price`).
    mark: HashMap<String, Decimal8>,
    /// Last index price by normalised symbol (from `index-tickers`).
    index: HashMap<String, Decimal8>,
    throttle: Throttle,
    /// When each subscribe/unsubscribe request of this connection was sent, oldest first.
    ops: VecDeque<i64>,
    /// Books whose resubscription waits for the hourly request budget.
    pending_resync: BTreeSet<String>,
}

impl OkxFeed {
    pub fn new(plan: &VenuePlan) -> OkxFeed {
        let mut feed = OkxFeed {
            url: plan.urls.ws.clone(),
            depth: plan.book_depth,
            instruments: HashMap::new(),
            args: Vec::new(),
            streams: Vec::new(),
            stream_set: HashSet::new(),
            books: BTreeMap::new(),
            mark: HashMap::new(),
            index: HashMap::new(),
            throttle: Throttle::default(),
            ops: VecDeque::new(),
            pending_resync: BTreeSet::new(),
        };
        let mut seen = HashSet::new();
        let mut liquidations = false;
        for symbol in &plan.symbols {
            if split_symbol(symbol).is_none() || !seen.insert(symbol.clone()) {
                continue;
            }
            liquidations |= feed.plan_symbol(plan, symbol);
        }
        if liquidations {
            // One channel for every swap: the configured ones are picked from it.
            feed.args
                .push(json!({"channel": "liquidation-orders", "instType": "SWAP"}));
        }
        feed
    }

    /// Adds one symbol's args and streams; says whether it wants liquidations.
    fn plan_symbol(&mut self, plan: &VenuePlan, symbol: &str) -> bool {
        const CHANNELS: [(DataType, &str); 4] = [
            (DataType::Trade, "trades"),
            (DataType::Orderbook, "books"),
            (DataType::FundingRate, "funding-rate"),
            (DataType::OpenInterest, "open-interest"),
        ];
        let serves =
            |t: DataType, m: MarketType| plan.wants(t) && markets(Exchange::Okx, t).contains(&m);
        let mut liquidations = false;
        for market in [MarketType::Spot, MarketType::Perpetual] {
            let inst_id = match market {
                MarketType::Perpetual => format!("{symbol}-SWAP"),
                _ => symbol.to_string(),
            };
            let mut any = false;
            for (data_type, channel) in CHANNELS {
                if serves(data_type, market) {
                    self.args
                        .push(json!({"channel": channel, "instId": inst_id}));
                    self.add_stream(data_type, market, symbol);
                    any = true;
                    if data_type == DataType::Orderbook {
                        self.books.insert(inst_id.clone(), LocalBook::default());
                    }
                }
            }
            let funding = serves(DataType::FundingRate, market);
            if funding || serves(DataType::OpenInterest, market) {
                self.args
                    .push(json!({"channel": "mark-price", "instId": inst_id}));
            }
            if funding {
                // The index of a USDT swap is the spot pair's index.
                self.args
                    .push(json!({"channel": "index-tickers", "instId": symbol}));
            }
            if serves(DataType::Liquidation, market) {
                self.add_stream(DataType::Liquidation, market, symbol);
                liquidations = true;
                any = true;
            }
            if any {
                let instrument = Instrument {
                    market,
                    symbol: symbol.to_string(),
                };
                self.instruments.insert(inst_id, instrument);
            }
        }
        liquidations
    }

    fn add_stream(&mut self, data_type: DataType, market: MarketType, symbol: &str) {
        let stream = feed::stream_name(data_type.as_str(), EXCHANGE, market.as_str(), symbol);
        if self.stream_set.insert(stream.clone()) {
            self.streams.push(stream);
        }
    }

    /// The stream of a data type for an instId, if this feed delivers it.
    fn stream_of(&self, data_type: DataType, inst_id: &str) -> Option<(String, &Instrument)> {
        let instrument = self.instruments.get(inst_id)?;
        let stream = feed::stream_name(
            data_type.as_str(),
            EXCHANGE,
            instrument.market.as_str(),
            &instrument.symbol,
        );
        self.stream_set
            .contains(&stream)
            .then_some((stream, instrument))
    }

    fn problem(&self, stream: Option<String>, what: String) -> Action {
        Action::Problem {
            stream: stream.unwrap_or_else(|| self.name()),
            what,
        }
    }

    /// Whether `n` more subscribe/unsubscribe requests fit in this hour's budget.
    fn ops_left(&mut self, n: usize, now_ms: i64) -> bool {
        while self.ops.front().is_some_and(|&at| now_ms - at >= HOUR_MS) {
            self.ops.pop_front();
        }
        self.ops.len() + n <= OPS_PER_HOUR
    }

    /// Drops a book and resubscribes it: OKX starts every subscription with a snapshot.
    fn resync(&mut self, inst_id: &str, now_ms: i64) -> Vec<Action> {
        if let Some(book) = self.books.get_mut(inst_id) {
            book.reset();
        }
        if !self.ops_left(2, now_ms) {
            self.pending_resync.insert(inst_id.to_string());
            return Vec::new();
        }
        self.ops.push_back(now_ms);
        self.ops.push_back(now_ms);
        let arg = json!({"channel": "books", "instId": inst_id});
        vec![
            Action::Send(json!({"op": "unsubscribe", "args": [arg]}).to_string()),
            Action::Send(json!({"op": "subscribe", "args": [arg]}).to_string()),
        ]
    }

    /// Resubscriptions that waited for the budget and now fit.
    fn flush_resyncs(&mut self, now_ms: i64) -> Vec<Action> {
        let mut out = Vec::new();
        while let Some(inst_id) = self.pending_resync.first().cloned() {
            if !self.ops_left(2, now_ms) {
                break;
            }
            self.pending_resync.remove(&inst_id);
            out.extend(self.resync(&inst_id, now_ms));
        }
        out
    }

    fn on_event(&self, v: &Value) -> Vec<Action> {
        let event = v.get("event").and_then(Value::as_str).unwrap_or_default();
        let code = v.get("code").and_then(Value::as_str).unwrap_or_default();
        let msg = v.get("msg").and_then(Value::as_str).unwrap_or_default();
        match event {
            "subscribe" | "unsubscribe" | "channel-conn-count" => Vec::new(),
            "error" => {
                let (stream, request) = match v.get("arg") {
                    Some(arg) => (self.stream_of_arg(arg), arg.to_string()),
                    None => (None, "a request".to_string()),
                };
                vec![self.problem(stream, format!("okx rejects {request}: {code} {msg}"))]
            }
            // A service upgrade is announced; OKX then closes the connection itself.
            "notice" => vec![self.problem(None, format!("okx notice {code}: {msg}"))],
            other => vec![self.problem(None, format!("unknown event {other:?}"))],
        }
    }

    /// The stream a subscription arg feeds, for errors that name it.
    fn stream_of_arg(&self, arg: &Value) -> Option<String> {
        let inst_id = arg.get("instId").and_then(Value::as_str)?;
        let direct = |t: DataType| self.stream_of(t, inst_id);
        let found = match arg.get("channel").and_then(Value::as_str)? {
            "trades" => direct(DataType::Trade),
            "books" => direct(DataType::Orderbook),
            "funding-rate" => direct(DataType::FundingRate),
            "open-interest" => direct(DataType::OpenInterest),
            "mark-price" => {
                direct(DataType::FundingRate).or_else(|| direct(DataType::OpenInterest))
            }
            "index-tickers" => self.stream_of(DataType::FundingRate, &format!("{inst_id}-SWAP")),
            _ => None,
        };
        found.map(|(stream, _)| stream)
    }

    fn on_push(&mut self, v: &Value, now_ms: i64) -> Vec<Action> {
        let arg = v.get("arg").unwrap_or(&Value::Null);
        let channel = arg
            .get("channel")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let inst_id = arg
            .get("instId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(data) = v.get("data").and_then(Value::as_array) else {
            return vec![self.problem(None, format!("{channel} push without a data array"))];
        };
        match channel {
            "trades" => self.on_trades(inst_id, data, now_ms),
            "books" => {
                let action = v.get("action").and_then(Value::as_str);
                self.on_books(inst_id, action, data, now_ms)
            }
            "funding-rate" => self.on_funding(inst_id, data, now_ms),
            "open-interest" => self.on_open_interest(inst_id, data, now_ms),
            "mark-price" => self.on_mark_price(inst_id, data),
            "index-tickers" => self.on_index(inst_id, data),
            "liquidation-orders" => self.on_liquidations(data, now_ms),
            other => vec![self.problem(None, format!("push on unknown channel {other:?}"))],
        }
    }

    fn unsubscribed(&self, channel: &str, inst_id: &str) -> Vec<Action> {
        vec![self.problem(None, format!("{channel} for {inst_id:?}, not subscribed"))]
    }

    fn on_trades(&self, inst_id: &str, data: &[Value], now_ms: i64) -> Vec<Action> {
        let Some((stream, instrument)) = self.stream_of(DataType::Trade, inst_id) else {
            return self.unsubscribed("trades", inst_id);
        };
        data.iter()
            .map(|d| match trade(d) {
                Ok((ts, t)) => Action::Publish(self.message(instrument, ts, now_ms, t)),
                Err(what) => self.problem(Some(stream.clone()), format!("trades: {what}")),
            })
            .collect()
    }

    fn message(
        &self,
        instrument: &Instrument,
        ts_ms: i64,
        now_ms: i64,
        data: MarketData,
    ) -> MarketMessage {
        feed::message(
            EXCHANGE,
            instrument.market.as_str(),
            &instrument.symbol,
            ts_ms,
            now_ms,
            data,
        )
    }

    fn on_books(
        &mut self,
        inst_id: &str,
        action: Option<&str>,
        data: &[Value],
        now_ms: i64,
    ) -> Vec<Action> {
        let Some((stream, _)) = self.stream_of(DataType::Orderbook, inst_id) else {
            return self.unsubscribed("books", inst_id);
        };
        let mut out = Vec::new();
        for d in data {
            let result = match action {
                Some("snapshot") => self.book_snapshot(inst_id, d),
                Some("update") => self.book_update(inst_id, d),
                other => Err(BookError::Malformed(format!("books action {other:?}"))),
            };
            match result {
                Ok(()) => out.push(Action::Seen(stream.clone())),
                Err(BookError::Gap(what)) => {
                    out.push(Action::Gap {
                        stream: stream.clone(),
                        what,
                    });
                    out.extend(self.resync(inst_id, now_ms));
                }
                Err(BookError::Malformed(what)) => {
                    out.push(self.problem(Some(stream.clone()), what));
                    out.extend(self.resync(inst_id, now_ms));
                }
            }
        }
        out
    }

    fn book_snapshot(&mut self, inst_id: &str, d: &Value) -> Result<(), BookError> {
        let bids = levels(d, "bids")?;
        let asks = levels(d, "asks")?;
        let seq = seq_id(d, "seqId")?;
        let ts = ms(d, "ts").map_err(BookError::Malformed)?;
        let checksum = integer(d, "checksum").map_err(BookError::Malformed)?;
        let book = self.books.entry(inst_id.to_string()).or_default();
        book.replace(bids.iter().copied(), asks.iter().copied(), seq, ts)
            .map_err(|e| BookError::Malformed(format!("books snapshot: {e}")))?;
        verify(book, checksum)
    }

    fn book_update(&mut self, inst_id: &str, d: &Value) -> Result<(), BookError> {
        let book = self.books.entry(inst_id.to_string()).or_default();
        if !book.synced {
            // Left over from a subscription being replaced: its snapshot is on the way.
            return Ok(());
        }
        let prev = integer(d, "prevSeqId").map_err(BookError::Malformed)?;
        if prev != book.last_update_id as i64 {
            return Err(BookError::Gap(format!(
                "prevSeqId {prev} after seqId {}",
                book.last_update_id
            )));
        }
        let bids = levels(d, "bids")?;
        let asks = levels(d, "asks")?;
        let seq = seq_id(d, "seqId")?;
        let ts = ms(d, "ts").map_err(BookError::Malformed)?;
        let checksum = integer(d, "checksum").map_err(BookError::Malformed)?;
        for (side, list) in [(Side::Bid, &bids), (Side::Ask, &asks)] {
            for (price, quantity) in list {
                book.set(side, price, quantity)
                    .map_err(|e| BookError::Malformed(format!("books update: {e}")))?;
            }
        }
        book.last_update_id = seq;
        book.ts_ms = ts;
        verify(book, checksum)
    }

    fn on_funding(&self, inst_id: &str, data: &[Value], now_ms: i64) -> Vec<Action> {
        let Some((stream, instrument)) = self.stream_of(DataType::FundingRate, inst_id) else {
            return self.unsubscribed("funding-rate", inst_id);
        };
        let cached =
            |m: &HashMap<String, Decimal8>| m.get(&instrument.symbol).copied().unwrap_or_default();
        let (mark, index) = (cached(&self.mark), cached(&self.index));
        data.iter()
            .map(|d| match funding(d, mark, index, now_ms) {
                Ok((ts, rate)) => Action::Publish(self.message(instrument, ts, now_ms, rate)),
                Err(what) => self.problem(Some(stream.clone()), format!("funding-rate: {what}")),
            })
            .collect()
    }

    fn on_open_interest(&mut self, inst_id: &str, data: &[Value], now_ms: i64) -> Vec<Action> {
        let Some((stream, instrument)) = self.stream_of(DataType::OpenInterest, inst_id) else {
            return self.unsubscribed("open-interest", inst_id);
        };
        let instrument = instrument.clone();
        let mark = self
            .mark
            .get(&instrument.symbol)
            .copied()
            .unwrap_or_default();
        let mut out = Vec::new();
        for d in data {
            match open_interest(d, mark) {
                Err(what) => {
                    out.push(self.problem(Some(stream.clone()), format!("open-interest: {what}")))
                }
                Ok((ts, oi)) => {
                    if self.throttle.due(&stream, now_ms, OPEN_INTEREST_EVERY) {
                        let data = MarketData::OpenInterest(oi);
                        out.push(Action::Publish(self.message(&instrument, ts, now_ms, data)));
                    } else {
                        out.push(Action::Seen(stream.clone()));
                    }
                }
            }
        }
        out
    }

    /// A cache update only: the funding and open interest streams stay stalled if their own
    /// channels are silent, whatever the mark price does.
    fn on_mark_price(&mut self, inst_id: &str, data: &[Value]) -> Vec<Action> {
        let Some(symbol) = self.instruments.get(inst_id).map(|i| i.symbol.clone()) else {
            return self.unsubscribed("mark-price", inst_id);
        };
        self.cache(data, "markPx", &symbol, "mark-price", inst_id)
    }

    fn on_index(&mut self, inst_id: &str, data: &[Value]) -> Vec<Action> {
        let swap = format!("{inst_id}-SWAP");
        if self.stream_of(DataType::FundingRate, &swap).is_none() {
            return self.unsubscribed("index-tickers", inst_id);
        }
        self.cache(data, "idxPx", inst_id, "index-tickers", &swap)
    }

    fn cache(
        &mut self,
        data: &[Value],
        field: &str,
        symbol: &str,
        channel: &str,
        swap: &str,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        for d in data {
            match decimal(d, field) {
                Ok(price) => {
                    let cache = if field == "markPx" {
                        &mut self.mark
                    } else {
                        &mut self.index
                    };
                    cache.insert(symbol.to_string(), price);
                }
                Err(what) => {
                    let stream = self
                        .stream_of(DataType::FundingRate, swap)
                        .or_else(|| self.stream_of(DataType::OpenInterest, swap))
                        .map(|(s, _)| s);
                    out.push(self.problem(stream, format!("{channel}: {what}")));
                }
            }
        }
        out
    }

    /// OKX pushes every swap's liquidations on one channel: only configured ones are kept.
    fn on_liquidations(&self, data: &[Value], now_ms: i64) -> Vec<Action> {
        let mut out = Vec::new();
        for d in data {
            let inst_id = d.get("instId").and_then(Value::as_str).unwrap_or_default();
            let Some((stream, instrument)) = self.stream_of(DataType::Liquidation, inst_id) else {
                continue;
            };
            let Some(details) = d.get("details").and_then(Value::as_array) else {
                out.push(self.problem(Some(stream), "liquidation-orders: no details".into()));
                continue;
            };
            for detail in details {
                match liquidation(detail) {
                    Ok((ts, l)) => out.push(Action::Publish(self.message(
                        instrument,
                        ts,
                        now_ms,
                        MarketData::Liquidation(l),
                    ))),
                    Err(what) => out.push(
                        self.problem(Some(stream.clone()), format!("liquidation-orders: {what}")),
                    ),
                }
            }
        }
        out
    }
}

impl Feed for OkxFeed {
    fn name(&self) -> String {
        EXCHANGE.to_string()
    }

    fn url(&self) -> String {
        self.url.clone()
    }

    fn streams(&self) -> Vec<String> {
        self.streams.clone()
    }

    fn on_connect(&mut self, now_ms: i64) -> Vec<String> {
        for book in self.books.values_mut() {
            book.reset();
        }
        self.ops.clear();
        self.pending_resync.clear();
        let frames: Vec<String> = self
            .args
            .chunks(ARGS_PER_REQUEST)
            .map(|args| json!({"op": "subscribe", "args": args}).to_string())
            .collect();
        for _ in &frames {
            self.ops.push_back(now_ms);
        }
        frames
    }

    fn send_interval(&self) -> Duration {
        SEND_INTERVAL
    }

    fn idle_ping(&self) -> Option<(Duration, String)> {
        Some((IDLE_PING, "ping".to_string()))
    }

    fn on_text(&mut self, text: &str, now_ms: i64) -> Vec<Action> {
        let mut out = self.flush_resyncs(now_ms);
        // The answer to our keepalive `ping`: plain text, not JSON.
        if text.trim() == "pong" {
            return out;
        }
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                out.push(self.problem(None, format!("a frame that is not JSON ({e})")));
                return out;
            }
        };
        if v.get("event").is_some() {
            out.extend(self.on_event(&v));
        } else if v.get("arg").is_some() {
            out.extend(self.on_push(&v, now_ms));
        } else {
            out.push(self.problem(None, "a message with neither event nor arg".into()));
        }
        out
    }

    fn on_snapshot(
        &mut self,
        key: &str,
        _body: Result<String, String>,
        _now_ms: i64,
    ) -> Vec<Action> {
        // Snapshots come on the websocket: nothing is ever fetched.
        vec![self.problem(None, format!("a snapshot for {key:?} that was never asked"))]
    }

    fn books(&mut self, now_ms: i64) -> Vec<MarketMessage> {
        self.books
            .iter()
            .filter(|(_, book)| book.synced)
            .filter_map(|(inst_id, book)| {
                let instrument = self.instruments.get(inst_id)?;
                Some(book.message(
                    EXCHANGE,
                    instrument.market.as_str(),
                    &instrument.symbol,
                    self.depth,
                    now_ms,
                ))
            })
            .collect()
    }
}

/// Why a book frame could not be applied: either way the book is resubscribed.
#[derive(Debug)]
enum BookError {
    /// The sequence or the checksum says updates were lost.
    Gap(String),
    /// The frame itself is unusable.
    Malformed(String),
}

/// OKX's checksum: the best 25 bids and asks interleaved as `bid:qty:ask:qty:…` (the longer
/// side continues alone), CRC32 as a signed 32-bit integer.
pub fn checksum(book: &LocalBook) -> i32 {
    let bids = book.top_raw(Side::Bid, CHECKSUM_LEVELS);
    let asks = book.top_raw(Side::Ask, CHECKSUM_LEVELS);
    let mut parts: Vec<&str> = Vec::with_capacity(4 * CHECKSUM_LEVELS);
    for i in 0..bids.len().max(asks.len()) {
        for level in [bids.get(i), asks.get(i)].into_iter().flatten() {
            parts.push(&level.price);
            parts.push(&level.quantity);
        }
    }
    crc32fast::hash(parts.join(":").as_bytes()) as i32
}

fn verify(book: &LocalBook, expected: i64) -> Result<(), BookError> {
    let ours = checksum(book);
    if i64::from(ours) == expected {
        Ok(())
    } else {
        Err(BookError::Gap(format!(
            "checksum mismatch at seqId {}: ours {ours}, okx {expected}",
            book.last_update_id
        )))
    }
}

/// A side's levels as `(price, size)` text; OKX adds two more fields per level we do not use.
fn levels<'a>(d: &'a Value, side: &str) -> Result<Vec<(&'a str, &'a str)>, BookError> {
    let bad = |what: &str| BookError::Malformed(format!("books {side}: {what}"));
    let list = d
        .get(side)
        .and_then(Value::as_array)
        .ok_or_else(|| bad("missing"))?;
    list.iter()
        .map(|level| {
            let field = |i: usize| level.get(i).and_then(Value::as_str);
            match (field(0), field(1)) {
                (Some(price), Some(size)) => Ok((price, size)),
                _ => Err(bad(&format!("level {level} is not [price, size, ...]"))),
            }
        })
        .collect()
}

fn seq_id(d: &Value, field: &str) -> Result<u64, BookError> {
    let n = integer(d, field).map_err(BookError::Malformed)?;
    u64::try_from(n).map_err(|_| BookError::Malformed(format!("{field} {n} is negative")))
}

/// An integer sent as a JSON number (OKX's sequence ids and checksum) or as text.
fn integer(d: &Value, field: &str) -> Result<i64, String> {
    match d.get(field) {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("no integer {field:?}"))
}

fn text<'a>(d: &'a Value, field: &str) -> Result<&'a str, String> {
    d.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no text {field:?}"))
}

/// Milliseconds, which OKX sends as text.
fn ms(d: &Value, field: &str) -> Result<i64, String> {
    let t = text(d, field)?;
    t.parse()
        .map_err(|_| format!("{field:?} {t:?} is not milliseconds"))
}

fn decimal(d: &Value, field: &str) -> Result<Decimal8, String> {
    round8(text(d, field)?).map_err(|e| format!("{field:?}: {e}"))
}

/// A decimal text rounded (half away from zero) to Decimal64(8)'s 8 fractional digits: OKX
/// sends funding rates with 16.
pub fn round8(s: &str) -> Result<Decimal8, String> {
    let t = s.trim();
    let Some((whole, frac)) = t.split_once('.') else {
        return t.parse();
    };
    if frac.len() <= 8 {
        return t.parse();
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a decimal number"));
    }
    // All ASCII digits, so byte 8 is a char boundary.
    let (kept, rest) = frac.split_at(8);
    let base: Decimal8 = format!("{whole}.{kept}").parse()?;
    if rest.bytes().next().is_some_and(|b| b >= b'5') {
        let step = if whole.starts_with('-') { -1 } else { 1 };
        return base
            .0
            .checked_add(step)
            .map(Decimal8)
            .ok_or_else(|| format!("{s:?} is too large"));
    }
    Ok(base)
}

fn side(d: &Value) -> Result<String, String> {
    match text(d, "side")? {
        s @ ("buy" | "sell") => Ok(s.to_string()),
        other => Err(format!("side {other:?} is neither buy nor sell")),
    }
}

fn trade(d: &Value) -> Result<(i64, MarketData), String> {
    let ts = ms(d, "ts")?;
    let trade = Trade {
        trade_id: text(d, "tradeId")?.to_string(),
        price: decimal(d, "px")?,
        quantity: decimal(d, "sz")?,
        side: side(d)?,
        // `side` is the taker's: the aggressor, never the maker.
        is_maker: false,
        trade_ts_ms: ts,
    };
    Ok((ts, MarketData::Trade(trade)))
}

fn funding(
    d: &Value,
    mark: Decimal8,
    index: Decimal8,
    now_ms: i64,
) -> Result<(i64, MarketData), String> {
    let rate = FundingRate {
        current_funding_rate: decimal(d, "fundingRate")?,
        mark_price: mark,
        index_price: index,
        funding_ts_ms: ms(d, "fundingTime")?,
        next_funding_ts_ms: ms(d, "nextFundingTime")?,
    };
    // `ts` is not in every version of the push.
    let ts = ms(d, "ts").unwrap_or(now_ms);
    Ok((ts, MarketData::FundingRate(rate)))
}

fn open_interest(d: &Value, mark: Decimal8) -> Result<(i64, OpenInterest), String> {
    let contracts = decimal(d, "oi")?;
    let usd = match d.get("oiUsd").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => round8(t).map_err(|e| format!("\"oiUsd\": {e}"))?,
        _ => multiply(decimal(d, "oiCcy")?, mark)?,
    };
    let oi = OpenInterest {
        open_interest_value: contracts,
        open_interest_usd: usd,
        mark_price: mark,
    };
    Ok((ms(d, "ts")?, oi))
}

/// `a × b` in Decimal64(8), rounded half away from zero.
fn multiply(a: Decimal8, b: Decimal8) -> Result<Decimal8, String> {
    let scale = 100_000_000i128;
    let product = i128::from(a.0) * i128::from(b.0);
    let half = if product < 0 { -scale / 2 } else { scale / 2 };
    i64::try_from((product + half) / scale)
        .map(Decimal8)
        .map_err(|_| format!("{a} × {b} is too large"))
}

fn liquidation(d: &Value) -> Result<(i64, Liquidation), String> {
    let ts = ms(d, "ts")?;
    let l = Liquidation {
        side: side(d)?,
        price: decimal(d, "bkPx")?,
        quantity: decimal(d, "sz")?,
        liquidation_ts_ms: ts,
    };
    Ok((ts, l))
}

#[cfg(test)]
#[path = "okx_tests.rs"]
mod tests;
