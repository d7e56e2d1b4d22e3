//! NATS: the `nats-server.conf` a node gets, and the two JetStream streams MarketPrism uses.
//!
//! The streams are plain serde data ([`StreamSpec`]); turning them into a client's stream config
//! and applying them (create, or update in place, never delete) is another module's job, which
//! uses [`diff`] to report what changed and what the server actually applied (2.9 silently
//! ignores fields only 2.10 knows).

mod auth;
mod config;
pub mod install;
mod listen;
pub mod plan;
mod streams;
mod tls;

pub use auth::{NatsCredentials, NatsUser, Permissions, ROUTE_USER};
pub use config::{peer_addresses, render_config, NatsConfigInput, CLUSTER_NAME, DEFAULT_STORE_DIR};
pub use listen::{listen_address, Listen};
pub use streams::{
    default_replicas, diff, streams, streams_with_replicas, validate_layout, DiscardPolicy,
    StorageType, StreamLimits, StreamSpec, MARKET_DATA, MAX_REPLICAS, ORDERBOOK_SNAP,
};
pub use tls::{NatsTlsFiles, NatsTlsPaths};

use std::time::Duration;

use super::component::{Account, Component, DataDir, Origin, Port, Probe, Rolling};

/// mp-remote's config for the server (the package's own file is left alone).
pub const CONFIG_FILE: &str = "/etc/marketprism/nats-server.conf";
/// The fleet's NATS secret (0600, root) on every NATS host: every NATS password derives from
/// it; read back by the next deploy, so it is generated once.
pub const SECRET_FILE: &str = "/etc/marketprism/nats-secret";
/// The admin user's password (0600, root) on every NATS host: how the agent there connects
/// (streams, replica checks).
pub const ADMIN_PASSWORD_FILE: &str = "/etc/marketprism/nats-admin-password";
/// With `[components.nats] tls`: the certificate every node presents, its key (0600, nats) and
/// the CA that signed it (also on every host with a client: storage, collector).
pub const TLS_CERT_FILE: &str = "/etc/marketprism/nats-cert.pem";
pub const TLS_KEY_FILE: &str = "/etc/marketprism/nats-key.pem";
pub const TLS_CA_FILE: &str = "/etc/marketprism/nats-ca.pem";
/// The release installed when the inventory has no `[components.nats]`.
pub const PINNED: &str = "2.10.7";
/// The drop-in that points a package's `nats-server.service` at [`CONFIG_FILE`].
pub const DROP_IN: &str = "/etc/systemd/system/nats-server.service.d/mp-remote.conf";

pub const COMPONENT: Component = Component {
    name: "nats",
    role: "nats",
    unit: "nats-server",
    ports: &[
        Port {
            number: 4222,
            key: "client",
            purpose: "NATS client",
            checked_before_install: true,
        },
        Port {
            number: 8222,
            key: "monitoring",
            purpose: "NATS monitoring",
            checked_before_install: true,
        },
        Port {
            number: 6222,
            key: "cluster",
            purpose: "NATS cluster",
            checked_before_install: false,
        },
    ],
    health: Probe::Http {
        port: 8222,
        path: "/healthz",
        json_status: Some(("status", "ok")),
    },
    health_deadline: Duration::from_secs(60),
    config_files: &[CONFIG_FILE, DROP_IN],
    data_dirs: &[DataDir {
        path: DEFAULT_STORE_DIR,
        owner: "nats",
    }],
    log_dirs: &[],
    accounts: &[Account {
        name: "nats",
        owns_data: true,
    }],
    origin: Origin::Vendor {
        package: "nats-server",
        pinned: PINNED,
        plan: &plan::PLAN,
    },
    binaries: &["/usr/sbin/nats-server", "/usr/local/bin/nats-server"],
    restart: ("on-failure", 2),
    rolling: Rolling::OneAtATime,
    endpoint: ("nats", "client", ""),
    status_calls: &[("jsz", "/jsz?streams=true", None)],
};
