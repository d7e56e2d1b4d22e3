//! The two pipeline services (collector and hot storage) as a host runs them: their config
//! files (the contract `mp-remote service … --config FILE` reads, see `pipeline::config`) and
//! their systemd units. Pure: data in, text out.

use std::time::Duration;

use serde::Serialize;

use crate::pipeline::config::{Endpoints, SourceConfig, SourceKind};

use super::component::{Account, Component, DataDir, Origin, Port, Probe, Rolling};
use super::managed::{with_marker, CommentStyle};

/// The two services mp-remote runs itself; their data is [`STORAGE`] and [`COLLECTOR`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PipelineService {
    Collector,
    Storage,
}

impl PipelineService {
    pub const ALL: [PipelineService; 2] = [Self::Storage, Self::Collector];

    pub fn component(self) -> &'static Component {
        match self {
            Self::Collector => &COLLECTOR,
            Self::Storage => &STORAGE,
        }
    }

    /// The `mp-remote service NAME` argument, the role and the key in status reports.
    pub fn name(self) -> &'static str {
        self.component().name
    }

    /// The systemd unit and the supervised service's name.
    pub fn unit(self) -> &'static str {
        self.component().unit
    }

    /// `/health` answers JSON with a `status` field here.
    pub fn health_port(self) -> u16 {
        self.component().port("health")
    }

    /// Prometheus metrics.
    pub fn metrics_port(self) -> u16 {
        self.component().port("metrics")
    }

    pub fn config_path(self) -> String {
        format!("{CONFIG_DIR}/{}.toml", self.name())
    }
}

/// A pipeline service as a component: its own unit, health and metrics ports, no data of its
/// own (what it handles lives in NATS and ClickHouse), the release the deploy pushed.
const fn service(
    name: &'static str,
    unit: &'static str,
    ports: &'static [Port],
    health_port: u16,
    config_files: &'static [&'static str],
    rolling: Rolling,
) -> Component {
    Component {
        name,
        role: name,
        unit,
        ports,
        health: Probe::Http {
            port: health_port,
            path: "/health",
            json_status: Some(("status", "healthy")),
        },
        health_deadline: Duration::from_secs(60),
        config_files,
        data_dirs: &[],
        log_dirs: &[],
        accounts: &[Account {
            name: SERVICE_USER,
            owns_data: false,
        }],
        origin: Origin::Release,
        binaries: &[],
        restart: ("always", 2),
        rolling,
        endpoint: ("http", "health", "/health"),
        status_calls: &[],
    }
}

pub const STORAGE: Component = Component {
    // The ids it stored lately, saved at a stop (its unit's StateDirectory=).
    data_dirs: &[DataDir {
        path: "/var/lib/mp-storage",
        owner: SERVICE_USER,
    }],
    ..service(
        "storage",
        "mp-storage",
        &[
            Port {
                number: 8085,
                key: "health",
                purpose: "hot storage",
                checked_before_install: true,
            },
            Port {
                number: 9094,
                key: "metrics",
                purpose: "hot storage metrics",
                checked_before_install: false,
            },
        ],
        8085,
        &[
            "/etc/marketprism/storage.toml",
            "/etc/systemd/system/mp-storage.service",
        ],
        // Consumers are shared: one at a time keeps the others draining the streams.
        Rolling::OneAtATime,
    )
};

pub const COLLECTOR: Component = service(
    "collector",
    "mp-collector",
    &[
        Port {
            number: 8087,
            key: "health",
            purpose: "collector",
            checked_before_install: true,
        },
        Port {
            number: 9093,
            key: "metrics",
            purpose: "collector metrics",
            checked_before_install: false,
        },
    ],
    8087,
    &[
        "/etc/marketprism/collector.toml",
        "/etc/systemd/system/mp-collector.service",
    ],
    Rolling::Batches,
);

/// Where mp-remote's own config files go (the packages' own files are left alone).
pub const CONFIG_DIR: &str = "/etc/marketprism";

/// The account both services run as, and its home.
pub const SERVICE_USER: &str = "marketprism";
pub const SERVICE_HOME: &str = "/var/lib/marketprism";

/// Where the storage reads the ClickHouse password: its own copy, readable by its account
/// only (the ClickHouse host's copy stays root's).
pub const STORAGE_PASSWORD_FILE: &str = "/etc/marketprism/storage-clickhouse-password";

/// Where a pipeline service reads its NATS password: its own file, readable by its account.
pub fn nats_password_file(service: PipelineService) -> String {
    format!("{CONFIG_DIR}/{}-nats-password", service.name())
}

/// `[nats]` of a service's config: who it connects as and where its password is on the host
/// (never the password itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NatsLogin {
    pub user: String,
    pub password_file: String,
    pub inbox_prefix: String,
    /// NATS speaks TLS: the CA file on the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// What the collector's config is made from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectorConfigInput {
    /// Goes into every message (`collector_id`): the host's name.
    pub id: String,
    pub nats_urls: Vec<String>,
    pub nats: Option<NatsLogin>,
    /// Synthetic messages per second, all data types together.
    pub rate: u32,
    /// Where the data comes from, as the inventory's `collector` tables say.
    #[serde(skip)]
    pub source: SourceConfig,
}

/// What the storage's config is made from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StorageConfigInput {
    pub nats_urls: Vec<String>,
    pub nats: Option<NatsLogin>,
    /// ClickHouse's HTTP interface (`http://ADDRESS:8123`).
    pub clickhouse_url: String,
    pub clickhouse_user: String,
    /// Where the password is on the host; never in the config itself.
    pub password_file: String,
}

#[derive(Serialize)]
struct CollectorFile<'a> {
    id: &'a str,
    nats_urls: &'a [String],
    health_listen: String,
    metrics_listen: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    nats: Option<&'a NatsLogin>,
    source: SourceFile,
}

/// `[source]`: only what differs from the collector's defaults, so the file of a default
/// synthetic collector stays as it always was (and a re-deploy changes nothing).
#[derive(Serialize)]
struct SourceFile {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exchanges: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    symbols: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    types: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    book_depth: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    book_interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stall_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    binance: Option<Endpoints>,
    #[serde(skip_serializing_if = "Option::is_none")]
    okx: Option<Endpoints>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deribit: Option<Endpoints>,
}

impl SourceFile {
    fn of(rate: u32, source: &SourceConfig) -> SourceFile {
        let defaults = SourceConfig::default();
        let differs = |a: bool| if a { Some(()) } else { None };
        let live = source.kind == SourceKind::Exchanges;
        let endpoints = |e: &Endpoints| (*e != Endpoints::default()).then(|| e.clone());
        let duration = |d: std::time::Duration| humantime::format_duration(d).to_string();
        SourceFile {
            kind: if live { "exchanges" } else { "synthetic" },
            rate: (!live).then_some(rate),
            seed: (!live).then_some(1),
            exchanges: differs(source.exchanges != defaults.exchanges || live)
                .map(|_| source.exchanges.iter().map(|e| e.as_str()).collect()),
            symbols: differs(source.symbols != defaults.symbols || live)
                .map(|_| source.symbols.clone()),
            types: live.then(|| source.types.iter().map(|t| t.as_str()).collect()),
            book_depth: live.then_some(source.book_depth),
            book_interval: live.then(|| duration(source.book_interval)),
            stall_after: live.then(|| duration(source.stall_after)),
            binance: endpoints(&source.binance),
            okx: endpoints(&source.okx),
            deribit: endpoints(&source.deribit),
        }
    }
}

#[derive(Serialize)]
struct StorageFile<'a> {
    nats_urls: &'a [String],
    health_listen: String,
    metrics_listen: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    nats: Option<&'a NatsLogin>,
    clickhouse: StorageClickHouse<'a>,
}

#[derive(Serialize)]
struct StorageClickHouse<'a> {
    url: &'a str,
    database: &'static str,
    user: &'a str,
    password_file: &'a str,
}

fn listen(port: u16) -> String {
    format!("0.0.0.0:{port}")
}

/// `collector.toml`, with the managed marker. Serialised by `toml`, so any name quotes safely.
pub fn collector_config(input: &CollectorConfigInput) -> String {
    let service = PipelineService::Collector;
    let file = CollectorFile {
        id: &input.id,
        nats_urls: &input.nats_urls,
        health_listen: listen(service.health_port()),
        metrics_listen: listen(service.metrics_port()),
        nats: input.nats.as_ref(),
        source: SourceFile::of(input.rate, &input.source),
    };
    managed_toml(&file)
}

/// `storage.toml`, with the managed marker.
pub fn storage_config(input: &StorageConfigInput) -> String {
    let service = PipelineService::Storage;
    let file = StorageFile {
        nats_urls: &input.nats_urls,
        health_listen: listen(service.health_port()),
        metrics_listen: listen(service.metrics_port()),
        nats: input.nats.as_ref(),
        clickhouse: StorageClickHouse {
            url: &input.clickhouse_url,
            database: "marketprism_hot",
            user: &input.clickhouse_user,
            password_file: &input.password_file,
        },
    };
    managed_toml(&file)
}

fn managed_toml(file: &impl Serialize) -> String {
    let text = toml::to_string(file).expect("plain structs always serialise to TOML");
    with_marker(CommentStyle::Hash, &text)
}

/// The command line a host runs the service with (`binary`: the current release).
pub fn command(service: PipelineService, binary: &str) -> Vec<String> {
    vec![
        binary.to_string(),
        "service".into(),
        service.name().into(),
        "--config".into(),
        service.config_path(),
    ]
}

/// The systemd unit: restarts on any exit but a bad config (exit 2: restarting cannot fix it,
/// and the journal says what is wrong), stops with SIGTERM so storage finishes its batch and
/// acks.
pub fn unit(service: PipelineService, binary: &str) -> String {
    let description = match service {
        PipelineService::Collector => "MarketPrism collector",
        PipelineService::Storage => "MarketPrism hot storage",
    };
    with_marker(
        CommentStyle::Hash,
        &format!(
            "[Unit]
Description={description} (installed by mp-remote)
After=network-online.target nats-server.service clickhouse-server.service
Wants=network-online.target

[Service]
Type=simple
User={SERVICE_USER}
Group={SERVICE_USER}
ExecStart={command}
Restart=always
RestartSec=2
RestartPreventExitStatus=2
KillSignal=SIGTERM
TimeoutStopSec=30
LimitNOFILE=65536{state}

[Install]
WantedBy=multi-user.target
",
            command = command(service, binary).join(" "),
            // Storage keeps the ids it stored across a restart (pipeline::storage::seen).
            state = match service {
                PipelineService::Storage => "\nStateDirectory=mp-storage",
                PipelineService::Collector => "",
            }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::managed_marker_ok;

    fn strip_marker(text: &str) -> &str {
        text.split_once('\n').expect("a marker line").1
    }

    #[test]
    fn collector_config_is_the_contract() {
        let text = collector_config(&CollectorConfigInput {
            id: "mp-collector-1".into(),
            nats_urls: vec!["nats://10.0.0.1:4222".into(), "nats://10.0.0.2:4222".into()],
            nats: None,
            rate: 40,
            source: SourceConfig::default(),
        });
        assert!(managed_marker_ok(&text), "{text}");
        assert_eq!(
            strip_marker(&text),
            r#"id = "mp-collector-1"
nats_urls = ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"]
health_listen = "0.0.0.0:8087"
metrics_listen = "0.0.0.0:9093"

[source]
kind = "synthetic"
rate = 40
seed = 1
"#
        );
    }

    #[test]
    fn storage_config_names_the_password_file_never_the_password() {
        let text = storage_config(&StorageConfigInput {
            nats_urls: vec!["nats://127.0.0.1:4222".into()],
            nats: None,
            clickhouse_url: "http://127.0.0.1:8123".into(),
            clickhouse_user: "marketprism".into(),
            password_file: "/etc/marketprism/storage-clickhouse-password".into(),
        });
        assert_eq!(
            strip_marker(&text),
            r#"nats_urls = ["nats://127.0.0.1:4222"]
health_listen = "0.0.0.0:8085"
metrics_listen = "0.0.0.0:9094"

[clickhouse]
url = "http://127.0.0.1:8123"
database = "marketprism_hot"
user = "marketprism"
password_file = "/etc/marketprism/storage-clickhouse-password"
"#
        );
    }

    #[test]
    fn names_that_need_quoting_stay_valid_toml() {
        let text = collector_config(&CollectorConfigInput {
            id: "odd \"name\"\\".into(),
            nats_urls: vec![],
            nats: None,
            rate: 1,
            source: SourceConfig::default(),
        });
        let parsed: toml::Table = toml::from_str(strip_marker(&text)).expect("valid TOML");
        assert_eq!(parsed["id"].as_str(), Some("odd \"name\"\\"));
    }

    #[test]
    fn unit_runs_the_current_release_as_the_service_user() {
        let text = unit(
            PipelineService::Storage,
            "/opt/marketprism/current/mp-remote",
        );
        assert!(text.contains(
            "ExecStart=/opt/marketprism/current/mp-remote service storage --config /etc/marketprism/storage.toml\n"
        ));
        assert!(text.contains("User=marketprism\n"));
        assert!(text.contains("Restart=always\n"));
    }
}
