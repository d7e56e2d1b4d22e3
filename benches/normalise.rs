//! The collector's normalisation path on one core: Binance spot depth diffs applied to a
//! synced local book, and trades turned into MarketPrism messages (and their JSON, as the
//! collector publishes it). Run by `bench/normalise.sh`; prints one line per case.

use std::time::{Duration, Instant};

use mp_remote::pipeline::config::Endpoints;
use mp_remote::pipeline::message::{DataType, Exchange};
use mp_remote::pipeline::source::exchanges::feed::{Action, Feed};
use mp_remote::pipeline::source::exchanges::{binance, Urls, VenuePlan};

const FRAMES: u64 = 300_000;

fn spot_feed() -> Box<dyn Feed> {
    let plan = VenuePlan {
        symbols: vec!["BTC-USDT".into()],
        types: vec![DataType::Trade, DataType::Orderbook],
        book_depth: 20,
        urls: Urls::of(Exchange::Binance, &Endpoints::default()),
    };
    let mut feed = binance::feeds(&plan).0.remove(0);
    feed.on_connect(0);
    feed
}

/// 1000 levels a side around 65000, as a REST snapshot.
fn snapshot() -> String {
    // In cents: bids from 64999.99 down, asks from 65000.01 up.
    let side = |sign: i64| -> Vec<[String; 2]> {
        (1..=1000)
            .map(|i| {
                let cents = 6_500_000 + sign * i;
                [format!("{}.{:02}", cents / 100, cents % 100), "1.5".into()]
            })
            .collect()
    };
    serde_json::json!({"lastUpdateId": 1, "bids": side(-1), "asks": side(1)}).to_string()
}

/// Diff `k`: one bid and one ask level changed, a few levels deep.
fn diff(k: u64) -> String {
    let level = k % 50;
    format!(
        r#"{{"stream":"btcusdt@depth@100ms","data":{{"e":"depthUpdate","E":{k},"s":"BTCUSDT","U":{k},"u":{k},"b":[["64999.{level:02}","{}.5"]],"a":[["65000.{:02}","{}.25"]]}}}}"#,
        k % 7,
        level + 1,
        k % 5 + 1
    )
}

fn trade(k: u64) -> String {
    format!(
        r#"{{"stream":"btcusdt@trade","data":{{"e":"trade","E":{k},"s":"BTCUSDT","t":{k},"p":"65000.1","q":"0.001","T":{k},"m":{}}}}}"#,
        k.is_multiple_of(2)
    )
}

fn report(case: &str, frames: u64, elapsed: Duration) {
    println!(
        "{case:<34} {frames:>8} frames in {:>7.3} s = {:>9.0} frames/s on one core",
        elapsed.as_secs_f64(),
        frames as f64 / elapsed.as_secs_f64()
    );
}

fn main() {
    let mut feed = spot_feed();
    let first = feed.on_text(&diff(1), 0);
    assert!(
        matches!(first.as_slice(), [Action::FetchSnapshot { .. }]),
        "{first:?}"
    );
    let synced = feed.on_snapshot("spot:BTCUSDT", Ok(snapshot()), 0);
    assert!(synced.is_empty(), "{synced:?}");
    // Frames are made before the clock starts: only the handler is timed.
    let diffs: Vec<String> = (2..FRAMES + 2).map(diff).collect();
    let started = Instant::now();
    for frame in &diffs {
        let actions = feed.on_text(frame, 0);
        debug_assert!(
            matches!(actions.as_slice(), [Action::Seen(_)]),
            "{actions:?}"
        );
    }
    report("binance depth diff (apply)", FRAMES, started.elapsed());
    let started = Instant::now();
    let books = 10_000;
    for _ in 0..books {
        assert_eq!(feed.books(0).len(), 1);
    }
    report("binance book top-20 (publish)", books, started.elapsed());

    let trades: Vec<String> = (0..FRAMES).map(trade).collect();
    let started = Instant::now();
    let mut published = 0u64;
    for frame in &trades {
        for action in feed.on_text(frame, 0) {
            if let Action::Publish(message) = action {
                published += 1;
                std::hint::black_box(message);
            }
        }
    }
    assert_eq!(published, FRAMES);
    report("binance trade (normalise)", FRAMES, started.elapsed());
    let started = Instant::now();
    let mut bytes = 0usize;
    for frame in &trades {
        for action in feed.on_text(frame, 0) {
            if let Action::Publish(message) = action {
                bytes += message.to_json().len();
            }
        }
    }
    std::hint::black_box(bytes);
    report(
        "binance trade (normalise + JSON)",
        FRAMES,
        started.elapsed(),
    );
}
