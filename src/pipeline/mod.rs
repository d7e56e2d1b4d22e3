//! The services that run on the hosts: the collector (publishes market data to JetStream) and
//! hot storage (consumes it into ClickHouse), each with `/health` and `/metrics`. This is the
//! application the deploy installs; it knows nothing of inventories, plans or transports, only
//! its own config file (`config`).

pub mod collector;
pub mod collector_health;
pub mod config;
pub mod http;
pub mod message;
pub mod metrics;
pub mod nats;
pub mod nats_auth;
pub mod source;
pub mod storage;

/// Why a service could not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceError {
    /// The config (or a file it names) is wrong: exit 2, restarting will not help.
    Config(String),
    /// Something at start failed (a port taken): exit 1.
    Fatal(String),
}

impl ServiceError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ServiceError::Config(_) => 2,
            ServiceError::Fatal(_) => 1,
        }
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceError::Config(m) | ServiceError::Fatal(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ServiceError {}
