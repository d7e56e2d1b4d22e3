//! Before storing anything: do the hot tables have the columns storage writes, and in which
//! rendering (which decides how time columns are encoded)? Read from `system.columns`.
//!
//! Only what would break an insert is a problem: a table or column missing, or a column of
//! another type. Extra columns and another column order are fine (inserts name their columns).

use std::collections::BTreeMap;

use clickhouse::Client;
use serde::Deserialize;

use crate::stack::{expected_columns, SchemaRendering};

/// Each table's columns: (name, type as `system.columns` reports it).
pub type Columns = BTreeMap<String, Vec<(String, String)>>;

#[derive(Debug, clickhouse::Row, Deserialize)]
struct ColumnRow {
    table: String,
    name: String,
    ty: String,
}

/// The columns of every table in `database`. `database` is a plain name (the config checks).
pub async fn read_columns(client: &Client, database: &str) -> Result<Columns, String> {
    // No server-side query parameters: ClickHouse 18.16 has none.
    let sql = format!("SELECT table, name, type FROM system.columns WHERE database = '{database}'");
    let rows = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.query(&sql).fetch_all::<ColumnRow>(),
    )
    .await
    .map_err(|_| "no answer within 10 s".to_string())?
    .map_err(|e| e.to_string())?;
    let mut columns = Columns::new();
    for row in rows {
        columns
            .entry(row.table)
            .or_default()
            .push((row.name, row.ty));
    }
    Ok(columns)
}

/// The rendering whose columns `actual` has; else the problems against the closest one, one
/// line each (`trades.price: type is Float64, expected Decimal(18, 8)`).
pub fn check(actual: &Columns, database: &str) -> Result<SchemaRendering, Vec<String>> {
    let mut closest: Option<Vec<String>> = None;
    for rendering in [SchemaRendering::Modern, SchemaRendering::Legacy] {
        let found = problems(&expected_columns(rendering), actual, database);
        if found.is_empty() {
            return Ok(rendering);
        }
        if closest.as_ref().is_none_or(|c| found.len() < c.len()) {
            closest = Some(found);
        }
    }
    Err(closest.unwrap_or_default())
}

fn problems(expected: &Columns, actual: &Columns, database: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (table, columns) in expected {
        let Some(has) = actual.get(table) else {
            out.push(format!("table {database}.{table} missing"));
            continue;
        };
        for (name, ty) in columns {
            match has.iter().find(|(n, _)| n == name) {
                None => out.push(format!("{table}.{name}: column missing (expected {ty})")),
                Some((_, t)) if t != ty => {
                    out.push(format!("{table}.{name}: type is {t}, expected {ty}"))
                }
                Some(_) => {}
            }
        }
    }
    out
}

/// The one-line error for `/health` and the log.
pub fn describe(database: &str, problems: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = format!(
        "schema of {database} is not what storage writes: {}",
        problems
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ")
    );
    if problems.len() > SHOWN {
        text.push_str(&format!("; and {} more", problems.len() - SHOWN));
    }
    text.push_str(" (run mp-remote deploy; a table with other columns must be fixed by hand)");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(r: SchemaRendering) -> Columns {
        expected_columns(r)
    }

    #[test]
    fn recognises_both_renderings() {
        for r in [SchemaRendering::Modern, SchemaRendering::Legacy] {
            assert_eq!(check(&rendered(r), "marketprism_hot"), Ok(r));
        }
    }

    #[test]
    fn extra_columns_and_order_do_not_matter() {
        let mut columns = rendered(SchemaRendering::Legacy);
        let trades = columns.get_mut("trades").unwrap();
        trades.reverse();
        trades.push(("note".into(), "String".into()));
        assert_eq!(
            check(&columns, "marketprism_hot"),
            Ok(SchemaRendering::Legacy)
        );
    }

    #[test]
    fn names_the_missing_table_and_the_wrong_column() {
        let mut columns = rendered(SchemaRendering::Legacy);
        columns.remove("liquidations");
        for (name, ty) in columns.get_mut("trades").unwrap() {
            if name == "price" {
                *ty = "Float64".into();
            }
        }
        let problems = check(&columns, "marketprism_hot").unwrap_err();
        assert_eq!(
            problems,
            [
                "table marketprism_hot.liquidations missing",
                "trades.price: type is Float64, expected Decimal(18, 8)",
            ]
        );
        let text = describe("marketprism_hot", &problems);
        assert!(text.contains("liquidations missing") && text.contains("trades.price"));
    }

    #[test]
    fn an_empty_database_lists_every_table() {
        let problems = check(&Columns::new(), "marketprism_hot").unwrap_err();
        assert_eq!(problems.len(), 8);
        assert!(describe("marketprism_hot", &problems).ends_with(
            "and 3 more (run mp-remote deploy; a table with other columns must be fixed by hand)"
        ));
    }
}
