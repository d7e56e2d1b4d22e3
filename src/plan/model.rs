//! The plan one host runs: layers of steps, each an action the agent knows how to check and
//! apply. The control node builds it (no I/O) and sends it to the agent as JSON, so these types
//! are the wire format between two builds of the same binary: version it, do not break it.

use serde::{Deserialize, Serialize};

use crate::stack::StreamSpec;

/// Bumped when a plan written by one version cannot be read by another.
pub const PLAN_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostPlan {
    pub format: u32,
    pub host: String,
    pub run_id: String,
    /// Where the agent keeps its state (done steps and their input hashes) and event logs.
    pub state_dir: String,
    /// Report what would change, change nothing (`deploy --check`).
    pub check_only: bool,
    /// With each file it writes (or would write), a unified diff of the change (`--diff`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub diff: bool,
    pub layers: Vec<Layer>,
}

impl HostPlan {
    /// A plan of one layer for `host` (the agent's state in `state_dir`).
    pub fn one_layer(
        host: &str,
        run_id: &str,
        state_dir: &str,
        check_only: bool,
        name: LayerName,
        steps: Vec<Step>,
    ) -> HostPlan {
        HostPlan {
            format: PLAN_FORMAT,
            host: host.to_string(),
            run_id: run_id.to_string(),
            state_dir: state_dir.to_string(),
            check_only,
            diff: false,
            layers: vec![Layer { name, steps }],
        }
    }
}

/// The five layers, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerName {
    Detect,
    Install,
    Init,
    Start,
    Verify,
}

impl LayerName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Detect => "detect",
            Self::Install => "install",
            Self::Init => "init",
            Self::Start => "start",
            Self::Verify => "verify",
        }
    }
}

impl std::fmt::Display for LayerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub name: LayerName,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Unique within the plan and stable across runs: the key of the agent's state.
    pub id: String,
    /// What a person reads: "install nats-server", "create stream MARKET_DATA".
    pub title: String,
    pub action: Action,
    /// Services (their step ids) to restart when this step changes something.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<String>,
}

/// What a step does. Every action checks first and applies only the difference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// OS packages, installed with the host's package manager; an interrupted dpkg is repaired
    /// first.
    Packages { packages: Vec<String> },
    /// A directory with an owner and mode.
    Directory {
        path: String,
        owner: Option<String>,
        mode: u32,
    },
    /// A config file mp-remote manages (its first line carries the managed marker). A copy a
    /// person edited is backed up before it is replaced, and the step says so.
    File {
        path: String,
        content: String,
        mode: u32,
        owner: Option<String>,
    },
    /// A TCP port must be free, or held by one of the named processes (our own server).
    PortFree {
        port: u16,
        service: String,
        allowed_processes: Vec<String>,
        /// Our unit for this port: when it is active and the holder cannot be named (no
        /// CAP_SYS_PTRACE in containers hides other users' sockets), the port counts as ours.
        our_unit: Option<String>,
    },
    /// A systemd unit enabled and running; restarted when a step notifying it changed.
    Service { unit: String },
    /// systemd has read the unit's current files (a `daemon-reload` only when they changed),
    /// ahead of a start that comes later in another plan.
    UnitLoaded { unit: String },
    /// A server run by the agent's own supervisor, where the host has no systemd: detached,
    /// pid files under /run/mp-remote, output in /var/log/mp-remote/NAME.log, restarted when it
    /// exits. Restarted by the step when a step notifying it changed, or when its binary or
    /// one of `config_files` differs from what it was started with.
    Supervised {
        /// Names its pid and log files (`nats-server`).
        name: String,
        /// The account it runs as.
        user: String,
        /// Its command line; the first item an absolute path.
        command: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        config_files: Vec<String>,
    },
    /// Poll a URL until it answers (and, if given, a JSON field equals a value), or fail with
    /// the last lines of the unit's log.
    WaitHttp {
        url: String,
        expect_json: Option<JsonExpectation>,
        timeout_secs: u64,
        log_unit: Option<String>,
    },
    /// MarketPrism's schema over ClickHouse's HTTP interface, one statement per request. The
    /// agent asks the server its version and renders the schema for it (modern or legacy):
    /// on a fresh host the version is only known after the install layer.
    ClickHouseSchema {
        url: String,
        user: String,
        password: Option<String>,
    },
    /// Create or update JetStream streams in place; never delete one.
    NatsStreams {
        url: String,
        streams: Vec<StreamSpec>,
    },
    /// A shell script; `check` exiting 0 means "already in place, skip".
    Script {
        check: Option<String>,
        apply: String,
        /// What it makes (a link, a file): recorded for `clean` like a file step's path.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        creates: Vec<String>,
    },
    /// A server's binary from the vendor's release (downloaded on the host with curl) or from
    /// a file the control node uploaded: its sha256 verified before anything is installed,
    /// unpacked (a .tar.gz or a bare binary), installed by an atomic rename. Nothing is
    /// fetched when the installed binary already reports `version`.
    InstallBinary {
        /// Its file name in the archive, and what `--version` names (`nats-server`).
        name: String,
        from: ArtifactFrom,
        sha256: String,
        /// The version it must report. None (a push without one): the artifact's sha256,
        /// recorded beside `work_dir` at install, tells whether it is in place.
        version: Option<String>,
        /// Where it goes (`/usr/local/bin/nats-server`).
        path: String,
        /// Where downloads are unpacked, and the install record kept (agent's state dir).
        work_dir: String,
    },
    /// The files a vendor's archive brings besides its binary (ClickHouse's default
    /// `config.xml`, `users.xml`): installed when absent, replaced when unedited since, kept
    /// (the archive's version written beside them) when a person changed them.
    InstallVendorFiles {
        /// What the archive is, in messages.
        label: String,
        from: ArtifactFrom,
        sha256: String,
        files: Vec<VendorFile>,
        /// Where downloads are unpacked, and the install records kept.
        work_dir: String,
    },
    /// A Debian package file the control node uploaded, installed with `dpkg -i` unless that
    /// very version of the package is installed.
    InstallDeb {
        package: String,
        path: String,
        sha256: String,
    },
    /// A system account without login or home directory, for a server no package set up.
    SystemUser { name: String, home: String },
    /// This very program (the agent) installed as the pipeline's release:
    /// `{dir}/releases/{sha256[..16]}/mp-remote`, with `{dir}/current` pointing at it and the
    /// release it replaced kept as `{dir}/previous`, so a rollback is one symlink away.
    AppRelease { dir: String, sha256: String },
    /// A user service's release: the tar archive the control node uploaded (content-addressed,
    /// `archive`), checked against `sha256` and unpacked into `{dir}/releases/{sha256[..16]}`,
    /// with `current`, `previous` and the newest releases kept as [`Action::AppRelease`] does.
    ServiceRelease {
        dir: String,
        archive: String,
        sha256: String,
    },
    /// A user service's Python virtualenv, `{dir}/venvs/{key[..16]}` made with the host's
    /// python3 (and `pip install -r requirements`, from the index or with `--no-index
    /// --find-links` a pushed wheelhouse), `{dir}/venv` pointing at it. `key` is the sha256 of
    /// the requirements and where they come from: the venv is rebuilt only when they change.
    Venv {
        /// In messages (`echo`).
        service: String,
        dir: String,
        key: String,
        requirements: Option<String>,
        find_links: Option<String>,
    },
    /// Poll until something accepts TCP connections on 127.0.0.1:`port`, or fail with the
    /// last lines of the unit's log.
    WaitTcp {
        port: u16,
        timeout_secs: u64,
        log_unit: Option<String>,
    },
    /// Switches `{dir}/current` back to another release on disk (`to`, or `{dir}/previous`),
    /// keeping the release it leaves as `previous` for inspection: a rollback.
    AppRollback { dir: String, to: Option<String> },
    /// Switches a user service's `{dir}/current` back to `{dir}/previous` (and its venv back
    /// to `venv-previous` with `venv`): the automatic rollback of a failed batch.
    ServiceRollback { dir: String, venv: bool },
    /// A rolling run's health gate: every probe healthy on `consecutive` polls in a row,
    /// `interval_ms` apart, within the deadline; a probe failing resets the count.
    HealthGate {
        probes: Vec<GateProbe>,
        consecutive: u32,
        interval_ms: u64,
        timeout_secs: u64,
    },
    /// After a NATS node restarts: every stream has a leader and no replica lags behind it
    /// (each peer `current` and online), as the stream's leader sees it.
    StreamsCurrent {
        url: String,
        streams: Vec<String>,
        timeout_secs: u64,
    },
    /// A collector publishes: the `published` count of its health JSON grows within the
    /// deadline. Otherwise the step fails naming the hop, with the service's last log lines.
    VerifyPublishing {
        health_url: String,
        timeout_secs: u64,
        log_unit: String,
        /// A live collector's slow streams: each must have delivered (a successful poll or
        /// message in its health's `source.streams`), standing in for rows.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        polled_streams: Vec<String>,
    },
    /// Data reaches ClickHouse: every table gains rows within the deadline (see [`FlowCheck`]).
    VerifyFlow(FlowCheck),
}

/// Where a storage host looks for rows, and who it blames when none come: when a table gains
/// none within the deadline, the step names the broken hop (stream not receiving, storage not
/// consuming, inserts failing) from the stream's and the consumer's state and the storage's
/// health, with the storage's last log lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowCheck {
    pub clickhouse_url: String,
    pub user: String,
    pub password_file: String,
    pub database: String,
    pub tables: Vec<String>,
    pub storage_health_url: String,
    /// Every NATS node's monitoring endpoint (`http://ADDRESS:8222`): only a consumer's
    /// leader knows its current state.
    pub nats_monitor_urls: Vec<String>,
    pub timeout_secs: u64,
    pub log_unit: String,
}

/// One file of a vendor's archive and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VendorFile {
    /// Its path in the archive, below the archive's top folder (`etc/clickhouse-server/config.xml`).
    pub member: String,
    pub path: String,
    pub mode: u32,
}

/// Where an artifact comes from, as the agent sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactFrom {
    /// Downloaded on the host with curl.
    Download { url: String },
    /// Already on the host: the control node uploaded it (`source = "push"`).
    Uploaded { path: String },
}

/// One service's health endpoint in a [`Action::HealthGate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateProbe {
    /// The service, in messages (`storage`).
    pub name: String,
    pub url: String,
    pub expect_json: Option<JsonExpectation>,
    /// Whose log the failure shows.
    pub log_unit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonExpectation {
    /// A top-level field of the JSON body.
    pub field: String,
    /// Its expected string value (`"ok"`, `"healthy"`); anything else keeps waiting.
    pub equals: String,
}
