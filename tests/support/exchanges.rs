//! A test exchange standing in for Binance (spot and USD-M futures), OKX v5 and Deribit v2
//! (there is no internet here): their public market data on the wire formats their
//! documentation gives, served from the test process on the fleet's network gateway. One
//! websocket listener (`/binance/spot/stream`, `/binance/futures/stream`, `/okx/ws/v5/public`,
//! `/deribit/ws/api/v2`) and one HTTP listener (Binance's REST under `/binance/spot` and
//! `/binance/futures`, OKX's book snapshots under `/okx`), run by a tokio runtime on their own
//! thread.
//!
//! Each market keeps one real order book that evolves: every 100 ms a ticker changes a few
//! levels and broadcasts the change with its update ids to every connection, and every 200 ms
//! a trade. The broadcast happens under the book's lock, so a snapshot (Binance's or OKX's
//! REST, or Deribit's in-band one) sits exactly between two changes and the changes after it
//! chain onto it, as on the real exchanges. OKX's `books` behave as OKX's have since August
//! 2026: no snapshot on subscribing, `checksum` always 0, updates chained by
//! `seqId`/`prevSeqId`, the snapshot served by `GET /api/v5/market/books`.
//!
//! Faults are scripted on the FIRST connection of each kind only, so a test sees each once and
//! then a healthy feed: Binance spot skips one depth diff after 3 s, once the client's book
//! stands on a snapshot (a sequence gap), and closes the connection 3 s later; OKX skips one
//! spot `books` update the same way (a sequence gap) and sends one swap update with a wrong
//! non-zero checksum (as a mirror that still sends checksums would); Deribit drops one book
//! change after 3 s.
//! It pings Binance clients every 2 s and asks Deribit ones for one `public/test`.
//! [`Counters`] record what was sent and answered, for the test to read.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{interval_at, sleep_until, timeout, Instant, Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub const BINANCE_SPOT_WS: &str = "/binance/spot/stream";
pub const BINANCE_FUTURES_WS: &str = "/binance/futures/stream";
pub const OKX_WS: &str = "/okx/ws/v5/public";
pub const DERIBIT_WS: &str = "/deribit/ws/api/v2";
/// REST bases: the collector's `rest_url` and `futures_rest_url`.
pub const BINANCE_SPOT_REST: &str = "/binance/spot";
pub const BINANCE_FUTURES_REST: &str = "/binance/futures";
pub const BINANCE_SPOT_DEPTH: &str = "/binance/spot/api/v3/depth";
pub const BINANCE_FUTURES_DEPTH: &str = "/binance/futures/fapi/v1/depth";
/// OKX's REST base (the collector's okx `rest_url`) and its order book snapshots.
pub const OKX_REST: &str = "/okx";
pub const OKX_BOOKS: &str = "/okx/api/v5/market/books";
const FUTURES_DATA: &str = "/binance/futures/futures/data/";

/// A modest pace: the test host is a small container running the whole pipeline.
const BOOK_EVERY: Duration = Duration::from_millis(100);
/// Mark prices, funding, open interest, liquidations, volatility: once a second at most.
const SLOW_EVERY: Duration = Duration::from_secs(1);
/// Binance pings every 20 s; faster here so a test sees the pongs.
const PING_EVERY: Duration = Duration::from_secs(2);
/// When the first connection's fault comes (and Binance's close, this long after its gap).
const FAULT_AFTER: Duration = Duration::from_secs(3);
/// Deribit's test_request, this long after `public/set_heartbeat`.
const TEST_REQUEST_AFTER: Duration = Duration::from_secs(1);

/// Prices are in ticks of 0.1 around this mid (65000.0); books never cross.
const MID: u64 = 650_000;
/// Price levels each side may hold.
const SLOTS: u64 = 40;

/// What the server did, for the test to read.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Websocket connections accepted, by path.
    pub connections: BTreeMap<String, u64>,
    /// Data frames sent, by venue and stream (`binance spot btcusdt@trade`).
    pub frames: BTreeMap<String, u64>,
    /// REST requests, by path (without the query).
    pub rest: BTreeMap<String, u64>,
    /// Every Binance spot trade id written to a socket, in order.
    pub spot_trade_ids: Vec<u64>,
    /// Pongs answering the Binance connections' pings.
    pub pongs: u64,
    /// `public/test` answers to Deribit's `test_request`.
    pub deribit_tests: u64,
    /// OKX `books` and Deribit `book.*` subscribed again on the same connection.
    pub okx_resubscriptions: u64,
    pub deribit_resubscriptions: u64,
    /// OKX REST book snapshots served, by instId.
    pub okx_snapshots: BTreeMap<String, u64>,
    /// The Binance spot diff skipped (its `u`), and the spot book's id at the forced close.
    pub spot_gap_id: Option<u64>,
    /// The OKX spot `books` update skipped (its `seqId`).
    pub okx_gap_id: Option<u64>,
    /// OKX swap `books` updates sent with a wrong (non-zero) checksum.
    pub okx_bad_checksums: u64,
    pub spot_close_id: Option<u64>,
    /// Binance spot trades sent before the forced close (the rest came after the reconnect).
    pub spot_trades_before_close: Option<usize>,
    /// Faults injected, and anything unscripted that went wrong on the server's side.
    pub faults: Vec<String>,
    /// Requests this server does not serve, as the client wrote them: a handler asking for
    /// something else than the exchange documents shows up here.
    pub refused: Vec<String>,
}

impl Counters {
    pub fn connections_to(&self, path: &str) -> u64 {
        self.connections.get(path).copied().unwrap_or(0)
    }

    pub fn rest_hits(&self, path: &str) -> u64 {
        self.rest.get(path).copied().unwrap_or(0)
    }

    /// OKX REST book snapshots served for an instId (`BTC-USDT`).
    pub fn okx_snapshots_of(&self, inst_id: &str) -> u64 {
        self.okx_snapshots.get(inst_id).copied().unwrap_or(0)
    }

    /// Everything, with the trade ids summed up (there are thousands).
    pub fn report(&self) -> String {
        let ids = &self.spot_trade_ids;
        let mut short = self.clone();
        short.spot_trade_ids.clear();
        format!(
            "{short:#?}\nspot trade ids sent: {} ({:?} .. {:?})",
            ids.len(),
            ids.first(),
            ids.last()
        )
    }
}

/// The running server; it stops when dropped.
pub struct ExchangeServer {
    /// `ws://GATEWAY:PORT`: the websocket paths go after it.
    pub ws_base: String,
    /// `http://GATEWAY:PORT`: the REST paths go after it.
    pub http_base: String,
    shared: Arc<Shared>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl ExchangeServer {
    /// Listens on `ip` (the fleet's gateway) on two free ports.
    pub fn start(ip: IpAddr) -> ExchangeServer {
        let ws = std::net::TcpListener::bind((ip, 0)).expect("bind the test exchange (ws)");
        let http = std::net::TcpListener::bind((ip, 0)).expect("bind the test exchange (http)");
        let ws_base = format!("ws://{}", ws.local_addr().unwrap());
        let http_base = format!("http://{}", http.local_addr().unwrap());
        for listener in [&ws, &http] {
            listener.set_nonblocking(true).unwrap();
        }
        let shared = Arc::new(Shared::new());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime for the test exchange");
            runtime.block_on(async move {
                let ws = TcpListener::from_std(ws).unwrap();
                let http = TcpListener::from_std(http).unwrap();
                for id in MarketId::ALL {
                    tokio::spawn(run_market(state.clone(), id));
                }
                tokio::spawn(accept(ws, state.clone(), true));
                tokio::spawn(accept(http, state, false));
                // Until the server is dropped; the runtime's tasks end with it.
                let _ = stopped.await;
            });
        });
        ExchangeServer {
            ws_base,
            http_base,
            shared,
            _stop: stop,
        }
    }

    pub fn counters(&self) -> Counters {
        self.shared.counters.lock().unwrap().clone()
    }

    /// No more Binance spot trades: the set sent is final.
    pub fn stop_binance_spot_trades(&self) {
        self.shared.spot_trades.store(false, Ordering::SeqCst);
    }
}

// ---- markets: books, trades --------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MarketId {
    BinanceSpot,
    BinanceFutures,
    OkxSpot,
    OkxSwap,
    Deribit,
}

impl MarketId {
    const ALL: [MarketId; 5] = [
        MarketId::BinanceSpot,
        MarketId::BinanceFutures,
        MarketId::OkxSpot,
        MarketId::OkxSwap,
        MarketId::Deribit,
    ];

    /// (random seed, first update id, first trade id): ids far apart, so a row from one market
    /// can never pass for another's.
    fn start(self) -> (u64, u64, u64) {
        match self {
            MarketId::BinanceSpot => (0x9E37_79B9, 1_000_000, 70_000_001),
            MarketId::BinanceFutures => (0x85EB_CA6B, 5_000_000, 80_000_001),
            MarketId::OkxSpot => (0xC2B2_AE35, 300_000_000, 600_000_001),
            MarketId::OkxSwap => (0x27D4_EB2F, 400_000_000, 700_000_001),
            MarketId::Deribit => (0x1656_67B1, 20_000_000, 250_000_001),
        }
    }
}

/// Prices in ticks of 0.1, quantities in lots of 0.001: integers, so a level's text is always
/// the same.
#[derive(Debug, Clone, Default)]
struct Book {
    bids: BTreeMap<u64, u64>,
    asks: BTreeMap<u64, u64>,
}

impl Book {
    /// Best first: bids from the highest price, asks from the lowest.
    fn bids(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.bids.iter().rev().map(|(p, q)| (*p, *q))
    }

    fn asks(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.asks.iter().map(|(p, q)| (*p, *q))
    }
}

#[derive(Debug, Clone, Copy)]
struct Change {
    bid: bool,
    price: u64,
    /// 0: the level is gone.
    qty: u64,
    /// The level was there before (Deribit says `change`, else `new`).
    existed: bool,
}

/// One book change as every venue numbers it: Binance `U`/`u`/`pu`, OKX `seqId`/`prevSeqId`
/// (`last`/`prev`), Deribit `change_id`/`prev_change_id` (`last`/`prev`).
#[derive(Debug)]
struct Depth {
    first: u64,
    last: u64,
    prev: u64,
    ts_ms: i64,
    changes: Vec<Change>,
}

#[derive(Debug, Clone, Copy)]
struct TradeEvent {
    id: u64,
    price: u64,
    qty: u64,
    buy: bool,
    ts_ms: i64,
}

#[derive(Debug, Clone)]
enum Event {
    Depth(Arc<Depth>),
    Trade(TradeEvent),
}

/// xorshift64: enough randomness for a book, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

struct MarketState {
    book: Book,
    last_id: u64,
    next_trade: u64,
    rng: Rng,
}

struct Market {
    state: Mutex<MarketState>,
    events: broadcast::Sender<Event>,
}

impl Market {
    fn new(id: MarketId) -> Market {
        let (seed, last_id, next_trade) = id.start();
        let mut rng = Rng(seed);
        let mut book = Book::default();
        for k in 0..SLOTS {
            for (side, price) in [(&mut book.bids, MID - 1 - k), (&mut book.asks, MID + 1 + k)] {
                if !rng.next().is_multiple_of(5) {
                    side.insert(price, 1 + rng.next() % 5000);
                }
            }
        }
        Market {
            state: Mutex::new(MarketState {
                book,
                last_id,
                next_trade,
                rng,
            }),
            events: broadcast::channel(4096).0,
        }
    }

    /// One tick: a few levels change (and a trade when `trade`), broadcast under the lock.
    fn step(&self, trade: bool) {
        let mut guard = self.state.lock().unwrap();
        let st = &mut *guard;
        let mut changes = Vec::new();
        let mut touched = HashSet::new();
        for _ in 0..1 + st.rng.next() % 3 {
            let bid = st.rng.next().is_multiple_of(2);
            let k = st.rng.next() % SLOTS;
            let price = if bid { MID - 1 - k } else { MID + 1 + k };
            if !touched.insert((bid, price)) {
                continue;
            }
            let side = if bid {
                &mut st.book.bids
            } else {
                &mut st.book.asks
            };
            let existed = side.contains_key(&price);
            // Levels come and go, but a side never runs thin.
            let qty = if existed && side.len() > 10 && st.rng.next().is_multiple_of(4) {
                0
            } else {
                1 + st.rng.next() % 5000
            };
            if qty == 0 {
                side.remove(&price);
            } else {
                side.insert(price, qty);
            }
            changes.push(Change {
                bid,
                price,
                qty,
                existed,
            });
        }
        let prev = st.last_id;
        st.last_id += changes.len() as u64;
        let depth = Depth {
            first: prev + 1,
            last: st.last_id,
            prev,
            ts_ms: now_ms(),
            changes,
        };
        // No receiver (nobody connected) is fine.
        let _ = self.events.send(Event::Depth(Arc::new(depth)));
        if trade {
            let buy = st.rng.next().is_multiple_of(2);
            let best = if buy {
                st.book.asks().next()
            } else {
                st.book.bids().next()
            };
            let event = TradeEvent {
                id: st.next_trade,
                price: best.map_or(MID, |(p, _)| p),
                qty: 1 + st.rng.next() % 200,
                buy,
                ts_ms: now_ms(),
            };
            st.next_trade += 1;
            let _ = self.events.send(Event::Trade(event));
        }
    }

    /// The book and the id of the last change in it.
    fn snapshot(&self) -> (Book, u64) {
        let st = self.state.lock().unwrap();
        (st.book.clone(), st.last_id)
    }
}

struct Shared {
    counters: Mutex<Counters>,
    /// Binance spot trades flow until the test stops them.
    spot_trades: AtomicBool,
    /// When the last Binance spot depth snapshot was served.
    spot_snapshot_at: Mutex<Option<Instant>>,
    /// When the last OKX spot book snapshot was served.
    okx_spot_snapshot_at: Mutex<Option<Instant>>,
    okx_swap_snapshot_at: Mutex<Option<Instant>>,
    markets: Vec<Market>,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            counters: Mutex::new(Counters::default()),
            spot_trades: AtomicBool::new(true),
            spot_snapshot_at: Mutex::new(None),
            okx_spot_snapshot_at: Mutex::new(None),
            okx_swap_snapshot_at: Mutex::new(None),
            markets: MarketId::ALL.into_iter().map(Market::new).collect(),
        }
    }

    fn market(&self, id: MarketId) -> &Market {
        &self.markets[MarketId::ALL.iter().position(|m| *m == id).unwrap()]
    }

    fn count<T>(&self, f: impl FnOnce(&mut Counters) -> T) -> T {
        f(&mut self.counters.lock().unwrap())
    }
}

async fn run_market(shared: Arc<Shared>, id: MarketId) {
    let mut tick = every(BOOK_EVERY);
    for n in 0u64.. {
        tick.tick().await;
        let trades = id != MarketId::BinanceSpot || shared.spot_trades.load(Ordering::SeqCst);
        shared.market(id).step(n % 2 == 1 && trades);
    }
}

// Each venue's way of writing a price and a quantity.

fn binance_px(ticks: u64) -> String {
    format!("{}.{}0000000", ticks / 10, ticks % 10)
}

fn binance_qty(lots: u64) -> String {
    format!("{}.{:03}00000", lots / 1000, lots % 1000)
}

fn okx_px(ticks: u64) -> String {
    format!("{}.{}", ticks / 10, ticks % 10)
}

/// OKX deletes a level with size "0".
fn okx_sz(lots: u64) -> String {
    match lots {
        0 => "0".to_string(),
        _ => format!("{}.{:03}", lots / 1000, lots % 1000),
    }
}

/// Deribit sends JSON numbers.
fn deribit_px(ticks: u64) -> f64 {
    ticks as f64 / 10.0
}

/// BTC-PERPETUAL amounts are USD, in tens.
fn deribit_amount(lots: u64) -> f64 {
    (lots * 10) as f64
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Funding happens every 8 h: the next boundary.
fn next_funding_ms() -> i64 {
    let eight_hours = 8 * 3_600_000;
    (now_ms() / eight_hours + 1) * eight_hours
}

/// An interval whose first tick is one period away, that never bursts to catch up.
fn every(period: Duration) -> Interval {
    let mut interval = interval_at(Instant::now() + period, period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

/// A deadline that may not be set (then it never comes).
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

// ---- connections ------------------------------------------------------------------------

async fn accept(listener: TcpListener, shared: Arc<Shared>, websocket: bool) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        if websocket {
            tokio::spawn(ws_connection(stream, shared));
        } else {
            tokio::spawn(http_connection(stream, shared));
        }
    }
}

type Ws = WebSocketStream<TcpStream>;

async fn ws_connection(stream: TcpStream, shared: Arc<Shared>) {
    let mut path = String::new();
    // The signature is tungstenite's: its error type is large, and rare.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        path = request.uri().path().to_string();
        Ok::<Response, ErrorResponse>(response)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let n = shared.count(|c| {
        let n = c.connections.entry(path.clone()).or_default();
        *n += 1;
        *n
    });
    let first = n == 1;
    match path.as_str() {
        BINANCE_SPOT_WS => binance(ws, shared, false, first).await,
        BINANCE_FUTURES_WS => binance(ws, shared, true, first).await,
        OKX_WS => okx(ws, shared, first).await,
        DERIBIT_WS => deribit(ws, shared, first).await,
        other => {
            shared.count(|c| c.refused.push(format!("websocket path {other}")));
            let mut ws = ws;
            let _ = ws.close(None).await;
        }
    }
}

/// A websocket's sending half, counting the data frames it sends.
struct Out {
    sink: SplitSink<Ws, Message>,
    shared: Arc<Shared>,
    venue: &'static str,
}

impl Out {
    /// A data frame of `stream`; false once the connection is gone.
    async fn data(&mut self, stream: &str, frame: Value) -> bool {
        if self
            .sink
            .send(Message::text(frame.to_string()))
            .await
            .is_err()
        {
            return false;
        }
        let key = format!("{} {stream}", self.venue);
        self.shared
            .count(|c| *c.frames.entry(key).or_default() += 1);
        true
    }

    /// An answer (to a subscription, a ping, a request): not counted as data.
    async fn reply(&mut self, frame: String) -> bool {
        self.sink.send(Message::text(frame)).await.is_ok()
    }

    fn refused(&self, what: String) {
        let line = format!("{}: {what}", self.venue);
        self.shared.count(|c| c.refused.push(line));
    }

    /// A broadcast receiver fell behind: the client will see a gap nobody scripted.
    fn lagged(&self, missed: u64) {
        let line = format!("UNSCRIPTED: {} fell {missed} events behind", self.venue);
        self.shared.count(|c| c.faults.push(line));
    }
}

// ---- Binance ----------------------------------------------------------------------------

/// A Binance combined-stream connection (`/stream`): `SUBSCRIBE` frames name streams
/// (`btcusdt@trade`), pushes are `{"stream": NAME, "data": EVENT}`.
async fn binance(ws: Ws, shared: Arc<Shared>, futures: bool, first: bool) {
    let (venue, id) = match futures {
        false => ("binance spot", MarketId::BinanceSpot),
        true => ("binance futures", MarketId::BinanceFutures),
    };
    let mut events = shared.market(id).events.subscribe();
    let (sink, mut frames) = ws.split();
    let mut out = Out {
        sink,
        shared: shared.clone(),
        venue,
    };
    let mut subscribed: BTreeSet<String> = BTreeSet::new();
    let mut ping = every(PING_EVERY);
    let mut slow = every(SLOW_EVERY);
    let mut slow_ticks = 0u64;
    // Spot's scripted faults, on its first connection only: the gap, then the close.
    let mut gap_at = (first && !futures).then(|| Instant::now() + FAULT_AFTER);
    let mut close_at = None;
    let mut skip_diff = false;
    let trade_stream = if futures {
        "btcusdt@aggTrade"
    } else {
        "btcusdt@trade"
    };
    loop {
        tokio::select! {
            frame = frames.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let answer = binance_request(text.as_str(), &mut subscribed, &out, futures);
                    if !out.reply(answer.to_string()).await {
                        return;
                    }
                }
                Some(Ok(Message::Pong(_))) => shared.count(|c| c.pongs += 1),
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            event = events.recv() => match event {
                Ok(Event::Depth(d)) => {
                    let Some(stream) = subscribed.iter().find(|s| s.starts_with("btcusdt@depth")).cloned() else {
                        continue;
                    };
                    if skip_diff {
                        // The scripted gap: this diff's ids never reach the client.
                        skip_diff = false;
                        let what = format!("binance spot: skipped the depth diff U={} u={}", d.first, d.last);
                        shared.count(|c| {
                            c.spot_gap_id = Some(d.last);
                            c.faults.push(what);
                        });
                        continue;
                    }
                    let data = binance_diff(&d, futures);
                    if !out.data(&stream, json!({"stream": stream, "data": data})).await {
                        return;
                    }
                }
                Ok(Event::Trade(t)) => {
                    if !subscribed.contains(trade_stream) {
                        continue;
                    }
                    let data = binance_trade(&t, futures);
                    if !out.data(trade_stream, json!({"stream": trade_stream, "data": data})).await {
                        return;
                    }
                    if !futures {
                        shared.count(|c| c.spot_trade_ids.push(t.id));
                    }
                }
                Err(RecvError::Lagged(n)) => out.lagged(n),
                Err(RecvError::Closed) => return,
            },
            _ = ping.tick() => {
                if out.sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
            _ = slow.tick(), if futures => {
                slow_ticks += 1;
                let mark = subscribed.iter().find(|s| s.starts_with("btcusdt@markPrice")).cloned();
                if let Some(stream) = mark {
                    let data = binance_mark_price();
                    if !out.data(&stream, json!({"stream": stream, "data": data})).await {
                        return;
                    }
                }
                let stream = "btcusdt@forceOrder";
                if slow_ticks.is_multiple_of(2) && subscribed.contains(stream) {
                    let data = binance_force_order(slow_ticks);
                    if !out.data(stream, json!({"stream": stream, "data": data})).await {
                        return;
                    }
                }
            }
            _ = until(gap_at) => {
                // Only once the client's book stands on a snapshot served a while ago: a diff
                // skipped before that would be covered by the snapshot and go unnoticed.
                let snapshot = *shared.spot_snapshot_at.lock().unwrap();
                if snapshot.is_some_and(|at| at.elapsed() >= Duration::from_secs(1)) {
                    gap_at = None;
                    skip_diff = true;
                    close_at = Some(Instant::now() + FAULT_AFTER);
                } else {
                    gap_at = Some(Instant::now() + Duration::from_millis(500));
                }
            }
            _ = until(close_at) => {
                // The scripted disconnect (Binance ends every connection at 24 h).
                let (_, book_id) = shared.market(id).snapshot();
                shared.count(|c| {
                    c.spot_close_id = Some(book_id);
                    c.spot_trades_before_close = Some(c.spot_trade_ids.len());
                    c.faults.push(format!("binance spot: closed the connection at book id {book_id}"));
                });
                let close = CloseFrame {
                    code: CloseCode::Away,
                    reason: "scripted disconnect".into(),
                };
                let _ = out.sink.send(Message::Close(Some(close))).await;
                // Let the client's Close come back, then drop the socket.
                let _ = timeout(Duration::from_secs(2), async {
                    while let Some(Ok(_)) = frames.next().await {}
                })
                .await;
                return;
            }
        }
    }
}

/// The streams served: spot `trade` and `depth`; futures `aggTrade`, `depth`, `markPrice`,
/// `forceOrder`. Update speeds are the documented suffixes.
fn binance_serves(stream: &str, futures: bool) -> bool {
    let common = ["btcusdt@depth", "btcusdt@depth@100ms"];
    let spot = ["btcusdt@trade"];
    let perpetual = [
        "btcusdt@aggTrade",
        "btcusdt@markPrice",
        "btcusdt@markPrice@1s",
        "btcusdt@forceOrder",
    ];
    common.contains(&stream)
        || (!futures && spot.contains(&stream))
        || (futures && perpetual.contains(&stream))
}

/// `{"method":"SUBSCRIBE","params":[..],"id":N}` → `{"result":null,"id":N}`.
fn binance_request(
    text: &str,
    subscribed: &mut BTreeSet<String>,
    out: &Out,
    futures: bool,
) -> Value {
    let Ok(request) = serde_json::from_str::<Value>(text) else {
        out.refused(format!("not JSON: {text}"));
        return json!({"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"});
    };
    let id = request["id"].clone();
    let params: Vec<String> = request["params"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect();
    match request["method"].as_str() {
        Some("SUBSCRIBE") => {
            for stream in params {
                if !binance_serves(&stream, futures) {
                    // Binance accepts any name and sends nothing for one it does not know.
                    out.refused(format!("SUBSCRIBE {stream}"));
                }
                subscribed.insert(stream);
            }
            json!({"result": null, "id": id})
        }
        Some("UNSUBSCRIBE") => {
            for stream in params {
                subscribed.remove(&stream);
            }
            json!({"result": null, "id": id})
        }
        Some("LIST_SUBSCRIPTIONS") => json!({"result": subscribed, "id": id}),
        other => {
            out.refused(format!("method {other:?}"));
            json!({"error": {"code": 2, "msg": "Invalid request: unknown method"}, "id": id})
        }
    }
}

fn binance_levels(changes: &[Change], bid: bool) -> Vec<Value> {
    changes
        .iter()
        .filter(|c| c.bid == bid)
        .map(|c| json!([binance_px(c.price), binance_qty(c.qty)]))
        .collect()
}

/// `depthUpdate`: spot `U`, `u`; futures also `T` and `pu` (the previous diff's `u`).
fn binance_diff(d: &Depth, futures: bool) -> Value {
    let mut event = json!({
        "e": "depthUpdate",
        "E": d.ts_ms,
        "s": "BTCUSDT",
        "U": d.first,
        "u": d.last,
        "b": binance_levels(&d.changes, true),
        "a": binance_levels(&d.changes, false),
    });
    if futures {
        event["T"] = json!(d.ts_ms);
        event["pu"] = json!(d.prev);
    }
    event
}

/// Spot `trade` (`t`) or futures `aggTrade` (`a`, `f`, `l`). `m`: the buyer is the maker.
fn binance_trade(t: &TradeEvent, futures: bool) -> Value {
    let (price, qty) = (binance_px(t.price), binance_qty(t.qty));
    if futures {
        json!({
            "e": "aggTrade", "E": t.ts_ms, "s": "BTCUSDT", "a": t.id, "p": price, "q": qty,
            "f": t.id * 2, "l": t.id * 2 + 1, "T": t.ts_ms, "m": !t.buy,
        })
    } else {
        json!({
            "e": "trade", "E": t.ts_ms, "s": "BTCUSDT", "t": t.id, "p": price, "q": qty,
            "T": t.ts_ms, "m": !t.buy, "M": true,
        })
    }
}

fn binance_mark_price() -> Value {
    json!({
        "e": "markPriceUpdate", "E": now_ms(), "s": "BTCUSDT",
        "p": binance_px(MID + 3), "i": binance_px(MID - 2), "P": binance_px(MID + 5),
        "r": "0.00010000", "T": next_funding_ms(),
    })
}

fn binance_force_order(n: u64) -> Value {
    let ts = now_ms();
    let qty = binance_qty(10 + n % 90);
    json!({
        "e": "forceOrder", "E": ts,
        "o": {
            "s": "BTCUSDT", "S": if n.is_multiple_of(4) { "SELL" } else { "BUY" }, "o": "LIMIT",
            "f": "IOC", "q": qty, "p": binance_px(MID - 40), "ap": binance_px(MID - 38),
            "X": "FILLED", "l": qty, "z": qty, "T": ts,
        }
    })
}

// ---- OKX --------------------------------------------------------------------------------

const OKX_SPOT: &str = "BTC-USDT";
const OKX_SWAP: &str = "BTC-USDT-SWAP";
const OKX_CONN_ID: &str = "a4d3ae55";

/// The (channel, instId or instType) subscriptions served.
fn okx_serves(channel: &str, key: &str) -> bool {
    matches!(
        (channel, key),
        ("trades" | "books", OKX_SPOT | OKX_SWAP)
            | ("funding-rate" | "open-interest", OKX_SWAP)
            | ("mark-price", OKX_SPOT | OKX_SWAP)
            | ("index-tickers", OKX_SPOT)
            | ("liquidation-orders", "SWAP")
    )
}

/// OKX v5 public: `{"op":"subscribe","args":[{"channel":..,"instId":..}]}`, one event answer
/// per arg; pushes are `{"arg":{..},"data":[..]}`, books with an `action`.
async fn okx(ws: Ws, shared: Arc<Shared>, first: bool) {
    let mut spot_events = shared.market(MarketId::OkxSpot).events.subscribe();
    let mut swap_events = shared.market(MarketId::OkxSwap).events.subscribe();
    let (sink, mut frames) = ws.split();
    let mut out = Out {
        sink,
        shared: shared.clone(),
        venue: "okx",
    };
    let mut subscribed: BTreeSet<(String, String)> = BTreeSet::new();
    // Per subscribed book: its seqId when subscribed; the updates after it follow.
    let mut books: HashMap<String, u64> = HashMap::new();
    let mut booked_before: HashSet<String> = HashSet::new();
    let mut slow = every(SLOW_EVERY);
    let mut slow_ticks = 0u64;
    // The scripted gap, on the first connection's spot book only.
    let mut gap_at = first.then(|| Instant::now() + FAULT_AFTER);
    let mut skip_update = false;
    // And one swap update with a wrong non-zero checksum, as a mirror that still sends
    // checksums would (the current exchange sends 0).
    let mut bad_checksum_at = first.then(|| Instant::now() + FAULT_AFTER);
    let mut bad_checksum = false;
    loop {
        tokio::select! {
            frame = frames.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                    Some(Ok(_)) => continue,
                };
                // The keepalive: plain text both ways.
                if text.as_str() == "ping" {
                    if !out.reply("pong".into()).await {
                        return;
                    }
                    continue;
                }
                let Ok(request) = serde_json::from_str::<Value>(text.as_str()) else {
                    out.refused(format!("not JSON: {}", text.as_str()));
                    let error = json!({"event": "error", "code": "60012", "msg": format!("Invalid request: {}", text.as_str()), "connId": OKX_CONN_ID});
                    if !out.reply(error.to_string()).await {
                        return;
                    }
                    continue;
                };
                let op = request["op"].as_str().unwrap_or_default().to_string();
                for arg in request["args"].as_array().cloned().unwrap_or_default() {
                    let channel = arg["channel"].as_str().unwrap_or_default().to_string();
                    let key = arg["instId"].as_str().or(arg["instType"].as_str()).unwrap_or_default().to_string();
                    if !okx_serves(&channel, &key) || !matches!(op.as_str(), "subscribe" | "unsubscribe") {
                        out.refused(format!("{op} {arg}"));
                        let msg = format!("Wrong URL or channel:{channel},instId:{key} doesn't exist. Please use the correct URL, channel and parameters referring to API document.");
                        let error = json!({"event": "error", "code": "60018", "msg": msg, "connId": OKX_CONN_ID});
                        if !out.reply(error.to_string()).await {
                            return;
                        }
                        continue;
                    }
                    let answer = json!({"event": op, "arg": arg, "connId": OKX_CONN_ID});
                    if !out.reply(answer.to_string()).await {
                        return;
                    }
                    if op == "unsubscribe" {
                        subscribed.remove(&(channel.clone(), key.clone()));
                        if channel == "books" {
                            books.remove(&key);
                        }
                        continue;
                    }
                    subscribed.insert((channel.clone(), key.clone()));
                    if channel == "books" {
                        // No snapshot (OKX's since August 2026): updates from now on, the
                        // client fetches the snapshot over REST.
                        if !booked_before.insert(key.clone()) {
                            shared.count(|c| c.okx_resubscriptions += 1);
                        }
                        let (_, seq) = shared.market(okx_market(&key)).snapshot();
                        books.insert(key.clone(), seq);
                    }
                }
            }
            event = spot_events.recv() => {
                let frame = match event {
                    Ok(event) => okx_event(OKX_SPOT, &event, &subscribed, &books, &mut skip_update, &shared),
                    Err(RecvError::Lagged(n)) => { out.lagged(n); None }
                    Err(RecvError::Closed) => return,
                };
                if let Some((stream, frame)) = frame {
                    if !out.data(&stream, frame).await {
                        return;
                    }
                }
            }
            event = swap_events.recv() => {
                let frame = match event {
                    Ok(event) => {
                        let frame = okx_event(OKX_SWAP, &event, &subscribed, &books, &mut false, &shared);
                        match frame {
                            Some((stream, mut frame)) if bad_checksum && stream.starts_with("books") => {
                                bad_checksum = false;
                                frame["data"][0]["checksum"] = json!(123_456_789);
                                shared.count(|c| {
                                    c.okx_bad_checksums += 1;
                                    c.faults.push("okx: a BTC-USDT-SWAP books update with a wrong checksum".into());
                                });
                                Some((stream, frame))
                            }
                            frame => frame,
                        }
                    }
                    Err(RecvError::Lagged(n)) => { out.lagged(n); None }
                    Err(RecvError::Closed) => return,
                };
                if let Some((stream, frame)) = frame {
                    if !out.data(&stream, frame).await {
                        return;
                    }
                }
            }
            _ = slow.tick() => {
                slow_ticks += 1;
                for (channel, key) in subscribed.clone() {
                    let Some(frame) = okx_slow(&channel, &key, slow_ticks) else {
                        continue;
                    };
                    if !out.data(&format!("{channel} {key}"), frame).await {
                        return;
                    }
                }
            }
            _ = until(bad_checksum_at) => {
                let snapshot = *shared.okx_swap_snapshot_at.lock().unwrap();
                if snapshot.is_some_and(|at| at.elapsed() >= Duration::from_secs(1)) {
                    bad_checksum_at = None;
                    bad_checksum = true;
                } else {
                    bad_checksum_at = Some(Instant::now() + Duration::from_millis(500));
                }
            }
            _ = until(gap_at) => {
                // Only once the client's spot book stands on a REST snapshot served a while
                // ago: an update skipped before that would be covered by the snapshot.
                let snapshot = *shared.okx_spot_snapshot_at.lock().unwrap();
                if snapshot.is_some_and(|at| at.elapsed() >= Duration::from_secs(1)) {
                    gap_at = None;
                    skip_update = true;
                } else {
                    gap_at = Some(Instant::now() + Duration::from_millis(500));
                }
            }
        }
    }
}

fn okx_market(inst_id: &str) -> MarketId {
    match inst_id {
        OKX_SPOT => MarketId::OkxSpot,
        _ => MarketId::OkxSwap,
    }
}

fn okx_levels<'a>(levels: impl Iterator<Item = (u64, u64)> + 'a) -> Vec<Value> {
    // [price, size, liquidated orders (deprecated, "0"), orders at the price]
    levels
        .map(|(p, q)| json!([okx_px(p), okx_sz(q), "0", (1 + q % 7).to_string()]))
        .collect()
}

/// The push a market event makes on this connection, if it subscribed to it.
fn okx_event(
    inst_id: &str,
    event: &Event,
    subscribed: &BTreeSet<(String, String)>,
    books: &HashMap<String, u64>,
    skip: &mut bool,
    shared: &Shared,
) -> Option<(String, Value)> {
    match event {
        Event::Depth(d) => {
            let since = *books.get(inst_id)?;
            if d.last <= since {
                // Before the subscription.
                return None;
            }
            if *skip {
                // The scripted gap: the next update's prevSeqId is this one's seqId.
                *skip = false;
                let what = format!(
                    "okx: skipped the {inst_id} books update prevSeqId {} seqId {}",
                    d.prev, d.last
                );
                shared.count(|c| {
                    c.okx_gap_id = Some(d.last);
                    c.faults.push(what);
                });
                return None;
            }
            let side = |bid: bool| {
                okx_levels(
                    d.changes
                        .iter()
                        .filter(move |c| c.bid == bid)
                        .map(|c| (c.price, c.qty)),
                )
            };
            let frame = json!({
                "arg": {"channel": "books", "instId": inst_id},
                "action": "update",
                "data": [{
                    "asks": side(false),
                    "bids": side(true),
                    "ts": d.ts_ms.to_string(),
                    // Deprecated: always 0 since June 2026.
                    "checksum": 0,
                    "prevSeqId": d.prev,
                    "seqId": d.last,
                }],
            });
            Some((format!("books {inst_id}"), frame))
        }
        Event::Trade(t) => {
            if !subscribed.contains(&("trades".to_string(), inst_id.to_string())) {
                return None;
            }
            let frame = json!({
                "arg": {"channel": "trades", "instId": inst_id},
                "data": [{
                    "instId": inst_id, "tradeId": t.id.to_string(), "px": okx_px(t.price),
                    "sz": okx_sz(t.qty), "side": if t.buy { "buy" } else { "sell" },
                    "ts": t.ts_ms.to_string(), "count": "1",
                }],
            });
            Some((format!("trades {inst_id}"), frame))
        }
    }
}

/// The slow channels, each at about its documented pace (faster where the real one is
/// minutes apart): mark price and index every second, open interest and liquidations every
/// 2 s, funding every 3 s.
fn okx_slow(channel: &str, key: &str, tick: u64) -> Option<Value> {
    let ts = now_ms().to_string();
    let arg = match channel {
        "liquidation-orders" => json!({"channel": channel, "instType": key}),
        _ => json!({"channel": channel, "instId": key}),
    };
    let inst_type = if key == OKX_SWAP { "SWAP" } else { "MARGIN" };
    let data = match channel {
        "mark-price" => {
            json!({"instType": inst_type, "instId": key, "markPx": okx_px(MID + 3), "ts": ts})
        }
        "index-tickers" => json!({
            "instId": key, "idxPx": okx_px(MID - 2), "high24h": okx_px(MID + 9000),
            "low24h": okx_px(MID - 9000), "open24h": okx_px(MID), "sodUtc0": okx_px(MID),
            "sodUtc8": okx_px(MID), "ts": ts,
        }),
        "open-interest" if tick.is_multiple_of(2) => json!({
            "instId": key, "instType": "SWAP", "oi": "2216113.01", "oiCcy": "22161.1301",
            "oiUsd": "1440478234.5", "ts": ts,
        }),
        "funding-rate" if tick.is_multiple_of(3) => json!({
            "fundingRate": "0.0001013212121212", "fundingTime": next_funding_ms().to_string(),
            "instId": key, "instType": "SWAP", "method": "current_period",
            "maxFundingRate": "0.00375", "minFundingRate": "-0.00375", "nextFundingRate": "",
            "nextFundingTime": (next_funding_ms() + 8 * 3_600_000).to_string(),
            "premium": "0.0000512", "settFundingRate": "0.0000823", "settState": "settled",
            "ts": ts,
        }),
        "liquidation-orders" if tick.is_multiple_of(2) => json!({
            "details": [{
                "bkLoss": "0", "bkPx": okx_px(MID - 40), "ccy": "", "posSide": "long",
                "side": "sell", "sz": (1 + tick % 20).to_string(), "ts": ts,
            }],
            "instFamily": "BTC-USDT", "instId": OKX_SWAP, "instType": "SWAP", "uly": "BTC-USDT",
        }),
        _ => return None,
    };
    Some(json!({"arg": arg, "data": [data]}))
}

// ---- Deribit ----------------------------------------------------------------------------

const DERIBIT_TRADES: &str = "trades.BTC-PERPETUAL.100ms";
const DERIBIT_BOOK: &str = "book.BTC-PERPETUAL.100ms";
const DERIBIT_DVOL: &str = "deribit_volatility_index.btc_usd";

fn rpc_result(id: &Value, result: Value) -> String {
    let us = now_ms() * 1000;
    json!({
        "jsonrpc": "2.0", "id": id, "result": result,
        "usIn": us, "usOut": us + 15, "usDiff": 15, "testnet": false,
    })
    .to_string()
}

fn notification(channel: &str, data: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}})
}

/// Deribit's JSON-RPC 2.0 websocket: `public/set_heartbeat`, `public/subscribe`,
/// `public/unsubscribe`, `public/test`; data as `subscription` notifications.
async fn deribit(ws: Ws, shared: Arc<Shared>, first: bool) {
    let mut events = shared.market(MarketId::Deribit).events.subscribe();
    let (sink, mut frames) = ws.split();
    let mut out = Out {
        sink,
        shared: shared.clone(),
        venue: "deribit",
    };
    let mut subscribed: BTreeSet<String> = BTreeSet::new();
    // The change_id of the book snapshot sent; changes after it follow.
    let mut book_since: Option<u64> = None;
    let mut booked_before = false;
    let mut test_at: Option<Instant> = None;
    let mut test_sent = false;
    let mut slow = every(SLOW_EVERY);
    let mut fault_at = first.then(|| Instant::now() + FAULT_AFTER);
    let mut drop_change = false;
    loop {
        tokio::select! {
            frame = frames.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                    Some(Ok(_)) => continue,
                };
                let Ok(request) = serde_json::from_str::<Value>(text.as_str()) else {
                    out.refused(format!("not JSON: {}", text.as_str()));
                    continue;
                };
                let id = request["id"].clone();
                let channels: Vec<String> = request["params"]["channels"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect();
                let method = request["method"].as_str().unwrap_or_default();
                let mut snapshot = false;
                let answer = match method {
                    "public/set_heartbeat" => {
                        if !test_sent {
                            test_at = Some(Instant::now() + TEST_REQUEST_AFTER);
                        }
                        rpc_result(&id, json!("ok"))
                    }
                    "public/test" => {
                        shared.count(|c| c.deribit_tests += 1);
                        rpc_result(&id, json!({"version": "1.2.26"}))
                    }
                    "public/subscribe" => {
                        let mut accepted = Vec::new();
                        for channel in channels {
                            if ![DERIBIT_TRADES, DERIBIT_BOOK, DERIBIT_DVOL].contains(&channel.as_str()) {
                                // Left out of the result: Deribit's way of refusing one.
                                out.refused(format!("public/subscribe {channel}"));
                                continue;
                            }
                            if channel == DERIBIT_BOOK {
                                if booked_before {
                                    shared.count(|c| c.deribit_resubscriptions += 1);
                                }
                                booked_before = true;
                                snapshot = true;
                            }
                            subscribed.insert(channel.clone());
                            accepted.push(channel);
                        }
                        rpc_result(&id, json!(accepted))
                    }
                    "public/unsubscribe" => {
                        let removed: Vec<String> = channels.into_iter().filter(|c| subscribed.remove(c)).collect();
                        if !subscribed.contains(DERIBIT_BOOK) {
                            book_since = None;
                        }
                        rpc_result(&id, json!(removed))
                    }
                    other => {
                        out.refused(format!("method {other:?}"));
                        json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "Method not found"}}).to_string()
                    }
                };
                if !out.reply(answer).await {
                    return;
                }
                if snapshot {
                    // Every book subscription starts with a snapshot.
                    let (book, change_id) = shared.market(MarketId::Deribit).snapshot();
                    book_since = Some(change_id);
                    if !out.data(DERIBIT_BOOK, notification(DERIBIT_BOOK, deribit_snapshot(&book, change_id))).await {
                        return;
                    }
                }
            }
            event = events.recv() => match event {
                Ok(Event::Depth(d)) => {
                    if book_since.is_none_or(|since| d.last <= since) {
                        continue;
                    }
                    if drop_change {
                        // The scripted fault: the next change's prev_change_id points at this one.
                        drop_change = false;
                        let what = format!("deribit: dropped the book change {}", d.last);
                        shared.count(|c| c.faults.push(what));
                        continue;
                    }
                    if !out.data(DERIBIT_BOOK, notification(DERIBIT_BOOK, deribit_change(&d))).await {
                        return;
                    }
                }
                Ok(Event::Trade(t)) => {
                    if !subscribed.contains(DERIBIT_TRADES) {
                        continue;
                    }
                    if !out.data(DERIBIT_TRADES, notification(DERIBIT_TRADES, deribit_trade(&t))).await {
                        return;
                    }
                }
                Err(RecvError::Lagged(n)) => out.lagged(n),
                Err(RecvError::Closed) => return,
            },
            _ = slow.tick() => {
                if subscribed.contains(DERIBIT_DVOL) {
                    let data = json!({"volatility": 52.37, "timestamp": now_ms(), "index_name": "btc_usd"});
                    if !out.data(DERIBIT_DVOL, notification(DERIBIT_DVOL, data)).await {
                        return;
                    }
                }
            }
            _ = until(test_at) => {
                // Once per connection: the client must answer with public/test.
                test_at = None;
                test_sent = true;
                let request = json!({"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}});
                if !out.reply(request.to_string()).await {
                    return;
                }
            }
            _ = until(fault_at) => {
                fault_at = None;
                drop_change = true;
            }
        }
    }
}

fn deribit_snapshot(book: &Book, change_id: u64) -> Value {
    let side = |levels: Vec<(u64, u64)>| -> Vec<Value> {
        levels
            .into_iter()
            .map(|(p, q)| json!(["new", deribit_px(p), deribit_amount(q)]))
            .collect()
    };
    json!({
        "type": "snapshot", "timestamp": now_ms(), "instrument_name": "BTC-PERPETUAL",
        "change_id": change_id,
        "bids": side(book.bids().collect()),
        "asks": side(book.asks().collect()),
    })
}

fn deribit_change(d: &Depth) -> Value {
    let side = |bid: bool| -> Vec<Value> {
        d.changes
            .iter()
            .filter(|c| c.bid == bid)
            .map(|c| {
                let action = match (c.qty, c.existed) {
                    (0, _) => "delete",
                    (_, true) => "change",
                    (_, false) => "new",
                };
                json!([action, deribit_px(c.price), deribit_amount(c.qty)])
            })
            .collect()
    };
    json!({
        "type": "change", "timestamp": d.ts_ms, "prev_change_id": d.prev,
        "instrument_name": "BTC-PERPETUAL", "change_id": d.last,
        "bids": side(true), "asks": side(false),
    })
}

fn deribit_trade(t: &TradeEvent) -> Value {
    let price = deribit_px(t.price);
    json!([{
        "trade_seq": t.id, "trade_id": t.id.to_string(), "timestamp": t.ts_ms,
        "tick_direction": 0, "state": "open", "price": price, "mark_price": price,
        "index_price": price, "instrument_name": "BTC-PERPETUAL",
        "direction": if t.buy { "buy" } else { "sell" }, "amount": deribit_amount(t.qty),
    }])
}

// ---- REST -------------------------------------------------------------------------------

/// `GET /api/v5/market/books?instId=..&sz=..`: the book as it stands between two broadcasts
/// (taken under the market's lock), with the seqId of the last update in it. OKX answers its
/// errors with a `code` and `msg` and no data.
fn okx_books(shared: &Shared, params: &HashMap<&str, &str>) -> (&'static str, String) {
    let error = |code: &str, msg: &str| {
        let line = format!("okx: GET books {params:?}: {code} {msg}");
        shared.count(|c| c.refused.push(line));
        let body = json!({"code": code, "msg": msg, "data": []});
        ("200 OK", body.to_string())
    };
    let inst_id = params.get("instId").copied().unwrap_or_default();
    if ![OKX_SPOT, OKX_SWAP].contains(&inst_id) {
        return error("51001", "Instrument ID does not exist");
    }
    // At most 400 a side; 1 when not asked.
    let sz = match params.get("sz").map(|s| s.parse::<usize>()) {
        None => 1,
        Some(Ok(sz @ 1..=400)) => sz,
        Some(_) => return error("51000", "Parameter sz error"),
    };
    let (book, seq) = shared.market(okx_market(inst_id)).snapshot();
    if inst_id == OKX_SPOT {
        *shared.okx_spot_snapshot_at.lock().unwrap() = Some(Instant::now());
    } else {
        *shared.okx_swap_snapshot_at.lock().unwrap() = Some(Instant::now());
    }
    shared.count(|c| *c.okx_snapshots.entry(inst_id.to_string()).or_default() += 1);
    let body = json!({
        "code": "0",
        "msg": "",
        "data": [{
            "asks": okx_levels(book.asks().take(sz)),
            "bids": okx_levels(book.bids().take(sz)),
            "ts": now_ms().to_string(),
            "seqId": seq,
        }],
    });
    ("200 OK", body.to_string())
}

/// One request per connection (`Connection: close`): enough for snapshots and polls.
async fn http_connection(mut stream: TcpStream, shared: Arc<Shared>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let n = stream.read(&mut buf).await?;
            head.extend_from_slice(&buf[..n]);
            if n == 0 || head.windows(4).any(|w| w == b"\r\n\r\n") || head.len() > 65536 {
                return Ok::<(), std::io::Error>(());
            }
        }
    };
    if !matches!(timeout(Duration::from_secs(10), read).await, Ok(Ok(()))) {
        return;
    }
    let text = String::from_utf8_lossy(&head);
    let target = text.split_whitespace().nth(1).unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    shared.count(|c| *c.rest.entry(path.to_string()).or_default() += 1);
    let (status, body) = rest(&shared, path, query);
    if !status.starts_with("200") {
        shared.count(|c| c.refused.push(format!("GET {target}: {status}")));
    }
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Binance's REST: depth snapshots of both markets, and the futures data the collector polls;
/// OKX's: book snapshots.
fn rest(shared: &Shared, path: &str, query: &str) -> (&'static str, String) {
    let params: HashMap<&str, &str> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    if path == OKX_BOOKS {
        return okx_books(shared, &params);
    }
    let error =
        |status, code: i64, msg: &str| (status, json!({"code": code, "msg": msg}).to_string());
    if params.get("symbol") != Some(&"BTCUSDT") && path.starts_with("/binance/") {
        return error("400 Bad Request", -1121, "Invalid symbol.");
    }
    let market = match path {
        BINANCE_SPOT_DEPTH => Some(MarketId::BinanceSpot),
        BINANCE_FUTURES_DEPTH => Some(MarketId::BinanceFutures),
        _ => None,
    };
    if let Some(id) = market {
        let limit = params
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or(100);
        let (book, last_update_id) = shared.market(id).snapshot();
        if id == MarketId::BinanceSpot {
            *shared.spot_snapshot_at.lock().unwrap() = Some(Instant::now());
        }
        let levels = |side: Vec<(u64, u64)>| -> Vec<Value> {
            side.into_iter()
                .take(limit)
                .map(|(p, q)| json!([binance_px(p), binance_qty(q)]))
                .collect()
        };
        let mut body = json!({
            "lastUpdateId": last_update_id,
            "bids": levels(book.bids().collect()),
            "asks": levels(book.asks().collect()),
        });
        if id == MarketId::BinanceFutures {
            body["E"] = json!(now_ms());
            body["T"] = json!(now_ms());
        }
        return ("200 OK", body.to_string());
    }
    let Some(endpoint) = path.strip_prefix(FUTURES_DATA) else {
        return error("404 Not Found", -1, "no such path on the test exchange");
    };
    if !matches!(
        params.get("period"),
        Some(&("5m" | "15m" | "30m" | "1h" | "2h" | "4h" | "6h" | "12h" | "1d"))
    ) {
        return error(
            "400 Bad Request",
            -1102,
            "Mandatory parameter 'period' was not sent, was empty/null, or malformed.",
        );
    }
    // The start of the current 5-minute period, quoted as Binance's examples quote it.
    let period = 300_000;
    let timestamp = (now_ms() / period * period).to_string();
    let row = match endpoint {
        "openInterestHist" => json!({
            "symbol": "BTCUSDT", "sumOpenInterest": "80123.45600000",
            "sumOpenInterestValue": "5208024640.00000000", "CMCCirculatingSupply": "19700000.000",
            "timestamp": timestamp,
        }),
        "topLongShortPositionRatio" => json!({
            "symbol": "BTCUSDT", "longShortRatio": "1.4342", "longAccount": "0.5892",
            "shortAccount": "0.4108", "timestamp": timestamp,
        }),
        "globalLongShortAccountRatio" => json!({
            "symbol": "BTCUSDT", "longShortRatio": "1.8105", "longAccount": "0.6442",
            "shortAccount": "0.3558", "timestamp": timestamp,
        }),
        _ => return error("404 Not Found", -1, "no such path on the test exchange"),
    };
    ("200 OK", json!([row]).to_string())
}
