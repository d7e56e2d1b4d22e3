//! `--limit PATTERN`: which hosts a run touches, with Ansible's semantics.
//!
//! The pattern is a comma-separated list of terms. A term is a host name, a group name, `all`,
//! a glob over host names (`mp-*`, `h?`, `mp-[12]`) or `role:NAME`. Plain terms are united,
//! then `&term`s intersect, then `!term`s exclude (a pattern with no plain term starts from all
//! hosts, so `!mp-3` means "all but mp-3"). The result keeps inventory order, without
//! duplicates. A term that matches nothing is an error: it is almost always a typo, and running
//! on fewer hosts than meant is worse than not running.

use std::collections::BTreeSet;
use std::str::FromStr;

use super::{Host, Inventory, InventoryError, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Union,
    Intersect,
    Exclude,
}

fn invalid(term: &str, message: impl Into<String>) -> InventoryError {
    InventoryError::LimitInvalid {
        term: term.to_string(),
        message: message.into(),
    }
}

/// Indices of the hosts one term (without its `!`/`&`) matches.
fn matches(inv: &Inventory, term: &str, body: &str) -> Result<BTreeSet<usize>, InventoryError> {
    // Exact names first, so a host called "all" or containing no glob syntax is never reinterpreted.
    if let Some(i) = inv.hosts.iter().position(|h| h.name == body) {
        return Ok(BTreeSet::from([i]));
    }
    if let Some(group) = inv.groups.get(body) {
        return Ok(inv
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| group.hosts.contains(&h.name))
            .map(|(i, _)| i)
            .collect());
    }
    if body == "all" {
        return Ok((0..inv.hosts.len()).collect());
    }
    if let Some(role) = body.strip_prefix("role:") {
        let role = Role::from_str(role.trim()).map_err(|_| {
            invalid(
                term,
                format!(
                    "unknown role {:?}: use one of {}",
                    role.trim(),
                    Role::allowed()
                ),
            )
        })?;
        let hosts: BTreeSet<usize> = inv
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| h.has_role(role))
            .map(|(i, _)| i)
            .collect();
        if hosts.is_empty() {
            return Err(invalid(term, format!("no host has role {role}")));
        }
        return Ok(hosts);
    }
    if body.contains(['*', '?', '[']) {
        let pattern = glob::Pattern::new(body)
            .map_err(|e| invalid(term, format!("bad glob pattern: {e}")))?;
        return Ok(inv
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| pattern.matches(&h.name))
            .map(|(i, _)| i)
            .collect());
    }
    Ok(BTreeSet::new())
}

pub(crate) fn select<'a>(
    inv: &'a Inventory,
    pattern: &str,
) -> Result<Vec<&'a Host>, InventoryError> {
    let mut terms = Vec::new();
    for term in pattern.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (op, body) = if let Some(rest) = term.strip_prefix('!') {
            (Op::Exclude, rest.trim())
        } else if let Some(rest) = term.strip_prefix('&') {
            (Op::Intersect, rest.trim())
        } else {
            (Op::Union, term)
        };
        if body.is_empty() {
            return Err(invalid(
                term,
                "a '!' or '&' needs a host, group or pattern after it",
            ));
        }
        let hosts = matches(inv, term, body)?;
        if hosts.is_empty() {
            let known = inv
                .hosts
                .iter()
                .map(|h| h.name.clone())
                .chain(inv.groups.keys().cloned())
                .collect();
            return Err(InventoryError::LimitNoMatch {
                term: term.to_string(),
                known,
            });
        }
        terms.push((op, hosts));
    }
    if terms.is_empty() {
        return Err(invalid(
            pattern,
            "it is empty: name hosts, groups, globs or role:NAME, separated by commas",
        ));
    }

    let mut selected: BTreeSet<usize> = if terms.iter().any(|(op, _)| *op == Op::Union) {
        terms
            .iter()
            .filter(|(op, _)| *op == Op::Union)
            .flat_map(|(_, hosts)| hosts.iter().copied())
            .collect()
    } else {
        (0..inv.hosts.len()).collect()
    };
    for (_, hosts) in terms.iter().filter(|(op, _)| *op == Op::Intersect) {
        selected.retain(|i| hosts.contains(i));
    }
    for (_, hosts) in terms.iter().filter(|(op, _)| *op == Op::Exclude) {
        selected.retain(|i| !hosts.contains(i));
    }
    if selected.is_empty() {
        return Err(InventoryError::LimitEmpty {
            pattern: pattern.to_string(),
        });
    }
    // BTreeSet of indices iterates in inventory order.
    Ok(selected
        .into_iter()
        .filter_map(|i| inv.hosts.get(i))
        .collect())
}
