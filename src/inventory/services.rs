//! `[services.NAME]`: the user's own services (MarketPrism's Python collector and storage, or
//! any executable), deployed beside the pipeline. Every value is checked with its position at
//! load (and so at `inventory check`), including what only makes sense across the file: the
//! directory to push exists, no port is another component's on a shared host, `after` names
//! something and has no cycle, the service lands on at least one host.
//!
//! ```toml
//! [services.echo]
//! kind = "python"
//! path = "services/echo"
//! command = ["python", "app.py"]
//! roles = ["collector"]
//! ports = [8090]
//! health = { http = "http://127.0.0.1:8090/health", json = { status = "ok" } }
//! after = ["nats"]
//! ```

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::{Spanned, Value};

use super::error::{known_list, InventoryError};
use super::services_rules::{health, order, placement, ports_free};
use super::validate::Checker;
use super::Host;
use crate::stack::component;
use crate::stack::nats::NatsUser;

/// How long a start waits for the health probe unless `health.timeout` says.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(60);

/// A `[services.NAME]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub kind: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub command: Option<Spanned<Vec<Spanned<String>>>>,
    pub roles: Option<Spanned<Vec<Spanned<String>>>>,
    pub hosts: Option<Spanned<Vec<Spanned<String>>>>,
    pub user: Option<Spanned<String>>,
    pub env: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    pub env_files: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    pub ports: Option<Spanned<Vec<Spanned<Value>>>>,
    pub health: Option<Spanned<RawHealth>>,
    pub after: Option<Spanned<Vec<Spanned<String>>>>,
    pub requirements: Option<Spanned<String>>,
    pub wheelhouse: Option<Spanned<String>>,
    pub nats_user: Option<Spanned<String>>,
}

/// `health = { http = URL, json = { FIELD = VALUE } }` or `{ tcp = PORT }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub http: Option<Spanned<String>>,
    pub json: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    pub tcp: Option<Spanned<Value>>,
    pub timeout: Option<Spanned<Value>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    /// A Python program run with its own virtualenv first on `PATH`.
    Python,
    /// An executable shipped in the directory (or already on the host).
    Binary,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceProbe {
    /// GET the URL; with `json`, the body's top-level field must equal the value.
    Http {
        url: String,
        json: Option<(String, String)>,
    },
    /// Something accepts TCP connections on 127.0.0.1:PORT.
    Tcp { port: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceHealth {
    pub probe: ServiceProbe,
    pub timeout: Duration,
}

/// One user service, checked and placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserService {
    pub name: String,
    pub kind: ServiceKind,
    /// The local directory pushed as its release (resolved against the inventory's directory).
    pub path: PathBuf,
    pub command: Vec<String>,
    /// The hosts it runs on, in inventory order.
    pub hosts: Vec<String>,
    /// The account it runs as.
    pub user: String,
    pub env: BTreeMap<String, String>,
    /// Variable -> local file holding its (secret) value.
    pub env_files: BTreeMap<String, PathBuf>,
    pub ports: Vec<u16>,
    pub health: Option<ServiceHealth>,
    /// Built-in components (`nats`, …) and services it needs up first.
    pub after: Vec<String>,
    /// Python: the requirements file, relative to `path` (None: no dependencies).
    pub requirements: Option<String>,
    /// The fleet's NATS user whose login it gets (`NATS_USER`, `NATS_PASSWORD`): `services`
    /// unless `nats_user` says `collector` (it publishes market data) or `storage`.
    pub nats_user: NatsUser,
    /// Python: a directory of wheels relative to `path`, installed with `--no-index`.
    pub wheelhouse: Option<String>,
}

impl UserService {
    pub fn runs_on(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h == host)
    }
}

/// A string key's value and where it was written, or an error at the table's name.
fn required<'a, T>(
    checker: &Checker<'_>,
    value: &'a Option<Spanned<T>>,
    key: &str,
    scope: &str,
    at: &Range<usize>,
    example: &str,
) -> Result<&'a Spanned<T>, InventoryError> {
    value.as_ref().ok_or_else(|| {
        checker.src.invalid(
            at.clone(),
            format!("{scope} has no {key}"),
            format!("add {example}"),
        )
    })
}

/// Checks every `[services.*]` table against the resolved hosts; returns them in start order
/// (each after what it names in `after`, else by name).
pub(crate) fn check(
    checker: &Checker<'_>,
    raw: &BTreeMap<Spanned<String>, RawService>,
    hosts: &[Host],
) -> Result<Vec<UserService>, InventoryError> {
    let mut services = Vec::new();
    let mut after_spans: BTreeMap<String, Vec<Range<usize>>> = BTreeMap::new();
    let mut port_spans: BTreeMap<String, Vec<Range<usize>>> = BTreeMap::new();
    for (name, table) in raw {
        checker.name("service", name)?;
        // It names the account (mp-NAME), the unit and directories: what useradd accepts.
        let ok = name.get_ref().starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .get_ref()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            && name.get_ref().len() <= 29;
        if !ok {
            return Err(checker.src.invalid(
                name.span(),
                format!("invalid service name {:?}", name.get_ref()),
                "use lowercase letters, digits, '-' and '_' (at most 29), starting with a letter: it names the account mp-NAME and the unit mp-svc-NAME",
            ));
        }
        let (service, afters, ports) = one(checker, name, table, hosts)?;
        after_spans.insert(service.name.clone(), afters);
        port_spans.insert(service.name.clone(), ports);
        services.push(service);
    }
    let names: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
    for s in &services {
        for (i, target) in s.after.iter().enumerate() {
            let span = after_spans[&s.name][i].clone();
            if target == &s.name {
                return Err(checker.src.invalid(
                    span,
                    format!("service {:?} names itself in after", s.name),
                    "remove it from after",
                ));
            }
            if component::by_name(target).is_none() && !names.contains(target) {
                let known: Vec<&str> = component::ALL
                    .iter()
                    .map(|c| c.name)
                    .chain(names.iter().map(String::as_str))
                    .filter(|n| *n != s.name)
                    .collect();
                return Err(checker.src.invalid(
                    span,
                    format!("unknown {target:?} in after of service {:?}", s.name),
                    format!("use one of {}", known_list(&known)),
                ));
            }
        }
    }
    ports_free(checker, &services, &port_spans, hosts)?;
    order(checker, services, &after_spans)
}

type Checked = (UserService, Vec<Range<usize>>, Vec<Range<usize>>);

fn one(
    checker: &Checker<'_>,
    name: &Spanned<String>,
    raw: &RawService,
    hosts: &[Host],
) -> Result<Checked, InventoryError> {
    let at = name.span();
    let name = name.get_ref().clone();
    let scope = format!("[services.{name}]");
    let invalid = |span: Range<usize>, message: String, hint: &str| {
        checker.src.invalid(span, message, hint.to_string())
    };

    let kind_value = required(checker, &raw.kind, "kind", &scope, &at, "kind = \"python\"")?;
    let kind = match kind_value.get_ref().as_str() {
        "python" => ServiceKind::Python,
        "binary" => ServiceKind::Binary,
        other => return Err(invalid(
            kind_value.span(),
            format!("unknown kind {other:?} in {scope}"),
            "use \"python\" (a Python program with its requirements) or \"binary\" (an executable)",
        )),
    };

    let path_value = required(
        checker,
        &raw.path,
        "path",
        &scope,
        &at,
        "path = \"services/NAME\"",
    )?;
    let path = checker.path(path_value.get_ref().trim());
    if !path.is_dir() {
        return Err(invalid(
            path_value.span(),
            format!(
                "{scope} path {:?}: no directory {path:?}",
                path_value.get_ref(),
            ),
            "write the service's local directory, relative to the inventory file",
        ));
    }

    let command_value = required(
        checker,
        &raw.command,
        "command",
        &scope,
        &at,
        "command = [\"python\", \"app.py\"]",
    )?;
    if command_value.get_ref().is_empty()
        || command_value
            .get_ref()
            .iter()
            .any(|c| c.get_ref().is_empty())
    {
        return Err(invalid(
            command_value.span(),
            format!("empty command in {scope}"),
            "write the program and its arguments, e.g. [\"python\", \"app.py\"]",
        ));
    }
    let command: Vec<String> = command_value
        .get_ref()
        .iter()
        .map(|c| c.get_ref().clone())
        .collect();
    if kind == ServiceKind::Binary
        && !command[0].starts_with('/')
        && !path.join(&command[0]).is_file()
    {
        return Err(invalid(
            command_value.get_ref()[0].span(),
            format!(
                "{scope}: {:?} is not a file in {path:?}",
                command[0],
            ),
            "name the executable by its path inside the service's directory, or an absolute path on the host",
        ));
    }

    let placed = placement(checker, raw, &scope, &at, hosts)?;

    let user = match &raw.user {
        Some(u) => {
            let ok = {
                let text = u.get_ref();
                !text.is_empty()
                    && text.len() <= 32
                    && text.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                    && text
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c))
            };
            if !ok {
                return Err(invalid(
                    u.span(),
                    format!("invalid user {:?} in {scope}", u.get_ref()),
                    "use lowercase letters, digits, '_' or '-' (at most 32), starting with a letter",
                ));
            }
            u.get_ref().clone()
        }
        None => format!("mp-{name}"),
    };

    let env_name_ok = |k: &str| {
        k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let mut env = BTreeMap::new();
    if let Some(table) = &raw.env {
        for (key, value) in table.get_ref() {
            if !env_name_ok(key) {
                return Err(invalid(
                    table.span(),
                    format!("invalid variable name {key:?} in env of {scope}"),
                    "use letters, digits and '_', not starting with a digit",
                ));
            }
            if value.get_ref().contains(['\n', '\r']) {
                return Err(invalid(
                    value.span(),
                    format!("env {key} of {scope} spans lines"),
                    "write one line; put long or secret values in a file named by env_files",
                ));
            }
            env.insert(key.clone(), value.get_ref().clone());
        }
    }
    let mut env_files = BTreeMap::new();
    if let Some(table) = &raw.env_files {
        for (key, value) in table.get_ref() {
            if !env_name_ok(key) {
                return Err(invalid(
                    table.span(),
                    format!("invalid variable name {key:?} in env_files of {scope}"),
                    "use letters, digits and '_', not starting with a digit",
                ));
            }
            if env.contains_key(key) {
                return Err(invalid(
                    value.span(),
                    format!("{key} is in both env and env_files of {scope}"),
                    "keep one of them",
                ));
            }
            let file = checker.path(value.get_ref().trim());
            if !file.is_file() {
                return Err(invalid(
                    value.span(),
                    format!("env_files {key} of {scope}: no file {file:?}"),
                    "write the path of a local file holding the value, relative to the inventory file",
                ));
            }
            env_files.insert(key.clone(), file);
        }
    }

    let mut ports = Vec::new();
    let mut port_spans = Vec::new();
    for p in raw.ports.iter().flat_map(|list| list.get_ref()) {
        let port = match p.get_ref() {
            Value::Integer(n) => u16::try_from(*n).ok().filter(|n| *n > 0),
            _ => None,
        };
        let Some(port) = port else {
            return Err(invalid(
                p.span(),
                format!("invalid port in ports of {scope}"),
                "write numbers from 1 to 65535, e.g. ports = [8090]",
            ));
        };
        ports.push(port);
        port_spans.push(p.span());
    }

    let health = raw
        .health
        .as_ref()
        .map(|h| health(checker, h, &scope))
        .transpose()?;

    let mut after = Vec::new();
    let mut after_spans = Vec::new();
    for a in raw.after.iter().flat_map(|list| list.get_ref()) {
        if !after.contains(a.get_ref()) {
            after.push(a.get_ref().clone());
            after_spans.push(a.span());
        }
    }

    let nats_user = match &raw.nats_user {
        None => NatsUser::Services,
        Some(u) => [NatsUser::Services, NatsUser::Collector, NatsUser::Storage]
            .into_iter()
            .find(|n| n.name() == u.get_ref())
            .ok_or_else(|| {
                invalid(
                    u.span(),
                    format!("{scope}: nats_user = {:?} is not one of the fleet's NATS users", u.get_ref()),
                    "write \"services\" (the default: reads anything, never writes market data), \"collector\" (publishes market data) or \"storage\" (consumes the streams)",
                )
            })?,
    };

    let mut requirements = None;
    let mut wheelhouse = None;
    match kind {
        ServiceKind::Python => {
            match &raw.requirements {
                Some(r) => {
                    if !path.join(r.get_ref()).is_file() {
                        return Err(invalid(
                            r.span(),
                            format!("{scope}: no requirements file {:?}", path.join(r.get_ref())),
                            "write its path inside the service's directory, or remove the key",
                        ));
                    }
                    requirements = Some(r.get_ref().clone());
                }
                // The usual name, when the directory has it.
                None if path.join("requirements.txt").is_file() => {
                    requirements = Some("requirements.txt".into())
                }
                None => {}
            }
            if let Some(w) = &raw.wheelhouse {
                if !path.join(w.get_ref()).is_dir() {
                    return Err(invalid(
                        w.span(),
                        format!(
                            "{scope}: no wheelhouse directory {:?}",
                            path.join(w.get_ref())
                        ),
                        "make it inside the service's directory (pip download -r requirements.txt -d wheels), or remove the key",
                    ));
                }
                if requirements.is_none() {
                    return Err(invalid(
                        w.span(),
                        format!("{scope} has a wheelhouse but no requirements file"),
                        "add requirements.txt to the service's directory, or remove wheelhouse",
                    ));
                }
                wheelhouse = Some(w.get_ref().clone());
            }
        }
        ServiceKind::Binary => {
            for (key, value) in [
                ("requirements", &raw.requirements),
                ("wheelhouse", &raw.wheelhouse),
            ] {
                if let Some(v) = value {
                    return Err(invalid(
                        v.span(),
                        format!("{key} in {scope}, whose kind is \"binary\""),
                        "remove it: only kind = \"python\" services get a virtualenv",
                    ));
                }
            }
        }
    }

    Ok((
        UserService {
            name,
            kind,
            path,
            command,
            hosts: placed,
            user,
            env,
            env_files,
            ports,
            health,
            after,
            nats_user,
            requirements,
            wheelhouse,
        },
        after_spans,
        port_spans,
    ))
}

#[cfg(test)]
#[path = "services_tests.rs"]
mod tests;
