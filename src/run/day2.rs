//! Day-2 operations on deployed hosts: which services a host runs, start/stop/restart with a
//! health wait, and journal tails. Commands are built by pure functions (tested below); the
//! fan-out runs them, one host's trouble never stopping the others.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::status::{self, Mode};
use super::{for_each_host, FanOut, HostOutcome};
use crate::inventory::{Host, Role};
use crate::stack::component::Component;
use crate::stack::pipeline::PipelineService;
use crate::transport::shell::{quote, with_become};
use crate::transport::Transport;

/// A server mp-remote deploys, by the name users type (`--service nats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Nats,
    Clickhouse,
    Storage,
    Collector,
}

impl Service {
    /// In start order: NATS, ClickHouse, then the storage that writes into it and the
    /// collector that publishes (stop goes the other way).
    pub const ALL: [Service; 4] = [
        Service::Nats,
        Service::Clickhouse,
        Service::Storage,
        Service::Collector,
    ];

    /// Its declaration: unit, ports, health, files (`stack::component`).
    pub fn component(self) -> &'static Component {
        match self {
            Service::Nats => &crate::stack::nats::COMPONENT,
            Service::Clickhouse => &crate::stack::clickhouse::COMPONENT,
            Service::Storage => &crate::stack::pipeline::STORAGE,
            Service::Collector => &crate::stack::pipeline::COLLECTOR,
        }
    }

    pub fn name(self) -> &'static str {
        self.component().name
    }

    /// The pipeline service mp-remote itself runs (`mp-remote service NAME`), None for the
    /// vendors' servers.
    pub fn pipeline(self) -> Option<PipelineService> {
        match self {
            Service::Nats | Service::Clickhouse => None,
            Service::Storage => Some(PipelineService::Storage),
            Service::Collector => Some(PipelineService::Collector),
        }
    }

    /// The systemd unit (Debian's package's, or deploy's `mp-storage`/`mp-collector`), and
    /// the supervised service's name on hosts without systemd.
    pub fn unit(self) -> &'static str {
        self.component().unit
    }

    pub fn role(self) -> Role {
        let role = self.component().role;
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == role)
            .unwrap_or(Role::Collector)
    }

    /// The ports the service may listen on, as declared.
    pub fn ports(self) -> Vec<u16> {
        self.component().port_numbers()
    }

    /// How long start/restart waits for health unless `--wait` says otherwise; the same
    /// deadlines deploy uses (ClickHouse loads its tables before it answers).
    pub fn health_deadline(self) -> Duration {
        self.component().health_deadline
    }

    pub fn from_name(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The services `host` runs by its roles, in start order, narrowed to `only` when given.
pub fn services_of(host: &Host, only: Option<Service>) -> Vec<Service> {
    Service::ALL
        .into_iter()
        .filter(|s| host.has_role(s.role()) && only.is_none_or(|o| o == *s))
        .collect()
}

/// The services `control` goes through on `host`, one after the other: start order for start
/// and restart (NATS, ClickHouse, storage, collector), the reverse for stop (the collector
/// stops publishing before anything it feeds goes away).
pub fn control_order(host: &Host, control: Control, only: Option<Service>) -> Vec<Service> {
    let mut services = services_of(host, only);
    if control == Control::Stop {
        services.reverse();
    }
    services
}

/// What `start`, `stop` and `restart` do to a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Start,
    Stop,
    Restart,
}

impl Control {
    pub fn verb(self) -> &'static str {
        match self {
            Control::Start => "start",
            Control::Stop => "stop",
            Control::Restart => "restart",
        }
    }

    pub fn past(self) -> &'static str {
        match self {
            Control::Start => "started",
            Control::Stop => "stopped",
            Control::Restart => "restarted",
        }
    }

    fn waits_for_health(self) -> bool {
        self != Control::Stop
    }
}

/// Printed by [`control_command`] when the unit already was as asked.
const ALREADY: &str = "mp-remote:already";
/// Printed first by [`control_command`] on a host without systemd (mp-remote's supervisor).
const SUPERVISED: &str = "mp-remote:supervised";

/// POSIX sh functions for the agent's supervisor on hosts without systemd (see
/// `agent::supervise`): pid files in /run/mp-remote, the supervisor's cmdline
/// `... agent supervise --name NAME ...`. `sv_sup NAME` sets `p` to the live supervisor's pid,
/// `sv_server NAME` sets `q` to the live server's pid; `sv_stop NAME` sends the supervisor
/// SIGTERM (it stops its server) and waits up to 60 s (its grace is 30 s) for both to be gone.
/// No single quotes inside: it goes through `with_become`'s quoting as it is.
macro_rules! supervisor_sh {
    () => {
        r#"sv_alive() { sv_st=$(cat /proc/$1/stat 2>/dev/null </dev/null) || return 1; sv_st=${sv_st##*") "}; case $sv_st in ""|Z*|X*) return 1 ;; esac; }
sv_pid() { sv_v=$(cat "$1" 2>/dev/null </dev/null) || return 1; case $sv_v in ""|*[!0-9]*) return 1 ;; esac; echo "$sv_v"; }
sv_sup() { p=$(sv_pid /run/mp-remote/$1.supervisor.pid) && sv_alive $p || { p=; return 1; }; case " $(tr "\0" " " </proc/$p/cmdline 2>/dev/null) " in *" agent supervise --name $1 "*) return 0 ;; esac; p=; return 1; }
sv_server() { q=$(sv_pid /run/mp-remote/$1.pid) && sv_alive $q || { q=; return 1; }; }
sv_running() { sv_sup $1 && sv_server $1; }
sv_stop() { sv_sup $1 || return 0; sv_server $1; kill -TERM $p || return 1; sv_n=0; while sv_alive $p || { [ -n "$q" ] && sv_alive $q; }; do sv_n=$((sv_n+1)); if [ $sv_n -gt 600 ]; then echo "$1 still running 60 s after SIGTERM to its supervisor (pid $p)" >&2; return 1; fi; sleep 0.1; done; }
sv_launchable() { sv_f=/var/lib/mp-remote/supervised/$1.argv; [ -r "$sv_f" ] || return 1; sv_exe=$(tr "\0" "\n" <"$sv_f" | head -n 1); [ -x "$sv_exe" ]; }
sv_launch() { sv_launchable $1 || return 3; mkdir -p /var/log/mp-remote; (cd / && xargs -0 -a "$sv_f" setsid --fork env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin </dev/null >>/var/log/mp-remote/$1.log 2>&1); }
"#
    };
}
pub(crate) use supervisor_sh;

/// On a host without systemd, `start`/`restart` run again the command line the agent's
/// `Supervised` action last started the supervisor with (kept in
/// /var/lib/mp-remote/supervised/NAME.argv: the plan's user, server argv and configuration
/// hash). Without that record (never deployed here, or its agent binary is gone) they refuse:
/// the command line comes from deploy's plan, and a shell-made one would bypass it.
/// The exit status of that refusal.
const REFUSED: u32 = 3;
pub const NO_SYSTEMD: &str =
    "no systemd here and no record of how mp-remote started it: run `mp-remote deploy` to start it under mp-remote's supervisor";

/// `systemctl start nats-server`, through sudo when the host says `become`. Start and stop
/// first look, so the report can tell "started" from "was already running". On a host without
/// systemd (no /run/systemd/system) stop sends the agent's supervisor SIGTERM and waits for it
/// and its server to be gone; start says "already" while a supervisor lives, else runs the
/// recorded command line again, as restart does after the stop (or fails with [`NO_SYSTEMD`]).
pub fn control_command(control: Control, service: Service, become_root: bool) -> String {
    let unit = quote(service.unit());
    let verb = control.verb();
    let systemd = match control {
        Control::Start => format!(
            "if systemctl is-active --quiet {unit}; then echo {ALREADY}; else systemctl {verb} {unit}; fi"
        ),
        Control::Stop => format!(
            "if systemctl is-active --quiet {unit}; then systemctl {verb} {unit}; else echo {ALREADY}; fi"
        ),
        Control::Restart => format!("systemctl {verb} {unit}"),
    };
    let no_systemd = format!(
        "echo \"{}\" >&2; exit {REFUSED}",
        NO_SYSTEMD.replace('`', "\\`")
    );
    // A live supervisor (even one restarting its server) is the only one: never a second.
    let launch = format!("sv_launch {unit} || {{ {no_systemd}; }}");
    let supervised = match control {
        Control::Start => format!("if sv_sup {unit}; then echo {ALREADY}; else {launch}; fi"),
        Control::Stop => format!("if sv_sup {unit}; then sv_stop {unit}; else echo {ALREADY}; fi"),
        // Stopped only when it can be started again.
        Control::Restart => format!(
            "if sv_launchable {unit}; then sv_stop {unit} && sv_launch {unit}; else {no_systemd}; fi"
        ),
    };
    let command = format!(
        "if [ -d /run/systemd/system ]; then {systemd}; else\n{}echo {SUPERVISED}; {supervised}; fi",
        supervisor_sh!()
    );
    with_become(&command, become_root)
}

/// The last `lines` journal lines of the service's unit, without a pager; on a host without
/// systemd the end of the supervisor's log, /var/log/mp-remote/UNIT.log.
pub fn journal_command(service: Service, lines: u32, become_root: bool) -> String {
    let unit = quote(service.unit());
    with_become(
        &format!(
            "if [ -d /run/systemd/system ]; then journalctl -u {unit} -n {lines} --no-pager; else tail -n {lines} /var/log/mp-remote/{unit}.log; fi"
        ),
        become_root,
    )
}

/// What happened to one service on one host.
#[derive(Debug, Clone)]
pub struct ServiceControl {
    pub service: Service,
    pub control: Control,
    /// The unit already was as asked (running for start, stopped for stop).
    pub already: bool,
    /// How long it took to answer healthy (start/restart).
    pub healthy_after: Option<Duration>,
    /// What went wrong and what to do; None when it went as asked.
    pub failure: Option<String>,
    /// The unit's last journal lines when it failed.
    pub journal: String,
}

/// How often start/restart asks whether the service is healthy yet.
const POLL: Duration = Duration::from_millis(250);
/// Journal lines shown when a service fails to start.
const JOURNAL_TAIL: u32 = 20;

/// Runs `control` on every service of each host (all its roles', or `only`), hosts in
/// parallel, services of one host in order; start/restart then wait for health until `wait`
/// (default: [`Service::health_deadline`]).
pub async fn control_all(
    hosts: &[&Host],
    fanout: &FanOut,
    control: Control,
    only: Option<Service>,
    wait: Option<Duration>,
) -> Vec<HostOutcome<Vec<ServiceControl>>> {
    for_each_host(hosts, fanout, |transport, host| async move {
        let mut done = Vec::new();
        for service in control_order(host, control, only) {
            let deadline = wait.unwrap_or(service.health_deadline());
            done.push(control_one(&transport, host, control, service, deadline).await?);
        }
        Ok(done)
    })
    .await
}

async fn control_one(
    transport: &Arc<dyn Transport>,
    host: &Host,
    control: Control,
    service: Service,
    deadline: Duration,
) -> anyhow::Result<ServiceControl> {
    let mut result = ServiceControl {
        service,
        control,
        already: false,
        healthy_after: None,
        failure: None,
        journal: String::new(),
    };
    let started = Instant::now();
    let output = transport
        .exec(&control_command(control, service, host.become_), b"")
        .await?;
    let stdout = output.stdout_text();
    result.already = stdout.lines().any(|l| l.trim() == ALREADY);
    let supervised = stdout.lines().any(|l| l.trim() == SUPERVISED);
    // Refused for want of systemd: the log tells nothing about that.
    let refused = supervised && output.status == Some(REFUSED);
    if !output.success() && supervised {
        result.failure = Some(format!(
            "{} {} under mp-remote's supervisor failed (exit {:?}): {}{}",
            control.verb(),
            service.unit(),
            output.status,
            output.stderr_text().trim(),
            if refused {
                ""
            } else {
                "; the end of its log is below"
            }
        ));
    } else if !output.success() {
        result.failure = Some(format!(
            "`systemctl {} {}` failed (exit {:?}): {}; see its journal below",
            control.verb(),
            service.unit(),
            output.status,
            output.stderr_text().trim()
        ));
    } else if control.waits_for_health() {
        match wait_healthy(transport.as_ref(), host, service, deadline).await? {
            Ok(()) => result.healthy_after = Some(started.elapsed()),
            Err(why) => {
                result.failure = Some(format!(
                    "{} not healthy after {:.1} s (deadline {} s): {why}; its last {JOURNAL_TAIL} journal lines are below",
                    service.unit(),
                    started.elapsed().as_secs_f64(),
                    deadline.as_secs()
                ))
            }
        }
    }
    if result.failure.is_some() && !refused {
        let journal = transport
            .exec(&journal_command(service, JOURNAL_TAIL, host.become_), b"")
            .await?;
        result.journal = journal.stdout_text();
    }
    Ok(result)
}

/// Polls the service's health (one exec each time) until it is running and healthy, or the
/// deadline passes; the inner error says what was wrong at the last look.
async fn wait_healthy(
    transport: &dyn Transport,
    host: &Host,
    service: Service,
    deadline: Duration,
) -> anyhow::Result<Result<(), String>> {
    let started = Instant::now();
    loop {
        let output = transport
            .exec(
                &status::command(
                    Mode::Health,
                    &[service],
                    status::deploy_dir(host),
                    host.become_,
                ),
                status::SCRIPT.as_bytes(),
            )
            .await?;
        let probe = status::parse(&output.stdout_text())
            .with_context(|| format!("the health check of {} failed", service.unit()))?;
        let state = probe.service(service);
        match state.problem() {
            None => return Ok(Ok(())),
            // `failed`: systemd gave up (no auto-restart pending), waiting cannot help.
            Some(why) if started.elapsed() >= deadline || state.active == "failed" => {
                return Ok(Err(why))
            }
            Some(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// The last `lines` journal lines of `service` on each host.
pub async fn logs(
    hosts: &[&Host],
    fanout: &FanOut,
    service: Service,
    lines: u32,
) -> Vec<HostOutcome<String>> {
    for_each_host(hosts, fanout, |transport, host| async move {
        let output = transport
            .exec(&journal_command(service, lines, host.become_), b"")
            .await?;
        anyhow::ensure!(
            output.success(),
            "journalctl -u {0} (or, without systemd, tail of /var/log/mp-remote/{0}.log) failed (exit {1:?}): {2}; it needs root or the adm group: connect as root or set become = true",
            service.unit(),
            output.status,
            output.stderr_text().trim()
        );
        Ok(output.stdout_text())
    })
    .await
}

#[cfg(test)]
#[path = "day2_tests.rs"]
mod tests;
