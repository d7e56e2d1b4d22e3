//! The agent's own supervisor, for hosts without systemd (plain containers, sysvinit): one
//! detached process per server (`mp-remote agent supervise`) that runs the server as its user,
//! writes pid files under [`RUN_DIR`], sends all output to `/var/log/mp-remote/NAME.log` and
//! restarts the server when it exits, with backoff. The supervisor's own command line is the
//! server's identity: program, user and a hash of its configuration, so the `Supervised` action
//! tells "already running as wanted" from "running something else" by reading `/proc` alone.
//!
//! No boot-time start: without an init system nothing runs the supervisors after a reboot;
//! the next deploy starts them. Pid files live on /run (tmpfs on most hosts), which a reboot
//! clears, so a stale pid can never be taken for a live server.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// Pid files: one for each supervisor, one for each server.
pub const RUN_DIR: &str = "/run/mp-remote";
/// One log per service: the supervisor's lines and the server's stdout and stderr.
pub const LOG_DIR: &str = "/var/log/mp-remote";
/// A run at least this long was healthy: the next crash restarts it after the shortest delay.
const STABLE_RUN: Duration = Duration::from_secs(60);
/// The longest wait between two restarts: at most a handful of restarts per minute.
const MAX_DELAY: Duration = Duration::from_secs(60);
/// How long a server has to exit after SIGTERM before it gets SIGKILL (ClickHouse flushes).
const STOP_GRACE: Duration = Duration::from_secs(30);

/// The files of one supervised service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub supervisor_pid: PathBuf,
    pub server_pid: PathBuf,
    pub log: PathBuf,
}

impl Paths {
    pub fn of(name: &str) -> Self {
        Self {
            supervisor_pid: Path::new(RUN_DIR).join(format!("{name}.supervisor.pid")),
            server_pid: Path::new(RUN_DIR).join(format!("{name}.pid")),
            log: Path::new(LOG_DIR).join(format!("{name}.log")),
        }
    }
}

/// What one supervisor runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCommand {
    /// Names the pid and log files (`nats-server`).
    pub name: String,
    /// The account the server runs as.
    pub user: String,
    /// What the server was started with (configs, binary); the supervisor only carries it so
    /// that a different one shows in its command line.
    pub config_hash: String,
    /// The server's argv; `command[0]` an absolute path.
    pub command: Vec<String>,
}

impl ServerCommand {
    /// The supervisor's arguments after the program path, as `agent supervise` parses them.
    /// A running supervisor whose `/proc/PID/cmdline` ends with exactly these runs this server
    /// with this configuration; the program path is left out, so a new mp-remote build
    /// restarts nothing.
    pub fn supervisor_args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "agent",
            "supervise",
            "--name",
            &self.name,
            "--user",
            &self.user,
            "--config-hash",
            &self.config_hash,
            "--",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(self.command.iter().cloned());
        args
    }
}

/// What runs for one service right now, read from its pid files and `/proc`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Running {
    /// The live supervisor: its pid and its arguments after the program path.
    pub supervisor: Option<(u32, Vec<String>)>,
    /// The live server the pid file names, whoever its parent is.
    pub server: Option<u32>,
}

impl Running {
    /// The server runs under the live supervisor (not left over from a killed one).
    pub fn supervised_server(&self) -> Option<u32> {
        let (supervisor, _) = self.supervisor.as_ref()?;
        self.server.filter(|pid| parent(*pid) == Some(*supervisor))
    }
}

/// Reads the pid files of `name` and checks each pid against `/proc`.
pub fn inspect(name: &str) -> Running {
    let paths = Paths::of(name);
    let supervisor = read_pid(&paths.supervisor_pid).and_then(|pid| {
        let args = cmdline(pid)?;
        is_supervisor_of(&args, name).then(|| (pid, args[1..].to_vec()))
    });
    let server = read_pid(&paths.server_pid).filter(|pid| alive(*pid));
    Running { supervisor, server }
}

/// `args` (a whole `/proc` cmdline) is `mp-remote agent supervise --name NAME ...`.
fn is_supervisor_of(args: &[String], name: &str) -> bool {
    args.len() > 4 && args[1] == "agent" && args[2] == "supervise" && args[4] == name
}

pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Written whole (temp file, then rename): a reader never sees half a pid.
fn write_pid(path: &Path, pid: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("pid.tmp");
    std::fs::write(&tmp, format!("{pid}\n"))?;
    std::fs::rename(tmp, path)
}

/// `pid` is a running process; a zombie (exited, not yet reaped) is not.
pub fn alive(pid: u32) -> bool {
    stat_fields(pid)
        .is_some_and(|fields| !matches!(fields.first().map(String::as_str), Some("Z" | "X")))
}

/// The parent pid of a live process.
pub fn parent(pid: u32) -> Option<u32> {
    let fields = stat_fields(pid)?;
    if matches!(fields.first().map(String::as_str), Some("Z" | "X")) {
        return None;
    }
    fields.get(1)?.parse().ok()
}

/// The fields of `/proc/PID/stat` after the command name (which may hold spaces and parens):
/// state, ppid, ...
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// The argv of a live process.
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    if !alive(pid) {
        return None;
    }
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (!args.is_empty()).then_some(args)
}

/// Sends `sig` (`TERM`, `KILL`) through the shell's `kill`, which every host has (std has no
/// kill(2) for a pid it did not spawn, and procps' /bin/kill is not always installed).
pub async fn send_signal(pid: u32, sig: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("kill -{sig} {pid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Waits until `pid` is gone, up to `limit`; true when it is.
pub async fn wait_gone(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

/// The service's log from byte `offset` on (0: all of it).
pub fn log_since(name: &str, offset: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut text = Vec::new();
    if let Ok(mut file) = std::fs::File::open(Paths::of(name).log) {
        if file.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = file.read_to_end(&mut text);
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// The log's size now: where the lines of a start about to happen begin.
pub fn log_len(name: &str) -> u64 {
    std::fs::metadata(Paths::of(name).log).map_or(0, |m| m.len())
}

/// Logged by the supervisor when the server exits, and when the supervisor itself ends.
pub const SERVER_EXITED: &str = ") exited (";
pub const SUPERVISOR_STOPPED: &str = "stopped supervising ";
const SUPERVISOR_MARK: &str = " mp-remote supervisor: ";

/// `log` (a piece of a service's log) has a supervisor line holding `event`: a server or a
/// supervisor that ends within milliseconds of its start may never be seen in `/proc`.
pub fn supervisor_logged(log: &str, event: &str) -> bool {
    log.lines()
        .any(|line| line.contains(SUPERVISOR_MARK) && line.contains(event))
}

/// Restarts after quick exits wait twice as long each time (1 s, 2 s, 4 s ... 60 s); an exit
/// after a run of [`STABLE_RUN`] or more waits 1 s again. `streak`: quick exits in a row,
/// this one included (at least 1).
fn restart_delay(streak: u32) -> Duration {
    Duration::from_secs(1u64 << streak.saturating_sub(1).min(6)).min(MAX_DELAY)
}

/// The streak after an exit that came `ran` after the start.
fn next_streak(streak: u32, ran: Duration) -> u32 {
    if ran >= STABLE_RUN {
        1
    } else {
        streak.saturating_add(1)
    }
}

/// A user account as the server needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Account {
    uid: u32,
    gid: u32,
    home: String,
}

/// `getent passwd` output (`nats:x:102:106:NATS.io server,,,:/nonexistent:/usr/sbin/nologin`).
fn parse_passwd(line: &str) -> Option<Account> {
    let fields: Vec<&str> = line.trim().split(':').collect();
    Some(Account {
        uid: fields.get(2)?.parse().ok()?,
        gid: fields.get(3)?.parse().ok()?,
        home: fields.get(5)?.to_string(),
    })
}

/// Through getent, so accounts from NSS (LDAP, sssd) resolve as for any other program.
async fn lookup(user: &str) -> Result<Account, String> {
    let out = Command::new("getent")
        .args(["passwd", user])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run getent: {e}"))?;
    parse_passwd(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| format!("no user {user} on this host (the package creates it)"))
}

/// The supervisor's log: timestamped lines, appended to the service's log file.
struct Log {
    file: std::fs::File,
}

impl Log {
    fn line(&mut self, text: &str) {
        let now = humantime::format_rfc3339_seconds(SystemTime::now());
        // A full disk must not stop the supervisor from supervising.
        let _ = writeln!(self.file, "{now}{SUPERVISOR_MARK}{text}");
    }
}

/// `mp-remote agent supervise`: runs `server` until SIGTERM or SIGINT, restarting it when it
/// exits. Returns the process exit code.
pub async fn run(server: ServerCommand) -> i32 {
    let paths = Paths::of(&server.name);
    for dir in [RUN_DIR, LOG_DIR] {
        let _ = std::fs::create_dir_all(dir);
    }
    let file = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&paths.log)
    {
        Ok(file) => file,
        // stderr is the log file too when the agent started us; this reaches a person otherwise.
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "mp-remote supervisor: cannot open {}: {e}",
                paths.log.display()
            );
            return 1;
        }
    };
    let mut log = Log { file };
    let me = std::process::id();
    if let Some((other, _)) = inspect(&server.name)
        .supervisor
        .filter(|(pid, _)| *pid != me)
    {
        log.line(&format!(
            "another supervisor (pid {other}) already runs {}: exiting",
            server.name
        ));
        return 1;
    }
    if let Err(e) = write_pid(&paths.supervisor_pid, me) {
        log.line(&format!(
            "cannot write {}: {e}",
            paths.supervisor_pid.display()
        ));
        return 1;
    }
    let code = supervise(&server, &paths, &mut log).await;
    let _ = std::fs::remove_file(&paths.server_pid);
    let _ = std::fs::remove_file(&paths.supervisor_pid);
    log.line(&format!("{SUPERVISOR_STOPPED}{}", server.name));
    code
}

async fn supervise(server: &ServerCommand, paths: &Paths, log: &mut Log) -> i32 {
    let (Ok(mut term), Ok(mut int), Ok(_hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        // Registered, never acted on: a closing terminal or SSH session must not end us.
        signal(SignalKind::hangup()),
    ) else {
        log.line("cannot install signal handlers");
        return 1;
    };
    let account = match lookup(&server.user).await {
        Ok(account) => account,
        Err(e) => {
            log.line(&format!("cannot start {}: {e}", server.name));
            return 1;
        }
    };
    let mut streak = 0;
    loop {
        let started = Instant::now();
        match spawn(server, &account, log) {
            Ok(mut child) => {
                let pid = child.id().unwrap_or(0);
                if let Err(e) = write_pid(&paths.server_pid, pid) {
                    log.line(&format!("cannot write {}: {e}", paths.server_pid.display()));
                }
                log.line(&format!(
                    "started `{}` as {} (pid {pid})",
                    server.command.join(" "),
                    server.user
                ));
                tokio::select! {
                    status = child.wait() => {
                        let _ = std::fs::remove_file(&paths.server_pid);
                        let how = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                        log.line(&format!(
                            "{} (pid {pid}{SERVER_EXITED}{how}) after {:.1} s",
                            server.name,
                            started.elapsed().as_secs_f64()
                        ));
                    }
                    _ = stop_requested(&mut term, &mut int) => {
                        stop(&mut child, pid, log).await;
                        return 0;
                    }
                }
            }
            Err(e) => log.line(&format!("cannot start `{}`: {e}", server.command.join(" "))),
        }
        streak = next_streak(streak, started.elapsed());
        let delay = restart_delay(streak);
        log.line(&format!(
            "restarting {} in {} s (quick exits in a row: {streak})",
            server.name,
            delay.as_secs()
        ));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop_requested(&mut term, &mut int) => return 0,
        }
    }
}

async fn stop_requested(term: &mut Signal, int: &mut Signal) {
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// SIGTERM, then SIGKILL after [`STOP_GRACE`].
async fn stop(child: &mut Child, pid: u32, log: &mut Log) {
    log.line(&format!("stopping pid {pid} (SIGTERM)"));
    send_signal(pid, "TERM").await;
    match tokio::time::timeout(STOP_GRACE, child.wait()).await {
        Ok(status) => {
            let how = status
                .map(|s| s.to_string())
                .unwrap_or_else(|e| e.to_string());
            log.line(&format!("pid {pid} exited ({how})"));
        }
        Err(_) => {
            log.line(&format!(
                "pid {pid} still running {} s after SIGTERM: SIGKILL",
                STOP_GRACE.as_secs()
            ));
            let _ = child.kill().await;
        }
    }
}

/// The server as its user, in `/`, with a minimal environment like systemd gives a unit, its
/// output appended to the log.
fn spawn(server: &ServerCommand, account: &Account, log: &Log) -> std::io::Result<Child> {
    let (program, args) = server
        .command
        .split_first()
        .ok_or_else(|| std::io::Error::other("empty command line"))?;
    Command::new(program)
        .args(args)
        .uid(account.uid)
        .gid(account.gid)
        .current_dir("/")
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOME", &account.home)
        .env("USER", &server.user)
        .env("LOGNAME", &server.user)
        .stdin(Stdio::null())
        .stdout(log.file.try_clone()?)
        .stderr(log.file.try_clone()?)
        .spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute_and_resets_after_a_stable_run() {
        let delays: Vec<u64> = (1..=8).map(|s| restart_delay(s).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(next_streak(3, Duration::from_secs(2)), 4);
        assert_eq!(next_streak(3, STABLE_RUN), 1);
        // Exiting at once, every time: restarts at 1, 3, 7, 15 and 31 s, five in the first
        // minute.
        let (mut t, mut streak, mut restarts) = (0, 0, 0);
        loop {
            streak = next_streak(streak, Duration::ZERO);
            t += restart_delay(streak).as_secs();
            if t > 60 {
                break;
            }
            restarts += 1;
        }
        assert_eq!(restarts, 5);
    }

    #[test]
    fn supervisor_args_are_the_identity() {
        let server = ServerCommand {
            name: "nats-server".into(),
            user: "nats".into(),
            config_hash: "abc".into(),
            command: vec![
                "/usr/sbin/nats-server".into(),
                "-c".into(),
                "/x.conf".into(),
            ],
        };
        let args = server.supervisor_args();
        assert_eq!(
            args.join(" "),
            "agent supervise --name nats-server --user nats --config-hash abc -- /usr/sbin/nats-server -c /x.conf"
        );
        let mut cmdline = vec!["/opt/mp-remote".to_string()];
        cmdline.extend(args);
        assert!(is_supervisor_of(&cmdline, "nats-server"));
        assert!(!is_supervisor_of(&cmdline, "clickhouse-server"));
        assert!(!is_supervisor_of(
            &["/usr/sbin/nats-server".into()],
            "nats-server"
        ));
    }

    #[test]
    fn passwd_lines() {
        assert_eq!(
            parse_passwd("nats:x:102:106:NATS.io server,,,:/nonexistent:/usr/sbin/nologin\n"),
            Some(Account {
                uid: 102,
                gid: 106,
                home: "/nonexistent".into()
            })
        );
        assert_eq!(parse_passwd(""), None);
        assert_eq!(parse_passwd("x:x:notanumber:1:::"), None);
    }

    #[test]
    fn proc_reads_this_process() {
        let me = std::process::id();
        assert!(alive(me));
        assert!(parent(me).is_some());
        assert!(cmdline(me).is_some_and(|args| !args.is_empty()));
        assert!(!alive(u32::MAX));
    }
}
