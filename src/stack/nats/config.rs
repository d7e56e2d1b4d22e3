//! `nats-server.conf`: client, monitoring and (on several nodes) cluster listeners, JetStream's
//! store. One node gets no `cluster` block; with more, each node routes to all the others.

use serde::{Deserialize, Serialize};

use super::auth::{NatsCredentials, NatsUser, Permissions, ROUTE_USER};
use super::streams::{streams_with_replicas, StreamLimits};
use crate::stack::checks::check_ports;
use crate::stack::managed::{with_marker, CommentStyle, ManagedFile};
use crate::stack::render::render;
use crate::stack::StackError;

const NATS_CONF: &str = include_str!("../../../templates/nats/nats-server.conf.tera");

/// The JetStream cluster's name.
pub const CLUSTER_NAME: &str = "marketprism";

/// Where JetStream keeps its files unless the inventory says otherwise: never under /tmp, which
/// does not survive a reboot. nats-server puts its data in a `jetstream/` folder below this
/// (`/var/lib/nats/jetstream/jetstream`, seen with 2.9.10), so create and own this directory, not
/// the folder below.
pub const DEFAULT_STORE_DIR: &str = "/var/lib/nats/jetstream";

/// What one node's config is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatsConfigInput {
    /// Unique per node (JetStream clustering needs it): `[A-Za-z0-9_.-]+`.
    pub server_name: String,
    /// An absolute path outside /tmp, /var/tmp and /dev/shm; see [`DEFAULT_STORE_DIR`].
    pub store_dir: String,
    /// What the client and cluster listeners bind; see [`super::listen_address`]. Monitoring
    /// binds 127.0.0.1.
    pub listen: String,
    pub client_port: u16,
    pub monitor_port: u16,
    pub cluster_port: u16,
    /// The private addresses (IP or host name) of all OTHER NATS nodes; see
    /// [`peer_addresses`]. Empty on a single node: no cluster block.
    pub routes: Vec<String>,
    /// JetStream's file store limit on this node.
    pub max_file_store_bytes: u64,
    /// The fleet's credentials: every client and route must authenticate. None only in tests
    /// of the other parts of the file.
    #[serde(skip)]
    pub credentials: Option<NatsCredentials>,
    /// Clients and routes speak TLS with the files at [`super::TLS_CERT_FILE`] & co.
    #[serde(default)]
    pub tls: bool,
}

impl NatsConfigInput {
    /// 8 GiB: both streams at their default 2 GiB limit, twice over.
    pub const DEFAULT_MAX_FILE_STORE_BYTES: u64 = 8 << 30;

    /// A single node called `server_name` with the default ports (4222, 8222, 6222), store dir
    /// and file store limit.
    pub fn new(server_name: impl Into<String>) -> Self {
        NatsConfigInput {
            server_name: server_name.into(),
            store_dir: DEFAULT_STORE_DIR.into(),
            listen: "0.0.0.0".into(),
            client_port: 4222,
            monitor_port: 8222,
            cluster_port: 6222,
            routes: Vec::new(),
            max_file_store_bytes: Self::DEFAULT_MAX_FILE_STORE_BYTES,
            credentials: None,
            tls: false,
        }
    }
}

/// The addresses in `all` (every NATS node's private address, this one's included) other than
/// `own`, in order and without repeats: a node's routes.
pub fn peer_addresses(own: &str, all: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in all {
        if a != own && !out.contains(a) {
            out.push(a.clone());
        }
    }
    out
}

#[derive(Serialize)]
struct ConfData<'a> {
    server_name: &'a str,
    client_listen: String,
    monitor_listen: String,
    cluster_listen: String,
    store_dir: &'a str,
    max_file_store_bytes: u64,
    cluster_name: &'static str,
    routes: Vec<String>,
    users: Vec<UserData>,
    route_user: &'static str,
    route_password: Option<String>,
    tls: Option<TlsData>,
}

#[derive(Serialize)]
struct TlsData {
    cert_file: &'static str,
    key_file: &'static str,
    ca_file: &'static str,
}

#[derive(Serialize)]
struct UserData {
    name: &'static str,
    password: String,
    permissions: Option<PermissionsData>,
}

#[derive(Serialize)]
struct PermissionsData {
    publish_allow: Vec<String>,
    publish_deny: Vec<String>,
    subscribe_allow: Vec<String>,
}

impl From<Permissions> for PermissionsData {
    fn from(p: Permissions) -> Self {
        PermissionsData {
            publish_allow: p.publish_allow,
            publish_deny: p.publish_deny,
            subscribe_allow: p.subscribe_allow,
        }
    }
}

/// Every client user with its password and permissions.
fn users(credentials: &NatsCredentials) -> Vec<UserData> {
    // The subjects do not depend on replicas or limits.
    let streams = streams_with_replicas(1, &StreamLimits::default());
    NatsUser::ALL
        .iter()
        .map(|user| UserData {
            name: user.name(),
            password: credentials.password(*user),
            permissions: user.permissions(&streams).map(PermissionsData::from),
        })
        .collect()
}

/// Renders `nats-server.conf` with the managed marker as its first line.
pub fn render_config(input: &NatsConfigInput) -> Result<ManagedFile, StackError> {
    check_server_name(&input.server_name)?;
    check_store_dir(&input.store_dir)?;
    check_ports(&[
        ("NATS client_port", input.client_port),
        ("NATS monitor_port", input.monitor_port),
        ("NATS cluster_port", input.cluster_port),
    ])?;
    if input.max_file_store_bytes == 0 {
        return Err(StackError::invalid(
            "NATS max_file_store_bytes",
            "0",
            "JetStream needs some file store",
        ));
    }
    if input.listen.parse::<std::net::IpAddr>().is_err() {
        return Err(StackError::invalid(
            "NATS listen",
            &input.listen,
            "expected an IP address",
        ));
    }
    let at = |port| super::listen::host_port(&input.listen, port);
    let route_password = input.credentials.as_ref().map(|c| c.route_password());
    let mut routes = Vec::new();
    for r in &input.routes {
        let url = route_url(r, input.cluster_port, route_password.as_deref())?;
        if routes.contains(&url) {
            return Err(StackError::invalid("NATS route", r, "listed twice"));
        }
        routes.push(url);
    }
    let body = render(
        "templates/nats/nats-server.conf.tera",
        NATS_CONF,
        &ConfData {
            server_name: &input.server_name,
            client_listen: at(input.client_port),
            // Loopback only: every reader (health, status, streams, gates) is on the host.
            monitor_listen: super::listen::host_port("127.0.0.1", input.monitor_port),
            cluster_listen: at(input.cluster_port),
            store_dir: &input.store_dir,
            max_file_store_bytes: input.max_file_store_bytes,
            cluster_name: CLUSTER_NAME,
            routes,
            users: input.credentials.as_ref().map(users).unwrap_or_default(),
            route_user: ROUTE_USER,
            route_password,
            tls: input.tls.then_some(TlsData {
                cert_file: super::TLS_CERT_FILE,
                key_file: super::TLS_KEY_FILE,
                ca_file: super::TLS_CA_FILE,
            }),
        },
    )?;
    Ok(ManagedFile {
        name: "nats-server.conf".into(),
        text: with_marker(CommentStyle::Hash, &body),
    })
}

/// `nats-route://[route:PASSWORD@]ADDR:PORT` (IPv6 in brackets).
fn route_url(address: &str, port: u16, password: Option<&str>) -> Result<String, StackError> {
    let login = password
        .map(|p| format!("{ROUTE_USER}:{p}@"))
        .unwrap_or_default();
    let bare = address.trim_start_matches('[').trim_end_matches(']');
    if let Ok(std::net::IpAddr::V6(_)) = bare.parse() {
        return Ok(format!("nats-route://{login}[{bare}]:{port}"));
    }
    let host_ok = !address.is_empty()
        && address
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if !host_ok {
        return Err(StackError::invalid(
            "NATS route",
            address,
            "expected a node's private IP address or host name (no scheme, no port)",
        ));
    }
    Ok(format!("nats-route://{login}{address}:{port}"))
}

fn check_server_name(name: &str) -> Result<(), StackError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(StackError::invalid(
            "NATS server_name",
            name,
            "expected letters, digits, `_`, `.` and `-` (no spaces)",
        ))
    }
}

fn check_store_dir(dir: &str) -> Result<(), StackError> {
    let why = if !dir.starts_with('/') {
        Some("must be an absolute path")
    } else if dir.contains(['"', '\\', '\n', '\r']) {
        Some("must not contain quotes, backslashes or line breaks")
    } else if dir.split('/').any(|p| p == "..") {
        Some("must not contain `..`")
    } else if ["/tmp", "/var/tmp", "/dev/shm"]
        .iter()
        .any(|t| dir == *t || dir.starts_with(&format!("{t}/")))
    {
        Some("must not be under /tmp, /var/tmp or /dev/shm: JetStream's data would not survive a reboot")
    } else {
        None
    };
    match why {
        Some(why) => Err(StackError::invalid("JetStream store_dir", dir, why)),
        None => Ok(()),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
