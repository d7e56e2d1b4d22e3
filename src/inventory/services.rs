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

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::{Spanned, Value};

use super::error::{known_list, InventoryError};
use super::validate::Checker;
use super::{Host, Role};
use crate::stack::component;

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
                "{scope} path {:?}: no directory {}",
                path_value.get_ref(),
                path.display()
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
                "{scope}: {:?} is not a file in {}",
                command[0],
                path.display()
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
                    format!("env_files {key} of {scope}: no file {}", file.display()),
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

    let mut requirements = None;
    let mut wheelhouse = None;
    match kind {
        ServiceKind::Python => {
            match &raw.requirements {
                Some(r) => {
                    if !path.join(r.get_ref()).is_file() {
                        return Err(invalid(
                            r.span(),
                            format!(
                                "{scope}: no requirements file {}",
                                path.join(r.get_ref()).display()
                            ),
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
                            "{scope}: no wheelhouse directory {}",
                            path.join(w.get_ref()).display()
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
            requirements,
            wheelhouse,
        },
        after_spans,
        port_spans,
    ))
}

/// The hosts named by `roles` and `hosts`, in inventory order. A service placed on no host is
/// an error, not a warning: a declared service that never runs is a typo more often than not.
fn placement(
    checker: &Checker<'_>,
    raw: &RawService,
    scope: &str,
    at: &Range<usize>,
    hosts: &[Host],
) -> Result<Vec<String>, InventoryError> {
    if raw.roles.is_none() && raw.hosts.is_none() {
        return Err(checker.src.invalid(
            at.clone(),
            format!("{scope} says nowhere to run"),
            "add roles = [\"collector\"] or hosts = [\"NAME\"]",
        ));
    }
    let roles: Vec<Role> = match &raw.roles {
        Some(list) => checker.roles(scope, list.get_ref())?,
        None => Vec::new(),
    };
    let mut named = BTreeSet::new();
    for h in raw.hosts.iter().flat_map(|l| l.get_ref()) {
        if !hosts.iter().any(|x| &x.name == h.get_ref()) {
            let known: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
            return Err(checker.src.invalid(
                h.span(),
                format!("unknown host {:?} in hosts of {scope}", h.get_ref()),
                format!("use one of {}", known_list(&known)),
            ));
        }
        named.insert(h.get_ref().clone());
    }
    let placed: Vec<String> = hosts
        .iter()
        .filter(|h| named.contains(&h.name) || roles.iter().any(|r| h.roles.contains(r)))
        .map(|h| h.name.clone())
        .collect();
    if placed.is_empty() {
        let span = raw
            .roles
            .as_ref()
            .map(|r| r.span())
            .or(raw.hosts.as_ref().map(|h| h.span()))
            .unwrap_or(at.clone());
        return Err(checker.src.invalid(
            span,
            format!("{scope} is placed on no host: no host has these roles"),
            "give a host one of its roles, or name hosts = [...]",
        ));
    }
    Ok(placed)
}

fn health(
    checker: &Checker<'_>,
    raw: &Spanned<RawHealth>,
    scope: &str,
) -> Result<ServiceHealth, InventoryError> {
    let h = raw.get_ref();
    let hint = "write { http = \"http://127.0.0.1:PORT/health\", json = { status = \"ok\" } } or { tcp = PORT }";
    let probe = match (&h.http, &h.tcp) {
        (Some(url), None) => {
            let text = url.get_ref().trim();
            if !(text.starts_with("http://") || text.starts_with("https://"))
                || text.contains(char::is_whitespace)
            {
                return Err(checker.src.invalid(
                    url.span(),
                    format!("invalid health URL {text:?} in {scope}"),
                    hint,
                ));
            }
            let json = match &h.json {
                None => None,
                Some(table) if table.get_ref().len() == 1 => {
                    let (field, value) = table.get_ref().iter().next().expect("one entry");
                    Some((field.clone(), value.get_ref().clone()))
                }
                Some(table) => {
                    return Err(checker.src.invalid(
                        table.span(),
                        format!("health json of {scope} must name one field"),
                        "write json = { status = \"ok\" }",
                    ))
                }
            };
            ServiceProbe::Http {
                url: text.to_string(),
                json,
            }
        }
        (None, Some(port)) => {
            if let Some(json) = &h.json {
                return Err(checker.src.invalid(
                    json.span(),
                    format!("health json of {scope} needs an http probe"),
                    hint,
                ));
            }
            match port.get_ref() {
                Value::Integer(n) if (1..=65535).contains(n) => {
                    ServiceProbe::Tcp { port: *n as u16 }
                }
                _ => {
                    return Err(checker.src.invalid(
                        port.span(),
                        format!("invalid health tcp port in {scope}"),
                        "write a number from 1 to 65535, e.g. { tcp = 8090 }",
                    ))
                }
            }
        }
        _ => {
            return Err(checker.src.invalid(
                raw.span(),
                format!("health of {scope} needs exactly one of http or tcp"),
                hint,
            ))
        }
    };
    let timeout = match &h.timeout {
        Some(v) => checker.duration("timeout", &format!("health of {scope}"), v, false)?,
        None => DEFAULT_HEALTH_TIMEOUT,
    };
    Ok(ServiceHealth { probe, timeout })
}

/// No port of a service is a built-in component's or another service's on a host they share.
fn ports_free(
    checker: &Checker<'_>,
    services: &[UserService],
    spans: &BTreeMap<String, Vec<Range<usize>>>,
    hosts: &[Host],
) -> Result<(), InventoryError> {
    for (i, s) in services.iter().enumerate() {
        for (j, port) in s.ports.iter().enumerate() {
            let span = spans[&s.name][j].clone();
            for host in hosts.iter().filter(|h| s.runs_on(&h.name)) {
                let builtin = component::ALL.into_iter().find(|c| {
                    c.port_numbers().contains(port)
                        && host.roles.iter().any(|r| r.as_str() == c.role)
                });
                if let Some(c) = builtin {
                    return Err(checker.src.invalid(
                        span,
                        format!(
                            "port {port} of [services.{}] is {}'s on host {}",
                            s.name, c.name, host.name
                        ),
                        format!(
                            "pick another port: {} uses {}",
                            c.name,
                            c.port_numbers()
                                .iter()
                                .map(u16::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                if let Some(other) = services[..i]
                    .iter()
                    .find(|o| o.runs_on(&host.name) && o.ports.contains(port))
                {
                    return Err(checker.src.invalid(
                        span,
                        format!(
                            "port {port} of [services.{}] is also [services.{}]'s on host {}",
                            s.name, other.name, host.name
                        ),
                        "give each service on a host its own ports",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Start order: depth first along `after`, refusing a cycle at the entry that closes it.
fn order(
    checker: &Checker<'_>,
    services: Vec<UserService>,
    spans: &BTreeMap<String, Vec<Range<usize>>>,
) -> Result<Vec<UserService>, InventoryError> {
    fn visit(
        name: &str,
        services: &[UserService],
        path: &mut Vec<String>,
        done: &mut Vec<String>,
    ) -> Result<(), (Vec<String>, String, usize)> {
        if done.iter().any(|d| d == name) {
            return Ok(());
        }
        let s = services
            .iter()
            .find(|s| s.name == name)
            .expect("a known service");
        path.push(name.to_string());
        for (i, target) in s.after.iter().enumerate() {
            if !services.iter().any(|o| &o.name == target) {
                continue; // a built-in component: it always starts first
            }
            if let Some(at) = path.iter().position(|p| p == target) {
                let mut cycle = path[at..].to_vec();
                cycle.push(target.clone());
                return Err((cycle, name.to_string(), i));
            }
            visit(target, services, path, done)?;
        }
        path.pop();
        done.push(name.to_string());
        Ok(())
    }
    let mut done = Vec::new();
    for s in &services {
        let mut path = Vec::new();
        visit(&s.name, &services, &mut path, &mut done).map_err(|(cycle, name, i)| {
            checker.src.invalid(
                spans[&name][i].clone(),
                format!("after cycle: {}", cycle.join(" -> ")),
                "break the cycle: one of these services must not wait for the others",
            )
        })?;
    }
    let mut by_name: BTreeMap<String, UserService> =
        services.into_iter().map(|s| (s.name.clone(), s)).collect();
    Ok(done.iter().filter_map(|n| by_name.remove(n)).collect())
}

#[cfg(test)]
#[path = "services_tests.rs"]
mod tests;
