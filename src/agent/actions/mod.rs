//! One file per kind of action; each checks the host first and applies only the difference.

pub mod app_release;
pub mod artifact;
pub mod clickhouse_schema;
pub mod deb;
pub mod directory;
pub mod file;
pub mod gate;
pub mod nats_admin;
pub mod nats_streams;
pub mod packages;
pub mod port;
pub mod release;
pub mod script;
pub mod service;
pub mod service_release;
pub mod service_rollback;
pub mod streams_current;
pub mod supervised;
pub mod system_user;
pub mod vendor_files;
pub mod venv;
pub mod verify_flow;
pub mod wait_http;
pub mod wait_tcp;

use crate::plan::build::CLICKHOUSE_DATA_DIR as CLICKHOUSE_DATA;
use std::time::Duration;

use super::outcome::{Outcome, StepError};
use crate::plan::Action;

/// Performs one action. `notified`: a step feeding this service changed in this run.
pub async fn perform(
    action: &Action,
    notified: bool,
    check_only: bool,
) -> Result<Outcome, StepError> {
    let result = apply(action, notified, check_only).await;
    // What the checks saw (listeners, units' states) holds while steps change nothing: a
    // re-run asks once. Any step that changed something, or failed, may have changed it.
    if !matches!(&result, Ok(o) if o.status == super::event::StepStatus::Ok) {
        port::forget_listeners();
    }
    result
}

async fn apply(action: &Action, notified: bool, check_only: bool) -> Result<Outcome, StepError> {
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
        Action::UnitLoaded { unit } => service::load(unit, check_only).await,
        Action::Supervised {
            name,
            user,
            command,
            config_files,
        } => supervised::apply(name, user, command, config_files, notified, check_only).await,
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
        } => {
            let result = schema_for_server(url, user, password.as_deref(), check_only).await;
            not_running_yet(result, check_only, url, "create the schema marketprism_hot").await
        }
        Action::NatsStreams { url, streams } => {
            let result = nats_streams::apply(url, streams, check_only).await;
            not_running_yet(result, check_only, url, "create the streams").await
        }
        Action::Script { check, apply, .. } => {
            script::apply(check.as_deref(), apply, check_only).await
        }
        Action::InstallBinary {
            name,
            from,
            sha256,
            version,
            path,
            work_dir,
        } => {
            let binary = release::Binary {
                name,
                from,
                sha256,
                version: version.as_deref(),
                path,
                work_dir,
            };
            release::apply(&binary, check_only).await
        }
        Action::InstallVendorFiles {
            label,
            from,
            sha256,
            files,
            work_dir,
        } => {
            let vendor = vendor_files::VendorFiles {
                label,
                from,
                sha256,
                files,
                work_dir,
            };
            vendor_files::apply(&vendor, check_only).await
        }
        Action::InstallDeb {
            package,
            path,
            sha256,
        } => deb::apply(package, path, sha256, check_only).await,
        Action::SystemUser { name, home } => system_user::apply(name, home, check_only).await,
        Action::AppRelease { dir, sha256 } => app_release::apply(dir, sha256, check_only).await,
        Action::ServiceRelease {
            dir,
            archive,
            sha256,
        } => service_release::apply(dir, archive, sha256, check_only).await,
        Action::Venv {
            service,
            dir,
            key,
            requirements,
            find_links,
        } => {
            let venv = venv::Venv {
                service,
                dir,
                key,
                requirements: requirements.as_deref(),
                find_links: find_links.as_deref(),
            };
            venv::apply(&venv, check_only).await
        }
        Action::WaitTcp {
            port,
            timeout_secs,
            log_unit,
        } => {
            wait_tcp::apply(
                *port,
                Duration::from_secs(*timeout_secs),
                log_unit.as_deref(),
                check_only,
            )
            .await
        }
        Action::ServiceRollback { dir, venv } => service_rollback::apply(dir, *venv, check_only),
        Action::AppRollback { dir, to } => {
            app_release::rollback(dir, to.as_deref(), check_only).await
        }
        Action::HealthGate {
            probes,
            consecutive,
            interval_ms,
            timeout_secs,
        } => {
            gate::apply(
                probes,
                *consecutive,
                Duration::from_millis(*interval_ms),
                Duration::from_secs(*timeout_secs),
                check_only,
            )
            .await
        }
        Action::StreamsCurrent {
            url,
            streams,
            timeout_secs,
        } => {
            streams_current::apply(url, streams, Duration::from_secs(*timeout_secs), check_only)
                .await
        }
        Action::VerifyPublishing {
            health_url,
            timeout_secs,
            log_unit,
            polled_streams,
        } => {
            let timeout = Duration::from_secs(*timeout_secs);
            verify_flow::publishing(health_url, timeout, log_unit, polled_streams, check_only).await
        }
        Action::VerifyFlow(flow) => verify_flow::rows_arrive(flow, check_only).await,
    }
}

/// In `--check`, a server that does not run yet (a fresh host) is no failure: the deploy
/// starts it before this step, so the step would change something. Its port decides, not the
/// wording of the error.
async fn not_running_yet(
    result: Result<Outcome, StepError>,
    check_only: bool,
    url: &str,
    what: &str,
) -> Result<Outcome, StepError> {
    match result {
        Err(_) if check_only && !port_open(url).await => Ok(Outcome::changed(
            format!("would {what} once the server runs (not running now)"),
            vec![format!("{what}")],
        )),
        other => other,
    }
}

/// Whether something accepts TCP connections at the URL's host and port.
async fn port_open(url: &str) -> bool {
    let url = crate::agent::local_addr::here(url);
    let Some(rest) = url.split("://").nth(1) else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let connect = tokio::net::TcpStream::connect(authority);
    matches!(
        tokio::time::timeout(Duration::from_secs(2), connect).await,
        Ok(Ok(_))
    )
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
    let outcome = clickhouse_schema::apply(
        url,
        user,
        password,
        &schema.statements,
        schema.rendering,
        check_only,
    )
    .await;
    let mut outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) if error.message.contains("disk full") => {
            return Err(with_free_space(error).await)
        }
        Err(error) => return Err(error),
    };
    // The report says which rendering the host got and why.
    outcome.message = format!("{}; {}", outcome.message, schema.reason);
    Ok(outcome)
}

/// Adds the free space of ClickHouse's data path to a disk-full error: Ansible and pyinfra
/// only relay the HTTP 500.
async fn with_free_space(mut error: StepError) -> StepError {
    // ClickHouse names the file it could not write; its folder may be another file system.
    let path = failed_dir(&format!("{} {}", error.message, error.output_tail))
        .unwrap_or_else(|| CLICKHOUSE_DATA.to_string());
    let df = super::shell::sh(&format!(
        "df -Pk {} | tail -n 1",
        crate::transport::shell::quote(&path)
    ))
    .await;
    if let Some((free, size)) = df.ok().and_then(|o| parse_df(&o.output)) {
        error.message = format!(
            "{} ({path}: {} KiB free of {} KiB)",
            error.message, free, size
        );
        error.hint = Some(format!(
            "free space on the file system holding {path} (df -h {path}), then deploy again"
        ));
    }
    error
}

/// The folder of the first ClickHouse data path named in `text`.
fn failed_dir(text: &str) -> Option<String> {
    let start = text.find(CLICKHOUSE_DATA)?;
    let path: String = text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | '\'' | '"' | ')'))
        .collect();
    let dir = std::path::Path::new(&path);
    let dir = if path.ends_with('/') {
        dir
    } else {
        dir.parent()?
    };
    Some(dir.to_string_lossy().into_owned())
}

/// `df -Pk` data line -> (available KiB, size KiB).
fn parse_df(line: &str) -> Option<(u64, u64)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    Some((fields.get(3)?.parse().ok()?, fields.get(1)?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn df_line() {
        let line = "tmpfs 64 64 0 100% /var/lib/clickhouse";
        assert_eq!(super::parse_df(line), Some((0, 64)));
        assert_eq!(super::parse_df("garbage"), None);
    }

    #[test]
    fn failed_dir_from_clickhouse_error() {
        let text =
            "Cannot open file /var/lib/clickhouse/metadata/marketprism_hot.sql.tmp, errno: 28";
        assert_eq!(
            super::failed_dir(text).as_deref(),
            Some("/var/lib/clickhouse/metadata")
        );
        assert_eq!(super::failed_dir("no path"), None);
    }
}
