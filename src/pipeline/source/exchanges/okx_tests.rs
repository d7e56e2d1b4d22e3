use super::*;
use crate::pipeline::source::exchanges::Urls;

macro_rules! fixture {
    ($name:literal) => {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/exchanges/okx/",
            $name
        ))
        .unwrap()
    };
}

const NOW: i64 = 1_717_000_010_000;

fn plan(types: &[DataType]) -> VenuePlan {
    VenuePlan {
        symbols: vec!["BTC-USDT".into()],
        types: types.to_vec(),
        book_depth: 3,
        urls: Urls {
            ws: "ws://127.0.0.1:9/ws/v5/public".into(),
            rest: "http://127.0.0.1:9/".into(),
            futures_ws: String::new(),
            futures_rest: String::new(),
        },
    }
}

fn connected(types: &[DataType]) -> OkxFeed {
    let mut feed = OkxFeed::new(&plan(types));
    feed.on_connect(NOW);
    feed
}

fn d(s: &str) -> Decimal8 {
    s.parse().unwrap()
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

fn book_of(message: &MarketMessage) -> &crate::pipeline::message::Orderbook {
    match &message.data {
        MarketData::Orderbook(b) => b,
        other => panic!("not a book: {other:?}"),
    }
}

const SNAPSHOT_URL: &str = "http://127.0.0.1:9/api/v5/market/books?instId=BTC-USDT&sz=400";

/// The snapshots asked for, as (key, url).
fn fetches(actions: &[Action]) -> Vec<(&str, &str)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::FetchSnapshot { key, url } => Some((key.as_str(), url.as_str())),
            _ => None,
        })
        .collect()
}

/// The spot book asks for one REST snapshot, and nothing is sent on the websocket (no
/// resubscription: OKX no longer starts one with a snapshot).
fn asks_for_a_snapshot(actions: &[Action]) -> bool {
    fetches(actions) == [("BTC-USDT", SNAPSHOT_URL)]
        && !actions.iter().any(|a| matches!(a, Action::Send(_)))
}

fn seen(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Seen(s) if s == BOOK))
        .count()
}

fn last_update_id(feed: &mut OkxFeed) -> Option<u64> {
    feed.books(NOW).first().map(|m| book_of(m).last_update_id)
}

/// A REST answer, as `on_snapshot` gets it.
fn rest(name: &str) -> Result<String, String> {
    let path = format!(
        "{}/tests/fixtures/exchanges/okx/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    Ok(std::fs::read_to_string(path).unwrap())
}

fn is_gap(actions: &[Action], stream: &str, what: &str) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, Action::Gap { stream: s, what: w } if s == stream && w.contains(what)))
}

fn is_problem(actions: &[Action], stream: &str, what: &str) -> bool {
    actions.iter().any(
        |a| matches!(a, Action::Problem { stream: s, what: w } if s == stream && w.contains(what)),
    )
}

const BOOK: &str = "orderbook.okx.spot.BTC-USDT";

#[test]
fn subscribes_every_wanted_channel_in_one_request() {
    let mut feed = OkxFeed::new(&plan(&DataType::ALL));
    assert_eq!(feed.name(), "okx");
    assert_eq!(feed.url(), "ws://127.0.0.1:9/ws/v5/public");
    assert_eq!(feed.send_interval(), Duration::from_millis(400));
    assert_eq!(
        feed.idle_ping(),
        Some((Duration::from_secs(25), "ping".to_string()))
    );
    assert_eq!(
        feed.streams(),
        vec![
            "trade.okx.spot.BTC-USDT",
            "orderbook.okx.spot.BTC-USDT",
            "trade.okx.perpetual.BTC-USDT",
            "orderbook.okx.perpetual.BTC-USDT",
            "funding_rate.okx.perpetual.BTC-USDT",
            "open_interest.okx.perpetual.BTC-USDT",
            "liquidation.okx.perpetual.BTC-USDT",
        ]
    );
    let frames = feed.on_connect(NOW);
    assert_eq!(frames.len(), 1);
    let expected: Value = serde_json::from_str(concat!(
        r#"{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"},"#,
        r#"{"channel":"books","instId":"BTC-USDT"},"#,
        r#"{"channel":"trades","instId":"BTC-USDT-SWAP"},"#,
        r#"{"channel":"books","instId":"BTC-USDT-SWAP"},"#,
        r#"{"channel":"funding-rate","instId":"BTC-USDT-SWAP"},"#,
        r#"{"channel":"open-interest","instId":"BTC-USDT-SWAP"},"#,
        r#"{"channel":"mark-price","instId":"BTC-USDT-SWAP"},"#,
        r#"{"channel":"index-tickers","instId":"BTC-USDT"},"#,
        r#"{"channel":"liquidation-orders","instType":"SWAP"}]}"#
    ))
    .unwrap();
    assert_eq!(serde_json::from_str::<Value>(&frames[0]).unwrap(), expected);
}

#[test]
fn only_wanted_types_are_subscribed_and_args_are_batched() {
    let mut feed = OkxFeed::new(&plan(&[DataType::Trade]));
    assert_eq!(
        feed.streams(),
        vec!["trade.okx.spot.BTC-USDT", "trade.okx.perpetual.BTC-USDT"]
    );
    let frames = feed.on_connect(NOW);
    assert_eq!(frames.len(), 1);
    assert!(!frames[0].contains("mark-price") && !frames[0].contains("books"));

    let (feeds, polls) = super::feeds(&plan(&[DataType::LsrTopPosition]));
    assert!(feeds.is_empty() && polls.is_empty());

    let mut many = plan(&[DataType::Trade, DataType::Orderbook]);
    many.symbols = (0..20).map(|i| format!("C{i}-USDT")).collect();
    many.symbols.push("C0-USDT".into());
    many.symbols.push("bad symbol".into());
    let frames = OkxFeed::new(&many).on_connect(NOW);
    // 20 symbols × 2 markets × 2 channels = 80 args, 50 per request.
    assert_eq!(frames.len(), 2);
    let args: usize = frames
        .iter()
        .map(|f| {
            serde_json::from_str::<Value>(f).unwrap()["args"]
                .as_array()
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(args, 80);
}

#[test]
fn trades_push_becomes_trades() {
    let mut feed = connected(&[DataType::Trade]);
    let actions = feed.on_text(&fixture!("trades.json"), NOW);
    let trades = published(&actions);
    assert_eq!(trades.len(), 2);
    let m = trades[0];
    assert_eq!(m.subject(), "trade.okx.spot.BTC-USDT");
    assert_eq!((m.ts_ms, m.collected_ts_ms), (1_717_000_000_050, NOW));
    assert_eq!(
        m.data,
        MarketData::Trade(Trade {
            trade_id: "130639474".into(),
            price: d("65000.1"),
            quantity: d("0.12060306"),
            side: "buy".into(),
            is_maker: false,
            trade_ts_ms: 1_717_000_000_050,
        })
    );
    let MarketData::Trade(second) = &trades[1].data else {
        panic!()
    };
    assert_eq!((second.side.as_str(), second.price), ("sell", d("65000")));
}

#[test]
fn swap_trades_are_perpetual_under_the_normalised_symbol() {
    let mut feed = connected(&[DataType::Trade]);
    let frame = fixture!("trades.json").replace("BTC-USDT", "BTC-USDT-SWAP");
    let actions = feed.on_text(&frame, NOW);
    assert_eq!(
        published(&actions)[0].subject(),
        "trade.okx.perpetual.BTC-USDT"
    );
}

#[test]
fn snapshot_and_updates_keep_a_checksummed_book() {
    let mut feed = connected(&[DataType::Orderbook]);
    assert!(feed.books(NOW).is_empty());
    for name in ["snapshot", "update_1", "update_2"] {
        let frame = match name {
            "snapshot" => fixture!("books_snapshot.json"),
            "update_1" => fixture!("books_update_1.json"),
            _ => fixture!("books_update_2.json"),
        };
        let actions = feed.on_text(&frame, NOW);
        assert_eq!(actions, vec![Action::Seen(BOOK.into())], "{name}");
    }
    let books = feed.books(NOW);
    assert_eq!(books.len(), 1);
    assert_eq!(books[0].subject(), BOOK);
    assert_eq!(books[0].ts_ms, 1_717_000_000_200);
    let b = book_of(&books[0]);
    assert_eq!(b.last_update_id, 123_461);
    assert_eq!(b.depth_levels, 3);
    assert_eq!(
        b.bids,
        vec![
            [d("65000.15"), d("0.2")],
            [d("65000.1"), d("0.5")],
            [d("64999.5"), d("0.01")]
        ]
    );
    assert_eq!(
        b.asks,
        vec![
            [d("65001"), d("1.5")],
            [d("65002.5"), d("0.15")],
            [d("65010"), d("4")]
        ]
    );
}

#[test]
fn checksum_interleaves_the_best_levels_as_sent() {
    // The example of OKX's documentation: "3366.1:7:3366.8:9:3366:6:3368:8".
    let mut book = LocalBook::default();
    book.replace(
        [("3366.1", "7"), ("3366", "6")],
        [("3366.8", "9"), ("3368", "8")],
        1,
        0,
    )
    .unwrap();
    assert_eq!(checksum(&book), -1_881_014_294);
    assert_eq!(
        checksum(&book),
        crc32fast::hash(b"3366.1:7:3366.8:9:3366:6:3368:8") as i32
    );
    // One side longer: it continues alone.
    book.set(Side::Bid, "3365", "1.50").unwrap();
    assert_eq!(
        checksum(&book),
        crc32fast::hash(b"3366.1:7:3366.8:9:3366:6:3368:8:3365:1.50") as i32
    );
}

#[test]
fn checksum_mismatch_is_a_gap_and_re_syncs_by_rest_snapshot() {
    let mut feed = connected(&[DataType::Orderbook]);
    feed.on_text(&fixture!("books_snapshot.json"), NOW);
    feed.on_text(&fixture!("books_update_1.json"), NOW);
    feed.on_text(&fixture!("books_update_2.json"), NOW);
    let actions = feed.on_text(&fixture!("books_bad_checksum.json"), NOW);
    assert!(is_gap(&actions, BOOK, "checksum mismatch"), "{actions:?}");
    assert!(asks_for_a_snapshot(&actions), "{actions:?}");
    assert!(feed.books(NOW).is_empty());
    // Updates wait for the snapshot on its way, without asking again.
    let waiting = feed.on_text(&fixture!("books_seq_gap.json"), NOW);
    assert!(waiting.is_empty(), "{waiting:?}");
    // The buffered update chains onto the snapshot, and its checksum is ours.
    let actions = feed.on_snapshot("BTC-USDT", rest("books_rest_snapshot_2.json"), NOW);
    assert_eq!(actions, vec![Action::Seen(BOOK.into())]);
    assert_eq!(last_update_id(&mut feed), Some(123_470));
}

#[test]
fn a_broken_sequence_is_a_gap_and_re_syncs_by_rest_snapshot() {
    let mut feed = connected(&[DataType::Orderbook]);
    feed.on_text(&fixture!("books_snapshot.json"), NOW);
    feed.on_text(&fixture!("books_update_1.json"), NOW);
    feed.on_text(&fixture!("books_update_2.json"), NOW);
    let actions = feed.on_text(&fixture!("books_seq_gap.json"), NOW);
    assert!(
        is_gap(&actions, BOOK, "prevSeqId 123465 after seqId 123461"),
        "{actions:?}"
    );
    assert!(asks_for_a_snapshot(&actions), "{actions:?}");
    assert!(feed.books(NOW).is_empty());
    // The update that showed the gap is kept, and applied on the new snapshot.
    let actions = feed.on_snapshot("BTC-USDT", rest("books_rest_snapshot_2.json"), NOW);
    assert_eq!(actions, vec![Action::Seen(BOOK.into())]);
    assert_eq!(last_update_id(&mut feed), Some(123_470));
    // Skipping update 1 breaks the chain just the same.
    let mut feed = connected(&[DataType::Orderbook]);
    feed.on_text(&fixture!("books_snapshot.json"), NOW);
    let actions = feed.on_text(&fixture!("books_update_2.json"), NOW);
    assert!(is_gap(&actions, BOOK, "prevSeqId 123460"));
    assert!(asks_for_a_snapshot(&actions), "{actions:?}");
}

#[test]
fn the_current_exchange_syncs_from_a_rest_snapshot() {
    let mut feed = connected(&[DataType::Orderbook]);
    // No in-band snapshot: the first update asks for the REST one, the next ones wait for it.
    let first = feed.on_text(&fixture!("books_update_0.json"), NOW);
    assert!(asks_for_a_snapshot(&first), "{first:?}");
    assert_eq!(seen(&first), 0);
    assert!(feed
        .on_text(&fixture!("books_update_1.json"), NOW)
        .is_empty());
    assert!(feed
        .on_text(&fixture!("books_update_2_zero.json"), NOW)
        .is_empty());
    assert!(feed.books(NOW).is_empty());
    // seqId 123456: update 0 is in it and dropped; update 1 spans it (prevSeqId 123456 <=
    // 123456 < 123460, checksum verified), update 2 chains on (checksum 0: not checked).
    let actions = feed.on_snapshot("BTC-USDT", rest("books_rest_snapshot.json"), NOW);
    assert_eq!(actions, vec![Action::Seen(BOOK.into()); 2]);
    let books = feed.books(NOW);
    assert_eq!(books[0].ts_ms, 1_717_000_000_200);
    let b = book_of(&books[0]);
    assert_eq!(b.last_update_id, 123_461);
    assert_eq!(
        b.bids,
        vec![
            [d("65000.15"), d("0.2")],
            [d("65000.1"), d("0.5")],
            [d("64999.5"), d("0.01")]
        ]
    );
    assert_eq!(
        b.asks,
        vec![
            [d("65001"), d("1.5")],
            [d("65002.5"), d("0.15")],
            [d("65010"), d("4")]
        ]
    );
    // A heartbeat (seqId == prevSeqId, no levels) leaves the book as it is.
    let beat = feed.on_text(&fixture!("books_heartbeat.json"), NOW);
    assert_eq!(beat, vec![Action::Seen(BOOK.into())]);
    assert_eq!(last_update_id(&mut feed), Some(123_461));
    // Updates with checksum 0, or none, chain on unchecked.
    let zero = fixture!("books_bad_checksum.json").replace("-1011253595", "0");
    assert_eq!(feed.on_text(&zero, NOW), vec![Action::Seen(BOOK.into())]);
    let none = fixture!("books_seq_gap.json")
        .replace("\"checksum\": 487653340, ", "")
        .replace("123465", "123462");
    assert!(!none.contains("checksum"));
    assert_eq!(feed.on_text(&none, NOW), vec![Action::Seen(BOOK.into())]);
    assert_eq!(last_update_id(&mut feed), Some(123_470));
    // The swap's book asks for its own snapshot.
    let swap = fixture!("books_update_0.json").replace("BTC-USDT", "BTC-USDT-SWAP");
    assert_eq!(
        fetches(&feed.on_text(&swap, NOW)),
        [(
            "BTC-USDT-SWAP",
            "http://127.0.0.1:9/api/v5/market/books?instId=BTC-USDT-SWAP&sz=400"
        )]
    );
}

#[test]
fn the_first_update_after_a_rest_snapshot_must_span_it() {
    // A snapshot newer than every buffered update: they are dropped, and live updates it
    // holds are ignored until one spans it.
    let mut feed = connected(&[DataType::Orderbook]);
    feed.on_text(&fixture!("books_update_1_zero.json"), NOW);
    let actions = feed.on_snapshot("BTC-USDT", rest("books_rest_snapshot_2.json"), NOW);
    assert!(actions.is_empty(), "{actions:?}");
    assert_eq!(last_update_id(&mut feed), Some(123_465));
    assert!(feed
        .on_text(&fixture!("books_update_2_zero.json"), NOW)
        .is_empty());
    // prevSeqId 123462 <= 123465 < 123470.
    let spanning = fixture!("books_seq_gap.json")
        .replace("123465", "123462")
        .replace("487653340", "0");
    assert_eq!(
        feed.on_text(&spanning, NOW),
        vec![Action::Seen(BOOK.into())]
    );
    assert_eq!(last_update_id(&mut feed), Some(123_470));

    // The first update left starts after the snapshot: the ones between are missing.
    let mut feed = connected(&[DataType::Orderbook]);
    feed.on_text(&fixture!("books_update_0.json"), NOW);
    feed.on_text(&fixture!("books_update_2_zero.json"), NOW);
    let actions = feed.on_snapshot("BTC-USDT", rest("books_rest_snapshot.json"), NOW);
    assert!(
        is_gap(
            &actions,
            BOOK,
            "snapshot older than the updates: seqId 123456, next update's prevSeqId 123460"
        ),
        "{actions:?}"
    );
    assert!(asks_for_a_snapshot(&actions), "{actions:?}");
    assert!(feed.books(NOW).is_empty());
}

#[test]
fn a_snapshot_older_than_the_buffered_updates_is_fetched_again() {
    let mut feed = connected(&[DataType::Orderbook]);
    let first = feed.on_text(&fixture!("books_update_1_zero.json"), NOW);
    assert!(asks_for_a_snapshot(&first), "{first:?}");
    feed.on_text(&fixture!("books_update_2_zero.json"), NOW);
    let old = rest("books_rest_snapshot.json").map(|b| b.replace("123456", "123450"));
    let actions = feed.on_snapshot("BTC-USDT", old, NOW);
    assert!(
        is_gap(
            &actions,
            BOOK,
            "snapshot older than the updates: seqId 123450, first update's prevSeqId 123456"
        ),
        "{actions:?}"
    );
    // At once: the first failure in a row.
    assert!(asks_for_a_snapshot(&actions), "{actions:?}");
    assert!(feed.books(NOW).is_empty());
    // The buffered updates waited for the next one.
    let actions = feed.on_snapshot("BTC-USDT", rest("books_rest_snapshot.json"), NOW);
    assert_eq!(actions, vec![Action::Seen(BOOK.into()); 2]);
    assert_eq!(last_update_id(&mut feed), Some(123_461));
}

#[test]
fn failed_snapshots_are_problems_naming_the_instrument_asked_again_ever_more_slowly() {
    let mut feed = connected(&[DataType::Orderbook]);
    let beat = fixture!("books_heartbeat.json");
    feed.on_text(&beat, NOW);
    let actions = feed.on_snapshot("BTC-USDT", rest("books_rest_error.json"), NOW);
    assert!(
        is_problem(
            &actions,
            BOOK,
            "books snapshot of BTC-USDT: okx answers code 51001: Instrument ID does not exist"
        ),
        "{actions:?}"
    );
    // The first failure is asked again at once, the next ones after 1 s doubling to 30 s:
    // then the next update asks.
    assert!(asks_for_a_snapshot(&actions), "{actions:?}");
    let mut now = NOW;
    for pause in [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000] {
        let actions = feed.on_snapshot("BTC-USDT", Err("GET …: 503 refused".into()), now);
        assert!(is_problem(&actions, BOOK, "BTC-USDT: failed: GET …: 503"));
        assert!(fetches(&actions).is_empty(), "{actions:?}");
        assert!(feed.on_text(&beat, now + pause - 1).is_empty());
        now += pause;
        let actions = feed.on_text(&beat, now);
        assert!(asks_for_a_snapshot(&actions), "{pause}: {actions:?}");
    }
    let actions = feed.on_snapshot("BTC-USDT", Ok("<html>".into()), now);
    assert!(is_problem(&actions, BOOK, "not JSON"), "{actions:?}");
    assert!(feed.books(NOW).is_empty());
}

#[test]
fn a_late_rest_answer_is_ignored() {
    // A mirror's in-band snapshot wins the race with the REST one.
    let mut feed = connected(&[DataType::Orderbook]);
    assert!(asks_for_a_snapshot(
        &feed.on_text(&fixture!("books_update_0.json"), NOW)
    ));
    assert_eq!(
        feed.on_text(&fixture!("books_snapshot.json"), NOW),
        vec![Action::Seen(BOOK.into())]
    );
    let late = feed.on_snapshot("BTC-USDT", rest("books_rest_snapshot_2.json"), NOW);
    assert!(late.is_empty(), "{late:?}");
    assert_eq!(last_update_id(&mut feed), Some(123_456));
    assert_eq!(
        feed.on_text(&fixture!("books_update_1.json"), NOW),
        vec![Action::Seen(BOOK.into())]
    );
    // An answer to a request made before a reconnect.
    let mut feed = connected(&[DataType::Orderbook]);
    feed.on_text(&fixture!("books_update_1_zero.json"), NOW);
    feed.on_connect(NOW);
    let late = feed.on_snapshot("BTC-USDT", rest("books_rest_snapshot.json"), NOW);
    assert!(late.is_empty(), "{late:?}");
    assert!(feed.books(NOW).is_empty());
    // One for a book never configured.
    let stray = feed.on_snapshot("ETH-USDT", rest("books_rest_snapshot.json"), NOW);
    assert!(is_problem(&stray, "okx", "never asked"), "{stray:?}");
}

#[test]
fn a_crossed_book_is_a_gap_and_re_syncs() {
    let mut feed = connected(&[DataType::Orderbook]);
    feed.on_text(&fixture!("books_update_1_zero.json"), NOW);
    feed.on_snapshot("BTC-USDT", rest("books_rest_snapshot.json"), NOW);
    assert_eq!(last_update_id(&mut feed), Some(123_460));
    let crossing = fixture!("books_update_2_zero.json")
        .replace(r#""bids": []"#, r#""bids": [["65005", "1", "0", "1"]]"#);
    let actions = feed.on_text(&crossing, NOW);
    assert!(
        is_gap(&actions, BOOK, "crossed book at seqId 123461"),
        "{actions:?}"
    );
    assert!(asks_for_a_snapshot(&actions), "{actions:?}");
    assert!(feed.books(NOW).is_empty());
}

#[test]
fn the_buffer_is_bounded() {
    let mut feed = connected(&[DataType::Orderbook]);
    let beat = fixture!("books_heartbeat.json");
    for _ in 0..BUFFER_LIMIT {
        let actions = feed.on_text(&beat, NOW);
        assert!(!actions.iter().any(|a| matches!(a, Action::Gap { .. })));
    }
    let actions = feed.on_text(&beat, NOW);
    assert!(
        is_gap(
            &actions,
            BOOK,
            "5000 updates buffered and still no snapshot: dropped them"
        ),
        "{actions:?}"
    );
    assert_eq!(feed.books["BTC-USDT"].buffer.len(), 1);
}

#[test]
fn the_rest_answer_is_read_as_documented() {
    let snapshot = rest_snapshot(&rest("books_rest_snapshot.json").unwrap()).unwrap();
    assert_eq!(
        (snapshot.seq, snapshot.ts_ms, snapshot.checksum),
        (123_456, 1_717_000_000_000, 0)
    );
    assert_eq!((snapshot.bids.len(), snapshot.asks.len()), (5, 4));
    assert_eq!(snapshot.bids[0], ("65000.1".to_string(), "0.5".to_string()));
    assert_eq!(snapshot.asks[3], ("65010".to_string(), "4".to_string()));
    let error = rest_snapshot(&rest("books_rest_error.json").unwrap()).unwrap_err();
    assert_eq!(
        error,
        "okx answers code 51001: Instrument ID does not exist"
    );
    assert!(rest_snapshot("<html>").unwrap_err().contains("not JSON"));
    assert!(rest_snapshot(r#"{"msg":""}"#)
        .unwrap_err()
        .contains("without a code"));
    let empty = r#"{"code":"0","msg":"","data":[]}"#;
    assert!(rest_snapshot(empty).unwrap_err().contains("without data"));
    let no_seq = rest("books_rest_snapshot.json")
        .unwrap()
        .replace("\"seqId\"", "\"x\"");
    assert!(rest_snapshot(&no_seq).unwrap_err().contains("seqId"));
}

#[test]
fn updates_wait_for_a_snapshot_and_reconnect_resets_books() {
    let mut feed = connected(&[DataType::Orderbook]);
    let actions = feed.on_text(&fixture!("books_update_1.json"), NOW);
    assert!(asks_for_a_snapshot(&actions), "{actions:?}");
    assert_eq!(seen(&actions), 0);
    assert!(feed.books(NOW).is_empty());
    feed.on_text(&fixture!("books_snapshot.json"), NOW);
    assert_eq!(feed.books(NOW).len(), 1);
    feed.on_connect(NOW);
    assert!(feed.books(NOW).is_empty());
    // The new connection's books ask for their own snapshot.
    let actions = feed.on_text(&fixture!("books_update_1.json"), NOW);
    assert!(asks_for_a_snapshot(&actions), "{actions:?}");
    assert!(feed.books(NOW).is_empty());
}

#[test]
fn malformed_book_frames_are_problems_and_re_sync() {
    let mut feed = connected(&[DataType::Orderbook]);
    feed.on_text(&fixture!("books_snapshot.json"), NOW);
    let bad_level = fixture!("books_update_1.json").replace(r#"["65001", "1.5", "0", "2"]"#, "[1]");
    let actions = feed.on_text(&bad_level, NOW);
    assert!(is_problem(&actions, BOOK, "books asks"), "{actions:?}");
    assert!(asks_for_a_snapshot(&actions), "{actions:?}");
    assert!(feed.books(NOW).is_empty());
    let mut feed = connected(&[DataType::Orderbook]);
    let no_seq = fixture!("books_snapshot.json").replace("\"seqId\"", "\"x\"");
    let actions = feed.on_text(&no_seq, NOW);
    assert!(is_problem(&actions, BOOK, "seqId"), "{actions:?}");
    let bad_price = fixture!("books_snapshot.json").replace("65010", "6x");
    let actions = feed.on_text(&bad_price, NOW);
    assert!(is_problem(&actions, BOOK, "books snapshot"), "{actions:?}");
    let odd = fixture!("books_snapshot.json").replace("\"snapshot\"", "\"partial\"");
    assert!(is_problem(&feed.on_text(&odd, NOW), BOOK, "partial"));
    let bad_checksum = fixture!("books_update_1.json").replace("-1767015362", "\"x\"");
    assert!(is_problem(
        &feed.on_text(&bad_checksum, NOW),
        BOOK,
        "checksum"
    ));
    assert!(feed.books(NOW).is_empty());
}

#[test]
fn funding_carries_the_cached_mark_and_index_prices() {
    let mut feed = connected(&[DataType::FundingRate]);
    let stream = "funding_rate.okx.perpetual.BTC-USDT";
    assert_eq!(feed.streams(), vec![stream]);
    let first = feed.on_text(&fixture!("funding_rate.json"), NOW);
    let MarketData::FundingRate(f) = &published(&first)[0].data else {
        panic!("{first:?}")
    };
    assert_eq!((f.mark_price, f.index_price), (Decimal8(0), Decimal8(0)));
    assert!(feed.on_text(&fixture!("mark_price.json"), NOW).is_empty());
    assert!(feed
        .on_text(&fixture!("index_tickers.json"), NOW)
        .is_empty());
    let actions = feed.on_text(&fixture!("funding_rate.json"), NOW);
    let m = published(&actions)[0];
    assert_eq!(m.subject(), stream);
    assert_eq!(m.ts_ms, 1_717_000_001_000);
    assert_eq!(
        m.data,
        MarketData::FundingRate(FundingRate {
            // 0.0001875391284828 rounded to 8 digits.
            current_funding_rate: d("0.00018754"),
            mark_price: d("65010.3"),
            index_price: d("65005.2"),
            funding_ts_ms: 1_717_027_200_000,
            next_funding_ts_ms: 1_717_056_000_000,
        })
    );
    let no_ts = fixture!("funding_rate.json").replace("\"ts\"", "\"t\"");
    assert_eq!(published(&feed.on_text(&no_ts, NOW))[0].ts_ms, NOW);
    let broken = fixture!("funding_rate.json").replace("fundingTime", "x");
    assert!(is_problem(
        &feed.on_text(&broken, NOW),
        stream,
        "fundingTime"
    ));
    let bad_mark = fixture!("mark_price.json").replace("65010.3", "high");
    assert!(is_problem(&feed.on_text(&bad_mark, NOW), stream, "markPx"));
}

#[test]
fn open_interest_is_throttled_and_priced_from_the_mark_when_usd_is_missing() {
    let mut feed = connected(&[DataType::OpenInterest]);
    let stream = "open_interest.okx.perpetual.BTC-USDT";
    let actions = feed.on_text(&fixture!("open_interest.json"), NOW);
    let m = published(&actions)[0];
    assert_eq!((m.subject().as_str(), m.ts_ms), (stream, 1_717_000_002_000));
    assert_eq!(
        m.data,
        MarketData::OpenInterest(OpenInterest {
            open_interest_value: d("2716508.7"),
            open_interest_usd: d("1766050000.5"),
            mark_price: Decimal8(0),
        })
    );
    feed.on_text(&fixture!("mark_price.json"), NOW);
    let soon = feed.on_text(&fixture!("open_interest_no_usd.json"), NOW + 3_000);
    assert_eq!(soon, vec![Action::Seen(stream.into())]);
    let later = feed.on_text(&fixture!("open_interest_no_usd.json"), NOW + 30_000);
    assert_eq!(
        published(&later)[0].data,
        MarketData::OpenInterest(OpenInterest {
            open_interest_value: d("2716508.7"),
            // 27165.087 × 65010.3
            open_interest_usd: d("1766010455.3961"),
            mark_price: d("65010.3"),
        })
    );
    let broken = fixture!("open_interest.json").replace("\"oi\"", "\"x\"");
    assert!(is_problem(&feed.on_text(&broken, NOW), stream, "\"oi\""));
}

#[test]
fn liquidations_of_configured_swaps_only() {
    let mut feed = connected(&[DataType::Liquidation]);
    let stream = "liquidation.okx.perpetual.BTC-USDT";
    assert_eq!(feed.streams(), vec![stream]);
    let actions = feed.on_text(&fixture!("liquidation_orders.json"), NOW);
    assert_eq!(actions.len(), 2, "{actions:?}");
    let m = published(&actions)[0];
    assert_eq!((m.subject().as_str(), m.ts_ms), (stream, 1_717_000_003_000));
    assert_eq!(
        m.data,
        MarketData::Liquidation(Liquidation {
            side: "sell".into(),
            price: d("64890.5"),
            quantity: d("13"),
            liquidation_ts_ms: 1_717_000_003_000,
        })
    );
    let broken = fixture!("liquidation_orders.json").replace("\"bkPx\":\"64880\"", "\"bkPx\":5");
    let actions = feed.on_text(&broken, NOW);
    assert!(is_problem(&actions, stream, "bkPx"), "{actions:?}");
}

#[test]
fn events_pongs_and_unknown_frames() {
    let mut feed = connected(&DataType::ALL);
    assert!(feed
        .on_text(&fixture!("subscribe_event.json"), NOW)
        .is_empty());
    assert!(feed.on_text("pong", NOW).is_empty());
    let actions = feed.on_text(&fixture!("error_event.json"), NOW);
    assert!(
        is_problem(&actions, "okx", "okx rejects a request: 60018"),
        "{actions:?}"
    );
    assert!(is_problem(&actions, "okx", "instId:BTC-XYZ"));
    let actions = feed.on_text(&fixture!("error_event_arg.json"), NOW);
    assert!(
        is_problem(
            &actions,
            "funding_rate.okx.perpetual.BTC-USDT",
            "okx rejects {"
        ) && is_problem(&actions, "funding_rate.okx.perpetual.BTC-USDT", "60018"),
        "{actions:?}"
    );
    assert!(is_problem(
        &feed.on_text("{not json", NOW),
        "okx",
        "not JSON"
    ));
    assert!(is_problem(&feed.on_text("[1,2]", NOW), "okx", "neither"));
    assert!(is_problem(
        &feed.on_text(r#"{"event":"login"}"#, NOW),
        "okx",
        "login"
    ));
    let unknown = r#"{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[]}"#;
    assert!(is_problem(&feed.on_text(unknown, NOW), "okx", "tickers"));
    let no_data = r#"{"arg":{"channel":"trades","instId":"BTC-USDT"}}"#;
    assert!(is_problem(&feed.on_text(no_data, NOW), "okx", "data"));
    let other = fixture!("trades.json").replace("BTC-USDT", "ETH-USDT");
    assert!(is_problem(&feed.on_text(&other, NOW), "okx", "ETH-USDT"));
    let bad = fixture!("trades.json").replace("\"px\":\"65000.1\"", "\"px\":65000.1");
    let actions = feed.on_text(&bad, NOW);
    assert!(is_problem(&actions, "trade.okx.spot.BTC-USDT", "px"));
    assert_eq!(published(&actions).len(), 1);
    let odd_side = fixture!("trades.json").replace("\"buy\"", "\"up\"");
    assert!(is_problem(
        &feed.on_text(&odd_side, NOW),
        "trade.okx.spot.BTC-USDT",
        "side"
    ));
    let notice = r#"{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade."}"#;
    assert!(is_problem(&feed.on_text(notice, NOW), "okx", "64008"));
    assert!(is_problem(
        &feed.on_snapshot("x", Ok(String::new()), NOW),
        "okx",
        "never asked"
    ));
}

#[test]
fn no_frame_panics() {
    let mut feed = connected(&DataType::ALL);
    let frames = [
        "",
        "null",
        "1",
        "\"x\"",
        "{}",
        r#"{"arg":null}"#,
        r#"{"arg":{},"data":{}}"#,
        r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"data":[1,null,{}]}"#,
        r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"prevSeqId":-1}]}"#,
        r#"{"arg":{"channel":"liquidation-orders"},"data":[{"instId":"BTC-USDT-SWAP","details":[{}]}]}"#,
        r#"{"arg":{"channel":"index-tickers","instId":"BTC-USDT"},"data":[{"idxPx":"1.123456789"}]}"#,
        r#"{"arg":{"channel":"open-interest","instId":"BTC-USDT-SWAP"},"data":[{"oi":"é.éééééééééé"}]}"#,
        r#"{"event":5,"code":1}"#,
    ];
    for frame in frames {
        feed.on_text(frame, NOW);
    }
}

#[test]
fn round8_rounds_half_away_from_zero() {
    assert_eq!(round8("0.0001875391284828").unwrap(), d("0.00018754"));
    assert_eq!(round8("0.000187531").unwrap(), d("0.00018753"));
    assert_eq!(round8("-0.000000005").unwrap(), d("-0.00000001"));
    assert_eq!(round8("-0.000000001").unwrap(), d("0"));
    assert_eq!(round8("1.99999999999").unwrap(), d("2"));
    assert_eq!(round8("65000.5").unwrap(), d("65000.5"));
    assert_eq!(round8("42").unwrap(), d("42"));
    assert!(round8("1.0000000001x").is_err());
    assert!(round8("1.é23456789").is_err());
    assert!(round8("").is_err());
    assert_eq!(
        multiply(d("2.5"), d("-0.00000001")).unwrap(),
        d("-0.00000003")
    );
    assert!(multiply(Decimal8(i64::MAX), d("2")).is_err());
}
