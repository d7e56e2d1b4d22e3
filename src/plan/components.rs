//! `[components.*]` of the inventory: where each server comes from.

use serde::Deserialize;

/// How a component gets onto a host.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// The OS package (apt, dnf, yum).
    Os {},
    /// The vendor's release, pinned by version and sha256.
    Release {
        version: Option<String>,
        sha256: Option<String>,
    },
    /// A file on the control node, uploaded (air-gapped hosts).
    Push {
        artifact: String,
        sha256: Option<String>,
        version: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Components {
    pub nats: Source,
    pub clickhouse: Source,
}

/// The seed's pinned releases, used when the inventory names no source.
pub const NATS_PINNED: &str = "2.10.7";
pub const CLICKHOUSE_PINNED: &str = "25.10.1";

impl Components {
    pub fn from_table(table: &toml::Table) -> Result<Self, String> {
        let get = |name: &str, pinned: &str| -> Result<Source, String> {
            match table.get(name) {
                None => Ok(Source::Release {
                    version: Some(pinned.to_string()),
                    sha256: None,
                }),
                Some(value) => value.clone().try_into::<Source>().map_err(|e| {
                    format!(
                        "[components.{name}]: {e}; use source = \"os\", \"release\" or \"push\""
                    )
                }),
            }
        };
        for key in table.keys() {
            if !["nats", "clickhouse", "storage", "collector"].contains(&key.as_str()) {
                return Err(format!(
                    "[components.{key}] is not a component: use nats, clickhouse, storage or collector"
                ));
            }
        }
        Ok(Self {
            nats: get("nats", NATS_PINNED)?,
            clickhouse: get("clickhouse", CLICKHOUSE_PINNED)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_with_defaults() {
        let table: toml::Table = toml::from_str("[nats]\nsource = \"os\"\n").unwrap();
        let components = Components::from_table(&table).unwrap();
        assert_eq!(components.nats, Source::Os {});
        assert!(
            matches!(components.clickhouse, Source::Release { version: Some(ref v), .. } if v == CLICKHOUSE_PINNED)
        );
        let bad: toml::Table = toml::from_str("[nats]\nsource = \"apt\"\n").unwrap();
        assert!(Components::from_table(&bad)
            .unwrap_err()
            .contains("[components.nats]"));
        let unknown: toml::Table = toml::from_str("[redis]\nsource = \"os\"\n").unwrap();
        assert!(Components::from_table(&unknown).is_err());
    }
}
