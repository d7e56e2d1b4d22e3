use super::*;
use serde_json::{json, Value};

fn common(data_type: &str) -> Value {
    json!({
        "exchange": "binance",
        "market_type": "spot",
        "symbol": "BTC-USDT",
        "data_type": data_type,
        "ts_ms": 1_700_000_000_123_i64,
        "collected_ts_ms": 1_700_000_000_130_i64,
    })
}

fn with(data_type: &str, fields: Value) -> Value {
    let mut v = common(data_type);
    for (k, x) in fields.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

#[test]
fn decimal_text_round_trips_exactly() {
    for (text, scaled, shown) in [
        ("65000.12345678", 6_500_012_345_678, "65000.12345678"),
        ("0.1", 10_000_000, "0.1"),
        ("-0.0001", -10_000, "-0.0001"),
        ("42", 4_200_000_000, "42"),
        ("1.500000000", 150_000_000, "1.5"),
        (".5", 50_000_000, "0.5"),
    ] {
        let d: Decimal8 = text.parse().unwrap();
        assert_eq!(d.0, scaled, "{text}");
        assert_eq!(d.to_string(), shown);
    }
    for bad in [
        "",
        "-",
        "1.123456789",
        "1e5",
        "abc",
        "1.2.3",
        "99999999999999",
    ] {
        assert!(bad.parse::<Decimal8>().is_err(), "{bad} parsed");
    }
}

#[test]
fn decimal_reads_strings_and_numbers() {
    let read = |v: Value| serde_json::from_value::<Decimal8>(v).unwrap().0;
    assert_eq!(read(json!("1.25")), 125_000_000);
    assert_eq!(read(json!(1.25)), 125_000_000);
    assert_eq!(read(json!(3)), 300_000_000);
    assert_eq!(
        serde_json::to_value(Decimal8(125_000_000)).unwrap(),
        json!("1.25")
    );
}

#[test]
fn subjects_and_tables() {
    assert_eq!(
        DataType::of_subject("lsr_all_account.okx.perpetual.BTC-USDT"),
        Some(DataType::LsrAllAccount)
    );
    assert_eq!(DataType::of_subject("orderbooks.okx.spot.BTC-USDT"), None);
    assert_eq!(DataType::Orderbook.stream(), "ORDERBOOK_SNAP");
    assert_eq!(DataType::VolatilityIndex.stream(), "MARKET_DATA");
    let tables: Vec<&str> = DataType::ALL.iter().map(|t| t.table()).collect();
    let spec: Vec<&str> = crate::stack::clickhouse::tables::TABLES
        .iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(
        tables, spec,
        "one data type per hot table, in the same order"
    );
}

/// Every type's payload as MarketPrism writes it parses, and writes back the same fields.
#[test]
fn payload_fields_per_type() {
    let cases = [
        with(
            "trade",
            json!({"trade_id": "t1", "price": "65000.5", "quantity": "0.01", "side": "buy", "is_maker": false, "trade_ts_ms": 1_700_000_000_100_i64}),
        ),
        with(
            "orderbook",
            json!({"bids": [["64999.5", "1.2"]], "asks": [["65000.5", "0.4"]], "last_update_id": 17, "depth_levels": 1}),
        ),
        with(
            "funding_rate",
            json!({"current_funding_rate": "0.0001", "mark_price": "65000", "index_price": "64990", "funding_ts_ms": 1_699_999_200_000_i64, "next_funding_ts_ms": 1_700_028_000_000_i64}),
        ),
        with(
            "open_interest",
            json!({"open_interest_value": "81234.5", "open_interest_usd": "5280242500", "mark_price": "65000"}),
        ),
        with(
            "liquidation",
            json!({"side": "sell", "price": "64000", "quantity": "2", "liquidation_ts_ms": 1_700_000_000_000_i64}),
        ),
        with(
            "lsr_top_position",
            json!({"long_position_ratio": "0.55", "short_position_ratio": "0.45", "period": "5m"}),
        ),
        with(
            "lsr_all_account",
            json!({"long_account_ratio": "0.6", "short_account_ratio": "0.4", "period": "5m"}),
        ),
        with(
            "volatility_index",
            json!({"volatility_index": "52.3", "underlying_asset": "BTC"}),
        ),
    ];
    for payload in cases {
        let data_type = payload["data_type"].as_str().unwrap().to_string();
        let subject = format!("{data_type}.binance.spot.BTC-USDT");
        let m = MarketMessage::from_json(&subject, payload.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("{data_type}: {e}"));
        assert_eq!(m.data_type().as_str(), data_type);
        assert_eq!(m.subject(), subject);
        let back: Value = serde_json::from_slice(&m.to_json()).unwrap();
        assert_eq!(back, payload, "{data_type} does not round-trip");
    }
}

#[test]
fn collector_fields_are_written_when_set() {
    let mut payload = with(
        "volatility_index",
        json!({"volatility_index": "52.3", "underlying_asset": "BTC"}),
    );
    let mut m =
        MarketMessage::from_json("volatility_index.x.y.z", payload.to_string().as_bytes()).unwrap();
    m.collector_id = Some("mp-1".into());
    m.seq = Some(9);
    payload["collector_id"] = json!("mp-1");
    payload["seq"] = json!(9);
    assert_eq!(
        serde_json::from_slice::<Value>(&m.to_json()).unwrap(),
        payload
    );
}

#[test]
fn payloads_that_cannot_be_stored_say_why() {
    let trade = with(
        "trade",
        json!({"trade_id": "t1", "price": "65000.5", "quantity": "0.01", "side": "buy", "is_maker": false, "trade_ts_ms": 1}),
    );
    let e = MarketMessage::from_json(
        "orderbook.binance.spot.BTC-USDT",
        trade.to_string().as_bytes(),
    )
    .unwrap_err();
    assert!(e.contains("does not match"), "{e}");
    let mut no_price = trade.clone();
    no_price.as_object_mut().unwrap().remove("price");
    let e = MarketMessage::from_json(
        "trade.binance.spot.BTC-USDT",
        no_price.to_string().as_bytes(),
    )
    .unwrap_err();
    assert!(e.contains("price"), "{e}");
    let e = MarketMessage::from_json("trade.a.b.c", b"not json").unwrap_err();
    assert!(e.starts_with("not a MarketPrism message"), "{e}");
}
