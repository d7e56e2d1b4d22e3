//! The two services' config files (`collector.toml`, `storage.toml`): the contract between the
//! deploy, which renders them, and the services, which read them. Unknown keys are errors (a
//! typo must not silently fall back to a default), and every error names the file, the key and
//! what was expected.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::message::{DataType, Exchange};
use super::nats_auth::NatsAuthConfig;

/// A config file that cannot be used. Named fields, so callers and tests can look at the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based line and column of the offending text, when known.
    pub position: Option<(usize, usize)>,
    /// Dotted key (`source.rate`), when known.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": ")?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// `collector.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// Goes into every message (`collector_id`) and every `Nats-Msg-Id`.
    pub id: String,
    pub nats_urls: Vec<String>,
    /// Who it connects as (None: anonymously, to a server without authorization).
    #[serde(default)]
    pub nats: Option<NatsAuthConfig>,
    #[serde(default = "default_collector_health")]
    pub health_listen: SocketAddr,
    #[serde(default = "default_collector_metrics")]
    pub metrics_listen: SocketAddr,
    /// Messages generated but not yet acked by JetStream, at most.
    #[serde(default = "default_buffer")]
    pub buffer: usize,
    #[serde(default)]
    pub source: SourceConfig,
}

/// `[source]` of `collector.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    pub kind: SourceKind,
    /// Synthetic: messages per second, all data types together.
    pub rate: u32,
    /// Synthetic: the generator's seed.
    pub seed: u64,
    pub exchanges: Vec<Exchange>,
    pub symbols: Vec<String>,
    /// Exchanges: the data types to collect (each exchange takes those it serves).
    pub types: Vec<DataType>,
    /// Exchanges: order book levels published per side.
    pub book_depth: u32,
    /// Exchanges: how often each synced order book is published.
    #[serde(with = "humantime_serde_local")]
    pub book_interval: Duration,
    /// Exchanges: a stream silent for this long makes health `degraded`, naming it.
    #[serde(with = "humantime_serde_local")]
    pub stall_after: Duration,
    pub binance: Endpoints,
    pub okx: Endpoints,
    pub deribit: Endpoints,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            kind: SourceKind::Synthetic,
            rate: 40,
            seed: 1,
            exchanges: Exchange::ALL.to_vec(),
            symbols: vec!["BTC-USDT".into(), "ETH-USDT".into()],
            types: DataType::ALL.to_vec(),
            book_depth: 20,
            book_interval: Duration::from_secs(1),
            stall_after: Duration::from_secs(60),
            binance: Endpoints::default(),
            okx: Endpoints::default(),
            deribit: Endpoints::default(),
        }
    }
}

impl SourceConfig {
    pub fn endpoints(&self, exchange: Exchange) -> &Endpoints {
        match exchange {
            Exchange::Binance => &self.binance,
            Exchange::Okx => &self.okx,
            Exchange::Deribit => &self.deribit,
        }
    }
}

/// `[source.binance]` and the like: the exchange's endpoints, for mirrors, proxies and tests.
/// Binance serves USD-M futures from other hosts (`futures_*`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoints {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rest_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub futures_ws_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub futures_rest_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Synthetic,
    Exchanges,
}

/// `storage.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub nats_urls: Vec<String>,
    #[serde(default)]
    pub nats: Option<NatsAuthConfig>,
    #[serde(default = "default_storage_health")]
    pub health_listen: SocketAddr,
    #[serde(default = "default_storage_metrics")]
    pub metrics_listen: SocketAddr,
    /// Messages per fetch and per insert, at most.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// How long storage waits to fill a batch when fewer than a tenth of one are ready (a
    /// trickle); a backlog, its tail included, is stored without waiting.
    #[serde(default = "default_flush_interval", with = "humantime_serde_local")]
    pub flush_interval: Duration,
    /// Durable consumer names are `{prefix}-MARKET_DATA` and `{prefix}-ORDERBOOK_SNAP`.
    #[serde(default = "default_consumer_prefix")]
    pub consumer_prefix: String,
    pub clickhouse: ClickHouseConfig,
}

/// `[clickhouse]` of `storage.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    pub url: String,
    #[serde(default = "default_database")]
    pub database: String,
    #[serde(default = "default_user")]
    pub user: String,
    /// Its first line is the password: the password itself never sits in a config file.
    pub password_file: PathBuf,
}

fn default_collector_health() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8087))
}
fn default_collector_metrics() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 9093))
}
fn default_storage_health() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8085))
}
fn default_storage_metrics() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 9094))
}
fn default_buffer() -> usize {
    10_000
}
/// Rows per insert at most. ClickHouse makes files for every part an insert creates (per
/// partition, per column), so its CPU, not storage's, bounds small inserts: 5000 stored a
/// backlog 1.4x faster than 1000 (`bench/pipeline.sh`); latency stays bounded by
/// `flush_interval` when messages are few.
fn default_batch_size() -> usize {
    5000
}
fn default_flush_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_consumer_prefix() -> String {
    "mp-storage".into()
}
fn default_database() -> String {
    "marketprism_hot".into()
}
fn default_user() -> String {
    "default".into()
}

/// `flush_interval = "1s"`: humantime text, so the file reads like the rest of mp-remote.
mod humantime_serde_local {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "{e}: expected a duration such as \"1s\" or \"500ms\", got {text:?}"
            ))
        })
    }
}

/// Parses and checks `collector.toml` (`path` only names it in errors).
pub fn parse_collector(text: &str, path: &Path) -> Result<CollectorConfig, ConfigError> {
    let config: CollectorConfig = parse_toml(text, path)?;
    let fail = |key: &str, message: String| invalid(path, text, key, message);
    check_id(&config.id).map_err(|m| fail("id", m))?;
    check_nats_urls(&config.nats_urls).map_err(|m| fail("nats_urls", m))?;
    if config.buffer == 0 {
        return Err(fail("buffer", "expected at least 1, got 0".into()));
    }
    let source = &config.source;
    if source.rate == 0 {
        return Err(fail(
            "source.rate",
            "expected at least 1 message per second, got 0".into(),
        ));
    }
    if source.exchanges.is_empty() {
        return Err(fail(
            "source.exchanges",
            "expected at least one of \"binance\", \"okx\", \"deribit\"".into(),
        ));
    }
    if source.symbols.is_empty() {
        return Err(fail(
            "source.symbols",
            "expected at least one symbol such as \"BTC-USDT\"".into(),
        ));
    }
    for symbol in &source.symbols {
        check_subject_token(symbol).map_err(|m| fail("source.symbols", m))?;
    }
    if source.kind == SourceKind::Exchanges {
        check_exchange_source(source).map_err(|(key, m)| fail(&key, m))?;
    }
    Ok(config)
}

/// The checks a live source needs beyond the synthetic one's: what the inventory check
/// refuses too (`stack::collector_source`), repeated so a hand-edited file is caught.
fn check_exchange_source(source: &SourceConfig) -> Result<(), (String, String)> {
    use crate::pipeline::source::exchanges::{produced, split_symbol};
    for symbol in &source.symbols {
        if split_symbol(symbol).is_none() {
            return Err((
                "source.symbols".into(),
                format!("expected BASE-QUOTE in capitals such as \"BTC-USDT\", got {symbol:?}"),
            ));
        }
    }
    if source.types.is_empty() {
        return Err((
            "source.types".into(),
            "expected at least one data type such as \"trade\"".into(),
        ));
    }
    if produced(&source.exchanges, &source.types).is_empty() {
        return Err((
            "source.types".into(),
            "none of these types is served by the configured exchanges".into(),
        ));
    }
    if !(1..=400).contains(&source.book_depth) {
        return Err((
            "source.book_depth".into(),
            format!("expected 1 to 400 levels, got {}", source.book_depth),
        ));
    }
    if source.book_interval < Duration::from_millis(100) {
        return Err((
            "source.book_interval".into(),
            "expected at least \"100ms\"".into(),
        ));
    }
    if source.stall_after < Duration::from_secs(1) {
        return Err((
            "source.stall_after".into(),
            "expected at least \"1s\"".into(),
        ));
    }
    for exchange in Exchange::ALL {
        let e = source.endpoints(exchange);
        let name = exchange.as_str();
        let urls = [
            ("ws_url", &e.ws_url, &["ws://", "wss://"][..]),
            ("rest_url", &e.rest_url, &["http://", "https://"][..]),
            (
                "futures_ws_url",
                &e.futures_ws_url,
                &["ws://", "wss://"][..],
            ),
            (
                "futures_rest_url",
                &e.futures_rest_url,
                &["http://", "https://"][..],
            ),
        ];
        for (key, url, schemes) in urls {
            let Some(url) = url else { continue };
            if !schemes.iter().any(|s| url.starts_with(s)) || url.contains(char::is_whitespace) {
                return Err((
                    format!("source.{name}.{key}"),
                    format!(
                        "expected a URL starting with {}, got {url:?}",
                        schemes.join(" or ")
                    ),
                ));
            }
            if key.starts_with("futures") && exchange != Exchange::Binance {
                return Err((
                    format!("source.{name}.{key}"),
                    format!("only binance has separate futures endpoints; {name} uses ws_url"),
                ));
            }
        }
    }
    Ok(())
}

/// Parses and checks `storage.toml` (`path` only names it in errors).
pub fn parse_storage(text: &str, path: &Path) -> Result<StorageConfig, ConfigError> {
    let config: StorageConfig = parse_toml(text, path)?;
    let fail = |key: &str, message: String| invalid(path, text, key, message);
    check_nats_urls(&config.nats_urls).map_err(|m| fail("nats_urls", m))?;
    if config.batch_size == 0 {
        return Err(fail("batch_size", "expected at least 1, got 0".into()));
    }
    if config.flush_interval.is_zero() {
        return Err(fail(
            "flush_interval",
            "expected a duration above 0 such as \"1s\"".into(),
        ));
    }
    check_subject_token(&config.consumer_prefix).map_err(|m| fail("consumer_prefix", m))?;
    let ch = &config.clickhouse;
    if !(ch.url.starts_with("http://") || ch.url.starts_with("https://")) {
        return Err(fail(
            "clickhouse.url",
            format!(
                "expected ClickHouse's HTTP interface such as \"http://127.0.0.1:8123\", got {:?}",
                ch.url
            ),
        ));
    }
    if ch.database.is_empty()
        || !ch
            .database
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(fail(
            "clickhouse.database",
            format!(
                "expected a plain name such as \"marketprism_hot\", got {:?}",
                ch.database
            ),
        ));
    }
    Ok(config)
}

/// Reads a config file, then parses it with `parse`.
pub fn load<T>(
    path: &Path,
    parse: fn(&str, &Path) -> Result<T, ConfigError>,
) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        position: None,
        key: None,
        message: format!("cannot read: {e}"),
    })?;
    parse(&text, path)
}

fn parse_toml<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let span = e.span();
        let position = span.as_ref().map(|s| line_column(text, s.start));
        let key = span.and_then(|s| key_at(text, s.start));
        ConfigError {
            path: path.to_path_buf(),
            position,
            key,
            message: e.message().trim().to_string(),
        }
    })
}

/// An error about a value that parsed but is not acceptable, pointing at its line if found.
fn invalid(path: &Path, text: &str, key: &str, message: String) -> ConfigError {
    ConfigError {
        path: path.to_path_buf(),
        position: find_key(text, key).map(|offset| line_column(text, offset)),
        key: Some(key.to_string()),
        message,
    }
}

fn check_id(id: &str) -> Result<(), String> {
    // The id goes into `Nats-Msg-Id` (`id:boot:type:seq`) and `trade_id` (`id-boot-seq`).
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "expected letters, digits, '-', '_' or '.' (such as \"mp-1\"), got {id:?}"
        ));
    }
    Ok(())
}

fn check_nats_urls(urls: &[String]) -> Result<(), String> {
    if urls.is_empty() {
        return Err("expected at least one URL such as \"nats://10.0.0.1:4222\"".into());
    }
    for url in urls {
        if url.parse::<async_nats::ServerAddr>().is_err() {
            return Err(format!(
                "expected a NATS URL such as \"nats://10.0.0.1:4222\", got {url:?}"
            ));
        }
    }
    Ok(())
}

/// A symbol or a consumer name becomes one token of a subject or a JetStream API subject.
fn check_subject_token(token: &str) -> Result<(), String> {
    if token.is_empty()
        || token
            .chars()
            .any(|c| c.is_whitespace() || ".*>".contains(c))
    {
        return Err(format!(
            "expected a name without spaces, '.', '*' or '>', got {token:?}"
        ));
    }
    Ok(())
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The dotted key whose line holds `offset`: the `[table]` header above it plus the text
/// before `=` (toml's type errors point at the value and do not name the key).
fn key_at(text: &str, offset: usize) -> Option<String> {
    let mut table = String::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let end = start + line.len();
        let trimmed = line.trim();
        if let Some(header) = trimmed.strip_prefix('[').and_then(|h| h.split(']').next()) {
            table = header.trim().to_string();
        }
        if offset < end || end == text.len() {
            let name = trimmed.split('=').next()?.trim().trim_matches('"');
            if name.is_empty() || name.starts_with('[') || name.starts_with('#') {
                return (!table.is_empty()).then_some(table);
            }
            return Some(if table.is_empty() {
                name.to_string()
            } else {
                format!("{table}.{name}")
            });
        }
        start = end;
    }
    None
}

/// Where a dotted key is written (`source.rate`: `rate =` under `[source]`).
fn find_key(text: &str, key: &str) -> Option<usize> {
    let (table, name) = match key.rsplit_once('.') {
        Some((table, name)) => (table, name),
        None => ("", key),
    };
    let mut current = String::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if let Some(header) = trimmed.strip_prefix('[').and_then(|h| h.split(']').next()) {
            current = header.trim().to_string();
        } else if current == table
            && trimmed
                .split('=')
                .next()
                .map(|k| k.trim().trim_matches('"'))
                == Some(name)
            && trimmed.contains('=')
        {
            return Some(start + (line.len() - line.trim_start().len()));
        }
        start += line.len();
    }
    None
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
