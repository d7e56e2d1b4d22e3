use super::*;

fn collector(text: &str) -> Result<CollectorConfig, ConfigError> {
    parse_collector(text, Path::new("/etc/marketprism/collector.toml"))
}

fn storage(text: &str) -> Result<StorageConfig, ConfigError> {
    parse_storage(text, Path::new("/etc/marketprism/storage.toml"))
}

const FULL_COLLECTOR: &str = r#"# managed by mp-remote
id = "mp-1"
nats_urls = ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"]
health_listen = "0.0.0.0:8087"
metrics_listen = "0.0.0.0:9093"
buffer = 10000
[source]
kind = "synthetic"
rate = 40
seed = 1
exchanges = ["binance", "okx", "deribit"]
symbols = ["BTC-USDT", "ETH-USDT"]
"#;

const FULL_STORAGE: &str = r#"nats_urls = ["nats://10.0.0.1:4222"]
health_listen = "0.0.0.0:8085"
metrics_listen = "0.0.0.0:9094"
batch_size = 1000
flush_interval = "1s"
consumer_prefix = "mp-storage"
[clickhouse]
url = "http://127.0.0.1:8123"
database = "marketprism_hot"
user = "marketprism"
password_file = "/etc/marketprism/clickhouse-password"
"#;

#[test]
fn full_collector_file() {
    let c = collector(FULL_COLLECTOR).unwrap();
    assert_eq!(c.id, "mp-1");
    assert_eq!(c.nats_urls.len(), 2);
    assert_eq!(c.health_listen.port(), 8087);
    assert_eq!(c.metrics_listen.port(), 9093);
    assert_eq!(c.buffer, 10_000);
    assert_eq!(c.source, SourceConfig::default());
}

#[test]
fn minimal_collector_file_gets_defaults() {
    let c = collector("id = \"h1\"\nnats_urls = [\"nats://127.0.0.1:4222\"]\n").unwrap();
    assert_eq!(c.health_listen, "0.0.0.0:8087".parse().unwrap());
    assert_eq!(c.metrics_listen, "0.0.0.0:9093".parse().unwrap());
    assert_eq!(c.buffer, 10_000);
    assert_eq!(c.source.kind, SourceKind::Synthetic);
    assert_eq!(c.source.rate, 40);
    assert_eq!(c.source.exchanges, Exchange::ALL);
    assert_eq!(c.source.symbols, ["BTC-USDT", "ETH-USDT"]);
    // A partial [source] keeps the other defaults.
    let c =
        collector("id = \"h1\"\nnats_urls = [\"nats://a:4222\"]\n[source]\nrate = 500\n").unwrap();
    assert_eq!(c.source.rate, 500);
    assert_eq!(c.source.seed, 1);
}

#[test]
fn full_storage_file() {
    let s = storage(FULL_STORAGE).unwrap();
    assert_eq!(s.batch_size, 1000);
    assert_eq!(s.flush_interval, Duration::from_secs(1));
    assert_eq!(s.consumer_prefix, "mp-storage");
    assert_eq!(s.clickhouse.user, "marketprism");
    assert_eq!(
        s.clickhouse.password_file,
        Path::new("/etc/marketprism/clickhouse-password")
    );
}

#[test]
fn minimal_storage_file_gets_defaults() {
    let s = storage(
        "nats_urls = [\"nats://127.0.0.1:4222\"]\n[clickhouse]\nurl = \"http://127.0.0.1:8123\"\n\
         password_file = \"/p\"\n",
    )
    .unwrap();
    assert_eq!(s.health_listen.port(), 8085);
    assert_eq!(s.metrics_listen.port(), 9094);
    assert_eq!(s.batch_size, 5000);
    assert_eq!(s.flush_interval, Duration::from_secs(1));
    assert_eq!(s.clickhouse.database, "marketprism_hot");
    assert_eq!(s.clickhouse.user, "default");
}

/// (file text, expected key, expected words in the message, expected line)
fn assert_error(e: ConfigError, key: &str, words: &[&str], line: Option<usize>) {
    let text = e.to_string();
    assert_eq!(e.key.as_deref(), Some(key), "{text}");
    for w in words {
        assert!(text.contains(w), "{text:?} lacks {w:?}");
    }
    assert!(text.starts_with("/etc/marketprism/"), "{text}");
    if let Some(line) = line {
        assert_eq!(e.position.map(|p| p.0), Some(line), "{text}");
    }
}

#[test]
fn unknown_key_is_named_with_its_line() {
    let text = FULL_COLLECTOR.replace("seed = 1", "sead = 1");
    let e = collector(&text).unwrap_err();
    assert_error(
        e,
        "source.sead",
        &["unknown field `sead`", "seed"],
        Some(10),
    );
    let e = storage(&FULL_STORAGE.replace("batch_size", "batchsize")).unwrap_err();
    assert_error(e, "batchsize", &["unknown field `batchsize`"], Some(4));
}

#[test]
fn wrong_type_names_key_and_expected_type() {
    let e = collector(&FULL_COLLECTOR.replace("rate = 40", "rate = \"fast\"")).unwrap_err();
    assert_error(e, "source.rate", &["invalid type", "u32"], Some(9));
    let e = storage(&FULL_STORAGE.replace("\"1s\"", "\"soon\"")).unwrap_err();
    assert_error(e, "flush_interval", &["\"1s\""], Some(5));
    let e = collector(&FULL_COLLECTOR.replace("\"0.0.0.0:8087\"", "8087")).unwrap_err();
    assert_error(e, "health_listen", &["socket address"], Some(4));
    let e = collector(&FULL_COLLECTOR.replace("\"okx\"", "\"kraken\"")).unwrap_err();
    assert_error(e, "source.exchanges", &["kraken", "binance"], Some(11));
}

#[test]
fn missing_required_key_is_named() {
    let e = collector("nats_urls = [\"nats://a:4222\"]\n").unwrap_err();
    assert!(e.to_string().contains("missing field `id`"), "{e}");
    let e = storage("nats_urls = [\"nats://a:4222\"]\n[clickhouse]\nurl = \"http://a:8123\"\n")
        .unwrap_err();
    assert!(
        e.to_string().contains("missing field `password_file`"),
        "{e}"
    );
}

#[test]
fn values_that_parse_but_cannot_work() {
    let cases: [(&str, &str, &str); 5] = [
        ("rate = 40", "rate = 0", "source.rate"),
        ("buffer = 10000", "buffer = 0", "buffer"),
        ("id = \"mp-1\"", "id = \"mp 1\"", "id"),
        (
            "symbols = [\"BTC-USDT\", \"ETH-USDT\"]",
            "symbols = [\"BTC.USDT\"]",
            "source.symbols",
        ),
        (
            "nats_urls = [\"nats://10.0.0.1:4222\", \"nats://10.0.0.2:4222\"]",
            "nats_urls = []",
            "nats_urls",
        ),
    ];
    for (from, to, key) in cases {
        let e = collector(&FULL_COLLECTOR.replace(from, to)).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert!(e.position.is_some(), "{e}");
    }
    let e = storage(&FULL_STORAGE.replace("http://127.0.0.1:8123", "127.0.0.1:8123")).unwrap_err();
    assert_error(e, "clickhouse.url", &["http://"], Some(8));
    let e = storage(&FULL_STORAGE.replace("batch_size = 1000", "batch_size = 0")).unwrap_err();
    assert_error(e, "batch_size", &["at least 1"], Some(4));
}

#[test]
fn error_display_is_file_line_column_key_message() {
    let e = collector(&FULL_COLLECTOR.replace("buffer = 10000", "buffer = -1")).unwrap_err();
    assert_eq!(
        e.to_string().lines().next().unwrap(),
        "/etc/marketprism/collector.toml:6:10: buffer: invalid value: integer `-1`, expected usize"
    );
}

#[test]
fn unreadable_file_names_it() {
    let e = load(Path::new("/nonexistent/collector.toml"), parse_collector).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/collector.toml: cannot read"),
        "{e}"
    );
}

/// The files the deploy renders (`stack::pipeline`) are what the services read.
#[test]
fn rendered_configs_parse() {
    use crate::stack::pipeline::{
        collector_config, storage_config, CollectorConfigInput, StorageConfigInput,
    };
    let urls = vec![
        "nats://10.0.0.1:4222".to_string(),
        "nats://10.0.0.2:4222".to_string(),
    ];
    let text = collector_config(&CollectorConfigInput {
        id: "mp-1".into(),
        nats_urls: urls.clone(),
        nats: None,
        rate: 40,
        source: SourceConfig::default(),
    });
    let c = collector(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        (c.id.as_str(), c.source.rate, c.nats_urls.len()),
        ("mp-1", 40, 2)
    );
    // A live source renders every key it reads, and reads back the same.
    let mut live = SourceConfig {
        kind: SourceKind::Exchanges,
        exchanges: vec![Exchange::Okx],
        symbols: vec!["SOL-USDT".into()],
        types: vec![DataType::Trade, DataType::FundingRate],
        book_depth: 5,
        book_interval: Duration::from_millis(500),
        stall_after: Duration::from_secs(90),
        ..SourceConfig::default()
    };
    live.okx.ws_url = Some("ws://10.0.0.9:9000/okx".into());
    let text = collector_config(&CollectorConfigInput {
        id: "mp-1".into(),
        nats_urls: urls.clone(),
        nats: None,
        rate: 40,
        source: live.clone(),
    });
    let c = collector(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        SourceConfig {
            rate: live.rate,
            seed: live.seed,
            ..c.source
        },
        live,
        "{text}"
    );
    let text = storage_config(&StorageConfigInput {
        nats_urls: urls,
        nats: None,
        clickhouse_url: "http://10.0.0.3:8123".into(),
        clickhouse_user: "marketprism".into(),
        password_file: "/etc/marketprism/clickhouse-password".into(),
    });
    let s = storage(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(s.clickhouse.user, "marketprism");
    assert_eq!(s.health_listen.port(), 8085);
}
