//! `agent lease`: the host's side of the fleet lease (`run::lease`). One JSON file, read and
//! changed under an exclusive `flock` of `FILE.lock`, so that two control nodes never both take
//! it; expiry is decided on this host's clock.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::plan::probe::{LeaseAnswer, LeaseCall};

/// The lease format this build writes and understands.
const FORMAT: u64 = 1;
/// How much of a lease file an answer quotes.
const BODY_BYTES: u64 = 4096;
/// How long to wait for another acquirer's lock: each holds it for milliseconds.
const LOCK_WAIT: Duration = Duration::from_secs(30);

pub const HELD: u32 = 10;
pub const CORRUPT: u32 = 11;
pub const FUTURE: u32 = 12;
pub const NOT_OURS: u32 = 13;
pub const IO: u32 = 20;
pub const NO_LOCK: u32 = 21;

pub fn answer(call: &LeaseCall) -> LeaseAnswer {
    let file = Path::new(&call.file);
    let mut out = LeaseAnswer {
        now: now(),
        state: "absent".into(),
        code: 0,
        body: String::new(),
        message: None,
    };
    let exists = file.exists();
    if call.action == "read" {
        if exists {
            out.state = "found".into();
            out.body = head(file);
        }
        return out;
    }
    // Nothing to remove where there is none, nor a directory to make for it.
    if !exists && matches!(call.action.as_str(), "release" | "force") {
        return out;
    }
    let failed = |mut out: LeaseAnswer, code, message: String| {
        out.code = code;
        out.message = Some(message);
        out
    };
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(e) = std::fs::create_dir_all(dir) {
            return failed(out, IO, format!("cannot make {}: {e}", dir.display()));
        }
    }
    let lock_path = format!("{}.lock", call.file);
    let _lock = match lock(&lock_path) {
        Ok(lock) => lock,
        Err(message) => return failed(out, NO_LOCK, message),
    };
    // The clock once the lock is ours: what decides expiry.
    out.now = now();
    let content = match std::fs::read_to_string(file) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return failed(out, IO, format!("cannot read {}: {e}", call.file)),
    };
    let lease: Option<Value> = content
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok());
    let field = |name: &str| lease.as_ref().and_then(|l| l.get(name));
    let text = |name: &str| field(name).and_then(Value::as_str).unwrap_or("");
    let state = match &content {
        None => "absent",
        Some(_) => match (
            field("format").and_then(Value::as_u64),
            field("expires_epoch").and_then(Value::as_i64),
        ) {
            (Some(format), Some(expiry)) => {
                if format > FORMAT {
                    "future"
                } else if !call.run_id.is_empty() && text("run_id") == call.run_id {
                    "ours"
                } else if expiry > out.now && call.takeover.as_deref() != Some(text("run_id")) {
                    "held"
                } else {
                    "expired"
                }
            }
            // A newer format may lack today's fields: it is still not ours to judge.
            _ if field("format").and_then(Value::as_u64).unwrap_or(0) > FORMAT => "future",
            _ => "corrupt",
        },
    };
    out.state = state.into();
    let found = || head(file);
    match (call.action.as_str(), state) {
        ("force", _) => {}
        (_, "corrupt") => return done(out, CORRUPT, found()),
        (_, "future") => return done(out, FUTURE, found()),
        _ => {}
    }
    let started = || match text("started") {
        "" => stamp(out.now),
        old => old.to_string(),
    };
    match (call.action.as_str(), state) {
        ("acquire", "held") => done(out, HELD, found()),
        ("acquire", "ours") | ("renew", "ours") => {
            let started = started();
            write(out, call, &started)
        }
        ("acquire", _) => {
            let started = stamp(out.now);
            write(out, call, &started)
        }
        ("renew", "absent") => done(out, NOT_OURS, String::new()),
        ("renew", _) => done(out, NOT_OURS, found()),
        ("release", "ours") | ("force", _) if state != "absent" => {
            let body = found();
            match std::fs::remove_file(file) {
                Ok(()) => done(out, 0, body),
                Err(e) => failed(out, IO, format!("cannot remove {}: {e}", call.file)),
            }
        }
        ("release", "absent") | ("force", _) => out,
        ("release", _) => done(out, 0, found()),
        (action, _) => failed(out, IO, format!("unknown lease action {action:?}")),
    }
}

fn done(mut out: LeaseAnswer, code: u32, body: String) -> LeaseAnswer {
    out.code = code;
    out.body = body;
    out
}

/// Writes this run's lease (a temp file, then a rename: a reader never sees half of it).
fn write(mut out: LeaseAnswer, call: &LeaseCall, started: &str) -> LeaseAnswer {
    let expires_epoch = out.now + i64::try_from(call.ttl_secs).unwrap_or(i64::MAX / 2);
    let lease = json!({
        "format": FORMAT,
        "owner": call.owner,
        "run_id": call.run_id,
        "command": call.command,
        "started": started,
        "expires": stamp(expires_epoch),
        "expires_epoch": expires_epoch,
    })
    .to_string();
    let tmp = format!("{}.tmp.{}", call.file, std::process::id());
    let written = std::fs::write(&tmp, format!("{lease}\n")).and_then(|()| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
        std::fs::rename(&tmp, &call.file)
    });
    match written {
        Ok(()) => done(out, 0, lease),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            out.code = IO;
            out.message = Some(format!("cannot write {}: {e}", call.file));
            out
        }
    }
}

/// The exclusive lock, held until the returned file is dropped.
fn lock(path: &str) -> Result<File, String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open {path}: {e}"))?;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(format!(
                    "cannot lock {path} within {} s: another mp-remote is stuck on this host",
                    LOCK_WAIT.as_secs()
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(format!("cannot lock {path}: {e}")),
        }
    }
}

/// The file's first [`BODY_BYTES`], as text.
fn head(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(file) = File::open(path) {
        let _ = file.take(BODY_BYTES).read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `2025-01-02T03:04:05Z`.
fn stamp(epoch: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_secs(u64::try_from(epoch).unwrap_or(0));
    humantime::format_rfc3339_seconds(time).to_string()
}

/// For the tests beside `run::lease`: the answer as the agent prints it.
#[cfg(test)]
pub fn answer_line(call: &LeaseCall) -> String {
    let event = crate::plan::probe::OpEvent::Leased(answer(call));
    let mut line = serde_json::to_string(&event).unwrap_or_default();
    line.push('\n');
    line
}
