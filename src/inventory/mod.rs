//! The inventory: which hosts to deploy to, what runs on each (roles) and how to reach them.
//!
//! A TOML file (see `inventory/*.toml`) is parsed strictly (`model`), every value is checked and
//! pointed at when wrong (`validate`, `error`), then `[defaults]` < `[groups.*]` (in name order) <
//! `[[hosts]]` are merged and `~/.ssh/config` fills what the inventory leaves open (`resolve`,
//! `ssh_config`), so each [`Host`] carries a fully resolved [`SshTarget`]. `--limit` selection
//! lives in `limit`.

mod address;
mod collector;
mod error;
mod jump;
mod key_files;
mod limit;
mod limits;
mod model;
mod names;
mod resolve;
mod services;
mod services_rules;
mod sources;
mod ssh_config;
mod validate;
mod vars;

#[cfg(test)]
mod hardening_tests;
#[cfg(test)]
mod parse_props;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use collector::CollectorChoice;
pub use error::{escape_controls, InventoryError, Location};
pub use services::{ServiceHealth, ServiceKind, ServiceProbe, UserService};

use crate::transport::target::SshTarget;

/// What a host runs: the role of one of [`crate::stack::component::ALL`], whose declaration
/// says what it is. Serialised as its name, as written in the inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Role(usize);

const COMPONENTS: usize = crate::stack::component::ALL.len();

impl Role {
    pub const NATS: Role = Role::of("nats");
    pub const CLICKHOUSE: Role = Role::of("clickhouse");
    pub const STORAGE: Role = Role::of("storage");
    pub const COLLECTOR: Role = Role::of("collector");

    /// Every role, in the components' start order (NATS and ClickHouse before what writes to
    /// them).
    pub const ALL: [Role; COMPONENTS] = {
        let mut all = [Role(0); COMPONENTS];
        let mut i = 0;
        while i < COMPONENTS {
            all[i] = Role(i);
            i += 1;
        }
        all
    };

    /// The role named `name` in a component's declaration; a name no component has fails the
    /// build (these are compile-time constants).
    const fn of(name: &str) -> Role {
        let all = crate::stack::component::ALL;
        let mut i = 0;
        while i < all.len() {
            if crate::stack::component::same_name(all[i].role, name) {
                return Role(i);
            }
            i += 1;
        }
        panic!("no component has this role")
    }

    /// The component this role places on a host.
    pub fn component(self) -> &'static crate::stack::component::Component {
        crate::stack::component::ALL[self.0]
    }

    pub fn as_str(self) -> &'static str {
        self.component().role
    }

    /// "nats, clickhouse, storage, collector", for error hints.
    pub(crate) fn allowed() -> String {
        Role::ALL.map(Role::as_str).join(", ")
    }
}

impl Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Role::from_str(&name).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of [`Role::from_str`]: the unknown name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {name:?}: use one of {allowed}", name = .0, allowed = Role::allowed())]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

/// How the control node runs commands on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Connection {
    /// Over SSH, with [`Host::ssh`].
    Ssh,
    /// On this machine, without SSH ([`Host::ssh`] is filled but unused).
    Local,
}

/// One host, fully resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub name: String,
    pub connection: Connection,
    /// How to reach it; for `Local` hosts the address is "localhost" and the target unused.
    pub ssh: SshTarget,
    /// How the other hosts reach it (cluster traffic): `private_address`, else the address.
    pub private_address: String,
    /// Run steps through `sudo -n`.
    pub become_: bool,
    pub roles: Vec<Role>,
    /// The groups listing this host, in name order.
    pub groups: Vec<String>,
    /// `[defaults].vars` < group vars (groups in name order) < host vars, tables merged deeply.
    pub vars: toml::Table,
    /// Where its collector's data comes from (`collector` tables, merged like vars).
    pub collector: CollectorChoice,
}

impl Host {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// A `[groups.NAME]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    /// Member host names, as listed (duplicates removed).
    pub hosts: Vec<String>,
    pub vars: toml::Table,
}

/// A loaded, validated inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    pub path: PathBuf,
    /// In file order: every selection keeps this order.
    pub hosts: Vec<Host>,
    pub groups: BTreeMap<String, Group>,
    /// `[components.*]` as written, checked (`sources`); the deploy reads it.
    pub components: toml::Table,
    /// `[streams]` and `[thresholds]` as written, checked (`limits`); the deploy reads them.
    pub extra: toml::Table,
    /// `[services.*]`, checked and placed, in start order (`after` first).
    pub services: Vec<UserService>,
    /// SHA-256 (hex) of the file's bytes: tells whether a deployment used this exact file.
    pub digest: String,
    /// What may be a mistake but may be meant (a key file that is not there yet), each
    /// `file:line:col: ...`, escaped for a terminal.
    pub warnings: Vec<String>,
}

impl Inventory {
    /// The hosts a `--limit` pattern selects (all of them for `None`), in inventory order.
    /// See the `limit` module for the syntax.
    pub fn select(&self, limit: Option<&str>) -> Result<Vec<&Host>, InventoryError> {
        match limit {
            None => Ok(self.hosts.iter().collect()),
            Some(pattern) => limit::select(self, pattern),
        }
    }

    /// The hosts that have `role`, in inventory order.
    pub fn hosts_with_role(&self, role: Role) -> Vec<&Host> {
        self.hosts.iter().filter(|h| h.has_role(role)).collect()
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }
}

/// `~/.ssh/config`, if there is a home directory.
pub fn default_ssh_config_path() -> Option<PathBuf> {
    dirs::home_dir().map(|home| home.join(".ssh").join("config"))
}

/// Reads and validates the inventory at `path`, using `~/.ssh/config` when it exists.
pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
    load_with_ssh_config(path, default_ssh_config_path().as_deref())
}

/// Like [`load`], with the ssh config taken from `ssh_config` (`None`: use none). A missing ssh
/// config file is not an error: ssh does without one too.
pub fn load_with_ssh_config(
    path: &Path,
    ssh_config: Option<&Path>,
) -> Result<Inventory, InventoryError> {
    let source = std::fs::read_to_string(path).map_err(|source| InventoryError::Io {
        path: path.to_path_buf(),
        what: "the inventory",
        source,
    })?;
    let ssh_text = match ssh_config {
        None => None,
        Some(ssh_path) => match std::fs::read_to_string(ssh_path) {
            Ok(text) => Some((text, ssh_path)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(InventoryError::Io {
                    path: ssh_path.to_path_buf(),
                    what: "the ssh config",
                    source,
                })
            }
        },
    };
    let env = resolve::Env::from_system();
    parse_in(
        &source,
        path,
        ssh_text.as_ref().map(|(text, p)| (text.as_str(), *p)),
        &env,
    )
}

/// Parses inventory text as if read from `path` (used for messages and relative paths), with
/// `ssh_config` as the content of `~/.ssh/config`. Reads no files except to see which default
/// key files (`~/.ssh/id_*`) exist.
pub fn parse(
    source: &str,
    path: &Path,
    ssh_config: Option<&str>,
) -> Result<Inventory, InventoryError> {
    let env = resolve::Env::from_system();
    let ssh_path = PathBuf::from("~/.ssh/config");
    parse_in(
        source,
        path,
        ssh_config.map(|text| (text, ssh_path.as_path())),
        &env,
    )
}

/// [`parse`] with an explicit environment (home, local user, existing files), for tests.
fn parse_in(
    source: &str,
    path: &Path,
    ssh_config: Option<(&str, &Path)>,
    env: &resolve::Env,
) -> Result<Inventory, InventoryError> {
    let src = error::Source { path, text: source };
    let raw: model::RawInventory = toml::from_str(source).map_err(|e| src.syntax(&e))?;
    let ssh = ssh_config
        .map(|(text, ssh_path)| {
            ssh_config::SshConfigFile::parse(text, ssh_path, env.home.as_deref())
        })
        .transpose()?;
    let checker = validate::Checker {
        src,
        dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        home: env.home.as_deref(),
        probe_files: env.existing_files.is_none(),
        warnings: Default::default(),
    };
    let (hosts, groups) = resolve::build(&raw, &checker, ssh.as_ref(), env)?;
    let services = services::check(&checker, &raw.services, &hosts)?;
    let stack: model::RawStack = toml::from_str(source).map_err(|e| checker.src.syntax(&e))?;
    checker.components(&stack.components, &hosts)?;
    checker.default_sources(&stack.components, &raw.hosts);
    if let Some(streams) = &stack.streams {
        checker.streams(streams)?;
    }
    if let Some(thresholds) = &stack.thresholds {
        checker.thresholds(thresholds)?;
    }
    let mut extra = toml::Table::new();
    if let Some(streams) = raw.streams {
        extra.insert("streams".into(), toml::Value::Table(streams));
    }
    if let Some(thresholds) = raw.thresholds {
        extra.insert("thresholds".into(), toml::Value::Table(thresholds));
    }
    Ok(Inventory {
        path: path.to_path_buf(),
        hosts,
        groups,
        components: raw.components,
        extra,
        services,
        digest: hex::encode(Sha256::digest(source.as_bytes())),
        warnings: checker.warnings.into_inner(),
    })
}
