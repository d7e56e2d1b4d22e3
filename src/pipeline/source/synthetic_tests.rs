use super::*;
use std::collections::BTreeSet;

fn default_generator() -> Generator {
    Generator::new(&SourceConfig::default()).unwrap()
}

#[test]
fn same_seed_same_messages() {
    let (mut a, mut b) = (default_generator(), default_generator());
    for i in 0..200 {
        assert_eq!(a.generate(i), b.generate(i));
    }
    let mut other = Generator::new(&SourceConfig {
        seed: 2,
        ..SourceConfig::default()
    })
    .unwrap();
    let differs = (0..20).any(|i| other.generate(i) != default_generator().generate(i));
    assert!(differs);
}

#[test]
fn every_other_message_is_a_trade_and_all_8_types_come_within_14() {
    let mut g = default_generator();
    let types: Vec<DataType> = (0..14).map(|_| g.generate(0).data_type()).collect();
    for (i, t) in types.iter().enumerate() {
        assert_eq!(*t == DataType::Trade, i % 2 == 0, "message {i} is {t}");
    }
    let seen: BTreeSet<DataType> = types.into_iter().collect();
    assert_eq!(seen.len(), 8);
}

#[test]
fn subjects_follow_marketprism_routes() {
    let mut g = default_generator();
    let mut subjects = BTreeSet::new();
    for _ in 0..2000 {
        let m = g.generate(0);
        let subject = m.subject();
        match m.data_type() {
            DataType::VolatilityIndex => {
                assert!(
                    subject.starts_with("volatility_index.deribit.options."),
                    "{subject}"
                )
            }
            DataType::Trade | DataType::Orderbook => {
                assert!(
                    m.exchange != "deribit" && m.market_type != "options",
                    "{subject}"
                )
            }
            _ => assert_eq!(m.market_type, "perpetual", "{subject}"),
        }
        subjects.insert(subject);
    }
    for s in [
        "trade.binance.spot.BTC-USDT",
        "orderbook.okx.perpetual.ETH-USDT",
        "funding_rate.binance.perpetual.BTC-USDT",
        "volatility_index.deribit.options.BTC",
        "volatility_index.deribit.options.ETH",
    ] {
        assert!(subjects.contains(s), "{s} never published");
    }
}

#[test]
fn payload_values_are_plausible() {
    let mut g = default_generator();
    for _ in 0..100 {
        let m = g.generate(1_700_000_000_000);
        assert_eq!(m.ts_ms, 1_700_000_000_000);
        match &m.data {
            MarketData::Orderbook(b) => {
                assert_eq!(b.bids.len(), 10);
                assert!(b.bids[0][0] < b.asks[0][0], "crossed book");
                assert_eq!(b.depth_levels, 10);
            }
            MarketData::Trade(t) => {
                assert!(t.price.0 > 0 && t.quantity.0 > 0);
                assert!(t.side == "buy" || t.side == "sell");
            }
            MarketData::LsrTopPosition(r) => {
                assert_eq!(
                    r.long_position_ratio.0 + r.short_position_ratio.0,
                    100_000_000
                )
            }
            _ => {}
        }
    }
}

#[test]
fn routes_leave_out_what_an_exchange_does_not_have() {
    let symbols = vec!["BTC-USDT".to_string(), "SOL-USDT".to_string()];
    assert_eq!(
        routes(DataType::Trade, &[Exchange::Deribit], &symbols),
        vec![]
    );
    let vol = routes(DataType::VolatilityIndex, &Exchange::ALL, &symbols);
    assert_eq!(
        vol,
        vec![Route {
            exchange: Exchange::Deribit,
            market_type: MarketType::Options,
            symbol: "BTC".into()
        }]
    );
    assert_eq!(routes(DataType::Trade, &[Exchange::Okx], &symbols).len(), 4);
    let err = Generator::new(&SourceConfig {
        exchanges: vec![Exchange::Deribit],
        symbols: vec!["SOL-USDT".into()],
        ..SourceConfig::default()
    })
    .unwrap_err();
    assert!(err.contains("no market"), "{err}");
}

#[test]
fn without_deribit_the_cycle_skips_volatility() {
    let mut g = Generator::new(&SourceConfig {
        exchanges: vec![Exchange::Binance],
        ..SourceConfig::default()
    })
    .unwrap();
    assert_eq!(g.data_types().len(), 7);
    assert!((0..100).all(|_| g.generate(0).data_type() != DataType::VolatilityIndex));
}

#[tokio::test(start_paused = true)]
async fn paced_at_the_configured_rate() {
    let mut s = Synthetic::new(&SourceConfig {
        rate: 100,
        ..SourceConfig::default()
    })
    .unwrap();
    let start = tokio::time::Instant::now();
    for _ in 0..50 {
        s.next().await.unwrap();
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(490) && elapsed <= Duration::from_millis(520),
        "{elapsed:?}"
    );
}
