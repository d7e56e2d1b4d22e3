//! Getting the agent onto a host and running a plan with it: the binary is pushed once
//! (content-addressed by its sha256), the plan goes in on stdin, events come back as JSON lines.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use sha2::{Digest, Sha256};

use super::reattach::{reattach, EventStream};
use crate::agent::AgentEvent;
use crate::inventory::{Connection, Host, Role};
use crate::plan::{Checksums, Components, HostPlan, Source};
use crate::transport::shell::{quote, with_become};
use crate::transport::{Stream, Transport};

/// The agent binary as the control node has it.
#[derive(Debug, Clone)]
pub struct AgentBinary {
    pub bytes: Arc<Vec<u8>>,
    pub sha256: String,
    /// The glibc it needs (None: static or not glibc), read once here, not per host.
    pub glibc: Option<Vec<u32>>,
}

impl AgentBinary {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the agent binary {}", path.display()))?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let glibc = super::agent_glibc::required(&bytes);
        Ok(Self {
            bytes: Arc::new(bytes),
            sha256,
            glibc,
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
    let path = agent_path(is_root, &agent.sha256);
    let outcome = transport.upload(&agent.bytes, &path, 0o755).await?;
    Ok((path, outcome == crate::transport::UploadOutcome::Uploaded))
}

/// The directories [`agent_path`] puts agents in (root's, then a login user's): the facts
/// probe lists what is there, so a re-run needs no exec to find its agent.
pub fn agent_dirs() -> [String; 2] {
    [
        format!("{}/bin", crate::plan::build::STATE_DIR),
        ".mp-remote/bin".into(),
    ]
}

/// Where the agent of `sha256` goes on a host: the state directory for root, else the login
/// user's home (relative: an exec starts there).
pub fn agent_path(is_root: bool, sha256: &str) -> String {
    let name = format!("mp-remote-{}", &sha256[..16.min(sha256.len())]);
    let [root, user] = agent_dirs();
    format!("{}/{name}", if is_root { root } else { user })
}

/// A `source = "push"` file, read and verified on the control node before any host is touched.
#[derive(Debug, Clone)]
pub struct PushArtifact {
    pub role: Role,
    /// As the inventory names it: its file name names the upload.
    pub artifact: String,
    pub bytes: Arc<Vec<u8>>,
    pub sha256: String,
}

/// Reads the push artifacts of the components the selected hosts run (paths relative to the
/// inventory's directory) and checks their sha256: a wrong or unpinned file stops the deploy
/// before any host is touched.
pub fn load_push_artifacts(
    components: &Components,
    inventory_path: &Path,
    selected: &[&Host],
) -> anyhow::Result<Vec<PushArtifact>> {
    let mut loaded = Vec::new();
    for role in Role::ALL {
        let name = role.component().name;
        let Some(Source::Push {
            artifact, sha256, ..
        }) = components.source(name)
        else {
            continue;
        };
        if !selected.iter().any(|h| h.roles.contains(&role)) {
            continue;
        }
        for path in artifact.paths() {
            let (bytes, sha256) = read_pushed(inventory_path, name, path, sha256.as_ref())?;
            loaded.push(PushArtifact {
                role,
                artifact: path.to_string(),
                bytes: Arc::new(bytes),
                sha256,
            });
        }
    }
    Ok(loaded)
}

/// One pushed file, read and checked against its pinned sum.
fn read_pushed(
    inventory_path: &Path,
    component: &str,
    artifact: &str,
    sums: Option<&Checksums>,
) -> anyhow::Result<(Vec<u8>, String)> {
    let inv = inventory_path.display();
    let local = inventory_path
        .parent()
        .unwrap_or(Path::new("."))
        .join(artifact);
    let bytes = std::fs::read(&local).with_context(|| {
        format!(
            "{inv}: [components.{component}] artifact \"{artifact}\": cannot read {} (a path relative to the inventory's directory)",
            local.display()
        )
    })?;
    let actual = hex::encode(Sha256::digest(&bytes));
    let file = artifact.rsplit('/').next().unwrap_or(artifact);
    match sums.and_then(|s| s.for_file(file)) {
        None if sums.is_none() => anyhow::bail!(
            "{inv}: [components.{component}] source = \"push\" needs the artifact's sha256: make sure {} is the file to deploy, then add the line sha256 = \"{actual}\"; nothing was changed on any host",
            local.display()
        ),
        None => anyhow::bail!(
            "{inv}: [components.{component}] sha256 has no sum for {file}: make sure {} is the file to deploy, then add \"{file}\" = \"{actual}\" to it; nothing was changed on any host",
            local.display()
        ),
        Some(expected) if !expected.eq_ignore_ascii_case(&actual) => anyhow::bail!(
            "{inv}: [components.{component}] artifact {}: sha256 mismatch: expected {expected}, got {actual}; refused before upload, nothing was changed on any host",
            local.display()
        ),
        Some(_) => Ok((bytes, actual)),
    }
}

/// Uploads the push artifacts of `host`'s roles where its plan installs them from
/// ([`crate::plan::install::pushed_artifact_path`]); content-addressed, so skipped when the
/// file is already there. `--check` uploads nothing.
pub async fn push_artifacts(
    transport: &dyn Transport,
    host: &Host,
    is_root: bool,
    artifacts: &[PushArtifact],
    check_only: bool,
) -> anyhow::Result<()> {
    if check_only {
        return Ok(());
    }
    for a in artifacts.iter().filter(|a| host.roles.contains(&a.role)) {
        let path = crate::plan::install::pushed_artifact_path(is_root, &a.sha256, &a.artifact);
        transport.upload(&a.bytes, &path, 0o644).await?;
    }
    Ok(())
}

/// Runs `plan` with the agent at `agent_path`, handing each event to `on_event` as it comes.
/// Returns the events. When the agent's output is cut after its `run_started` (the connection
/// dropped), the agent goes on and this re-attaches to its event log ([`reattach`]); an agent
/// that ends without `run_finished` is an error with its stderr.
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
    let mut events = EventStream::new(&host.name, on_event);
    let mut stderr = Vec::<u8>::new();
    let mut sink = |stream: Stream, data: &[u8]| match stream {
        Stream::Stdout => events.feed(data),
        Stream::Stderr => stderr.extend_from_slice(data),
    };
    let result = transport
        .exec_streaming(&command, &plan_json, &mut sink)
        .await;
    if events.finished() {
        return Ok(events.events);
    }
    let text = String::from_utf8_lossy(&stderr);
    if events.started() {
        let cause = match &result {
            Ok(Some(code)) => format!("the agent exited ({code}) before its run finished"),
            Ok(None) => "the agent's output ended before its run finished".to_string(),
            Err(e) => {
                let e = e.to_string();
                let e = e.strip_prefix(&format!("{}: ", host.name)).unwrap_or(&e);
                format!("connection lost during the run ({e})")
            }
        };
        reattach(
            transport,
            host,
            agent_path,
            plan,
            &mut events,
            &cause,
            &text,
        )
        .await?;
        return Ok(events.events);
    }
    let status = result?;
    let tail = crate::agent::outcome::tail(text.trim(), 10);
    anyhow::bail!(
        "the agent ended without finishing its plan (exit {status:?}){}{}",
        if tail.is_empty() { "" } else { ": " },
        tail
    );
}

/// Ctrl-C on the control node: the agent does not die with its connection (so that a cut
/// deploy finishes), so it is told to stop here, over a fresh connection, by `agent stop`
/// (`agent::hostops`). Returns one line.
pub async fn stop_agent(
    transport: &dyn Transport,
    host: &Host,
    run_id: &str,
) -> anyhow::Result<String> {
    let spare_group = if host.connection == Connection::Local {
        // SAFETY: getpgrp cannot fail.
        unsafe { libc::getpgrp() as u32 }
    } else {
        0
    };
    let request = crate::plan::probe::StopRequest {
        state_dir: crate::plan::build::STATE_DIR.into(),
        run_id: run_id.into(),
        spare_group,
    };
    let agents = super::agent_call::day2_agents().map_err(|e| anyhow::anyhow!(e))?;
    let events = super::agent_call::call(transport, host, &agents, "stop", &request).await?;
    events
        .into_iter()
        .find_map(|e| match e {
            crate::plan::probe::OpEvent::Stopped(stopped) => Some(stopped.line()),
            _ => None,
        })
        .ok_or_else(|| {
            anyhow::anyhow!("`mp-remote agent stop` answered without saying what it did")
        })
}
