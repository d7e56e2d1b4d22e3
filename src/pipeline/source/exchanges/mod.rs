//! Real market data: Binance, OKX and Deribit public feeds behind the collector's [`Source`].
//!
//! Each exchange is one module of pure handlers ([`feed::Feed`]: frames in, messages out) and
//! REST polls ([`feed::Poll`]); `conn` and `poll` own the sockets (reconnect with jittered
//! backoff, pings, renewal before a forced disconnect, pacing) and `stats` keeps what
//! `/health` and `/metrics` say per stream. Streams are named by their subject.

pub mod binance;
pub mod book;
pub mod conn;
pub mod deribit;
pub mod feed;
pub mod okx;
pub mod poll;
pub mod stats;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::Source;
use crate::pipeline::config::{Endpoints, SourceConfig};
use crate::pipeline::message::{DataType, Exchange, MarketMessage, MarketType};
use feed::{Feed, Feeds};
use stats::FeedStats;

/// What one exchange's handlers are built from.
#[derive(Debug, Clone, PartialEq)]
pub struct VenuePlan {
    /// Normalised symbols (`BTC-USDT`), as configured.
    pub symbols: Vec<String>,
    /// The data types to collect; an exchange takes those it has (see [`markets`]).
    pub types: Vec<DataType>,
    /// Order book levels published per side.
    pub book_depth: usize,
    /// Where to connect: the exchange's own endpoints unless the config overrides them.
    pub urls: Urls,
}

impl VenuePlan {
    pub fn wants(&self, data_type: DataType) -> bool {
        self.types.contains(&data_type)
    }
}

/// Endpoints with the defaults filled in. Binance has separate hosts for spot and USD-M
/// futures; OKX and Deribit use `ws` (and `rest`) only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    pub ws: String,
    pub rest: String,
    pub futures_ws: String,
    pub futures_rest: String,
}

impl Urls {
    /// The exchange's public endpoints, with `overrides` (mirrors, proxies, tests) applied.
    pub fn of(exchange: Exchange, overrides: &Endpoints) -> Urls {
        let defaults = match exchange {
            Exchange::Binance => binance::DEFAULT_URLS,
            Exchange::Okx => okx::DEFAULT_URLS,
            Exchange::Deribit => deribit::DEFAULT_URLS,
        };
        let pick = |o: &Option<String>, d: &str| o.clone().unwrap_or_else(|| d.to_string());
        Urls {
            ws: pick(&overrides.ws_url, defaults[0]),
            rest: pick(&overrides.rest_url, defaults[1]),
            futures_ws: pick(&overrides.futures_ws_url, defaults[2]),
            futures_rest: pick(&overrides.futures_rest_url, defaults[3]),
        }
    }
}

/// The markets on which an exchange serves a data type (empty: it does not serve it).
pub fn markets(exchange: Exchange, data_type: DataType) -> &'static [MarketType] {
    use DataType::*;
    use MarketType::*;
    match (exchange, data_type) {
        (Exchange::Binance | Exchange::Okx, Trade | Orderbook) => &[Spot, Perpetual],
        (Exchange::Binance | Exchange::Okx, FundingRate | OpenInterest | Liquidation) => {
            &[Perpetual]
        }
        (Exchange::Binance, LsrTopPosition | LsrAllAccount) => &[Perpetual],
        (Exchange::Deribit, Trade | Orderbook) => &[Perpetual],
        (Exchange::Deribit, VolatilityIndex) => &[Options],
        _ => &[],
    }
}

/// Types that arrive many times a second on a live market: layer 5 expects their rows. The
/// others (funding, open interest, ratios, volatility) come every few seconds to minutes, so
/// a successful poll or message in the collector's health stands for them.
pub fn steady(data_type: DataType) -> bool {
    matches!(data_type, DataType::Trade | DataType::Orderbook)
}

/// The data types a set of exchanges gives for the configured `types`.
pub fn produced(exchanges: &[Exchange], types: &[DataType]) -> Vec<DataType> {
    let mut out: Vec<DataType> = types
        .iter()
        .copied()
        .filter(|t| exchanges.iter().any(|e| !markets(*e, *t).is_empty()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `BTC-USDT` → (`BTC`, `USDT`): the one symbol format the config accepts.
pub fn split_symbol(symbol: &str) -> Option<(&str, &str)> {
    let (base, quote) = symbol.split_once('-')?;
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 12
            && p.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    };
    (part_ok(base) && part_ok(quote)).then_some((base, quote))
}

/// The live source: every configured exchange's feeds and polls, running as tasks that send
/// into one channel.
pub struct Exchanges {
    rx: mpsc::Receiver<MarketMessage>,
    stats: Arc<FeedStats>,
    description: String,
}

/// Messages waiting between the feeds and the collector. The collector's own buffer is the
/// real one; this only smooths bursts.
const CHANNEL: usize = 4096;

impl Exchanges {
    /// Starts the feeds; they run until the returned source is dropped.
    pub fn start(config: &SourceConfig) -> Result<Exchanges, String> {
        let (feeds, polls) = build(config);
        if feeds.is_empty() && polls.is_empty() {
            return Err(format!(
                "exchanges {:?} give none of the types {:?}",
                config.exchanges, config.types
            ));
        }
        let mut streams = Vec::new();
        for feed in &feeds {
            streams.extend(feed.streams());
        }
        streams.extend(polls.iter().map(|p| p.stream.clone()));
        let stats = FeedStats::new(&streams, config.stall_after);
        let (tx, rx) = mpsc::channel(CHANNEL);
        let description = format!(
            "exchanges {} ({} stream(s) on {} connection(s), {} poll(s); symbols {})",
            config
                .exchanges
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join(","),
            streams.len(),
            feeds.len(),
            polls.len(),
            config.symbols.join(",")
        );
        for feed in feeds {
            tokio::spawn(conn::run(
                feed,
                tx.clone(),
                stats.clone(),
                config.book_interval,
            ));
        }
        for p in polls {
            tokio::spawn(poll::run(p, tx.clone(), stats.clone()));
        }
        Ok(Exchanges {
            rx,
            stats,
            description,
        })
    }
}

/// Every exchange's feeds and polls for this config.
pub fn build(config: &SourceConfig) -> Feeds {
    let mut feeds: Vec<Box<dyn Feed>> = Vec::new();
    let mut polls = Vec::new();
    for &exchange in &config.exchanges {
        let plan = VenuePlan {
            symbols: config.symbols.clone(),
            types: config.types.clone(),
            book_depth: config.book_depth as usize,
            urls: Urls::of(exchange, config.endpoints(exchange)),
        };
        let (f, p) = match exchange {
            Exchange::Binance => binance::feeds(&plan),
            Exchange::Okx => okx::feeds(&plan),
            Exchange::Deribit => deribit::feeds(&plan),
        };
        feeds.extend(f);
        polls.extend(p);
    }
    (feeds, polls)
}

#[async_trait]
impl Source for Exchanges {
    async fn next(&mut self) -> Option<MarketMessage> {
        self.rx.recv().await
    }

    fn can_pause(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn feed_stats(&self) -> Option<Arc<FeedStats>> {
        Some(self.stats.clone())
    }
}

/// Reconnect pause after `attempt` failures in a row: 1 s doubling to 60 s, each with up to
/// ±25 % jitter so a fleet of collectors does not reconnect in step.
pub fn backoff(attempt: u32, jitter_seed: u64) -> Duration {
    let base = 1000u64.saturating_mul(1 << attempt.min(6)).min(60_000);
    // A cheap hash of the seed picks the jitter: no `rand` dependency for one number.
    let mixed = jitter_seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(17);
    let spread = base / 2;
    let offset = mixed % (spread + 1);
    Duration::from_millis(base - base / 4 + offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_minute_with_jitter_inside_a_quarter() {
        for attempt in 0..10 {
            let nominal = 1000u64 * (1u64 << attempt.min(6));
            let nominal = nominal.min(60_000);
            for seed in 0..50 {
                let d = backoff(attempt, seed).as_millis() as u64;
                assert!(
                    d >= nominal * 3 / 4 && d <= nominal * 5 / 4,
                    "{attempt} {d}"
                );
            }
        }
        let spread: std::collections::BTreeSet<_> = (0..20).map(|s| backoff(3, s)).collect();
        assert!(spread.len() > 5, "no jitter: {spread:?}");
    }

    #[test]
    fn markets_follow_what_each_exchange_serves() {
        assert_eq!(
            markets(Exchange::Binance, DataType::LsrTopPosition),
            &[MarketType::Perpetual]
        );
        assert!(markets(Exchange::Okx, DataType::LsrAllAccount).is_empty());
        assert!(markets(Exchange::Binance, DataType::VolatilityIndex).is_empty());
        assert_eq!(
            produced(&[Exchange::Okx], &DataType::ALL),
            vec![
                DataType::Orderbook,
                DataType::Trade,
                DataType::FundingRate,
                DataType::OpenInterest,
                DataType::Liquidation
            ]
        );
    }

    #[test]
    fn symbols_are_base_dash_quote_in_capitals() {
        assert_eq!(split_symbol("BTC-USDT"), Some(("BTC", "USDT")));
        for bad in [
            "btc-usdt",
            "BTCUSDT",
            "BTC-",
            "-USDT",
            "BTC/USDT",
            "BTC-US-DT",
        ] {
            assert_eq!(split_symbol(bad), None, "{bad}");
        }
    }
}
