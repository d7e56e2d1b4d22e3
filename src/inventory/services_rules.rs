//! The checks of `[services.*]` that look beyond one value: where a service lands, its
//! health probe, ports shared with built-in components or other services on a host, and the
//! start order along `after` (a cycle refused where it closes).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use toml::{Spanned, Value};

use super::error::{known_list, InventoryError};
use super::services::{
    RawHealth, RawService, ServiceHealth, ServiceProbe, UserService, DEFAULT_HEALTH_TIMEOUT,
};
use super::validate::Checker;
use super::{Host, Role};
use crate::stack::component;

/// The hosts named by `roles` and `hosts`, in inventory order. A service placed on no host is
/// an error, not a warning: a declared service that never runs is a typo more often than not.
pub(super) fn placement(
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

pub(super) fn health(
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
pub(super) fn ports_free(
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
pub(super) fn order(
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
