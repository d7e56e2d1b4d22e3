//! The order of a rolling run: whatever `--serial` says, NATS nodes one at a time, then
//! ClickHouse hosts one at a time, then storage hosts one at a time, then the rest (the
//! collectors) in `--serial` batches. A host goes with its first group: a host that runs NATS
//! and a collector rolls alone, as a NATS node. Pure.

use std::fmt;

use super::spec::Serial;
use crate::inventory::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    Nats,
    ClickHouse,
    Storage,
    Collectors,
}

impl Group {
    fn of(roles: &[Role]) -> Group {
        if roles.contains(&Role::NATS) {
            Group::Nats
        } else if roles.contains(&Role::CLICKHOUSE) {
            Group::ClickHouse
        } else if roles.contains(&Role::STORAGE) {
            Group::Storage
        } else {
            Group::Collectors
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Group::Nats => "nats",
            Group::ClickHouse => "clickhouse",
            Group::Storage => "storage",
            Group::Collectors => "collectors",
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One batch of a rolling run (numbered from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub index: usize,
    pub group: Group,
    pub hosts: Vec<String>,
}

/// The batches for `hosts` (name and roles, in inventory order).
pub fn batches(hosts: &[(String, Vec<Role>)], serial: &Serial) -> Vec<Batch> {
    let mut out: Vec<Batch> = Vec::new();
    let mut push = |group: Group, names: Vec<String>| {
        out.push(Batch {
            index: out.len() + 1,
            group,
            hosts: names,
        })
    };
    for group in [Group::Nats, Group::ClickHouse, Group::Storage] {
        for (name, _) in hosts.iter().filter(|(_, roles)| Group::of(roles) == group) {
            push(group, vec![name.clone()]);
        }
    }
    let rest: Vec<&String> = hosts
        .iter()
        .filter(|(_, roles)| Group::of(roles) == Group::Collectors)
        .map(|(name, _)| name)
        .collect();
    let mut taken = 0;
    for size in serial.batch_sizes(rest.len()) {
        push(
            Group::Collectors,
            rest[taken..taken + size]
                .iter()
                .map(|n| n.to_string())
                .collect(),
        );
        taken += size;
    }
    out
}

/// Where the layout cannot roll without a pause: a role held by one host only. Collectors
/// buffer and storage's consumers keep what it has not stored, so a pause loses nothing.
pub fn gaps(fleet: &[(String, Vec<Role>)]) -> Option<String> {
    if let [(name, roles)] = fleet {
        let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        return Some(format!(
            "single-node layout ({name} runs {}): it cannot roll without a gap; each service that changed restarts once (collectors buffer and storage catches up: nothing is lost)",
            roles.join(", ")
        ));
    }
    let alone: Vec<String> = [Role::NATS, Role::CLICKHOUSE, Role::STORAGE]
        .into_iter()
        .filter_map(|role| {
            let holders: Vec<&String> = fleet
                .iter()
                .filter(|(_, roles)| roles.contains(&role))
                .map(|(n, _)| n)
                .collect();
            match holders.as_slice() {
                [one] => Some(format!("{} ({one})", role.as_str())),
                _ => None,
            }
        })
        .collect();
    (!alone.is_empty()).then(|| {
        format!(
            "one host only for {}: its restart pauses the data flow (collectors buffer and storage catches up: nothing is lost)",
            alone.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, roles: &[Role]) -> (String, Vec<Role>) {
        (name.to_string(), roles.to_vec())
    }

    #[test]
    fn servers_roll_one_at_a_time_whatever_serial_says() {
        let fleet = [
            host("c1", &[Role::COLLECTOR]),
            host("n1", &[Role::NATS]),
            host("n2", &[Role::NATS, Role::COLLECTOR]),
            host("n3", &[Role::NATS]),
            host("ch", &[Role::CLICKHOUSE, Role::STORAGE]),
            host("s2", &[Role::STORAGE]),
            host("c2", &[Role::COLLECTOR]),
            host("c3", &[Role::COLLECTOR]),
            host("c4", &[Role::COLLECTOR]),
        ];
        let got = batches(&fleet, &"3".parse().unwrap());
        let seen: Vec<(usize, Group, Vec<&str>)> = got
            .iter()
            .map(|b| {
                (
                    b.index,
                    b.group,
                    b.hosts.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (1, Group::Nats, vec!["n1"]),
                (2, Group::Nats, vec!["n2"]),
                (3, Group::Nats, vec!["n3"]),
                (4, Group::ClickHouse, vec!["ch"]),
                (5, Group::Storage, vec!["s2"]),
                (6, Group::Collectors, vec!["c1", "c2", "c3"]),
                (7, Group::Collectors, vec!["c4"]),
            ]
        );
    }

    #[test]
    fn gaps_are_named() {
        let single = [host(
            "h1",
            &[Role::NATS, Role::CLICKHOUSE, Role::STORAGE, Role::COLLECTOR],
        )];
        assert!(gaps(&single)
            .unwrap()
            .starts_with("single-node layout (h1 runs nats"));
        let multi = [
            host("n1", &[Role::NATS]),
            host("n2", &[Role::NATS]),
            host("n3", &[Role::NATS, Role::COLLECTOR]),
            host("ch", &[Role::CLICKHOUSE, Role::STORAGE]),
        ];
        let said = gaps(&multi).unwrap();
        assert!(said.contains("clickhouse (ch), storage (ch)"), "{said}");
        assert!(!said.contains("nats"), "{said}");
    }
}
