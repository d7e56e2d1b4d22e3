//! `clean`: undo a deploy on each host. Stops and disables the units, removes the packages and
//! mp-remote's own files, and keeps the data (JetStream store, ClickHouse data) unless asked to
//! purge it, so that a later deploy finds the tables and messages where they were.
//!
//! The plan is pure data (shown to the user before anything runs) and renders to one script
//! per host that reports each thing it did as `did=`, each data directory it kept as `kept=`
//! and each failure as `failed=`; it does only what is still there, so a second clean is a no-op.

use super::day2::services_of;
use super::{for_each_host, FanOut, HostOutcome};
use crate::inventory::Host;
pub use crate::plan::build::NATS_DROP_IN;
use crate::plan::build::{CONFIG_DIR, STATE_DIR};
use crate::plan::install::{NATS_RELEASE_BINARY, NATS_UNIT_PATH as NATS_OWN_UNIT};
use crate::plan::install_clickhouse::{
    CLICKHOUSE_RELEASE_BINARY, CLICKHOUSE_UNIT_PATH as CLICKHOUSE_OWN_UNIT,
};
use crate::report::HostStatus;
use crate::stack::component::{Component, Origin};
use crate::transport::shell::{quote, with_become};

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

/// Where a non-root (become) user keeps the agent binary: its home, relative to the session.
const USER_AGENT_DIR: &str = ".mp-remote";

/// A service's data directory and the user that owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    pub path: &'static str,
    pub owner: &'static str,
}

/// What clean does on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanPlan {
    pub host: String,
    /// Stopped and disabled, in this order.
    pub units: Vec<&'static str>,
    /// Removed with `apt-get remove` (`purge` with `purge_data`).
    pub packages: Vec<&'static str>,
    /// mp-remote's own files and directories.
    pub files: Vec<String>,
    /// The user's agent directory (become), removed as that user.
    pub user_files: Vec<String>,
    /// Data directories: kept, or emptied with `purge_data`.
    pub data: Vec<DataDir>,
    /// Accounts removed when mp-remote made them (their comment says so). `nats` only with
    /// `purge_data`: kept data stays owned by the account that can read it.
    pub users: Vec<&'static str>,
    pub purge_data: bool,
    become_root: bool,
    /// The user's services on this host (`[services.*]`): stopped first (they may need the
    /// pipeline), then their unit, release directory, env file and account removed.
    pub user_services: Vec<UserServiceRemoval>,
}

/// What clean removes of one user service: all of it is mp-remote's (no data is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserServiceRemoval {
    pub name: String,
    pub unit: String,
    pub files: Vec<String>,
    pub user: String,
}

impl CleanPlan {
    /// Adds the user services `host` runs, from their declarations (as the deploy placed them).
    pub fn with_user_services(mut self, services: &[crate::inventory::UserService]) -> Self {
        use crate::plan::services::{env_file, service_dir, unit_name, unit_path};
        self.user_services = services
            .iter()
            .filter(|s| s.runs_on(&self.host))
            .rev()
            .map(|s| UserServiceRemoval {
                name: s.name.clone(),
                unit: unit_name(&s.name),
                files: vec![unit_path(&s.name), service_dir(&s.name), env_file(&s.name)],
                user: s.user.clone(),
            })
            .collect();
        self
    }
}

/// The plan for `host` by its roles, from each component's declaration: the files mp-remote
/// wrote for it, its data, its accounts, its package.
pub fn plan(host: &Host, purge_data: bool) -> CleanPlan {
    let services = services_of(host, None);
    let components: Vec<&Component> = services.iter().map(|s| s.component()).collect();
    let mut files = Vec::new();
    let mut data = Vec::new();
    let mut users: Vec<&'static str> = Vec::new();
    for c in &components {
        // Files in the config directory go with it, below.
        files.extend(
            c.config_files
                .iter()
                .filter(|f| !f.starts_with(&format!("{CONFIG_DIR}/")))
                .map(|f| f.to_string()),
        );
        data.extend(c.data_dirs.iter().map(|d| DataDir {
            path: d.path,
            owner: d.owner,
        }));
        // An account owning kept data stays, so the data stays readable by it.
        for account in c.accounts {
            if (purge_data || !account.owns_data) && !users.contains(&account.name) {
                users.push(account.name);
            }
        }
    }
    if components.iter().any(|c| c.origin == Origin::Release) {
        let deploy_dir = host
            .vars
            .get("deploy_dir")
            .and_then(|v| v.as_str())
            .unwrap_or(crate::plan::build::DEFAULT_DEPLOY_DIR);
        // Only what the release step made: the directory may hold a person's own files.
        for name in ["current", "previous", "releases"] {
            files.push(format!("{deploy_dir}/{name}"));
        }
    }
    files.extend([CONFIG_DIR.to_string(), STATE_DIR.to_string()]);
    CleanPlan {
        host: host.name.clone(),
        units: services.iter().rev().map(|s| s.unit()).collect(),
        packages: components
            .iter()
            .rev()
            .filter_map(|c| match c.origin {
                Origin::Vendor { package } => Some(package),
                Origin::Release => None,
            })
            .collect(),
        files,
        user_files: if host.become_ {
            vec![format!("~/{USER_AGENT_DIR}")]
        } else {
            Vec::new()
        },
        data,
        users,
        purge_data,
        become_root: host.become_,
        user_services: Vec::new(),
    }
}

const PRELUDE: &str = concat!(
    r#"set -u
PATH="$PATH:/usr/sbin:/sbin"
DEBIAN_FRONTEND=noninteractive
export PATH DEBIAN_FRONTEND
if [ "$(id -u)" != 0 ]; then
    echo 'failed=not root: connect as root, or set become = true with passwordless sudo'
    exit 1
fi
lock=/var/lib/mp-remote/agent.lock
if [ -e "$lock" ] && command -v flock >/dev/null 2>&1 && ! flock -n "$lock" true </dev/null; then
    echo "failed=an mp-remote agent holds $lock (a deploy is running): wait for it to finish, then clean again"
    exit 1
fi
rc=0
did() { printf 'did=%s\n' "$1"; }
fail() { printf 'failed=%s\n' "$1"; rc=1; }
"#,
    supervisor_sh!(),
    r#"# Without systemd, deploy runs the servers under mp-remote's own supervisor: stop that.
stop_unit() {
    if [ ! -d /run/systemd/system ]; then
        if sv_sup "$1"; then
            if sv_stop "$1"; then did "stopped $1 (mp-remote supervisor)"; else fail "cannot stop $1 (supervisor pid $p)"; fi
        fi
        return 0
    fi
    if systemctl is-active --quiet "$1" </dev/null || systemctl is-enabled --quiet "$1" </dev/null; then
        if systemctl disable --now "$1" </dev/null 1>&2; then did "stopped and disabled $1"; else fail "systemctl disable --now $1 failed"; fi
    fi
}
# pkg VERB NAME: remove skips what is not installed, purge also takes leftover config files.
pkg() {
    st=$(dpkg-query -W -f '${Status}' "$2" 2>/dev/null </dev/null)
    case $1 in
        remove) case $st in *" installed") ;; *) return 0 ;; esac ;;
        *) case $st in "" | *not-installed) return 0 ;; esac ;;
    esac
    if apt-get "$1" -y -q "$2" </dev/null 1>&2; then did "apt-get $1 $2"; else fail "apt-get $1 $2 failed"; fi
}
remove() {
    if [ -e "$1" ] || [ -L "$1" ]; then
        if rm -rf -- "$1"; then did "removed $1"; else fail "cannot remove $1"; fi
    fi
}
keep() { if [ -e "$1" ]; then printf 'kept=%s\n' "$1"; fi; }
# An account goes only when its comment says mp-remote made it.
our_user() {
    case $(getent passwd "$1" 2>/dev/null </dev/null | cut -d: -f5) in
        *"created by mp-remote"*)
            if userdel "$1" </dev/null 1>&2; then did "removed user $1"; else fail "userdel $1 failed"; fi ;;
    esac
}
wipe() {
    if [ -d "$1" ] && [ -n "$(ls -A "$1" 2>/dev/null </dev/null)" ]; then
        if find "$1" -mindepth 1 -delete </dev/null; then did "deleted the data in $1"; else fail "cannot delete the data in $1"; fi
    fi
}
# Debian's clickhouse-server purge deletes its home and a reinstall does not make it again (the
# user survives): leave each data directory in place, empty, so a later deploy can start.
home() {
    if [ ! -d "$1" ] && id -u "$2" >/dev/null 2>&1; then install -d -o "$2" -g "$2" -m 750 "$1"; fi
}
# User services go first, found on the host by their units (written with the managed marker):
# one dropped from the inventory since its deploy goes too. The plan's own list follows, for
# what a failed deploy left without a unit.
for unit in /etc/systemd/system/mp-svc-*.service; do
    [ -e "$unit" ] || continue
    head -n 1 "$unit" | grep -q 'managed by mp-remote' || continue
    name=${unit##*/}; name=${name%.service}; svc=${name#mp-svc-}
    account=$(sed -n 's/^User=//p' "$unit" | head -n 1)
    stop_unit "$name"
    remove "$unit"
    remove "/opt/mp-services/$svc"
    remove "/etc/mp-services/$svc.env"
    if [ -n "$account" ]; then our_user "$account"; fi
done
"#
);

/// A `release` or `push` ClickHouse (its install record in the state dir, or our unit with
/// the managed marker): the binary, its names and our unit; with `purge_data` also the
/// default configs it brought, as a package purge takes them. Runs before the state dir goes.
fn clickhouse_release_removal(purge_data: bool) -> String {
    let mut removals: Vec<String> = [
        CLICKHOUSE_RELEASE_BINARY,
        "/usr/local/bin/clickhouse-server",
        "/usr/local/bin/clickhouse-client",
        CLICKHOUSE_OWN_UNIT,
    ]
    .iter()
    .map(|f| format!("remove {f}"))
    .collect();
    if purge_data {
        for name in ["config.xml", "users.xml"] {
            for suffix in ["", ".mp-remote-new"] {
                removals.push(format!("remove /etc/clickhouse-server/{name}{suffix}"));
            }
        }
    }
    format!(
        "if [ -e {STATE_DIR}/install/clickhouse.installed ] || head -n 1 {CLICKHOUSE_OWN_UNIT} 2>/dev/null | grep -q 'managed by mp-remote'; then {}; fi\n",
        removals.join("; ")
    )
}

impl CleanPlan {
    /// The root script (fed on stdin to `sh -s`).
    pub fn script(&self) -> String {
        let mut s = String::from(PRELUDE);
        // The user's services first, in reverse start order: they may depend on the pipeline.
        for service in &self.user_services {
            s.push_str(&format!("stop_unit {}\n", quote(&service.unit)));
            for file in &service.files {
                s.push_str(&format!("remove {}\n", quote(file)));
            }
            s.push_str(&format!("our_user {}\n", quote(&service.user)));
        }
        if !self.user_services.is_empty() {
            s.push_str(&format!(
                "rmdir {} {} 2>/dev/null\n",
                crate::plan::services::SERVICES_DIR,
                crate::plan::services::ENV_DIR
            ));
        }
        for unit in &self.units {
            s.push_str(&format!("stop_unit {}\n", quote(unit)));
        }
        if self
            .files
            .iter()
            .any(|f| f == crate::stack::clickhouse::LISTEN_FILE)
        {
            s.push_str(&clickhouse_release_removal(self.purge_data));
        }
        for file in &self.files {
            s.push_str(&format!("remove {}\n", quote(file)));
        }
        if self.files.iter().any(|f| f == NATS_DROP_IN) {
            s.push_str("rmdir /etc/systemd/system/nats-server.service.d 2>/dev/null\n");
            // A `release` or `push` install: our own unit (with the managed marker) and the
            // binary it runs. A unit without the marker is someone else's: left alone.
            s.push_str(&format!(
                "if head -n 1 {NATS_OWN_UNIT} 2>/dev/null | grep -q 'managed by mp-remote'; then remove {NATS_RELEASE_BINARY}; remove {NATS_OWN_UNIT}; fi\n"
            ));
        }
        if self.purge_data {
            for dir in &self.data {
                s.push_str(&format!("wipe {}\n", quote(dir.path)));
            }
        }
        let verb = if self.purge_data { "purge" } else { "remove" };
        for package in &self.packages {
            s.push_str(&format!("pkg {verb} {}\n", quote(package)));
        }
        s.push_str("systemctl daemon-reload </dev/null 1>&2\n");
        for user in &self.users {
            s.push_str(&format!("our_user {}\n", quote(user)));
        }
        for dir in &self.data {
            s.push_str(&if self.purge_data {
                format!("home {} {}\n", quote(dir.path), quote(dir.owner))
            } else {
                format!("keep {}\n", quote(dir.path))
            });
        }
        s.push_str("exit $rc\n");
        s
    }

    /// The remote command: the user's own agent copy goes as that user, the rest as root.
    pub fn command(&self) -> String {
        let root = with_become("sh -s", self.become_root);
        if self.user_files.is_empty() {
            root
        } else {
            format!(
                "if [ -e {USER_AGENT_DIR} ]; then rm -rf {USER_AGENT_DIR} && echo did=removed ~/{USER_AGENT_DIR}; fi; {root}"
            )
        }
    }
}

/// What clean did on one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanDone {
    pub did: Vec<String>,
    /// Data directories left in place.
    pub kept: Vec<String>,
    pub failed: Vec<String>,
}

/// Reads the script's `did=`, `kept=` and `failed=` lines; anything else is ignored.
pub fn parse_output(stdout: &str) -> CleanDone {
    let mut done = CleanDone::default();
    for line in stdout.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(v) = line.strip_prefix("did=") {
            done.did.push(v.to_string());
        } else if let Some(v) = line.strip_prefix("kept=") {
            done.kept.push(v.to_string());
        } else if let Some(v) = line.strip_prefix("failed=") {
            done.failed.push(v.to_string());
        }
    }
    done
}

/// Runs each host's plan; a host with a failure ends `failed`, its error naming what failed
/// with the tail of the package manager's output.
pub async fn clean(
    plans: &[CleanPlan],
    hosts: &[&Host],
    fanout: &FanOut,
) -> Vec<HostOutcome<CleanDone>> {
    let mut outcomes = for_each_host(hosts, fanout, |transport, host| async move {
        let plan = plans.iter().find(|p| p.host == host.name).ok_or_else(|| {
            anyhow::anyhow!("no clean plan for {} (a bug: please report it)", host.name)
        })?;
        let output = transport
            .exec(&plan.command(), plan.script().as_bytes())
            .await?;
        let done = parse_output(&output.stdout_text());
        if !output.success() && done.failed.is_empty() {
            anyhow::bail!(
                "the clean script ended with exit {:?}: {}",
                output.status,
                crate::agent::outcome::tail(output.stderr_text().trim(), 10)
            );
        }
        Ok((done, output.stderr_text()))
    })
    .await;
    outcomes
        .drain(..)
        .map(|o| {
            let (status, error, value) = match o.value {
                Some((done, stderr)) if !done.failed.is_empty() => {
                    let tail = crate::agent::outcome::tail(stderr.trim(), 10);
                    let error = format!(
                        "{}: {}; fix that on the host, then clean again{}{}",
                        o.host,
                        done.failed.join("; "),
                        if tail.is_empty() { "" } else { "; output:\n" },
                        tail
                    );
                    (HostStatus::Failed, Some(error), Some(done))
                }
                Some((done, _)) => (o.status, o.error, Some(done)),
                None => (o.status, o.error, None),
            };
            HostOutcome {
                host: o.host,
                status,
                error,
                value,
                duration: o.duration,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory;

    fn host(roles: &str, become_root: bool) -> Host {
        let text = format!(
            "[[hosts]]\nname = \"mp-1\"\naddress = \"10.0.0.1\"\nroles = [{roles}]\nbecome = {become_root}\n"
        );
        let inv = inventory::parse(&text, std::path::Path::new("inv.toml"), None).unwrap();
        inv.hosts[0].clone()
    }

    #[test]
    fn user_services_are_stopped_first_and_removed_whole() {
        let service = |name: &str, hosts: &[&str]| inventory::UserService {
            name: name.into(),
            kind: inventory::ServiceKind::Python,
            path: "/x".into(),
            command: vec!["python".into()],
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            user: format!("mp-{name}"),
            env: Default::default(),
            env_files: Default::default(),
            ports: vec![],
            health: None,
            after: vec![],
            requirements: None,
            wheelhouse: None,
        };
        let services = [
            service("echo", &["mp-1"]),
            service("other", &["mp-2"]),
            service("late", &["mp-1"]),
        ];
        let p = plan(&host(r#""nats""#, false), false).with_user_services(&services);
        let names: Vec<&str> = p.user_services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["late", "echo"],
            "reverse start order, this host's only"
        );
        let script = p.script();
        let stop = script.find("stop_unit mp-svc-late\n").expect("stopped");
        assert!(stop < script.find("stop_unit nats-server\n").unwrap());
        for line in [
            "remove /etc/systemd/system/mp-svc-echo.service\n",
            "remove /opt/mp-services/echo\n",
            "remove /etc/mp-services/echo.env\n",
            "our_user mp-echo\n",
            "rmdir /opt/mp-services /etc/mp-services 2>/dev/null\n",
        ] {
            assert!(script.contains(line), "{line}");
        }
        assert!(!script.contains("other"));
    }

    #[test]
    fn plan_follows_the_roles() {
        let p = plan(&host(r#""nats", "clickhouse""#, false), false);
        assert_eq!(p.units, ["clickhouse-server", "nats-server"]);
        assert_eq!(p.packages, ["clickhouse-server", "nats-server"]);
        assert_eq!(
            p.files,
            [
                NATS_DROP_IN,
                "/etc/clickhouse-server/config.d/mp-listen.xml",
                "/etc/clickhouse-server/users.d/mp-users.xml",
                "/etc/marketprism",
                "/var/lib/mp-remote"
            ]
        );
        let dirs: Vec<&str> = p.data.iter().map(|d| d.path).collect();
        assert_eq!(dirs, ["/var/lib/nats/jetstream", "/var/lib/clickhouse"]);
        assert!(p.user_files.is_empty());

        // A pipeline host: its unit and the releases go; no package, no data.
        let collector = plan(&host(r#""collector""#, true), false);
        assert_eq!(collector.units, ["mp-collector"]);
        assert!(collector.packages.is_empty() && collector.data.is_empty());
        assert_eq!(
            collector.files,
            [
                "/etc/systemd/system/mp-collector.service",
                "/opt/marketprism/current",
                "/opt/marketprism/previous",
                "/opt/marketprism/releases",
                "/etc/marketprism",
                "/var/lib/mp-remote"
            ]
        );
        assert_eq!(collector.user_files, ["~/.mp-remote"]);
        assert_eq!(collector.users, ["marketprism"]);
        assert!(
            p.users.is_empty(),
            "nats keeps its account while its data is kept"
        );
    }

    #[test]
    fn only_accounts_mp_remote_made_are_removed() {
        let purge = plan(&host(r#""nats""#, false), true);
        assert_eq!(purge.users, ["nats"]);
        assert!(purge.script().contains("\nour_user nats\n"));
        // The comment the agent gives the accounts it makes is the one the script looks for.
        assert!(PRELUDE.contains(&format!(
            "*\"{}\"*)",
            crate::agent::actions::system_user::CREATED_BY
        )));
    }

    #[test]
    fn script_keeps_data_by_default() {
        let script = plan(&host(r#""nats""#, false), false).script();
        let body = &script[PRELUDE.len()..];
        assert_eq!(
            body,
            "stop_unit nats-server
remove /etc/systemd/system/nats-server.service.d/mp-remote.conf
remove /etc/marketprism
remove /var/lib/mp-remote
rmdir /etc/systemd/system/nats-server.service.d 2>/dev/null
if head -n 1 /etc/systemd/system/nats-server.service 2>/dev/null | grep -q 'managed by mp-remote'; then remove /usr/local/bin/nats-server; remove /etc/systemd/system/nats-server.service; fi
pkg remove nats-server
systemctl daemon-reload </dev/null 1>&2
keep /var/lib/nats/jetstream
exit $rc
"
        );
    }

    #[test]
    fn script_purges_data_but_leaves_the_directories() {
        let script = plan(&host(r#""clickhouse""#, false), true).script();
        let body = &script[PRELUDE.len()..];
        assert_eq!(
            body,
            "stop_unit clickhouse-server
if [ -e /var/lib/mp-remote/install/clickhouse.installed ] || head -n 1 /etc/systemd/system/clickhouse-server.service 2>/dev/null | grep -q 'managed by mp-remote'; then remove /usr/local/bin/clickhouse; remove /usr/local/bin/clickhouse-server; remove /usr/local/bin/clickhouse-client; remove /etc/systemd/system/clickhouse-server.service; remove /etc/clickhouse-server/config.xml; remove /etc/clickhouse-server/config.xml.mp-remote-new; remove /etc/clickhouse-server/users.xml; remove /etc/clickhouse-server/users.xml.mp-remote-new; fi
remove /etc/clickhouse-server/config.d/mp-listen.xml
remove /etc/clickhouse-server/users.d/mp-users.xml
remove /etc/marketprism
remove /var/lib/mp-remote
wipe /var/lib/clickhouse
pkg purge clickhouse-server
systemctl daemon-reload </dev/null 1>&2
our_user clickhouse
home /var/lib/clickhouse clickhouse
exit $rc
"
        );
    }

    #[test]
    fn commands_run_the_script_as_root() {
        assert_eq!(plan(&host(r#""nats""#, false), false).command(), "sh -s");
        assert_eq!(
            plan(&host(r#""nats""#, true), false).command(),
            "if [ -e .mp-remote ]; then rm -rf .mp-remote && echo did=removed ~/.mp-remote; fi; sudo -n -- sh -c 'sh -s'"
        );
    }

    #[test]
    fn output_lines() {
        let done = parse_output("junk\ndid=apt-get remove nats-server\r\nkept=/var/lib/clickhouse\nfailed=apt-get remove clickhouse-server failed\n");
        assert_eq!(done.did, ["apt-get remove nats-server"]);
        assert_eq!(done.kept, ["/var/lib/clickhouse"]);
        assert_eq!(done.failed, ["apt-get remove clickhouse-server failed"]);
    }

    /// The prelude is valid POSIX sh (dash is Debian's /bin/sh).
    #[test]
    fn script_parses_under_sh() {
        let script = plan(&host(r#""nats", "clickhouse""#, false), true).script();
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
