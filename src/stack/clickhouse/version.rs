//! ClickHouse versions as hosts report them, and the schema rendering each one gets.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::stack::StackError;

/// A ClickHouse version: `18.16.1`, `23.8.2.7`, `25.10.1.3832`. Parsed tolerantly from package
/// and banner spellings (`18.16.1+ds-7.4`, `1:18.16.1+ds-7.3+b2`,
/// `ClickHouse server version 23.8.2.7 (official build).`): the first dotted number wins.
///
/// Missing parts compare as 0 (`21.12` == `21.12.0.0`); [`Display`](fmt::Display) prints the
/// parts that were given.
#[derive(Debug, Clone, Eq)]
pub struct ClickHouseVersion {
    parts: Vec<u32>,
}

impl ClickHouseVersion {
    /// The first version where MarketPrism's own types all exist (Bool came last, in 21.12).
    pub const MODERN_SINCE: (u32, u32) = (21, 12);

    /// The first version whose config files may use `<clickhouse>` as their root element.
    pub const CLICKHOUSE_ROOT_SINCE: u32 = 22;

    pub fn parse(raw: &str) -> Result<Self, StackError> {
        first_dotted_number(raw)
            .map(|parts| ClickHouseVersion { parts })
            .ok_or_else(|| StackError::BadVersion {
                raw: raw.trim().to_string(),
            })
    }

    pub fn major(&self) -> u32 {
        self.part(0)
    }

    pub fn minor(&self) -> u32 {
        self.part(1)
    }

    fn part(&self, i: usize) -> u32 {
        self.parts.get(i).copied().unwrap_or(0)
    }

    /// The rendering of the schema this version gets.
    pub fn rendering(&self) -> SchemaRendering {
        if (self.major(), self.minor()) >= Self::MODERN_SINCE {
            SchemaRendering::Modern
        } else {
            SchemaRendering::Legacy
        }
    }

    /// The one-line reason for [`rendering`](Self::rendering), for the report.
    pub fn rendering_reason(&self) -> String {
        let (maj, min) = Self::MODERN_SINCE;
        match self.rendering() {
            SchemaRendering::Modern => format!(
                "ClickHouse {self} >= {maj}.{min}: MarketPrism's own types (DateTime64, Bool, \
                 codecs, TTL)"
            ),
            SchemaRendering::Legacy => format!(
                "ClickHouse {self} < {maj}.{min}: no DateTime64/Bool/codecs/TTL; compatible types, \
                 same column names (DateTime keeps whole seconds only, Bool is UInt8, \
                 LowCardinality(String) is String; hot data is NOT expired by ClickHouse on this \
                 version, as it has no TTL)"
            ),
        }
    }
}

impl PartialEq for ClickHouseVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl PartialOrd for ClickHouseVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ClickHouseVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.parts.len().max(other.parts.len());
        (0..n)
            .map(|i| self.part(i).cmp(&other.part(i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl fmt::Display for ClickHouseVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.parts.iter().map(u32::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

impl FromStr for ClickHouseVersion {
    type Err = StackError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for ClickHouseVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The parts of the first run of `digits(.digits)+` in `raw` that is not glued to a letter or
/// digit before it and is not a Debian epoch (`1:`).
fn first_dotted_number(raw: &str) -> Option<Vec<u32>> {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_run = bytes[i].is_ascii_digit()
            && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'v');
        if !starts_run {
            i += 1;
            continue;
        }
        let end = bytes[i..]
            .iter()
            .position(|b| !(b.is_ascii_digit() || *b == b'.'))
            .map_or(bytes.len(), |p| i + p);
        let run = raw[i..end].trim_end_matches('.');
        let is_epoch = bytes.get(end) == Some(&b':');
        if !is_epoch && run.contains('.') && !run.contains("..") {
            let parts: Option<Vec<u32>> = run.split('.').map(|p| p.parse().ok()).collect();
            if let Some(parts) = parts {
                return Some(parts);
            }
        }
        i = end.max(i + 1);
    }
    None
}

/// Which DDL a server gets; see [`ClickHouseVersion::rendering`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaRendering {
    /// >= 21.12: MarketPrism's own DDL.
    Modern,
    /// < 21.12: the same columns in types the old server has.
    Legacy,
}

impl fmt::Display for SchemaRendering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SchemaRendering::Modern => "modern",
            SchemaRendering::Legacy => "legacy",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> ClickHouseVersion {
        ClickHouseVersion::parse(s).unwrap()
    }

    #[test]
    fn parses_the_spellings_hosts_report() {
        let table = [
            ("18.16.1", "18.16.1"),
            ("23.8.2.7", "23.8.2.7"),
            ("25.10.1.3832", "25.10.1.3832"),
            ("18.16.1+ds-7.4", "18.16.1"),
            ("1:18.16.1+ds-7.3+b2", "18.16.1"),
            (
                "ClickHouse server version 23.8.2.7 (official build).",
                "23.8.2.7",
            ),
            ("ClickHouse server version 18.16.1.", "18.16.1"),
            ("v24.3.1.2672-lts", "24.3.1.2672"),
            ("  21.11\n", "21.11"),
        ];
        for (raw, want) in table {
            assert_eq!(v(raw).to_string(), want, "{raw:?}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_version() {
        for raw in ["", "clickhouse", "error 127", "23", "v", "1.", "x1.2"] {
            assert_eq!(
                ClickHouseVersion::parse(raw),
                Err(StackError::BadVersion {
                    raw: raw.trim().to_string()
                }),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn compares_numerically_with_missing_parts_as_zero() {
        assert!(v("18.16.1") < v("21.11"));
        assert!(v("21.11.9.9") < v("21.12"));
        assert_eq!(v("21.12"), v("21.12.0.0"));
        assert!(v("23.8.2.7") < v("23.10.1"));
        assert!(v("25.10.1.3832") > v("25.10.1"));
    }

    #[test]
    fn version_to_rendering_table() {
        let table = [
            ("18.16.1", SchemaRendering::Legacy),
            ("21.11", SchemaRendering::Legacy),
            ("21.11.11.1", SchemaRendering::Legacy),
            ("21.12", SchemaRendering::Modern),
            ("23.8.2.7", SchemaRendering::Modern),
            ("25.10.1", SchemaRendering::Modern),
        ];
        for (raw, want) in table {
            assert_eq!(v(raw).rendering(), want, "{raw}");
        }
    }

    #[test]
    fn rendering_reasons() {
        assert_eq!(
            v("23.8.2.7").rendering_reason(),
            "ClickHouse 23.8.2.7 >= 21.12: MarketPrism's own types (DateTime64, Bool, codecs, TTL)"
        );
        assert_eq!(
            v("18.16.1+ds-7.4").rendering_reason(),
            "ClickHouse 18.16.1 < 21.12: no DateTime64/Bool/codecs/TTL; compatible types, same \
             column names (DateTime keeps whole seconds only, Bool is UInt8, \
             LowCardinality(String) is String; hot data is NOT expired by ClickHouse on this \
             version, as it has no TTL)"
        );
    }
}
