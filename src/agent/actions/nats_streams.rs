//! Creates MarketPrism's JetStream streams, or updates them in place; never deletes one.
//!
//! Upstream deleted and re-created a stream when its config changed, losing its messages. Here a
//! stream that differs from its [`StreamSpec`] is updated with `STREAM.UPDATE` (its messages
//! stay), and a difference the server cannot apply in place (the storage type) is a failure for a
//! person to resolve. After every create or update the config is read back and compared with the
//! spec: nats-server 2.9 silently ignores fields it does not know, so "accepted" is not "applied".

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::jetstream::context::{
    CreateStreamError, CreateStreamErrorKind, GetStreamError, GetStreamErrorKind, RequestError,
    RequestErrorKind,
};
use async_nats::jetstream::stream::{self, Config, RetentionPolicy};
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::{self, Context};
use async_nats::ConnectErrorKind;

use crate::agent::outcome::{Outcome, StepError};
use crate::stack::nats::{DiscardPolicy, StorageType};
use crate::stack::{diff, StreamSpec};

/// How long to wait for the TCP connection and the server's greeting.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for each JetStream API answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A cluster that has just formed has a meta leader before every peer has reported in, and
/// refuses to place a replicated stream meanwhile ("no suitable peers for placement"): such
/// refusals are retried for up to this long, then reported.
const PLACEMENT_WAIT: Duration = Duration::from_secs(30);
/// The peers report in within a few hundred milliseconds of the meta leader's election.
const PLACEMENT_RETRY: Duration = Duration::from_millis(100);

const HINT_NOT_RUNNING: &str = "is nats-server running? see `journalctl -u nats-server`";
const HINT_JS_DISABLED: &str = "enable JetStream in nats-server.conf (a `jetstream { store_dir: \
                                ... }` block) and restart nats-server";

/// Brings every stream in `streams` to its spec on the server at `url`. In `check_only` mode
/// reports what would be created or updated and changes nothing.
pub async fn apply(
    url: &str,
    streams: &[StreamSpec],
    check_only: bool,
) -> Result<Outcome, StepError> {
    let client = super::nats_admin::connect_options()
        .map_err(StepError::new)?
        .connection_timeout(CONNECT_TIMEOUT)
        .request_timeout(Some(REQUEST_TIMEOUT))
        .connect(crate::agent::local_addr::here(url))
        .await
        .map_err(|e| connect_failure(url, &e.kind(), &e.to_string()))?;
    let server = client.server_info();
    let server_name = format!("nats-server {}", server.version);
    if !server.jetstream && check_only {
        // A server started with another config (a package's default, before the init layer
        // writes ours): what counts is the server the deploy will restart.
        return Ok(Outcome::changed(
            format!("would create the streams once {server_name} runs with mp-remote's config (JetStream is not enabled now)"),
            vec!["create the streams".into()],
        ));
    }
    if !server.jetstream {
        return Err(StepError::new(format!(
            "JetStream is not enabled on {server_name} at {url}"
        ))
        .hint(HINT_JS_DISABLED));
    }
    let mut js = jetstream::new(client);
    js.set_timeout(REQUEST_TIMEOUT);

    // The streams at once: each new replicated stream waits for its own group to elect a
    // leader (about half a second on a fresh cluster), and nothing orders them.
    let each = futures::future::join_all(streams.iter().map(|spec| {
        let (js, server_name) = (&js, &server_name);
        async move {
            let mut report = Report::default();
            let result = apply_one(js, spec, check_only, server_name, &mut report).await;
            (report, result)
        }
    }))
    .await;
    let mut report = Report::default();
    let mut failure = None;
    for (one, result) in each {
        report.add(one);
        if let Err(e) = result {
            failure = failure.or(Some(e));
        }
    }
    match failure {
        // What the other streams got is said with the first failure.
        Some(e) => Err(e.with_output(&report.changes.join("\n"))),
        None => Ok(report.outcome(check_only, &server_name)),
    }
}

/// What happened to the streams so far.
#[derive(Debug, Default)]
struct Report {
    created: Vec<String>,
    updated: Vec<String>,
    unchanged: Vec<String>,
    changes: Vec<String>,
}

impl Report {
    fn add(&mut self, other: Report) {
        self.created.extend(other.created);
        self.updated.extend(other.updated);
        self.unchanged.extend(other.unchanged);
        self.changes.extend(other.changes);
    }

    /// `created MARKET_DATA, ORDERBOOK_SNAP (nats-server 2.9.10)`,
    /// `would update ORDERBOOK_SNAP; MARKET_DATA already as wanted (...)`.
    fn outcome(self, check_only: bool, server: &str) -> Outcome {
        let (create, update) = if check_only {
            ("would create", "would update")
        } else {
            ("created", "updated")
        };
        let mut parts = Vec::new();
        if !self.created.is_empty() {
            parts.push(format!("{create} {}", self.created.join(", ")));
        }
        if !self.updated.is_empty() {
            parts.push(format!("{update} {}", self.updated.join(", ")));
        }
        if !self.unchanged.is_empty() {
            parts.push(format!("{} already as wanted", self.unchanged.join(", ")));
        }
        let message = format!("streams: {} ({server})", parts.join("; "));
        if self.changes.is_empty() {
            Outcome::unchanged(message)
        } else {
            Outcome::changed(message, self.changes)
        }
    }
}

async fn apply_one(
    js: &Context,
    spec: &StreamSpec,
    check_only: bool,
    server: &str,
    report: &mut Report,
) -> Result<(), StepError> {
    let name = spec.name.as_str();
    let Some(info) = stream_info(js, name).await? else {
        if !check_only {
            once_placed(|| js.create_stream(stream_config(spec)))
                .await
                .map_err(|e| change_failure("create", name, &e))?;
            read_back(js, spec, server).await?;
        }
        report.created.push(name.to_string());
        report.changes.push(created_line(spec, check_only));
        return Ok(());
    };

    let actual = spec_of(&info.config);
    if diff(&actual, spec).is_empty() {
        report.unchanged.push(name.to_string());
        return Ok(());
    }
    if actual.storage != spec.storage {
        return Err(storage_failure(
            name,
            actual.storage,
            spec.storage,
            info.state.messages,
        ));
    }
    let fields = field_changes(&actual, spec);
    if !check_only {
        // Start from the server's config: fields mp-remote does not manage keep their values.
        let mut config = info.config.clone();
        overlay(&mut config, spec);
        once_placed(|| js.update_stream(&config))
            .await
            .map_err(|e| change_failure("update", name, &e))?;
        read_back(js, spec, server).await?;
    }
    report.updated.push(name.to_string());
    report.changes.push(updated_line(name, &fields, check_only));
    Ok(())
}

/// Runs a create or update until the cluster can place the stream (see [`PLACEMENT_WAIT`]).
async fn once_placed<T, F, Fut>(mut call: F) -> Result<T, CreateStreamError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CreateStreamError>>,
{
    let deadline = std::time::Instant::now() + PLACEMENT_WAIT;
    loop {
        match call().await {
            Err(e) if cluster_settling(&e) && std::time::Instant::now() < deadline => {
                tracing::debug!("JetStream cannot place the stream yet ({e}); retrying");
                tokio::time::sleep(PLACEMENT_RETRY).await;
            }
            other => return other,
        }
    }
}

/// The refusals of a cluster whose peers have not all reported in yet.
fn cluster_settling(e: &CreateStreamError) -> bool {
    match e.kind() {
        CreateStreamErrorKind::JetStream(j) => {
            j.error_code() == ErrorCode::CLUSTER_NO_PEERS
                || j.error_code() == ErrorCode::CLUSTER_NOT_AVAILABLE
        }
        _ => false,
    }
}

/// The stream's info, or `None` if the server has no stream of that name.
async fn stream_info(js: &Context, name: &str) -> Result<Option<stream::Info>, StepError> {
    match js.get_stream(name).await {
        Ok(s) => Ok(Some(s.cached_info().clone())),
        Err(e) => match e.kind() {
            GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND => {
                Ok(None)
            }
            _ => Err(js_failure(
                &format!("reading stream {name}"),
                get_problem(&e),
            )),
        },
    }
}

/// Reads the stream back and fails if the server's config is not the spec.
async fn read_back(js: &Context, spec: &StreamSpec, server: &str) -> Result<(), StepError> {
    let Some(info) = stream_info(js, &spec.name).await? else {
        return Err(StepError::new(format!(
            "stream {} is gone right after it was written",
            spec.name
        ))
        .hint("another client may be removing it; see `journalctl -u nats-server`"));
    };
    let differences = diff(&spec_of(&info.config), spec);
    if differences.is_empty() {
        Ok(())
    } else {
        Err(not_applied(&spec.name, server, &differences))
    }
}

fn not_applied(name: &str, server: &str, differences: &[String]) -> StepError {
    StepError::new(format!(
        "stream {name}: {server} accepted the config but did not apply it: {}",
        differences.join("; ")
    ))
    .hint(
        "the server ignores settings it does not know (2.9 ignores everything new in 2.10): \
         upgrade nats-server or change the stream settings in the inventory",
    )
}

fn storage_failure(name: &str, has: StorageType, wanted: StorageType, messages: u64) -> StepError {
    let lower = |s: StorageType| format!("{s:?}").to_lowercase();
    StepError::new(format!(
        "stream {name} uses {} storage and holds {messages} message{}; wanted {} storage, which \
         JetStream cannot change in place",
        lower(has),
        if messages == 1 { "" } else { "s" },
        lower(wanted)
    ))
    .hint(format!(
        "mp-remote never deletes a stream: back up what you need (`nats stream backup {name} \
         DIR`), remove the stream yourself (`nats stream rm {name}`) and run again"
    ))
}

/// The client config that creates `spec`.
pub fn stream_config(spec: &StreamSpec) -> Config {
    let mut c = Config {
        name: spec.name.clone(),
        retention: RetentionPolicy::Limits,
        ..Default::default()
    };
    overlay(&mut c, spec);
    c
}

/// Sets the fields mp-remote manages to `spec`'s values, leaving all others as they are.
pub fn overlay(c: &mut Config, spec: &StreamSpec) {
    let limit = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    c.subjects = spec.subjects.clone();
    c.storage = match spec.storage {
        StorageType::File => stream::StorageType::File,
        StorageType::Memory => stream::StorageType::Memory,
    };
    c.discard = match spec.discard {
        DiscardPolicy::Old => stream::DiscardPolicy::Old,
        DiscardPolicy::New => stream::DiscardPolicy::New,
    };
    c.max_messages = limit(spec.max_msgs);
    c.max_bytes = limit(spec.max_bytes);
    c.max_age = spec.max_age();
    c.duplicate_window = spec.duplicate_window();
    c.num_replicas = spec.replicas;
}

/// A server's config as a spec, for [`diff`]. JetStream's "unlimited" (-1, or a zero duration)
/// becomes 0, and 0 replicas (the server's default) 1.
pub fn spec_of(c: &Config) -> StreamSpec {
    let limit = |n: i64| u64::try_from(n).unwrap_or(0);
    StreamSpec {
        name: c.name.clone(),
        subjects: c.subjects.clone(),
        storage: match c.storage {
            stream::StorageType::File => StorageType::File,
            stream::StorageType::Memory => StorageType::Memory,
        },
        discard: match c.discard {
            stream::DiscardPolicy::Old => DiscardPolicy::Old,
            stream::DiscardPolicy::New => DiscardPolicy::New,
        },
        max_msgs: limit(c.max_messages),
        max_bytes: limit(c.max_bytes),
        max_age_secs: c.max_age.as_secs(),
        duplicate_window_secs: c.duplicate_window.as_secs(),
        replicas: c.num_replicas.max(1),
    }
}

/// The fields an update changes, for people: `max_age 24h -> 48h`, `subjects +trade.>, -foo.>`.
pub fn field_changes(actual: &StreamSpec, wanted: &StreamSpec) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |name: &str, a: String, w: String| {
        if a != w {
            out.push(format!("{name} {a} -> {w}"));
        }
    };
    let lower = |v: &dyn std::fmt::Debug| format!("{v:?}").to_lowercase();
    let a: BTreeSet<&String> = actual.subjects.iter().collect();
    let w: BTreeSet<&String> = wanted.subjects.iter().collect();
    let mut subjects: Vec<String> = w.difference(&a).map(|s| format!("+{s}")).collect();
    subjects.extend(a.difference(&w).map(|s| format!("-{s}")));
    field("storage", lower(&actual.storage), lower(&wanted.storage));
    field("discard", lower(&actual.discard), lower(&wanted.discard));
    field("max_msgs", count(actual.max_msgs), count(wanted.max_msgs));
    field(
        "max_bytes",
        bytes(actual.max_bytes),
        bytes(wanted.max_bytes),
    );
    field(
        "max_age",
        secs(actual.max_age_secs),
        secs(wanted.max_age_secs),
    );
    field(
        "duplicate_window",
        secs(actual.duplicate_window_secs),
        secs(wanted.duplicate_window_secs),
    );
    field(
        "replicas",
        actual.replicas.to_string(),
        wanted.replicas.to_string(),
    );
    if !subjects.is_empty() {
        out.insert(0, format!("subjects {}", subjects.join(", ")));
    }
    out
}

/// `created stream MARKET_DATA (7 subjects, R1)`.
fn created_line(spec: &StreamSpec, check_only: bool) -> String {
    let n = spec.subjects.len();
    let subjects = if n == 1 {
        "1 subject".to_string()
    } else {
        format!("{n} subjects")
    };
    let verb = if check_only {
        "would create"
    } else {
        "created"
    };
    format!(
        "{verb} stream {} ({subjects}, R{})",
        spec.name, spec.replicas
    )
}

/// `updated stream ORDERBOOK_SNAP: max_age 24h -> 48h`.
fn updated_line(name: &str, fields: &[String], check_only: bool) -> String {
    let verb = if check_only {
        "would update"
    } else {
        "updated"
    };
    format!("{verb} stream {name}: {}", fields.join(", "))
}

fn count(n: u64) -> String {
    if n == 0 {
        "unlimited".into()
    } else {
        n.to_string()
    }
}

fn bytes(n: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    if n == 0 {
        return "unlimited".into();
    }
    UNITS
        .iter()
        .find(|(u, _)| n.is_multiple_of(*u))
        .map_or_else(|| format!("{n} B"), |(u, name)| format!("{} {name}", n / u))
}

fn secs(s: u64) -> String {
    match s {
        0 => "unlimited".into(),
        s if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        s if s.is_multiple_of(60) => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Why a JetStream request failed, independent of the client's error types.
#[derive(Debug, Clone, PartialEq, Eq)]
enum JsProblem {
    NotEnabled,
    TimedOut,
    /// The server answered with an error (its description and codes).
    Refused(String),
    Other(String),
}

fn get_problem(e: &GetStreamError) -> JsProblem {
    match e.kind() {
        GetStreamErrorKind::JetStream(j) => server_problem(&j),
        GetStreamErrorKind::Request => {
            let req = std::error::Error::source(e).and_then(|s| s.downcast_ref::<RequestError>());
            match req.map(RequestError::kind) {
                Some(RequestErrorKind::NoResponders) => JsProblem::NotEnabled,
                Some(RequestErrorKind::TimedOut) => JsProblem::TimedOut,
                _ => JsProblem::Other(e.to_string()),
            }
        }
        _ => JsProblem::Other(e.to_string()),
    }
}

fn create_problem(e: &CreateStreamError) -> JsProblem {
    match e.kind() {
        CreateStreamErrorKind::JetStream(j) => server_problem(&j),
        CreateStreamErrorKind::JetStreamUnavailable => JsProblem::NotEnabled,
        CreateStreamErrorKind::TimedOut => JsProblem::TimedOut,
        _ => JsProblem::Other(e.to_string()),
    }
}

fn server_problem(j: &async_nats::jetstream::Error) -> JsProblem {
    let code = j.error_code();
    if code == ErrorCode::JETSTREAM_NOT_ENABLED
        || code == ErrorCode::JETSTREAM_NOT_ENABLED_FOR_ACCOUNT
    {
        JsProblem::NotEnabled
    } else {
        JsProblem::Refused(j.to_string())
    }
}

fn change_failure(verb: &str, name: &str, e: &CreateStreamError) -> StepError {
    js_failure(&format!("{verb} stream {name}"), create_problem(e))
}

/// `doing` failed: `reading stream MARKET_DATA`, `update stream MARKET_DATA`.
fn js_failure(doing: &str, problem: JsProblem) -> StepError {
    match problem {
        JsProblem::NotEnabled => StepError::new(format!(
            "{doing} failed: JetStream is not enabled on the server"
        ))
        .hint(HINT_JS_DISABLED),
        JsProblem::TimedOut => StepError::new(format!(
            "{doing} failed: no answer from JetStream within {} s",
            REQUEST_TIMEOUT.as_secs()
        ))
        .hint(
            "see `journalctl -u nats-server`; with several NATS nodes, JetStream answers only \
             while a majority of them is up",
        ),
        JsProblem::Refused(why) => {
            StepError::new(format!("{doing} failed: the server refused: {why}")).hint(
                "mp-remote never deletes a stream; fix what the server names (see `nats stream \
             info`), or change the stream settings in the inventory, and run again",
            )
        }
        JsProblem::Other(why) => {
            StepError::new(format!("{doing} failed: {why}")).hint(HINT_NOT_RUNNING)
        }
    }
}

fn connect_failure(url: &str, kind: &ConnectErrorKind, detail: &str) -> StepError {
    let msg = format!("cannot connect to NATS at {url}: {detail}");
    match kind {
        ConnectErrorKind::ServerParse => {
            StepError::new(format!("bad NATS address {url}: {detail}"))
                .hint("the address is made from the inventory; expected nats://HOST:PORT")
        }
        ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
            StepError::new(msg).hint(
                "the server wants credentials mp-remote does not use: check nats-server.conf \
                 for an authorization block",
            )
        }
        ConnectErrorKind::Tls => StepError::new(msg)
            .hint("the server wants TLS, which mp-remote's NATS config does not set up"),
        _ => StepError::new(msg).hint(HINT_NOT_RUNNING),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::event::StepStatus;
    use crate::stack::{streams, StreamLimits};

    fn specs() -> Vec<StreamSpec> {
        streams(1, &StreamLimits::default())
    }

    #[test]
    fn spec_to_config_and_back() {
        for spec in specs() {
            let c = stream_config(&spec);
            assert_eq!(c.name, spec.name);
            assert_eq!(c.storage, stream::StorageType::File);
            assert_eq!(c.discard, stream::DiscardPolicy::Old);
            assert_eq!(c.retention, RetentionPolicy::Limits);
            assert_eq!(c.max_messages, 5_000_000);
            assert_eq!(c.max_bytes, 2 << 30);
            assert_eq!(c.max_age, Duration::from_secs(48 * 3600));
            assert_eq!(c.duplicate_window, Duration::from_secs(300));
            assert_eq!(c.num_replicas, 1);
            assert_eq!(spec_of(&c), spec);
        }
        let mut memory = specs().remove(1);
        memory.storage = StorageType::Memory;
        memory.discard = DiscardPolicy::New;
        memory.replicas = 3;
        assert_eq!(spec_of(&stream_config(&memory)), memory);
    }

    #[test]
    fn config_sent_as_json_has_the_wire_names() {
        let json = serde_json::to_value(stream_config(&specs()[1])).unwrap();
        assert_eq!(json["name"], "ORDERBOOK_SNAP");
        assert_eq!(json["subjects"], serde_json::json!(["orderbook.>"]));
        assert_eq!(json["storage"], "file");
        assert_eq!(json["discard"], "old");
        assert_eq!(json["retention"], "limits");
        assert_eq!(json["max_msgs"], 5_000_000);
        assert_eq!(json["max_bytes"], 2_147_483_648u64);
        assert_eq!(json["max_age"], 172_800_000_000_000u64);
        assert_eq!(json["duplicate_window"], 300_000_000_000u64);
        assert_eq!(json["num_replicas"], 1);
    }

    #[test]
    fn server_unlimited_reads_as_zero() {
        let c = Config {
            name: "X".into(),
            max_messages: -1,
            max_bytes: -1,
            num_replicas: 0,
            ..Default::default()
        };
        let s = spec_of(&c);
        assert_eq!(
            (s.max_msgs, s.max_bytes, s.max_age_secs, s.replicas),
            (0, 0, 0, 1)
        );
    }

    #[test]
    fn overlay_keeps_fields_mp_remote_does_not_manage() {
        let spec = specs().remove(0);
        let mut server = Config {
            name: spec.name.clone(),
            max_consumers: 16,
            description: Some("by hand".into()),
            max_age: Duration::from_secs(3600),
            ..Default::default()
        };
        overlay(&mut server, &spec);
        assert_eq!(server.max_consumers, 16);
        assert_eq!(server.description.as_deref(), Some("by hand"));
        assert_eq!(spec_of(&server), spec);
    }

    #[test]
    fn field_changes_read_like_the_report() {
        let wanted = specs().remove(0);
        let mut actual = wanted.clone();
        actual.max_age_secs = 24 * 3600;
        assert_eq!(field_changes(&actual, &wanted), ["max_age 24h -> 48h"]);
        assert_eq!(
            updated_line("ORDERBOOK_SNAP", &field_changes(&actual, &wanted), false),
            "updated stream ORDERBOOK_SNAP: max_age 24h -> 48h"
        );
        actual.subjects.retain(|s| s != "trade.>");
        actual.subjects.push("foo.>".into());
        actual.max_bytes = 1 << 30;
        actual.max_msgs = 0;
        actual.duplicate_window_secs = 120;
        actual.discard = DiscardPolicy::New;
        actual.replicas = 3;
        assert_eq!(
            field_changes(&actual, &wanted),
            [
                "subjects +trade.>, -foo.>",
                "discard new -> old",
                "max_msgs unlimited -> 5000000",
                "max_bytes 1 GiB -> 2 GiB",
                "max_age 24h -> 48h",
                "duplicate_window 2m -> 5m",
                "replicas 3 -> 1",
            ]
        );
        assert!(field_changes(&wanted, &wanted).is_empty());
    }

    #[test]
    fn units() {
        assert_eq!(bytes(1536), "1536 B");
        assert_eq!(bytes(3 << 20), "3 MiB");
        assert_eq!(bytes(2048), "2 KiB");
        assert_eq!(secs(90), "90s");
        assert_eq!(secs(0), "unlimited");
    }

    #[test]
    fn created_lines() {
        let s = specs();
        assert_eq!(
            created_line(&s[0], false),
            "created stream MARKET_DATA (7 subjects, R1)"
        );
        assert_eq!(
            created_line(&s[1], true),
            "would create stream ORDERBOOK_SNAP (1 subject, R1)"
        );
    }

    #[test]
    fn outcome_messages() {
        let server = "nats-server 2.9.10";
        let r = Report {
            unchanged: vec!["MARKET_DATA".into(), "ORDERBOOK_SNAP".into()],
            ..Default::default()
        };
        let o = r.outcome(false, server);
        assert_eq!(o.status, StepStatus::Ok);
        assert_eq!(
            o.message,
            "streams: MARKET_DATA, ORDERBOOK_SNAP already as wanted (nats-server 2.9.10)"
        );
        let r = Report {
            updated: vec!["ORDERBOOK_SNAP".into()],
            unchanged: vec!["MARKET_DATA".into()],
            changes: vec!["would update stream ORDERBOOK_SNAP: max_age 24h -> 48h".into()],
            ..Default::default()
        };
        let o = r.outcome(true, server);
        assert_eq!(o.status, StepStatus::Changed);
        assert_eq!(
            o.message,
            "streams: would update ORDERBOOK_SNAP; MARKET_DATA already as wanted (nats-server \
             2.9.10)"
        );
        assert_eq!(o.changes.len(), 1);
    }

    #[test]
    fn errors_say_what_and_what_to_do() {
        let e = storage_failure("MARKET_DATA", StorageType::Memory, StorageType::File, 42);
        assert_eq!(
            e.message,
            "stream MARKET_DATA uses memory storage and holds 42 messages; wanted file storage, \
             which JetStream cannot change in place"
        );
        assert!(e.hint.unwrap().contains("nats stream rm MARKET_DATA"));

        let e = not_applied(
            "MARKET_DATA",
            "nats-server 2.9.10",
            &["max_age: server has 3600s, wanted 172800s".into()],
        );
        assert_eq!(
            e.message,
            "stream MARKET_DATA: nats-server 2.9.10 accepted the config but did not apply it: \
             max_age: server has 3600s, wanted 172800s"
        );

        let e = js_failure("update stream X", JsProblem::NotEnabled);
        assert_eq!(
            e.message,
            "update stream X failed: JetStream is not enabled on the server"
        );
        assert_eq!(e.hint.as_deref(), Some(HINT_JS_DISABLED));
        let e = js_failure(
            "update stream X",
            JsProblem::Refused(
                "replicas > 1 not supported in non-clustered mode (code 500, error code 10074)"
                    .into(),
            ),
        );
        assert_eq!(
            e.message,
            "update stream X failed: the server refused: replicas > 1 not supported in \
             non-clustered mode (code 500, error code 10074)"
        );
        assert!(e.hint.unwrap().contains("never deletes"));
    }

    #[test]
    fn connect_errors() {
        let e = connect_failure(
            "nats://127.0.0.1:4222",
            &ConnectErrorKind::Io,
            "IO error: Connection refused (os error 111)",
        );
        assert_eq!(
            e.message,
            "cannot connect to NATS at nats://127.0.0.1:4222: IO error: Connection refused (os \
             error 111)"
        );
        assert_eq!(e.hint.as_deref(), Some(HINT_NOT_RUNNING));
        let e = connect_failure("x", &ConnectErrorKind::AuthorizationViolation, "no");
        assert!(e.hint.unwrap().contains("credentials"));
    }

    #[test]
    fn server_errors_are_classified() {
        let j: async_nats::jetstream::Error = serde_json::from_value(
            serde_json::json!({"code": 503, "err_code": 10076, "description": "jetstream not enabled"}),
        )
        .unwrap();
        assert_eq!(server_problem(&j), JsProblem::NotEnabled);
        let j: async_nats::jetstream::Error = serde_json::from_value(serde_json::json!(
            {"code": 500, "err_code": 10052, "description": "stream configuration update can not change storage type"}
        ))
        .unwrap();
        assert_eq!(
            server_problem(&j),
            JsProblem::Refused(
                "stream configuration update can not change storage type (code 500, error code \
                 10052)"
                    .into()
            )
        );
    }

    #[test]
    fn only_a_settling_cluster_is_waited_for() {
        let refusal = |code: u64| -> CreateStreamError {
            let j: async_nats::jetstream::Error = serde_json::from_value(serde_json::json!(
                {"code": 400, "err_code": code, "description": "x"}
            ))
            .unwrap();
            j.into()
        };
        // "no suitable peers for placement", "JetStream system temporarily unavailable"
        assert!(cluster_settling(&refusal(10005)));
        assert!(cluster_settling(&refusal(10008)));
        // "replicas > 1 not supported in non-clustered mode": no wait makes that work.
        assert!(!cluster_settling(&refusal(10074)));
    }
}

/// Against a real nats-server with JetStream: `MP_TEST_NATS_URL=nats://IP:4222 cargo test --lib
/// agent::actions -- --ignored`. Each test uses its own stream names and subjects and removes
/// its streams at the end (test cleanup; the action itself never deletes).
#[cfg(test)]
mod real {
    use super::*;
    use crate::agent::event::StepStatus;
    use crate::stack::{streams, StreamLimits};

    fn url() -> String {
        std::env::var("MP_TEST_NATS_URL").expect("set MP_TEST_NATS_URL (e.g. nats://IP:4222)")
    }

    /// MarketPrism's two streams, renamed `T<tag>_MARKET_DATA`, subjects under `t<tag>.`.
    fn test_specs(tag: &str) -> Vec<StreamSpec> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = format!("T{tag}{}{nanos}", std::process::id());
        streams(1, &StreamLimits::default())
            .into_iter()
            .map(|mut s| {
                s.name = format!("{p}_{}", s.name);
                s.subjects = s
                    .subjects
                    .iter()
                    .map(|x| format!("{}.{x}", p.to_lowercase()))
                    .collect();
                s
            })
            .collect()
    }

    async fn js() -> Context {
        let client = async_nats::connect(url()).await.unwrap();
        jetstream::new(client)
    }

    async fn cleanup(js: &Context, specs: &[StreamSpec]) {
        for s in specs {
            js.delete_stream(&s.name).await.unwrap();
        }
    }

    #[tokio::test]
    #[ignore = "needs nats-server with JetStream: MP_TEST_NATS_URL"]
    async fn streams_are_created_then_unchanged() {
        let url = url();
        let js = js().await;
        let specs = test_specs("a");

        let check = apply(&url, &specs, true).await.unwrap();
        eprintln!("check: {check:?}");
        assert_eq!(check.status, StepStatus::Changed);
        assert_eq!(
            check.changes[0],
            format!("would create stream {} (7 subjects, R1)", specs[0].name)
        );
        assert!(stream_info(&js, &specs[0].name).await.unwrap().is_none());

        let first = apply(&url, &specs, false).await.unwrap();
        eprintln!("first: {first:?}");
        assert_eq!(first.status, StepStatus::Changed);
        assert_eq!(
            first.changes,
            [
                format!("created stream {} (7 subjects, R1)", specs[0].name),
                format!("created stream {} (1 subject, R1)", specs[1].name),
            ]
        );
        for s in &specs {
            let info = stream_info(&js, &s.name).await.unwrap().unwrap();
            assert_eq!(spec_of(&info.config), *s);
        }

        let second = apply(&url, &specs, false).await.unwrap();
        eprintln!("second: {second:?}");
        assert_eq!(second.status, StepStatus::Ok);
        assert!(second.changes.is_empty());
        assert!(second.message.contains("already as wanted"));

        cleanup(&js, &specs).await;
    }

    #[tokio::test]
    #[ignore = "needs nats-server with JetStream: MP_TEST_NATS_URL"]
    async fn a_changed_stream_is_updated_in_place_with_its_messages() {
        let url = url();
        let js = js().await;
        let specs = test_specs("b");
        apply(&url, &specs, false).await.unwrap();

        // Publish into the order book stream, then change it by hand.
        let snap = &specs[1];
        let subject = snap.subjects[0].replace('>', "binance.spot.BTC-USDT");
        for i in 0..5 {
            js.publish(subject.clone(), format!("{{\"n\":{i}}}").into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        let mut by_hand = stream_info(&js, &snap.name).await.unwrap().unwrap().config;
        by_hand.max_age = Duration::from_secs(24 * 3600);
        by_hand.max_messages = 1_000_000;
        js.update_stream(&by_hand).await.unwrap();

        let check = apply(&url, &specs, true).await.unwrap();
        eprintln!("check: {check:?}");
        let line = format!(
            "stream {}: max_msgs 1000000 -> 5000000, max_age 24h -> 48h",
            snap.name
        );
        assert_eq!(check.changes, [format!("would update {line}")]);
        let info = stream_info(&js, &snap.name).await.unwrap().unwrap();
        assert_eq!(
            info.config.max_age,
            Duration::from_secs(24 * 3600),
            "check changed it"
        );

        let fixed = apply(&url, &specs, false).await.unwrap();
        eprintln!("fixed: {fixed:?}");
        assert_eq!(fixed.status, StepStatus::Changed);
        assert_eq!(fixed.changes, [format!("updated {line}")]);
        let info = stream_info(&js, &snap.name).await.unwrap().unwrap();
        assert_eq!(spec_of(&info.config), *snap);
        assert_eq!(info.state.messages, 5, "messages were lost");

        let again = apply(&url, &specs, false).await.unwrap();
        assert_eq!(again.status, StepStatus::Ok);

        cleanup(&js, &specs).await;
    }

    #[tokio::test]
    #[ignore = "needs nats-server with JetStream: MP_TEST_NATS_URL"]
    async fn what_cannot_be_done_in_place_fails_and_deletes_nothing() {
        let url = url();
        let js = js().await;
        let mut specs = test_specs("c");
        specs.truncate(1);
        let mut memory = stream_config(&specs[0]);
        memory.storage = stream::StorageType::Memory;
        js.create_stream(memory).await.unwrap();
        let subject = specs[0].subjects[0].replace('>', "okx.spot.BTC-USDT");
        js.publish(subject, "{}".into())
            .await
            .unwrap()
            .await
            .unwrap();

        let e = apply(&url, &specs, false).await.unwrap_err();
        eprintln!("storage: {e:?}");
        assert_eq!(
            e.message,
            format!(
                "stream {} uses memory storage and holds 1 message; wanted file storage, which \
                 JetStream cannot change in place",
                specs[0].name
            )
        );
        let info = stream_info(&js, &specs[0].name).await.unwrap().unwrap();
        assert_eq!(info.state.messages, 1);

        // Three replicas on one server: the server refuses, and says why.
        let mut three = specs.clone();
        three[0].name = format!("{}_R3", three[0].name);
        three[0].subjects = vec![format!("{}.r3.>", three[0].name.to_lowercase())];
        three[0].replicas = 3;
        let e = apply(&url, &three, false).await.unwrap_err();
        eprintln!("replicas: {e:?}");
        let refused = e
            .message
            .starts_with(&format!("create stream {} failed: ", three[0].name));
        let not_applied = e
            .message
            .ends_with("did not apply it: replicas: server has 1, wanted 3");
        assert!(refused || not_applied, "{}", e.message);
        if not_applied {
            cleanup(&js, &three).await;
        }

        let e = apply("nats://127.0.0.1:1", &specs, false)
            .await
            .unwrap_err();
        eprintln!("refused: {e:?}");
        assert_eq!(e.hint.as_deref(), Some(HINT_NOT_RUNNING));

        cleanup(&js, &specs).await;
    }
}
