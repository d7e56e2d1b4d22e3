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
    /// Start even when an address cannot be bound (one not on this host, IPv6 off), as long
    /// as another one can.
    pub listen_try: bool,
}

impl Default for ListenConfigInput {
    fn default() -> Self {
        ListenConfigInput {
            listen_hosts: vec!["0.0.0.0".into()],
            http_port: 8123,
            tcp_port: 9000,
            listen_try: false,
        }
    }
}

impl ListenConfigInput {
    /// Loopback and the host's private address, nothing else. A private address that is a
    /// host name (ClickHouse binds IPs) or the wildcard leaves the IPv4 wildcard; one that
    /// the host does not have (a NAT's address) is skipped by the server (`listen_try`)
    /// rather than keeping it from starting.
    pub fn loopback_and(private_address: &str) -> Self {
        let hosts = match private_address.parse::<IpAddr>() {
            Ok(ip) if ip.is_loopback() => vec!["127.0.0.1".to_string()],
            Ok(ip) if !ip.is_unspecified() => vec!["127.0.0.1".into(), ip.to_string()],
            _ => vec!["0.0.0.0".into()],
        };
        ListenConfigInput {
            listen_try: hosts.len() > 1,
            listen_hosts: hosts,
            ..ListenConfigInput::default()
        }
    }
}

/// The MarketPrism user. `password` is plain text from the caller; only its SHA-256 is
/// rendered, and `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct UsersConfigInput {
    pub user: String,
    pub password: String,
    /// IPs or networks (`10.0.0.5`, `10.0.0.0/8`) the user may connect from.
    pub networks: Vec<String>,
    /// Host names the user may connect from (the server resolves them).
    pub hosts: Vec<String>,
    pub profile: String,
    pub quota: String,
    /// The only database the user may use (the `system` database is always readable).
    pub database: String,
}

impl UsersConfigInput {
    /// User `marketprism` with `password`, from loopback only (add the storage hosts with
    /// [`UsersConfigInput::allow`]), profile and quota `default`, database `marketprism_hot`.
    pub fn marketprism(password: impl Into<String>) -> Self {
        UsersConfigInput {
            user: "marketprism".into(),
            password: password.into(),
            networks: vec!["127.0.0.1".into(), "::1".into()],
            hosts: Vec::new(),
            profile: "default".into(),
            quota: "default".into(),
            database: DATABASE.into(),
        }
    }
}

impl UsersConfigInput {
    /// Also allows `address` (a host's private address: an IP, or a host name), once.
    pub fn allow(&mut self, address: &str) {
        let list = if address.parse::<IpAddr>().is_ok() {
            &mut self.networks
        } else {
            &mut self.hosts
        };
        if !list.iter().any(|a| a == address) {
            list.push(address.to_string());
        }
    }
}

impl fmt::Debug for UsersConfigInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsersConfigInput")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("networks", &self.networks)
            .field("hosts", &self.hosts)
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
    listen_try: bool,
}

#[derive(Serialize)]
struct UsersData<'a> {
    root: &'static str,
    user: &'a str,
    password_sha256_hex: String,
    networks: &'a [String],
    hosts: &'a [String],
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
            listen_try: input.listen_try,
        },
    )?;
    Ok(ManagedFile {
        name: "config.d/mp-listen.xml".into(),
        text: with_marker(CommentStyle::Xml, &body),
    })
}

/// `users.d/mp-users.xml`: the MarketPrism user with `password_sha256_hex`, and the package's
/// passwordless `default` user kept to loopback (the agent's and the tests' local queries).
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
    for h in &input.hosts {
        check_host_name(h)?;
    }
    let body = render(
        "templates/clickhouse/mp-users.xml.tera",
        USERS_XML,
        &UsersData {
            root: xml_root(version),
            user: &input.user,
            password_sha256_hex: hex::encode(Sha256::digest(input.password.as_bytes())),
            networks: &input.networks,
            hosts: &input.hosts,
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

/// A host name for `<host>`: letters, digits, `.` and `-`.
fn check_host_name(value: &str) -> Result<(), StackError> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(StackError::invalid(
            "ClickHouse user host",
            value,
            "expected a host name (letters, digits, `.` and `-`)",
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
