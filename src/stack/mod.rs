//! The components mp-remote deploys, as data: what the install and init layers must put on a
//! host, rendered from embedded templates (`sql/`, `templates/`) with no I/O.
//!
//! - [`clickhouse`]: version -> schema rendering (modern / legacy), the `CREATE` statements (one
//!   per string, idempotent), the columns a check should find in `system.columns`, and the
//!   `config.d` / `users.d` overrides.
//! - [`nats`]: `nats-server.conf` and the two JetStream stream specifications, with layout
//!   validation and a field diff for "updated in place" reporting.
//! - [`component`]: one declaration per component; a vendor's server (NATS, ClickHouse) also
//!   brings its install steps per source and its init steps (`nats::install`, `nats::plan`,
//!   `clickhouse::install`, `clickhouse::plan`), built from `plan`'s shared helpers.
//!
//! Every config file mp-remote writes starts with a managed marker holding the SHA-256 of the rest
//! of the file ([`managed`]), so a later run can tell its own file from one a person edited.

mod checks;
pub mod clickhouse;
pub mod component;
mod error;
pub mod health;
pub mod managed;
pub mod nats;
pub mod pipeline;
mod render;

pub use clickhouse::{
    expected_columns, schema_statements, ClickHouseVersion, ListenConfigInput, Schema,
    SchemaRendering, Statement, UsersConfigInput,
};
pub use error::StackError;
pub use managed::{managed_marker_ok, managed_state, ManagedFile, ManagedState};
pub use nats::{diff, streams, validate_layout, NatsConfigInput, StreamLimits, StreamSpec};
