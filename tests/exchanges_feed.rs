//! Live exchange sources on one real host with the whole pipeline, against the test exchange
//! (tests/support/exchanges.rs: Binance spot and USD-M futures, OKX and Deribit on their
//! documented wire formats, with faults scripted on each first connection). The deploy proves
//! trades and order books arrive and every slow stream delivered; then the collector's health
//! and the server's counters show each fault handled: Binance's depth gap and OKX's seqId gap
//! re-snapshotted over REST, Binance's forced disconnect reconnected, Deribit's change_id gap
//! resubscribed, pings and heartbeats answered. Last, every Binance spot trade the server sent,
//! across the reconnect, is in ClickHouse.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::exchanges::{self, ExchangeServer};
use crate::support::pipeline::Pipeline;
use crate::support::rolling::latest_run;
use crate::support::site::gateway;
use crate::support::{mp_remote, wait_for, Fleet};

const COMPONENTS: &str =
    "[components.nats]\nsource = \"os\"\n\n[components.clickhouse]\nsource = \"os\"\n";

const EXCHANGES: &str = "exchanges = [\"binance\", \"okx\", \"deribit\"]";

/// The host's `collector` table, pointed at the test exchange. It follows the host's
/// `[[hosts]]` entry directly, so TOML attaches it to that host.
fn collector_table(server: &ExchangeServer) -> String {
    let (ws, http) = (&server.ws_base, &server.http_base);
    format!(
        "[hosts.collector]
source = \"exchanges\"
{EXCHANGES}
symbols = [\"BTC-USDT\"]
stall_after = \"30s\"

[hosts.collector.binance]
ws_url = \"{ws}{}\"
rest_url = \"{http}{}\"
futures_ws_url = \"{ws}{}\"
futures_rest_url = \"{http}{}\"

[hosts.collector.okx]
ws_url = \"{ws}{}\"
rest_url = \"{http}{}\"

[hosts.collector.deribit]
ws_url = \"{ws}{}\"
",
        exchanges::BINANCE_SPOT_WS,
        exchanges::BINANCE_SPOT_REST,
        exchanges::BINANCE_FUTURES_WS,
        exchanges::BINANCE_FUTURES_REST,
        exchanges::OKX_WS,
        exchanges::OKX_REST,
        exchanges::DERIBIT_WS,
    )
}

#[test]
fn exchange_feeds_recover_from_gaps_and_disconnects_without_losing_a_trade() {
    let fleet = Fleet::up("exchanges", 1, 0);
    let server = ExchangeServer::start(gateway(&fleet));
    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.roles = &["nats", "clickhouse", "storage", "collector"];
    let extra = format!("{}\n{COMPONENTS}", collector_table(&server));
    options.extra = &extra;
    let inventory = fleet.inventory("inv.toml", &options);

    an_unknown_exchange_is_refused_where_it_is_written(&fleet, &inventory);

    let p = Pipeline {
        fleet: &fleet,
        clickhouse: "h1",
        nats: &["h1"],
        storage: "h1",
        collector: "h1",
    };
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        feeds_recover(&inventory, &server, &p);
        nothing_lost_across_the_reconnect(&server, &p);
    }));
    if let Err(panic) = outcome {
        println!("test exchange counters:\n{}", server.counters().report());
        println!("collector health:\n{:#}", p.health("h1", 8087));
        std::panic::resume_unwind(panic);
    }
    println!(
        "exchange feeds checked in {:.0} s after the fleet was up",
        started.elapsed().as_secs_f64()
    );
}

/// `inventory check` refuses an exchange it does not know, at the item's line and column.
fn an_unknown_exchange_is_refused_where_it_is_written(fleet: &Fleet, inventory: &Path) {
    let text = std::fs::read_to_string(inventory).unwrap();
    let kraken = "exchanges = [\"kraken\"]";
    let bad = text.replacen(EXCHANGES, kraken, 1);
    assert_ne!(bad, text, "no exchanges line in\n{text}");
    let path = fleet.path("kraken.toml");
    std::fs::write(&path, &bad).unwrap();
    let line = 1 + bad.lines().position(|l| l == kraken).unwrap();
    let column = 1 + kraken.find('"').unwrap();
    let run = mp_remote(Some(&path), &["inventory", "check"]);
    assert_eq!(run.code, 1, "{run:?}");
    let at = format!("{}:{line}:{column}", path.display());
    assert!(run.stderr.contains(&at), "expected {at} in {run:?}");
    assert!(run.stderr.contains("kraken"), "{run:?}");
}

fn stream_count(health: &Value, stream: &str, field: &str) -> u64 {
    health["source"]["streams"][stream][field]
        .as_u64()
        .unwrap_or(0)
}

fn feeds_recover(inventory: &Path, server: &ExchangeServer, p: &Pipeline) {
    let deploy = mp_remote(Some(inventory), &["deploy"]);
    println!("deploy:\n{}{}", deploy.stdout, deploy.stderr);
    // Exit 0 includes layer 5: trades and order book rows arrived, every slow stream delivered.
    assert_eq!(deploy.code, 0, "{deploy:?}");
    let record = latest_run(p.fleet);
    let steps = record["hosts"][0]["steps"].as_array().unwrap();
    let step = |id: &str| {
        steps
            .iter()
            .find(|s| s["step"] == id)
            .unwrap_or_else(|| panic!("no step {id} in {record}"))
    };
    let publishing = step("verify.collector.publishing");
    let flow = step("verify.storage.data-flow");
    println!(
        "layer 5:\n  {}\n  {}",
        publishing["message"], flow["message"]
    );
    assert_eq!(flow["status"], "ok", "{flow}");
    assert_eq!(publishing["status"], "ok", "{publishing}");
    for slow in [
        "funding_rate.okx.perpetual.BTC-USDT",
        "liquidation.binance.perpetual.BTC-USDT",
        "lsr_all_account.binance.perpetual.BTC-USDT",
        "volatility_index.deribit.options.BTC",
    ] {
        let message = publishing["message"].as_str().unwrap_or_default();
        assert!(message.contains(slow), "{slow} not checked: {message}");
    }
    let health = || p.health("h1", 8087);
    assert_eq!(health()["source"]["kind"], "exchanges", "{}", health());

    // Binance spot: the skipped diff is a gap, answered with a new REST snapshot.
    let spot_book = "orderbook.binance.spot.BTC-USDT";
    wait_for("binance spot's gap seen and re-snapshotted", 60, || {
        stream_count(&health(), spot_book, "gaps") >= 1
            && server.counters().rest_hits(exchanges::BINANCE_SPOT_DEPTH) >= 2
    });
    // OKX: the skipped update is a gap, answered with a new REST snapshot (the books channel
    // no longer sends one, so resubscribing would not help).
    wait_for("okx spot's seqId gap seen and re-snapshotted", 60, || {
        stream_count(&health(), "orderbook.okx.spot.BTC-USDT", "gaps") >= 1
            && server.counters().okx_snapshots_of("BTC-USDT") >= 2
    });
    // OKX swap: a wrong non-zero checksum (a mirror that still sends them) is a gap too.
    wait_for(
        "okx swap's checksum mismatch seen and re-snapshotted",
        60,
        || {
            server.counters().okx_bad_checksums >= 1
                && stream_count(&health(), "orderbook.okx.perpetual.BTC-USDT", "gaps") >= 1
                && server.counters().okx_snapshots_of("BTC-USDT-SWAP") >= 2
        },
    );
    // Deribit: the dropped change is a gap, answered by resubscribing the book.
    wait_for("deribit's change_id gap seen and resubscribed", 60, || {
        stream_count(&health(), "orderbook.deribit.perpetual.BTC-USD", "gaps") >= 1
            && server.counters().deribit_resubscriptions >= 1
    });
    // Binance spot's forced disconnect: connected again.
    wait_for("binance spot reconnected after the close", 60, || {
        let reconnects = health()["source"]["connections"]["binance spot"]["reconnects"]
            .as_u64()
            .unwrap_or(0);
        reconnects >= 1 && server.counters().connections_to(exchanges::BINANCE_SPOT_WS) >= 2
    });
    wait_for("a pong to binance's ping", 30, || {
        server.counters().pongs >= 1
    });
    wait_for("a public/test answer to deribit's test_request", 30, || {
        server.counters().deribit_tests >= 1
    });

    // Spot books are published again past both faults: rows newer than the diff skipped and
    // than the book at the forced close.
    let counters = server.counters();
    let past = counters
        .spot_gap_id
        .expect("the spot gap was injected")
        .max(counters.spot_close_id.expect("the spot close was injected"));
    let query = format!(
        "SELECT count() FROM marketprism_hot.orderbooks WHERE exchange = 'binance' AND market_type = 'spot' AND last_update_id > {past} FORMAT TabSeparated"
    );
    wait_for(
        "binance spot order books after the gap and the reconnect",
        120,
        || p.sql(&query).trim().parse::<u64>().unwrap_or(0) >= 5,
    );

    // The handlers asked for nothing the exchanges do not document, and every kind of stream
    // was sent (the faults are the scripted ones only).
    let counters = server.counters();
    assert!(counters.refused.is_empty(), "{}", counters.report());
    assert_eq!(counters.okx_resubscriptions, 0, "{}", counters.report());
    assert!(
        !counters.faults.iter().any(|f| f.starts_with("UNSCRIPTED")),
        "{}",
        counters.report()
    );
    for stream in [
        "binance spot btcusdt@trade",
        "binance futures btcusdt@aggTrade",
        "binance futures btcusdt@forceOrder",
        "okx books BTC-USDT-SWAP",
        "okx funding-rate BTC-USDT-SWAP",
        "okx liquidation-orders SWAP",
        "deribit trades.BTC-PERPETUAL.100ms",
        "deribit deribit_volatility_index.btc_usd",
    ] {
        assert!(
            counters.frames.get(stream).copied().unwrap_or(0) > 0,
            "nothing sent on {stream}: {}",
            counters.report()
        );
    }
}

/// With Binance spot trades stopped, the trade ids stored are exactly the ids sent: none lost
/// across the forced disconnect, none made up.
fn nothing_lost_across_the_reconnect(server: &ExchangeServer, p: &Pipeline) {
    server.stop_binance_spot_trades();
    let query = "SELECT DISTINCT trade_id FROM marketprism_hot.trades WHERE exchange = 'binance' AND market_type = 'spot' FORMAT TabSeparated";
    let limit = Duration::from_secs(180);
    let started = Instant::now();
    loop {
        let sent: BTreeSet<String> = server
            .counters()
            .spot_trade_ids
            .iter()
            .map(u64::to_string)
            .collect();
        let stored: BTreeSet<String> = p.sql(query).lines().map(str::to_string).collect();
        if !sent.is_empty() && sent == stored {
            let before = server.counters().spot_trades_before_close.unwrap_or(0);
            println!(
                "nothing lost: all {} binance spot trades sent are stored, {before} of them sent before the forced close",
                sent.len()
            );
            assert!(
                before > 0 && before < sent.len(),
                "trades on both sides of the reconnect"
            );
            return;
        }
        let missing: Vec<&String> = sent.difference(&stored).take(20).collect();
        let unknown: Vec<&String> = stored.difference(&sent).take(20).collect();
        assert!(
            started.elapsed() < limit,
            "after {} s, {} of {} binance spot trades sent are not stored (first {missing:?}); {} stored were never sent ({unknown:?})",
            limit.as_secs(),
            sent.difference(&stored).count(),
            sent.len(),
            stored.difference(&sent).count(),
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
