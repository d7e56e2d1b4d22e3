//! NATS: the `nats-server.conf` a node gets, and the two JetStream streams MarketPrism uses.
//!
//! The streams are plain serde data ([`StreamSpec`]); turning them into a client's stream config
//! and applying them (create, or update in place, never delete) is another module's job, which
//! uses [`diff`] to report what changed and what the server actually applied (2.9 silently
//! ignores fields only 2.10 knows).

mod config;
mod streams;

pub use config::{peer_addresses, render_config, NatsConfigInput, CLUSTER_NAME, DEFAULT_STORE_DIR};
pub use streams::{
    default_replicas, diff, streams, streams_with_replicas, validate_layout, DiscardPolicy,
    StorageType, StreamLimits, StreamSpec, MARKET_DATA, MAX_REPLICAS, ORDERBOOK_SNAP,
};
