//! `collector` tables: merged like vars, each wrong value refused with its position.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::super::resolve::Env;
use super::super::{parse_in, Inventory, InventoryError};
use crate::pipeline::config::SourceKind;
use crate::pipeline::message::{DataType, Exchange};

const HOSTS: &str = "[[hosts]]\nname = \"a\"\naddress = \"10.0.0.1\"\nroles = [\"collector\"]\n\n\
[[hosts]]\nname = \"b\"\naddress = \"10.0.0.2\"\nroles = [\"collector\"]\n";

fn parse(text: &str) -> Result<Inventory, InventoryError> {
    let env = Env {
        home: Some(PathBuf::from("/home/me")),
        user: "me".into(),
        existing_files: Some(BTreeSet::new()),
    };
    parse_in(text, Path::new("inv.toml"), None, &env)
}

/// The error for `text`, as `line:col: message`.
fn refused(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => {
            let (_, line, col) = e.location().expect("a position");
            format!("{line}:{col}: {}", e.summary())
        }
    }
}

#[test]
fn groups_and_hosts_merge_key_by_key() {
    let text = format!(
        "{HOSTS}\n[defaults.collector]\nsource = \"exchanges\"\nsymbols = [\"BTC-USDT\"]\n\
         [defaults.collector.okx]\nws_url = \"ws://10.9.9.9:1/okx\"\n\n\
         [groups.fast]\nhosts = [\"b\"]\n[groups.fast.collector]\nexchanges = [\"okx\"]\n\
         types = [\"trade\", \"orderbook\"]\nbook_depth = 5\nbook_interval = \"250ms\"\n"
    );
    let inv = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let a = &inv.host("a").unwrap().collector.source;
    assert_eq!(a.kind, SourceKind::Exchanges);
    assert_eq!(a.exchanges, Exchange::ALL.to_vec());
    assert_eq!(a.symbols, ["BTC-USDT"]);
    let b = &inv.host("b").unwrap().collector.source;
    assert_eq!(b.exchanges, [Exchange::Okx]);
    assert_eq!(b.types, [DataType::Trade, DataType::Orderbook]);
    assert_eq!(b.book_depth, 5);
    assert_eq!(b.book_interval, Duration::from_millis(250));
    assert_eq!(b.okx.ws_url.as_deref(), Some("ws://10.9.9.9:1/okx"));
}

#[test]
fn without_a_table_the_collector_stays_synthetic() {
    let inv = parse(HOSTS).unwrap();
    let a = &inv.host("a").unwrap().collector;
    assert_eq!(a.source.kind, SourceKind::Synthetic);
    assert_eq!(a.rate, None);
}

#[test]
fn each_wrong_value_is_refused_where_it_is_written() {
    let cases: [(&str, &str); 13] = [
        ("source = \"npm\"", "unknown source \"npm\""),
        (
            "source = \"exchanges\"\nexchanges = [\"kraken\"]",
            "unknown exchange \"kraken\"",
        ),
        ("source = \"exchanges\"\nexchanges = []", "empty exchanges"),
        (
            "source = \"exchanges\"\nsymbols = [\"btcusdt\"]",
            "symbol \"btcusdt\" is not BASE-QUOTE",
        ),
        (
            "source = \"exchanges\"\ntypes = [\"candles\"]",
            "unknown data type \"candles\"",
        ),
        ("source = \"exchanges\"\nbook_depth = 0", "book_depth"),
        ("source = \"exchanges\"\nbook_depth = \"20\"", "book_depth"),
        (
            "source = \"exchanges\"\nbook_interval = \"10ms\"",
            "book_interval",
        ),
        (
            "source = \"exchanges\"\nstall_after = \"soon\"",
            "invalid duration \"soon\"",
        ),
        ("rate = -1", "rate"),
        ("source = \"exchanges\"\nws = 1", "ws"),
        (
            "source = \"exchanges\"\nexchanges = [\"okx\"]\ntypes = [\"volatility_index\"]",
            "volatility_index is not served by",
        ),
        (
            "types = [\"trade\"]",
            "types applies to source = \"exchanges\" only",
        ),
    ];
    for (table, expected) in cases {
        let text = format!("{HOSTS}[hosts.collector]\n{table}\n");
        let error = refused(&text);
        assert!(error.contains(expected), "{table}: {error}");
        // The position is the offending line of the table, never the top of the file.
        let line: usize = error.split(':').next().unwrap().parse().unwrap();
        assert!(line > 10, "{table}: {error}");
    }
}

#[test]
fn endpoints_are_urls_of_the_right_kind_and_futures_are_binance_only() {
    let at = |table: &str| {
        refused(&format!(
            "{HOSTS}[hosts.collector]\nsource = \"exchanges\"\n{table}\n"
        ))
    };
    assert!(at("[hosts.collector.okx]\nws_url = \"http://x\"").contains("okx.ws_url"));
    assert!(at("[hosts.collector.binance]\nrest_url = \"ws://x\"").contains("binance.rest_url"));
    assert!(at("[hosts.collector.okx]\nfutures_ws_url = \"wss://x\"")
        .contains("only binance has separate futures endpoints"));
    assert!(at("[hosts.collector.deribit]\nws_url = \"wss://a b\"").contains("deribit.ws_url"));
    assert!(at("[hosts.collector.deribit]\nwsurl = \"wss://x\"").contains("wsurl"));
}

#[test]
fn deribit_needs_a_btc_or_eth_symbol() {
    let text = format!(
        "{HOSTS}[hosts.collector]\nsource = \"exchanges\"\nexchanges = [\"deribit\"]\nsymbols = [\"SOL-USDT\"]\n"
    );
    assert!(
        refused(&text).contains("deribit has no instrument"),
        "{}",
        refused(&text)
    );
}

#[test]
fn a_host_without_the_collector_role_ignores_a_fleet_wide_table() {
    let text = "[[hosts]]\nname = \"n\"\naddress = \"10.0.0.3\"\nroles = [\"nats\"]\n\n\
                [defaults.collector]\nsource = \"exchanges\"\n";
    let inv = parse(text).unwrap();
    assert_eq!(
        inv.host("n").unwrap().collector.source.kind,
        SourceKind::Synthetic
    );
}
