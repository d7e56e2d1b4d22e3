//! OKX v5 public websocket: trades and 400-level books of spot and USDT swaps, and the swaps'
//! funding rate, open interest and liquidations, all on one connection.
//!
//! Books follow OKX's current rules ("How to manage a local order book correctly", 2026): the
//! `books` channel pushes updates only, chained by `prevSeqId`/`seqId` (an update whose `seqId`
//! is its `prevSeqId` and that holds no levels is a heartbeat). Updates are buffered while a
//! depth snapshot is fetched from `GET /api/v5/market/books?instId=..&sz=400`; a snapshot whose
//! `seqId` is below the first buffered update's `prevSeqId` is fetched again; the buffered
//! updates it already holds (`seqId` <= its `seqId`) are dropped, the first one left must span
//! it (`prevSeqId` <= snapshot `seqId` < `seqId`), and from then on every update's `prevSeqId`
//! is the last `seqId` applied. A broken chain, a crossed book or a malformed frame is counted
//! and re-syncs that book the same way (buffer, new REST snapshot: a resubscription no longer
//! brings a snapshot); a snapshot that keeps failing is asked again at once, then ever more
//! slowly.
//!
//! OKX's `checksum` has been 0 since 23 June 2026 and, with the initial snapshot, no longer
//! sent since August 2026. Mirrors and recordings may still send both: an in-band `snapshot`
//! sets the book as it comes, and a non-zero `checksum` (CRC32 of the top 25 levels) is
//! verified, a mismatch being a gap; 0 or none is not checked. Funding and open interest carry
//! the mark and index prices cached from their own channels.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use serde_json::{json, Value};

use super::book::{LocalBook, Side};
use super::feed::{self, Action, Feed, Feeds, Throttle};
use super::poll::excerpt;
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
/// Levels per side of a REST snapshot: the `books` channel's 400.
const SNAPSHOT_LEVELS: usize = 400;
/// Updates held while a snapshot is on its way: at OKX's 100 ms pace, over 8 minutes' worth.
const BUFFER_LIMIT: usize = 5000;
/// OKX allows 40 `GET /api/v5/market/books` per 2 s per IP: one snapshot per book at connect
/// and after each gap stays far below that for a handful of instruments (a few dozen books
/// re-syncing at once would not). Snapshots that keep failing are asked again ever more
/// slowly, up to this pause, so a bad mirror is never asked at HTTP speed.
const SNAPSHOT_PAUSE_MAX_MS: i64 = 30_000;
/// A book that stayed synced this long has proven itself: its failure count starts over.
const SETTLED_MS: i64 = 10_000;

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

/// A `books` push (an update, or an in-band snapshot), or a REST snapshot.
#[derive(Debug, Clone)]
struct BookFrame {
    /// `prevSeqId` (0 for a snapshot).
    prev: u64,
    seq: u64,
    ts_ms: i64,
    bids: Vec<(String, String)>,
    asks: Vec<(String, String)>,
    /// 0: none sent (OKX since June 2026), so not checked.
    checksum: i64,
}

/// One instrument's book and where it stands in OKX's procedure.
#[derive(Debug, Default)]
struct BookState {
    book: LocalBook,
    /// Updates received while the book waits for a snapshot.
    buffer: VecDeque<BookFrame>,
    /// A REST snapshot was asked for and its answer has not come.
    fetching: bool,
    /// An update was applied since the REST snapshot (or the snapshot came in-band, which the
    /// next update chains onto exactly): each `prevSeqId` must now be the last `seqId`.
    bridged: bool,
    /// Snapshots or books that failed in a row, and when the next snapshot may be asked.
    failures: u32,
    not_before_ms: i64,
    synced_at_ms: i64,
}

pub struct OkxFeed {
    url: String,
    /// `https://www.okx.com`: the REST snapshots' base.
    rest: String,
    depth: usize,
    /// Spot and swap instIds configured.
    instruments: HashMap<String, Instrument>,
    /// Every subscription arg, in the order sent.
    args: Vec<Value>,
    streams: Vec<String>,
    stream_set: HashSet<String>,
    /// By instId.
    books: BTreeMap<String, BookState>,
    /// Last mark price by normalised symbol (from `mark-price`).
    mark: HashMap<String, Decimal8>,
    /// Last index price by normalised symbol (from `index-tickers`).
    index: HashMap<String, Decimal8>,
    throttle: Throttle,
}

impl OkxFeed {
    pub fn new(plan: &VenuePlan) -> OkxFeed {
        let mut feed = OkxFeed {
            url: plan.urls.ws.clone(),
            rest: plan.urls.rest.trim_end_matches('/').to_string(),
            depth: plan.book_depth,
            instruments: HashMap::new(),
            args: Vec::new(),
            streams: Vec::new(),
            stream_set: HashSet::new(),
            books: BTreeMap::new(),
            mark: HashMap::new(),
            index: HashMap::new(),
            throttle: Throttle::default(),
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
                        self.books.insert(inst_id.clone(), BookState::default());
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
            let frame = match action {
                Some("snapshot") => book_frame(d, true).map(|f| (true, f)),
                Some("update") => book_frame(d, false).map(|f| (false, f)),
                other => Err(format!("books action {other:?}")),
            };
            match frame {
                Ok((true, snapshot)) => {
                    out.extend(self.in_band_snapshot(inst_id, snapshot, now_ms))
                }
                Ok((false, update)) => out.extend(self.on_update(inst_id, update, now_ms)),
                Err(what) => {
                    out.push(self.problem(Some(stream.clone()), what));
                    out.extend(self.restart(inst_id, None, now_ms));
                }
            }
        }
        out
    }

    /// The book stream of a configured instId.
    fn book_stream(&self, inst_id: &str) -> String {
        self.stream_of(DataType::Orderbook, inst_id)
            .map_or_else(|| self.name(), |(stream, _)| stream)
    }

    /// A snapshot pushed on the websocket (mirrors, and OKX before August 2026): the book as
    /// it comes, the next update chaining onto it exactly.
    fn in_band_snapshot(&mut self, inst_id: &str, snapshot: BookFrame, now_ms: i64) -> Vec<Action> {
        let stream = self.book_stream(inst_id);
        let Some(state) = self.books.get_mut(inst_id) else {
            return Vec::new();
        };
        // It starts the stream over: updates buffered before it are older. A REST snapshot
        // still on its way is ignored when it comes.
        state.buffer.clear();
        if let Err(e) = replace(&mut state.book, &snapshot) {
            let what = format!("books snapshot: {e}");
            let mut out = vec![Action::Problem { stream, what }];
            out.extend(self.restart(inst_id, None, now_ms));
            return out;
        }
        state.bridged = true;
        state.synced_at_ms = now_ms;
        self.check_book(inst_id, stream, snapshot.checksum, now_ms)
    }

    fn on_update(&mut self, inst_id: &str, update: BookFrame, now_ms: i64) -> Vec<Action> {
        match self.books.get(inst_id) {
            Some(state) if state.book.synced => self.apply_live(inst_id, update, now_ms),
            Some(_) => self.buffer(inst_id, update, now_ms),
            None => Vec::new(),
        }
    }

    /// Holds an update until the snapshot comes, asking for one if none is on its way.
    fn buffer(&mut self, inst_id: &str, update: BookFrame, now_ms: i64) -> Vec<Action> {
        let stream = self.book_stream(inst_id);
        let Some(state) = self.books.get_mut(inst_id) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if state.buffer.len() >= BUFFER_LIMIT {
            state.buffer.clear();
            out.push(Action::Gap {
                stream,
                what: format!(
                    "{BUFFER_LIMIT} updates buffered and still no snapshot: dropped them"
                ),
            });
        }
        state.buffer.push_back(update);
        out.extend(self.request(inst_id, now_ms));
        out
    }

    /// An update on a synced book: the first one after a REST snapshot must span the
    /// snapshot's seqId, every later one chain onto the last seqId applied.
    fn apply_live(&mut self, inst_id: &str, update: BookFrame, now_ms: i64) -> Vec<Action> {
        let stream = self.book_stream(inst_id);
        let Some(state) = self.books.get_mut(inst_id) else {
            return Vec::new();
        };
        let last = state.book.last_update_id;
        if !state.bridged && update.seq <= last {
            // Already in the REST snapshot.
            return Vec::new();
        }
        let chained = match state.bridged {
            true => update.prev == last,
            false => update.prev <= last,
        };
        if !chained {
            let what = match state.bridged {
                true => format!("prevSeqId {} after seqId {last}", update.prev),
                false => format!(
                    "snapshot older than the updates: seqId {last}, next update's prevSeqId {}",
                    update.prev
                ),
            };
            let mut out = vec![Action::Gap { stream, what }];
            // The update that showed the gap is the first of the new buffer.
            out.extend(self.restart(inst_id, Some(update), now_ms));
            return out;
        }
        if let Err(e) = apply(&mut state.book, &update) {
            let what = format!("books update seqId {}: {e}", update.seq);
            let mut out = vec![Action::Problem { stream, what }];
            out.extend(self.restart(inst_id, None, now_ms));
            return out;
        }
        state.bridged = true;
        if now_ms.saturating_sub(state.synced_at_ms) >= SETTLED_MS {
            state.failures = 0;
            state.not_before_ms = 0;
        }
        self.check_book(inst_id, stream, update.checksum, now_ms)
    }

    /// The book after a snapshot or an update: a non-zero checksum must be ours, and the
    /// book must not be crossed; else it is re-synced.
    fn check_book(
        &mut self,
        inst_id: &str,
        stream: String,
        pushed: i64,
        now_ms: i64,
    ) -> Vec<Action> {
        let Some(state) = self.books.get(inst_id) else {
            return Vec::new();
        };
        let book = &state.book;
        let ours = checksum(book);
        let what = if pushed != 0 && i64::from(ours) != pushed {
            format!(
                "checksum mismatch at seqId {}: ours {ours}, okx {pushed}",
                book.last_update_id
            )
        } else if book.crossed() {
            format!(
                "crossed book at seqId {}: best bid >= best ask",
                book.last_update_id
            )
        } else {
            return vec![Action::Seen(stream)];
        };
        let mut out = vec![Action::Gap { stream, what }];
        out.extend(self.restart(inst_id, None, now_ms));
        out
    }

    /// Drops the book and starts OKX's procedure over (`keep`: an update after the gap).
    fn restart(&mut self, inst_id: &str, keep: Option<BookFrame>, now_ms: i64) -> Option<Action> {
        let state = self.books.get_mut(inst_id)?;
        state.book.reset();
        state.buffer.clear();
        state.buffer.extend(keep);
        state.bridged = false;
        self.failed(inst_id, now_ms);
        self.request(inst_id, now_ms)
    }

    /// Counts a failure: the first is retried at once, the next ones after a growing pause.
    fn failed(&mut self, inst_id: &str, now_ms: i64) {
        if let Some(state) = self.books.get_mut(inst_id) {
            state.failures = state.failures.saturating_add(1);
            let pause = match state.failures {
                0 | 1 => 0,
                n => (1000i64 << (n - 2).min(5)).min(SNAPSHOT_PAUSE_MAX_MS),
            };
            state.not_before_ms = now_ms.saturating_add(pause);
        }
    }

    /// A REST snapshot request, unless one is on its way or the pause after failures is not
    /// over (the next update asks again).
    fn request(&mut self, inst_id: &str, now_ms: i64) -> Option<Action> {
        let state = self.books.get_mut(inst_id)?;
        if state.fetching || now_ms < state.not_before_ms {
            return None;
        }
        state.fetching = true;
        Some(Action::FetchSnapshot {
            key: inst_id.to_string(),
            url: format!(
                "{}/api/v5/market/books?instId={inst_id}&sz={SNAPSHOT_LEVELS}",
                self.rest
            ),
        })
    }

    /// A failure to note on the book's stream, then a new request (at once or after a pause).
    fn retry(&mut self, inst_id: &str, failure: Action, now_ms: i64) -> Vec<Action> {
        self.failed(inst_id, now_ms);
        let mut out = vec![failure];
        out.extend(self.request(inst_id, now_ms));
        out
    }

    /// The REST snapshot meets the buffered updates: OKX's steps 4 to 7.
    fn sync(&mut self, inst_id: &str, snapshot: BookFrame, now_ms: i64) -> Vec<Action> {
        let stream = self.book_stream(inst_id);
        let Some(state) = self.books.get_mut(inst_id) else {
            return Vec::new();
        };
        let id = snapshot.seq;
        if let Some(first) = state.buffer.front() {
            if id < first.prev {
                // The buffered updates stay: a newer snapshot will meet them.
                let what = format!(
                    "snapshot older than the updates: seqId {id}, first update's prevSeqId {}",
                    first.prev
                );
                return self.retry(inst_id, Action::Gap { stream, what }, now_ms);
            }
        }
        while state.buffer.front().is_some_and(|u| u.seq <= id) {
            state.buffer.pop_front();
        }
        if let Err(e) = replace(&mut state.book, &snapshot) {
            state.book.reset();
            let what = format!("books snapshot of {inst_id}: {e}");
            return self.retry(inst_id, Action::Problem { stream, what }, now_ms);
        }
        state.bridged = false;
        state.synced_at_ms = now_ms;
        if state.book.crossed() {
            let what = format!("crossed snapshot seqId {id}: best bid >= best ask");
            let mut out = vec![Action::Gap { stream, what }];
            out.extend(self.restart(inst_id, None, now_ms));
            return out;
        }
        let pending: Vec<BookFrame> = state.buffer.drain(..).collect();
        let mut out = Vec::new();
        for update in pending {
            out.extend(self.on_update(inst_id, update, now_ms));
        }
        out
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

    fn on_connect(&mut self, _now_ms: i64) -> Vec<String> {
        for state in self.books.values_mut() {
            *state = BookState::default();
        }
        self.args
            .chunks(ARGS_PER_REQUEST)
            .map(|args| json!({"op": "subscribe", "args": args}).to_string())
            .collect()
    }

    fn send_interval(&self) -> Duration {
        SEND_INTERVAL
    }

    fn idle_ping(&self) -> Option<(Duration, String)> {
        Some((IDLE_PING, "ping".to_string()))
    }

    fn on_text(&mut self, text: &str, now_ms: i64) -> Vec<Action> {
        let mut out = Vec::new();
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

    fn on_snapshot(&mut self, key: &str, body: Result<String, String>, now_ms: i64) -> Vec<Action> {
        let stream = self.stream_of(DataType::Orderbook, key).map(|(s, _)| s);
        let (Some(stream), Some(state)) = (stream, self.books.get_mut(key)) else {
            return vec![self.problem(None, format!("a snapshot for {key:?} that was never asked"))];
        };
        if !state.fetching {
            // Asked for before a reconnect: the book starts over anyway.
            return Vec::new();
        }
        state.fetching = false;
        if state.book.synced {
            // Late: an in-band snapshot synced the book meanwhile.
            return Vec::new();
        }
        let snapshot = match body {
            Ok(body) => rest_snapshot(&body),
            Err(e) => Err(format!("failed: {e}")),
        };
        match snapshot {
            Ok(snapshot) => self.sync(key, snapshot, now_ms),
            Err(e) => {
                let what = format!("books snapshot of {key}: {e}");
                self.retry(key, Action::Problem { stream, what }, now_ms)
            }
        }
    }

    fn books(&mut self, now_ms: i64) -> Vec<MarketMessage> {
        self.books
            .iter()
            .filter(|(_, state)| state.book.synced)
            .filter_map(|(inst_id, state)| {
                let instrument = self.instruments.get(inst_id)?;
                Some(state.book.message(
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

/// A `books` push's data item (`snapshot`: no `prevSeqId` is read).
fn book_frame(d: &Value, snapshot: bool) -> Result<BookFrame, String> {
    let prev = match snapshot {
        true => 0,
        false => seq_id(d, "prevSeqId")?,
    };
    let checksum = match d.get("checksum") {
        None | Some(Value::Null) => 0,
        Some(_) => integer(d, "checksum")?,
    };
    Ok(BookFrame {
        prev,
        seq: seq_id(d, "seqId")?,
        ts_ms: ms(d, "ts")?,
        bids: levels(d, "bids")?,
        asks: levels(d, "asks")?,
        checksum,
    })
}

/// `GET /api/v5/market/books`: `{"code":"0","msg":"","data":[{"asks":[..],"bids":[..],
/// "ts":"..","seqId":N}]}`; any other code is an error naming it and OKX's `msg`.
fn rest_snapshot(body: &str) -> Result<BookFrame, String> {
    let v: Value = serde_json::from_str(body)
        .map_err(|e| format!("an answer that is not JSON ({e}): {}", excerpt(body)))?;
    let code = match v.get("code") {
        Some(Value::String(code)) => code.clone(),
        Some(Value::Number(code)) => code.to_string(),
        _ => return Err(format!("an answer without a code: {}", excerpt(body))),
    };
    if code != "0" {
        let msg = v.get("msg").and_then(Value::as_str).unwrap_or_default();
        return Err(format!("okx answers code {code}: {msg}"));
    }
    let d = v
        .get("data")
        .and_then(Value::as_array)
        .and_then(|data| data.first())
        .ok_or_else(|| format!("an answer without data: {}", excerpt(body)))?;
    Ok(BookFrame {
        prev: 0,
        seq: seq_id(d, "seqId")?,
        ts_ms: ms(d, "ts")?,
        bids: levels(d, "bids")?,
        asks: levels(d, "asks")?,
        checksum: 0,
    })
}

/// Sets the book to a snapshot, synced at its seqId.
fn replace(book: &mut LocalBook, snapshot: &BookFrame) -> Result<(), String> {
    let bids = snapshot.bids.iter().map(|(p, q)| (p.as_str(), q.as_str()));
    let asks = snapshot.asks.iter().map(|(p, q)| (p.as_str(), q.as_str()));
    book.replace(bids, asks, snapshot.seq, snapshot.ts_ms)
}

fn apply(book: &mut LocalBook, update: &BookFrame) -> Result<(), String> {
    for (side, list) in [(Side::Bid, &update.bids), (Side::Ask, &update.asks)] {
        for (price, quantity) in list {
            book.set(side, price, quantity)?;
        }
    }
    book.last_update_id = update.seq;
    book.ts_ms = update.ts_ms;
    Ok(())
}

/// A side's levels as `(price, size)` text; OKX adds two more fields per level we do not use.
fn levels(d: &Value, side: &str) -> Result<Vec<(String, String)>, String> {
    let bad = |what: &str| format!("books {side}: {what}");
    let list = d
        .get(side)
        .and_then(Value::as_array)
        .ok_or_else(|| bad("missing"))?;
    list.iter()
        .map(|level| {
            let field = |i: usize| level.get(i).and_then(Value::as_str);
            match (field(0), field(1)) {
                (Some(price), Some(size)) => Ok((price.to_string(), size.to_string())),
                _ => Err(bad(&format!("level {level} is not [price, size, ...]"))),
            }
        })
        .collect()
}

fn seq_id(d: &Value, field: &str) -> Result<u64, String> {
    let n = integer(d, field)?;
    u64::try_from(n).map_err(|_| format!("{field} {n} is negative"))
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
