//! The inventory file exactly as written: serde types with `deny_unknown_fields`, so a typo is an
//! error rather than a silently ignored key. Values that need checks serde cannot express (ports,
//! durations, roles, names…) are kept as `Spanned` so `validate` can point at them.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::{Spanned, Table, Value};

use super::collector::RawCollector;
use super::limits::{RawStreams, RawThresholds};
use super::services::RawService;
use super::sources::RawComponents;

/// Declares a table type that, besides its own fields, accepts every connection setting
/// (`[defaults]`, `[groups.*]` and `[[hosts]]` share them), plus a borrowed [`RawSettings`] view.
macro_rules! with_connection_settings {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident : $ty:ty,)* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            pub user: Option<Spanned<String>>,
            pub port: Option<Spanned<Value>>,
            /// A path, or a list of paths tried in order.
            pub identity_file: Option<Spanned<Value>>,
            pub host_key_checking: Option<Spanned<String>>,
            pub known_hosts: Option<Spanned<String>>,
            pub connect_timeout: Option<Spanned<Value>>,
            pub keepalive: Option<Spanned<Value>>,
            #[serde(rename = "become")]
            pub become_: Option<Spanned<bool>>,
            pub connection: Option<Spanned<String>>,
            pub proxy_jump: Option<Spanned<String>>,
            pub vars: Option<RawVars>,
            /// Where the collector's data comes from (see `inventory::collector`).
            pub collector: Option<RawCollector>,
        }

        impl $name {
            pub fn settings(&self) -> RawSettings<'_> {
                RawSettings {
                    user: self.user.as_ref(),
                    port: self.port.as_ref(),
                    identity_file: self.identity_file.as_ref(),
                    host_key_checking: self.host_key_checking.as_ref(),
                    known_hosts: self.known_hosts.as_ref(),
                    connect_timeout: self.connect_timeout.as_ref(),
                    keepalive: self.keepalive.as_ref(),
                    become_: self.become_.as_ref(),
                    connection: self.connection.as_ref(),
                    proxy_jump: self.proxy_jump.as_ref(),
                    vars: self.vars.as_ref(),
                    collector: self.collector.as_ref(),
                }
            }
        }
    };
}

/// The parts of the file the pipeline reads (`[components.*]`, `[streams]`, `[thresholds]`),
/// with places: read apart from [`RawInventory`], which keeps them as plain tables for the
/// deploy.
#[derive(Debug, Default, Deserialize)]
pub struct RawStack {
    #[serde(default)]
    pub components: RawComponents,
    pub streams: Option<Spanned<RawStreams>>,
    pub thresholds: Option<Spanned<RawThresholds>>,
}

/// `vars = { ... }` as written, every key and value with its place (see `inventory::vars`).
pub type RawVars = BTreeMap<Spanned<String>, Spanned<Value>>;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInventory {
    #[serde(default)]
    pub defaults: RawDefaults,
    #[serde(default)]
    pub hosts: Vec<Spanned<RawHost>>,
    #[serde(default)]
    pub groups: BTreeMap<Spanned<String>, RawGroup>,
    /// Per-component settings, defined by later issues: kept raw.
    #[serde(default)]
    pub components: Table,
    pub streams: Option<Table>,
    pub thresholds: Option<Table>,
    /// The user's own services (see `inventory::services`).
    #[serde(default)]
    pub services: BTreeMap<Spanned<String>, RawService>,
}

with_connection_settings! {
    /// `[defaults]`: connection settings and vars for every host.
    #[derive(Default)]
    pub struct RawDefaults {}
}

with_connection_settings! {
    /// `[groups.NAME]`: members, and settings applied between `[defaults]` and the host.
    pub struct RawGroup {
        #[serde(default)]
        pub hosts: Vec<Spanned<String>>,
    }
}

with_connection_settings! {
    /// One `[[hosts]]` entry.
    pub struct RawHost {
        pub name: Spanned<String>,
        pub address: Option<Spanned<String>>,
        pub private_address: Option<Spanned<String>>,
        #[serde(default)]
        pub roles: Vec<Spanned<String>>,
    }
}

/// The connection settings of one layer (defaults, a group or a host), borrowed.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawSettings<'a> {
    pub user: Option<&'a Spanned<String>>,
    pub port: Option<&'a Spanned<Value>>,
    pub identity_file: Option<&'a Spanned<Value>>,
    pub host_key_checking: Option<&'a Spanned<String>>,
    pub known_hosts: Option<&'a Spanned<String>>,
    pub connect_timeout: Option<&'a Spanned<Value>>,
    pub keepalive: Option<&'a Spanned<Value>>,
    pub become_: Option<&'a Spanned<bool>>,
    pub connection: Option<&'a Spanned<String>>,
    pub proxy_jump: Option<&'a Spanned<String>>,
    pub vars: Option<&'a RawVars>,
    pub collector: Option<&'a RawCollector>,
}
