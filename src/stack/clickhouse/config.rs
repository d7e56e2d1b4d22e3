//! ClickHouse config overrides, as files for `config.d/` and `users.d/` under the server's config
//! directory (`/etc/clickhouse-server`). The packaged `config.xml` and `users.xml` stay untouched;
//! the server merges these over them at start.
//!
//! Root element: `<yandex>` before 22.x (18.16 knows nothing else), `<clickhouse>` from 22.x on.
//! No plain password is ever rendered: the users file holds its SHA-256 only.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::schema::DATABASE;
use super::ClickHouseVersion;
use crate::stack::checks::check_ports;
use crate::stack::managed::{with_marker, CommentStyle, ManagedFile};
use crate::stack::render::render;
use crate::stack::StackError;

const LISTEN_XML: &str = include_str!("../../../templates/clickhouse/mp-listen.xml.tera");
const USERS_XML: &str = include_str!("../../../templates/clickhouse/mp-users.xml.tera");

/// The root element the server's config files must use.
pub fn xml_root(version: &ClickHouseVersion) -> &'static str {
    if version.major() < ClickHouseVersion::CLICKHOUSE_ROOT_SINCE {
        "yandex"
    } else {
        "clickhouse"
    }
}

/// Where the server listens. Default: IPv4 wildcard, HTTP 8123, native 9000.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfigInput {
    /// IP addresses (`0.0.0.0`, `::`, a private address).
    pub listen_hosts: Vec<String>,
    pub http_port: u16,
    pub tcp_port: u16,
}

impl Default for ListenConfigInput {
    fn default() -> Self {
        ListenConfigInput {
            listen_hosts: vec!["0.0.0.0".into()],
            http_port: 8123,
            tcp_port: 9000,
        }
    }
}

/// The MarketPrism user. `password` is plain text from the caller; only its SHA-256 is
/// rendered, and `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct UsersConfigInput {
    pub user: String,
    pub password: String,
    /// IPs or networks (`::/0`, `10.0.0.0/8`) the user may connect from.
    pub networks: Vec<String>,
    pub profile: String,
    pub quota: String,
    /// The only database the user may use (the `system` database is always readable).
    pub database: String,
}

impl UsersConfigInput {
    /// User `marketprism` with `password`, from anywhere, profile and quota `default`, database
    /// `marketprism_hot`.
    pub fn marketprism(password: impl Into<String>) -> Self {
        UsersConfigInput {
            user: "marketprism".into(),
            password: password.into(),
            networks: vec!["::/0".into()],
            profile: "default".into(),
            quota: "default".into(),
            database: DATABASE.into(),
        }
    }
}

impl fmt::Debug for UsersConfigInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsersConfigInput")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("networks", &self.networks)
            .field("profile", &self.profile)
            .field("quota", &self.quota)
            .field("database", &self.database)
            .finish()
    }
}

#[derive(Serialize)]
struct ListenData<'a> {
    root: &'static str,
    listen_hosts: &'a [String],
    http_port: u16,
    tcp_port: u16,
}

#[derive(Serialize)]
struct UsersData<'a> {
    root: &'static str,
    user: &'a str,
    password_sha256_hex: String,
    networks: &'a [String],
    profile: &'a str,
    quota: &'a str,
    database: &'a str,
}

/// `config.d/mp-listen.xml`: listen_host(s), http_port, tcp_port.
pub fn listen_config(
    version: &ClickHouseVersion,
    input: &ListenConfigInput,
) -> Result<ManagedFile, StackError> {
    if input.listen_hosts.is_empty() {
        return Err(StackError::invalid(
            "ClickHouse listen_hosts",
            "[]",
            "give at least one address, e.g. 0.0.0.0",
        ));
    }
    for h in &input.listen_hosts {
        h.parse::<IpAddr>().map_err(|_| {
            StackError::invalid("ClickHouse listen host", h, "expected an IP address")
        })?;
    }
    check_ports(&[
        ("ClickHouse http_port", input.http_port),
        ("ClickHouse tcp_port", input.tcp_port),
    ])?;
    let body = render(
        "templates/clickhouse/mp-listen.xml.tera",
        LISTEN_XML,
        &ListenData {
            root: xml_root(version),
            listen_hosts: &input.listen_hosts,
            http_port: input.http_port,
            tcp_port: input.tcp_port,
        },
    )?;
    Ok(ManagedFile {
        name: "config.d/mp-listen.xml".into(),
        text: with_marker(CommentStyle::Xml, &body),
    })
}

/// `users.d/mp-users.xml`: the MarketPrism user with `password_sha256_hex`.
pub fn users_config(
    version: &ClickHouseVersion,
    input: &UsersConfigInput,
) -> Result<ManagedFile, StackError> {
    check_name("ClickHouse user name", &input.user)?;
    check_name("ClickHouse profile", &input.profile)?;
    check_name("ClickHouse quota", &input.quota)?;
    check_name("ClickHouse database", &input.database)?;
    if input.password.is_empty() {
        return Err(StackError::invalid(
            "ClickHouse password",
            "",
            "an empty password would let anyone in from the allowed networks",
        ));
    }
    if input.networks.is_empty() {
        return Err(StackError::invalid(
            "ClickHouse user networks",
            "[]",
            "give at least one network, e.g. ::/0",
        ));
    }
    for n in &input.networks {
        check_network(n)?;
    }
    let body = render(
        "templates/clickhouse/mp-users.xml.tera",
        USERS_XML,
        &UsersData {
            root: xml_root(version),
            user: &input.user,
            password_sha256_hex: hex::encode(Sha256::digest(input.password.as_bytes())),
            networks: &input.networks,
            profile: &input.profile,
            quota: &input.quota,
            database: &input.database,
        },
    )?;
    Ok(ManagedFile {
        name: "users.d/mp-users.xml".into(),
        text: with_marker(CommentStyle::Xml, &body),
    })
}

/// Names that become XML element names or text: `[A-Za-z_][A-Za-z0-9_]*`.
fn check_name(field: &'static str, value: &str) -> Result<(), StackError> {
    let mut chars = value.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(StackError::invalid(
            field,
            value,
            "expected letters, digits and _ (not starting with a digit)",
        ))
    }
}

/// An IP address or network `ADDR/PREFIX`.
fn check_network(value: &str) -> Result<(), StackError> {
    let bad = || {
        StackError::invalid(
            "ClickHouse user network",
            value,
            "expected an IP or IP/prefix",
        )
    };
    let (addr, prefix) = match value.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (value, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| bad())?;
    if let Some(p) = prefix {
        let bits: u8 = p.parse().map_err(|_| bad())?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if bits > max {
            return Err(bad());
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
