//! MarketPrism's messages: the 8 data types, their subjects
//! (`{data_type}.{exchange}.{market_type}.{symbol}`) and their JSON payloads.
//!
//! Prices, quantities and ratios travel as decimal strings (`"65000.5"`), as MarketPrism's
//! collectors write them (their normaliser keeps `Decimal`s, serialised as strings) and as its
//! order book levels are (`[["price","qty"], ...]`). Readers also accept JSON numbers. A value is
//! held as [`Decimal8`], the integer that ClickHouse's `Decimal64(8)` stores, so nothing is
//! rounded between the wire and the table.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The 8 data types; the first token of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    Orderbook,
    Trade,
    FundingRate,
    OpenInterest,
    Liquidation,
    LsrTopPosition,
    LsrAllAccount,
    VolatilityIndex,
}

impl DataType {
    pub const ALL: [DataType; 8] = [
        DataType::Orderbook,
        DataType::Trade,
        DataType::FundingRate,
        DataType::OpenInterest,
        DataType::Liquidation,
        DataType::LsrTopPosition,
        DataType::LsrAllAccount,
        DataType::VolatilityIndex,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Orderbook => "orderbook",
            DataType::Trade => "trade",
            DataType::FundingRate => "funding_rate",
            DataType::OpenInterest => "open_interest",
            DataType::Liquidation => "liquidation",
            DataType::LsrTopPosition => "lsr_top_position",
            DataType::LsrAllAccount => "lsr_all_account",
            DataType::VolatilityIndex => "volatility_index",
        }
    }

    /// The hot table its rows go to.
    pub fn table(self) -> &'static str {
        match self {
            DataType::Orderbook => "orderbooks",
            DataType::Trade => "trades",
            DataType::FundingRate => "funding_rates",
            DataType::OpenInterest => "open_interests",
            DataType::Liquidation => "liquidations",
            DataType::LsrTopPosition => "lsr_top_positions",
            DataType::LsrAllAccount => "lsr_all_accounts",
            DataType::VolatilityIndex => "volatility_indices",
        }
    }

    /// The JetStream stream its subjects belong to.
    pub fn stream(self) -> &'static str {
        match self {
            DataType::Orderbook => ORDERBOOK_SNAP,
            _ => MARKET_DATA,
        }
    }

    /// The data type a subject is about (its first token).
    pub fn of_subject(subject: &str) -> Option<DataType> {
        let first = subject.split('.').next()?;
        DataType::ALL.into_iter().find(|t| t.as_str() == first)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stream names are the deploy's (`stack::nats`), which creates the streams.
pub use crate::stack::nats::{MARKET_DATA, ORDERBOOK_SNAP};
/// Both streams, in the order storage consumes them.
pub const STREAMS: [&str; 2] = [MARKET_DATA, ORDERBOOK_SNAP];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exchange {
    Binance,
    Okx,
    Deribit,
}

impl Exchange {
    pub const ALL: [Exchange; 3] = [Exchange::Binance, Exchange::Okx, Exchange::Deribit];

    pub fn as_str(self) -> &'static str {
        match self {
            Exchange::Binance => "binance",
            Exchange::Okx => "okx",
            Exchange::Deribit => "deribit",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarketType {
    Spot,
    Perpetual,
    Options,
}

impl MarketType {
    pub fn as_str(self) -> &'static str {
        match self {
            MarketType::Spot => "spot",
            MarketType::Perpetual => "perpetual",
            MarketType::Options => "options",
        }
    }
}

/// A decimal with 8 fractional digits, as the integer `Decimal64(8)` stores (value × 10^8).
/// Written as a decimal string; read from a string or a JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Decimal8(pub i64);

const SCALE: i64 = 100_000_000;

impl fmt::Display for Decimal8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = abs / SCALE as u64;
        let frac = abs % SCALE as u64;
        if frac == 0 {
            return write!(f, "{sign}{whole}");
        }
        let digits = format!("{frac:08}");
        write!(f, "{sign}{whole}.{}", digits.trim_end_matches('0'))
    }
}

impl FromStr for Decimal8 {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a decimal number with at most 8 fractional digits");
        let t = s.trim();
        let (negative, digits) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if (whole.is_empty() && frac.is_empty())
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        // Digits past the 8th are dropped only when they are zeros: anything else would change
        // the value silently.
        let (kept, dropped) = frac.split_at(frac.len().min(8));
        if dropped.bytes().any(|b| b != b'0') {
            return Err(bad());
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let frac: i64 = format!("{kept:0<8}").parse().map_err(|_| bad())?;
        let value = whole
            .checked_mul(SCALE)
            .and_then(|w| w.checked_add(frac))
            .ok_or_else(|| format!("{s:?} is too large for Decimal64(8)"))?;
        Ok(Decimal8(if negative { -value } else { value }))
    }
}

impl Serialize for Decimal8 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Decimal8 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Text(String),
            Int(i64),
            Float(f64),
        }
        match Wire::deserialize(d)? {
            Wire::Text(s) => s.parse().map_err(serde::de::Error::custom),
            Wire::Int(i) => i
                .checked_mul(SCALE)
                .map(Decimal8)
                .ok_or_else(|| serde::de::Error::custom(format!("{i} is too large"))),
            Wire::Float(x) => {
                let scaled = (x * SCALE as f64).round();
                if scaled.is_finite() && scaled.abs() < i64::MAX as f64 {
                    Ok(Decimal8(scaled as i64))
                } else {
                    Err(serde::de::Error::custom(format!("{x} is out of range")))
                }
            }
        }
    }
}

/// One message as published: the common fields, the data type's own fields, and (from
/// mp-remote's collectors) who published it and its sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarketMessage {
    pub exchange: String,
    pub market_type: String,
    pub symbol: String,
    /// When the exchange says it happened, UTC milliseconds.
    pub ts_ms: i64,
    /// When the collector received it, UTC milliseconds.
    pub collected_ts_ms: i64,
    #[serde(flatten)]
    pub data: MarketData,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector_id: Option<String>,
    /// Per collector boot and data type, from 1: a gap is a lost message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// The fields of each data type, tagged by `data_type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "data_type", rename_all = "snake_case")]
pub enum MarketData {
    Orderbook(Orderbook),
    Trade(Trade),
    FundingRate(FundingRate),
    OpenInterest(OpenInterest),
    Liquidation(Liquidation),
    LsrTopPosition(LsrTopPosition),
    LsrAllAccount(LsrAllAccount),
    VolatilityIndex(VolatilityIndex),
}

impl MarketData {
    pub fn data_type(&self) -> DataType {
        match self {
            MarketData::Orderbook(_) => DataType::Orderbook,
            MarketData::Trade(_) => DataType::Trade,
            MarketData::FundingRate(_) => DataType::FundingRate,
            MarketData::OpenInterest(_) => DataType::OpenInterest,
            MarketData::Liquidation(_) => DataType::Liquidation,
            MarketData::LsrTopPosition(_) => DataType::LsrTopPosition,
            MarketData::LsrAllAccount(_) => DataType::LsrAllAccount,
            MarketData::VolatilityIndex(_) => DataType::VolatilityIndex,
        }
    }
}

/// One price level: `["price", "quantity"]`.
pub type Level = [Decimal8; 2];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Orderbook {
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
    pub last_update_id: u64,
    pub depth_levels: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trade {
    pub trade_id: String,
    pub price: Decimal8,
    pub quantity: Decimal8,
    /// `buy` or `sell`.
    pub side: String,
    pub is_maker: bool,
    pub trade_ts_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FundingRate {
    pub current_funding_rate: Decimal8,
    pub mark_price: Decimal8,
    pub index_price: Decimal8,
    pub funding_ts_ms: i64,
    pub next_funding_ts_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenInterest {
    /// In contracts (the table's `open_interest`).
    pub open_interest_value: Decimal8,
    /// In USD (the table's `open_interest_value`).
    pub open_interest_usd: Decimal8,
    pub mark_price: Decimal8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Liquidation {
    pub side: String,
    pub price: Decimal8,
    pub quantity: Decimal8,
    pub liquidation_ts_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LsrTopPosition {
    pub long_position_ratio: Decimal8,
    pub short_position_ratio: Decimal8,
    pub period: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LsrAllAccount {
    pub long_account_ratio: Decimal8,
    pub short_account_ratio: Decimal8,
    pub period: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolatilityIndex {
    pub volatility_index: Decimal8,
    /// `BTC`, `ETH`.
    pub underlying_asset: String,
}

impl MarketMessage {
    pub fn data_type(&self) -> DataType {
        self.data.data_type()
    }

    /// `trade.binance.spot.BTC-USDT`.
    pub fn subject(&self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.data_type(),
            self.exchange,
            self.market_type,
            self.symbol
        )
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain structs of strings and numbers into memory cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a payload received on `subject`; the payload's data type must be the subject's.
    pub fn from_json(subject: &str, payload: &[u8]) -> Result<MarketMessage, String> {
        let message: MarketMessage = serde_json::from_slice(payload)
            .map_err(|e| format!("not a MarketPrism message: {e}"))?;
        let on_subject = subject.split('.').next().unwrap_or_default();
        if on_subject != message.data_type().as_str() {
            return Err(format!(
                "data_type {} does not match the subject's {on_subject:?}",
                message.data_type()
            ));
        }
        Ok(message)
    }
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
