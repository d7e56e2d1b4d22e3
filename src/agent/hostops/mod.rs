//! The agent's host-side commands besides running a plan: `agent status`, `agent control`,
//! `agent logs`, `agent clean`, `agent stop` and `agent lease`. Each reads its request (JSON, `plan::probe`) on stdin and answers with
//! typed events, one JSON line each ([`OpEvent`]), closed by `done`, like a plan's run.

mod clean;
mod control;
pub mod lease;
mod logs;
mod observe;
mod stop;

use std::io::{Read, Write};

use crate::plan::probe::{
    BeginRequest, Begun, CleanRequest, ControlRequest, LeaseCall, LogsRequest, OpEvent,
    ProbeRequest, StopRequest,
};

pub use control::NO_SYSTEMD;
pub use observe::observe;

/// Which command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Status,
    Control,
    Logs,
    Clean,
    Stop,
    Lease,
    Begin,
}

/// Exit codes: 0 answered (whatever the services' state), 1 the request could not be read,
/// 2 it could not be done (a log that cannot be read).
pub async fn run(op: Op) -> i32 {
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        return failed(&format!("cannot read the request from stdin: {e}"), 1);
    }
    let bad = |e: serde_json::Error| {
        failed(
            &format!("the request is not valid ({e}): control node and agent differ in version?"),
            1,
        )
    };
    match op {
        Op::Status => match serde_json::from_str::<ProbeRequest>(&text) {
            Ok(request) => emit(&OpEvent::Probed(observe::observe(&request).await)),
            Err(e) => return bad(e),
        },
        Op::Control => match serde_json::from_str::<ControlRequest>(&text) {
            Ok(request) => {
                control::control(&request, &mut |done| emit(&OpEvent::Controlled(done))).await
            }
            Err(e) => return bad(e),
        },
        Op::Clean => match serde_json::from_str::<CleanRequest>(&text) {
            Ok(request) => {
                let mut cleaned = clean::clean(&request).await;
                if let Some(call) = &request.release_lease {
                    let answer = lease::answer(call);
                    if answer.code != 0 {
                        cleaned.failed.push(format!(
                            "cannot give back the lease {}: {}",
                            call.file,
                            answer
                                .message
                                .unwrap_or_else(|| format!("code {}", answer.code))
                        ));
                    }
                }
                emit(&OpEvent::Cleaned(cleaned))
            }
            Err(e) => return bad(e),
        },
        Op::Stop => match serde_json::from_str::<StopRequest>(&text) {
            Ok(request) => emit(&OpEvent::Stopped(stop::stop(&request).await)),
            Err(e) => return bad(e),
        },
        Op::Begin => match serde_json::from_str::<BeginRequest>(&text) {
            Ok(request) => emit(&OpEvent::Begun(begin(&request).await)),
            Err(e) => return bad(e),
        },
        Op::Lease => match serde_json::from_str::<LeaseCall>(&text) {
            Ok(request) => emit(&OpEvent::Leased(lease::answer(&request))),
            Err(e) => return bad(e),
        },
        Op::Logs => match serde_json::from_str::<LogsRequest>(&text) {
            Ok(request) => match logs::tail(&request.unit, request.lines).await {
                Ok(text) => emit(&OpEvent::Log { text }),
                Err(message) => return failed(&message, 2),
            },
            Err(e) => return bad(e),
        },
    }
    emit(&OpEvent::Done);
    0
}

/// `agent begin`: waits for an agent a cut connection left running (it may be about to write a
/// secret), reads the secrets, takes the lease: one exec where a run starts on a host.
async fn begin(request: &BeginRequest) -> Begun {
    let lock = std::path::Path::new(&request.state_dir).join("agent.lock");
    if lock.exists() {
        // Held only while it waits; whether it could be had changes nothing read here.
        let _ =
            crate::agent::lock::acquire(&request.state_dir, crate::agent::lock::WAIT, || {}).await;
    }
    let secrets = request
        .secrets
        .iter()
        .map(|path| {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|text| text.lines().next().map(|l| l.trim().to_string()))
                .unwrap_or_default()
        })
        .collect();
    Begun {
        secrets,
        lease: request.lease.as_ref().map(lease::answer),
    }
}

fn failed(message: &str, code: i32) -> i32 {
    emit(&OpEvent::Failed {
        message: message.to_string(),
    });
    code
}

/// One event on stdout, flushed: the control node reads them as they come.
fn emit(event: &OpEvent) {
    if let Ok(line) = serde_json::to_string(event) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}
