//! ClickHouse: which schema rendering a server version gets, the `CREATE` statements for the
//! `marketprism_hot` database, the columns a check should find, and the config overrides.
//!
//! Two renderings of ONE column table ([`tables`]):
//! - [`SchemaRendering::Modern`] (>= 21.12): MarketPrism's own DDL (DateTime64, Bool,
//!   LowCardinality, codecs, 3-day TTL).
//! - [`SchemaRendering::Legacy`] (< 21.12, e.g. Debian 12's 18.16.1): the same column names in
//!   the same order with types that version has.

mod config;
pub mod install;
pub mod plan;
mod schema;
pub mod tables;
mod version;

pub use config::{listen_config, users_config, xml_root, ListenConfigInput, UsersConfigInput};
pub use schema::{
    column_mismatches, expected_columns, schema_statements, Schema, Statement, DATABASE,
    HOT_TTL_DAYS,
};
pub use version::{ClickHouseVersion, SchemaRendering};

use std::time::Duration;

use super::component::{Account, Component, DataDir, Origin, Port, Probe, Rolling};

/// ClickHouse's data (Debian's package and the official ones agree).
pub const DATA_DIR: &str = "/var/lib/clickhouse";
/// Its logs (the package's, and the ones a release install makes).
pub const LOG_DIR: &str = "/var/log/clickhouse-server";
/// The ClickHouse user the pipeline uses; its password is generated once per fleet.
pub const PIPELINE_USER: &str = "marketprism";
/// That password (0600, root) on every ClickHouse host: read back by the next deploy.
pub const SECRET_FILE: &str = "/etc/marketprism/clickhouse-password";
/// The release installed when the inventory has no `[components.clickhouse]` (ClickHouse's
/// archives want a fourth part: the inventory check asks for it).
pub const PINNED: &str = "25.10.1";
/// mp-remote's overrides beside the package's config.
pub const LISTEN_FILE: &str = "/etc/clickhouse-server/config.d/mp-listen.xml";
pub const USERS_FILE: &str = "/etc/clickhouse-server/users.d/mp-users.xml";

pub const COMPONENT: Component = Component {
    name: "clickhouse",
    role: "clickhouse",
    unit: "clickhouse-server",
    ports: &[
        Port {
            number: 8123,
            key: "http",
            purpose: "ClickHouse HTTP",
            checked_before_install: true,
        },
        Port {
            number: 9000,
            key: "native",
            purpose: "ClickHouse native",
            checked_before_install: true,
        },
        Port {
            number: 9009,
            key: "interserver",
            purpose: "ClickHouse interserver",
            checked_before_install: false,
        },
    ],
    health: Probe::Http {
        port: 8123,
        path: "/ping",
        json_status: None,
    },
    health_deadline: Duration::from_secs(90),
    config_files: &[LISTEN_FILE, USERS_FILE],
    data_dirs: &[DataDir {
        path: DATA_DIR,
        owner: "clickhouse",
    }],
    log_dirs: &[LOG_DIR],
    accounts: &[Account {
        name: "clickhouse",
        owns_data: true,
    }],
    origin: Origin::Vendor {
        package: "clickhouse-server",
        pinned: PINNED,
        plan: &plan::PLAN,
    },
    binaries: &[
        "/usr/bin/clickhouse-server",
        "/usr/sbin/clickhouse-server",
        "/usr/local/bin/clickhouse-server",
    ],
    restart: ("always", 5),
    rolling: Rolling::OneAtATime,
    endpoint: ("http", "http", ""),
    status_calls: &[
        ("version", "/", Some("SELECT version()")),
        (
            "tables",
            "/",
            Some("SELECT name FROM system.tables WHERE database = 'marketprism_hot' FORMAT JSONEachRow"),
        ),
        (
            "parts",
            "/",
            Some("SELECT table, sum(rows) AS rows FROM system.parts WHERE database = 'marketprism_hot' AND active GROUP BY table FORMAT JSONEachRow"),
        ),
    ],
};
