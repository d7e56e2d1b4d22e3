use super::*;
use crate::pipeline::config::SourceConfig;
use crate::pipeline::message::Decimal8;
use crate::pipeline::source::synthetic::Generator;
use crate::stack::clickhouse::tables::TABLES;

const TS: i64 = 1_700_000_000_123;

fn messages(n: usize) -> Vec<MarketMessage> {
    let mut g = Generator::new(&SourceConfig::default()).unwrap();
    (0..n).map(|_| g.generate(TS)).collect()
}

#[test]
fn time_encoding_per_rendering() {
    let modern = TimeEncoding::from(SchemaRendering::Modern);
    let legacy = TimeEncoding::from(SchemaRendering::Legacy);
    assert_eq!(modern.time(TS, "ts_ms"), Ok(Time::Ms(TS)));
    assert_eq!(legacy.time(TS, "ts_ms"), Ok(Time::Secs(1_700_000_000)));
    assert!(modern
        .time(-1, "ts_ms")
        .unwrap_err()
        .contains("before 1970"));
    assert!(legacy.time(5_000_000_000_000, "ts_ms").is_err());
}

/// Untagged: a time serialises as the bare integer (i64 or u32 in RowBinary), never as a
/// tagged enum.
#[test]
fn time_serialises_bare() {
    assert_eq!(serde_json::to_string(&Time::Ms(5)).unwrap(), "5");
    assert_eq!(serde_json::to_string(&Time::Secs(5)).unwrap(), "5");
}

#[test]
fn every_data_type_lands_in_its_table() {
    for enc in [TimeEncoding::Millis, TimeEncoding::Seconds] {
        let mut rows = TableRows::default();
        for m in messages(14) {
            rows.push(&m, enc).unwrap();
        }
        assert_eq!(rows.data_types(), DataType::ALL.to_vec());
        assert_eq!(rows.len(DataType::Trade), 7);
        for t in DataType::ALL {
            assert!(rows.len(t) >= 1, "{t}");
        }
    }
}

#[test]
fn row_structs_name_every_column_but_the_defaults() {
    use clickhouse::Row;
    let names: [(&str, &[&str]); 8] = [
        ("orderbooks", OrderbookRow::COLUMN_NAMES),
        ("trades", TradeRow::COLUMN_NAMES),
        ("funding_rates", FundingRateRow::COLUMN_NAMES),
        ("open_interests", OpenInterestRow::COLUMN_NAMES),
        ("liquidations", LiquidationRow::COLUMN_NAMES),
        ("lsr_top_positions", LsrTopPositionRow::COLUMN_NAMES),
        ("lsr_all_accounts", LsrAllAccountRow::COLUMN_NAMES),
        ("volatility_indices", VolatilityIndexRow::COLUMN_NAMES),
    ];
    for ((table, columns), spec) in names.iter().zip(TABLES.iter()) {
        assert_eq!(*table, spec.name);
        let wanted: Vec<&str> = spec
            .columns()
            .map(|c| c.name)
            .filter(|n| !["data_source", "created_at"].contains(n))
            .collect();
        assert_eq!(columns.to_vec(), wanted, "{table}");
    }
}

#[test]
fn trade_row_fields() {
    let m = messages(1).remove(0);
    let MarketData::Trade(t) = &m.data else {
        panic!("first message is a trade")
    };
    let mut rows = TableRows::default();
    rows.push(&m, TimeEncoding::Seconds).unwrap();
    let row = &rows.trades[0];
    assert_eq!(row.timestamp, Time::Secs(1_700_000_000));
    assert_eq!(row.trade_time, Time::Secs(1_700_000_000));
    assert_eq!(row.exchange, "binance");
    assert_eq!(row.market_type, "spot");
    assert_eq!(row.symbol, "BTC-USDT");
    assert_eq!(row.price, t.price.0);
    assert_eq!(row.side, t.side);
}

#[test]
fn orderbook_row_takes_best_levels_and_keeps_levels_as_json() {
    let m: MarketMessage = serde_json::from_value(serde_json::json!({
        "exchange": "okx", "market_type": "perpetual", "symbol": "ETH-USDT",
        "data_type": "orderbook", "ts_ms": TS, "collected_ts_ms": TS,
        "bids": [["3499.5", "2"], ["3500", "1.5"]],
        "asks": [["3501", "0.25"], ["3500.5", "3"]],
        "last_update_id": 77, "depth_levels": 2
    }))
    .unwrap();
    let mut rows = TableRows::default();
    rows.push(&m, TimeEncoding::Millis).unwrap();
    let row = &rows.orderbooks[0];
    assert_eq!(row.timestamp, Time::Ms(TS));
    assert_eq!(row.last_update_id, 77);
    assert_eq!((row.bids_count, row.asks_count), (2, 2));
    assert_eq!(Decimal8(row.best_bid_price).to_string(), "3500");
    assert_eq!(Decimal8(row.best_bid_quantity).to_string(), "1.5");
    assert_eq!(Decimal8(row.best_ask_price).to_string(), "3500.5");
    assert_eq!(Decimal8(row.best_ask_quantity).to_string(), "3");
    assert_eq!(row.bids, r#"[["3499.5","2"],["3500","1.5"]]"#);
}

#[test]
fn derived_columns() {
    let m: MarketMessage = serde_json::from_value(serde_json::json!({
        "exchange": "deribit", "market_type": "options", "symbol": "BTC",
        "data_type": "volatility_index", "ts_ms": TS, "collected_ts_ms": TS,
        "volatility_index": "52.25", "underlying_asset": "BTC"
    }))
    .unwrap();
    let mut rows = TableRows::default();
    rows.push(&m, TimeEncoding::Millis).unwrap();
    let v = &rows.volatility_indices[0];
    assert_eq!(v.index_value, 5_225_000_000);
    assert_eq!(v.maturity_date, (TS / 86_400_000) as u16);

    let m: MarketMessage = serde_json::from_value(serde_json::json!({
        "exchange": "binance", "market_type": "perpetual", "symbol": "BTC-USDT",
        "data_type": "open_interest", "ts_ms": TS, "collected_ts_ms": TS,
        "open_interest_value": "100", "open_interest_usd": "6500000", "mark_price": "65000"
    }))
    .unwrap();
    rows.push(&m, TimeEncoding::Millis).unwrap();
    let o = &rows.open_interests[0];
    assert_eq!(o.open_interest, 10_000_000_000);
    assert_eq!(o.open_interest_value, 650_000_000_000_000);
    assert_eq!(o.count, 0);
}

#[test]
fn impossible_times_are_refused() {
    let mut m = messages(1).remove(0);
    m.ts_ms = -5;
    let e = TableRows::default()
        .push(&m, TimeEncoding::Millis)
        .unwrap_err();
    assert!(e.contains("ts_ms -5"), "{e}");
}
