//! The synthetic source: a deterministic generator for hosts without internet access and for
//! tests. The same seed and config give the same messages in the same order (only the
//! timestamps come from the clock). Every data type comes up within a few messages, so each
//! of the 8 tables receives rows seconds after a deploy: every other message is a trade, the
//! messages between go through the other 7 types in turn.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use async_trait::async_trait;

use super::Source;
use crate::pipeline::config::SourceConfig;
use crate::pipeline::message::{
    DataType, Decimal8, Exchange, FundingRate, Liquidation, LsrAllAccount, LsrTopPosition,
    MarketData, MarketMessage, MarketType, OpenInterest, Orderbook, Trade, VolatilityIndex,
};

/// The types between two trades, in turn.
const OTHERS: [DataType; 7] = [
    DataType::Orderbook,
    DataType::FundingRate,
    DataType::OpenInterest,
    DataType::Liquidation,
    DataType::LsrTopPosition,
    DataType::LsrAllAccount,
    DataType::VolatilityIndex,
];

/// Order book depth of each snapshot.
const DEPTH: usize = 10;

/// Where one message goes: exchange, market type, symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub exchange: Exchange,
    pub market_type: MarketType,
    pub symbol: String,
}

/// Where a data type is published, as MarketPrism's collectors do: trades and order books on
/// spot and perpetual markets, the derivative-only types on perpetuals, the volatility index on
/// Deribit options (symbols `BTC`, `ETH`, from the bases of the configured symbols).
pub fn routes(data_type: DataType, exchanges: &[Exchange], symbols: &[String]) -> Vec<Route> {
    let mut out = Vec::new();
    let markets: &[MarketType] = match data_type {
        DataType::Trade | DataType::Orderbook => &[MarketType::Spot, MarketType::Perpetual],
        DataType::VolatilityIndex => &[MarketType::Options],
        _ => &[MarketType::Perpetual],
    };
    for &exchange in exchanges {
        for &market_type in markets {
            let on_deribit = exchange == Exchange::Deribit;
            if on_deribit != (market_type == MarketType::Options) {
                continue;
            }
            if on_deribit {
                for base in bases(symbols) {
                    out.push(Route {
                        exchange,
                        market_type,
                        symbol: base,
                    });
                }
            } else {
                for symbol in symbols {
                    out.push(Route {
                        exchange,
                        market_type,
                        symbol: symbol.clone(),
                    });
                }
            }
        }
    }
    out
}

/// `BTC` and `ETH` from `BTC-USDT`, `ETH-USDT`: Deribit's volatility indices exist for those.
fn bases(symbols: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for symbol in symbols {
        let base = symbol.split('-').next().unwrap_or(symbol);
        if ["BTC", "ETH"].contains(&base) && !out.iter().any(|b| b == base) {
            out.push(base.to_string());
        }
    }
    out
}

/// SplitMix64: tiny, seedable, good enough for fake prices (no `rand` dependency).
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The message generator, without the pacing: [`Generator::generate`] is pure given `now_ms`.
#[derive(Debug, Clone)]
pub struct Generator {
    rng: SplitMix64,
    /// The data type of each slot of the cycle, with its routes; types without routes (e.g.
    /// volatility_index without Deribit) are left out.
    cycle: Vec<(DataType, Vec<Route>)>,
    /// Position in `cycle` and, per cycle slot, in its routes.
    position: usize,
    route_turn: Vec<usize>,
}

impl Generator {
    /// Fails when the exchanges and symbols give no subject at all.
    pub fn new(config: &SourceConfig) -> Result<Generator, String> {
        let routes_of = |t| routes(t, &config.exchanges, &config.symbols);
        let trade_routes = routes_of(DataType::Trade);
        let mut cycle = Vec::new();
        for other in OTHERS {
            let r = routes_of(other);
            if r.is_empty() {
                continue;
            }
            if !trade_routes.is_empty() {
                cycle.push((DataType::Trade, trade_routes.clone()));
            }
            cycle.push((other, r));
        }
        if cycle.is_empty() {
            return Err(format!(
                "exchanges {:?} with symbols {:?} give no market to publish: add binance or okx, \
                 or a BTC-/ETH- symbol for deribit",
                config.exchanges, config.symbols
            ));
        }
        let turns = vec![0; cycle.len()];
        Ok(Generator {
            rng: SplitMix64(config.seed),
            cycle,
            position: 0,
            route_turn: turns,
        })
    }

    /// The data types this generator produces.
    pub fn data_types(&self) -> Vec<DataType> {
        let mut types: Vec<DataType> = self.cycle.iter().map(|(t, _)| *t).collect();
        types.sort();
        types.dedup();
        types
    }

    /// The next message, stamped `now_ms`. Sequence numbers and trade ids are the collector's.
    pub fn generate(&mut self, now_ms: i64) -> MarketMessage {
        let slot = self.position % self.cycle.len();
        self.position += 1;
        let (data_type, routes) = &self.cycle[slot];
        let route = routes[self.route_turn[slot] % routes.len()].clone();
        self.route_turn[slot] += 1;
        let data = self.data(*data_type, &route, now_ms);
        MarketMessage {
            exchange: route.exchange.as_str().to_string(),
            market_type: route.market_type.as_str().to_string(),
            symbol: route.symbol,
            ts_ms: now_ms,
            collected_ts_ms: now_ms,
            data,
            collector_id: None,
            seq: None,
        }
    }

    fn data(&mut self, data_type: DataType, route: &Route, now_ms: i64) -> MarketData {
        let mid = self.price(&route.symbol);
        match data_type {
            DataType::Trade => MarketData::Trade(Trade {
                trade_id: String::new(),
                price: mid,
                quantity: self.quantity(),
                side: self.side().to_string(),
                is_maker: self.rng.below(2) == 0,
                trade_ts_ms: now_ms,
            }),
            DataType::Orderbook => {
                // One tick is 0.01 % of the price, at least 10^-8.
                let tick = (mid.0 / 10_000).max(1);
                let level = |i: i64, rng: &mut SplitMix64, sign: i64| {
                    let qty = Decimal8(1_000_000 + rng.below(500_000_000) as i64);
                    [Decimal8(mid.0 + sign * tick * (i + 1)), qty]
                };
                let bids = (0..DEPTH as i64)
                    .map(|i| level(i, &mut self.rng, -1))
                    .collect();
                let asks = (0..DEPTH as i64)
                    .map(|i| level(i, &mut self.rng, 1))
                    .collect();
                MarketData::Orderbook(Orderbook {
                    bids,
                    asks,
                    // The collector numbers them (its sequence number).
                    last_update_id: 0,
                    depth_levels: DEPTH as u32,
                })
            }
            DataType::FundingRate => MarketData::FundingRate(FundingRate {
                current_funding_rate: Decimal8(self.rng.below(20_000) as i64 - 5_000),
                mark_price: mid,
                index_price: Decimal8(mid.0 - 100_000_000 + self.rng.below(200_000_000) as i64),
                funding_ts_ms: now_ms - now_ms % EIGHT_HOURS_MS,
                next_funding_ts_ms: now_ms - now_ms % EIGHT_HOURS_MS + EIGHT_HOURS_MS,
            }),
            DataType::OpenInterest => {
                let contracts = Decimal8((50_000 + self.rng.below(50_000) as i64) * 100_000_000);
                MarketData::OpenInterest(OpenInterest {
                    open_interest_value: contracts,
                    open_interest_usd: Decimal8(
                        (contracts.0 / 100_000_000).saturating_mul(mid.0 / 100),
                    ),
                    mark_price: mid,
                })
            }
            DataType::Liquidation => MarketData::Liquidation(Liquidation {
                side: self.side().to_string(),
                price: mid,
                quantity: self.quantity(),
                liquidation_ts_ms: now_ms,
            }),
            DataType::LsrTopPosition => {
                let long = 30_000_000 + self.rng.below(40_000_000) as i64;
                MarketData::LsrTopPosition(LsrTopPosition {
                    long_position_ratio: Decimal8(long),
                    short_position_ratio: Decimal8(100_000_000 - long),
                    period: "5m".into(),
                })
            }
            DataType::LsrAllAccount => {
                let long = 30_000_000 + self.rng.below(40_000_000) as i64;
                MarketData::LsrAllAccount(LsrAllAccount {
                    long_account_ratio: Decimal8(long),
                    short_account_ratio: Decimal8(100_000_000 - long),
                    period: "5m".into(),
                })
            }
            DataType::VolatilityIndex => MarketData::VolatilityIndex(VolatilityIndex {
                volatility_index: Decimal8(4_000_000_000 + self.rng.below(3_000_000_000) as i64),
                underlying_asset: route.symbol.clone(),
            }),
        }
    }

    /// A price near the symbol's usual level, ±1 %.
    fn price(&mut self, symbol: &str) -> Decimal8 {
        let base: i64 = match symbol.split('-').next() {
            Some("BTC") => 65_000,
            Some("ETH") => 3_500,
            _ => 100,
        };
        let scaled = base * 100_000_000;
        let spread = (scaled / 50) as u64;
        Decimal8(scaled - scaled / 100 + self.rng.below(spread) as i64)
    }

    fn quantity(&mut self) -> Decimal8 {
        Decimal8(100_000 + self.rng.below(200_000_000) as i64)
    }

    fn side(&mut self) -> &'static str {
        if self.rng.below(2) == 0 {
            "buy"
        } else {
            "sell"
        }
    }
}

const EIGHT_HOURS_MS: i64 = 8 * 3600 * 1000;

/// The generator, paced at `rate` messages per second.
pub struct Synthetic {
    generator: Generator,
    rate: u32,
    seed: u64,
    /// Pacing: messages due since `start` at `rate`.
    start: Instant,
    emitted: u64,
}

impl Synthetic {
    pub fn new(config: &SourceConfig) -> Result<Synthetic, String> {
        Ok(Synthetic {
            generator: Generator::new(config)?,
            rate: config.rate.max(1),
            seed: config.seed,
            start: Instant::now(),
            emitted: 0,
        })
    }
}

#[async_trait]
impl Source for Synthetic {
    async fn next(&mut self) -> Option<MarketMessage> {
        let rate = u64::from(self.rate);
        let elapsed = self.start.elapsed();
        let due = (elapsed.as_secs_f64() * rate as f64) as u64;
        if due > self.emitted + rate {
            // The collector paused us (backpressure) for more than a second: start a new
            // schedule instead of bursting out what was skipped.
            self.start = Instant::now();
            self.emitted = 0;
        } else if due <= self.emitted {
            let at = Duration::from_secs_f64((self.emitted + 1) as f64 / rate as f64);
            tokio::time::sleep_until(self.start + at).await;
        }
        self.emitted += 1;
        Some(self.generator.generate(now_ms()))
    }

    fn can_pause(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!(
            "synthetic ({} msg/s, seed {}, types {})",
            self.rate,
            self.seed,
            self.generator
                .data_types()
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(",")
        )
    }
}

/// The wall clock in UTC milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
#[path = "synthetic_tests.rs"]
mod tests;
