//! One declaration per component: what it is on a host (its unit, ports, health probe, files,
//! data, accounts, where it comes from, how it restarts and rolls). The plan, day-2 commands,
//! clean, facts and status read these instead of restating a unit name or a port; adding a
//! built-in component is one module declaring a [`Component`] plus its templates, and one line
//! in [`ALL`]. A vendor's server also brings its install and init steps, in its module, hooked
//! in by [`Origin::Vendor`]'s `plan` (`plan::vendor`).
//!
//! The declarations live beside each component's renderers: [`super::nats::COMPONENT`],
//! [`super::clickhouse::COMPONENT`], [`super::pipeline::STORAGE`] and
//! [`super::pipeline::COLLECTOR`].

use std::time::Duration;

/// A TCP port the component listens on, and what for (messages say "port 9000 (ClickHouse
/// native) is taken").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    pub number: u16,
    /// What code looks it up by (`client`, `monitoring`, `health`, `metrics`, …).
    pub key: &'static str,
    /// What messages call it (`NATS client`, `collector`).
    pub purpose: &'static str,
    /// Checked free (or ours) before installing: the ports clients and the pipeline use.
    /// Cluster ports only open once configured, so a fresh host never has them taken.
    pub checked_before_install: bool,
}

/// How to tell the component is healthy from the host itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// GET `http://127.0.0.1:{port}{path}`; with `json_status`, the body's field must equal
    /// the value (parsed, never substring-matched).
    Http {
        port: u16,
        path: &'static str,
        json_status: Option<(&'static str, &'static str)>,
    },
    /// Something accepts a TCP connection.
    Tcp { port: u16 },
}

/// A data directory: kept by `clean` unless asked, owned by the account that reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataDir {
    pub path: &'static str,
    pub owner: &'static str,
}

/// A system account the component runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    pub name: &'static str,
    /// It owns data `clean` keeps by default: removed only when the data goes too.
    pub owns_data: bool,
}

/// Where the component's software comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A vendor's server: the OS package (or a pinned release / pushed artifact of it, see
    /// `[components.NAME]`), removed by `clean`.
    Vendor {
        package: &'static str,
        /// The release installed when the inventory has no `[components.NAME]`.
        pinned: &'static str,
        /// Its install and init steps (`plan::vendor`), in its own module.
        plan: &'static crate::plan::vendor::VendorPlan,
    },
    /// mp-remote itself, run as `mp-remote service NAME` from the release the deploy pushed.
    Release,
}

/// How the component goes through a rolling update (`--serial`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rolling {
    /// One host at a time, gated, before anything after it: a server others depend on.
    OneAtATime,
    /// In the operator's `--serial` batches.
    Batches,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Component {
    /// The name users type (`--service nats`) and the key in status and reports.
    pub name: &'static str,
    /// The inventory role that places it on a host.
    pub role: &'static str,
    /// The systemd unit (and the supervised service's name on hosts without systemd).
    pub unit: &'static str,
    pub ports: &'static [Port],
    pub health: Probe,
    /// How long a start waits for health (ClickHouse loads its tables first).
    pub health_deadline: Duration,
    /// Files mp-remote writes for it, beside the package's own: removed by `clean`.
    pub config_files: &'static [&'static str],
    pub data_dirs: &'static [DataDir],
    pub log_dirs: &'static [&'static str],
    pub accounts: &'static [Account],
    pub origin: Origin,
    /// Where its executable may be besides the `PATH` (packages and releases differ): `update`
    /// checks the server is installed there.
    pub binaries: &'static [&'static str],
    /// systemd's `Restart=` and `RestartSec=` for units mp-remote writes.
    pub restart: (&'static str, u32),
    pub rolling: Rolling,
    /// How clients reach it: scheme, port key and path (`nats://ADDRESS:4222`).
    pub endpoint: (&'static str, &'static str, &'static str),
    /// What a full `status` asks besides health, on the health probe's port: name, path, and
    /// the query POSTed (as the MarketPrism user) when it is one.
    pub status_calls: &'static [(&'static str, &'static str, Option<&'static str>)],
}

impl Component {
    /// The OS package of a vendor's server (None: mp-remote's own release).
    pub fn package(&self) -> Option<&'static str> {
        match self.origin {
            Origin::Vendor { package, .. } => Some(package),
            Origin::Release => None,
        }
    }

    /// The release a vendor's server installs when the inventory names no source.
    pub fn pinned(&self) -> Option<&'static str> {
        match self.origin {
            Origin::Vendor { pinned, .. } => Some(pinned),
            Origin::Release => None,
        }
    }

    /// How the servers plan installs and starts a vendor's server.
    pub fn vendor_plan(&self) -> Option<&'static crate::plan::vendor::VendorPlan> {
        match self.origin {
            Origin::Vendor { plan, .. } => Some(plan),
            Origin::Release => None,
        }
    }

    /// Every port number, in declaration order.
    pub fn port_numbers(&self) -> Vec<u16> {
        self.ports.iter().map(|p| p.number).collect()
    }

    /// The port declared under `key` (a typo is a bug in a declaration: tests cover it).
    pub fn port(&self, key: &str) -> u16 {
        self.ports
            .iter()
            .find(|p| p.key == key)
            .map_or(0, |p| p.number)
    }

    /// Where clients reach it on `address` (`nats://10.0.0.1:4222`, the health URL of a
    /// pipeline service).
    pub fn endpoint(&self, address: &str) -> String {
        let (scheme, key, path) = self.endpoint;
        format!("{scheme}://{address}:{}{path}", self.port(key))
    }

    /// The deploy step that waits for its health: the servers come up in the init layer, the
    /// pipeline services in the start layer.
    pub fn health_step(&self) -> String {
        let layer = match self.origin {
            Origin::Vendor { .. } => "init",
            Origin::Release => "start",
        };
        format!("{layer}.{}.health", self.name)
    }

    /// `http://127.0.0.1:{port}{path}` of an HTTP health probe.
    pub fn health_url(&self) -> Option<String> {
        match self.health {
            Probe::Http { port, path, .. } => Some(format!("http://127.0.0.1:{port}{path}")),
            Probe::Tcp { .. } => None,
        }
    }
}

/// `a == b` in a `const fn` (compile-time lookups by name: `Role::NATS`, `Service::NATS`).
pub const fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Every built-in component, in start order: the servers first, then storage (it writes into
/// ClickHouse) and the collector (it publishes to NATS). Stop goes the other way.
pub const ALL: [&Component; 4] = [
    &super::nats::COMPONENT,
    &super::clickhouse::COMPONENT,
    &super::pipeline::STORAGE,
    &super::pipeline::COLLECTOR,
];

pub fn by_name(name: &str) -> Option<&'static Component> {
    ALL.into_iter().find(|c| c.name == name)
}

pub fn by_role(role: &str) -> Option<&'static Component> {
    ALL.into_iter().find(|c| c.role == role)
}

/// The ports checked before installing, with what each is for.
pub fn checked_ports() -> impl Iterator<Item = &'static Port> {
    ALL.into_iter()
        .flat_map(|c| c.ports.iter())
        .filter(|p| p.checked_before_install)
}

/// What a port is for, as messages say it ("port 9000 (ClickHouse native) is taken").
pub fn port_purpose(number: u16) -> Option<&'static str> {
    ALL.into_iter()
        .flat_map(|c| c.ports.iter())
        .find(|p| p.number == number)
        .map(|p| p.purpose)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_units_and_ports_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for c in ALL {
            assert!(seen.insert(c.name), "{}", c.name);
            assert!(seen.insert(c.unit), "{}", c.unit);
            for p in c.ports {
                assert!(seen.insert(Box::leak(p.number.to_string().into_boxed_str())));
            }
            let (Probe::Http { port, .. } | Probe::Tcp { port }) = c.health;
            assert!(c.port_numbers().contains(&port), "{}: probe port", c.name);
        }
    }

    #[test]
    fn the_ports_code_looks_up_are_declared() {
        for (c, keys) in [
            (
                &super::super::nats::COMPONENT,
                &["client", "monitoring", "cluster"][..],
            ),
            (
                &super::super::clickhouse::COMPONENT,
                &["http", "native"][..],
            ),
            (&super::super::pipeline::STORAGE, &["health", "metrics"][..]),
            (
                &super::super::pipeline::COLLECTOR,
                &["health", "metrics"][..],
            ),
        ] {
            for key in keys {
                assert_ne!(c.port(key), 0, "{}: {key}", c.name);
            }
        }
    }

    #[test]
    fn endpoints_and_health_steps_are_what_deploy_reports() {
        let [nats, clickhouse, storage, collector] = ALL;
        assert_eq!(nats.endpoint("10.0.0.1"), "nats://10.0.0.1:4222");
        assert_eq!(clickhouse.endpoint("10.0.0.1"), "http://10.0.0.1:8123");
        assert_eq!(storage.endpoint("a"), "http://a:8085/health");
        assert_eq!(
            collector.health_url().unwrap(),
            "http://127.0.0.1:8087/health"
        );
        assert_eq!(nats.health_step(), "init.nats.health");
        assert_eq!(collector.health_step(), "start.collector.health");
        assert_eq!(checked_ports().count(), 6);
        assert_eq!(port_purpose(9000), Some("ClickHouse native"));
    }

    #[test]
    fn every_role_has_one_component() {
        for role in crate::inventory::Role::ALL {
            let c = by_role(role.as_str()).expect("a component");
            assert_eq!(c.role, role.as_str());
        }
    }
}
