use super::*;
use crate::pipeline::message::Orderbook;
use crate::pipeline::source::exchanges::Urls;

const NOW: i64 = 1_700_000_000_000;

macro_rules! fixture {
    ($name:literal) => {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/exchanges/binance/",
            $name
        ))
        .unwrap()
    };
}

fn plan(symbols: &[&str], types: &[DataType]) -> VenuePlan {
    VenuePlan {
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
        types: types.to_vec(),
        book_depth: 2,
        urls: Urls {
            ws: "ws://spot.test/stream".into(),
            rest: "http://spot.test".into(),
            futures_ws: "ws://futures.test/stream".into(),
            futures_rest: "http://futures.test/".into(),
        },
    }
}

fn feed_of(plan: &VenuePlan, name: &str) -> Box<dyn Feed> {
    let (feeds, _) = feeds(plan);
    let mut feed = feeds
        .into_iter()
        .find(|f| f.name() == name)
        .unwrap_or_else(|| panic!("no feed {name}"));
    feed.on_connect(NOW);
    feed
}

fn spot() -> Box<dyn Feed> {
    feed_of(
        &plan(&["BTC-USDT", "ETH-USDT"], &DataType::ALL),
        "binance spot",
    )
}

fn perpetual() -> Box<dyn Feed> {
    feed_of(
        &plan(&["BTC-USDT", "ETH-USDT"], &DataType::ALL),
        "binance perpetual",
    )
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// The fixture diff with other ids (spot: `pu` None).
fn diff(fixture: &str, first: u64, last: u64, prev: Option<u64>) -> String {
    let mut frame = json(fixture);
    frame["data"]["U"] = first.into();
    frame["data"]["u"] = last.into();
    if let Some(prev) = prev {
        frame["data"]["pu"] = prev.into();
    }
    frame.to_string()
}

fn with_levels(frame: &str, bids: Value, asks: Value) -> String {
    let mut frame = json(frame);
    frame["data"]["b"] = bids;
    frame["data"]["a"] = asks;
    frame.to_string()
}

fn snapshot_with_id(fixture: &str, id: u64) -> String {
    let mut snapshot = json(fixture);
    snapshot["lastUpdateId"] = id.into();
    snapshot.to_string()
}

fn book_of(message: &MarketMessage) -> &Orderbook {
    match &message.data {
        MarketData::Orderbook(book) => book,
        other => panic!("not a book: {other:?}"),
    }
}

fn d(s: &str) -> Decimal8 {
    s.parse().unwrap()
}

fn is_gap(action: &Action, stream: &str, words: &str) -> bool {
    matches!(action, Action::Gap { stream: s, what } if s == stream && what.contains(words))
}

fn is_problem(action: &Action, stream: &str, words: &str) -> bool {
    matches!(action, Action::Problem { stream: s, what } if s == stream && what.contains(words))
}

const SPOT_BOOK: &str = "orderbook.binance.spot.BTC-USDT";
const PERP_BOOK: &str = "orderbook.binance.perpetual.BTC-USDT";

fn spot_fetch() -> Action {
    Action::FetchSnapshot {
        key: "spot:BTCUSDT".into(),
        url: "http://spot.test/api/v3/depth?symbol=BTCUSDT&limit=1000".into(),
    }
}

fn perp_fetch() -> Action {
    Action::FetchSnapshot {
        key: "perpetual:BTCUSDT".into(),
        url: "http://futures.test/fapi/v1/depth?symbol=BTCUSDT&limit=1000".into(),
    }
}

/// A spot feed whose BTC-USDT book is synced from the fixtures (last id 1027030).
fn synced_spot() -> Box<dyn Feed> {
    let mut feed = spot();
    assert_eq!(
        feed.on_text(&fixture!("spot_depth_update.json"), NOW),
        vec![spot_fetch()]
    );
    let actions = feed.on_snapshot(
        "spot:BTCUSDT",
        Ok(fixture!("spot_depth_snapshot.json")),
        NOW,
    );
    assert_eq!(actions, vec![Action::Seen(SPOT_BOOK.into())]);
    feed
}

/// A perpetual feed whose BTC-USDT book is synced from the fixtures (last id 8121345260).
fn synced_perpetual() -> Box<dyn Feed> {
    let mut feed = perpetual();
    assert_eq!(
        feed.on_text(&fixture!("futures_depth_update.json"), NOW),
        vec![perp_fetch()]
    );
    let actions = feed.on_snapshot(
        "perpetual:BTCUSDT",
        Ok(fixture!("futures_depth_snapshot.json")),
        NOW,
    );
    assert_eq!(actions, vec![Action::Seen(PERP_BOOK.into())]);
    feed
}

// ---- plan -----------------------------------------------------------------------------------

#[test]
fn two_connections_and_three_polls_per_symbol_for_every_type() {
    let (feeds, polls) = feeds(&plan(&["BTC-USDT", "ETH-USDT"], &DataType::ALL));
    let names: Vec<String> = feeds.iter().map(|f| f.name()).collect();
    assert_eq!(names, ["binance spot", "binance perpetual"]);
    assert_eq!(feeds[0].url(), "ws://spot.test/stream");
    assert_eq!(feeds[1].url(), "ws://futures.test/stream");
    assert_eq!(feeds[0].send_interval(), Duration::from_millis(250));
    assert_eq!(feeds[1].send_interval(), Duration::from_millis(150));
    assert_eq!(
        feeds[0].max_lifetime(),
        Some(Duration::from_secs(23 * 3600 + 50 * 60))
    );
    assert_eq!(feeds[0].idle_ping(), None);
    assert_eq!(
        feeds[0].streams(),
        [
            "trade.binance.spot.BTC-USDT",
            "orderbook.binance.spot.BTC-USDT",
            "trade.binance.spot.ETH-USDT",
            "orderbook.binance.spot.ETH-USDT"
        ]
    );
    assert_eq!(
        feeds[1].streams(),
        [
            "trade.binance.perpetual.BTC-USDT",
            "orderbook.binance.perpetual.BTC-USDT",
            "funding_rate.binance.perpetual.BTC-USDT",
            "liquidation.binance.perpetual.BTC-USDT",
            "trade.binance.perpetual.ETH-USDT",
            "orderbook.binance.perpetual.ETH-USDT",
            "funding_rate.binance.perpetual.ETH-USDT",
            "liquidation.binance.perpetual.ETH-USDT"
        ]
    );
    let polled: Vec<(&str, &str)> = polls
        .iter()
        .map(|p| (p.stream.as_str(), p.url.as_str()))
        .collect();
    assert_eq!(
        polled,
        [
            (
                "open_interest.binance.perpetual.BTC-USDT",
                "http://futures.test/futures/data/openInterestHist?symbol=BTCUSDT&period=5m&limit=1"
            ),
            (
                "open_interest.binance.perpetual.ETH-USDT",
                "http://futures.test/futures/data/openInterestHist?symbol=ETHUSDT&period=5m&limit=1"
            ),
            (
                "lsr_top_position.binance.perpetual.BTC-USDT",
                "http://futures.test/futures/data/topLongShortPositionRatio?symbol=BTCUSDT&period=5m&limit=1"
            ),
            (
                "lsr_top_position.binance.perpetual.ETH-USDT",
                "http://futures.test/futures/data/topLongShortPositionRatio?symbol=ETHUSDT&period=5m&limit=1"
            ),
            (
                "lsr_all_account.binance.perpetual.BTC-USDT",
                "http://futures.test/futures/data/globalLongShortAccountRatio?symbol=BTCUSDT&period=5m&limit=1"
            ),
            (
                "lsr_all_account.binance.perpetual.ETH-USDT",
                "http://futures.test/futures/data/globalLongShortAccountRatio?symbol=ETHUSDT&period=5m&limit=1"
            ),
        ]
    );
    for poll in &polls {
        assert_eq!(poll.every, Duration::from_secs(30));
        assert_eq!(
            (
                poll.context.exchange.as_str(),
                poll.context.market_type.as_str()
            ),
            ("binance", "perpetual")
        );
        assert!(poll.stream.ends_with(&poll.context.symbol));
    }
}

#[test]
fn only_the_wanted_types_are_subscribed_or_polled() {
    let (feeds, polls) = feeds(&plan(&["BTC-USDT"], &[DataType::Trade]));
    assert_eq!(feeds.len(), 2);
    assert_eq!(feeds[0].streams(), ["trade.binance.spot.BTC-USDT"]);
    assert_eq!(feeds[1].streams(), ["trade.binance.perpetual.BTC-USDT"]);
    assert!(polls.is_empty());

    // Funding only: no spot connection at all.
    let (feeds, polls) = super::feeds(&plan(&["BTC-USDT"], &[DataType::FundingRate]));
    assert_eq!(feeds.len(), 1);
    assert_eq!(feeds[0].name(), "binance perpetual");
    assert!(polls.is_empty());

    let (feeds, polls) = super::feeds(&plan(&["BTC-USDT"], &[DataType::LsrAllAccount]));
    assert!(feeds.is_empty());
    assert_eq!(polls.len(), 1);

    let (feeds, polls) = super::feeds(&plan(&["BTC-USDT"], &[DataType::VolatilityIndex]));
    assert!(feeds.is_empty() && polls.is_empty());
    let (feeds, polls) = super::feeds(&plan(&[], &DataType::ALL));
    assert!(feeds.is_empty() && polls.is_empty());
}

#[test]
fn symbols_map_by_table_and_unusable_or_clashing_ones_are_skipped() {
    let plan = plan(
        &[
            "BTC-USDT",
            "btc-usdt",
            "BTCU-SDT",
            "BTC-USDT",
            "1000PEPE-USDT",
        ],
        &[DataType::Trade],
    );
    let (feeds, _) = feeds(&plan);
    assert_eq!(
        feeds[0].streams(),
        [
            "trade.binance.spot.BTC-USDT",
            "trade.binance.spot.1000PEPE-USDT"
        ]
    );
    let mut feed = feed_of(&plan, "binance spot");
    let mut frame = json(&fixture!("spot_trade.json"));
    frame["data"]["s"] = "1000PEPEUSDT".into();
    frame["data"]["p"] = "0.00001234".into();
    let actions = feed.on_text(&frame.to_string(), NOW);
    let [Action::Publish(m)] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    assert_eq!(m.symbol, "1000PEPE-USDT");
    assert_eq!(m.subject(), "trade.binance.spot.1000PEPE-USDT");
}

#[test]
fn subscribe_frames_carry_at_most_200_streams_each() {
    let mut feed = spot();
    let frames: Vec<Value> = feed.on_connect(NOW).iter().map(|f| json(f)).collect();
    assert_eq!(
        frames,
        [serde_json::json!({
            "method": "SUBSCRIBE",
            "params": ["btcusdt@trade", "btcusdt@depth@100ms", "ethusdt@trade", "ethusdt@depth@100ms"],
            "id": 1
        })]
    );
    let frames: Vec<Value> = perpetual()
        .on_connect(NOW)
        .iter()
        .map(|f| json(f))
        .collect();
    assert_eq!(
        frames[0]["params"],
        serde_json::json!([
            "btcusdt@aggTrade",
            "btcusdt@depth@100ms",
            "btcusdt@markPrice@1s",
            "btcusdt@forceOrder",
            "ethusdt@aggTrade",
            "ethusdt@depth@100ms",
            "ethusdt@markPrice@1s",
            "ethusdt@forceOrder"
        ])
    );

    let many: Vec<String> = (0..150).map(|n| format!("S{n}-USDT")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let mut feed = feed_of(
        &plan(&many, &[DataType::Trade, DataType::Orderbook]),
        "binance spot",
    );
    let frames: Vec<Value> = feed.on_connect(NOW).iter().map(|f| json(f)).collect();
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0]["params"].as_array().unwrap().len(), 200);
    assert_eq!(frames[1]["params"].as_array().unwrap().len(), 100);
    assert_eq!(
        (frames[0]["id"].as_u64(), frames[1]["id"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(frames[1]["params"][99], "s149usdt@depth@100ms");
}

#[test]
fn more_streams_than_one_connection_carries_go_on_more_connections() {
    let many: Vec<String> = (0..600).map(|n| format!("S{n}-USDT")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let (feeds, _) = feeds(&plan(&many, &[DataType::Trade, DataType::Orderbook]));
    let names: Vec<String> = feeds.iter().map(|f| f.name()).collect();
    assert_eq!(
        names,
        [
            "binance spot",
            "binance spot 2",
            "binance perpetual",
            "binance perpetual 2"
        ]
    );
    assert_eq!(feeds[0].streams().len(), 1024);
    assert_eq!(feeds[1].streams().len(), 176);
}

// ---- trades, funding, liquidations ----------------------------------------------------------

#[test]
fn a_spot_trade_is_a_sell_when_the_buyer_is_the_maker() {
    let actions = spot().on_text(&fixture!("spot_trade.json"), NOW);
    let expected = MarketMessage {
        exchange: "binance".into(),
        market_type: "spot".into(),
        symbol: "BTC-USDT".into(),
        ts_ms: 1672515782134,
        collected_ts_ms: NOW,
        data: MarketData::Trade(Trade {
            trade_id: "3366546765".into(),
            price: d("16547.15"),
            quantity: d("0.0025"),
            side: "sell".into(),
            is_maker: true,
            trade_ts_ms: 1672515782134,
        }),
        collector_id: None,
        seq: None,
    };
    assert_eq!(actions, vec![Action::Publish(expected)]);
}

#[test]
fn a_futures_agg_trade_is_a_trade_with_the_aggregate_id() {
    let actions = perpetual().on_text(&fixture!("futures_agg_trade.json"), NOW);
    let expected = message(
        "binance",
        "perpetual",
        "BTC-USDT",
        1672515782130,
        NOW,
        MarketData::Trade(Trade {
            trade_id: "2104539284".into(),
            price: d("16540.1"),
            quantity: d("0.015"),
            side: "buy".into(),
            is_maker: false,
            trade_ts_ms: 1672515782130,
        }),
    );
    assert_eq!(actions, vec![Action::Publish(expected)]);
    assert_eq!(
        perpetual().on_text(&fixture!("spot_trade.json"), NOW),
        vec![Action::Problem {
            stream: "binance perpetual".into(),
            what: "unknown event \"trade\"".into()
        }]
    );
}

#[test]
fn bare_payloads_parse_like_combined_ones() {
    let frame = json(&fixture!("spot_trade.json"));
    let bare = frame["data"].to_string();
    assert_eq!(
        spot().on_text(&bare, NOW),
        spot().on_text(&frame.to_string(), NOW)
    );
    // Without `s`, the combined stream's name tells the symbol.
    let mut frame = json(&fixture!("spot_trade.json"));
    frame["data"].as_object_mut().unwrap().remove("s");
    let actions = spot().on_text(&frame.to_string(), NOW);
    assert!(
        matches!(&actions[..], [Action::Publish(m)] if m.symbol == "BTC-USDT"),
        "{actions:?}"
    );
}

#[test]
fn mark_price_is_a_funding_rate_at_most_every_30_s() {
    let mut feed = perpetual();
    let frame = fixture!("mark_price_update.json");
    let expected = message(
        "binance",
        "perpetual",
        "BTC-USDT",
        1562305380000,
        NOW,
        MarketData::FundingRate(FundingRate {
            current_funding_rate: d("0.00038167"),
            mark_price: d("11794.15"),
            index_price: d("11784.62659091"),
            funding_ts_ms: 1562305380000,
            next_funding_ts_ms: 1562306400000,
        }),
    );
    assert_eq!(
        feed.on_text(&frame, NOW),
        vec![Action::Publish(expected.clone())]
    );
    let stream = "funding_rate.binance.perpetual.BTC-USDT";
    assert_eq!(
        feed.on_text(&frame, NOW + 1_000),
        vec![Action::Seen(stream.into())]
    );
    assert_eq!(
        feed.on_text(&frame, NOW + 29_999),
        vec![Action::Seen(stream.into())]
    );
    let later = feed.on_text(&frame, NOW + 30_000);
    assert!(matches!(&later[..], [Action::Publish(_)]), "{later:?}");
    // Each symbol has its own clock.
    let mut eth = json(&frame);
    eth["data"]["s"] = "ETHUSDT".into();
    let eth = feed.on_text(&eth.to_string(), NOW + 30_001);
    assert!(
        matches!(&eth[..], [Action::Publish(m)] if m.symbol == "ETH-USDT"),
        "{eth:?}"
    );
}

#[test]
fn force_order_is_a_liquidation_at_the_filled_price_and_quantity() {
    let mut feed = perpetual();
    let liquidation = |price: &str, quantity: &str| {
        message(
            "binance",
            "perpetual",
            "BTC-USDT",
            1568014460893,
            NOW,
            MarketData::Liquidation(Liquidation {
                side: "sell".into(),
                price: d(price),
                quantity: d(quantity),
                liquidation_ts_ms: 1568014460890,
            }),
        )
    };
    assert_eq!(
        feed.on_text(&fixture!("force_order.json"), NOW),
        vec![Action::Publish(liquidation("9910.5", "0.013"))]
    );
    // Nothing filled yet: the order's own price and quantity.
    let mut frame = json(&fixture!("force_order.json"));
    frame["data"]["o"]["ap"] = "0.00".into();
    frame["data"]["o"]["z"] = "".into();
    assert_eq!(
        feed.on_text(&frame.to_string(), NOW),
        vec![Action::Publish(liquidation("9910", "0.014"))]
    );
    frame["data"]["o"]["S"] = "BUY".into();
    let actions = feed.on_text(&frame.to_string(), NOW);
    assert!(
        matches!(&actions[..], [Action::Publish(m)] if matches!(&m.data, MarketData::Liquidation(l) if l.side == "buy"))
    );
    frame["data"]["o"]["S"] = "SIDEWAYS".into();
    let actions = feed.on_text(&frame.to_string(), NOW);
    assert!(
        is_problem(&actions[0], "liquidation.binance.perpetual.BTC-USDT", "o.S"),
        "{actions:?}"
    );
}

// ---- spot order book ------------------------------------------------------------------------

#[test]
fn spot_book_syncs_from_the_snapshot_and_the_diff_spanning_it() {
    let mut feed = spot();
    assert!(feed.books(NOW).is_empty());
    let first = fixture!("spot_depth_update.json");
    // A diff the snapshot holds already, then the fixture's (spanning the snapshot's id).
    let old = diff(&first, 1027000, 1027019, None);
    assert_eq!(feed.on_text(&old, NOW), vec![spot_fetch()]);
    assert_eq!(feed.on_text(&first, NOW), vec![]);
    assert!(feed.books(NOW).is_empty(), "not synced before the snapshot");
    let actions = feed.on_snapshot(
        "spot:BTCUSDT",
        Ok(fixture!("spot_depth_snapshot.json")),
        NOW,
    );
    assert_eq!(actions, vec![Action::Seen(SPOT_BOOK.into())]);

    let next = with_levels(
        &diff(&first, 1027031, 1027040, None),
        serde_json::json!([
            ["64999.50000000", "0.00000000"],
            ["64999.00000000", "4.00000000"]
        ]),
        serde_json::json!([]),
    );
    assert_eq!(
        feed.on_text(&next, NOW),
        vec![Action::Seen(SPOT_BOOK.into())]
    );
    let books = feed.books(NOW + 5);
    assert_eq!(books.len(), 1, "only BTC-USDT is synced");
    let message = &books[0];
    assert_eq!(message.subject(), SPOT_BOOK);
    assert_eq!(
        (message.ts_ms, message.collected_ts_ms),
        (1672515782136, NOW + 5)
    );
    let book = book_of(message);
    assert_eq!(book.last_update_id, 1027040);
    assert_eq!(book.depth_levels, 2);
    assert_eq!(
        book.bids,
        vec![[d("64999.99"), d("0.8")], [d("64999"), d("4")]]
    );
    assert_eq!(
        book.asks,
        vec![[d("65000"), d("0.6")], [d("65000.5"), d("1.1")]]
    );
}

#[test]
fn a_spot_diff_skipping_ids_is_a_gap_and_asks_for_a_new_snapshot() {
    let mut feed = synced_spot();
    let first = fixture!("spot_depth_update.json");
    // Already in the book: ignored.
    assert_eq!(
        feed.on_text(&diff(&first, 1027025, 1027030, None), NOW),
        vec![]
    );
    let skipped = diff(&first, 1027032, 1027040, None);
    let actions = feed.on_text(&skipped, NOW);
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert!(is_gap(&actions[0], SPOT_BOOK, "U=1027032 after u=1027030"));
    assert_eq!(actions[1], spot_fetch());
    assert!(feed.books(NOW).is_empty());
    // Diffs wait for the new snapshot; the one after the gap is kept.
    assert_eq!(
        feed.on_text(&diff(&first, 1027041, 1027050, None), NOW),
        vec![]
    );
    let actions = feed.on_snapshot(
        "spot:BTCUSDT",
        Ok(snapshot_with_id(
            &fixture!("spot_depth_snapshot.json"),
            1027045,
        )),
        NOW,
    );
    assert_eq!(actions, vec![Action::Seen(SPOT_BOOK.into())]);
    assert_eq!(book_of(&feed.books(NOW)[0]).last_update_id, 1027050);
}

#[test]
fn a_spot_snapshot_older_than_the_diffs_is_a_gap_and_fetched_again() {
    let mut feed = spot();
    let first = fixture!("spot_depth_update.json");
    assert_eq!(
        feed.on_text(&diff(&first, 1027026, 1027030, None), NOW),
        vec![spot_fetch()]
    );
    let actions = feed.on_snapshot(
        "spot:BTCUSDT",
        Ok(fixture!("spot_depth_snapshot.json")),
        NOW,
    );
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert!(is_gap(
        &actions[0],
        SPOT_BOOK,
        "snapshot older than the diffs"
    ));
    assert_eq!(actions[1], spot_fetch());
    assert!(feed.books(NOW).is_empty());
    // The diffs were kept: a snapshot one id before them bridges.
    let actions = feed.on_snapshot(
        "spot:BTCUSDT",
        Ok(snapshot_with_id(
            &fixture!("spot_depth_snapshot.json"),
            1027025,
        )),
        NOW,
    );
    assert_eq!(actions, vec![Action::Seen(SPOT_BOOK.into())]);
    assert_eq!(book_of(&feed.books(NOW)[0]).last_update_id, 1027030);
}

#[test]
fn a_crossed_book_is_a_gap() {
    let mut feed = synced_spot();
    let crossing = with_levels(
        &diff(&fixture!("spot_depth_update.json"), 1027031, 1027031, None),
        serde_json::json!([["65000.10000000", "1.00000000"]]),
        serde_json::json!([]),
    );
    let actions = feed.on_text(&crossing, NOW);
    assert!(is_gap(&actions[0], SPOT_BOOK, "crossed"), "{actions:?}");
    assert_eq!(actions[1], spot_fetch());
    assert!(feed.books(NOW).is_empty());
}

#[test]
fn an_unusable_level_drops_the_book() {
    let mut feed = synced_spot();
    let bad = with_levels(
        &diff(&fixture!("spot_depth_update.json"), 1027031, 1027031, None),
        serde_json::json!([["64999.123456789", "1"]]),
        serde_json::json!([]),
    );
    let actions = feed.on_text(&bad, NOW);
    assert!(
        is_problem(&actions[0], SPOT_BOOK, "64999.123456789"),
        "{actions:?}"
    );
    assert_eq!(actions[1], spot_fetch());
    assert!(feed.books(NOW).is_empty());
}

#[test]
fn a_reconnect_forgets_the_books_and_late_snapshots() {
    let mut feed = synced_spot();
    assert_eq!(feed.books(NOW).len(), 1);
    feed.on_connect(NOW);
    assert!(feed.books(NOW).is_empty());
    let next = diff(&fixture!("spot_depth_update.json"), 1027031, 1027040, None);
    assert_eq!(feed.on_text(&next, NOW), vec![spot_fetch()]);
    // A snapshot asked before the reconnect (already answered here) changes nothing.
    feed.on_connect(NOW);
    assert_eq!(
        feed.on_snapshot(
            "spot:BTCUSDT",
            Ok(fixture!("spot_depth_snapshot.json")),
            NOW
        ),
        vec![]
    );
    assert!(feed.books(NOW).is_empty());
    assert!(is_problem(
        &feed.on_snapshot("perpetual:BTCUSDT", Ok("{}".into()), NOW)[0],
        "binance spot",
        "never asked for"
    ));
}

#[test]
fn a_failed_snapshot_is_a_problem_and_asked_again() {
    let mut feed = spot();
    assert_eq!(
        feed.on_text(&fixture!("spot_depth_update.json"), NOW),
        vec![spot_fetch()]
    );
    let actions = feed.on_snapshot(
        "spot:BTCUSDT",
        Err("GET http://spot.test/api/v3/depth: 503 Service Unavailable refused".into()),
        NOW,
    );
    assert_eq!(actions.len(), 2);
    assert!(is_problem(&actions[0], SPOT_BOOK, "503"), "{actions:?}");
    assert_eq!(actions[1], spot_fetch());
    // Still one request at a time.
    let next = diff(&fixture!("spot_depth_update.json"), 1027031, 1027040, None);
    assert_eq!(feed.on_text(&next, NOW), vec![]);
}

#[test]
fn unusable_snapshots_are_asked_again_ever_more_slowly() {
    let mut feed = spot();
    let first = fixture!("spot_depth_update.json");
    assert_eq!(feed.on_text(&first, NOW), vec![spot_fetch()]);
    // The first failure: asked again at once.
    let actions = feed.on_snapshot("spot:BTCUSDT", Ok("{\"bids\":[]}".into()), NOW);
    assert!(
        is_problem(&actions[0], SPOT_BOOK, "lastUpdateId"),
        "{actions:?}"
    );
    assert_eq!(actions[1], spot_fetch());
    // The second: after a pause, on the next diff once the pause is over.
    let actions = feed.on_snapshot("spot:BTCUSDT", Ok("[]".into()), NOW);
    assert_eq!(actions.len(), 1, "{actions:?}");
    let next = diff(&first, 1027031, 1027031, None);
    assert_eq!(feed.on_text(&next, NOW + 500), vec![]);
    let next = diff(&first, 1027032, 1027032, None);
    assert_eq!(feed.on_text(&next, NOW + 1_000), vec![spot_fetch()]);
    let actions = feed.on_snapshot(
        "spot:BTCUSDT",
        Ok(fixture!("spot_depth_snapshot.json")),
        NOW + 1_200,
    );
    assert_eq!(actions.len(), 3, "{actions:?}");
    assert_eq!(book_of(&feed.books(NOW)[0]).last_update_id, 1027032);
}

#[test]
fn an_unlisted_symbol_is_reported_once_and_not_asked_again_until_reconnect() {
    let mut feed = spot();
    let first = fixture!("spot_depth_update.json");
    assert_eq!(feed.on_text(&first, NOW), vec![spot_fetch()]);
    let refused = format!(
        "GET http://spot.test/api/v3/depth?symbol=BTCUSDT&limit=1000: 400 Bad Request refused: {}",
        fixture!("invalid_symbol.json").trim()
    );
    let actions = feed.on_snapshot("spot:BTCUSDT", Err(refused), NOW);
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert!(is_problem(
        &actions[0],
        SPOT_BOOK,
        "binance rejects symbol BTCUSDT"
    ));
    assert_eq!(
        feed.on_text(&diff(&first, 1027031, 1027040, None), NOW + 60_000),
        vec![]
    );
    feed.on_connect(NOW);
    assert_eq!(feed.on_text(&first, NOW), vec![spot_fetch()]);
    // The same answer with a 200 status.
    let actions = feed.on_snapshot("spot:BTCUSDT", Ok(fixture!("invalid_symbol.json")), NOW);
    assert!(is_problem(
        &actions[0],
        SPOT_BOOK,
        "binance rejects symbol BTCUSDT"
    ));
    assert_eq!(actions.len(), 1);
}

#[test]
fn a_buffer_that_overflows_is_a_gap() {
    let mut feed = spot();
    let first = fixture!("spot_depth_update.json");
    let mut gaps = 0;
    for n in 0..=BUFFER_LIMIT as u64 {
        for action in feed.on_text(&diff(&first, 2_000_000 + n, 2_000_000 + n, None), NOW) {
            match action {
                Action::Gap { .. } => gaps += 1,
                Action::FetchSnapshot { .. } => assert_eq!(n, 0),
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(gaps, 1);
}

// ---- futures order book ---------------------------------------------------------------------

#[test]
fn futures_book_chains_diffs_by_pu() {
    let mut feed = synced_perpetual();
    let first = fixture!("futures_depth_update.json");
    let book = book_of(&feed.books(NOW)[0]).clone();
    assert_eq!(book.last_update_id, 8121345260);
    assert_eq!(
        book.bids,
        vec![[d("16540"), d("12.345")], [d("16539.5"), d("7")]]
    );
    assert_eq!(
        book.asks,
        vec![[d("16540.1"), d("3.21")], [d("16540.2"), d("5.5")]]
    );
    assert_eq!(feed.books(NOW)[0].ts_ms, 1672515782136);

    let chained = diff(&first, 8121345261, 8121345270, Some(8121345260));
    assert_eq!(
        feed.on_text(&chained, NOW),
        vec![Action::Seen(PERP_BOOK.into())]
    );
    let broken = diff(&first, 8121345275, 8121345280, Some(8121345274));
    let actions = feed.on_text(&broken, NOW);
    assert!(
        is_gap(&actions[0], PERP_BOOK, "pu=8121345274 after u=8121345270"),
        "{actions:?}"
    );
    assert_eq!(actions[1], perp_fetch());
    assert!(feed.books(NOW).is_empty());
}

#[test]
fn futures_snapshot_older_than_the_diffs_is_a_gap() {
    let mut feed = perpetual();
    let first = fixture!("futures_depth_update.json");
    // Starts one past the snapshot's id: on futures the first diff must include it.
    let late = diff(&first, 8121345231, 8121345260, Some(8121345230));
    assert_eq!(feed.on_text(&late, NOW), vec![perp_fetch()]);
    let actions = feed.on_snapshot(
        "perpetual:BTCUSDT",
        Ok(fixture!("futures_depth_snapshot.json")),
        NOW,
    );
    assert!(
        is_gap(&actions[0], PERP_BOOK, "snapshot older"),
        "{actions:?}"
    );
    assert_eq!(actions[1], perp_fetch());
    // Diffs ending before the snapshot are dropped; the one ending at its id bridges.
    let mut feed = perpetual();
    let old = diff(&first, 8121345100, 8121345229, Some(8121345099));
    let bridging = diff(&first, 8121345230, 8121345230, Some(8121345229));
    feed.on_text(&old, NOW);
    feed.on_text(&bridging, NOW);
    let actions = feed.on_snapshot(
        "perpetual:BTCUSDT",
        Ok(fixture!("futures_depth_snapshot.json")),
        NOW,
    );
    assert_eq!(actions, vec![Action::Seen(PERP_BOOK.into())]);
    assert_eq!(book_of(&feed.books(NOW)[0]).last_update_id, 8121345230);
}

#[test]
fn a_futures_diff_without_pu_is_malformed() {
    let mut frame = json(&fixture!("futures_depth_update.json"));
    frame["data"].as_object_mut().unwrap().remove("pu");
    let actions = perpetual().on_text(&frame.to_string(), NOW);
    assert_eq!(
        actions,
        vec![Action::Problem {
            stream: PERP_BOOK.into(),
            what: "depthUpdate: missing field pu".into()
        }]
    );
}

// ---- malformed and other frames -------------------------------------------------------------

#[test]
fn answers_and_malformed_frames() {
    let mut feed = spot();
    assert_eq!(
        feed.on_text(&fixture!("subscribe_answer.json"), NOW),
        vec![]
    );
    assert_eq!(
        feed.on_text(&fixture!("error_answer.json"), NOW),
        vec![Action::Problem {
            stream: "binance spot".into(),
            what: "error answer: code 2: Invalid request: unknown variable".into()
        }]
    );
    assert!(is_problem(
        &feed.on_text(&fixture!("error_answer_flat.json"), NOW)[0],
        "binance spot",
        "code 3: Invalid JSON"
    ));
    assert_eq!(
        feed.on_text(&fixture!("server_shutdown.json"), NOW),
        vec![Action::Reconnect(
            "binance announced a server shutdown".into()
        )]
    );
    for (frame, words) in [
        ("{\"stream\":\"btcusdt@trade\",", "not JSON"),
        ("[1,2]", "not an object"),
        (
            "{\"stream\":\"btcusdt@kline_1m\",\"data\":{\"e\":\"kline\",\"s\":\"BTCUSDT\"}}",
            "unknown event \"kline\"",
        ),
        (
            "{\"stream\":\"btcusdt@trade\",\"data\":{\"s\":\"BTCUSDT\"}}",
            "no event type",
        ),
        (
            "{\"e\":\"markPriceUpdate\",\"s\":\"BTCUSDT\"}",
            "unknown event",
        ),
        (
            "{\"e\":\"trade\",\"s\":\"XRPUSDT\",\"t\":1}",
            "XRPUSDT, which this connection did not subscribe",
        ),
        ("{\"e\":\"trade\",\"t\":1}", "(none)"),
    ] {
        let actions = feed.on_text(frame, NOW);
        assert!(
            matches!(&actions[..], [a] if is_problem(a, "binance spot", words)),
            "{frame}: {actions:?}"
        );
    }
    let mut trade = json(&fixture!("spot_trade.json"));
    trade["data"].as_object_mut().unwrap().remove("p");
    assert_eq!(
        feed.on_text(&trade.to_string(), NOW),
        vec![Action::Problem {
            stream: "trade.binance.spot.BTC-USDT".into(),
            what: "trade: missing field p".into()
        }]
    );
    trade["data"]["p"] = serde_json::json!(["1"]);
    assert!(is_problem(
        &feed.on_text(&trade.to_string(), NOW)[0],
        "trade.binance.spot.BTC-USDT",
        "field p"
    ));
    let mut depth = json(&fixture!("spot_depth_update.json"));
    depth["data"]["b"] = serde_json::json!([["1"]]);
    assert!(is_problem(
        &feed.on_text(&depth.to_string(), NOW)[0],
        SPOT_BOOK,
        "field b holds [\"1\"]"
    ));
    depth["data"]["b"] = serde_json::json!([]);
    depth["data"]["U"] = serde_json::json!(1027031);
    assert!(is_problem(
        &feed.on_text(&depth.to_string(), NOW)[0],
        SPOT_BOOK,
        "U=1027031 is after u=1027030"
    ));
    // A type the plan does not want is not published.
    let mut trades_only = feed_of(&plan(&["BTC-USDT"], &[DataType::Trade]), "binance spot");
    assert!(is_problem(
        &trades_only.on_text(&fixture!("spot_depth_update.json"), NOW)[0],
        "binance spot",
        "not subscribed"
    ));
    assert!(trades_only.books(NOW).is_empty());
}

#[test]
fn no_frame_however_cut_makes_a_handler_panic() {
    let frames = [
        fixture!("spot_trade.json"),
        fixture!("spot_depth_update.json"),
        fixture!("futures_agg_trade.json"),
        fixture!("futures_depth_update.json"),
        fixture!("mark_price_update.json"),
        fixture!("force_order.json"),
        fixture!("error_answer.json"),
    ];
    let mut spot = synced_spot();
    let mut perpetual = synced_perpetual();
    for frame in &frames {
        for cut in 0..frame.len() {
            if let Some(part) = frame.get(..cut) {
                spot.on_text(part, NOW);
                perpetual.on_text(part, NOW);
            }
        }
        // Every field in turn replaced by something of the wrong kind.
        let value = json(frame);
        for key in [
            "e", "s", "U", "u", "pu", "b", "a", "p", "q", "T", "E", "m", "o", "t",
        ] {
            for wrong in [
                Value::Null,
                serde_json::json!({}),
                serde_json::json!(-1),
                "x".into(),
            ] {
                let mut v = value.clone();
                if v["data"].get(key).is_some() {
                    v["data"][key] = wrong.clone();
                }
                spot.on_text(&v.to_string(), NOW);
                perpetual.on_text(&v.to_string(), NOW);
            }
        }
    }
    for snapshot in [
        fixture!("spot_depth_snapshot.json"),
        fixture!("futures_depth_snapshot.json"),
    ] {
        for cut in 0..snapshot.len() {
            let part = snapshot.get(..cut).unwrap_or_default().to_string();
            spot.on_text(&fixture!("spot_depth_update.json"), NOW);
            spot.on_snapshot("spot:BTCUSDT", Ok(part.clone()), NOW);
            perpetual.on_snapshot("perpetual:BTCUSDT", Ok(part), NOW);
        }
    }
    let context = context();
    for body in [
        fixture!("open_interest_hist.json"),
        fixture!("top_long_short_position_ratio.json"),
    ] {
        for cut in 0..body.len() {
            let part = body.get(..cut).unwrap_or_default();
            let _ = parse_open_interest(part, &context);
            let _ = parse_lsr_top_position(part, &context);
            let _ = parse_lsr_all_account(part, &context);
        }
    }
}

// ---- polls ----------------------------------------------------------------------------------

fn context() -> PollContext {
    PollContext {
        exchange: "binance".into(),
        market_type: "perpetual".into(),
        symbol: "BTC-USDT".into(),
        now_ms: NOW,
    }
}

#[test]
fn open_interest_in_contracts_and_usd_with_their_ratio_as_mark_price() {
    let messages = parse_open_interest(&fixture!("open_interest_hist.json"), &context()).unwrap();
    assert_eq!(
        messages,
        vec![message(
            "binance",
            "perpetual",
            "BTC-USDT",
            1583127900000,
            NOW,
            MarketData::OpenInterest(OpenInterest {
                open_interest_value: d("20403.637"),
                open_interest_usd: d("150570784.07809979"),
                mark_price: d("7379.60512031"),
            })
        )]
    );
    let none =
        r#"[{"symbol":"BTCUSDT","sumOpenInterest":"0","sumOpenInterestValue":"0","timestamp":1}]"#;
    let messages = parse_open_interest(none, &context()).unwrap();
    let MarketData::OpenInterest(oi) = &messages[0].data else {
        panic!()
    };
    assert_eq!(oi.mark_price, Decimal8(0));
}

#[test]
fn long_short_ratios_are_the_long_and_short_shares() {
    let top = parse_lsr_top_position(&fixture!("top_long_short_position_ratio.json"), &context())
        .unwrap();
    assert_eq!(
        top,
        vec![message(
            "binance",
            "perpetual",
            "BTC-USDT",
            1583139600000,
            NOW,
            MarketData::LsrTopPosition(LsrTopPosition {
                long_position_ratio: d("0.5891"),
                short_position_ratio: d("0.4108"),
                period: "5m".into(),
            })
        )]
    );
    let all = parse_lsr_all_account(
        &fixture!("global_long_short_account_ratio.json"),
        &context(),
    )
    .unwrap();
    assert_eq!(
        all,
        vec![message(
            "binance",
            "perpetual",
            "BTC-USDT",
            1583139900000,
            NOW,
            MarketData::LsrAllAccount(LsrAllAccount {
                long_account_ratio: d("0.6622"),
                short_account_ratio: d("0.3378"),
                period: "5m".into(),
            })
        )]
    );
}

#[test]
fn poll_answers_that_are_empty_malformed_or_errors() {
    let c = context();
    assert_eq!(parse_open_interest("[]", &c), Ok(vec![]));
    assert_eq!(parse_lsr_all_account(" [ ] ", &c), Ok(vec![]));
    let missing = r#"[{"symbol":"BTCUSDT","sumOpenInterest":"1","timestamp":1}]"#;
    assert_eq!(
        parse_open_interest(missing, &c),
        Err("missing field sumOpenInterestValue".into())
    );
    let no_time = r#"[{"symbol":"BTCUSDT","longAccount":"0.5","shortAccount":"0.5"}]"#;
    assert_eq!(
        parse_lsr_top_position(no_time, &c),
        Err("missing field timestamp".into())
    );
    let other = fixture!("top_long_short_position_ratio.json").replace("BTCUSDT", "ETHUSDT");
    assert_eq!(
        parse_lsr_top_position(&other, &c),
        Err("a row for ETHUSDT, not BTCUSDT".into())
    );
    assert_eq!(
        parse_lsr_all_account(&fixture!("invalid_symbol.json"), &c),
        Err("error answer: code -1121: Invalid symbol.".into())
    );
    assert!(parse_open_interest("{\"a\":1}", &c)
        .unwrap_err()
        .contains("not a list"));
    assert!(parse_open_interest("[1]", &c)
        .unwrap_err()
        .contains("not an object"));
    assert!(parse_open_interest("<html>", &c)
        .unwrap_err()
        .contains("not JSON"));
}

#[test]
fn ratio_rounds_half_away_from_zero_to_8_decimals() {
    assert_eq!(ratio(d("2"), d("3")), Some(d("0.66666667")));
    assert_eq!(ratio(d("1"), d("3")), Some(d("0.33333333")));
    assert_eq!(ratio(d("1"), d("0")), Some(Decimal8(0)));
    assert_eq!(ratio(d("90000000000"), d("0.00000001")), None);
}
