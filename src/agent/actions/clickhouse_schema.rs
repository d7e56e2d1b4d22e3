//! Applies MarketPrism's hot schema over ClickHouse's HTTP interface, then checks the columns.
//!
//! One statement per request (the HTTP interface takes one). The server is asked first which
//! database and tables already exist: those statements are neither run nor reported as changes
//! (they are `IF NOT EXISTS` anyway, so correctness does not depend on it). Afterwards every
//! table's columns are compared with [`expected_columns`]: a table someone created with other
//! columns is a failure, never silently used, and never altered or dropped.
//!
//! Credentials go in `X-ClickHouse-User` / `X-ClickHouse-Key` headers, which both 18.16 and
//! current versions accept. Every request has a timeout; every error is reported.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::agent::outcome::{Outcome, StepError};
use crate::stack::clickhouse::column_mismatches;
use crate::stack::{expected_columns, ClickHouseVersion, SchemaRendering, Statement};

/// The longest a single request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Below the 3 s keep-alive of 18.16, so a pooled connection is never one the server just closed.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

const HINT_NOT_RUNNING: &str =
    "is clickhouse-server running? see `journalctl -u clickhouse-server`";
const HINT_SERVER_LOG: &str =
    "see ClickHouse's message above and its log (/var/log/clickhouse-server/clickhouse-server.err.log)";

/// The plan carries the rendering as `"modern"` / `"legacy"` (how [`SchemaRendering`] displays).
pub fn parse_rendering(s: &str) -> Option<SchemaRendering> {
    match s.trim() {
        "modern" => Some(SchemaRendering::Modern),
        "legacy" => Some(SchemaRendering::Legacy),
        _ => None,
    }
}

/// Creates what `statements` create and is missing, then checks every table's columns against
/// `rendering`. In `check_only` mode nothing is executed; existing tables are still checked.
pub async fn apply(
    url: &str,
    user: &str,
    password: Option<&str>,
    statements: &[Statement],
    rendering: SchemaRendering,
    check_only: bool,
) -> Result<Outcome, StepError> {
    let ch = ClickHouse::new(url, user, password)?;

    let version = ask_version(&ch).await?;
    if version.rendering() != rendering {
        return Err(StepError::new(format!(
            "the plan holds the {rendering} schema, but ClickHouse at {url} is {version}, which \
             needs the {} one",
            version.rendering()
        ))
        .hint(
            "ClickHouse changed since the plan was made; run mp-remote again so the plan \
             matches the installed version",
        ));
    }

    let targets: Vec<Target> = statements.iter().map(|s| Target::of(&s.sql)).collect();
    let databases: BTreeSet<&str> = targets.iter().filter_map(Target::database).collect();
    let mut existing = existing_objects(&ch, &databases).await?;

    let mut todo: Vec<(&Statement, &Target)> = Vec::new();
    let mut present: Vec<&Target> = Vec::new();
    for (s, t) in statements.iter().zip(&targets) {
        if existing.contains(t) {
            present.push(t);
        } else {
            todo.push((s, t));
        }
    }

    let mut done: Vec<&Target> = Vec::new();
    if !check_only {
        for (s, t) in &todo {
            tracing::debug!(statement = %s.name, "clickhouse: executing");
            ch.execute(&s.name, &s.sql).await.map_err(|e| {
                if done.is_empty() {
                    e
                } else {
                    let tail = format!(
                        "{}\nalready done in this run: {}",
                        e.output_tail,
                        describe(&done)
                    );
                    e.with_output(&tail)
                }
            })?;
            existing.insert((*t).clone());
            done.push(t);
        }
    }

    // Check the columns of every table that exists now (in check mode: that already existed).
    let tables: Vec<(&str, &str)> = targets
        .iter()
        .filter(|t| existing.contains(t))
        .filter_map(|t| match t {
            Target::Table { database, table } => Some((database.as_str(), table.as_str())),
            _ => None,
        })
        .collect();
    let mismatches = column_problems(&ch, &tables, rendering).await?;
    if !mismatches.is_empty() {
        let created = if done.is_empty() {
            String::new()
        } else {
            format!("created in this run: {}", describe(&done))
        };
        return Err(mismatch_error(rendering, &mismatches).with_output(&created));
    }

    let created: Vec<&Target> = todo.iter().map(|(_, t)| *t).collect();
    Ok(summarise(
        rendering, &version, &created, &present, check_only,
    ))
}

/// What one statement creates, read from its SQL, so the server can be asked whether it exists.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Database(String),
    Table {
        database: String,
        table: String,
    },
    /// Not a `CREATE ... IF NOT EXISTS` of a database or a qualified table: always executed.
    Other(String),
}

impl Target {
    fn of(sql: &str) -> Target {
        let words: Vec<&str> = sql.split_whitespace().take(6).collect();
        let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
        let is = |i: usize, w: &str| upper.get(i).is_some_and(|u| u == w);
        let guarded = is(0, "CREATE") && is(2, "IF") && is(3, "NOT") && is(4, "EXISTS");
        let name = words
            .get(5)
            .map(|w| w.split('(').next().unwrap_or_default().replace('`', ""));
        match (guarded, name) {
            (true, Some(name)) if is(1, "DATABASE") && ident(&name) => Target::Database(name),
            (true, Some(name)) if is(1, "TABLE") => match name.split_once('.') {
                Some((db, t)) if ident(db) && ident(t) => Target::Table {
                    database: db.into(),
                    table: t.into(),
                },
                _ => Target::Other(sql.into()),
            },
            _ => Target::Other(sql.into()),
        }
    }

    fn database(&self) -> Option<&str> {
        match self {
            Target::Database(d) | Target::Table { database: d, .. } => Some(d),
            Target::Other(_) => None,
        }
    }
}

/// A plain identifier: safe to put in a query's string literal as is.
fn ident(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// "database marketprism_hot and 8 tables", "2 tables", "database marketprism_hot".
fn describe(targets: &[&Target]) -> String {
    let mut parts = Vec::new();
    let dbs: Vec<&str> = targets
        .iter()
        .filter_map(|t| match t {
            Target::Database(d) => Some(d.as_str()),
            _ => None,
        })
        .collect();
    if !dbs.is_empty() {
        let noun = if dbs.len() == 1 {
            "database"
        } else {
            "databases"
        };
        parts.push(format!("{noun} {}", dbs.join(", ")));
    }
    let count = |f: fn(&Target) -> bool| targets.iter().filter(|t| f(t)).count();
    let tables = count(|t| matches!(t, Target::Table { .. }));
    if tables > 0 {
        parts.push(plural(tables, "table"));
    }
    let others = count(|t| matches!(t, Target::Other(_)));
    if others > 0 {
        parts.push(plural(others, "other statement"));
    }
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(" and ")
    }
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The step's outcome: `schema legacy: created database marketprism_hot and 8 tables
/// (ClickHouse 18.16.1)`, or `... database marketprism_hot and 8 tables already present ...`.
fn summarise(
    rendering: SchemaRendering,
    version: &ClickHouseVersion,
    created: &[&Target],
    present: &[&Target],
    check_only: bool,
) -> Outcome {
    let on = format!("(ClickHouse {version})");
    if created.is_empty() && present.is_empty() {
        return Outcome::unchanged(format!("schema {rendering}: no statements to apply {on}"));
    }
    if created.is_empty() {
        return Outcome::unchanged(format!(
            "schema {rendering}: {} already present {on}",
            describe(present)
        ));
    }
    let verb = if check_only {
        "would create"
    } else {
        "created"
    };
    let also = if present.is_empty() {
        String::new()
    } else {
        format!("; {} already present", describe(present))
    };
    let changes = created
        .iter()
        .map(|t| match t {
            Target::Database(d) => format!("{verb} database {d}"),
            Target::Table { database, table } => format!("{verb} table {database}.{table}"),
            Target::Other(sql) => {
                let verb = if check_only { "would run" } else { "ran" };
                format!("{verb} {}", first_line(sql, 120))
            }
        })
        .collect();
    Outcome::changed(
        format!(
            "schema {rendering}: {verb} {}{also} {on}",
            describe(created)
        ),
        changes,
    )
}

/// The version the server at `url` reports (`SELECT version()`), to pick the schema rendering.
pub async fn server_version(
    url: &str,
    user: &str,
    password: Option<&str>,
) -> Result<ClickHouseVersion, StepError> {
    ask_version(&ClickHouse::new(url, user, password)?).await
}

async fn ask_version(ch: &ClickHouse<'_>) -> Result<ClickHouseVersion, StepError> {
    #[derive(Deserialize)]
    struct Row {
        version: String,
    }
    let rows: Vec<Row> = ch
        .rows(
            "ask the ClickHouse version",
            "SELECT version() AS version FORMAT JSONEachRow",
        )
        .await?;
    let raw = rows.first().map(|r| r.version.as_str()).unwrap_or_default();
    ClickHouseVersion::parse(raw).map_err(|e| {
        StepError::new(format!(
            "ClickHouse at {} reports no usable version: {e}",
            ch.url
        ))
    })
}

/// Which of the databases in `databases`, and which tables in them, exist already.
async fn existing_objects(
    ch: &ClickHouse<'_>,
    databases: &BTreeSet<&str>,
) -> Result<BTreeSet<Target>, StepError> {
    #[derive(Deserialize)]
    struct Db {
        name: String,
    }
    #[derive(Deserialize)]
    struct Table {
        database: String,
        name: String,
    }
    let mut out = BTreeSet::new();
    if databases.is_empty() {
        return Ok(out);
    }
    let list = in_list(databases.iter().copied());
    let dbs: Vec<Db> = ch
        .rows(
            "list the databases",
            &format!("SELECT name FROM system.databases WHERE name IN ({list}) FORMAT JSONEachRow"),
        )
        .await?;
    out.extend(dbs.into_iter().map(|d| Target::Database(d.name)));
    let tables: Vec<Table> = ch
        .rows(
            "list the tables",
            &format!(
                "SELECT database, name FROM system.tables WHERE database IN ({list}) \
                 FORMAT JSONEachRow"
            ),
        )
        .await?;
    out.extend(tables.into_iter().map(|t| Target::Table {
        database: t.database,
        table: t.name,
    }));
    Ok(out)
}

/// `'a', 'b'`: only ever called with names that passed [`ident`].
fn in_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The tables among `tables` (database, table) whose columns differ from `rendering`'s, as
/// `db.table` with one line per difference. Tables that are not MarketPrism's are not checked.
async fn column_problems(
    ch: &ClickHouse<'_>,
    tables: &[(&str, &str)],
    rendering: SchemaRendering,
) -> Result<Vec<(String, Vec<String>)>, StepError> {
    #[derive(Deserialize)]
    struct Col {
        database: String,
        table: String,
        name: String,
        r#type: String,
    }
    let expected = expected_columns(rendering);
    let checked: Vec<&(&str, &str)> = tables
        .iter()
        .filter(|(_, t)| expected.contains_key(*t))
        .collect();
    if checked.is_empty() {
        return Ok(Vec::new());
    }
    let list = in_list(
        checked
            .iter()
            .map(|(d, _)| *d)
            .collect::<BTreeSet<_>>()
            .into_iter(),
    );
    let cols: Vec<Col> = ch
        .rows(
            "read the tables' columns",
            &format!(
                "SELECT database, table, name, type FROM system.columns WHERE database IN \
                 ({list}) FORMAT JSONEachRow"
            ),
        )
        .await?;
    // system.columns lists each table's columns in table order.
    let mut actual: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    for c in cols {
        actual
            .entry((c.database, c.table))
            .or_default()
            .push((c.name, c.r#type));
    }
    let mut out = Vec::new();
    for (db, table) in checked {
        let have = actual
            .get(&(db.to_string(), table.to_string()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let name = format!("{db}.{table}");
        let lines = column_mismatches(&name, &expected[*table], have);
        if !lines.is_empty() {
            out.push((name, lines));
        }
    }
    Ok(out)
}

/// `mismatches`: (`db.table`, its differences), at least one.
fn mismatch_error(rendering: SchemaRendering, mismatches: &[(String, Vec<String>)]) -> StepError {
    let names: Vec<&str> = mismatches.iter().map(|(t, _)| t.as_str()).collect();
    let lines: Vec<&str> = mismatches
        .iter()
        .flat_map(|(_, l)| l.iter().map(String::as_str))
        .collect();
    let first = names.first().copied().unwrap_or("marketprism_hot.trades");
    StepError::new(format!(
        "{} {} other columns than MarketPrism's {rendering} schema: {}",
        names.join(", "),
        if names.len() == 1 { "has" } else { "have" },
        lines.join("; ")
    ))
    .hint(format!(
        "mp-remote never alters or drops a table: save the data you need, then rename or drop \
         the table yourself (e.g. `RENAME TABLE {first} TO {first}_old`) and run again"
    ))
}

/// A ClickHouse HTTP endpoint with credentials.
struct ClickHouse<'a> {
    client: reqwest::Client,
    url: &'a str,
    user: &'a str,
    password: Option<&'a str>,
}

impl<'a> ClickHouse<'a> {
    fn new(url: &'a str, user: &'a str, password: Option<&'a str>) -> Result<Self, StepError> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build()
            .map_err(|e| StepError::new(format!("cannot set up an HTTP client: {}", chain(&e))))?;
        Ok(ClickHouse {
            client,
            url,
            user,
            password,
        })
    }

    /// Runs one statement; `what` names it in errors. Returns the body of a 200 answer.
    async fn execute(&self, what: &str, sql: &str) -> Result<String, StepError> {
        let mut req = self.client.post(self.url).body(sql.to_string());
        if !self.user.is_empty() {
            req = req.header("X-ClickHouse-User", self.user);
        }
        if let Some(p) = self.password {
            req = req.header("X-ClickHouse-Key", p);
        }
        let transport = |e: reqwest::Error| {
            let kind = if e.is_timeout() {
                Transport::Timeout
            } else if e.is_connect() {
                Transport::Connect
            } else {
                Transport::Other
            };
            transport_failure(what, self.url, kind, &chain(&e))
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(transport)?;
        if status != 200 {
            return Err(http_failure(what, status, &body));
        }
        Ok(body)
    }

    /// Runs a `FORMAT JSONEachRow` query and parses each line as a `T`.
    async fn rows<T: DeserializeOwned>(&self, what: &str, sql: &str) -> Result<Vec<T>, StepError> {
        let body = self.execute(what, sql).await?;
        parse_rows(what, &body)
    }
}

fn parse_rows<T: DeserializeOwned>(what: &str, body: &str) -> Result<Vec<T>, StepError> {
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| {
                // A server error after the 200 status line arrives as plain text in the body.
                StepError::new(format!(
                    "{what} failed: unexpected answer from ClickHouse ({e}): {}",
                    first_line(l, 300)
                ))
                .hint(HINT_SERVER_LOG)
                .with_output(body)
            })
        })
        .collect()
}

/// How a request failed before ClickHouse answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Connect,
    Timeout,
    Other,
}

fn transport_failure(what: &str, url: &str, kind: Transport, detail: &str) -> StepError {
    match kind {
        Transport::Connect => StepError::new(format!(
            "{what} failed: cannot connect to ClickHouse at {url}: {detail}"
        ))
        .hint(HINT_NOT_RUNNING),
        Transport::Timeout => StepError::new(format!(
            "{what} failed: no answer from ClickHouse at {url} within {} s",
            REQUEST_TIMEOUT.as_secs()
        ))
        .hint(format!(
            "{HINT_NOT_RUNNING}; a server that is starting or overloaded answers slowly"
        )),
        Transport::Other => {
            StepError::new(format!("{what} failed: HTTP request to {url}: {detail}"))
                .hint(HINT_NOT_RUNNING)
        }
    }
}

/// A non-200 answer: ClickHouse's error text, classified for the hint.
fn http_failure(what: &str, status: u16, body: &str) -> StepError {
    let text = first_line(body, 500);
    let disk_full = body.contains("No space left on device") || body.contains("Cannot reserve");
    let auth = matches!(status, 401 | 403)
        || [
            "Code: 192,",
            "Code: 193,",
            "Code: 516,",
            "Code: 192.",
            "Code: 193.",
            "Code: 516.",
        ]
        .iter()
        .any(|c| body.contains(c));
    let err = if disk_full {
        StepError::new(format!(
            "{what} failed: disk full on the ClickHouse data path: HTTP {status}: {text}"
        ))
        .hint("free space on the disk that holds ClickHouse's data, then run again")
    } else if auth {
        StepError::new(format!("{what} failed: HTTP {status}: {text}")).hint(
            "ClickHouse refused the credentials: check the ClickHouse user and password in the \
             inventory and the server's users.d",
        )
    } else {
        StepError::new(format!("{what} failed: HTTP {status}: {text}")).hint(HINT_SERVER_LOG)
    };
    err.with_output(body)
}

/// The first non-empty line of `text`, at most `max` characters.
fn first_line(text: &str, max: usize) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("(empty answer)");
    if line.chars().count() > max {
        let cut: String = line.chars().take(max).collect();
        format!("{cut}...")
    } else {
        line.to_string()
    }
}

/// An error with its causes: reqwest's own text ("error sending request") hides the reason.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::event::StepStatus;
    use crate::stack::schema_statements;

    fn legacy() -> Vec<Statement> {
        schema_statements(&ClickHouseVersion::parse("18.16.1").unwrap())
            .unwrap()
            .statements
    }

    #[test]
    fn renderings_parse_as_the_plan_spells_them() {
        assert_eq!(parse_rendering("modern"), Some(SchemaRendering::Modern));
        assert_eq!(parse_rendering("legacy"), Some(SchemaRendering::Legacy));
        assert_eq!(parse_rendering("Legacy"), None);
        for r in [SchemaRendering::Modern, SchemaRendering::Legacy] {
            assert_eq!(parse_rendering(&r.to_string()), Some(r));
        }
    }

    #[test]
    fn targets_come_from_the_rendered_statements() {
        let targets: Vec<Target> = legacy().iter().map(|s| Target::of(&s.sql)).collect();
        assert_eq!(targets[0], Target::Database("marketprism_hot".into()));
        assert_eq!(
            targets[2],
            Target::Table {
                database: "marketprism_hot".into(),
                table: "trades".into()
            }
        );
        assert_eq!(targets.len(), 9);
        assert!(targets[1..]
            .iter()
            .all(|t| matches!(t, Target::Table { .. })));
    }

    #[test]
    fn targets_of_odd_statements() {
        assert_eq!(
            Target::of("create table if not exists `db`.`t`(x UInt8) ENGINE = Memory"),
            Target::Table {
                database: "db".into(),
                table: "t".into()
            }
        );
        for sql in [
            "CREATE TABLE t (x UInt8) ENGINE = Memory",
            "CREATE TABLE IF NOT EXISTS t (x UInt8) ENGINE = Memory",
            "CREATE DATABASE IF NOT EXISTS a'b",
            "ALTER TABLE db.t ADD COLUMN y UInt8",
            "",
        ] {
            assert_eq!(Target::of(sql), Target::Other(sql.into()), "{sql}");
        }
    }

    #[test]
    fn outcome_messages() {
        let v = ClickHouseVersion::parse("18.16.1").unwrap();
        let targets: Vec<Target> = legacy().iter().map(|s| Target::of(&s.sql)).collect();
        let all: Vec<&Target> = targets.iter().collect();
        let o = summarise(SchemaRendering::Legacy, &v, &all, &[], false);
        assert_eq!(o.status, StepStatus::Changed);
        assert_eq!(
            o.message,
            "schema legacy: created database marketprism_hot and 8 tables (ClickHouse 18.16.1)"
        );
        assert_eq!(o.changes.len(), 9);
        assert_eq!(o.changes[0], "created database marketprism_hot");
        assert_eq!(o.changes[2], "created table marketprism_hot.trades");

        let o = summarise(SchemaRendering::Legacy, &v, &[], &all, false);
        assert_eq!(o.status, StepStatus::Ok);
        assert_eq!(
            o.message,
            "schema legacy: database marketprism_hot and 8 tables already present (ClickHouse \
             18.16.1)"
        );

        let o = summarise(SchemaRendering::Legacy, &v, &all[7..], &all[..7], true);
        assert_eq!(
            o.message,
            "schema legacy: would create 2 tables; database marketprism_hot and 6 tables already \
             present (ClickHouse 18.16.1)"
        );
        assert_eq!(
            o.changes,
            [
                "would create table marketprism_hot.lsr_all_accounts",
                "would create table marketprism_hot.volatility_indices"
            ]
        );
        assert_eq!(describe(&all[8..]), "1 table");
    }

    #[test]
    fn http_errors_name_the_statement_and_keep_clickhouse_text() {
        let body = "Code: 62, e.displayText() = DB::Exception: Syntax error: failed at position \
                    8: TABL x, e.what() = DB::Exception\n";
        let e = http_failure("create table trades", 400, body);
        assert_eq!(
            e.message,
            "create table trades failed: HTTP 400: Code: 62, e.displayText() = DB::Exception: \
             Syntax error: failed at position 8: TABL x, e.what() = DB::Exception"
        );
        assert_eq!(e.hint.as_deref(), Some(HINT_SERVER_LOG));
        assert_eq!(e.output_tail, body.trim_end());
    }

    #[test]
    fn a_full_disk_is_reported_as_such() {
        for body in [
            "Code: 74, e.displayText() = DB::ErrnoException: Cannot write to file \
             /var/lib/clickhouse/data/x, errno: 28, strerror: No space left on device",
            "Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space. \
             (NOT_ENOUGH_SPACE)",
        ] {
            let e = http_failure("create table trades", 500, body);
            assert!(
                e.message.starts_with(
                    "create table trades failed: disk full on the ClickHouse data path: HTTP 500"
                ),
                "{}",
                e.message
            );
            assert!(e.hint.unwrap().contains("free space"));
        }
    }

    #[test]
    fn refused_credentials_get_their_own_hint() {
        let e = http_failure(
            "ask the ClickHouse version",
            401,
            "Code: 192, e.displayText() = DB::Exception: Unknown user nobody",
        );
        assert!(e.hint.unwrap().contains("user and password"));
        let e = http_failure(
            "x",
            516,
            "Code: 516. DB::Exception: default: Authentication failed",
        );
        assert!(e.hint.unwrap().contains("user and password"));
    }

    #[test]
    fn transport_errors() {
        let e = transport_failure(
            "ask the ClickHouse version",
            "http://127.0.0.1:8123",
            Transport::Connect,
            "tcp connect error: Connection refused (os error 111)",
        );
        assert_eq!(
            e.message,
            "ask the ClickHouse version failed: cannot connect to ClickHouse at \
             http://127.0.0.1:8123: tcp connect error: Connection refused (os error 111)"
        );
        assert_eq!(e.hint.as_deref(), Some(HINT_NOT_RUNNING));
        let e = transport_failure("x", "http://h:8123", Transport::Timeout, "");
        assert_eq!(
            e.message,
            "x failed: no answer from ClickHouse at http://h:8123 within 10 s"
        );
    }

    #[test]
    fn rows_parse_json_lines_and_refuse_anything_else() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct R {
            name: String,
        }
        let rows: Vec<R> = parse_rows("q", "{\"name\":\"a\"}\n{\"name\":\"b\"}\n").unwrap();
        assert_eq!(rows.len(), 2);
        assert!(parse_rows::<R>("q", "").unwrap().is_empty());
        let e = parse_rows::<R>("q", "{\"name\":\"a\"}\nCode: 241, Memory limit exceeded\n")
            .unwrap_err();
        assert!(
            e.message
                .starts_with("q failed: unexpected answer from ClickHouse"),
            "{}",
            e.message
        );
        assert!(e.message.ends_with("Code: 241, Memory limit exceeded"));
    }

    #[test]
    fn mismatches_are_listed() {
        let e = mismatch_error(
            SchemaRendering::Legacy,
            &[(
                "t.trades".into(),
                vec!["t.trades.price: type is Float64, expected Decimal(18, 8)".into()],
            )],
        );
        assert_eq!(
            e.message,
            "t.trades has other columns than MarketPrism's legacy schema: t.trades.price: type \
             is Float64, expected Decimal(18, 8)"
        );
        let hint = e.hint.unwrap();
        assert!(hint.contains("never alters or drops"));
        assert!(
            hint.contains("`RENAME TABLE t.trades TO t.trades_old`"),
            "{hint}"
        );
        let e = mismatch_error(
            SchemaRendering::Modern,
            &[
                ("a.x".into(), vec!["a.x.c: missing (expected UInt8)".into()]),
                (
                    "a.y".into(),
                    vec!["a.y: columns are in another order".into()],
                ),
            ],
        );
        assert_eq!(
            e.message,
            "a.x, a.y have other columns than MarketPrism's modern schema: a.x.c: missing \
             (expected UInt8); a.y: columns are in another order"
        );
    }

    #[test]
    fn first_line_trims_and_cuts() {
        assert_eq!(first_line("\n  abc  \ndef", 10), "abc");
        assert_eq!(first_line("abcdef", 3), "abc...");
        assert_eq!(first_line(" \n", 30), "(empty answer)");
    }
}

/// Against a real ClickHouse: `MP_TEST_CLICKHOUSE_URL=http://IP:8123 cargo test --lib
/// agent::actions -- --ignored`. Each test uses its own database, dropped at the end.
#[cfg(test)]
mod real {
    use super::*;
    use crate::agent::event::StepStatus;
    use crate::stack::schema_statements;

    fn url() -> String {
        std::env::var("MP_TEST_CLICKHOUSE_URL")
            .expect("set MP_TEST_CLICKHOUSE_URL (e.g. http://192.168.128.2:8123)")
    }

    /// A fresh database name, so tests can run together and again.
    fn fresh_db(tag: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        format!("mptest_{tag}_{}_{nanos}", std::process::id())
    }

    /// The schema for `version`, moved into database `db`.
    fn statements_in(version: &ClickHouseVersion, db: &str) -> Vec<Statement> {
        schema_statements(version)
            .unwrap()
            .statements
            .into_iter()
            .map(|s| Statement {
                name: s.name.replace("marketprism_hot", db),
                sql: s.sql.replace("marketprism_hot", db),
            })
            .collect()
    }

    async fn server(url: &str) -> (ClickHouse<'_>, ClickHouseVersion) {
        let ch = ClickHouse::new(url, "default", None).unwrap();
        let v = ask_version(&ch).await.unwrap();
        (ch, v)
    }

    #[tokio::test]
    #[ignore = "needs a ClickHouse server: MP_TEST_CLICKHOUSE_URL"]
    async fn schema_is_created_then_unchanged() {
        let url = url();
        let (ch, version) = server(&url).await;
        let db = fresh_db("schema");
        let stmts = statements_in(&version, &db);
        let r = version.rendering();

        let check = apply(&url, "default", None, &stmts, r, true).await.unwrap();
        assert_eq!(check.status, StepStatus::Changed);
        assert!(check
            .message
            .contains(&format!("would create database {db} and 8 tables")));
        let dbs: Vec<serde_json::Value> = ch
            .rows(
                "q",
                &format!(
                    "SELECT name FROM system.databases WHERE name = '{db}' FORMAT JSONEachRow"
                ),
            )
            .await
            .unwrap();
        assert!(dbs.is_empty(), "check mode created the database");

        let first = apply(&url, "default", None, &stmts, r, false)
            .await
            .unwrap();
        eprintln!("first: {first:?}");
        assert_eq!(first.status, StepStatus::Changed);
        assert_eq!(
            first.message,
            format!("schema {r}: created database {db} and 8 tables (ClickHouse {version})")
        );
        assert_eq!(first.changes.len(), 9);

        let second = apply(&url, "default", None, &stmts, r, false)
            .await
            .unwrap();
        eprintln!("second: {second:?}");
        assert_eq!(second.status, StepStatus::Ok);
        assert_eq!(
            second.message,
            format!(
                "schema {r}: database {db} and 8 tables already present (ClickHouse {version})"
            )
        );

        ch.execute("drop", &format!("DROP DATABASE {db}"))
            .await
            .unwrap();
    }

    /// The agent's own path: version, rendering, the real `marketprism_hot`. Not dropped: the
    /// server is a throwaway, and a second run of the test must report it present.
    #[tokio::test]
    #[ignore = "needs a ClickHouse server: MP_TEST_CLICKHOUSE_URL"]
    async fn marketprism_hot_as_the_agent_applies_it() {
        let url = url();
        let version = server_version(&url, "default", None).await.unwrap();
        let schema = schema_statements(&version).unwrap();
        let first = apply(
            &url,
            "default",
            None,
            &schema.statements,
            schema.rendering,
            false,
        )
        .await
        .unwrap();
        eprintln!("marketprism_hot: {first:?}");
        let again = apply(
            &url,
            "default",
            None,
            &schema.statements,
            schema.rendering,
            false,
        )
        .await
        .unwrap();
        eprintln!("marketprism_hot again: {again:?}");
        assert_eq!(again.status, StepStatus::Ok);
        assert_eq!(
            again.message,
            format!(
                "schema {}: database marketprism_hot and 8 tables already present (ClickHouse \
                 {version})",
                schema.rendering
            )
        );
    }

    #[tokio::test]
    #[ignore = "needs a ClickHouse server: MP_TEST_CLICKHOUSE_URL"]
    async fn a_table_with_other_columns_fails() {
        let url = url();
        let (ch, version) = server(&url).await;
        let db = fresh_db("mismatch");
        let stmts = statements_in(&version, &db);
        let r = version.rendering();
        ch.execute("db", &format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
        ch.execute(
            "by hand",
            &format!(
                "CREATE TABLE {db}.trades (timestamp DateTime, exchange String, price Float64) \
                 ENGINE = MergeTree() ORDER BY timestamp"
            ),
        )
        .await
        .unwrap();

        let check = apply(&url, "default", None, &stmts, r, true)
            .await
            .unwrap_err();
        eprintln!("check: {check:?}");
        assert!(check.message.contains(&format!(
            "{db}.trades.price: type is Float64, expected Decimal(18, 8)"
        )));

        let e = apply(&url, "default", None, &stmts, r, false)
            .await
            .unwrap_err();
        eprintln!("apply: {e:?}");
        assert!(
            e.message
                .starts_with(&format!("{db}.trades has other columns than MarketPrism's")),
            "{}",
            e.message
        );
        assert!(
            e.message
                .contains(&format!("{db}.trades.market_type: missing")),
            "{}",
            e.message
        );
        assert!(
            e.message
                .contains(&format!("{db}.trades.timestamp: type is DateTime")),
            "{}",
            e.message
        );
        assert!(
            !e.message.contains(&format!("{db}.orderbooks")),
            "{}",
            e.message
        );
        assert!(e.output_tail.contains("7 tables"), "{}", e.output_tail);
        // The other 7 tables were created and the hand-made one left alone.
        let cols: Vec<serde_json::Value> = ch
            .rows("q", &format!("SELECT name FROM system.columns WHERE database = '{db}' AND table = 'trades' FORMAT JSONEachRow"))
            .await
            .unwrap();
        assert_eq!(cols.len(), 3);

        ch.execute("drop", &format!("DROP DATABASE {db}"))
            .await
            .unwrap();
    }

    /// Needs a server whose disk is full, e.g. a full 64 KiB tmpfs mounted over
    /// /var/lib/clickhouse/metadata: `MP_TEST_CLICKHOUSE_FULL_URL`. Passes without it.
    #[tokio::test]
    #[ignore = "needs a ClickHouse server with a full disk: MP_TEST_CLICKHOUSE_FULL_URL"]
    async fn a_full_disk_is_named() {
        let Ok(url) = std::env::var("MP_TEST_CLICKHOUSE_FULL_URL") else {
            eprintln!("MP_TEST_CLICKHOUSE_FULL_URL not set: nothing checked");
            return;
        };
        let version = server_version(&url, "default", None).await.unwrap();
        let db = fresh_db("full");
        let stmts = statements_in(&version, &db);
        let e = apply(&url, "default", None, &stmts, version.rendering(), false)
            .await
            .unwrap_err();
        eprintln!("full: {e:?}");
        assert!(
            e.message.starts_with(&format!(
                "create database {db} failed: disk full on the ClickHouse data path: HTTP "
            )),
            "{}",
            e.message
        );
        assert!(e.hint.unwrap().contains("free space"));
    }

    #[tokio::test]
    #[ignore = "needs a ClickHouse server: MP_TEST_CLICKHOUSE_URL"]
    async fn server_errors_are_reported() {
        let url = url();
        let (ch, version) = server(&url).await;
        let db = fresh_db("errors");
        let bad = vec![
            Statement {
                name: format!("create database {db}"),
                sql: format!("CREATE DATABASE IF NOT EXISTS {db}"),
            },
            Statement {
                name: "create table broken".into(),
                sql: format!(
                    "CREATE TABLE IF NOT EXISTS {db}.broken (x NoSuchType) ENGINE = Memory"
                ),
            },
        ];
        let e = apply(&url, "default", None, &bad, version.rendering(), false)
            .await
            .unwrap_err();
        eprintln!("bad type: {e:?}");
        assert!(
            e.message.starts_with("create table broken failed: HTTP "),
            "{}",
            e.message
        );
        assert!(e.message.contains("NoSuchType"), "{}", e.message);
        assert!(e
            .output_tail
            .ends_with(&format!("already done in this run: database {db}")));

        let e = apply(&url, "nobody", Some("x"), &bad, version.rendering(), false)
            .await
            .unwrap_err();
        eprintln!("bad user: {e:?}");
        assert!(e.hint.unwrap().contains("user and password"));

        let other = match version.rendering() {
            SchemaRendering::Legacy => SchemaRendering::Modern,
            SchemaRendering::Modern => SchemaRendering::Legacy,
        };
        let e = apply(&url, "default", None, &bad, other, false)
            .await
            .unwrap_err();
        eprintln!("wrong rendering: {e:?}");
        assert!(e
            .message
            .starts_with(&format!("the plan holds the {other} schema")));

        let e = apply("http://127.0.0.1:1", "default", None, &bad, other, false)
            .await
            .unwrap_err();
        eprintln!("refused: {e:?}");
        assert_eq!(e.hint.as_deref(), Some(HINT_NOT_RUNNING));
        assert!(e.message.contains("cannot connect"), "{}", e.message);

        ch.execute("drop", &format!("DROP DATABASE IF EXISTS {db}"))
            .await
            .unwrap();
    }
}
