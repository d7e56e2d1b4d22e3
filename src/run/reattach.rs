//! Re-attaching to a host's agent after its output was cut (the SSH connection dropped): the
//! agent is not tied to the session and goes on, logging its events on the host, so the
//! control node runs `agent follow` over a new connection and gets the events it missed. A
//! dropped connection thus costs a half-done step nothing, and the deploy carries on.

use std::time::{Duration, Instant};

use crate::agent::AgentEvent;
use crate::inventory::Host;
use crate::plan::HostPlan;
use crate::transport::shell::{quote, with_become};
use crate::transport::{Stream, Transport, TransportError};

/// How long re-attaching tries to reach the host again after it was last reached, unless
/// `MP_REMOTE_REATTACH` (a duration: `30s`, `10m`) says otherwise.
const RECONNECT_FOR: Duration = Duration::from_secs(180);

fn reconnect_for() -> Duration {
    std::env::var("MP_REMOTE_REATTACH")
        .ok()
        .and_then(|v| humantime::parse_duration(v.trim()).ok())
        .unwrap_or(RECONNECT_FOR)
}
/// Pauses between attempts double from 1 s up to this.
const MAX_PAUSE: Duration = Duration::from_secs(15);

/// The hint of a run whose agent is gone: the next deploy's steps find done what it did.
const DEPLOY_AGAIN: &str = "deploy again: the next run resumes where this one stopped";

/// An agent's events as they come on stdout, one JSON line each: handed to `on_event` and
/// kept.
pub struct EventStream<'a> {
    host: &'a str,
    on_event: &'a (dyn Fn(&str, &AgentEvent) + Send + Sync),
    /// The start of a line not complete yet.
    pending: Vec<u8>,
    pub events: Vec<AgentEvent>,
}

impl<'a> EventStream<'a> {
    pub fn new(host: &'a str, on_event: &'a (dyn Fn(&str, &AgentEvent) + Send + Sync)) -> Self {
        Self {
            host,
            on_event,
            pending: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Takes a chunk of stdout; every complete event line in it is handed on.
    pub fn feed(&mut self, data: &[u8]) {
        self.pending.extend_from_slice(data);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            match serde_json::from_slice::<AgentEvent>(&line) {
                Ok(event) => {
                    (self.on_event)(self.host, &event);
                    self.events.push(event);
                }
                Err(_) => tracing::debug!(
                    "{}: agent said: {}",
                    self.host,
                    String::from_utf8_lossy(&line).trim()
                ),
            }
        }
    }

    /// The agent said `run_started`: it runs on, detached from this connection.
    pub fn started(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, AgentEvent::RunStarted { .. }))
    }

    pub fn finished(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, AgentEvent::RunFinished { .. }))
    }

    /// The agent's own events received: the lines of its part of the run's log that the
    /// control node has (`resumed` events, of an earlier run, are on stdout only).
    fn own_events(&self) -> usize {
        self.events
            .iter()
            .filter(|e| !matches!(e, AgentEvent::Resumed { .. }))
            .count()
    }
}

/// After the agent's exec ended without `run_finished` (`cause`), and after its
/// `run_started`: follows the agent's event log over a new connection until its
/// `run_finished`, feeding `events` on. Gives up when the host stays unreachable for
/// [`RECONNECT_FOR`], or when the agent is gone (killed, the host restarted); `agent_stderr`
/// (what the agent said before) is added to that error.
pub async fn reattach(
    transport: &dyn Transport,
    host: &Host,
    agent_path: &str,
    plan: &HostPlan,
    events: &mut EventStream<'_>,
    cause: &str,
    agent_stderr: &str,
) -> anyhow::Result<()> {
    tracing::warn!(
        "{}: {cause}; re-attaching to the agent's event log",
        host.name
    );
    let mut reached = Instant::now();
    let mut pause = Duration::from_secs(1);
    loop {
        let skip = events.own_events();
        let command = follow_command(host, agent_path, plan, skip);
        // A line cut in the middle comes again, whole, from the log.
        events.pending.clear();
        let mut stderr = Vec::new();
        let mut sink = |stream: Stream, data: &[u8]| match stream {
            Stream::Stdout => events.feed(data),
            Stream::Stderr => stderr.extend_from_slice(data),
        };
        let result = transport.exec_streaming(&command, b"", &mut sink).await;
        if events.finished() {
            tracing::info!("{}: re-attached; the agent finished its run", host.name);
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&stderr).trim().to_string();
        let failure = match result {
            Ok(Some(3)) => anyhow::bail!("{}", stopped(&stderr, agent_stderr)),
            Ok(Some(code)) => anyhow::bail!(
                "cannot re-attach to the agent: `agent follow` failed (exit {code}): {}; {DEPLOY_AGAIN}",
                crate::agent::outcome::tail(&stderr, 5)
            ),
            Ok(None) => anyhow::anyhow!("`agent follow` ended without an exit status"),
            Err(e) if !worth_retrying(&e) => return Err(e.into()),
            Err(e) => {
                if matches!(e, TransportError::Disconnected { .. }) {
                    // It was reached, then cut again: a new chance.
                    reached = Instant::now();
                }
                e.into()
            }
        };
        if events.own_events() > skip {
            (reached, pause) = (Instant::now(), Duration::from_secs(1));
        }
        if reached.elapsed() >= reconnect_for() {
            return Err(failure.context(format!(
                "the connection was lost during the run and not regained within {} (the agent may still be running: {DEPLOY_AGAIN})",
                humantime::format_duration(reconnect_for())
            )));
        }
        tracing::debug!(
            "{}: re-attaching failed ({failure:#}); again in {pause:?}",
            host.name
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// `agent follow` for the agent of `plan`, after the `skip` events the control node has.
fn follow_command(host: &Host, agent_path: &str, plan: &HostPlan, skip: usize) -> String {
    with_become(
        &format!(
            "{} agent follow --run-id {} --skip {skip} --state-dir {}",
            quote(agent_path),
            quote(&plan.run_id),
            quote(&plan.state_dir)
        ),
        host.become_,
    )
}

/// The agent is gone: `agent follow`'s line, the hint, and what the agent said on stderr.
fn stopped(follow_stderr: &str, agent_stderr: &str) -> String {
    let line = follow_stderr
        .lines()
        .last()
        .unwrap_or("the agent stopped before finishing its run");
    let said = crate::agent::outcome::tail(agent_stderr.trim(), 5);
    if said.is_empty() {
        format!("{line}; {DEPLOY_AGAIN}")
    } else {
        format!("{line}; {DEPLOY_AGAIN}; the agent said: {said}")
    }
}

/// Failures that a later attempt may not meet: the network, sshd, the host rebooting. A
/// refused host key or login stays refused.
fn worth_retrying(error: &TransportError) -> bool {
    match error {
        TransportError::Jump { source, .. } => worth_retrying(source),
        TransportError::Resolve { .. }
        | TransportError::Connect { .. }
        | TransportError::ConnectTimeout { .. }
        | TransportError::Ssh { .. }
        | TransportError::Disconnected { .. } => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_own_events_only_and_keeps_a_cut_line_for_later() {
        let seen = std::sync::Mutex::new(Vec::new());
        let on_event = |_: &str, e: &AgentEvent| seen.lock().unwrap().push(e.clone());
        let mut events = EventStream::new("h1", &on_event);
        events.feed(br#"{"event":"resumed","run_id":"0-1","of":{"event":"run_finished","ok":true,"changed":0,"failed":0,"duration_ms":1}}"#);
        events.feed(b"\n");
        events.feed(br#"{"event":"run_started","host":"h1","run_id":"1-1","agent_version":"0.1.0","check_only":false}"#);
        events.feed(b"\nnot an event\n{\"event\":\"step_sta");
        assert!(events.started() && !events.finished());
        assert_eq!(events.own_events(), 1);
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_stopped_agent_says_where_and_what_to_do() {
        let line = "the agent of run 1-1 stopped before finishing (killed, or the host restarted); its last event: run started";
        assert_eq!(
            stopped(&format!("{line}\n"), ""),
            format!("{line}; {DEPLOY_AGAIN}")
        );
        assert!(stopped(line, "thread 'main' panicked\n")
            .ends_with("the agent said: thread 'main' panicked"));
    }

    #[test]
    fn a_refused_login_is_not_retried() {
        let refused = TransportError::Auth {
            host: "h1".into(),
            user: "root".into(),
            tried: vec![],
        };
        assert!(!worth_retrying(&refused));
        let dropped = TransportError::Disconnected {
            host: "h1".into(),
            reason: "eof".into(),
        };
        assert!(worth_retrying(&dropped));
    }

    /// A host whose commands answer from a script, in order; it records what it was asked.
    struct Scripted {
        replies: std::sync::Mutex<Vec<Reply>>,
        commands: std::sync::Mutex<Vec<String>>,
    }

    struct Reply {
        stdout: String,
        stderr: &'static str,
        end: Result<Option<u32>, TransportError>,
    }

    #[async_trait::async_trait]
    impl Transport for Scripted {
        fn label(&self) -> &str {
            "h1"
        }

        async fn exec_streaming(
            &self,
            command: &str,
            _: &[u8],
            sink: crate::transport::OutputSink<'_>,
        ) -> Result<Option<u32>, TransportError> {
            self.commands.lock().unwrap().push(command.to_string());
            let reply = self.replies.lock().unwrap().remove(0);
            sink(Stream::Stdout, reply.stdout.as_bytes());
            sink(Stream::Stderr, reply.stderr.as_bytes());
            reply.end
        }

        async fn close(&self) {}
    }

    const STARTED: &str = r#"{"event":"run_started","host":"h1","run_id":"1-1","agent_version":"0.1.0","check_only":false}"#;
    const STEP: &str =
        r#"{"event":"step_started","layer":"install","step":"packages","title":"OS packages"}"#;
    const STEP_DONE: &str = r#"{"event":"step_finished","layer":"install","step":"packages","status":"changed","duration_ms":9,"message":"installed nats-server"}"#;
    const FINISHED: &str =
        r#"{"event":"run_finished","ok":true,"changed":1,"failed":0,"duration_ms":9}"#;

    fn cut() -> TransportError {
        TransportError::Disconnected {
            host: "h1".into(),
            reason: "eof".into(),
        }
    }

    async fn run(replies: Vec<Reply>) -> (anyhow::Result<Vec<AgentEvent>>, Vec<String>) {
        let host = crate::inventory::parse(
            "[[hosts]]\nname = \"h1\"\naddress = \"10.0.0.1\"\nroles = [\"nats\"]\n",
            std::path::Path::new("inv.toml"),
            None,
        )
        .unwrap()
        .hosts[0]
            .clone();
        let plan = HostPlan {
            format: crate::plan::PLAN_FORMAT,
            host: "h1".into(),
            run_id: "1-1".into(),
            state_dir: "/var/lib/mp-remote".into(),
            check_only: false,
            diff: false,
            layers: vec![],
        };
        let transport = Scripted {
            replies: std::sync::Mutex::new(replies),
            commands: Default::default(),
        };
        let result = crate::run::agent_exec::run_plan(
            &transport,
            &host,
            "/var/lib/mp-remote/bin/agent",
            &plan,
            &|_, _| {},
        )
        .await;
        (result, transport.commands.into_inner().unwrap())
    }

    #[tokio::test]
    async fn a_cut_run_is_followed_from_the_first_event_it_missed() {
        let (events, commands) = run(vec![
            Reply {
                stdout: format!("{STARTED}\n{STEP}\n{{\"event\":\"step_fin"),
                stderr: "",
                end: Err(cut()),
            },
            Reply {
                stdout: format!("{STEP_DONE}\n{FINISHED}\n"),
                stderr: "",
                end: Ok(Some(0)),
            },
        ])
        .await;
        let events = events.unwrap();
        assert_eq!(events.len(), 4, "{events:?}");
        assert!(matches!(events[3], AgentEvent::RunFinished { .. }));
        assert_eq!(
            commands[1],
            "/var/lib/mp-remote/bin/agent agent follow --run-id 1-1 --skip 2 --state-dir /var/lib/mp-remote"
        );
    }

    #[tokio::test]
    async fn a_run_whose_agent_is_gone_fails_saying_where_it_stopped() {
        let (result, _) = run(vec![
            Reply {
                stdout: format!("{STARTED}\n"),
                stderr: "",
                end: Err(cut()),
            },
            Reply {
                stdout: String::new(),
                stderr: "the agent of run 1-1 stopped before finishing (killed, or the host restarted); its last event: run started\n",
                end: Ok(Some(3)),
            },
        ])
        .await;
        let error = result.unwrap_err().to_string();
        assert!(error.contains("stopped before finishing"), "{error}");
        assert!(error.ends_with(DEPLOY_AGAIN), "{error}");
    }

    #[tokio::test]
    async fn a_run_cut_before_it_started_is_not_followed() {
        let (result, commands) = run(vec![Reply {
            stdout: String::new(),
            stderr: "",
            end: Err(cut()),
        }])
        .await;
        assert!(result
            .unwrap_err()
            .to_string()
            .contains("connection was lost"));
        assert_eq!(commands.len(), 1);
    }
}
