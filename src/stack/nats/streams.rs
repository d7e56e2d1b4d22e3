//! MarketPrism's JetStream streams as data: `MARKET_DATA` (everything but order books) and
//! `ORDERBOOK_SNAP` (order book snapshots), both file-backed, discarding old messages at their
//! limits, with a 300 s duplicate window for publishers' `Nats-Msg-Id`.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::stack::StackError;

pub const MARKET_DATA: &str = "MARKET_DATA";
pub const ORDERBOOK_SNAP: &str = "ORDERBOOK_SNAP";

/// JetStream's limit on replicas per stream.
pub const MAX_REPLICAS: usize = 5;

const MARKET_DATA_SUBJECTS: [&str; 7] = [
    "trade.>",
    "funding_rate.>",
    "open_interest.>",
    "liquidation.>",
    "volatility_index.>",
    "lsr_top_position.>",
    "lsr_all_account.>",
];
const ORDERBOOK_SUBJECTS: [&str; 1] = ["orderbook.>"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageType {
    File,
    Memory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscardPolicy {
    Old,
    New,
}

/// The limits both streams get. Every field has a default (MarketPrism's), so an inventory may
/// override any subset: `[nats.streams] max_age_secs = 86400`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamLimits {
    pub max_msgs: u64,
    pub max_bytes: u64,
    pub max_age_secs: u64,
    pub duplicate_window_secs: u64,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_msgs: 5_000_000,
            max_bytes: 2 << 30,
            max_age_secs: 48 * 3600,
            duplicate_window_secs: 300,
        }
    }
}

impl StreamLimits {
    /// Refuses limits JetStream would read as "unlimited" (0) or reject (a duplicate window
    /// longer than the maximum age).
    pub fn validate(&self) -> Result<(), StackError> {
        for (field, value) in [
            ("stream max_msgs", self.max_msgs),
            ("stream max_bytes", self.max_bytes),
            ("stream max_age_secs", self.max_age_secs),
            ("stream duplicate_window_secs", self.duplicate_window_secs),
        ] {
            if value == 0 {
                return Err(StackError::invalid(
                    field,
                    "0",
                    "0 means unlimited to JetStream; give a limit",
                ));
            }
        }
        for (field, value) in [
            ("stream max_msgs", self.max_msgs),
            ("stream max_bytes", self.max_bytes),
        ] {
            if value > i64::MAX as u64 {
                return Err(StackError::invalid(field, value.to_string(), "too large"));
            }
        }
        if self.duplicate_window_secs > self.max_age_secs {
            return Err(StackError::invalid(
                "stream duplicate_window_secs",
                self.duplicate_window_secs.to_string(),
                format!(
                    "longer than max_age_secs ({}); JetStream refuses that",
                    self.max_age_secs
                ),
            ));
        }
        Ok(())
    }
}

/// One stream as mp-remote wants it (or, read back, as a server has it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSpec {
    pub name: String,
    pub subjects: Vec<String>,
    pub storage: StorageType,
    pub discard: DiscardPolicy,
    pub max_msgs: u64,
    pub max_bytes: u64,
    pub max_age_secs: u64,
    pub duplicate_window_secs: u64,
    pub replicas: usize,
}

impl StreamSpec {
    pub fn max_age(&self) -> Duration {
        Duration::from_secs(self.max_age_secs)
    }

    pub fn duplicate_window(&self) -> Duration {
        Duration::from_secs(self.duplicate_window_secs)
    }
}

/// Replicas when the inventory does not say: min(3, NATS nodes).
pub fn default_replicas(nats_nodes: usize) -> usize {
    nats_nodes.min(3)
}

/// The replicas the streams get on `nats_nodes` nodes: `requested`, or
/// [`default_replicas`]; refuses layouts JetStream cannot place.
pub fn validate_layout(
    nats_nodes: usize,
    requested_replicas: Option<usize>,
) -> Result<usize, StackError> {
    if nats_nodes == 0 {
        return Err(StackError::NoNatsNodes);
    }
    let Some(requested) = requested_replicas else {
        return Ok(default_replicas(nats_nodes));
    };
    if requested == 0 {
        return Err(StackError::ZeroReplicas);
    }
    if requested > MAX_REPLICAS {
        return Err(StackError::ReplicasAboveMax { requested });
    }
    if requested > nats_nodes {
        return Err(StackError::TooManyReplicas {
            requested,
            nodes: nats_nodes,
        });
    }
    Ok(requested)
}

/// Both streams with min(3, `nats_nodes`) replicas. Call [`validate_layout`] and
/// [`StreamLimits::validate`] first; with a replica count from the inventory use
/// [`streams_with_replicas`].
pub fn streams(nats_nodes: usize, limits: &StreamLimits) -> Vec<StreamSpec> {
    streams_with_replicas(default_replicas(nats_nodes), limits)
}

/// Both streams with `replicas` replicas (from [`validate_layout`]).
pub fn streams_with_replicas(replicas: usize, limits: &StreamLimits) -> Vec<StreamSpec> {
    let spec = |name: &str, subjects: &[&str]| StreamSpec {
        name: name.to_string(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        storage: StorageType::File,
        discard: DiscardPolicy::Old,
        max_msgs: limits.max_msgs,
        max_bytes: limits.max_bytes,
        max_age_secs: limits.max_age_secs,
        duplicate_window_secs: limits.duplicate_window_secs,
        replicas,
    };
    vec![
        spec(MARKET_DATA, &MARKET_DATA_SUBJECTS),
        spec(ORDERBOOK_SNAP, &ORDERBOOK_SUBJECTS),
    ]
}

/// The fields where `actual` (what a server has) differs from `wanted`, one line each:
/// `max_msgs: server has 1000, wanted 5000000`. Subjects compare as sets. Empty when equal.
pub fn diff(actual: &StreamSpec, wanted: &StreamSpec) -> Vec<String> {
    fn field(out: &mut Vec<String>, name: &str, a: String, w: String, note: &str) {
        if a != w {
            out.push(format!("{name}: server has {a}, wanted {w}{note}"));
        }
    }
    let lower = |v: &dyn std::fmt::Debug| format!("{v:?}").to_lowercase();
    let secs = |s: u64| format!("{s}s");
    let mut out = Vec::new();
    field(
        &mut out,
        "name",
        actual.name.clone(),
        wanted.name.clone(),
        "",
    );
    let a: BTreeSet<&str> = actual.subjects.iter().map(String::as_str).collect();
    let w: BTreeSet<&str> = wanted.subjects.iter().map(String::as_str).collect();
    if a != w {
        let missing: Vec<&str> = w.difference(&a).copied().collect();
        let extra: Vec<&str> = a.difference(&w).copied().collect();
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("missing {}", missing.join(", ")));
        }
        if !extra.is_empty() {
            parts.push(format!("extra {}", extra.join(", ")));
        }
        out.push(format!("subjects: {}", parts.join("; ")));
    }
    field(
        &mut out,
        "storage",
        lower(&actual.storage),
        lower(&wanted.storage),
        " (cannot be changed in place)",
    );
    field(
        &mut out,
        "discard",
        lower(&actual.discard),
        lower(&wanted.discard),
        "",
    );
    let num = |n: u64| n.to_string();
    field(
        &mut out,
        "max_msgs",
        num(actual.max_msgs),
        num(wanted.max_msgs),
        "",
    );
    field(
        &mut out,
        "max_bytes",
        num(actual.max_bytes),
        num(wanted.max_bytes),
        "",
    );
    field(
        &mut out,
        "max_age",
        secs(actual.max_age_secs),
        secs(wanted.max_age_secs),
        "",
    );
    field(
        &mut out,
        "duplicate_window",
        secs(actual.duplicate_window_secs),
        secs(wanted.duplicate_window_secs),
        "",
    );
    field(
        &mut out,
        "replicas",
        actual.replicas.to_string(),
        wanted.replicas.to_string(),
        "",
    );
    out
}

#[cfg(test)]
#[path = "streams_tests.rs"]
mod tests;
