//! `clean`: undo a deploy on each host. Stops and disables the units, removes the packages and
//! mp-remote's own files, and keeps the data (JetStream store, ClickHouse data) unless asked to
//! purge it, so that a later deploy finds the tables and messages where they were.
//!
//! The plan is pure data (shown to the user before anything runs), read from the component
//! declarations and the inventory's user services. The host's agent (`agent clean`) undoes
//! what its own record says mp-remote made there, and what the plan declares (a host
//! deployed before the record existed); it does only what is still there, so a second clean
//! is a no-op.

use super::agent_call;
use super::day2::services_of;
use super::{for_each_host, FanOut, HostOutcome};
use crate::inventory::Host;
pub use crate::plan::build::NATS_DROP_IN;
use crate::plan::build::{CONFIG_DIR, STATE_DIR};
use crate::plan::probe::{CleanRequest, Made, OpEvent};
use crate::report::HostStatus;
use crate::stack::component::{Component, Origin};

/// Where a non-root (become) user keeps the agent binary: its home, relative to the session.
const USER_AGENT_DIR: &str = ".mp-remote";

/// A service's data directory and the user that owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    pub path: &'static str,
    pub owner: &'static str,
}

/// What clean does on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanPlan {
    pub host: String,
    /// Stopped and disabled, in this order.
    pub units: Vec<&'static str>,
    /// Removed with `apt-get remove` (`purge` with `purge_data`).
    pub packages: Vec<&'static str>,
    /// mp-remote's own files and directories.
    pub files: Vec<String>,
    /// The user's agent directory (become), removed as that user.
    pub user_files: Vec<String>,
    /// Data directories: kept, or emptied with `purge_data`.
    pub data: Vec<DataDir>,
    /// Accounts removed when mp-remote made them (their comment says so). `nats` only with
    /// `purge_data`: kept data stays owned by the account that can read it.
    pub users: Vec<&'static str>,
    /// Accounts that own data: the record's are kept with it unless `purge_data`.
    pub data_accounts: Vec<String>,
    pub purge_data: bool,
    /// The user's services on this host (`[services.*]`): stopped first (they may need the
    /// pipeline), then their unit, release directory, env file and account removed.
    pub user_services: Vec<UserServiceRemoval>,
    /// The run's lease, which the agent gives back when done (`agent clean`).
    pub release_lease: Option<crate::plan::probe::LeaseCall>,
}

/// What clean removes of one user service: all of it is mp-remote's (no data is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserServiceRemoval {
    pub name: String,
    pub unit: String,
    pub files: Vec<String>,
    pub user: String,
}

impl CleanPlan {
    /// Adds the user services `host` runs, from their declarations (as the deploy placed them).
    pub fn with_user_services(mut self, services: &[crate::inventory::UserService]) -> Self {
        use crate::plan::services::{env_file, service_dir, unit_name, unit_path};
        self.user_services = services
            .iter()
            .filter(|s| s.runs_on(&self.host))
            .rev()
            .map(|s| UserServiceRemoval {
                name: s.name.clone(),
                unit: unit_name(&s.name),
                files: vec![unit_path(&s.name), service_dir(&s.name), env_file(&s.name)],
                user: s.user.clone(),
            })
            .collect();
        self
    }
}

/// The plan for `host` by its roles, from each component's declaration: the files mp-remote
/// wrote for it, its data, its accounts, its package.
pub fn plan(host: &Host, purge_data: bool) -> CleanPlan {
    let services = services_of(host, None);
    let components: Vec<&Component> = services.iter().map(|s| s.component()).collect();
    let mut files = Vec::new();
    let mut data = Vec::new();
    let mut users: Vec<&'static str> = Vec::new();
    for c in &components {
        // Files in the config directory go with it, below.
        files.extend(
            c.config_files
                .iter()
                .filter(|f| !f.starts_with(&format!("{CONFIG_DIR}/")))
                .map(|f| f.to_string()),
        );
        data.extend(c.data_dirs.iter().map(|d| DataDir {
            path: d.path,
            owner: d.owner,
        }));
        // An account owning kept data stays, so the data stays readable by it.
        for account in c.accounts {
            if (purge_data || !account.owns_data) && !users.contains(&account.name) {
                users.push(account.name);
            }
        }
    }
    if components.iter().any(|c| c.origin == Origin::Release) {
        let deploy_dir = host
            .vars
            .get("deploy_dir")
            .and_then(|v| v.as_str())
            .unwrap_or(crate::plan::build::DEFAULT_DEPLOY_DIR);
        // Only what the release step made: the directory may hold a person's own files.
        for name in ["current", "previous", "releases"] {
            files.push(format!("{deploy_dir}/{name}"));
        }
    }
    files.extend([CONFIG_DIR.to_string(), STATE_DIR.to_string()]);
    CleanPlan {
        host: host.name.clone(),
        units: services.iter().rev().map(|s| s.unit()).collect(),
        packages: components
            .iter()
            .rev()
            .filter_map(|c| match c.origin {
                Origin::Vendor { package, .. } => Some(package),
                Origin::Release => None,
            })
            .collect(),
        files,
        user_files: if host.become_ {
            vec![format!("~/{USER_AGENT_DIR}")]
        } else {
            Vec::new()
        },
        data,
        users,
        data_accounts: components
            .iter()
            .flat_map(|c| c.accounts.iter())
            .filter(|a| a.owns_data)
            .map(|a| a.name.to_string())
            .collect(),
        purge_data,
        user_services: Vec::new(),
        release_lease: None,
    }
}

impl CleanPlan {
    /// What the host's agent is asked: the declared things in the order to undo them (the
    /// user's services first, in reverse start order: they may depend on the pipeline).
    pub fn request(&self) -> CleanRequest {
        let path = |p: &str| Made::Path {
            path: p.to_string(),
        };
        let mut declared = Vec::new();
        for service in &self.user_services {
            declared.push(Made::Unit {
                name: service.unit.clone(),
            });
            declared.extend(service.files.iter().map(|f| path(f)));
            declared.push(Made::Account {
                name: service.user.clone(),
            });
        }
        if !self.user_services.is_empty() {
            for dir in [
                crate::plan::services::SERVICES_DIR,
                crate::plan::services::ENV_DIR,
            ] {
                declared.push(Made::Dir { path: dir.into() });
            }
        }
        declared.extend(self.units.iter().map(|u| Made::Unit {
            name: u.to_string(),
        }));
        for file in &self.files {
            declared.push(path(file));
            // A unit's drop-in directory goes with its drop-in (when nothing else is in it).
            if let Some(dir) = file.rsplit_once('/').map(|(dir, _)| dir) {
                if dir.ends_with(".service.d") {
                    declared.push(Made::Dir { path: dir.into() });
                }
            }
        }
        declared.extend(self.packages.iter().map(|p| Made::Package {
            name: p.to_string(),
        }));
        declared.extend(self.users.iter().map(|u| Made::Account {
            name: u.to_string(),
        }));
        CleanRequest {
            state_dir: STATE_DIR.into(),
            purge_data: self.purge_data,
            declared,
            data: self
                .data
                .iter()
                .map(|d| (d.path.to_string(), d.owner.to_string()))
                .collect(),
            data_accounts: self.data_accounts.clone(),
            release_lease: self.release_lease.clone(),
        }
    }

    /// The login user's own agent copy (a `become` host), removed as that user after the
    /// root part: None when there is none to remove.
    pub fn user_command(&self) -> Option<String> {
        (!self.user_files.is_empty()).then(|| {
            format!("if [ -e {USER_AGENT_DIR} ]; then rm -rf {USER_AGENT_DIR} && echo did=removed ~/{USER_AGENT_DIR}; fi")
        })
    }
}

/// What clean did on one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanDone {
    pub did: Vec<String>,
    /// Data directories left in place.
    pub kept: Vec<String>,
    pub failed: Vec<String>,
}

/// Runs each host's plan; a host with a failure ends `failed`, its error naming what failed
/// with the tail of the package manager's output.
pub async fn clean(
    plans: &[CleanPlan],
    hosts: &[&Host],
    fanout: &FanOut,
) -> Vec<HostOutcome<CleanDone>> {
    let agent = agent_call::day2_agents();
    let mut outcomes = for_each_host(hosts, fanout, |transport, host| {
        let agent = agent.clone();
        async move {
            let plan = plans.iter().find(|p| p.host == host.name).ok_or_else(|| {
                anyhow::anyhow!("no clean plan for {} (a bug: please report it)", host.name)
            })?;
            let agent = agent.clone().map_err(|e| anyhow::anyhow!("{e}"))?;
            let events =
                agent_call::call(transport.as_ref(), host, &agent, "clean", &plan.request())
                    .await?;
            let cleaned = events
                .into_iter()
                .find_map(|e| match e {
                    OpEvent::Cleaned(c) => Some(c),
                    _ => None,
                })
                .ok_or_else(|| anyhow::anyhow!("`mp-remote agent clean` gave no answer"))?;
            let mut done = CleanDone {
                did: cleaned.did,
                kept: cleaned.kept,
                failed: cleaned.failed,
            };
            if let Some(command) = plan.user_command() {
                let output = transport.exec(&command, b"").await?;
                done.did.extend(
                    output
                        .stdout_text()
                        .lines()
                        .filter_map(|l| l.strip_prefix("did=").map(str::to_string)),
                );
            }
            Ok((done, String::new()))
        }
    })
    .await;
    outcomes
        .drain(..)
        .map(|o| {
            let (status, error, value) = match o.value {
                Some((done, stderr)) if !done.failed.is_empty() => {
                    let tail = crate::agent::outcome::tail(stderr.trim(), 10);
                    let error = format!(
                        "{}: {}; fix that on the host, then clean again{}{}",
                        o.host,
                        done.failed.join("; "),
                        if tail.is_empty() { "" } else { "; output:\n" },
                        tail
                    );
                    (HostStatus::Failed, Some(error), Some(done))
                }
                Some((done, _)) => (o.status, o.error, Some(done)),
                None => (o.status, o.error, None),
            };
            HostOutcome {
                host: o.host,
                status,
                error,
                value,
                duration: o.duration,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory;

    fn host(roles: &str, become_root: bool) -> Host {
        let text = format!(
            "[[hosts]]\nname = \"mp-1\"\naddress = \"10.0.0.1\"\nroles = [{roles}]\nbecome = {become_root}\n"
        );
        let inv = inventory::parse(&text, std::path::Path::new("inv.toml"), None).unwrap();
        inv.hosts[0].clone()
    }

    #[test]
    fn user_services_are_stopped_first_and_removed_whole() {
        let service = |name: &str, hosts: &[&str]| inventory::UserService {
            name: name.into(),
            kind: inventory::ServiceKind::Python,
            path: "/x".into(),
            command: vec!["python".into()],
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            user: format!("mp-{name}"),
            env: Default::default(),
            env_files: Default::default(),
            ports: vec![],
            health: None,
            after: vec![],
            nats_user: crate::stack::nats::NatsUser::Services,
            requirements: None,
            wheelhouse: None,
        };
        let services = [
            service("echo", &["mp-1"]),
            service("other", &["mp-2"]),
            service("late", &["mp-1"]),
        ];
        let p = plan(&host(r#""nats""#, false), false).with_user_services(&services);
        let names: Vec<&str> = p.user_services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["late", "echo"],
            "reverse start order, this host's only"
        );
        let declared = p.request().declared;
        let at = |m: &Made| declared.iter().position(|d| d == m).unwrap_or(usize::MAX);
        let unit = |n: &str| Made::Unit { name: n.into() };
        assert!(at(&unit("mp-svc-late")) < at(&unit("nats-server")));
        for made in [
            Made::Path {
                path: "/etc/systemd/system/mp-svc-echo.service".into(),
            },
            Made::Path {
                path: "/opt/mp-services/echo".into(),
            },
            Made::Path {
                path: "/etc/mp-services/echo.env".into(),
            },
            Made::Account {
                name: "mp-echo".into(),
            },
            Made::Dir {
                path: "/opt/mp-services".into(),
            },
        ] {
            assert!(declared.contains(&made), "{made:?}");
        }
        assert!(!format!("{declared:?}").contains("other"));
    }

    #[test]
    fn plan_follows_the_roles() {
        let p = plan(&host(r#""nats", "clickhouse""#, false), false);
        assert_eq!(p.units, ["clickhouse-server", "nats-server"]);
        assert_eq!(p.packages, ["clickhouse-server", "nats-server"]);
        assert_eq!(
            p.files,
            [
                NATS_DROP_IN,
                "/etc/clickhouse-server/config.d/mp-listen.xml",
                "/etc/clickhouse-server/users.d/mp-users.xml",
                "/etc/marketprism",
                "/var/lib/mp-remote"
            ]
        );
        let dirs: Vec<&str> = p.data.iter().map(|d| d.path).collect();
        assert_eq!(dirs, ["/var/lib/nats/jetstream", "/var/lib/clickhouse"]);
        assert!(p.user_files.is_empty());

        // A pipeline host: its unit and the releases go; no package, no data.
        let collector = plan(&host(r#""collector""#, true), false);
        assert_eq!(collector.units, ["mp-collector"]);
        assert!(collector.packages.is_empty() && collector.data.is_empty());
        assert_eq!(
            collector.files,
            [
                "/etc/systemd/system/mp-collector.service",
                "/opt/marketprism/current",
                "/opt/marketprism/previous",
                "/opt/marketprism/releases",
                "/etc/marketprism",
                "/var/lib/mp-remote"
            ]
        );
        assert_eq!(collector.user_files, ["~/.mp-remote"]);
        assert_eq!(collector.users, ["marketprism"]);
        assert!(
            p.users.is_empty(),
            "nats keeps its account while its data is kept"
        );
    }

    /// Today's declared things, in the order to undo them: units first, the state directory
    /// (record and lock) last, data directories never among what is removed.
    #[test]
    fn request_keeps_data_by_default() {
        let request = plan(&host(r#""nats""#, false), false).request();
        let path = |p: &str| Made::Path { path: p.into() };
        assert_eq!(
            request.declared,
            [
                Made::Unit {
                    name: "nats-server".into()
                },
                path(NATS_DROP_IN),
                Made::Dir {
                    path: "/etc/systemd/system/nats-server.service.d".into()
                },
                path("/etc/marketprism"),
                path("/var/lib/mp-remote"),
                Made::Package {
                    name: "nats-server".into()
                },
            ]
        );
        assert_eq!(
            request.data,
            [("/var/lib/nats/jetstream".to_string(), "nats".to_string())]
        );
        assert_eq!(request.data_accounts, ["nats"]);
        assert!(!request.purge_data);
        let purge = plan(&host(r#""nats""#, false), true).request();
        assert!(purge.declared.contains(&Made::Account {
            name: "nats".into()
        }));
    }

    #[test]
    fn the_become_users_agent_copy_goes_as_that_user() {
        assert_eq!(plan(&host(r#""nats""#, false), false).user_command(), None);
        assert_eq!(
            plan(&host(r#""nats""#, true), false)
                .user_command()
                .as_deref(),
            Some(
                "if [ -e .mp-remote ]; then rm -rf .mp-remote && echo did=removed ~/.mp-remote; fi"
            )
        );
    }
}
