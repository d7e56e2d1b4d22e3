//! The pipeline services in a host's plan: the release they run (install layer), their configs,
//! units and health (start layer), and the proof that data flows (verify layer).

use crate::facts::Facts;
use crate::inventory::{Host, Role};
use crate::pipeline::config::SourceKind;
use crate::pipeline::message::DataType;
use crate::pipeline::source::exchanges;
use crate::stack::clickhouse::COMPONENT as CLICKHOUSE;
use crate::stack::nats::{NatsUser, COMPONENT as NATS, TLS_CA_FILE};
use crate::stack::pipeline::{self, PipelineService, SERVICE_USER};

use super::build::{Fleet, PlanError, CLICKHOUSE_USER};
use super::model::{Action, FlowCheck, HostPlan, JsonExpectation, LayerName, Step};
use super::service::{service_steps, Server};

pub use crate::stack::pipeline::{nats_password_file, STORAGE_PASSWORD_FILE};
/// Synthetic messages per second per collector, unless the host's `collector_rate` var says.
pub const DEFAULT_COLLECTOR_RATE: u32 = 40;
/// How long the services get to answer healthy, and data to reach every table.
const HEALTH_DEADLINE_SECS: u64 = 60;
const FLOW_DEADLINE_SECS: u32 = 90;

/// The tables a synthetic collector fills: all eight.
pub const TABLES: [&str; 8] = [
    "orderbooks",
    "trades",
    "funding_rates",
    "open_interests",
    "liquidations",
    "lsr_top_positions",
    "lsr_all_accounts",
    "volatility_indices",
];

/// The tables layer 5 expects rows in, for these collectors: all eight for a synthetic one;
/// for a live one the tables of the steady types (trades, order books) its exchanges serve.
pub fn flow_tables(collectors: &[&Host]) -> Vec<String> {
    let mut types: Vec<DataType> = Vec::new();
    for host in collectors {
        let source = &host.collector.source;
        match source.kind {
            SourceKind::Synthetic => types.extend(DataType::ALL),
            SourceKind::Exchanges => types.extend(
                exchanges::produced(&source.exchanges, &source.types)
                    .into_iter()
                    .filter(|t| exchanges::steady(*t)),
            ),
        }
    }
    // In the order of TABLES, once each.
    TABLES
        .iter()
        .filter(|table| types.iter().any(|t| t.table() == **table))
        .map(|t| t.to_string())
        .collect()
}

/// The streams of a live collector that layer 5 checks in its health instead of rows: the
/// slow types (funding, open interest, ratios, volatility) arrive too rarely to wait for.
pub fn polled_streams(host: &Host) -> Vec<String> {
    let source = &host.collector.source;
    if source.kind != SourceKind::Exchanges {
        return Vec::new();
    }
    let (feeds, polls) = exchanges::build(source);
    let mut streams: Vec<String> = feeds.iter().flat_map(|f| f.streams()).collect();
    streams.extend(polls.iter().map(|p| p.stream.clone()));
    streams.retain(|s| DataType::of_subject(s).is_some_and(|t| !exchanges::steady(t)));
    streams.sort();
    streams.dedup();
    streams
}

/// The pipeline services this host runs, storage first.
pub fn services_of(host: &Host) -> Vec<PipelineService> {
    PipelineService::ALL
        .into_iter()
        .filter(|s| match s {
            PipelineService::Storage => host.roles.contains(&Role::STORAGE),
            PipelineService::Collector => host.roles.contains(&Role::COLLECTOR),
        })
        .collect()
}

pub(crate) fn service_step_id(service: PipelineService) -> String {
    format!("start.{}.service", service.name())
}

/// `{deploy_dir}/current/mp-remote`: what the units run; the release step moves it.
pub fn current_binary(facts: &Facts) -> String {
    format!("{}/current/mp-remote", facts.deploy_dir)
}

/// Install layer: the account, the release of this very binary, the services' ports.
pub fn install_steps(host: &Host, facts: &Facts, fleet: &Fleet) -> Vec<Step> {
    let services = services_of(host);
    if services.is_empty() {
        return Vec::new();
    }
    let sha256 = fleet
        .agent_sha256
        .get(&host.name)
        .cloned()
        .unwrap_or_else(|| "ab".repeat(32));
    let mut steps = vec![
        Step {
            id: "install.app.user".into(),
            title: format!("system user {SERVICE_USER}"),
            action: Action::SystemUser {
                name: SERVICE_USER.into(),
                home: crate::stack::pipeline::SERVICE_HOME.into(),
            },
            notify: vec![],
        },
        Step {
            id: "install.app.release".into(),
            title: format!(
                "release {} in {}",
                &sha256[..16.min(sha256.len())],
                facts.deploy_dir
            ),
            action: Action::AppRelease {
                dir: facts.deploy_dir.clone(),
                sha256: sha256.clone(),
            },
            notify: services.iter().map(|s| service_step_id(*s)).collect(),
        },
    ];
    for service in services {
        for (port, what) in [
            (service.health_port(), "health"),
            (service.metrics_port(), "metrics"),
        ] {
            steps.push(Step {
                id: format!("install.{}.port-{port}", service.name()),
                title: format!("port {port} ({} {what}) free or ours", service.name()),
                action: Action::PortFree {
                    port,
                    service: format!("{} {what}", service.name()),
                    allowed_processes: vec!["mp-remote".into()],
                    our_unit: Some(service.unit().into()),
                },
                notify: vec![],
            });
        }
    }
    steps
}

/// Phase 3 on a storage or collector host: configs, units, running, healthy.
pub fn services_plan(
    host: &Host,
    facts: &Facts,
    fleet: &Fleet,
    run_id: &str,
    check_only: bool,
) -> Result<HostPlan, PlanError> {
    let binary = current_binary(facts);
    let mut steps = Vec::new();
    for service in services_of(host) {
        steps.extend(service_start_steps(host, facts, fleet, service, &binary)?);
    }
    Ok(plan_of(host, run_id, check_only, LayerName::Start, steps))
}

fn service_start_steps(
    host: &Host,
    facts: &Facts,
    fleet: &Fleet,
    service: PipelineService,
    binary: &str,
) -> Result<Vec<Step>, PlanError> {
    let name = service.name();
    let service_id = service_step_id(service);
    let notify = vec![service_id.clone()];
    let nats_urls: Vec<String> = fleet
        .nats_nodes
        .iter()
        .map(|(_, address)| NATS.endpoint(address))
        .collect();
    let owned_by_service = Some(format!("root:{SERVICE_USER}"));
    let nats_user = match service {
        PipelineService::Collector => NatsUser::Collector,
        PipelineService::Storage => NatsUser::Storage,
    };
    let password_file = nats_password_file(service);
    let mut steps = vec![Step {
        id: format!("start.{name}.nats-password"),
        title: format!(
            "NATS password of user {} ({password_file})",
            nats_user.name()
        ),
        action: Action::File {
            path: password_file.clone(),
            content: format!("{}\n", fleet.nats.password(nats_user)),
            mode: 0o640,
            owner: owned_by_service.clone(),
        },
        notify: notify.clone(),
    }];
    if let Some(tls) = &fleet.nats_tls {
        steps.push(Step {
            id: format!("start.{name}.nats-ca"),
            title: format!("NATS TLS CA {TLS_CA_FILE}"),
            action: Action::File {
                path: TLS_CA_FILE.into(),
                content: tls.ca_pem.clone(),
                mode: 0o644,
                owner: None,
            },
            notify: notify.clone(),
        });
    }
    let nats = Some(pipeline::NatsLogin {
        user: nats_user.name().into(),
        password_file,
        inbox_prefix: nats_user.inbox_prefix(),
        ca_file: fleet.nats_tls.as_ref().map(|_| TLS_CA_FILE.to_string()),
    });
    let config = match service {
        PipelineService::Collector => pipeline::collector_config(&pipeline::CollectorConfigInput {
            id: host.name.clone(),
            nats_urls,
            nats,
            rate: match host.collector.rate {
                Some(rate) => rate,
                None => collector_rate(host)?,
            },
            source: host.collector.source.clone(),
        }),
        PipelineService::Storage => {
            steps.push(Step {
                id: "start.storage.secret".into(),
                title: format!("ClickHouse password for storage ({STORAGE_PASSWORD_FILE})"),
                action: Action::File {
                    path: STORAGE_PASSWORD_FILE.into(),
                    content: format!("{}\n", fleet.clickhouse_password),
                    mode: 0o640,
                    owner: owned_by_service.clone(),
                },
                notify: notify.clone(),
            });
            pipeline::storage_config(&pipeline::StorageConfigInput {
                nats_urls,
                nats,
                clickhouse_url: clickhouse_url_for(host, fleet),
                clickhouse_user: CLICKHOUSE_USER.into(),
                password_file: STORAGE_PASSWORD_FILE.into(),
            })
        }
    };
    let config_path = service.config_path();
    steps.push(Step {
        id: format!("start.{name}.config"),
        title: format!("render {config_path}"),
        action: Action::File {
            path: config_path,
            content: config,
            mode: 0o640,
            owner: owned_by_service,
        },
        notify: notify.clone(),
    });
    if facts.init == crate::facts::Init::Systemd {
        let path = format!("/etc/systemd/system/{}.service", service.unit());
        steps.push(Step {
            id: format!("start.{name}.unit"),
            title: format!("systemd unit {path}"),
            action: Action::File {
                path,
                content: pipeline::unit(service, binary),
                mode: 0o644,
                owner: None,
            },
            notify: notify.clone(),
        });
    }
    let command = pipeline::command(service, binary);
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    let server = Server {
        step_id: &service_id,
        name: service.unit(),
        user: SERVICE_USER,
        command: &command,
        drop_in_step: None,
    };
    let feeding = steps.clone();
    steps.extend(service_steps(facts.init, &server, &feeding));
    steps.push(Step {
        id: format!("start.{name}.health"),
        title: format!("{name} /health says healthy"),
        action: Action::WaitHttp {
            url: format!("http://127.0.0.1:{}/health", service.health_port()),
            // Parsed JSON, compared whole: "unhealthy" never passes for "healthy".
            expect_json: Some(JsonExpectation {
                field: "status".into(),
                equals: "healthy".into(),
            }),
            timeout_secs: HEALTH_DEADLINE_SECS,
            log_unit: Some(service.unit().into()),
        },
        notify: vec![],
    });
    Ok(steps)
}

/// Phase 4: the collector publishes; data reaches every table (within the host's
/// `verify_timeout_secs` var, default 90).
pub fn verify_plan(
    host: &Host,
    fleet: &Fleet,
    run_id: &str,
    check_only: bool,
) -> Result<HostPlan, PlanError> {
    let flow_deadline = positive_var(host, "verify_timeout_secs", FLOW_DEADLINE_SECS, "seconds")?;
    let mut steps = Vec::new();
    let services = services_of(host);
    if services.contains(&PipelineService::Collector) {
        steps.push(Step {
            id: "verify.collector.publishing".into(),
            title: "collector publishes to NATS".into(),
            action: Action::VerifyPublishing {
                health_url: format!(
                    "http://127.0.0.1:{}/health",
                    PipelineService::Collector.health_port()
                ),
                timeout_secs: 30,
                log_unit: PipelineService::Collector.unit().into(),
                polled_streams: polled_streams(host),
            },
            notify: vec![],
        });
    }
    if services.contains(&PipelineService::Storage) && fleet.collectors > 0 {
        // Monitoring listens on each node's loopback only: this host's own node is read there,
        // the others are for when an operator opened theirs (the check's diagnosis uses what
        // answers).
        let nats_monitor_urls = fleet
            .nats_nodes
            .iter()
            .map(|(name, address)| {
                let address = if *name == host.name {
                    "127.0.0.1"
                } else {
                    address
                };
                format!("http://{address}:{}", NATS.port("monitoring"))
            })
            .collect();
        steps.push(Step {
            id: "verify.storage.data-flow".into(),
            title: if fleet.flow_tables.len() == TABLES.len() {
                "rows arrive in every marketprism_hot table".into()
            } else {
                format!("rows arrive in {}", fleet.flow_tables.join(", "))
            },
            action: Action::VerifyFlow(FlowCheck {
                clickhouse_url: clickhouse_url_for(host, fleet),
                user: CLICKHOUSE_USER.into(),
                password_file: STORAGE_PASSWORD_FILE.into(),
                database: "marketprism_hot".into(),
                tables: fleet.flow_tables.clone(),
                storage_health_url: format!(
                    "http://127.0.0.1:{}/health",
                    PipelineService::Storage.health_port()
                ),
                nats_monitor_urls,
                timeout_secs: flow_deadline.into(),
                log_unit: PipelineService::Storage.unit().into(),
            }),
            notify: vec![],
        });
    }
    Ok(plan_of(host, run_id, check_only, LayerName::Verify, steps))
}

/// The ClickHouse a storage on `host` writes to: its own, else the first ClickHouse host's.
fn clickhouse_url_for(host: &Host, fleet: &Fleet) -> String {
    if host.roles.contains(&Role::CLICKHOUSE) {
        return CLICKHOUSE.endpoint("127.0.0.1");
    }
    let address = fleet
        .clickhouse_nodes
        .first()
        .map(|(_, address)| address.as_str())
        .unwrap_or("127.0.0.1");
    CLICKHOUSE.endpoint(address)
}

/// The host's `collector_rate` var: a positive whole number of messages per second.
fn collector_rate(host: &Host) -> Result<u32, PlanError> {
    positive_var(
        host,
        "collector_rate",
        DEFAULT_COLLECTOR_RATE,
        "messages per second",
    )
}

/// A var holding a positive whole number, or `default` when the host does not set it.
pub(crate) fn positive_var(
    host: &Host,
    name: &str,
    default: u32,
    unit: &str,
) -> Result<u32, PlanError> {
    let Some(value) = host.vars.get(name) else {
        return Ok(default);
    };
    value
        .as_integer()
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v > 0)
        .ok_or_else(|| PlanError::Stack {
            host: host.name.clone(),
            message: format!(
                "vars.{name} = {value}: write a positive whole number of {unit}, e.g. {name} = {default}"
            ),
        })
}

fn plan_of(
    host: &Host,
    run_id: &str,
    check_only: bool,
    layer: LayerName,
    steps: Vec<Step>,
) -> HostPlan {
    HostPlan::one_layer(
        &host.name,
        run_id,
        super::build::STATE_DIR,
        check_only,
        layer,
        steps,
    )
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
