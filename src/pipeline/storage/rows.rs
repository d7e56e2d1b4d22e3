//! From a message to a row of its hot table, in the RowBinary encoding of the schema the server
//! has. Both renderings have the same columns; only time columns differ on the wire:
//! `DateTime64(3,'UTC')` takes i64 milliseconds, legacy `DateTime('UTC')` u32 seconds.
//! `Decimal64(8)` is the scaled i64 (`message::Decimal8`), `Bool` and legacy `UInt8` are one byte,
//! `Date` is u16 days, `LowCardinality(String)` and `String` are both plain strings.
//! The DEFAULT columns (`data_source`, `created_at`) are not sent: the server fills them.
//!
//! Fields the payload does not carry: `open_interests.count` is 0; `volatility_indices.
//! maturity_date` is the UTC day of the message (an index has no maturity of its own).

use clickhouse::{Client, RowOwned, RowWrite};
use serde::Serialize;

use crate::pipeline::message::{DataType, Level, MarketData, MarketMessage};
use crate::stack::SchemaRendering;

/// How time columns are sent, from the schema the server has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeEncoding {
    /// `DateTime64(3, 'UTC')`.
    Millis,
    /// `DateTime('UTC')` (ClickHouse < 21.12).
    Seconds,
}

impl From<SchemaRendering> for TimeEncoding {
    fn from(r: SchemaRendering) -> Self {
        match r {
            SchemaRendering::Modern => TimeEncoding::Millis,
            SchemaRendering::Legacy => TimeEncoding::Seconds,
        }
    }
}

/// A time column's value; untagged, so it serialises as the bare integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Time {
    Ms(i64),
    Secs(u32),
}

impl TimeEncoding {
    /// Refuses instants the column cannot hold (before 1970; after 2106 for `DateTime`).
    pub fn time(self, ms: i64, field: &str) -> Result<Time, String> {
        if ms < 0 {
            return Err(format!("{field} {ms} is before 1970"));
        }
        match self {
            TimeEncoding::Millis => Ok(Time::Ms(ms)),
            TimeEncoding::Seconds => u32::try_from(ms / 1000)
                .map(Time::Secs)
                .map_err(|_| format!("{field} {ms} is past what DateTime holds")),
        }
    }
}

/// Declares a row struct: the 4 leading columns every table has, then the table's own.
macro_rules! hot_row {
    ($(#[$doc:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize)]
        pub struct $name {
            pub timestamp: Time,
            pub exchange: String,
            pub market_type: String,
            pub symbol: String,
            $(pub $field: $ty,)*
        }
    };
}

hot_row!(OrderbookRow {
    last_update_id: u64,
    bids_count: u32,
    asks_count: u32,
    best_bid_price: i64,
    best_ask_price: i64,
    best_bid_quantity: i64,
    best_ask_quantity: i64,
    bids: String,
    asks: String,
});
hot_row!(TradeRow {
    trade_id: String,
    price: i64,
    quantity: i64,
    side: String,
    is_maker: bool,
    trade_time: Time,
});
hot_row!(FundingRateRow {
    funding_rate: i64,
    mark_price: i64,
    index_price: i64,
    funding_time: Time,
    next_funding_time: Time,
});
hot_row!(OpenInterestRow {
    open_interest: i64,
    open_interest_value: i64,
    count: u64,
});
hot_row!(LiquidationRow {
    side: String,
    price: i64,
    quantity: i64,
    liquidation_time: Time,
});
hot_row!(LsrTopPositionRow {
    long_position_ratio: i64,
    short_position_ratio: i64,
    period: String,
});
hot_row!(LsrAllAccountRow {
    long_account_ratio: i64,
    short_account_ratio: i64,
    period: String,
});
hot_row!(VolatilityIndexRow {
    index_value: i64,
    underlying_asset: String,
    maturity_date: u16,
});

/// One batch's rows, per table.
#[derive(Debug, Default)]
pub struct TableRows {
    pub orderbooks: Vec<OrderbookRow>,
    pub trades: Vec<TradeRow>,
    pub funding_rates: Vec<FundingRateRow>,
    pub open_interests: Vec<OpenInterestRow>,
    pub liquidations: Vec<LiquidationRow>,
    pub lsr_top_positions: Vec<LsrTopPositionRow>,
    pub lsr_all_accounts: Vec<LsrAllAccountRow>,
    pub volatility_indices: Vec<VolatilityIndexRow>,
}

const MS_PER_DAY: i64 = 86_400_000;

impl TableRows {
    /// Adds the row for `m`; an error says why the message cannot be stored.
    pub fn push(&mut self, m: &MarketMessage, enc: TimeEncoding) -> Result<(), String> {
        let timestamp = enc.time(m.ts_ms, "ts_ms")?;
        let (exchange, market_type, symbol) =
            (m.exchange.clone(), m.market_type.clone(), m.symbol.clone());
        match &m.data {
            MarketData::Orderbook(b) => {
                let best = |levels: &[Level], bid: bool| {
                    let pick = levels.iter().copied();
                    let level = if bid {
                        pick.max_by_key(|l| l[0])
                    } else {
                        pick.min_by_key(|l| l[0])
                    };
                    level.unwrap_or_default()
                };
                let (bid, ask) = (best(&b.bids, true), best(&b.asks, false));
                self.orderbooks.push(OrderbookRow {
                    timestamp,
                    exchange,
                    market_type,
                    symbol,
                    last_update_id: b.last_update_id,
                    bids_count: count(&b.bids)?,
                    asks_count: count(&b.asks)?,
                    best_bid_price: bid[0].0,
                    best_ask_price: ask[0].0,
                    best_bid_quantity: bid[1].0,
                    best_ask_quantity: ask[1].0,
                    bids: levels_json(&b.bids),
                    asks: levels_json(&b.asks),
                });
            }
            MarketData::Trade(t) => self.trades.push(TradeRow {
                timestamp,
                exchange,
                market_type,
                symbol,
                trade_id: t.trade_id.clone(),
                price: t.price.0,
                quantity: t.quantity.0,
                side: t.side.clone(),
                is_maker: t.is_maker,
                trade_time: enc.time(t.trade_ts_ms, "trade_ts_ms")?,
            }),
            MarketData::FundingRate(f) => self.funding_rates.push(FundingRateRow {
                timestamp,
                exchange,
                market_type,
                symbol,
                funding_rate: f.current_funding_rate.0,
                mark_price: f.mark_price.0,
                index_price: f.index_price.0,
                funding_time: enc.time(f.funding_ts_ms, "funding_ts_ms")?,
                next_funding_time: enc.time(f.next_funding_ts_ms, "next_funding_ts_ms")?,
            }),
            MarketData::OpenInterest(o) => self.open_interests.push(OpenInterestRow {
                timestamp,
                exchange,
                market_type,
                symbol,
                open_interest: o.open_interest_value.0,
                open_interest_value: o.open_interest_usd.0,
                count: 0,
            }),
            MarketData::Liquidation(l) => self.liquidations.push(LiquidationRow {
                timestamp,
                exchange,
                market_type,
                symbol,
                side: l.side.clone(),
                price: l.price.0,
                quantity: l.quantity.0,
                liquidation_time: enc.time(l.liquidation_ts_ms, "liquidation_ts_ms")?,
            }),
            MarketData::LsrTopPosition(r) => self.lsr_top_positions.push(LsrTopPositionRow {
                timestamp,
                exchange,
                market_type,
                symbol,
                long_position_ratio: r.long_position_ratio.0,
                short_position_ratio: r.short_position_ratio.0,
                period: r.period.clone(),
            }),
            MarketData::LsrAllAccount(r) => self.lsr_all_accounts.push(LsrAllAccountRow {
                timestamp,
                exchange,
                market_type,
                symbol,
                long_account_ratio: r.long_account_ratio.0,
                short_account_ratio: r.short_account_ratio.0,
                period: r.period.clone(),
            }),
            MarketData::VolatilityIndex(v) => self.volatility_indices.push(VolatilityIndexRow {
                timestamp,
                exchange,
                market_type,
                symbol,
                index_value: v.volatility_index.0,
                underlying_asset: v.underlying_asset.clone(),
                maturity_date: u16::try_from(m.ts_ms / MS_PER_DAY)
                    .map_err(|_| format!("ts_ms {} is past what Date holds", m.ts_ms))?,
            }),
        }
        Ok(())
    }

    /// Rows held for `data_type`'s table.
    pub fn len(&self, data_type: DataType) -> usize {
        match data_type {
            DataType::Orderbook => self.orderbooks.len(),
            DataType::Trade => self.trades.len(),
            DataType::FundingRate => self.funding_rates.len(),
            DataType::OpenInterest => self.open_interests.len(),
            DataType::Liquidation => self.liquidations.len(),
            DataType::LsrTopPosition => self.lsr_top_positions.len(),
            DataType::LsrAllAccount => self.lsr_all_accounts.len(),
            DataType::VolatilityIndex => self.volatility_indices.len(),
        }
    }

    /// The data types with rows to insert.
    pub fn data_types(&self) -> Vec<DataType> {
        DataType::ALL
            .into_iter()
            .filter(|t| self.len(*t) > 0)
            .collect()
    }

    /// Inserts `data_type`'s rows in one INSERT.
    pub async fn insert(&self, client: &Client, data_type: DataType) -> Result<(), String> {
        let table = data_type.table();
        match data_type {
            DataType::Orderbook => insert(client, table, &self.orderbooks).await,
            DataType::Trade => insert(client, table, &self.trades).await,
            DataType::FundingRate => insert(client, table, &self.funding_rates).await,
            DataType::OpenInterest => insert(client, table, &self.open_interests).await,
            DataType::Liquidation => insert(client, table, &self.liquidations).await,
            DataType::LsrTopPosition => insert(client, table, &self.lsr_top_positions).await,
            DataType::LsrAllAccount => insert(client, table, &self.lsr_all_accounts).await,
            DataType::VolatilityIndex => insert(client, table, &self.volatility_indices).await,
        }
        .map_err(|e| format!("insert into {table} failed: {e}"))
    }
}

/// How long sending the rows, then waiting for ClickHouse's answer, may take.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
const END_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

async fn insert<T: RowOwned + RowWrite>(
    client: &Client,
    table: &str,
    rows: &[T],
) -> Result<(), clickhouse::error::Error> {
    // The table name alone: the database comes from the client (`insert("db.table")` would
    // quote both as one identifier).
    let mut insert = client
        .insert::<T>(table)
        .await?
        .with_timeouts(Some(SEND_TIMEOUT), Some(END_TIMEOUT));
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await
}

fn count(levels: &[Level]) -> Result<u32, String> {
    u32::try_from(levels.len()).map_err(|_| format!("{} price levels", levels.len()))
}

/// `[["64999.5","0.25"],...]`: how MarketPrism stores the levels.
fn levels_json(levels: &[Level]) -> String {
    let text: Vec<[String; 2]> = levels
        .iter()
        .map(|[p, q]| [p.to_string(), q.to_string()])
        .collect();
    serde_json::to_string(&text).unwrap_or_else(|_| "[]".into())
}

#[cfg(test)]
#[path = "rows_tests.rs"]
mod tests;
