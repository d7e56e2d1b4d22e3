//! One file per kind of action; each checks the host first and applies only the difference.

pub mod clickhouse_schema;
pub mod directory;
pub mod file;
pub mod nats_streams;
pub mod packages;
pub mod port;
pub mod script;
pub mod service;
pub mod wait_http;

use std::time::Duration;

use super::outcome::{Outcome, StepError};
use crate::plan::Action;

/// Performs one action. `notified`: a step feeding this service changed in this run.
pub async fn perform(
    action: &Action,
    notified: bool,
    check_only: bool,
) -> Result<Outcome, StepError> {
    match action {
        Action::Packages { packages } => packages::apply(packages, check_only).await,
        Action::Directory { path, owner, mode } => {
            directory::apply(path, owner.as_deref(), *mode, check_only).await
        }
        Action::File {
            path,
            content,
            mode,
            owner,
        } => file::apply(path, content, *mode, owner.as_deref(), check_only).await,
        Action::PortFree {
            port,
            service,
            allowed_processes,
            our_unit,
        } => port::apply(*port, service, allowed_processes, our_unit.as_deref()).await,
        Action::Service { unit } => service::apply(unit, notified, check_only).await,
        Action::WaitHttp {
            url,
            expect_json,
            timeout_secs,
            log_unit,
        } => {
            wait_http::apply(
                url,
                expect_json.as_ref(),
                Duration::from_secs(*timeout_secs),
                log_unit.as_deref(),
                check_only,
            )
            .await
        }
        Action::ClickHouseSchema {
            url,
            user,
            password,
        } => schema_for_server(url, user, password.as_deref(), check_only).await,
        Action::NatsStreams { url, streams } => nats_streams::apply(url, streams, check_only).await,
        Action::Script { check, apply } => script::apply(check.as_deref(), apply, check_only).await,
    }
}

/// Renders the schema for the version the server reports, then applies it.
async fn schema_for_server(
    url: &str,
    user: &str,
    password: Option<&str>,
    check_only: bool,
) -> Result<Outcome, StepError> {
    let version = clickhouse_schema::server_version(url, user, password).await?;
    let schema = crate::stack::schema_statements(&version).map_err(|e| {
        StepError::new(format!(
            "cannot render the schema for ClickHouse {version}: {e}"
        ))
    })?;
    let mut outcome = clickhouse_schema::apply(
        url,
        user,
        password,
        &schema.statements,
        schema.rendering,
        check_only,
    )
    .await?;
    // The report says which rendering the host got and why.
    outcome.message = format!("{}; {}", outcome.message, schema.reason);
    Ok(outcome)
}
