//! Deribit JSON-RPC 2.0 websocket: BTC and ETH perpetual trades and books, and Deribit's
//! volatility indexes (DVOL), on one connection.
//!
//! Deribit's perpetuals are USD-quoted, so `BTC-USDT` in the config collects `BTC-PERPETUAL`
//! as `BTC-USD`; the volatility index is published under the bare asset (`BTC`), as
//! MarketPrism does. Books come as an in-band snapshot then changes chained by
//! `prev_change_id`; a broken chain resubscribes the channel for a fresh snapshot. Deribit
//! sends numbers as JSON floats: they are turned into exact decimal text first.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde_json::{json, Value};

use super::book::{LocalBook, Side};
use super::feed::{self, Action, Feed, Feeds, Throttle};
use super::okx::round8;
use super::{markets, split_symbol, VenuePlan};
use crate::pipeline::message::{
    DataType, Decimal8, Exchange, MarketData, MarketMessage, MarketType, Trade, VolatilityIndex,
};

/// ws, rest, futures ws, futures rest.
pub const DEFAULT_URLS: [&str; 4] = [
    "wss://www.deribit.com/ws/api/v2",
    "https://www.deribit.com",
    "",
    "",
];

const EXCHANGE: &str = "deribit";
const SEND_INTERVAL: Duration = Duration::from_millis(100);
/// Seconds between Deribit's heartbeats; each asks for a `public/test` answer.
const HEARTBEAT_SECS: u64 = 30;
/// Deribit updates the index every second; MarketPrism stores it every minute.
const VOLATILITY_EVERY: Duration = Duration::from_secs(60);
/// The assets with perpetuals and volatility indexes on Deribit.
const ASSETS: [&str; 2] = ["BTC", "ETH"];

pub fn feeds(plan: &VenuePlan) -> Feeds {
    let feed = DeribitFeed::new(plan);
    if feed.channels.is_empty() {
        return (Vec::new(), Vec::new());
    }
    (vec![Box::new(feed)], Vec::new())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Trades,
    Book,
    Volatility,
}

/// What a subscribed channel delivers.
#[derive(Debug, Clone)]
struct Route {
    kind: Kind,
    stream: String,
    market: MarketType,
    /// Normalised: `BTC-USD`, or `BTC` for the volatility index.
    symbol: String,
    /// `BTC`.
    asset: String,
}

/// A request waiting for its answer, by JSON-RPC id.
#[derive(Debug, Clone, PartialEq)]
enum Request {
    Heartbeat,
    Test,
    Subscribe(Vec<String>),
    Unsubscribe(Vec<String>),
}

pub struct DeribitFeed {
    url: String,
    depth: usize,
    /// Every channel, in the order subscribed.
    channels: Vec<String>,
    routes: HashMap<String, Route>,
    /// By book channel.
    books: BTreeMap<String, LocalBook>,
    pending: HashMap<u64, Request>,
    /// Ids keep increasing across reconnects, so a late answer is never taken for another's.
    next_id: u64,
    throttle: Throttle,
}

impl DeribitFeed {
    pub fn new(plan: &VenuePlan) -> DeribitFeed {
        let mut feed = DeribitFeed {
            url: plan.urls.ws.clone(),
            depth: plan.book_depth,
            channels: Vec::new(),
            routes: HashMap::new(),
            books: BTreeMap::new(),
            pending: HashMap::new(),
            next_id: 1,
            throttle: Throttle::default(),
        };
        let mut seen = HashSet::new();
        for symbol in &plan.symbols {
            let Some((base, _)) = split_symbol(symbol) else {
                continue;
            };
            if ASSETS.contains(&base) && seen.insert(base.to_string()) {
                feed.plan_asset(plan, base);
            }
        }
        feed
    }

    fn plan_asset(&mut self, plan: &VenuePlan, asset: &str) {
        let serves = |t: DataType, m: MarketType| {
            plan.wants(t) && markets(Exchange::Deribit, t).contains(&m)
        };
        let perpetual = format!("{asset}-PERPETUAL");
        let usd = format!("{asset}-USD");
        let index = format!("{}_usd", asset.to_lowercase());
        let wanted = [
            (
                DataType::Trade,
                MarketType::Perpetual,
                Kind::Trades,
                format!("trades.{perpetual}.100ms"),
                &usd,
            ),
            (
                DataType::Orderbook,
                MarketType::Perpetual,
                Kind::Book,
                format!("book.{perpetual}.100ms"),
                &usd,
            ),
            (
                DataType::VolatilityIndex,
                MarketType::Options,
                Kind::Volatility,
                format!("deribit_volatility_index.{index}"),
                &asset.to_string(),
            ),
        ];
        for (data_type, market, kind, channel, symbol) in wanted {
            if !serves(data_type, market) {
                continue;
            }
            let stream = feed::stream_name(data_type.as_str(), EXCHANGE, market.as_str(), symbol);
            let route = Route {
                kind,
                stream,
                market,
                symbol: symbol.clone(),
                asset: asset.to_string(),
            };
            if kind == Kind::Book {
                self.books.insert(channel.clone(), LocalBook::default());
            }
            self.routes.insert(channel.clone(), route);
            self.channels.push(channel);
        }
    }

    /// A JSON-RPC request, remembered until its answer.
    fn request(&mut self, method: &str, params: Value, request: Request) -> String {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, request);
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
    }

    fn subscribe(&mut self, channels: Vec<String>) -> String {
        let params = json!({ "channels": channels });
        self.request("public/subscribe", params, Request::Subscribe(channels))
    }

    fn problem(&self, stream: Option<&str>, what: String) -> Action {
        Action::Problem {
            stream: stream.map_or_else(|| self.name(), str::to_string),
            what,
        }
    }

    /// The stream a request is about, when it names one channel.
    fn stream_of_request(&self, request: Option<&Request>) -> Option<&str> {
        match request {
            Some(Request::Subscribe(c) | Request::Unsubscribe(c)) if c.len() == 1 => c
                .first()
                .and_then(|c| self.routes.get(c))
                .map(|r| r.stream.as_str()),
            _ => None,
        }
    }

    fn on_method(&mut self, method: &str, v: &Value, now_ms: i64) -> Vec<Action> {
        let params = v.get("params").unwrap_or(&Value::Null);
        match method {
            "subscription" => self.on_notification(params, now_ms),
            "heartbeat" => match params.get("type").and_then(Value::as_str) {
                // Unanswered, Deribit closes the connection.
                Some("test_request") => {
                    vec![Action::Send(self.request(
                        "public/test",
                        json!({}),
                        Request::Test,
                    ))]
                }
                Some("heartbeat") => Vec::new(),
                other => vec![self.problem(None, format!("heartbeat of type {other:?}"))],
            },
            other => vec![self.problem(None, format!("unknown method {other:?}"))],
        }
    }

    fn on_answer(&mut self, id: Option<u64>, v: &Value) -> Vec<Action> {
        let request = id.and_then(|id| self.pending.remove(&id));
        if let Some(error) = v.get("error") {
            let code = error.get("code").map(Value::to_string).unwrap_or_default();
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let to = match &request {
                Some(r) => format!(" to {}", describe(r)),
                None => String::new(),
            };
            let stream = self.stream_of_request(request.as_ref());
            return vec![self.problem(stream, format!("deribit error {code} {message}{to}"))];
        }
        let Some(result) = v.get("result") else {
            return vec![self.problem(None, "an answer with neither result nor error".into())];
        };
        match request {
            Some(Request::Subscribe(asked)) => self.on_subscribed(&asked, result),
            Some(_) => Vec::new(),
            None => {
                vec![self.problem(None, format!("an answer to no request of ours (id {id:?})"))]
            }
        }
    }

    /// Deribit answers a subscribe with the channels it accepted: the others are refused.
    fn on_subscribed(&self, asked: &[String], result: &Value) -> Vec<Action> {
        let Some(accepted) = result.as_array() else {
            return vec![self.problem(
                None,
                format!("a subscribe result that is not a list: {result}"),
            )];
        };
        let accepted: HashSet<&str> = accepted.iter().filter_map(Value::as_str).collect();
        asked
            .iter()
            .filter(|c| !accepted.contains(c.as_str()))
            .map(|c| {
                let stream = self.routes.get(c).map(|r| r.stream.as_str());
                self.problem(stream, format!("deribit rejects {c}"))
            })
            .collect()
    }

    fn on_notification(&mut self, params: &Value, now_ms: i64) -> Vec<Action> {
        let channel = params
            .get("channel")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(route) = self.routes.get(channel).cloned() else {
            return vec![self.problem(
                None,
                format!("a notification on unknown channel {channel:?}"),
            )];
        };
        let data = params.get("data").unwrap_or(&Value::Null);
        match route.kind {
            Kind::Trades => self.on_trades(&route, data, now_ms),
            Kind::Book => self.on_book(channel, &route, data),
            Kind::Volatility => self.on_volatility(&route, data, now_ms),
        }
    }

    fn on_trades(&self, route: &Route, data: &Value, now_ms: i64) -> Vec<Action> {
        let Some(trades) = data.as_array() else {
            return vec![self.problem(Some(&route.stream), "trades data is not a list".into())];
        };
        trades
            .iter()
            .map(|d| match trade(d) {
                Ok((ts, t)) => Action::Publish(message(route, ts, now_ms, t)),
                Err(what) => self.problem(Some(&route.stream), format!("trades: {what}")),
            })
            .collect()
    }

    fn on_volatility(&mut self, route: &Route, data: &Value, now_ms: i64) -> Vec<Action> {
        match volatility(data) {
            Err(what) => {
                vec![self.problem(Some(&route.stream), format!("volatility index: {what}"))]
            }
            Ok(_) if !self.throttle.due(&route.stream, now_ms, VOLATILITY_EVERY) => {
                vec![Action::Seen(route.stream.clone())]
            }
            Ok((ts, value)) => {
                let index = VolatilityIndex {
                    volatility_index: value,
                    underlying_asset: route.asset.clone(),
                };
                let m = message(route, ts, now_ms, MarketData::VolatilityIndex(index));
                vec![Action::Publish(m)]
            }
        }
    }

    fn on_book(&mut self, channel: &str, route: &Route, data: &Value) -> Vec<Action> {
        let stream = route.stream.clone();
        let result = match data.get("type").and_then(Value::as_str) {
            Some("snapshot") => self.book_snapshot(channel, data),
            Some("change") => self.book_change(channel, data),
            other => Err(BookError::Malformed(format!("book type {other:?}"))),
        };
        match result {
            Ok(()) => vec![Action::Seen(stream)],
            Err(BookError::Gap(what)) => {
                let mut out = vec![Action::Gap { stream, what }];
                out.extend(self.resync(channel));
                out
            }
            Err(BookError::Malformed(what)) => {
                let mut out = vec![self.problem(Some(&stream), what)];
                out.extend(self.resync(channel));
                out
            }
        }
    }

    fn book_snapshot(&mut self, channel: &str, d: &Value) -> Result<(), BookError> {
        let bids = entries(d, "bids")?;
        let asks = entries(d, "asks")?;
        let id = change_id(d, "change_id")?;
        let ts = integer(d, "timestamp").map_err(BookError::Malformed)?;
        let book = self.books.entry(channel.to_string()).or_default();
        book.reset();
        for (side, list) in [(Side::Bid, bids), (Side::Ask, asks)] {
            apply(book, side, &list)?;
        }
        book.last_update_id = id;
        book.ts_ms = ts;
        book.synced = true;
        Ok(())
    }

    fn book_change(&mut self, channel: &str, d: &Value) -> Result<(), BookError> {
        let book = self.books.entry(channel.to_string()).or_default();
        if !book.synced {
            // Before the first snapshot (or the one a resubscription asked for).
            return Ok(());
        }
        let prev = change_id(d, "prev_change_id")?;
        if prev != book.last_update_id {
            return Err(BookError::Gap(format!(
                "prev_change_id {prev} after change_id {}",
                book.last_update_id
            )));
        }
        let bids = entries(d, "bids")?;
        let asks = entries(d, "asks")?;
        let id = change_id(d, "change_id")?;
        let ts = integer(d, "timestamp").map_err(BookError::Malformed)?;
        for (side, list) in [(Side::Bid, bids), (Side::Ask, asks)] {
            apply(book, side, &list)?;
        }
        book.last_update_id = id;
        book.ts_ms = ts;
        Ok(())
    }

    /// Drops a book and subscribes its channel again: Deribit starts every subscription with
    /// a snapshot, and changes until then are ignored.
    fn resync(&mut self, channel: &str) -> Vec<Action> {
        if let Some(book) = self.books.get_mut(channel) {
            book.reset();
        }
        let channels = vec![channel.to_string()];
        let params = json!({ "channels": channels });
        let unsubscribe = self.request(
            "public/unsubscribe",
            params,
            Request::Unsubscribe(channels.clone()),
        );
        vec![
            Action::Send(unsubscribe),
            Action::Send(self.subscribe(channels)),
        ]
    }
}

impl Feed for DeribitFeed {
    fn name(&self) -> String {
        EXCHANGE.to_string()
    }

    fn url(&self) -> String {
        self.url.clone()
    }

    fn streams(&self) -> Vec<String> {
        self.channels
            .iter()
            .filter_map(|c| self.routes.get(c))
            .map(|r| r.stream.clone())
            .collect()
    }

    fn on_connect(&mut self, _now_ms: i64) -> Vec<String> {
        for book in self.books.values_mut() {
            book.reset();
        }
        self.pending.clear();
        let heartbeat = self.request(
            "public/set_heartbeat",
            json!({ "interval": HEARTBEAT_SECS }),
            Request::Heartbeat,
        );
        let subscribe = self.subscribe(self.channels.clone());
        vec![heartbeat, subscribe]
    }

    fn send_interval(&self) -> Duration {
        SEND_INTERVAL
    }

    fn on_text(&mut self, text: &str, now_ms: i64) -> Vec<Action> {
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return vec![self.problem(None, format!("a frame that is not JSON ({e})"))],
        };
        if let Some(method) = v.get("method") {
            let method = method.as_str().unwrap_or_default().to_string();
            return self.on_method(&method, &v, now_ms);
        }
        if let Some(id) = v.get("id") {
            return self.on_answer(id.as_u64(), &v);
        }
        vec![self.problem(None, "a message with neither method nor id".into())]
    }

    fn books(&mut self, now_ms: i64) -> Vec<MarketMessage> {
        self.books
            .iter()
            .filter(|(_, book)| book.synced)
            .filter_map(|(channel, book)| {
                let route = self.routes.get(channel)?;
                Some(book.message(
                    EXCHANGE,
                    route.market.as_str(),
                    &route.symbol,
                    self.depth,
                    now_ms,
                ))
            })
            .collect()
    }
}

fn describe(request: &Request) -> String {
    match request {
        Request::Heartbeat => "public/set_heartbeat".into(),
        Request::Test => "public/test".into(),
        Request::Subscribe(c) => format!("public/subscribe {}", c.join(",")),
        Request::Unsubscribe(c) => format!("public/unsubscribe {}", c.join(",")),
    }
}

fn message(route: &Route, ts_ms: i64, now_ms: i64, data: MarketData) -> MarketMessage {
    feed::message(
        EXCHANGE,
        route.market.as_str(),
        &route.symbol,
        ts_ms,
        now_ms,
        data,
    )
}

/// Why a book notification could not be applied: either way the book is resubscribed.
#[derive(Debug)]
enum BookError {
    Gap(String),
    Malformed(String),
}

/// One book entry: `["new"|"change"|"delete", price, amount]`, numbers as decimal text.
type Entry = (String, String, String);

fn entries(d: &Value, side: &str) -> Result<Vec<Entry>, BookError> {
    let bad = |what: String| BookError::Malformed(format!("book {side}: {what}"));
    let list = d
        .get(side)
        .and_then(Value::as_array)
        .ok_or_else(|| bad("missing".into()))?;
    list.iter()
        .map(|e| {
            let action = e.get(0).and_then(Value::as_str);
            let price = e.get(1).and_then(Value::as_f64);
            let amount = e.get(2).and_then(Value::as_f64);
            match (action, price, amount) {
                (Some(a), Some(p), Some(q)) => {
                    let p = decimal_text(p).map_err(bad)?;
                    let q = decimal_text(q).map_err(bad)?;
                    Ok((a.to_string(), p, q))
                }
                _ => Err(bad(format!("entry {e} is not [action, price, amount]"))),
            }
        })
        .collect()
}

fn apply(book: &mut LocalBook, side: Side, list: &[Entry]) -> Result<(), BookError> {
    for (action, price, amount) in list {
        let done = match action.as_str() {
            "new" | "change" => book.set(side, price, amount),
            "delete" => book.remove(side, price),
            other => Err(format!("entry action {other:?}")),
        };
        done.map_err(|e| BookError::Malformed(format!("book: {e}")))?;
    }
    Ok(())
}

fn change_id(d: &Value, field: &str) -> Result<u64, BookError> {
    d.get(field)
        .and_then(Value::as_u64)
        .ok_or_else(|| BookError::Malformed(format!("no {field:?}")))
}

fn integer(d: &Value, field: &str) -> Result<i64, String> {
    d.get(field)
        .and_then(Value::as_i64)
        .ok_or_else(|| format!("no integer {field:?}"))
}

/// A JSON number field as decimal text.
fn number(d: &Value, field: &str) -> Result<String, String> {
    let x = d
        .get(field)
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("no number {field:?}"))?;
    decimal_text(x).map_err(|e| format!("{field:?}: {e}"))
}

/// A float as the decimal text Decimal64(8) takes: no exponent, at most 8 fractional digits,
/// trailing zeros dropped: `1e-05` → `0.00001`, `0.1 + 0.2` → `0.3`. Rounding starts from the
/// shortest text that reads back as the same float (what Deribit wrote), so `0.000000015`
/// rounds up like the decimal it stands for, not down like its binary neighbour.
pub fn decimal_text(x: f64) -> Result<String, String> {
    if !x.is_finite() {
        return Err(format!("{x} is not a finite number"));
    }
    // `Display` of a float never uses an exponent.
    Ok(round8(&x.to_string())?.to_string())
}

fn volatility(d: &Value) -> Result<(i64, Decimal8), String> {
    let value: Decimal8 = number(d, "volatility")?.parse()?;
    Ok((integer(d, "timestamp")?, value))
}

fn trade(d: &Value) -> Result<(i64, MarketData), String> {
    let trade_id = match d.get("trade_id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err("no \"trade_id\"".into()),
    };
    let side = match d.get("direction").and_then(Value::as_str) {
        Some(s @ ("buy" | "sell")) => s.to_string(),
        other => return Err(format!("direction {other:?} is neither buy nor sell")),
    };
    let ts = integer(d, "timestamp")?;
    let trade = Trade {
        trade_id,
        price: number(d, "price")?.parse()?,
        quantity: number(d, "amount")?.parse()?,
        side,
        // `direction` is the taker's.
        is_maker: false,
        trade_ts_ms: ts,
    };
    Ok((ts, MarketData::Trade(trade)))
}

#[cfg(test)]
#[path = "deribit_tests.rs"]
mod tests;
