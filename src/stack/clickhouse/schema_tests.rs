use super::*;
use crate::stack::clickhouse::tables::TABLES;

fn schema(v: &str) -> Schema {
    schema_statements(&ClickHouseVersion::parse(v).unwrap()).unwrap()
}

fn sql<'a>(s: &'a Schema, name: &str) -> &'a str {
    &s.statements
        .iter()
        .find(|st| st.name == name)
        .unwrap_or_else(|| panic!("no statement {name}"))
        .sql
}

/// All statements as one script (`;` after each), as kept in tests/fixtures/stack/ and used for
/// the checks against real servers.
fn script(s: &Schema) -> String {
    s.statements
        .iter()
        .map(|st| format!("{};\n", st.sql))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Compares with a fixture; `MP_STACK_BLESS=1 cargo test --lib stack` rewrites it.
fn check_fixture(name: &str, got: &str) {
    let path = format!("{}/tests/fixtures/stack/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("MP_STACK_BLESS").is_some() {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(got, want, "{path} differs (MP_STACK_BLESS=1 to rewrite)");
}

#[test]
fn modern_trades_exactly() {
    let s = schema("23.8.2.7");
    assert_eq!(s.rendering, SchemaRendering::Modern);
    assert_eq!(
        sql(&s, "create table trades"),
        "CREATE TABLE IF NOT EXISTS marketprism_hot.trades
(
    timestamp DateTime64(3, 'UTC') CODEC(Delta, ZSTD),
    exchange LowCardinality(String) CODEC(ZSTD),
    market_type LowCardinality(String) CODEC(ZSTD),
    symbol LowCardinality(String) CODEC(ZSTD),
    trade_id String,
    price Decimal64(8),
    quantity Decimal64(8),
    side LowCardinality(String),
    is_maker Bool DEFAULT false,
    trade_time DateTime64(3, 'UTC'),
    data_source LowCardinality(String) DEFAULT 'marketprism',
    created_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree()
PARTITION BY (toYYYYMM(timestamp), exchange)
ORDER BY (timestamp, exchange, symbol, trade_id)
TTL toDateTime(timestamp) + INTERVAL 3 DAY DELETE
SETTINGS index_granularity = 8192"
    );
}

#[test]
fn legacy_trades_exactly() {
    let s = schema("18.16.1+ds-7.4");
    assert_eq!(s.rendering, SchemaRendering::Legacy);
    assert_eq!(
        sql(&s, "create table trades"),
        "CREATE TABLE IF NOT EXISTS marketprism_hot.trades
(
    timestamp DateTime('UTC'),
    exchange String,
    market_type String,
    symbol String,
    trade_id String,
    price Decimal64(8),
    quantity Decimal64(8),
    side String,
    is_maker UInt8 DEFAULT 0,
    trade_time DateTime('UTC'),
    data_source String DEFAULT 'marketprism',
    created_at DateTime('UTC') DEFAULT now()
)
ENGINE = MergeTree()
PARTITION BY (toYYYYMM(timestamp), exchange)
ORDER BY (timestamp, exchange, symbol, trade_id)
SETTINGS index_granularity = 8192"
    );
}

#[test]
fn legacy_volatility_indices_exactly() {
    assert_eq!(
        sql(&schema("18.16.1"), "create table volatility_indices"),
        "CREATE TABLE IF NOT EXISTS marketprism_hot.volatility_indices
(
    timestamp DateTime('UTC'),
    exchange String,
    market_type String,
    symbol String,
    index_value Decimal64(8),
    underlying_asset String,
    maturity_date Date,
    data_source String DEFAULT 'marketprism',
    created_at DateTime('UTC') DEFAULT now()
)
ENGINE = MergeTree()
PARTITION BY (toYYYYMM(timestamp), exchange)
ORDER BY (timestamp, exchange, symbol)
SETTINGS index_granularity = 8192"
    );
}

#[test]
fn database_first_then_all_eight_tables() {
    for v in ["18.16.1", "25.10.1.3832"] {
        let s = schema(v);
        let names: Vec<&str> = s.statements.iter().map(|st| st.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "create database marketprism_hot",
                "create table orderbooks",
                "create table trades",
                "create table funding_rates",
                "create table open_interests",
                "create table liquidations",
                "create table lsr_top_positions",
                "create table lsr_all_accounts",
                "create table volatility_indices",
            ]
        );
        assert_eq!(
            s.statements[0].sql,
            "CREATE DATABASE IF NOT EXISTS marketprism_hot"
        );
    }
}

#[test]
fn one_idempotent_statement_per_string() {
    for v in ["18.16.1", "23.8.2.7"] {
        for st in schema(v).statements {
            assert!(!st.sql.contains(';'), "{}: has a semicolon", st.name);
            assert!(
                st.sql.starts_with("CREATE DATABASE IF NOT EXISTS ")
                    || st
                        .sql
                        .starts_with("CREATE TABLE IF NOT EXISTS marketprism_hot."),
                "{}",
                st.name
            );
            assert_eq!(st.sql.trim(), st.sql, "{}: stray whitespace", st.name);
            assert!(!st.sql.contains("ALTER"), "{}", st.name);
        }
    }
}

#[test]
fn legacy_uses_nothing_18_16_lacks() {
    for st in schema("18.16.1").statements {
        for word in [
            "DateTime64",
            "Bool",
            "LowCardinality",
            "CODEC",
            "TTL",
            "now64",
        ] {
            assert!(!st.sql.contains(word), "{}: contains {word}", st.name);
        }
    }
}

#[test]
fn column_names_identical_across_renderings() {
    let modern = expected_columns(SchemaRendering::Modern);
    let legacy = expected_columns(SchemaRendering::Legacy);
    let names = |m: &BTreeMap<String, Vec<(String, String)>>| -> Vec<(String, Vec<String>)> {
        m.iter()
            .map(|(t, cols)| (t.clone(), cols.iter().map(|(n, _)| n.clone()).collect()))
            .collect()
    };
    assert_eq!(names(&modern), names(&legacy));
    assert_eq!(modern.len(), 8);
    // ...and the statements list the same columns in the same order.
    for (v, r) in [
        ("18.16.1", SchemaRendering::Legacy),
        ("23.8", SchemaRendering::Modern),
    ] {
        let s = schema(v);
        for t in &TABLES {
            let body = sql(&s, &format!("create table {}", t.name));
            let in_sql: Vec<&str> = body
                .lines()
                .filter(|l| l.starts_with("    "))
                .map(|l| l.split_whitespace().next().unwrap())
                .collect();
            let expected = expected_columns(r);
            let want: Vec<&str> = expected[t.name].iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(in_sql, want, "{v} {}", t.name);
        }
    }
}

#[test]
fn expected_columns_use_reported_type_spellings() {
    let modern = expected_columns(SchemaRendering::Modern);
    let pairs = |t: &str| -> Vec<(&str, &str)> {
        modern[t]
            .iter()
            .map(|(n, ty)| (n.as_str(), ty.as_str()))
            .collect()
    };
    assert_eq!(
        pairs("open_interests"),
        [
            ("timestamp", "DateTime64(3, 'UTC')"),
            ("exchange", "LowCardinality(String)"),
            ("market_type", "LowCardinality(String)"),
            ("symbol", "LowCardinality(String)"),
            ("open_interest", "Decimal(18, 8)"),
            ("open_interest_value", "Decimal(18, 8)"),
            ("count", "UInt64"),
            ("data_source", "LowCardinality(String)"),
            ("created_at", "DateTime64(3, 'UTC')"),
        ]
    );
    let legacy = expected_columns(SchemaRendering::Legacy);
    let trades: Vec<(&str, &str)> = legacy["trades"]
        .iter()
        .map(|(n, ty)| (n.as_str(), ty.as_str()))
        .collect();
    assert_eq!(
        trades,
        [
            ("timestamp", "DateTime('UTC')"),
            ("exchange", "String"),
            ("market_type", "String"),
            ("symbol", "String"),
            ("trade_id", "String"),
            ("price", "Decimal(18, 8)"),
            ("quantity", "Decimal(18, 8)"),
            ("side", "String"),
            ("is_maker", "UInt8"),
            ("trade_time", "DateTime('UTC')"),
            ("data_source", "String"),
            ("created_at", "DateTime('UTC')"),
        ]
    );
}

#[test]
fn whole_schemas_match_fixtures() {
    let legacy = schema("18.16.1");
    let modern = schema("23.8.2.7");
    check_fixture("schema-legacy.sql", &script(&legacy));
    check_fixture("schema-modern.sql", &script(&modern));
    // 25.10 renders exactly like 23.8.
    assert_eq!(schema("25.10.1.3832").statements, modern.statements);
    assert_eq!(schema("21.11").statements, legacy.statements);
}

#[test]
fn schema_carries_the_reason() {
    let s = schema("18.16.1");
    assert!(
        s.reason.starts_with("ClickHouse 18.16.1 < 21.12: "),
        "{}",
        s.reason
    );
    assert!(s.reason.contains("NOT expired"));
}

fn owned(cols: &[(&str, &str)]) -> Vec<(String, String)> {
    cols.iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

#[test]
fn column_mismatches_reports_each_difference() {
    let expected = owned(&[("a", "UInt8"), ("b", "String"), ("c", "Date")]);
    assert!(column_mismatches("t", &expected, &expected).is_empty());
    assert_eq!(
        column_mismatches(
            "t",
            &expected,
            &owned(&[("a", "UInt16"), ("c", "Date"), ("z", "String")])
        ),
        [
            "t.a: type is UInt16, expected UInt8",
            "t.b: missing (expected String)",
            "t.z: unexpected column (String)",
        ]
    );
    assert_eq!(
        column_mismatches(
            "t",
            &expected,
            &owned(&[("b", "String"), ("a", "UInt8"), ("c", "Date")])
        ),
        ["t: columns are in another order (b, a, c), expected (a, b, c)"]
    );
}
