//! ClickHouse: which schema rendering a server version gets, the `CREATE` statements for the
//! `marketprism_hot` database, the columns a check should find, and the config overrides.
//!
//! Two renderings of ONE column table ([`tables`]):
//! - [`SchemaRendering::Modern`] (>= 21.12): MarketPrism's own DDL (DateTime64, Bool,
//!   LowCardinality, codecs, 3-day TTL).
//! - [`SchemaRendering::Legacy`] (< 21.12, e.g. Debian 12's 18.16.1): the same column names in
//!   the same order with types that version has.

mod config;
mod schema;
pub mod tables;
mod version;

pub use config::{listen_config, users_config, xml_root, ListenConfigInput, UsersConfigInput};
pub use schema::{
    column_mismatches, expected_columns, schema_statements, Schema, Statement, DATABASE,
    HOT_TTL_DAYS,
};
pub use version::{ClickHouseVersion, SchemaRendering};
