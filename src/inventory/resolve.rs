//! From the raw file to resolved hosts: check every table, merge `[defaults]` < groups (in name
//! order) < host, let `~/.ssh/config` fill what the inventory left open, apply built-in
//! defaults, then resolve `proxy_jump` into nested [`SshTarget`]s (detecting loops).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::collector::CollectorChoice;
use super::error::{known_list, InventoryError, Source};
use super::jump::{jump_from_inventory, Jump, JumpResolver};
use super::model::RawInventory;
use super::ssh_config::{expand_identity_files, expand_tokens, SshConfigFile, Tokens};
use super::validate::{Checker, Settings};
use super::{Connection, Group, Host, Role};
use crate::transport::target::{HostKeyChecking, SshTarget};

pub(crate) const DEFAULT_PORT: u16 = 22;
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(15);
/// Key files tried when nothing names one, as OpenSSH does (those that exist).
const DEFAULT_IDENTITIES: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];

/// What resolution needs from the machine it runs on; faked in tests.
#[derive(Debug, Clone)]
pub(crate) struct Env {
    pub home: Option<PathBuf>,
    /// The local user: the default remote user, like ssh.
    pub user: String,
    /// `None`: ask the filesystem whether a key file exists; `Some`: exactly these exist.
    pub existing_files: Option<BTreeSet<PathBuf>>,
}

impl Env {
    pub fn from_system() -> Env {
        Env {
            home: dirs::home_dir(),
            user: std::env::var("USER")
                .ok()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| "root".to_string()),
            existing_files: None,
        }
    }

    pub fn exists(&self, path: &Path) -> bool {
        match &self.existing_files {
            Some(files) => files.contains(path),
            None => path.is_file(),
        }
    }

    fn ssh_dir(&self) -> PathBuf {
        match &self.home {
            Some(home) => home.join(".ssh"),
            None => PathBuf::from("~/.ssh"),
        }
    }
}

/// A host after merging, before its jump is resolved.
pub(crate) struct Base {
    pub name: String,
    pub connection: Connection,
    pub target: SshTarget,
    pub jump: Jump,
    /// What to point at for jump errors: the `proxy_jump` value, else the address, else the name.
    pub jump_span: Range<usize>,
}

fn line_of(src: &Source<'_>, span: Range<usize>) -> usize {
    super::error::Location::from_span(src.path, src.text, span).line
}

/// Checks and resolves everything; the first problem found is returned.
pub(crate) fn build(
    raw: &RawInventory,
    checker: &Checker<'_>,
    ssh: Option<&SshConfigFile>,
    env: &Env,
) -> Result<(Vec<Host>, BTreeMap<String, Group>), InventoryError> {
    let src = &checker.src;

    let defaults = checker.settings("[defaults]", raw.defaults.settings())?;
    if raw.hosts.is_empty() {
        return Err(src.invalid(
            0..0,
            "the inventory has no hosts",
            "add a [[hosts]] table with name, address and roles (see inventory/single-host.toml)",
        ));
    }

    // Hosts: names, roles, own settings.
    struct Entry {
        name: String,
        name_span: Range<usize>,
        roles: Vec<Role>,
        settings: Settings,
        address: Option<(String, Range<usize>)>,
        private_address: Option<String>,
    }
    let mut entries: Vec<Entry> = Vec::with_capacity(raw.hosts.len());
    let mut index: HashMap<String, usize> = HashMap::new();
    for spanned in &raw.hosts {
        let host = spanned.get_ref();
        checker.name("host", &host.name)?;
        let name = host.name.get_ref().clone();
        if let Some(&first) = index.get(&name) {
            let first_line = line_of(src, entries[first].name_span.clone());
            return Err(src.invalid(
                host.name.span(),
                format!("duplicate host name {name:?} (first used on line {first_line})"),
                "give every [[hosts]] entry its own name",
            ));
        }
        let scope = format!("host {name:?}");
        let roles = checker.roles(&scope, &host.roles)?;
        let address = host
            .address
            .as_ref()
            .map(|a| checker.address("address", &scope, a).map(|v| (v, a.span())))
            .transpose()?;
        let private_address = host
            .private_address
            .as_ref()
            .map(|a| checker.address("private_address", &scope, a))
            .transpose()?;
        let settings = checker.settings(&scope, host.settings())?;
        index.insert(name.clone(), entries.len());
        entries.push(Entry {
            name,
            name_span: host.name.span(),
            roles,
            settings,
            address,
            private_address,
        });
    }

    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();

    // Groups: names, members, settings.
    let mut groups = BTreeMap::new();
    let mut group_settings: Vec<(String, BTreeSet<usize>, Settings)> = Vec::new();
    for (gname, group) in &raw.groups {
        checker.name("group", gname)?;
        let name = gname.get_ref().clone();
        if index.contains_key(&name) {
            return Err(src.invalid(
                gname.span(),
                format!("group {name:?} has the same name as a host"),
                "rename the group or the host: --limit could not tell them apart",
            ));
        }
        let scope = format!("group {name:?}");
        let mut members = Vec::new();
        let mut member_set = BTreeSet::new();
        for member in &group.hosts {
            let Some(&i) = index.get(member.get_ref()) else {
                return Err(src.invalid(
                    member.span(),
                    format!("{scope} lists unknown host {:?}", member.get_ref()),
                    format!("use one of the [[hosts]] names: {}", known_list(&names)),
                ));
            };
            if member_set.insert(i) {
                members.push(member.get_ref().clone());
            }
        }
        let settings = checker.settings(&scope, group.settings())?;
        groups.insert(
            name.clone(),
            Group {
                name: name.clone(),
                hosts: members,
                vars: settings.vars.clone(),
            },
        );
        group_settings.push((name, member_set, settings));
    }

    // Merge and resolve everything but the jump.
    let mut bases = Vec::with_capacity(entries.len());
    let mut partial = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let mut merged = defaults.clone();
        let mut host_groups = Vec::new();
        for (gname, members, settings) in &group_settings {
            if members.contains(&i) {
                merged.overlay(settings);
                host_groups.push(gname.clone());
            }
        }
        merged.overlay(&entry.settings);
        let connection = merged.connection.unwrap_or(Connection::Ssh);
        let (target, jump, jump_span, private_default) = match connection {
            Connection::Local => {
                // Unused without SSH, but a misspelt proxy_jump is still worth reporting.
                if let Some(pj) = &merged.proxy_jump {
                    let own = entry.settings.proxy_jump.is_some();
                    jump_from_inventory(src, &names, &index, ssh, i, pj, own)?;
                }
                let target = local_target(&entry.name, &merged, env);
                let private = entry
                    .address
                    .as_ref()
                    .map_or_else(|| "127.0.0.1".to_string(), |(a, _)| a.clone());
                (target, Jump::None, entry.name_span.clone(), private)
            }
            Connection::Ssh => {
                let Some((address, address_span)) = &entry.address else {
                    return Err(src.invalid(
                        entry.name_span.clone(),
                        format!("host {:?} has no address", entry.name),
                        "add address = \"...\" (how this machine reaches it), or connection = \"local\"",
                    ));
                };
                let looked_up = ssh.map(|s| s.lookup(address)).unwrap_or_default();
                let target = ssh_target(&entry.name, address, &merged, &looked_up, env);
                let jump = match &merged.proxy_jump {
                    Some(pj) => {
                        let own = entry.settings.proxy_jump.is_some();
                        jump_from_inventory(src, &names, &index, ssh, i, pj, own)?
                    }
                    None => match looked_up.proxy_jump {
                        Some(list) if !list.is_empty() => Jump::SshConfig(list),
                        _ => Jump::None,
                    },
                };
                let span = merged
                    .proxy_jump
                    .as_ref()
                    .map_or_else(|| address_span.clone(), Spanned::span);
                let private = target.address.clone();
                (target, jump, span, private)
            }
        };
        bases.push(Base {
            name: entry.name.clone(),
            connection,
            target,
            jump,
            jump_span,
        });
        partial.push(Host {
            name: entry.name.clone(),
            connection,
            ssh: bases[i].target.clone(),
            private_address: entry.private_address.clone().unwrap_or(private_default),
            become_: merged.become_.unwrap_or(false),
            roles: entry.roles.clone(),
            groups: host_groups,
            collector: if entry.roles.contains(&Role::COLLECTOR) {
                checker.collector_choice(&entry.name, &merged.collector)?
            } else {
                CollectorChoice::default()
            },
            vars: merged.vars,
        });
    }

    let mut jumps = JumpResolver::new(src, ssh, env, &bases);
    for (i, host) in partial.iter_mut().enumerate() {
        host.ssh = jumps.resolve(i)?;
    }
    Ok((partial, groups))
}

fn default_identities(env: &Env) -> Vec<PathBuf> {
    let dir = env.ssh_dir();
    DEFAULT_IDENTITIES
        .iter()
        .map(|name| dir.join(name))
        .filter(|path| env.exists(path))
        .collect()
}

fn local_target(name: &str, merged: &Settings, env: &Env) -> SshTarget {
    SshTarget {
        label: name.to_string(),
        address: "localhost".to_string(),
        port: merged.port.unwrap_or(DEFAULT_PORT),
        user: merged.user.clone().unwrap_or_else(|| env.user.clone()),
        identity_files: merged
            .identity_files
            .clone()
            .unwrap_or_else(|| default_identities(env)),
        host_key_checking: merged
            .host_key_checking
            .unwrap_or(HostKeyChecking::AcceptNew),
        known_hosts: merged
            .known_hosts
            .clone()
            .unwrap_or_else(|| env.ssh_dir().join("known_hosts")),
        connect_timeout: merged.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        keepalive: merged.keepalive.unwrap_or(DEFAULT_KEEPALIVE),
        jump: None,
    }
}

/// The inventory wins; `~/.ssh/config` fills user, port and key files it left open, and its
/// HostName replaces the address (the address is the name ssh config matches, like what one
/// types after `ssh`). Key files from ssh config that do not exist are skipped, as ssh does.
fn ssh_target(
    name: &str,
    address: &str,
    merged: &Settings,
    looked_up: &super::ssh_config::SshHostConfig,
    env: &Env,
) -> SshTarget {
    let mut target = local_target(name, merged, env);
    target.user = merged
        .user
        .clone()
        .or_else(|| looked_up.user.clone())
        .unwrap_or_else(|| env.user.clone());
    target.port = merged.port.or(looked_up.port).unwrap_or(DEFAULT_PORT);
    let tokens = Tokens {
        host: address,
        home: env.home.as_deref(),
        local_user: &env.user,
        remote_user: &target.user,
        port: target.port,
    };
    target.address = looked_up
        .host_name
        .as_deref()
        .map_or_else(|| address.to_string(), |h| expand_tokens(h, &tokens));
    if merged.identity_files.is_none() && !looked_up.identity_files.is_empty() {
        target.identity_files = expand_identity_files(&looked_up.identity_files, &tokens)
            .into_iter()
            .filter(|p| env.exists(p))
            .collect();
    }
    target
}
