//! The command line: clap arguments, one file per subcommand, and everything that prints.

mod agent;
mod args;
mod audit;
mod clean;
mod deploy;
mod facts;
mod inventory_check;
mod lock;
mod logging;
mod logs;
mod ping;
mod progress;
mod report;
mod runs;
mod service;
mod service_ctl;
mod status;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::inventory::{self, Inventory, InventoryError};
use crate::report::ExitCode;
use crate::run::FanOut;

/// The inventory used when `-i` is not given: this machine, without SSH.
const EMBEDDED_INVENTORY: &str = include_str!("../../inventory/local.toml");
const EMBEDDED_INVENTORY_NAME: &str = "<embedded inventory/local.toml>";

#[derive(Debug, Parser)]
#[command(
    name = "mp-remote",
    version,
    about = "Deploys the MarketPrism pipeline onto Linux hosts over SSH",
    after_help = "Exit codes: 0 all hosts ok; 1 usage or inventory error; 2 at least one host failed or timed out; 3 at least one host unreachable (and none failed); 130 interrupted."
)]
pub struct Cli {
    /// Inventory file (TOML). Without it: this machine, no SSH (inventory/local.toml).
    #[arg(
        short,
        long,
        global = true,
        value_name = "FILE",
        env = "MP_REMOTE_INVENTORY"
    )]
    pub inventory: Option<PathBuf>,

    /// Only these hosts: names, group names, globs, `role:NAME`, comma lists, `!` to exclude.
    #[arg(long, global = true, value_name = "PATTERN")]
    pub limit: Option<String>,

    /// Hosts worked on at once.
    #[arg(long, global = true, default_value_t = 50, value_name = "N", value_parser = args::at_least_one)]
    pub forks: usize,

    /// SSH handshakes under way at once (keep under sshd's MaxStartups).
    #[arg(long, global = true, default_value_t = 10, value_name = "N", value_parser = args::at_least_one)]
    pub handshakes: usize,

    /// Deadline for each host's whole task, e.g. 90s or 5m.
    #[arg(long, global = true, value_name = "DURATION", value_parser = args::deadline)]
    pub timeout: Option<Duration>,

    /// More output (-vv for debug logs).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Where runs are recorded (default: .mp-remote/runs beside the inventory).
    #[arg(long, global = true, value_name = "DIR", env = "MP_REMOTE_RUNS_DIR")]
    pub runs_dir: Option<PathBuf>,

    /// No colours (also when NO_COLOR is set or stdout is not a terminal).
    #[arg(long, global = true)]
    pub no_color: bool,

    /// Where static agents for other hosts are (`mp-remote-ARCH-unknown-linux-musl`), looked
    /// in before `agents/` beside this program and ~/.cache/mp-remote/agents.
    #[arg(long, global = true, value_name = "DIR", env = "MP_REMOTE_AGENTS_DIR")]
    pub agents_dir: Option<PathBuf>,

    /// Upload the agent to every host from here, not once per private network (relayed by
    /// the first host of each network to the others).
    #[arg(long, global = true)]
    pub no_relay: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inventory commands.
    #[command(subcommand)]
    Inventory(InventoryCommand),
    /// The recorded runs (deploy, update, clean, facts): id, command, when, hosts, result.
    Runs,
    /// A recorded run as text, JSON (run.json), JUnit XML or a self-contained HTML page.
    Report(report::Args),
    /// Connect to every host and run a no-op command.
    Ping,
    /// Gather facts (layer 1, detect) from every host in one exec each.
    Facts {
        /// Print one JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Install, configure and start NATS JetStream and ClickHouse with MarketPrism's schema and
    /// streams; a second run changes nothing.
    Deploy {
        /// Show what would change on each host; change nothing.
        #[arg(long)]
        check: bool,
        /// Show a unified diff of every file written (with --check: that would be written);
        /// secrets masked.
        #[arg(long)]
        diff: bool,
        /// Go on below the memory and disk thresholds.
        #[arg(long)]
        force: bool,
        /// The mp-remote build to run on the hosts, when they cannot run this one (another
        /// architecture or an older glibc).
        #[arg(long, value_name = "PATH")]
        agent_binary: Option<PathBuf>,
        #[command(flatten)]
        rolling: deploy::RollingArgs,
        /// Only the hosts that did not end ok in run RUN (an id, a prefix or `latest`).
        #[arg(long, value_name = "RUN")]
        retry: Option<String>,
    },
    /// Every service on every host: running, healthy, version, ports; stream messages and
    /// table rows. Exit 2 when any service is not running or not healthy.
    Status {
        /// Print one JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Start the services (those of each host's roles, or --service), then wait until healthy.
    Start(service_ctl::StartArgs),
    /// Stop the services (those of each host's roles, or --service).
    Stop(service_ctl::StopArgs),
    /// Restart the services (those of each host's roles, or --service), then wait until healthy.
    Restart(service_ctl::StartArgs),
    /// The last journal lines of a service, from each host that runs it.
    Logs(logs::Args),
    /// The fleet lease that deploy, update and clean take on every host: who holds it, and
    /// removing one a dead run left.
    #[command(subcommand)]
    Lock(lock::LockCommand),
    /// The last lines of each host's audit log (/var/log/mp-remote/audit.jsonl): who changed
    /// it, when, with which run and release.
    Audit(audit::Args),
    /// Stop and remove what deploy installed (units, packages, mp-remote's files); keeps the
    /// data unless --purge-data. Asks first; without a terminal it needs --yes.
    Clean(clean::Args),
    /// Like deploy, but installs nothing: pushes the new agent and configs, updates the
    /// streams, and restarts only the services whose config changed.
    Update {
        /// Show what would change on each host; change nothing.
        #[arg(long)]
        check: bool,
        /// Show a unified diff of every file written (with --check: that would be written);
        /// secrets masked.
        #[arg(long)]
        diff: bool,
        /// The mp-remote build to run on the hosts.
        #[arg(long, value_name = "PATH")]
        agent_binary: Option<PathBuf>,
        #[command(flatten)]
        rolling: deploy::RollingArgs,
        /// Only the hosts that did not end ok in run RUN (an id, a prefix or `latest`).
        #[arg(long, value_name = "RUN")]
        retry: Option<String>,
    },
    /// Switch the pipeline's services (storage, collector) back to an earlier release on each
    /// host and restart them on it: by default the release before `current`.
    Rollback {
        /// The release to go back to (a directory name under DEPLOY_DIR/releases).
        #[arg(long, value_name = "RELEASE")]
        to: Option<String>,
        /// Show what would change on each host; change nothing.
        #[arg(long)]
        check: bool,
        #[command(flatten)]
        rolling: deploy::RollingArgs,
    },
    /// Run a pipeline service in the foreground until SIGTERM: `collector` publishes market
    /// data to JetStream, `storage` writes it into ClickHouse (what deploy runs as
    /// mp-collector and mp-storage).
    #[command(subcommand)]
    Service(service::ServiceCommand),
    /// The host side (run by deploy over SSH; not for people).
    #[command(subcommand, hide = true)]
    Agent(AgentCommand),
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Run a plan (JSON, `-` for stdin) and print its events as JSON lines.
    Run {
        #[arg(long, value_name = "FILE")]
        plan: PathBuf,
    },
    /// Print the events of a run's latest agent on this host from the run's event log, after
    /// the first `--skip`, until its `run_finished`: how the control node re-attaches after a
    /// cut connection. Exit 3: the agent stopped before finishing.
    Follow {
        #[arg(long)]
        run_id: String,
        /// Events of that agent (from its `run_started` on) the caller already has.
        #[arg(long, default_value_t = 0)]
        skip: usize,
        #[arg(long, value_name = "DIR", default_value = crate::plan::build::STATE_DIR)]
        state_dir: PathBuf,
    },
    /// Look at services on this host (request on stdin, one JSON event per line out).
    Status,
    /// Start, stop or restart services here and wait for their health (request on stdin).
    Control,
    /// The end of a service's log here (request on stdin).
    Logs,
    /// Undo what mp-remote made here (request on stdin).
    Clean,
    /// Stop a run's agent here: Ctrl-C on the control node (request on stdin).
    Stop,
    /// Read, take, renew or give back the fleet lease here (request on stdin).
    Lease,
    /// Where a run starts: read the secrets kept here and take the lease (request on stdin).
    Begin,
    /// Hand FILE to the other hosts of this private network (those that send TOKEN first),
    /// until nobody asked for --idle seconds. Prints `port N`, then a line per copy.
    Relay {
        #[arg(long)]
        file: PathBuf,
        /// ADDRESS:PORT to listen on (port 0: any free one).
        #[arg(long)]
        bind: String,
        #[arg(long)]
        token: String,
        #[arg(long, default_value_t = 30)]
        idle: u64,
        /// Serve half the file, as a relay lost mid-copy would (tests).
        #[arg(long, hide = true)]
        cut: bool,
    },
    /// Run a server and restart it whenever it exits, until SIGTERM (hosts without systemd;
    /// the agent starts it detached).
    Supervise {
        /// Names the pid and log files.
        #[arg(long)]
        name: String,
        /// The account the server runs as.
        #[arg(long)]
        user: String,
        /// What the server's configuration was when it started (shown, not checked).
        #[arg(long)]
        config_hash: String,
        /// The server's command line, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    /// Parse and validate the inventory, and list the hosts --limit selects.
    Check,
}

/// Parses the command line, runs it and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() {
                ExitCode::Usage.code()
            } else {
                0
            };
            let _ = error.print();
            return code;
        }
    };
    if matches!(cli.command, Command::Service(_)) {
        logging::init_service(cli.verbose, cli.quiet);
    } else {
        logging::init(cli.verbose, cli.quiet);
    }
    // Services, like the agent, must not die on a closed stderr pipe.
    if !matches!(cli.command, Command::Agent(_) | Command::Service(_)) {
        restore_sigpipe();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(block_sigpipe)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::Usage.code();
        }
    };
    runtime.block_on(run(cli)).code()
}

async fn run(cli: Cli) -> ExitCode {
    crate::run::agents::set_dir(cli.agents_dir.clone());
    // Services need no inventory: they read their own config file.
    if let Command::Service(command) = cli.command {
        return match service::run(command).await {
            0 => ExitCode::Ok,
            1 => ExitCode::Usage,
            // 2: the service's config is wrong.
            _ => ExitCode::HostFailed,
        };
    }
    // The agent needs no inventory: it runs a plan on the host it is on.
    if let Command::Agent(AgentCommand::Run { plan }) = &cli.command {
        return match agent::run(plan).await {
            0 => ExitCode::Ok,
            1 => ExitCode::Usage,
            _ => ExitCode::HostFailed,
        };
    }
    let op = match &cli.command {
        Command::Agent(AgentCommand::Status) => Some(crate::agent::hostops::Op::Status),
        Command::Agent(AgentCommand::Control) => Some(crate::agent::hostops::Op::Control),
        Command::Agent(AgentCommand::Logs) => Some(crate::agent::hostops::Op::Logs),
        Command::Agent(AgentCommand::Clean) => Some(crate::agent::hostops::Op::Clean),
        Command::Agent(AgentCommand::Stop) => Some(crate::agent::hostops::Op::Stop),
        Command::Agent(AgentCommand::Lease) => Some(crate::agent::hostops::Op::Lease),
        Command::Agent(AgentCommand::Begin) => Some(crate::agent::hostops::Op::Begin),
        _ => None,
    };
    if let Some(op) = op {
        return match crate::agent::hostops::run(op).await {
            0 => ExitCode::Ok,
            1 => ExitCode::Usage,
            _ => ExitCode::HostFailed,
        };
    }
    if let Command::Agent(AgentCommand::Follow {
        run_id,
        skip,
        state_dir,
    }) = &cli.command
    {
        return match agent::follow(state_dir, run_id, *skip).await {
            0 => ExitCode::Ok,
            // Code 3 is what the control node reads as "the agent stopped".
            3 => ExitCode::HostUnreachable,
            _ => ExitCode::Usage,
        };
    }
    if let Command::Agent(AgentCommand::Relay {
        file,
        bind,
        token,
        idle,
        cut,
    }) = &cli.command
    {
        let relay = crate::agent::relay::Relay {
            file: file.clone(),
            bind: bind.clone(),
            token: token.clone(),
            idle: std::time::Duration::from_secs(*idle),
            cut: *cut,
        };
        return match crate::agent::relay::run(relay).await {
            0 => ExitCode::Ok,
            _ => ExitCode::HostFailed,
        };
    }
    if let Command::Agent(AgentCommand::Supervise {
        name,
        user,
        config_hash,
        command,
    }) = cli.command
    {
        let server = crate::agent::supervise::ServerCommand {
            name,
            user,
            config_hash,
            command,
        };
        return match crate::agent::supervise::run(server).await {
            0 => ExitCode::Ok,
            _ => ExitCode::HostFailed,
        };
    }
    if let Some(dir) = &cli.runs_dir {
        if let Err(error) = args::runs_dir_usable(dir) {
            eprintln!("error: {error}");
            return ExitCode::Usage;
        }
    }
    // Recorded runs need no inventory either: only where it is.
    match &cli.command {
        Command::Runs => return runs::run(&runs::runs_dir(&cli)),
        Command::Report(args) => return report::run(&runs::runs_dir(&cli), args),
        _ => {}
    }
    let settings = runs::settings(&cli, (EMBEDDED_INVENTORY_NAME, EMBEDDED_INVENTORY));
    let inventory = match load_inventory(&cli) {
        Ok(inventory) => inventory,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::Usage;
        }
    };
    for warning in &inventory.warnings {
        eprintln!("warning: {warning}");
    }
    let hosts = match inventory.select(cli.limit.as_deref()) {
        Ok(hosts) => hosts,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::Usage;
        }
    };
    let fanout = FanOut {
        forks: cli.forks,
        handshakes: cli.handshakes,
        timeout: cli.timeout,
    };
    match &cli.command {
        Command::Inventory(InventoryCommand::Check) => inventory_check::run(&inventory, &hosts),
        Command::Ping => ping::run(&hosts, &fanout, cli.quiet, &settings).await,
        Command::Facts { json } => facts::run(&hosts, &fanout, *json, &settings).await,
        Command::Deploy {
            check,
            diff,
            force,
            agent_binary,
            rolling,
            retry,
        } => {
            let args = deploy::Args {
                update: false,
                check: *check,
                diff: *diff,
                force: *force,
                agent_binary: agent_binary.clone(),
                settings: settings.clone(),
                rolling: rolling.rolling(),
                rollback: None,
                retry: retry.clone(),
                no_relay: cli.no_relay,
            };
            deploy::run(&inventory, &hosts, &fanout, args).await
        }
        Command::Update {
            check,
            diff,
            agent_binary,
            rolling,
            retry,
        } => {
            let args = deploy::Args {
                update: true,
                check: *check,
                diff: *diff,
                force: true,
                agent_binary: agent_binary.clone(),
                settings: settings.clone(),
                rolling: rolling.rolling(),
                rollback: None,
                retry: retry.clone(),
                no_relay: cli.no_relay,
            };
            deploy::run(&inventory, &hosts, &fanout, args).await
        }
        Command::Rollback { to, check, rolling } => {
            let args = deploy::Args {
                update: true,
                check: *check,
                diff: false,
                force: true,
                agent_binary: None,
                settings: settings.clone(),
                rolling: rolling.rolling(),
                rollback: Some(to.clone()),
                retry: None,
                no_relay: cli.no_relay,
            };
            deploy::run(&inventory, &hosts, &fanout, args).await
        }
        Command::Status { json } => {
            status::run(&hosts, &fanout, *json, &settings, &inventory.services).await
        }
        Command::Start(args) => {
            let control = crate::run::day2::Control::Start;
            let only = args.service.as_deref();
            let users = &inventory.services;
            service_ctl::run(&hosts, &fanout, control, only, args.wait, users).await
        }
        Command::Stop(args) => {
            let control = crate::run::day2::Control::Stop;
            let only = args.service.as_deref();
            let users = &inventory.services;
            service_ctl::run(&hosts, &fanout, control, only, None, users).await
        }
        Command::Restart(args) => {
            let control = crate::run::day2::Control::Restart;
            let only = args.service.as_deref();
            let users = &inventory.services;
            service_ctl::run(&hosts, &fanout, control, only, args.wait, users).await
        }
        Command::Logs(args) => logs::run(&inventory, &hosts, &fanout, args.clone()).await,
        Command::Lock(command) => lock::run(&hosts, &fanout, command).await,
        Command::Audit(args) => audit::run(&hosts, &fanout, args).await,
        Command::Clean(args) => {
            clean::run(
                &hosts,
                &inventory.services,
                &fanout,
                args.clone(),
                &settings,
            )
            .await
        }
        // Handled above, before the inventory is read.
        Command::Runs | Command::Report(_) => ExitCode::Usage,
        // Handled above, before the inventory is read.
        Command::Agent(_) | Command::Service(_) => ExitCode::Usage,
    }
}

fn load_inventory(cli: &Cli) -> Result<Inventory, InventoryError> {
    match &cli.inventory {
        Some(path) => inventory::load(path),
        None => inventory::parse(
            EMBEDDED_INVENTORY,
            std::path::Path::new(EMBEDDED_INVENTORY_NAME),
            None,
        ),
    }
}

/// The runtime's threads never take SIGPIPE: they write a command's input into a local child
/// (the local transport), and a child that ends without reading all of it (one cut short by
/// `--timeout`) must give that write an error, not end the whole run silently. A signal from a
/// write goes to the thread that wrote, so the main thread's `| head` behaviour stays; children
/// start with an empty mask (std resets it before exec).
fn block_sigpipe() {
    // SAFETY: a signal set on the stack, applied to this thread only.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// `mp-remote status | head` should end quietly like any Unix tool, not panic on a closed
/// pipe: Rust ignores SIGPIPE by default. The agent keeps ignoring it, so that a dropped SSH
/// connection never kills a half-done step.
fn restore_sigpipe() {
    // SAFETY: called once at start-up, before any thread writes to a pipe.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    /// What `block_sigpipe` relies on: a write into a closed pipe from such a thread is an
    /// error (EPIPE) instead of the process's end, and a child started from it gets an empty
    /// signal mask (std resets it before exec).
    #[test]
    fn a_runtime_thread_survives_a_closed_pipe_and_its_children_start_clean() {
        std::thread::spawn(|| {
            super::block_sigpipe();
            let mut fds = [0; 2];
            // SAFETY: a fresh pipe; both ends are closed below.
            let written = unsafe {
                assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
                libc::close(fds[0]);
                let written = libc::write(fds[1], b"x".as_ptr().cast(), 1);
                libc::close(fds[1]);
                written
            };
            assert_eq!(written, -1);
            assert_eq!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::EPIPE)
            );
            let status = std::process::Command::new("sh")
                .args(["-c", "grep '^SigBlk:' /proc/self/status"])
                .output()
                .unwrap();
            let line = String::from_utf8_lossy(&status.stdout).into_owned();
            assert!(line.trim_end().ends_with("0000000000000000"), "{line}");
        })
        .join()
        .unwrap();
    }
}
