//! Getting the agent onto a host and running a plan with it: the binary is pushed once
//! (content-addressed by its sha256), the plan goes in on stdin, events come back as JSON lines.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::agent::AgentEvent;
use crate::inventory::{Connection, Host};
use crate::plan::HostPlan;
use crate::transport::shell::{quote, with_become};
use crate::transport::{Stream, Transport};

/// The agent binary as the control node has it.
#[derive(Debug, Clone)]
pub struct AgentBinary {
    pub bytes: Arc<Vec<u8>>,
    pub sha256: String,
}

impl AgentBinary {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the agent binary {}", path.display()))?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        Ok(Self {
            bytes: Arc::new(bytes),
            sha256,
        })
    }
}

/// Puts the agent on the host unless that exact build is already there; returns its path.
/// Root installs it under the state dir; a sudo user keeps it in its home (no sudo needed to
/// upload), and runs it through sudo.
pub async fn push_agent(
    transport: &dyn Transport,
    host: &Host,
    is_root: bool,
    agent: &AgentBinary,
) -> anyhow::Result<(String, bool)> {
    if host.connection == Connection::Local {
        let me = std::env::current_exe().context("cannot locate this program")?;
        return Ok((me.to_string_lossy().into_owned(), false));
    }
    let name = format!("mp-remote-{}", &agent.sha256[..16]);
    let path = if is_root {
        format!("{}/bin/{name}", crate::plan::build::STATE_DIR)
    } else {
        format!(".mp-remote/bin/{name}")
    };
    let outcome = transport.upload(&agent.bytes, &path, 0o755).await?;
    Ok((path, outcome == crate::transport::UploadOutcome::Uploaded))
}

/// Runs `plan` with the agent at `agent_path`, handing each event to `on_event` as it comes.
/// Returns the events; an agent that ends without `run_finished` is an error with its stderr.
pub async fn run_plan(
    transport: &dyn Transport,
    host: &Host,
    agent_path: &str,
    plan: &HostPlan,
    on_event: &(dyn Fn(&str, &AgentEvent) + Send + Sync),
) -> anyhow::Result<Vec<AgentEvent>> {
    let plan_json = serde_json::to_vec(plan).context("cannot encode the plan")?;
    let command = with_become(
        &format!("{} agent run --plan -", quote(agent_path)),
        host.become_,
    );
    let mut events = Vec::new();
    let mut pending = Vec::<u8>::new();
    let mut stderr = Vec::<u8>::new();
    let mut sink = |stream: Stream, data: &[u8]| match stream {
        Stream::Stdout => {
            pending.extend_from_slice(data);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                match serde_json::from_slice::<AgentEvent>(&line) {
                    Ok(event) => {
                        on_event(&host.name, &event);
                        events.push(event);
                    }
                    Err(_) => tracing::debug!(
                        "{}: agent said: {}",
                        host.name,
                        String::from_utf8_lossy(&line).trim()
                    ),
                }
            }
        }
        Stream::Stderr => stderr.extend_from_slice(data),
    };
    let status = transport
        .exec_streaming(&command, &plan_json, &mut sink)
        .await?;
    let finished = events
        .iter()
        .any(|e| matches!(e, AgentEvent::RunFinished { .. }));
    if !finished {
        let text = String::from_utf8_lossy(&stderr);
        let tail = crate::agent::outcome::tail(text.trim(), 10);
        anyhow::bail!(
            "the agent ended without finishing its plan (exit {status:?}){}{}",
            if tail.is_empty() { "" } else { ": " },
            tail
        );
    }
    Ok(events)
}
