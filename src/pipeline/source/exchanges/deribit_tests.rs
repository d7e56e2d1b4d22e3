use super::*;
use crate::pipeline::source::exchanges::Urls;

macro_rules! fixture {
    ($name:literal) => {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/exchanges/deribit/",
            $name
        ))
        .unwrap()
    };
}

const NOW: i64 = 1_717_000_010_000;
const DVOL: &str = "deribit_volatility_index.btc_usd";
const BOOK_STREAM: &str = "orderbook.deribit.perpetual.BTC-USD";
const DVOL_STREAM: &str = "volatility_index.deribit.options.BTC";

fn plan(symbols: &[&str], types: &[DataType]) -> VenuePlan {
    VenuePlan {
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
        types: types.to_vec(),
        book_depth: 5,
        urls: Urls {
            ws: "ws://127.0.0.1:9/ws/api/v2".into(),
            rest: String::new(),
            futures_ws: String::new(),
            futures_rest: String::new(),
        },
    }
}

/// A BTC feed after its first connect: set_heartbeat is id 1, the subscribe id 2.
fn connected(types: &[DataType]) -> DeribitFeed {
    let mut feed = DeribitFeed::new(&plan(&["BTC-USDT"], types));
    feed.on_connect(NOW);
    feed
}

fn d(s: &str) -> Decimal8 {
    s.parse().unwrap()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn published(actions: &[Action]) -> Vec<&MarketMessage> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Publish(m) => Some(m),
            _ => None,
        })
        .collect()
}

fn sent(actions: &[Action]) -> Vec<Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(s) => Some(json(s)),
            _ => None,
        })
        .collect()
}

fn is_problem(actions: &[Action], stream: &str, what: &str) -> bool {
    actions.iter().any(
        |a| matches!(a, Action::Problem { stream: s, what: w } if s == stream && w.contains(what)),
    )
}

fn book_of(message: &MarketMessage) -> &crate::pipeline::message::Orderbook {
    match &message.data {
        MarketData::Orderbook(b) => b,
        other => panic!("not a book: {other:?}"),
    }
}

#[test]
fn subscribes_btc_and_eth_once_each_after_the_heartbeat() {
    let mut feed = DeribitFeed::new(&plan(
        &["BTC-USDT", "ETH-USDT", "SOL-USDT", "BTC-USDC"],
        &DataType::ALL,
    ));
    assert_eq!(feed.name(), "deribit");
    assert_eq!(feed.url(), "ws://127.0.0.1:9/ws/api/v2");
    assert_eq!(feed.send_interval(), Duration::from_millis(100));
    assert_eq!(feed.idle_ping(), None);
    assert_eq!(
        feed.streams(),
        vec![
            "trade.deribit.perpetual.BTC-USD",
            BOOK_STREAM,
            DVOL_STREAM,
            "trade.deribit.perpetual.ETH-USD",
            "orderbook.deribit.perpetual.ETH-USD",
            "volatility_index.deribit.options.ETH",
        ]
    );
    let frames: Vec<Value> = feed.on_connect(NOW).iter().map(|f| json(f)).collect();
    assert_eq!(
        frames,
        vec![
            json(
                r#"{"jsonrpc":"2.0","id":1,"method":"public/set_heartbeat","params":{"interval":30}}"#
            ),
            json(concat!(
                r#"{"jsonrpc":"2.0","id":2,"method":"public/subscribe","params":{"channels":["#,
                r#""trades.BTC-PERPETUAL.100ms","book.BTC-PERPETUAL.100ms","#,
                r#""deribit_volatility_index.btc_usd","trades.ETH-PERPETUAL.100ms","#,
                r#""book.ETH-PERPETUAL.100ms","deribit_volatility_index.eth_usd"]}}"#
            )),
        ]
    );
    // A reconnect subscribes again with new ids.
    let again = feed.on_connect(NOW);
    assert_eq!(json(&again[1])["id"], 4);
}

#[test]
fn only_wanted_types_of_known_assets_are_subscribed() {
    let feed = DeribitFeed::new(&plan(&["BTC-USDT"], &[DataType::VolatilityIndex]));
    assert_eq!(feed.streams(), vec![DVOL_STREAM]);
    assert_eq!(feed.channels, vec![DVOL]);
    let (feeds, polls) = super::feeds(&plan(&["SOL-USDT"], &DataType::ALL));
    assert!(feeds.is_empty() && polls.is_empty());
    let (feeds, _) = super::feeds(&plan(&["BTC-USDT"], &[DataType::FundingRate]));
    assert!(feeds.is_empty());
}

#[test]
fn trades_notification_becomes_trades() {
    let mut feed = connected(&[DataType::Trade]);
    let actions = feed.on_text(&fixture!("trades.json"), NOW);
    let trades = published(&actions);
    assert_eq!(trades.len(), 2, "{actions:?}");
    let m = trades[0];
    assert_eq!(m.subject(), "trade.deribit.perpetual.BTC-USD");
    assert_eq!((m.ts_ms, m.collected_ts_ms), (1_717_000_000_050, NOW));
    assert_eq!(
        m.data,
        MarketData::Trade(Trade {
            trade_id: "48079254".into(),
            price: d("65000.5"),
            quantity: d("10"),
            side: "sell".into(),
            is_maker: false,
            trade_ts_ms: 1_717_000_000_050,
        })
    );
    let MarketData::Trade(second) = &trades[1].data else {
        panic!()
    };
    assert_eq!(
        (second.side.as_str(), second.price, second.quantity),
        ("buy", d("65001"), d("1200"))
    );
    let numeric_id = fixture!("trades.json").replace(r#""48079254""#, "48079254");
    let actions = feed.on_text(&numeric_id, NOW);
    let MarketData::Trade(t) = &published(&actions)[0].data else {
        panic!()
    };
    assert_eq!(t.trade_id, "48079254");
}

#[test]
fn snapshot_and_changes_keep_the_book() {
    let mut feed = connected(&[DataType::Orderbook]);
    assert!(feed.books(NOW).is_empty());
    let seen = vec![Action::Seen(BOOK_STREAM.into())];
    assert_eq!(feed.on_text(&fixture!("book_snapshot.json"), NOW), seen);
    let b = feed.books(NOW);
    assert_eq!(book_of(&b[0]).last_update_id, 297_217);
    assert_eq!(book_of(&b[0]).asks[2], [d("65002.5"), d("70000")]);
    assert_eq!(feed.on_text(&fixture!("book_change.json"), NOW), seen);
    let books = feed.books(NOW);
    assert_eq!(books.len(), 1);
    let m = &books[0];
    assert_eq!(
        (m.subject().as_str(), m.ts_ms),
        (BOOK_STREAM, 1_717_000_000_100)
    );
    let b = book_of(m);
    assert_eq!((b.last_update_id, b.depth_levels), (297_218, 5));
    assert_eq!(
        b.bids,
        vec![[d("65000"), d("45")], [d("64999.5"), d("1000")]]
    );
    assert_eq!(
        b.asks,
        vec![
            [d("65000.25"), d("10")],
            [d("65000.5"), d("20")],
            [d("65002.5"), d("70000")]
        ]
    );
}

#[test]
fn a_broken_change_chain_is_a_gap_and_resubscribes_the_book() {
    let mut feed = connected(&[DataType::Orderbook]);
    feed.on_text(&fixture!("book_snapshot.json"), NOW);
    feed.on_text(&fixture!("book_change.json"), NOW);
    let actions = feed.on_text(&fixture!("book_change_gap.json"), NOW);
    assert!(
        actions.iter().any(|a| matches!(a, Action::Gap { stream, what }
            if stream == BOOK_STREAM && what.contains("prev_change_id 297220 after change_id 297218"))),
        "{actions:?}"
    );
    assert_eq!(
        sent(&actions),
        vec![
            json(
                r#"{"jsonrpc":"2.0","id":3,"method":"public/unsubscribe","params":{"channels":["book.BTC-PERPETUAL.100ms"]}}"#
            ),
            json(
                r#"{"jsonrpc":"2.0","id":4,"method":"public/subscribe","params":{"channels":["book.BTC-PERPETUAL.100ms"]}}"#
            ),
        ]
    );
    assert!(feed.books(NOW).is_empty());
    // Deribit's answers to both: nothing to do.
    let unsubscribed = r#"{"jsonrpc":"2.0","id":3,"result":["book.BTC-PERPETUAL.100ms"]}"#;
    let subscribed = r#"{"jsonrpc":"2.0","id":4,"result":["book.BTC-PERPETUAL.100ms"]}"#;
    assert!(feed.on_text(unsubscribed, NOW).is_empty());
    assert!(feed.on_text(subscribed, NOW).is_empty());
    // Changes still in flight are dropped; the new snapshot resyncs.
    let late = feed.on_text(&fixture!("book_change_gap.json"), NOW);
    assert_eq!(late, vec![Action::Seen(BOOK_STREAM.into())]);
    assert!(feed.books(NOW).is_empty());
    feed.on_text(&fixture!("book_snapshot.json"), NOW);
    assert_eq!(book_of(&feed.books(NOW)[0]).last_update_id, 297_217);
}

#[test]
fn changes_before_the_snapshot_are_ignored_and_reconnect_resets_books() {
    let mut feed = connected(&[DataType::Orderbook]);
    let early = feed.on_text(&fixture!("book_change.json"), NOW);
    assert_eq!(early, vec![Action::Seen(BOOK_STREAM.into())]);
    assert!(feed.books(NOW).is_empty());
    feed.on_text(&fixture!("book_snapshot.json"), NOW);
    assert_eq!(feed.books(NOW).len(), 1);
    feed.on_connect(NOW);
    assert!(feed.books(NOW).is_empty());
    feed.on_text(&fixture!("book_change.json"), NOW);
    assert!(feed.books(NOW).is_empty());
}

#[test]
fn malformed_book_notifications_are_problems_and_resubscribe() {
    let mut feed = connected(&[DataType::Orderbook]);
    feed.on_text(&fixture!("book_snapshot.json"), NOW);
    let bad = fixture!("book_change.json")
        .replace(r#"["change",65000.0,45.0]"#, r#"["change","65000",45.0]"#);
    let actions = feed.on_text(&bad, NOW);
    assert!(
        is_problem(&actions, BOOK_STREAM, "book bids"),
        "{actions:?}"
    );
    assert_eq!(sent(&actions).len(), 2);
    feed.on_text(&fixture!("book_snapshot.json"), NOW);
    let odd = fixture!("book_change.json").replace(r#""delete",64998.0"#, r#""erase",64998.0"#);
    let actions = feed.on_text(&odd, NOW);
    assert!(is_problem(&actions, BOOK_STREAM, "erase"), "{actions:?}");
    let no_type = fixture!("book_snapshot.json").replace(r#""type":"snapshot","#, "");
    assert!(is_problem(
        &feed.on_text(&no_type, NOW),
        BOOK_STREAM,
        "book type"
    ));
    let no_id = fixture!("book_snapshot.json").replace("change_id", "id");
    assert!(is_problem(
        &feed.on_text(&no_id, NOW),
        BOOK_STREAM,
        "change_id"
    ));
    assert!(feed.books(NOW).is_empty());
}

#[test]
fn volatility_index_is_throttled_to_a_minute() {
    let mut feed = connected(&[DataType::VolatilityIndex]);
    let actions = feed.on_text(&fixture!("volatility_index.json"), NOW);
    let m = published(&actions)[0];
    assert_eq!(m.subject(), DVOL_STREAM);
    assert_eq!(
        (m.symbol.as_str(), m.market_type.as_str()),
        ("BTC", "options")
    );
    assert_eq!(m.ts_ms, 1_717_000_004_000);
    assert_eq!(
        m.data,
        MarketData::VolatilityIndex(VolatilityIndex {
            volatility_index: d("52.61"),
            underlying_asset: "BTC".into(),
        })
    );
    let soon = feed.on_text(&fixture!("volatility_index.json"), NOW + 1_000);
    assert_eq!(soon, vec![Action::Seen(DVOL_STREAM.into())]);
    let later = feed.on_text(&fixture!("volatility_index.json"), NOW + 60_000);
    assert_eq!(published(&later).len(), 1);
    let broken = fixture!("volatility_index.json").replace("52.61", "\"52.61\"");
    assert!(is_problem(
        &feed.on_text(&broken, NOW),
        DVOL_STREAM,
        "volatility"
    ));
}

#[test]
fn heartbeats_are_answered_with_public_test() {
    let mut feed = connected(&[DataType::Trade]);
    let actions = feed.on_text(&fixture!("heartbeat_test_request.json"), NOW);
    assert_eq!(
        sent(&actions),
        vec![json(
            r#"{"jsonrpc":"2.0","id":3,"method":"public/test","params":{}}"#
        )]
    );
    assert_eq!(actions.len(), 1);
    let answer = r#"{"jsonrpc":"2.0","id":3,"result":{"version":"1.2.26"}}"#;
    assert!(feed.on_text(answer, NOW).is_empty());
    assert!(feed.on_text(&fixture!("heartbeat.json"), NOW).is_empty());
    let set = r#"{"jsonrpc":"2.0","id":1,"result":"ok"}"#;
    assert!(feed.on_text(set, NOW).is_empty());
    let odd = r#"{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"nap"}}"#;
    assert!(is_problem(&feed.on_text(odd, NOW), "deribit", "nap"));
}

#[test]
fn a_channel_missing_from_the_subscribe_result_is_rejected() {
    let mut feed = connected(&[
        DataType::Trade,
        DataType::Orderbook,
        DataType::VolatilityIndex,
    ]);
    let actions = feed.on_text(&fixture!("subscribe_result.json"), NOW);
    assert_eq!(
        actions,
        vec![Action::Problem {
            stream: DVOL_STREAM.into(),
            what: format!("deribit rejects {DVOL}"),
        }]
    );
    // The same answer again answers no request of ours.
    let again = feed.on_text(&fixture!("subscribe_result.json"), NOW);
    assert!(is_problem(&again, "deribit", "no request"));
}

#[test]
fn error_answers_are_problems() {
    let mut feed = connected(&[DataType::Trade, DataType::Orderbook]);
    let actions = feed.on_text(&fixture!("error.json"), NOW);
    assert!(
        is_problem(
            &actions,
            "deribit",
            "deribit error -32602 Invalid params to public/subscribe trades.BTC-PERPETUAL.100ms,book.BTC-PERPETUAL.100ms"
        ),
        "{actions:?}"
    );
    // An error to a one-channel request names its stream.
    feed.on_text(&fixture!("book_snapshot.json"), NOW);
    feed.on_text(&fixture!("book_change_gap.json"), NOW);
    let refused =
        r#"{"jsonrpc":"2.0","id":4,"error":{"code":10028,"message":"too_many_requests"}}"#;
    assert!(is_problem(
        &feed.on_text(refused, NOW),
        BOOK_STREAM,
        "too_many_requests"
    ));
}

#[test]
fn unknown_and_malformed_frames_are_problems_and_never_panic() {
    let mut feed = connected(&DataType::ALL);
    assert!(is_problem(
        &feed.on_text("{oops", NOW),
        "deribit",
        "not JSON"
    ));
    assert!(is_problem(&feed.on_text("{}", NOW), "deribit", "neither"));
    let method = r#"{"jsonrpc":"2.0","method":"unknown","params":{}}"#;
    assert!(is_problem(&feed.on_text(method, NOW), "deribit", "unknown"));
    let channel = r#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.BTC-PERPETUAL.100ms","data":{}}}"#;
    assert!(is_problem(
        &feed.on_text(channel, NOW),
        "deribit",
        "ticker.BTC-PERPETUAL"
    ));
    let no_result = r#"{"jsonrpc":"2.0","id":2}"#;
    assert!(is_problem(
        &feed.on_text(no_result, NOW),
        "deribit",
        "neither result"
    ));
    let trades = fixture!("trades.json").replace(r#""direction":"sell""#, r#""direction":1"#);
    let actions = feed.on_text(&trades, NOW);
    assert!(is_problem(
        &actions,
        "trade.deribit.perpetual.BTC-USD",
        "direction"
    ));
    assert_eq!(published(&actions).len(), 1);
    let not_list = r#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.100ms","data":{}}}"#;
    assert!(is_problem(
        &feed.on_text(not_list, NOW),
        "trade.deribit.perpetual.BTC-USD",
        "not a list"
    ));
    assert!(is_problem(
        &feed.on_snapshot("k", Err("x".into()), NOW),
        "deribit",
        "never asked"
    ));
    let frames = [
        "",
        "null",
        "[]",
        r#"{"method":5}"#,
        r#"{"id":"x","result":1}"#,
        r#"{"method":"subscription","params":null}"#,
        r#"{"method":"subscription","params":{"channel":"book.BTC-PERPETUAL.100ms","data":[1]}}"#,
        r#"{"method":"subscription","params":{"channel":"book.BTC-PERPETUAL.100ms","data":{"type":"snapshot","bids":[[]],"asks":[]}}}"#,
        r#"{"method":"subscription","params":{"channel":"book.BTC-PERPETUAL.100ms","data":{"type":"snapshot","change_id":1,"timestamp":1,"bids":[["new",1e300,1]],"asks":[]}}}"#,
        r#"{"method":"subscription","params":{"channel":"deribit_volatility_index.btc_usd","data":null}}"#,
        r#"{"id":2,"error":"boom"}"#,
    ];
    for frame in frames {
        feed.on_text(frame, NOW);
    }
}

#[test]
fn decimal_text_is_plain_rounded_decimal() {
    let cases = [
        (65000.5, "65000.5"),
        (1e-05, "0.00001"),
        (0.1 + 0.2, "0.3"),
        (10.0, "10"),
        (0.0, "0"),
        (-0.0, "0"),
        (-12.75, "-12.75"),
        (-1e-10, "0"),
        (1.234567891, "1.23456789"),
        (0.000000015, "0.00000002"),
        (7.0e4, "70000"),
        (92233720368.5, "92233720368.5"),
        (2.5e-9, "0"),
        (5e-9, "0.00000001"),
        (-5e-9, "-0.00000001"),
    ];
    for (x, text) in cases {
        assert_eq!(decimal_text(x).unwrap(), text, "{x}");
        let _: Decimal8 = text.parse().unwrap();
    }
    assert!(decimal_text(f64::NAN).is_err());
    assert!(decimal_text(f64::INFINITY).is_err());
    // Beyond Decimal64(8).
    assert!(decimal_text(1e12).is_err());
}
