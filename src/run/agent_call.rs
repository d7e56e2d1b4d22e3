//! Running one of the agent's host-side commands (`agent status|control|logs`) on a host: the
//! request goes in on stdin, typed events come back as JSON lines. The agent is the one deploy
//! pushed (content-addressed by its sha256). When that exact build is not on the host it is
//! uploaded first: kept where deploy keeps it on a host mp-remote already deployed, but only
//! for this call (then removed) on one it did not, so that `status` after `clean` leaves
//! nothing behind.

use serde::Serialize;

use std::sync::Arc;

use super::agent_exec::push_agent;
use super::agents::{Agents, HostKind};
use crate::inventory::{Connection, Host};
use crate::plan::probe::OpEvent;
use crate::transport::shell::quote;
use crate::transport::Transport;

/// Printed (exit 97) when the agent is not on the host.
const NO_AGENT: &str = "mp-remote:no-agent";

/// The agents day-2 commands run on hosts (this very program, or a static one for the host's
/// arch from an agents directory), read once per process.
pub fn day2_agents() -> Result<Arc<Agents>, String> {
    static AGENTS: std::sync::OnceLock<Result<Arc<Agents>, String>> = std::sync::OnceLock::new();
    AGENTS
        .get_or_init(|| {
            Agents::new(None)
                .map(Arc::new)
                .map_err(|e| format!("{e:#}"))
        })
        .clone()
}

/// What the host said when the agent was not there.
struct Missing {
    is_root: bool,
    deployed: bool,
    uname: String,
    glibc: Option<Vec<u32>>,
}

impl Missing {
    fn parse(stdout: &str) -> Option<Missing> {
        let line = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(NO_AGENT).map(str::to_string))?;
        let mut words = line.split_whitespace();
        Some(Missing {
            is_root: words.next() == Some("0"),
            deployed: words.next() == Some("deployed"),
            uname: words.next().unwrap_or("").to_string(),
            glibc: words.next().and_then(super::agent_glibc::parse),
        })
    }
}

/// Runs `agent <op>` with `request`; returns its events (through `done`), or an error naming
/// what the agent said went wrong.
pub async fn call(
    transport: &dyn Transport,
    host: &Host,
    agents: &Agents,
    op: &str,
    request: &impl Serialize,
) -> anyhow::Result<Vec<OpEvent>> {
    events(op, exec(transport, host, agents, op, request).await?)
}

/// Runs `agent <op>` with `request` (finding or placing the agent first); returns its output
/// as it is. A transport failure is a [`crate::transport::TransportError`] inside the error.
pub async fn exec(
    transport: &dyn Transport,
    host: &Host,
    agents: &Agents,
    op: &str,
    request: &impl Serialize,
) -> anyhow::Result<crate::transport::ExecOutput> {
    let request = serde_json::to_vec(request)?;
    if host.connection == Connection::Local {
        let me = std::env::current_exe()?;
        let command = run_line(&quote(&me.to_string_lossy()), op, host.become_);
        return Ok(transport.exec(&command, &request).await?);
    }
    // This program first: on a host it deployed, it is there.
    let own = agents.own()?;
    let mut command = find_and_run(&own.sha256, op, host.become_);
    let mut output = transport.exec(&command, &request).await?;
    let mut missing = Missing::parse(&output.stdout_text());
    let mut agent = own.clone();
    if let Some(m) = &missing {
        agent = agents.for_host(&HostKind {
            name: &host.name,
            uname: &m.uname,
            glibc: m.glibc.clone(),
            local: false,
        })?;
        if agent.sha256 != own.sha256 {
            // The host's own kind of agent, which its deploy pushed.
            command = find_and_run(&agent.sha256, op, host.become_);
            output = transport.exec(&command, &request).await?;
            missing = Missing::parse(&output.stdout_text());
        }
    }
    if let Some(m) = missing {
        if m.deployed {
            push_agent(transport, host, m.is_root, &agent).await?;
            output = transport.exec(&command, &request).await?;
        } else {
            let path = format!(
                "/tmp/mp-remote-agent-{}-{}",
                &agent.sha256[..16],
                std::process::id()
            );
            transport.upload(&agent.bytes, &path, 0o700).await?;
            let once = format!(
                "{}; rc=$?; rm -f {path}; exit $rc",
                run_line(&path, op, host.become_).trim_start_matches("exec ")
            );
            output = transport.exec(&once, &request).await?;
        }
    }
    Ok(output)
}

/// The agent's answer, through `done`; its `failed` as an error.
fn events(op: &str, output: crate::transport::ExecOutput) -> anyhow::Result<Vec<OpEvent>> {
    let mut events = Vec::new();
    for line in output.stdout_text().lines() {
        let Ok(event) = serde_json::from_str::<OpEvent>(line.trim()) else {
            continue;
        };
        match event {
            OpEvent::Done => return Ok(events),
            OpEvent::Failed { message } => anyhow::bail!("{message}"),
            event => events.push(event),
        }
    }
    let stderr = output.stderr_text();
    anyhow::bail!(
        "`mp-remote agent {op}` ended without an answer (exit {:?}){}{}",
        output.status,
        if stderr.trim().is_empty() { "" } else { ": " },
        crate::agent::outcome::tail(stderr.trim(), 5)
    )
}

/// The agent at `path` running `op`, through sudo when the host says `become`.
pub fn run_line(path: &str, op: &str, become_root: bool) -> String {
    let sudo = if become_root { "sudo -n -- " } else { "" };
    format!("exec {sudo}{path} agent {op}")
}

/// Looks for the agent where `push_agent` puts it (root: the state dir; a sudo user: its
/// home), as the login user, then runs it; prints [`NO_AGENT`], the user's uid and whether
/// mp-remote keeps state here (`deployed`) when it is in neither.
fn find_and_run(sha256: &str, op: &str, become_root: bool) -> String {
    let state = crate::plan::build::STATE_DIR;
    find_then(
        sha256,
        op,
        become_root,
        &format!(
            "s=none; {{ [ -d {state} ] || [ -d \"$HOME/.mp-remote\" ]; }} && s=deployed; \
             echo {NO_AGENT} $(id -u) $s $(uname -m) $(getconf GNU_LIBC_VERSION 2>/dev/null | cut -d' ' -f2); exit 97"
        ),
    )
}

/// Runs `agent <op>` of the build `sha256` where `push_agent` puts it, else `otherwise`.
pub fn find_then(sha256: &str, op: &str, become_root: bool, otherwise: &str) -> String {
    let name = format!("mp-remote-{}", &sha256[..16]);
    let state = crate::plan::build::STATE_DIR;
    format!(
        "a={state}/bin/{name}; [ -x \"$a\" ] || a=\"$HOME/.mp-remote/bin/{name}\"; if [ -x \"$a\" ]; then {}; fi; {otherwise}",
        run_line("\"$a\"", op, become_root)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_the_pushed_agent_or_says_it_is_missing() {
        let sha = "0123456789abcdef0123456789abcdef";
        let line = find_and_run(sha, "status", true);
        assert!(line.starts_with("a=/var/lib/mp-remote/bin/mp-remote-0123456789abcdef;"));
        assert!(line.contains("then exec sudo -n -- \"$a\" agent status; fi"));
        assert!(line.contains("echo mp-remote:no-agent $(id -u) $s $(uname -m)"));
        let m = Missing::parse("banner\nmp-remote:no-agent 0 deployed aarch64 2.36\n").unwrap();
        assert!(m.is_root && m.deployed);
        assert_eq!((m.uname.as_str(), m.glibc), ("aarch64", Some(vec![2, 36])));
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", &line])
            .status()
            .unwrap();
        assert!(out.success());
        assert_eq!(run_line("/x", "logs", false), "exec /x agent logs");
    }
}
