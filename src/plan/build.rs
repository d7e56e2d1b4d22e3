//! Building each host's plan from its roles, its facts and the layout of the whole fleet.
//! Pure: the same inputs give the same plan, byte for byte, which is what makes a second
//! deploy a no-op.

use crate::facts::Facts;
use crate::inventory::{Host, Role};
use crate::stack::{self, ClickHouseVersion, ListenConfigInput, NatsConfigInput, UsersConfigInput};

use super::components::{Components, Source};
use super::install::{self, NatsRun};
use super::install_clickhouse;
use super::model::{Action, HostPlan, JsonExpectation, Layer, LayerName, Step, PLAN_FORMAT};
use super::service::{service_steps, Server};

/// Where MarketPrism goes on a host unless the inventory's `deploy_dir` var says otherwise.
pub const DEFAULT_DEPLOY_DIR: &str = "/opt/marketprism";
use crate::stack::clickhouse::COMPONENT as CLICKHOUSE;
pub use crate::stack::clickhouse::DATA_DIR as CLICKHOUSE_DATA_DIR;
use crate::stack::component::Component;
use crate::stack::nats::COMPONENT as NATS;
pub use crate::stack::nats::DROP_IN as NATS_DROP_IN;
/// Where the agent keeps its state on every host.
pub const STATE_DIR: &str = "/var/lib/mp-remote";
pub use crate::stack::pipeline::CONFIG_DIR;
/// The ClickHouse user the pipeline uses; its password is generated once per fleet.
pub const CLICKHOUSE_USER: &str = "marketprism";
pub const CLICKHOUSE_SECRET_PATH: &str = "/etc/marketprism/clickhouse-password";

/// What every host's plan needs to know about the rest of the fleet.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// (name, private address) of every NATS node, in inventory order.
    pub nats_nodes: Vec<(String, String)>,
    pub clickhouse_password: String,
    /// Every NATS client and route logs in with a password derived from this.
    pub nats: stack::nats::NatsCredentials,
    /// `[components.nats] tls`: the files pushed to the hosts; None: plain connections.
    pub nats_tls: Option<stack::nats::NatsTlsFiles>,
    pub stream_limits: stack::StreamLimits,
    pub replicas: usize,
    /// (name, private address) of every ClickHouse host, in inventory order.
    pub clickhouse_nodes: Vec<(String, String)>,
    /// The private addresses of the storage hosts: the only ones, besides loopback, ClickHouse
    /// lets the pipeline's user in from.
    pub storage_addresses: Vec<String>,
    /// How many collectors the fleet runs: without one, no data flow is expected.
    pub collectors: usize,
    /// The tables layer 5 expects rows in: what the fleet's collectors fill at a steady rate.
    pub flow_tables: Vec<String>,
    /// The agent binary's sha256: the pipeline's release is this very binary.
    /// Per host, the sha256 of the agent it got (its arch's build): its pipeline release.
    pub agent_sha256: std::collections::BTreeMap<String, String>,
    /// The inventory has one host: every NATS client is on it, so NATS binds loopback only.
    pub one_host: bool,
}

#[cfg(test)]
impl Fleet {
    /// One host running everything, as `inventory/local.toml` lays it out.
    pub fn single_host_for_tests() -> Self {
        Fleet {
            nats_nodes: vec![("local".into(), "127.0.0.1".into())],
            clickhouse_password: "secret".into(),
            nats: stack::nats::NatsCredentials::new("nats-secret"),
            nats_tls: None,
            stream_limits: stack::StreamLimits::default(),
            replicas: 1,
            clickhouse_nodes: vec![("local".into(), "127.0.0.1".into())],
            storage_addresses: vec!["127.0.0.1".into()],
            collectors: 1,
            flow_tables: super::pipeline::TABLES
                .iter()
                .map(|t| t.to_string())
                .collect(),
            agent_sha256: Default::default(),
            one_host: true,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// `[components.*]` cannot be installed on this host as written: what to change.
    #[error("{host}: [components.{component}] {message}")]
    Source {
        host: String,
        component: &'static str,
        message: String,
    },
    #[error("{host}: {pid1} is PID 1 (macOS): the servers run on Linux only; deploy them to a Linux host")]
    NoSystemd { host: String, pid1: String },
    #[error("{host}: cannot become root: user {user} is not root and `sudo -n` needs a password; set `become = true` with passwordless sudo, or connect as root")]
    NoRoot { host: String, user: String },
    #[error("{host}: {message}")]
    Stack { host: String, message: String },
}

/// Phase 1 on one host: install and start its servers, apply the schema where ClickHouse runs.
pub fn servers_plan(
    host: &Host,
    facts: &Facts,
    components: &Components,
    fleet: &Fleet,
    run_id: &str,
    check_only: bool,
) -> Result<HostPlan, PlanError> {
    preflight(host, facts)?;
    let mut install = Vec::new();
    let mut init = Vec::new();
    if host.roles.contains(&Role::NATS) {
        let (nats_install, nats_run) =
            install::nats_install(host, facts, &components.nats, NATS_SERVICE, NATS_CONFIG)?;
        install.extend(port_steps(&NATS, "nats-server"));
        install.extend(nats_install);
        init.extend(nats_init_steps(host, facts, fleet, nats_run)?);
    } else if let Some(tls) = &fleet.nats_tls {
        // Every NATS client on this host (pipeline or user service) trusts the same CA.
        init.push(super::nats_tls::ca_step(tls, None));
    }
    if host.roles.contains(&Role::CLICKHOUSE) {
        let (clickhouse_install, server) = install_clickhouse::clickhouse_install(
            host,
            facts,
            &components.clickhouse,
            CLICKHOUSE_SERVICE,
        )?;
        // `ss` shows the first 15 characters of a process name.
        install.extend(port_steps(&CLICKHOUSE, "clickhouse-serv"));
        install.extend(clickhouse_install);
        let version = clickhouse_version_for_configs(facts, &components.clickhouse);
        init.extend(clickhouse_init_steps(host, facts, fleet, &version, server)?);
    }
    install.extend(super::pipeline::install_steps(host, facts, fleet));
    let install = install::one_package_transaction(install);
    Ok(HostPlan {
        format: PLAN_FORMAT,
        host: host.name.clone(),
        run_id: run_id.to_string(),
        state_dir: STATE_DIR.into(),
        check_only,
        diff: false,
        layers: vec![
            Layer {
                name: LayerName::Install,
                steps: install,
            },
            Layer {
                name: LayerName::Init,
                steps: init,
            },
        ],
    })
}

/// Phase 2, on one NATS node once every node is up: the streams, then a check that they exist.
pub fn streams_plan(host: &Host, fleet: &Fleet, run_id: &str, check_only: bool) -> HostPlan {
    let streams = stack::nats::streams_with_replicas(fleet.replicas, &fleet.stream_limits);
    HostPlan::one_layer(
        &host.name,
        run_id,
        STATE_DIR,
        check_only,
        LayerName::Init,
        vec![
            Step {
                id: "init.nats.cluster-health".into(),
                title: "NATS cluster healthy (JetStream meta leader)".into(),
                action: nats_healthz(""),
                notify: vec![],
            },
            Step {
                id: "init.nats.streams".into(),
                title: "create or update JetStream streams".into(),
                action: Action::NatsStreams {
                    url: format!("nats://127.0.0.1:{}", NATS.port("client")),
                    streams,
                },
                notify: vec![],
            },
        ],
    )
}

fn preflight(host: &Host, facts: &Facts) -> Result<(), PlanError> {
    // Without systemd the agent supervises the servers itself (plan/service.rs).
    if facts.init == crate::facts::Init::Launchd {
        return Err(PlanError::NoSystemd {
            host: host.name.clone(),
            pid1: if facts.pid1.is_empty() {
                "unknown".into()
            } else {
                facts.pid1.clone()
            },
        });
    }
    if !(facts.is_root || (host.become_ && facts.passwordless_sudo)) {
        return Err(PlanError::NoRoot {
            host: host.name.clone(),
            user: facts.user.clone(),
        });
    }
    Ok(())
}

/// The component's ports checked before installing: free, or held by `process` of its unit.
fn port_steps(component: &Component, process: &str) -> Vec<Step> {
    component
        .ports
        .iter()
        .filter(|p| p.checked_before_install)
        .map(|p| Step {
            id: format!("install.{}.port-{}", component.name, p.number),
            title: format!("port {} ({}) free or ours", p.number, p.purpose),
            action: Action::PortFree {
                port: p.number,
                service: p.purpose.to_string(),
                allowed_processes: vec![process.to_string()],
                our_unit: Some(component.unit.to_string()),
            },
            notify: vec![],
        })
        .collect()
}

fn stack_error(host: &Host, e: impl std::fmt::Display) -> PlanError {
    PlanError::Stack {
        host: host.name.clone(),
        message: e.to_string(),
    }
}

const NATS_SERVICE: &str = "init.nats.service";
use crate::stack::nats::CONFIG_FILE as NATS_CONFIG;

/// `run`: how the install layer's server runs (the package's unit gets a drop-in; a release
/// brought its own unit, written by the install layer).
fn nats_init_steps(
    host: &Host,
    facts: &Facts,
    fleet: &Fleet,
    run: NatsRun,
) -> Result<Vec<Step>, PlanError> {
    let all: Vec<String> = fleet.nats_nodes.iter().map(|(_, a)| a.clone()).collect();
    let mut input = NatsConfigInput::new(host.name.clone());
    // The JetStream store's size cap, when the host's vars set one.
    if host.vars.contains_key("nats_max_store_gib") {
        let gib = super::pipeline::positive_var(host, "nats_max_store_gib", 10, "GiB")?;
        input.max_file_store_bytes = u64::from(gib) << 30;
    }
    input.routes = if all.len() > 1 {
        stack::nats::peer_addresses(&host.private_address, &all)
    } else {
        Vec::new()
    };
    input.credentials = Some(fleet.nats.clone());
    input.tls = fleet.nats_tls.is_some();
    let listen =
        stack::nats::listen_address(&host.private_address, &facts.addresses, fleet.one_host);
    input.listen = listen.address.clone();
    let config = stack::nats::render_config(&input).map_err(|e| stack_error(host, e))?;
    let secret = |id: &str, path: &str, content: String| Step {
        id: id.into(),
        title: format!("render {path}"),
        action: Action::File {
            path: path.into(),
            content: format!("{content}\n"),
            mode: 0o600,
            owner: None,
        },
        notify: vec![],
    };
    let mut steps = Vec::new();
    if let Some(tls) = &fleet.nats_tls {
        steps.extend(super::nats_tls::server_steps(tls, NATS_SERVICE));
    }
    steps.extend([
        // Kept for the next deploy, which derives the same passwords from it.
        secret(
            "init.nats.secret",
            stack::nats::SECRET_FILE,
            fleet.nats.secret().to_string(),
        ),
        // How the agent on this host logs in (streams, replica checks).
        secret(
            "init.nats.admin-password",
            stack::nats::ADMIN_PASSWORD_FILE,
            fleet.nats.password(stack::nats::NatsUser::Admin),
        ),
        Step {
            id: "init.nats.store-dir".into(),
            title: format!("JetStream store {}", input.store_dir),
            action: Action::Directory {
                path: input.store_dir.clone(),
                owner: Some("nats".into()),
                mode: 0o750,
            },
            notify: vec![],
        },
        Step {
            id: "init.nats.config".into(),
            title: format!(
                "render {NATS_CONFIG} (listening on {}: {})",
                listen.address, listen.why
            ),
            // It holds the users' passwords: readable by the server's group only.
            action: Action::File {
                path: NATS_CONFIG.into(),
                content: config.text,
                mode: 0o640,
                owner: Some("root:nats".into()),
            },
            notify: vec![NATS_SERVICE.into()],
        },
    ]);
    // A drop-in points the package's own unit at our config: the package's files stay untouched.
    let server = Server {
        step_id: NATS_SERVICE,
        name: NATS.unit,
        user: NATS.accounts[0].name,
        command: &[run.binary, "-c", NATS_CONFIG],
        drop_in_step: run.package_unit.then_some("init.nats.unit"),
    };
    steps.extend(service_steps(facts.init, &server, &steps));
    steps.push(Step {
        id: "init.nats.health".into(),
        // Up with JetStream on. Full health (a meta leader) needs the other nodes too: it is
        // checked after the barrier, before the streams.
        title: "NATS /healthz (JetStream enabled)".into(),
        action: nats_healthz("?js-enabled-only=true"),
        notify: vec![],
    });
    Ok(steps)
}

const CLICKHOUSE_SERVICE: &str = "init.clickhouse.service";

/// The version the configs are rendered for: the one the install layer puts in place (a
/// pinned release or push), else the installed one, else what the OS package will bring
/// (Debian 12: 18.16). The schema itself is rendered by the agent for the version the
/// running server reports.
fn clickhouse_version_for_configs(facts: &Facts, source: &Source) -> ClickHouseVersion {
    let pinned = match source {
        Source::Release { version, .. } => Some(
            version
                .as_deref()
                .unwrap_or(super::components::CLICKHOUSE_PINNED),
        ),
        Source::Push { version, .. } => version.as_deref(),
        Source::Os {} => None,
    };
    let known = pinned
        .or(facts.installed.clickhouse_server.as_deref())
        .and_then(|v| ClickHouseVersion::parse(v.trim_start_matches('v')).ok());
    known.unwrap_or_else(|| ClickHouseVersion::parse("18.16.1").expect("a valid version literal"))
}

fn clickhouse_init_steps(
    host: &Host,
    facts: &Facts,
    fleet: &Fleet,
    version: &ClickHouseVersion,
    server_binary: &str,
) -> Result<Vec<Step>, PlanError> {
    let listen = stack::clickhouse::listen_config(
        version,
        &ListenConfigInput::loopback_and(&host.private_address),
    )
    .map_err(|e| stack_error(host, e))?;
    let mut user = UsersConfigInput::marketprism(fleet.clickhouse_password.clone());
    for address in &fleet.storage_addresses {
        user.allow(address);
    }
    let users =
        stack::clickhouse::users_config(version, &user).map_err(|e| stack_error(host, e))?;
    // users.d holds the password hash: readable by the server's group only.
    let file = |id: &str, path: String, content: String, mode: u32, notify: bool| Step {
        id: id.into(),
        title: format!("render {path}"),
        action: Action::File {
            owner: (mode == 0o640).then(|| "root:clickhouse".to_string()),
            path,
            content,
            mode,
        },
        notify: if notify {
            vec![CLICKHOUSE_SERVICE.into()]
        } else {
            vec![]
        },
    };
    let mut steps = vec![
        // A reinstall over a surviving `clickhouse` user does not recreate it: make sure.
        Step {
            id: "init.clickhouse.data-dir".into(),
            title: "ClickHouse data /var/lib/clickhouse".into(),
            action: Action::Directory {
                path: CLICKHOUSE_DATA_DIR.into(),
                owner: Some("clickhouse".into()),
                mode: 0o750,
            },
            notify: vec![],
        },
        file(
            "init.clickhouse.secret",
            CLICKHOUSE_SECRET_PATH.into(),
            format!("{}\n", fleet.clickhouse_password),
            0o600,
            false,
        ),
        file(
            "init.clickhouse.listen",
            format!("/etc/clickhouse-server/{}", listen.name),
            listen.text,
            0o644,
            true,
        ),
        file(
            "init.clickhouse.users",
            format!("/etc/clickhouse-server/{}", users.name),
            users.text,
            0o640,
            true,
        ),
    ];
    // The package's unit already runs this command line: no drop-in.
    let server = Server {
        step_id: CLICKHOUSE_SERVICE,
        name: CLICKHOUSE.unit,
        user: CLICKHOUSE.accounts[0].name,
        command: &[server_binary, "--config=/etc/clickhouse-server/config.xml"],
        drop_in_step: None,
    };
    steps.extend(service_steps(facts.init, &server, &steps));
    steps.extend([
        Step {
            id: "init.clickhouse.health".into(),
            title: "ClickHouse /ping".into(),
            action: Action::WaitHttp {
                url: CLICKHOUSE.health_url().unwrap_or_default(),
                expect_json: None,
                timeout_secs: CLICKHOUSE.health_deadline.as_secs(),
                log_unit: Some(CLICKHOUSE.unit.into()),
            },
            notify: vec![],
        },
        Step {
            id: "init.clickhouse.schema".into(),
            title: "schema marketprism_hot (8 tables)".into(),
            action: Action::ClickHouseSchema {
                url: format!("http://127.0.0.1:{}/", CLICKHOUSE.port("http")),
                user: CLICKHOUSE_USER.into(),
                password: Some(fleet.clickhouse_password.clone()),
            },
            notify: vec![],
        },
    ]);
    Ok(steps)
}

/// NATS `/healthz` (with `query`) answering `{"status":"ok"}` within 60 s.
fn nats_healthz(query: &str) -> Action {
    Action::WaitHttp {
        url: format!("{}{query}", NATS.health_url().unwrap_or_default()),
        expect_json: Some(JsonExpectation {
            field: "status".into(),
            equals: "ok".into(),
        }),
        timeout_secs: NATS.health_deadline.as_secs(),
        log_unit: Some(NATS.unit.into()),
    }
}

#[cfg(test)]
#[path = "security_tests.rs"]
mod security_tests;
