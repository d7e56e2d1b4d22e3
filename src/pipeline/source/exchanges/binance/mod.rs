//! Binance public market data: spot on `stream.binance.com`, USD-M perpetual futures on
//! `fstream.binance.com`. Each market is one combined-stream connection (`/stream`) that
//! subscribes with `SUBSCRIBE` frames after connecting; order books are kept from a REST
//! snapshot plus `@depth@100ms` diffs by Binance's "How to manage a local order book
//! correctly" (the spot and the futures rules differ); open interest and the long/short
//! ratios are only served over REST, so they are polled.
//!
//! Symbols: `BTC-USDT` is `BTCUSDT` on REST and `btcusdt` in stream names. Frames are mapped
//! back through a table built from the plan, never by guessing where base and quote split.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde_json::{json, Value};

use super::book::{LocalBook, Side};
use super::feed::{message, stream_name, Action, Feed, Poll, PollContext, Throttle};
use super::poll::excerpt;
use super::{markets, split_symbol, VenuePlan};
use crate::pipeline::message::{
    DataType, Decimal8, Exchange, FundingRate, Liquidation, LsrAllAccount, LsrTopPosition,
    MarketData, MarketMessage, MarketType, OpenInterest, Trade,
};

mod frames;
mod polls;

use frames::*;
use polls::*;

/// ws, rest, futures ws, futures rest.
pub const DEFAULT_URLS: [&str; 4] = [
    "wss://stream.binance.com:9443/stream",
    "https://api.binance.com",
    "wss://fstream.binance.com/stream",
    "https://fapi.binance.com",
];

const EXCHANGE: &str = "binance";
/// Binance ends every connection at 24 h: renew a little before, at a moment of our choosing.
const MAX_LIFETIME: Duration = Duration::from_secs(23 * 3600 + 50 * 60);
/// Binance's limit of streams on one connection (spot and futures alike).
const MAX_STREAMS: usize = 1024;
/// Streams named in one SUBSCRIBE frame.
const PARAMS_PER_FRAME: usize = 200;
/// Diffs held while a snapshot is on its way: at 10 a second, over 8 minutes' worth.
const BUFFER_LIMIT: usize = 5000;
/// Binance pushes the mark price every second; MarketPrism stores funding every 30 s.
const FUNDING_EVERY: Duration = Duration::from_secs(30);
const POLL_EVERY: Duration = Duration::from_secs(30);
const RATIO_PERIOD: &str = "5m";
/// A snapshot request weighs 20-50 of Binance's 2400-6000 a minute: snapshots that keep
/// failing are asked again ever more slowly, up to this pause, so a loop never earns a ban.
const SNAPSHOT_PAUSE_MAX_MS: i64 = 30_000;
/// A book that stayed synced this long has proven itself: its failure count starts over.
const SETTLED_MS: i64 = 10_000;
/// Binance's answer code for a symbol it does not list.
const INVALID_SYMBOL: &str = "-1121";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Market {
    Spot,
    Perpetual,
}

impl Market {
    fn market_type(self) -> MarketType {
        match self {
            Market::Spot => MarketType::Spot,
            Market::Perpetual => MarketType::Perpetual,
        }
    }

    fn as_str(self) -> &'static str {
        self.market_type().as_str()
    }

    /// Binance accepts 5 incoming messages a second on spot, 10 on futures.
    fn send_interval(self) -> Duration {
        match self {
            Market::Spot => Duration::from_millis(250),
            Market::Perpetual => Duration::from_millis(150),
        }
    }

    /// The data types the market streams, each with its channel (`btcusdt@<channel>`).
    fn channels(self) -> &'static [(DataType, &'static str)] {
        match self {
            Market::Spot => &[
                (DataType::Trade, "trade"),
                (DataType::Orderbook, "depth@100ms"),
            ],
            Market::Perpetual => &[
                (DataType::Trade, "aggTrade"),
                (DataType::Orderbook, "depth@100ms"),
                (DataType::FundingRate, "markPrice@1s"),
                (DataType::Liquidation, "forceOrder"),
            ],
        }
    }

    fn snapshot_url(self, rest: &str, wire: &str) -> String {
        let rest = rest.trim_end_matches('/');
        match self {
            Market::Spot => format!("{rest}/api/v3/depth?symbol={wire}&limit=1000"),
            Market::Perpetual => format!("{rest}/fapi/v1/depth?symbol={wire}&limit=1000"),
        }
    }

    /// A buffered diff the snapshot already holds (spot: `u <= lastUpdateId`; futures:
    /// `u < lastUpdateId`).
    fn covered(self, diff: &Diff, snapshot_id: u64) -> bool {
        match self {
            Market::Spot => diff.last <= snapshot_id,
            Market::Perpetual => diff.last < snapshot_id,
        }
    }

    /// The first diff kept starts after the snapshot: updates between them are missing.
    fn starts_after(self, diff: &Diff, snapshot_id: u64) -> bool {
        match self {
            Market::Spot => diff.first > snapshot_id.saturating_add(1),
            Market::Perpetual => diff.first > snapshot_id,
        }
    }
}

/// One configured symbol and the names it goes by.
#[derive(Debug, Clone)]
struct Symbol {
    /// `BTC-USDT`.
    normalised: String,
    /// `BTCUSDT`: REST and the frames' `s`.
    wire: String,
    trade: String,
    orderbook: String,
    funding: String,
    liquidation: String,
}

impl Symbol {
    fn new(normalised: &str, wire: &str, market: Market) -> Symbol {
        let subject = |t: DataType| stream_name(t.as_str(), EXCHANGE, market.as_str(), normalised);
        Symbol {
            normalised: normalised.to_string(),
            wire: wire.to_string(),
            trade: subject(DataType::Trade),
            orderbook: subject(DataType::Orderbook),
            funding: subject(DataType::FundingRate),
            liquidation: subject(DataType::Liquidation),
        }
    }

    fn subject(&self, data_type: DataType) -> &str {
        match data_type {
            DataType::Orderbook => &self.orderbook,
            DataType::FundingRate => &self.funding,
            DataType::Liquidation => &self.liquidation,
            _ => &self.trade,
        }
    }
}

/// A depth diff as Binance sends it (`U`, `u`, futures' `pu`, `E`, `b`, `a`).
#[derive(Debug, Clone)]
struct Diff {
    first: u64,
    last: u64,
    prev: Option<u64>,
    ts_ms: i64,
    bids: Vec<(String, String)>,
    asks: Vec<(String, String)>,
}

/// A REST depth snapshot.
#[derive(Debug, Clone)]
struct Snapshot {
    last_update_id: u64,
    ts_ms: i64,
    bids: Vec<(String, String)>,
    asks: Vec<(String, String)>,
}

/// One symbol's book and where it stands in Binance's procedure.
#[derive(Debug, Default)]
struct BookState {
    book: LocalBook,
    /// Diffs received while the book waits for a snapshot.
    buffer: VecDeque<Diff>,
    /// A snapshot was asked for and its answer has not come.
    fetching: bool,
    /// A diff was applied since the snapshot: from now on diffs must chain to each other.
    bridged: bool,
    /// Binance said it does not list the symbol: no more snapshots on this connection.
    rejected: bool,
    /// Snapshots or books that failed in a row, and when the next snapshot may be asked.
    failures: u32,
    not_before_ms: i64,
    synced_at_ms: i64,
}

/// What a live diff means for a synced book.
enum Check {
    Apply,
    /// Already in the book.
    Stale,
    Gap(String),
}

/// One Binance websocket connection: one market, a set of symbols.
struct BinanceFeed {
    name: String,
    url: String,
    rest: String,
    market: Market,
    symbols: Vec<Symbol>,
    /// `BTCUSDT` → index in `symbols`.
    index: HashMap<String, usize>,
    types: Vec<DataType>,
    depth: usize,
    books: Vec<BookState>,
    throttle: Throttle,
}

/// The spot and perpetual connections and the REST polls the plan asks for.
///
/// A benchmark or test can drive a feed through the [`Feed`] trait alone: `on_connect`, then
/// `on_text` with combined-stream frames; the first depth diff of a symbol asks for a snapshot
/// (`FetchSnapshot { key: "spot:BTCUSDT", .. }`), answered with `on_snapshot`.
pub fn feeds(plan: &VenuePlan) -> (Vec<Box<dyn Feed>>, Vec<Poll>) {
    let symbols = wire_symbols(plan);
    let mut out: Vec<Box<dyn Feed>> = Vec::new();
    for market in [Market::Spot, Market::Perpetual] {
        let (url, rest) = match market {
            Market::Spot => (&plan.urls.ws, &plan.urls.rest),
            Market::Perpetual => (&plan.urls.futures_ws, &plan.urls.futures_rest),
        };
        let types: Vec<DataType> = market
            .channels()
            .iter()
            .map(|(t, _)| *t)
            .filter(|t| serves(plan, *t, market.market_type()))
            .collect();
        if types.is_empty() || symbols.is_empty() {
            continue;
        }
        // More symbols than one connection may carry go on further connections.
        let per_connection = (MAX_STREAMS / types.len()).max(1);
        for (n, chunk) in symbols.chunks(per_connection).enumerate() {
            let name = match n {
                0 => format!("{EXCHANGE} {}", market.as_str()),
                _ => format!("{EXCHANGE} {} {}", market.as_str(), n + 1),
            };
            out.push(Box::new(BinanceFeed::new(
                name,
                url,
                rest,
                market,
                chunk,
                types.clone(),
                plan.book_depth,
            )));
        }
    }
    (out, polls(plan, &symbols))
}

fn serves(plan: &VenuePlan, data_type: DataType, market_type: MarketType) -> bool {
    plan.wants(data_type) && markets(Exchange::Binance, data_type).contains(&market_type)
}

/// (`BTC-USDT`, `BTCUSDT`) for each usable configured symbol, once each.
fn wire_symbols(plan: &VenuePlan) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for symbol in &plan.symbols {
        let Some((base, quote)) = split_symbol(symbol) else {
            tracing::warn!("{EXCHANGE}: skipping symbol {symbol:?}: not BASE-QUOTE");
            continue;
        };
        let wire = format!("{base}{quote}");
        match out.iter().find(|(_, w)| *w == wire) {
            Some((first, _)) if first == symbol => {}
            Some((first, _)) => tracing::warn!(
                "{EXCHANGE}: skipping symbol {symbol}: Binance names it {wire}, as it does {first}"
            ),
            None => out.push((symbol.clone(), wire)),
        }
    }
    out
}

impl BinanceFeed {
    fn new(
        name: String,
        url: &str,
        rest: &str,
        market: Market,
        symbols: &[(String, String)],
        types: Vec<DataType>,
        depth: usize,
    ) -> BinanceFeed {
        let symbols: Vec<Symbol> = symbols
            .iter()
            .map(|(normalised, wire)| Symbol::new(normalised, wire, market))
            .collect();
        let index = symbols
            .iter()
            .enumerate()
            .map(|(i, s)| (s.wire.clone(), i))
            .collect();
        let books = symbols.iter().map(|_| BookState::default()).collect();
        BinanceFeed {
            name,
            url: url.to_string(),
            rest: rest.to_string(),
            market,
            symbols,
            index,
            types,
            depth,
            books,
            throttle: Throttle::default(),
        }
    }

    fn wants(&self, data_type: DataType) -> bool {
        self.types.contains(&data_type)
    }

    /// `btcusdt@trade`, … for every symbol and wanted type.
    fn subscriptions(&self) -> Vec<String> {
        let mut out = Vec::new();
        for symbol in &self.symbols {
            let lower = symbol.wire.to_ascii_lowercase();
            for (data_type, channel) in self.market.channels() {
                if self.wants(*data_type) {
                    out.push(format!("{lower}@{channel}"));
                }
            }
        }
        out
    }

    /// A problem no stream can be named for.
    fn problem(&self, what: String) -> Action {
        Action::Problem {
            stream: self.name.clone(),
            what,
        }
    }

    /// The symbol a frame is about: its `s` (or the order's `s`), else the combined stream's
    /// name.
    fn symbol_index(&self, wire: Option<&str>, stream: Option<&str>) -> Option<usize> {
        if let Some(wire) = wire {
            return self
                .index
                .get(wire)
                .or_else(|| self.index.get(&wire.to_ascii_uppercase()))
                .copied();
        }
        let (lower, _) = stream?.split_once('@')?;
        self.index.get(&lower.to_ascii_uppercase()).copied()
    }

    fn on_event(&mut self, event: &Value, stream: Option<&str>, now_ms: i64) -> Vec<Action> {
        let kind = event.get("e").and_then(Value::as_str).unwrap_or_default();
        let data_type = match (self.market, kind) {
            (_, "depthUpdate") => DataType::Orderbook,
            (Market::Spot, "trade") | (Market::Perpetual, "aggTrade") => DataType::Trade,
            (Market::Perpetual, "markPriceUpdate") => DataType::FundingRate,
            (Market::Perpetual, "forceOrder") => DataType::Liquidation,
            (_, "serverShutdown") => {
                return vec![Action::Reconnect(
                    "binance announced a server shutdown".into(),
                )]
            }
            (_, "") => {
                return vec![self.problem(format!(
                    "a frame with no event type (e): {}",
                    excerpt(&event.to_string())
                ))]
            }
            (_, other) => return vec![self.problem(format!("unknown event {other:?}"))],
        };
        if !self.wants(data_type) {
            return vec![self.problem(format!("a {kind} event, which was not subscribed"))];
        }
        // forceOrder names its symbol inside the order.
        let holder = match data_type {
            DataType::Liquidation => event.get("o").unwrap_or(&Value::Null),
            _ => event,
        };
        let wire = holder.get("s").and_then(Value::as_str);
        let Some(i) = self.symbol_index(wire, stream) else {
            let named = wire.or(stream).unwrap_or("(none)");
            return vec![self.problem(format!(
                "a {kind} event for {named}, which this connection did not subscribe"
            ))];
        };
        if data_type == DataType::Orderbook {
            return self.on_diff_frame(i, event, now_ms);
        }
        let stream = self.symbols[i].subject(data_type).to_string();
        let symbol = &self.symbols[i].normalised;
        let market_type = self.market.as_str();
        let build = |(ts_ms, data): (i64, MarketData)| {
            message(EXCHANGE, market_type, symbol, ts_ms, now_ms, data)
        };
        let parsed = match data_type {
            DataType::Trade => {
                let id_field = if self.market == Market::Spot {
                    "t"
                } else {
                    "a"
                };
                parse_trade(event, id_field).map(build)
            }
            DataType::FundingRate => parse_funding(event).map(build),
            _ => parse_liquidation(event).map(build),
        };
        match parsed {
            Err(e) => vec![Action::Problem {
                stream,
                what: format!("{kind}: {e}"),
            }],
            Ok(_)
                if data_type == DataType::FundingRate
                    && !self.throttle.due(&stream, now_ms, FUNDING_EVERY) =>
            {
                vec![Action::Seen(stream)]
            }
            Ok(m) => vec![Action::Publish(m)],
        }
    }

    fn on_diff_frame(&mut self, i: usize, event: &Value, now_ms: i64) -> Vec<Action> {
        match parse_diff(event, self.market) {
            Ok(diff) => self.on_diff(i, diff, now_ms),
            Err(e) => vec![Action::Problem {
                stream: self.symbols[i].orderbook.clone(),
                what: format!("depthUpdate: {e}"),
            }],
        }
    }

    fn on_diff(&mut self, i: usize, diff: Diff, now_ms: i64) -> Vec<Action> {
        let state = &self.books[i];
        if state.rejected {
            return vec![];
        }
        if state.book.synced {
            self.apply_live(i, diff, now_ms)
        } else {
            self.buffer(i, diff, now_ms)
        }
    }

    /// Holds a diff until the snapshot comes, asking for one if none is on its way.
    fn buffer(&mut self, i: usize, diff: Diff, now_ms: i64) -> Vec<Action> {
        let mut out = Vec::new();
        let state = &mut self.books[i];
        if state.buffer.len() >= BUFFER_LIMIT {
            state.buffer.clear();
            out.push(Action::Gap {
                stream: self.symbols[i].orderbook.clone(),
                what: format!("{BUFFER_LIMIT} diffs buffered and still no snapshot: dropped them"),
            });
        }
        state.buffer.push_back(diff);
        out.extend(self.request(i, now_ms));
        out
    }

    fn apply_live(&mut self, i: usize, diff: Diff, now_ms: i64) -> Vec<Action> {
        let stream = self.symbols[i].orderbook.clone();
        let market = self.market;
        let state = &mut self.books[i];
        match check(market, &state.book, state.bridged, &diff) {
            Check::Stale => vec![],
            Check::Gap(what) => {
                let mut out = vec![Action::Gap { stream, what }];
                out.extend(self.restart(i, Some(diff), now_ms));
                out
            }
            Check::Apply => {
                if let Err(e) = apply(&mut state.book, &diff) {
                    let mut out = vec![Action::Problem {
                        stream,
                        what: format!("depthUpdate u={}: {e}; re-snapshotting", diff.last),
                    }];
                    out.extend(self.restart(i, None, now_ms));
                    return out;
                }
                if state.book.crossed() {
                    let what = format!(
                        "crossed book after the diff u={}: best bid >= best ask",
                        diff.last
                    );
                    let mut out = vec![Action::Gap { stream, what }];
                    out.extend(self.restart(i, None, now_ms));
                    return out;
                }
                state.bridged = true;
                if now_ms.saturating_sub(state.synced_at_ms) >= SETTLED_MS {
                    state.failures = 0;
                    state.not_before_ms = 0;
                }
                vec![Action::Seen(stream)]
            }
        }
    }

    /// Drops the book and starts Binance's procedure over (`keep`: a diff after the gap).
    fn restart(&mut self, i: usize, keep: Option<Diff>, now_ms: i64) -> Option<Action> {
        let state = &mut self.books[i];
        state.book.reset();
        state.buffer.clear();
        state.buffer.extend(keep);
        state.bridged = false;
        self.failed(i, now_ms);
        self.request(i, now_ms)
    }

    /// Counts a failure: the first is retried at once, the next ones after a growing pause.
    fn failed(&mut self, i: usize, now_ms: i64) {
        let state = &mut self.books[i];
        state.failures = state.failures.saturating_add(1);
        let pause = match state.failures {
            0 | 1 => 0,
            n => (1000i64 << (n - 2).min(5)).min(SNAPSHOT_PAUSE_MAX_MS),
        };
        state.not_before_ms = now_ms.saturating_add(pause);
    }

    /// A snapshot request, unless one is on its way, the symbol is rejected, or the pause after
    /// failures is not over (the next diff asks again).
    fn request(&mut self, i: usize, now_ms: i64) -> Option<Action> {
        let state = &mut self.books[i];
        if state.fetching || state.rejected || now_ms < state.not_before_ms {
            return None;
        }
        state.fetching = true;
        Some(self.fetch(i))
    }

    fn fetch(&self, i: usize) -> Action {
        let wire = &self.symbols[i].wire;
        Action::FetchSnapshot {
            key: format!("{}:{wire}", self.market.as_str()),
            url: self.market.snapshot_url(&self.rest, wire),
        }
    }

    fn key_index(&self, key: &str) -> Option<usize> {
        let wire = key.strip_prefix(self.market.as_str())?.strip_prefix(':')?;
        self.index.get(wire).copied()
    }

    /// Binance does not list the symbol: say so once and stop asking until a reconnect.
    fn reject(&mut self, i: usize, why: &str) -> Vec<Action> {
        let state = &mut self.books[i];
        state.rejected = true;
        state.fetching = false;
        state.buffer.clear();
        state.book.reset();
        vec![Action::Problem {
            stream: self.symbols[i].orderbook.clone(),
            what: format!(
                "binance rejects symbol {}: {}",
                self.symbols[i].wire,
                excerpt(why)
            ),
        }]
    }

    /// A failure to note on the book's stream, then a new request (at once or after a pause).
    fn retry(&mut self, i: usize, problem: Action, now_ms: i64) -> Vec<Action> {
        self.failed(i, now_ms);
        let mut out = vec![problem];
        out.extend(self.request(i, now_ms));
        out
    }

    /// The snapshot meets the buffered diffs: Binance's steps 4 to 7.
    fn sync(&mut self, i: usize, snapshot: Snapshot, now_ms: i64) -> Vec<Action> {
        let stream = self.symbols[i].orderbook.clone();
        let market = self.market;
        let id = snapshot.last_update_id;
        let state = &mut self.books[i];
        while state.buffer.front().is_some_and(|d| market.covered(d, id)) {
            state.buffer.pop_front();
        }
        if let Some(first) = state.buffer.front() {
            if market.starts_after(first, id) {
                // The buffered diffs stay: a newer snapshot will meet them.
                let what = format!(
                    "snapshot older than the diffs: lastUpdateId {id}, first diff U={}",
                    first.first
                );
                return self.retry(i, Action::Gap { stream, what }, now_ms);
            }
        }
        let bids = snapshot.bids.iter().map(|(p, q)| (p.as_str(), q.as_str()));
        let asks = snapshot.asks.iter().map(|(p, q)| (p.as_str(), q.as_str()));
        if let Err(e) = state.book.replace(bids, asks, id, snapshot.ts_ms) {
            state.book.reset();
            let what = format!("order book snapshot: {e}");
            return self.retry(i, Action::Problem { stream, what }, now_ms);
        }
        if state.book.crossed() {
            let what = format!("crossed snapshot {id}: best bid >= best ask");
            let mut out = vec![Action::Gap { stream, what }];
            out.extend(self.restart(i, None, now_ms));
            return out;
        }
        state.bridged = false;
        state.synced_at_ms = now_ms;
        let pending: Vec<Diff> = state.buffer.drain(..).collect();
        let mut out = Vec::new();
        for diff in pending {
            out.extend(self.on_diff(i, diff, now_ms));
        }
        out
    }
}

/// Whether a live diff applies to a synced book, by the market's rule.
fn check(market: Market, book: &LocalBook, bridged: bool, diff: &Diff) -> Check {
    let last = book.last_update_id;
    match market {
        // Spot: a diff wholly in the book is ignored; one starting past the next id means
        // some were missed (normally U is the previous u + 1).
        Market::Spot if diff.last <= last => Check::Stale,
        Market::Spot if diff.first > last.saturating_add(1) => Check::Gap(if bridged {
            format!("missed diffs: U={} after u={last}", diff.first)
        } else {
            format!(
                "snapshot older than the diffs: lastUpdateId {last}, next diff U={}",
                diff.first
            )
        }),
        Market::Spot => Check::Apply,
        // Futures: the first diff must span the snapshot's id; then each `pu` is the previous
        // diff's `u`.
        Market::Perpetual if !bridged && diff.last < last => Check::Stale,
        Market::Perpetual if !bridged && diff.first > last => Check::Gap(format!(
            "snapshot older than the diffs: lastUpdateId {last}, next diff U={}",
            diff.first
        )),
        Market::Perpetual if !bridged => Check::Apply,
        Market::Perpetual => match diff.prev {
            Some(pu) if pu == last => Check::Apply,
            pu => Check::Gap(format!(
                "missed diffs: pu={} after u={last}",
                pu.map_or("none".into(), |p| p.to_string())
            )),
        },
    }
}

fn apply(book: &mut LocalBook, diff: &Diff) -> Result<(), String> {
    for (price, quantity) in &diff.bids {
        book.set(Side::Bid, price, quantity)?;
    }
    for (price, quantity) in &diff.asks {
        book.set(Side::Ask, price, quantity)?;
    }
    book.last_update_id = diff.last;
    book.ts_ms = diff.ts_ms;
    Ok(())
}

impl Feed for BinanceFeed {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn url(&self) -> String {
        self.url.clone()
    }

    fn streams(&self) -> Vec<String> {
        let mut out = Vec::new();
        for symbol in &self.symbols {
            for (data_type, _) in self.market.channels() {
                if self.wants(*data_type) {
                    out.push(symbol.subject(*data_type).to_string());
                }
            }
        }
        out
    }

    fn on_connect(&mut self, _now_ms: i64) -> Vec<String> {
        for state in &mut self.books {
            *state = BookState::default();
        }
        self.subscriptions()
            .chunks(PARAMS_PER_FRAME)
            .enumerate()
            .map(|(n, params)| {
                json!({"method": "SUBSCRIBE", "params": params, "id": n + 1}).to_string()
            })
            .collect()
    }

    fn send_interval(&self) -> Duration {
        self.market.send_interval()
    }

    fn on_text(&mut self, text: &str, now_ms: i64) -> Vec<Action> {
        let frame: Value = match serde_json::from_str(text) {
            Ok(frame) => frame,
            Err(e) => {
                return vec![
                    self.problem(format!("a frame that is not JSON ({e}): {}", excerpt(text)))
                ]
            }
        };
        let Some(object) = frame.as_object() else {
            return vec![self.problem(format!("a frame that is not an object: {}", excerpt(text)))];
        };
        if let Some(error) = object.get("error") {
            return vec![self.problem(format!("error answer: {}", describe_error(error)))];
        }
        if object.contains_key("result") {
            // `{"result":null,"id":1}`: a subscription taken.
            return vec![];
        }
        if object.contains_key("code") && !object.contains_key("e") {
            return vec![self.problem(format!("error answer: {}", describe_error(&frame)))];
        }
        match (object.get("stream"), object.get("data")) {
            (Some(Value::String(stream)), Some(data)) => {
                self.on_event(data, Some(stream.as_str()), now_ms)
            }
            _ => self.on_event(&frame, None, now_ms),
        }
    }

    fn on_snapshot(&mut self, key: &str, body: Result<String, String>, now_ms: i64) -> Vec<Action> {
        let Some(i) = self.key_index(key) else {
            return vec![self.problem(format!("a snapshot for {key:?}, never asked for"))];
        };
        let stream = self.symbols[i].orderbook.clone();
        let state = &mut self.books[i];
        if !state.fetching {
            // Asked for before a reconnect: the book starts over anyway.
            return vec![];
        }
        state.fetching = false;
        let body = match body {
            Ok(body) => body,
            Err(e) if e.contains(INVALID_SYMBOL) => return self.reject(i, &e),
            Err(e) => {
                // The loop waited already (Retry-After, or 2 s): ask again now.
                state.fetching = true;
                let what = format!("order book snapshot failed: {e}");
                return vec![Action::Problem { stream, what }, self.fetch(i)];
            }
        };
        match parse_snapshot(&body) {
            Ok(snapshot) => self.sync(i, snapshot, now_ms),
            Err(e) if e.contains(INVALID_SYMBOL) => self.reject(i, &e),
            Err(e) => {
                let what = format!("order book snapshot: {e}: {}", excerpt(&body));
                self.retry(i, Action::Problem { stream, what }, now_ms)
            }
        }
    }

    fn max_lifetime(&self) -> Option<Duration> {
        Some(MAX_LIFETIME)
    }

    fn books(&mut self, now_ms: i64) -> Vec<MarketMessage> {
        if !self.wants(DataType::Orderbook) {
            return Vec::new();
        }
        self.symbols
            .iter()
            .zip(&self.books)
            .filter(|(_, state)| state.book.synced)
            .map(|(symbol, state)| {
                state.book.message(
                    EXCHANGE,
                    self.market.as_str(),
                    &symbol.normalised,
                    self.depth,
                    now_ms,
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
