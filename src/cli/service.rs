//! `mp-remote service collector|storage --config FILE`: the pipeline services, run in the
//! foreground (systemd or mp-remote's supervisor keeps them running). Logs go to stderr, one
//! line per event. SIGTERM or SIGINT stops them cleanly: the collector waits up to 5 s for the
//! acks of what it sent, storage stores and acks the batch it holds.
//!
//! Exit codes: 0 stopped cleanly; 1 could not start (a port taken); 2 the config file (or the
//! password file it names) is wrong, which a restart does not fix.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use tokio::sync::watch;

use crate::pipeline::config::{self, ConfigError, SourceKind};
use crate::pipeline::source::exchanges::Exchanges;
use crate::pipeline::source::synthetic::Synthetic;
use crate::pipeline::source::Source;
use crate::pipeline::{collector, storage, ServiceError};

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Publish market data to NATS JetStream (config: collector.toml).
    Collector(CollectorArgs),
    /// Store what the streams hold into ClickHouse (config: storage.toml).
    Storage(StorageArgs),
}

#[derive(Debug, Args)]
pub struct CollectorArgs {
    /// The collector's config file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Stop after this many messages, once all are acked, and print a JSON summary on
    /// stdout (for benchmarks).
    #[arg(long, value_name = "N", hide = true)]
    pub max_messages: Option<u64>,
}

#[derive(Debug, Args)]
pub struct StorageArgs {
    /// The storage's config file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// Runs the service until SIGTERM/SIGINT; returns the process exit code.
pub async fn run(command: ServiceCommand) -> i32 {
    let result = match command {
        ServiceCommand::Collector(args) => run_collector(args).await,
        ServiceCommand::Storage(args) => run_storage(args).await,
    };
    match result {
        Ok(()) => 0,
        Err(error) => {
            tracing::error!("{error}");
            error.exit_code()
        }
    }
}

async fn run_collector(args: CollectorArgs) -> Result<(), ServiceError> {
    let config = config::load(&args.config, config::parse_collector).map_err(config_error)?;
    let source: Box<dyn Source> = match config.source.kind {
        SourceKind::Synthetic => Box::new(Synthetic::new(&config.source).map_err(|e| {
            ServiceError::Config(format!("{}: source: {e}", args.config.display()))
        })?),
        SourceKind::Exchanges => Box::new(Exchanges::start(&config.source).map_err(|e| {
            ServiceError::Config(format!("{}: source: {e}", args.config.display()))
        })?),
    };
    let shutdown = on_signal();
    let summary = collector::run(&config, source, args.max_messages, shutdown).await?;
    let published: u64 = summary.published.values().sum();
    let secs = summary.elapsed.as_secs_f64();
    let by_type: std::collections::BTreeMap<&str, u64> = summary
        .published
        .iter()
        .map(|(t, n)| (t.as_str(), *n))
        .collect();
    let per_type: Vec<String> = by_type.iter().map(|(t, n)| format!("{t}={n}")).collect();
    tracing::info!(
        "collector stopped: {} generated, {published} acked ({}), {} not acked, {} dropped in \
         {secs:.1} s",
        summary.generated,
        per_type.join(" "),
        summary.unacked,
        summary.dropped
    );
    if args.max_messages.is_some() {
        println!(
            "{}",
            serde_json::json!({
                "generated": summary.generated,
                "published": published,
                "published_by_type": by_type,
                "unacked": summary.unacked,
                "dropped": summary.dropped,
                "seconds": secs,
                "per_second": if secs > 0.0 { published as f64 / secs } else { 0.0 },
            })
        );
    }
    Ok(())
}

async fn run_storage(args: StorageArgs) -> Result<(), ServiceError> {
    let config = config::load(&args.config, config::parse_storage).map_err(config_error)?;
    storage::run(&config, on_signal()).await
}

fn config_error(e: ConfigError) -> ServiceError {
    ServiceError::Config(e.to_string())
}

/// A flag that turns true at the first SIGTERM or SIGINT.
fn on_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                // Without a SIGTERM handler only SIGINT stops us cleanly.
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = term => tracing::info!("SIGTERM: stopping"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
        }
        let _ = tx.send(true);
    });
    rx
}
