//! Hot storage: durable pull consumers on both streams, batched inserts into ClickHouse, acks
//! only after the inserts. Start order: health endpoints first (so every problem after that is
//! visible there), then the schema check (retried every 10 s until the tables are right), then
//! one worker per stream.

pub mod consumer;
pub mod health;
pub mod prefetch;
pub mod rows;
pub mod schema;
pub mod seen;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::{Context, ContextBuilder};
use tokio::sync::watch;

use self::consumer::Worker;
use self::health::StorageState;
use self::rows::TimeEncoding;
use super::config::StorageConfig;
use super::message::STREAMS;
use super::nats::{self, Link};
use super::{http, ServiceError};

/// How often a wrong or unreadable schema is checked again.
const SCHEMA_RETRY: Duration = Duration::from_secs(10);
/// How often the consumers' lag is read.
const LAG_EVERY: Duration = Duration::from_secs(5);
/// After shutdown, how long the workers may take to store and ack what they hold: past
/// consumer.rs's grace for a failing insert, well inside systemd's stop timeout.
const STOP_WAIT: Duration = Duration::from_secs(30);
/// JetStream API requests (stream and consumer info).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs until `shutdown` turns true; each worker stores and acks its batch in flight first.
pub async fn run(
    config: &StorageConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ServiceError> {
    let password = read_password(&config.clickhouse.password_file)?;
    let link = Link::new();
    let state = StorageState::new(link.clone());
    http::serve(
        config.health_listen,
        config.metrics_listen,
        state.clone(),
        shutdown.clone(),
    )
    .await
    .map_err(ServiceError::Fatal)?;
    let ch = &config.clickhouse;
    tracing::info!(
        "storage: NATS at {} into ClickHouse {} (database {}, user {}); health on {}, metrics on {}",
        config.nats_urls.join(", "),
        ch.url,
        ch.database,
        ch.user,
        config.health_listen,
        config.metrics_listen
    );
    let clickhouse = clickhouse::Client::default()
        .with_url(&ch.url)
        .with_user(&ch.user)
        .with_password(password)
        .with_database(&ch.database)
        // Its schema check uses a format and a setting ClickHouse 18.16 lacks; schema.rs
        // checks the tables instead.
        .with_validation(false);
    let client = nats::connect("mp-storage", &config.nats_urls, config.nats.as_ref(), link)
        .await
        .map_err(ServiceError::Fatal)?;
    let js = ContextBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .build(client.clone());

    let Some(encoding) = wait_for_schema(&clickhouse, config, &state, &mut shutdown).await else {
        return Ok(());
    };
    let lag = tokio::spawn(refresh_lag(
        js.clone(),
        config.consumer_prefix.clone(),
        state.clone(),
    ));
    let workers: Vec<_> = STREAMS
        .iter()
        .map(|stream| {
            // systemd's StateDirectory= (the unit's); elsewhere the ids live as long as the process.
            let seen_file = std::env::var_os("STATE_DIRECTORY")
                .map(|dir| std::path::Path::new(&dir).join(format!("seen-{stream}")));
            let seen = match &seen_file {
                Some(path) => seen::Seen::load(path, seen::CAPACITY),
                None => seen::Seen::new(seen::CAPACITY),
            };
            let worker = Worker {
                js: js.clone(),
                clickhouse: clickhouse.clone(),
                stream,
                durable: durable_name(&config.consumer_prefix, stream),
                batch_size: config.batch_size,
                flush_interval: config.flush_interval,
                encoding,
                state: state.clone(),
                shutdown: shutdown.clone(),
                seen,
                seen_file,
            };
            tokio::spawn(worker.run())
        })
        .collect();
    // Once shutdown is asked, bounded: with NATS gone, a worker's last acks (and the flush)
    // would wait for a reconnect forever. What is not acked comes again at the next start.
    let mut all = futures::future::join_all(workers);
    let mut stopping = shutdown.clone();
    tokio::select! {
        _ = &mut all => {}
        _ = stopping.wait_for(|stop| *stop) => {
            if tokio::time::timeout(STOP_WAIT, &mut all).await.is_err() {
                tracing::warn!(
                    "the last batches were not acked within {} s of the stop (NATS unreachable?): they come again at the next start",
                    STOP_WAIT.as_secs()
                );
            }
        }
    }
    lag.abort();
    // The last acks are sent before the process ends.
    if tokio::time::timeout(Duration::from_secs(5), client.flush())
        .await
        .is_err()
    {
        tracing::warn!("NATS did not confirm the last acks within 5 s");
    }
    let c = state.counters();
    tracing::info!(
        "storage stopped: {} acked, {} rejected, {} insert errors",
        c.acked,
        c.rejected,
        c.insert_errors
    );
    Ok(())
}

/// `mp-storage-MARKET_DATA`.
pub fn durable_name(prefix: &str, stream: &str) -> String {
    format!("{prefix}-{stream}")
}

/// The first line of the password file. Never logged.
fn read_password(path: &Path) -> Result<String, ServiceError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ServiceError::Config(format!(
            "clickhouse.password_file: cannot read {}: {e}",
            path.display()
        ))
    })?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

/// Checks the tables until they are right (None: shutdown came first).
async fn wait_for_schema(
    client: &clickhouse::Client,
    config: &StorageConfig,
    state: &StorageState,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<TimeEncoding> {
    let database = &config.clickhouse.database;
    loop {
        match schema::read_columns(client, database).await {
            Ok(columns) => {
                state.clickhouse_ok();
                match schema::check(&columns, database) {
                    Ok(rendering) => {
                        tracing::info!("schema of {database}: {rendering} rendering, as expected");
                        state.update(|c| {
                            c.schema = Some(rendering);
                            c.schema_error = None;
                        });
                        return Some(TimeEncoding::from(rendering));
                    }
                    Err(problems) => {
                        let error = schema::describe(database, &problems);
                        tracing::error!("{error}; checking again in {}s", SCHEMA_RETRY.as_secs());
                        state.update(|c| c.schema_error = Some(error));
                    }
                }
            }
            Err(e) => {
                let error = format!(
                    "cannot read the columns of {database} from ClickHouse at {}: {e}",
                    config.clickhouse.url
                );
                tracing::error!("{error}; trying again in {}s", SCHEMA_RETRY.as_secs());
                state.clickhouse_failed(error, false);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(SCHEMA_RETRY) => {}
            _ = shutdown.wait_for(|s| *s) => return None,
        }
    }
}

/// Reads each consumer's undelivered and unacked counts for `/health` every few seconds.
async fn refresh_lag(js: Context, prefix: String, state: Arc<StorageState>) {
    let mut tick = tokio::time::interval(LAG_EVERY);
    loop {
        tick.tick().await;
        for stream in STREAMS {
            let info = async {
                let s = js.get_stream(stream).await.map_err(|e| e.to_string())?;
                let last_seq = s.cached_info().state.last_sequence;
                let info = s
                    .consumer_info(durable_name(&prefix, stream))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>((last_seq, info))
            };
            match info.await {
                Ok((last_seq, info)) => state.update(|c| {
                    c.consumer_lag.insert(stream.to_string(), info.num_pending);
                    c.consumer_ack_pending
                        .insert(stream.to_string(), info.num_ack_pending as u64);
                    // What the data-flow check diagnoses with (NATS monitoring is on each
                    // node's loopback only).
                    c.stream_last_seq.insert(stream.to_string(), last_seq);
                    c.consumer_ack_floor
                        .insert(stream.to_string(), info.ack_floor.stream_sequence);
                }),
                Err(e) => tracing::debug!("{stream}: cannot read consumer lag: {e}"),
            }
        }
    }
}
