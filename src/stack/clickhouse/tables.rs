//! The one column table both schema renderings come from: MarketPrism's 8 hot tables, each as
//! common leading columns, its own columns, common trailing columns, and its ORDER BY key.
//! Types are logical ([`ColumnKind`]); [`ColumnKind::ddl`] and [`ColumnKind::reported`] say how
//! each rendering spells them, so column names and order cannot differ between renderings.

use super::SchemaRendering;

/// A column's logical type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// A UTC instant in milliseconds: `DateTime64(3, 'UTC')`; legacy `DateTime('UTC')` (whole
    /// seconds: 18.16 has no sub-second time type, and its JSONEachRow rejects fractions).
    Time,
    /// A short repeated string: `LowCardinality(String)`; legacy `String` (18.16 has
    /// LowCardinality only behind an experimental setting, which mp-remote does not rely on).
    Tag,
    /// Free text (JSON of order book levels, trade ids): `String`.
    Text,
    /// Prices, quantities, ratios: `Decimal64(8)` (18.16 has it too).
    Decimal,
    UInt64,
    UInt32,
    /// `Bool`; legacy `UInt8` (0/1).
    Flag,
    /// A calendar day: `Date`.
    Day,
}

impl ColumnKind {
    /// The type as written in `CREATE TABLE`.
    pub fn ddl(self, r: SchemaRendering) -> &'static str {
        use SchemaRendering::{Legacy, Modern};
        match (self, r) {
            (ColumnKind::Time, Modern) => "DateTime64(3, 'UTC')",
            (ColumnKind::Time, Legacy) => "DateTime('UTC')",
            (ColumnKind::Tag, Modern) => "LowCardinality(String)",
            (ColumnKind::Tag, Legacy) | (ColumnKind::Text, _) => "String",
            (ColumnKind::Decimal, _) => "Decimal64(8)",
            (ColumnKind::UInt64, _) => "UInt64",
            (ColumnKind::UInt32, _) => "UInt32",
            (ColumnKind::Flag, Modern) => "Bool",
            (ColumnKind::Flag, Legacy) => "UInt8",
            (ColumnKind::Day, _) => "Date",
        }
    }

    /// The type as `system.columns` reports it (ClickHouse normalises `Decimal64(8)` to
    /// `Decimal(18, 8)`; checked on 18.16.1 and 26.9).
    pub fn reported(self, r: SchemaRendering) -> &'static str {
        match self {
            ColumnKind::Decimal => "Decimal(18, 8)",
            other => other.ddl(r),
        }
    }
}

/// A column's DEFAULT, logically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnDefault {
    None,
    /// A string literal (no quotes or backslashes in it).
    Text(&'static str),
    /// false: `false`; legacy `0`.
    False,
    /// The insert time: `now64(3)`; legacy `now()`.
    Now,
}

impl ColumnDefault {
    /// The DEFAULT expression, if any.
    pub fn ddl(self, r: SchemaRendering) -> Option<String> {
        use SchemaRendering::{Legacy, Modern};
        match (self, r) {
            (ColumnDefault::None, _) => None,
            (ColumnDefault::Text(s), _) => Some(format!("'{s}'")),
            (ColumnDefault::False, Modern) => Some("false".into()),
            (ColumnDefault::False, Legacy) => Some("0".into()),
            (ColumnDefault::Now, Modern) => Some("now64(3)".into()),
            (ColumnDefault::Now, Legacy) => Some("now()".into()),
        }
    }
}

/// One column. `codec` is used by the modern rendering only (18.16 has no codecs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnSpec {
    pub name: &'static str,
    pub kind: ColumnKind,
    pub default: ColumnDefault,
    pub codec: Option<&'static str>,
}

impl ColumnSpec {
    /// Everything after the name in `CREATE TABLE`: `DateTime64(3, 'UTC') CODEC(Delta, ZSTD)`.
    pub fn definition(&self, r: SchemaRendering) -> String {
        let mut out = self.kind.ddl(r).to_string();
        if let Some(d) = self.default.ddl(r) {
            out.push_str(" DEFAULT ");
            out.push_str(&d);
        }
        if let (Some(codec), SchemaRendering::Modern) = (self.codec, r) {
            out.push_str(" CODEC(");
            out.push_str(codec);
            out.push(')');
        }
        out
    }
}

const fn col(name: &'static str, kind: ColumnKind) -> ColumnSpec {
    ColumnSpec {
        name,
        kind,
        default: ColumnDefault::None,
        codec: None,
    }
}

const fn col_default(name: &'static str, kind: ColumnKind, default: ColumnDefault) -> ColumnSpec {
    ColumnSpec {
        name,
        kind,
        default,
        codec: None,
    }
}

const fn col_codec(name: &'static str, kind: ColumnKind, codec: &'static str) -> ColumnSpec {
    ColumnSpec {
        name,
        kind,
        default: ColumnDefault::None,
        codec: Some(codec),
    }
}

use ColumnKind::{Day, Decimal, Flag, Tag, Text, Time, UInt32, UInt64};

/// The columns every table starts with.
pub const LEADING: [ColumnSpec; 4] = [
    col_codec("timestamp", Time, "Delta, ZSTD"),
    col_codec("exchange", Tag, "ZSTD"),
    col_codec("market_type", Tag, "ZSTD"),
    col_codec("symbol", Tag, "ZSTD"),
];

/// The columns every table ends with.
pub const TRAILING: [ColumnSpec; 2] = [
    col_default("data_source", Tag, ColumnDefault::Text("marketprism")),
    col_default("created_at", Time, ColumnDefault::Now),
];

/// One table: its name, its own columns (between [`LEADING`] and [`TRAILING`]), its ORDER BY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    pub name: &'static str,
    pub own: &'static [ColumnSpec],
    pub order_by: &'static [&'static str],
}

impl TableSpec {
    /// All columns in table order.
    pub fn columns(&self) -> impl Iterator<Item = &ColumnSpec> {
        LEADING.iter().chain(self.own).chain(TRAILING.iter())
    }
}

const PERIOD: ColumnSpec = col_default("period", Tag, ColumnDefault::Text("5m"));

/// MarketPrism's hot tables, in the order they are created.
pub const TABLES: [TableSpec; 8] = [
    TableSpec {
        name: "orderbooks",
        own: &[
            col("last_update_id", UInt64),
            col("bids_count", UInt32),
            col("asks_count", UInt32),
            col("best_bid_price", Decimal),
            col("best_ask_price", Decimal),
            col("best_bid_quantity", Decimal),
            col("best_ask_quantity", Decimal),
            col("bids", Text),
            col("asks", Text),
        ],
        order_by: &["timestamp", "exchange", "symbol", "last_update_id"],
    },
    TableSpec {
        name: "trades",
        own: &[
            col("trade_id", Text),
            col("price", Decimal),
            col("quantity", Decimal),
            col("side", Tag),
            col_default("is_maker", Flag, ColumnDefault::False),
            col("trade_time", Time),
        ],
        order_by: &["timestamp", "exchange", "symbol", "trade_id"],
    },
    TableSpec {
        name: "funding_rates",
        own: &[
            col("funding_rate", Decimal),
            col("mark_price", Decimal),
            col("index_price", Decimal),
            col("funding_time", Time),
            col("next_funding_time", Time),
        ],
        order_by: &["timestamp", "exchange", "symbol"],
    },
    TableSpec {
        name: "open_interests",
        own: &[
            col("open_interest", Decimal),
            col("open_interest_value", Decimal),
            col("count", UInt64),
        ],
        order_by: &["timestamp", "exchange", "symbol"],
    },
    TableSpec {
        name: "liquidations",
        own: &[
            col("side", Tag),
            col("price", Decimal),
            col("quantity", Decimal),
            col("liquidation_time", Time),
        ],
        order_by: &["timestamp", "exchange", "symbol"],
    },
    TableSpec {
        name: "lsr_top_positions",
        own: &[
            col("long_position_ratio", Decimal),
            col("short_position_ratio", Decimal),
            PERIOD,
        ],
        order_by: &["timestamp", "exchange", "symbol", "period"],
    },
    TableSpec {
        name: "lsr_all_accounts",
        own: &[
            col("long_account_ratio", Decimal),
            col("short_account_ratio", Decimal),
            PERIOD,
        ],
        order_by: &["timestamp", "exchange", "symbol", "period"],
    },
    TableSpec {
        name: "volatility_indices",
        own: &[
            col("index_value", Decimal),
            col("underlying_asset", Tag),
            col("maturity_date", Day),
        ],
        order_by: &["timestamp", "exchange", "symbol"],
    },
];

/// The table called `name`, if it is one of [`TABLES`].
pub fn table(name: &str) -> Option<&'static TableSpec> {
    TABLES.iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn column_names_are_unique_and_order_keys_exist() {
        for t in &TABLES {
            let names: Vec<&str> = t.columns().map(|c| c.name).collect();
            let set: BTreeSet<&str> = names.iter().copied().collect();
            assert_eq!(set.len(), names.len(), "{}: duplicate column", t.name);
            for k in t.order_by {
                assert!(set.contains(k), "{}: ORDER BY {k} is not a column", t.name);
            }
            // The partition key uses these.
            assert!(set.contains("timestamp") && set.contains("exchange"));
        }
    }

    #[test]
    fn text_defaults_need_no_escaping() {
        for t in &TABLES {
            for c in t.columns() {
                if let ColumnDefault::Text(s) = c.default {
                    assert!(!s.contains(['\'', '\\']), "{}.{}", t.name, c.name);
                }
            }
        }
    }
}
