//! The `CREATE` statements for `marketprism_hot`, rendered from `sql/*.sql.tera`, and the columns
//! a check should find in `system.columns` afterwards.
//!
//! Every statement is one string (ClickHouse's HTTP interface takes one statement per request),
//! has no trailing semicolon, and is idempotent by construction (`IF NOT EXISTS`). Nothing is
//! altered: a table that exists with other columns is left alone and must be reported by the
//! caller (see [`expected_columns`] and [`column_mismatches`]), never silently used.

use std::collections::BTreeMap;

use serde::Serialize;

use super::tables::TABLES;
use super::{ClickHouseVersion, SchemaRendering};
use crate::stack::render::render;
use crate::stack::StackError;

/// The hot database.
pub const DATABASE: &str = "marketprism_hot";

/// How long hot rows live (modern rendering only: legacy servers have no TTL).
pub const HOT_TTL_DAYS: u32 = 3;

const INDEX_GRANULARITY: u32 = 8192;

const CREATE_DATABASE: &str = include_str!("../../../sql/create_database.sql.tera");
const CREATE_TABLE: &str = include_str!("../../../sql/create_table.sql.tera");

/// One statement to send in one HTTP request. `name` is for the report:
/// `create database marketprism_hot`, `create table trades`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Statement {
    pub name: String,
    pub sql: String,
}

/// The whole schema for one server version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Schema {
    pub rendering: SchemaRendering,
    /// Why this rendering, in one line for the report.
    pub reason: String,
    /// The database first, then the 8 tables.
    pub statements: Vec<Statement>,
}

#[derive(Serialize)]
struct ColumnData {
    name: &'static str,
    definition: String,
}

#[derive(Serialize)]
struct TableData {
    database: &'static str,
    table: &'static str,
    columns: Vec<ColumnData>,
    order_by: &'static [&'static str],
    modern: bool,
    ttl_days: u32,
    index_granularity: u32,
}

/// The statements that create MarketPrism's hot schema on a server of `version`.
pub fn schema_statements(version: &ClickHouseVersion) -> Result<Schema, StackError> {
    let rendering = version.rendering();
    let mut statements = vec![Statement {
        name: format!("create database {DATABASE}"),
        sql: render(
            "sql/create_database.sql.tera",
            CREATE_DATABASE,
            &serde_json::json!({ "database": DATABASE }),
        )?
        .trim()
        .to_string(),
    }];
    for t in &TABLES {
        let data = TableData {
            database: DATABASE,
            table: t.name,
            columns: t
                .columns()
                .map(|c| ColumnData {
                    name: c.name,
                    definition: c.definition(rendering),
                })
                .collect(),
            order_by: t.order_by,
            modern: rendering == SchemaRendering::Modern,
            ttl_days: HOT_TTL_DAYS,
            index_granularity: INDEX_GRANULARITY,
        };
        let sql = render("sql/create_table.sql.tera", CREATE_TABLE, &data)?;
        statements.push(Statement {
            name: format!("create table {}", t.name),
            sql: sql.trim().to_string(),
        });
    }
    Ok(Schema {
        rendering,
        reason: version.rendering_reason(),
        statements,
    })
}

/// For each table, its columns in order with their types as `system.columns` reports them
/// (`SELECT table, name, type FROM system.columns WHERE database = 'marketprism_hot'`).
pub fn expected_columns(rendering: SchemaRendering) -> BTreeMap<String, Vec<(String, String)>> {
    TABLES
        .iter()
        .map(|t| {
            let cols = t
                .columns()
                .map(|c| (c.name.to_string(), c.kind.reported(rendering).to_string()))
                .collect();
            (t.name.to_string(), cols)
        })
        .collect()
}

/// How the columns a server reports for `table` differ from `expected`, one line per difference
/// (empty when they match): missing, unexpected, differently typed, or out of order.
pub fn column_mismatches(
    table: &str,
    expected: &[(String, String)],
    actual: &[(String, String)],
) -> Vec<String> {
    let mut out = Vec::new();
    let find = |cols: &[(String, String)], name: &str| {
        cols.iter().find(|(n, _)| n == name).map(|(_, t)| t.clone())
    };
    for (name, ty) in expected {
        match find(actual, name) {
            None => out.push(format!("{table}.{name}: missing (expected {ty})")),
            Some(a) if &a != ty => out.push(format!("{table}.{name}: type is {a}, expected {ty}")),
            Some(_) => {}
        }
    }
    for (name, ty) in actual {
        if find(expected, name).is_none() {
            out.push(format!("{table}.{name}: unexpected column ({ty})"));
        }
    }
    if out.is_empty() {
        let names =
            |cols: &[(String, String)]| cols.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        if names(expected) != names(actual) {
            out.push(format!(
                "{table}: columns are in another order ({}), expected ({})",
                names(actual).join(", "),
                names(expected).join(", ")
            ));
        }
    }
    out
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
