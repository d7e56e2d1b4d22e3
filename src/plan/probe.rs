//! What the agent looks at on a host for `status` and the day-2 commands (`agent status`,
//! `agent control`, `agent logs`), and what it answers: plain data built from the component
//! declarations (`stack::component`) and the inventory's user services, so the agent needs to
//! know no unit, port or path of its own. Whether an answer means healthy is judged by the
//! pure [`crate::stack::health::judge`], the same on both sides.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::inventory::UserService;
use crate::stack::component::{Component, Origin, Probe};
pub use crate::stack::health::{one_line, Expect, Reply};

/// The account and password file the status queries to ClickHouse use.
pub const CLICKHOUSE_STATUS_USER: &str = "marketprism";

/// How the agent asks a service whether it is healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    Http {
        url: String,
    },
    Tcp {
        port: u16,
    },
    /// It declares no health check: running is all that is known.
    None,
}

/// An extra HTTP call of a full `status` (NATS `/jsz`, ClickHouse queries), made only when
/// the health check answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// The key of its answer in [`Seen::calls`].
    pub name: String,
    pub url: String,
    /// POSTed when set (a ClickHouse query).
    pub body: Option<String>,
    /// Basic auth as this user with the password in this root-only file, when readable.
    pub auth: Option<(String, String)>,
}

/// One service on the host, as the agent looks at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The key in `status` (`nats`, `storage`, a user service's name).
    pub name: String,
    /// The systemd unit, and the supervised service's name on a host without systemd.
    pub unit: String,
    /// The OS package that installs it (vendor servers): its dpkg status is reported.
    pub package: Option<String>,
    /// Files that are all there when it is installed (releases, user services).
    pub files: Vec<String>,
    /// The ports it may listen on (`status` shows those that listen).
    pub ports: Vec<u16>,
    pub check: Check,
    pub expect: Expect,
    /// Executables tried in order; the first that exists says its `--version` (full mode).
    pub version_from: Vec<String>,
    pub calls: Vec<Call>,
    /// How long start/restart waits for it to answer healthy.
    pub deadline_secs: u64,
}

impl Target {
    /// Whether `reply` (to its health check) means healthy; Ok without a check.
    pub fn judge(&self, reply: &Reply) -> Result<(), String> {
        match &self.check {
            Check::Http { url } => {
                let path = url_path(url);
                let last = path
                    .trim_start_matches('/')
                    .split(['/', '?'])
                    .next()
                    .filter(|s| !s.is_empty())
                    .unwrap_or("health");
                let label = format!("{}.{last}", self.name);
                crate::stack::health::judge(&self.expect, reply, &label, path)
            }
            Check::Tcp { port } => crate::stack::health::judge(
                &self.expect,
                reply,
                &format!("{}.tcp:{port}", self.name),
                "",
            ),
            Check::None => Ok(()),
        }
    }
}

/// The path (and query) of an `http://host:port/path` URL; `/` when it has none.
fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("/", |i| &rest[i..])
}

/// `agent status`'s question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRequest {
    /// Versions, extra calls and listening ports too (`status`), not only health (polling).
    pub full: bool,
    pub targets: Vec<Target>,
    /// The pipeline release link (`{deploy_dir}/current`) whose target is reported.
    pub release_link: Option<String>,
}

/// What the agent saw of one service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub name: String,
    /// `systemctl is-active`'s word; under mp-remote's supervisor `active`, `restarting` (the
    /// supervisor runs, its server not) or `inactive`.
    pub active: String,
    pub supervised: bool,
    /// dpkg's `Status|Version` of its package (empty when not installed).
    pub package: Option<String>,
    /// Its files are there (always true without files to look for).
    pub files_present: bool,
    pub health: Reply,
    /// The first line its binary's `--version` printed.
    pub version: Option<String>,
    pub calls: BTreeMap<String, Reply>,
}

/// `agent status`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReply {
    pub services: Vec<Seen>,
    /// Listening TCP ports (full mode), read from `/proc/net/tcp{,6}`.
    pub listening: Option<Vec<u16>>,
    pub release: Option<String>,
}

/// What start, stop and restart do to a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    Start,
    Stop,
    Restart,
}

impl Control {
    pub fn verb(self) -> &'static str {
        match self {
            Control::Start => "start",
            Control::Stop => "stop",
            Control::Restart => "restart",
        }
    }

    pub fn past(self) -> &'static str {
        match self {
            Control::Start => "started",
            Control::Stop => "stopped",
            Control::Restart => "restarted",
        }
    }

    pub fn waits_for_health(self) -> bool {
        self != Control::Stop
    }
}

/// `agent control`'s question: the targets in the order to go through them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlRequest {
    pub control: Control,
    pub targets: Vec<Target>,
    /// Journal lines sent with a failure.
    pub journal_lines: u32,
}

/// What `agent control` did to one service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Controlled {
    pub name: String,
    /// It already was as asked (running for start, stopped for stop).
    pub already: bool,
    /// Under mp-remote's supervisor (no systemd on the host).
    pub supervised: bool,
    pub healthy_after_ms: Option<u64>,
    /// What went wrong and what to do.
    pub failure: Option<String>,
    /// The end of its journal (or supervisor log) when it failed.
    pub journal: String,
}

/// `agent logs`'s question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsRequest {
    pub unit: String,
    pub lines: u32,
}

/// `agent stop`'s question: stop the agent of run `run_id` (Ctrl-C on the control node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopRequest {
    pub state_dir: String,
    pub run_id: String,
    /// A process group never signalled whole: the control node's own, when the host is the
    /// machine it runs on (0: none).
    pub spare_group: u32,
}

/// What `agent stop` did: the agents it found (none: that run's agent was not running), and
/// whether they had to be killed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stopped {
    pub pids: Vec<u32>,
    pub killed: bool,
}

impl Stopped {
    /// One line for the host's log and the terminal.
    pub fn line(&self) -> String {
        let pids = self
            .pids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        match (self.pids.is_empty(), self.killed) {
            (true, _) => "no agent of this run is running".into(),
            (false, false) => format!("agent (pid {pids}) stopped"),
            (false, true) => format!("agent (pid {pids}) killed: it did not stop within 5 s"),
        }
    }
}

/// `agent lease`'s question: what to do with the host's fleet lease (`run::lease`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseCall {
    /// `read`, `acquire`, `renew`, `release` (ours only) or `force` (whatever is there).
    pub action: String,
    pub file: String,
    /// Empty for `read` and `force`.
    pub run_id: String,
    pub ttl_secs: u64,
    /// `user@control-host`.
    pub owner: String,
    pub command: String,
    /// A run known to be dead (the one a `--retry` repeats): its lease counts as expired.
    pub takeover: Option<String>,
}

/// `agent begin`'s question, asked beside the facts probe when a run starts on a host: the
/// secrets the host keeps (after any agent left running by a cut connection has finished: it
/// may be about to write one), and the run's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeginRequest {
    pub state_dir: String,
    /// Files of one line each.
    pub secrets: Vec<String>,
    pub lease: Option<LeaseCall>,
}

/// What `agent begin` read and took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Begun {
    /// One per asked file, in order: its first line, empty when missing.
    pub secrets: Vec<String>,
    pub lease: Option<LeaseAnswer>,
}

/// What `agent lease` found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseAnswer {
    /// The host's clock, seconds since the epoch: expiry is decided on it.
    pub now: i64,
    /// What was there before acting: absent, found (`read`), corrupt, future, ours, expired,
    /// held.
    pub state: String,
    /// 0 done; 10 held by another run; 11 unreadable lease; 12 newer format; 13 not ours any
    /// more (renew); 20 cannot read or write the file; 21 cannot lock.
    pub code: u32,
    /// The lease in effect: the one written, found, or removed (the file's first 4 KiB).
    pub body: String,
    /// Why, for codes 20 and 21.
    pub message: Option<String>,
}

/// One line of the agent's answer to `status`, `control` or `logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum OpEvent {
    Probed(ProbeReply),
    Controlled(Controlled),
    Cleaned(Cleaned),
    Stopped(Stopped),
    Leased(LeaseAnswer),
    Begun(Begun),
    Log {
        text: String,
    },
    /// The request could not be done at all (unreadable, a journal that cannot be read).
    Failed {
        message: String,
    },
    Done,
}

/// `agent clean`'s question: undo what the host's record says mp-remote made there, and
/// what the declarations say it makes (a host deployed before the record existed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanRequest {
    /// Where the agent keeps its lock and the record.
    pub state_dir: String,
    pub purge_data: bool,
    /// In the order to undo them: units stopped first, data directories never removed.
    pub declared: Vec<Made>,
    /// Data directories and their owners: kept, or with `purge_data` emptied (the directory
    /// stays, owned by its account, so a later deploy can start).
    pub data: Vec<(String, String)>,
    /// Accounts that own data: removed only with `purge_data`.
    pub data_accounts: Vec<String>,
    /// The run's lease, given back once done: clean removes the agent a later call would
    /// need for it.
    #[serde(default)]
    pub release_lease: Option<LeaseCall>,
}

/// What `agent clean` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cleaned {
    pub did: Vec<String>,
    /// Data directories left in place.
    pub kept: Vec<String>,
    pub failed: Vec<String>,
}

/// One thing mp-remote made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Made {
    /// A systemd unit it enabled and started: stopped and disabled.
    Unit {
        name: String,
    },
    /// A server its supervisor runs (no systemd): stopped.
    Supervised {
        name: String,
    },
    /// A file, link or directory that is mp-remote's entirely: removed whole.
    Path {
        path: String,
    },
    /// A directory made on the way to a path: removed only when nothing else is left in it.
    Dir {
        path: String,
    },
    /// A vendor's default configuration file: kept like a package's conffile, removed with
    /// `--purge-data`.
    Conffile {
        path: String,
    },
    Package {
        name: String,
    },
    Account {
        name: String,
    },
}

/// The target for a built-in component whose release lives under `deploy_dir`.
pub fn component_target(component: &Component, deploy_dir: &str) -> Target {
    let (check, expect) = match component.health {
        Probe::Http {
            port,
            path,
            json_status,
        } => (
            Check::Http {
                url: format!("http://127.0.0.1:{port}{path}"),
            },
            match json_status {
                Some((field, value)) if component.origin == Origin::Release => Expect::Report {
                    field: field.into(),
                    value: value.into(),
                },
                Some((field, value)) => Expect::Json {
                    field: field.into(),
                    value: value.into(),
                },
                None if path == "/ping" => Expect::Body("Ok.".into()),
                None => Expect::Success,
            },
        ),
        Probe::Tcp { port } => (Check::Tcp { port }, Expect::Accept),
    };
    let (package, files, version_from) = match component.origin {
        Origin::Vendor { package, .. } => (
            Some(package.to_string()),
            Vec::new(),
            component.binaries.iter().map(|b| b.to_string()).collect(),
        ),
        Origin::Release => {
            let bin = format!("{deploy_dir}/current/mp-remote");
            (
                None,
                vec![bin.clone(), component.config_files[0].to_string()],
                vec![bin],
            )
        }
    };
    Target {
        name: component.name.to_string(),
        unit: component.unit.to_string(),
        package,
        files,
        ports: component.port_numbers(),
        check,
        expect,
        version_from,
        calls: component
            .status_calls
            .iter()
            .map(|(name, path, query)| Call {
                name: format!("{}.{name}", component.name),
                url: format!("http://127.0.0.1:{}{path}", http_port(component)),
                body: query.map(str::to_string),
                auth: query.map(|_| {
                    (
                        CLICKHOUSE_STATUS_USER.to_string(),
                        crate::plan::build::CLICKHOUSE_SECRET_PATH.to_string(),
                    )
                }),
            })
            .collect(),
        deadline_secs: component.health_deadline.as_secs(),
    }
}

/// The port of the component's HTTP health probe (its status calls go there too).
fn http_port(component: &Component) -> u16 {
    match component.health {
        Probe::Http { port, .. } | Probe::Tcp { port } => port,
    }
}

/// The target for a user service (`[services.NAME]`).
pub fn user_target(service: &UserService) -> Target {
    use crate::inventory::ServiceProbe;
    let (check, expect, deadline) = match &service.health {
        Some(h) => match &h.probe {
            ServiceProbe::Http { url, json } => (
                Check::Http { url: url.clone() },
                match json {
                    Some((field, value)) => Expect::Json {
                        field: field.clone(),
                        value: value.clone(),
                    },
                    None => Expect::Success,
                },
                h.timeout.as_secs(),
            ),
            ServiceProbe::Tcp { port } => (
                Check::Tcp { port: *port },
                Expect::Accept,
                h.timeout.as_secs(),
            ),
        },
        None => (Check::None, Expect::Success, 60),
    };
    Target {
        name: service.name.clone(),
        unit: super::services::unit_name(&service.name),
        package: None,
        files: vec![super::services::unit_path(&service.name)],
        ports: service.ports.clone(),
        check,
        expect,
        version_from: Vec::new(),
        calls: Vec::new(),
        deadline_secs: deadline,
    }
}
