//! OS packages through the host's package manager. An interrupted dpkg (a host restarted in the
//! middle of an install) is repaired first, so no one has to run `dpkg --configure -a` by hand.

use crate::agent::outcome::{Outcome, StepError};
use crate::agent::shell::sh;
use crate::transport::shell::quote;

pub async fn apply(packages: &[String], check_only: bool) -> Result<Outcome, StepError> {
    let manager = detect_manager().await?;
    // dpkg's own database answers both questions below without starting dpkg twice.
    let db = (manager == Manager::Apt)
        .then(|| std::fs::read_to_string(DPKG_STATUS).ok())
        .flatten()
        .map(|status| read_dpkg_db(&status, packages, dpkg_journal_pending()));
    let installed = match &db {
        Some((versions, _)) => versions.clone(),
        None => installed_versions(manager, packages).await?,
    };
    let missing: Vec<&String> = packages
        .iter()
        .zip(&installed)
        .filter(|(_, version)| version.is_none())
        .map(|(name, _)| name)
        .collect();
    let broken = match &db {
        Some((_, interrupted)) => *interrupted,
        None => manager == Manager::Apt && dpkg_interrupted().await,
    };
    if missing.is_empty() && !broken {
        let list: Vec<String> = packages
            .iter()
            .zip(&installed)
            .map(|(name, version)| format!("{name} {}", version.as_deref().unwrap_or("?")))
            .collect();
        return Ok(Outcome::unchanged(format!(
            "{} already installed",
            list.join(", ")
        )));
    }
    let mut changes: Vec<String> = missing.iter().map(|p| format!("install {p}")).collect();
    if broken {
        changes.insert(0, "repair interrupted dpkg (dpkg --configure -a)".into());
    }
    if check_only {
        return Ok(Outcome::changed(
            format!("would {}", changes.join(", ")),
            changes,
        ));
    }
    let names: Vec<String> = missing.iter().map(|p| quote(p)).collect();
    let script = match manager {
        Manager::Apt => format!("{NO_SERVICE_STARTS}{}", apt_script(&names.join(" "))),
        Manager::Dnf => format!("dnf install -y {}", names.join(" ")),
        Manager::Yum => format!("yum install -y {}", names.join(" ")),
    };
    let run = sh(&script)
        .await
        .map_err(|e| StepError::new(format!("cannot run the package manager: {e}")))?;
    if !run.success() {
        let hint = if run.output.contains("Unable to locate package")
            || run.output.contains("No match for argument")
        {
            "the package is not in the host's repositories: use source = \"release\" or \"push\" for this component"
        } else if run.output.contains("Could not get lock") {
            "another package manager holds the lock (unattended-upgrades?): wait for it, then deploy again"
        } else {
            "see the output above; fix the package manager on the host, then deploy again"
        };
        return Err(StepError::new(format!(
            "installing {} failed (exit {:?})",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            run.code
        ))
        .hint(hint)
        .with_output(&run.output));
    }
    let after = installed_versions(manager, packages).await?;
    let versions: Vec<String> = packages
        .iter()
        .zip(&after)
        .map(|(name, version)| format!("{name} {}", version.as_deref().unwrap_or("?")))
        .collect();
    let repaired = if broken {
        "repaired interrupted dpkg; "
    } else {
        ""
    };
    Ok(Outcome::changed(
        format!("{repaired}installed {}", versions.join(", ")),
        changes,
    )
    .with_output(&run.output))
}

/// A package's postinst starts its server with the package's config: under systemd the init
/// layer then restarts it with mp-remote's (a ClickHouse stop alone is most of a second, and
/// the first start-up is paid twice), and without systemd it runs outside the agent's
/// supervisor, which then finds the ports taken. A policy-rc.d answering 101 ("not allowed")
/// stops that for the install; the init layer starts each server once, configured. One the
/// host already has (Docker images ship one) is left as it is. The packages mp-remote installs
/// are its servers (started by init) and libraries, so nothing else is left stopped.
const NO_SERVICE_STARTS: &str = "policy=/usr/sbin/policy-rc.d
if [ ! -e $policy ] || grep -q mp-remote $policy; then
  printf '#!/bin/sh\\n# mp-remote: no service starts while it installs packages\\nexit 101\\n' >$policy
  chmod 755 $policy
  trap 'rm -f $policy' EXIT
fi
";

/// Repairs dpkg, refreshes the package lists when they are missing or a package is unknown,
/// and installs without prompts, keeping config files a person changed.
fn apt_script(names: &str) -> String {
    format!(
        "set -e
dpkg --configure -a
if ! apt-cache show {names} >/dev/null 2>&1; then apt-get update -q; fi
apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold {names}"
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Manager {
    Apt,
    Dnf,
    Yum,
}

async fn detect_manager() -> Result<Manager, StepError> {
    for (tool, manager) in [
        ("apt-get", Manager::Apt),
        ("dnf", Manager::Dnf),
        ("yum", Manager::Yum),
    ] {
        if on_path(tool) {
            return Ok(manager);
        }
    }
    Err(
        StepError::new("no supported package manager (apt-get, dnf, yum) on this host")
            .hint("use source = \"release\" or \"push\" for the components in the inventory"),
    )
}

/// Whether `tool` is an executable on the agent's PATH (what `command -v` answers, without
/// starting a shell for it).
fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// The installed version of each package, None where it is not (fully) installed: one query
/// for all of them.
async fn installed_versions(
    manager: Manager,
    packages: &[String],
) -> Result<Vec<Option<String>>, StepError> {
    let names: Vec<String> = packages.iter().map(|p| quote(p)).collect();
    // One line per package found: NAME|STATUS|VERSION (an unknown one prints nothing).
    let query = match manager {
        Manager::Apt => format!(
            "dpkg-query -W -f='${{Package}}|${{Status}}|${{Version}}\n' {} 2>/dev/null",
            names.join(" ")
        ),
        Manager::Dnf | Manager::Yum => format!(
            "rpm -q --qf '%{{NAME}}|install ok installed|%{{VERSION}}\n' {} 2>/dev/null",
            names.join(" ")
        ),
    };
    let out = sh(&query)
        .await
        .map_err(|e| StepError::new(format!("cannot query installed packages: {e}")))?;
    Ok(packages
        .iter()
        .map(|package| {
            out.output.lines().find_map(|line| {
                let (name, rest) = line.split_once('|')?;
                (name == package).then(|| parse_status(rest)).flatten()
            })
        })
        .collect())
}

/// `install ok installed|2.9.10-1` -> Some("2.9.10-1"); half-installed states -> None.
fn parse_status(line: &str) -> Option<String> {
    let (status, version) = line.trim().split_once('|')?;
    (status == "install ok installed" && !version.is_empty()).then(|| version.to_string())
}

const DPKG_STATUS: &str = "/var/lib/dpkg/status";
const DPKG_UPDATES: &str = "/var/lib/dpkg/updates";

/// Entries in dpkg's journal: a dpkg run ended before it folded them into its status file.
fn dpkg_journal_pending() -> bool {
    std::fs::read_dir(DPKG_UPDATES).is_ok_and(|mut d| d.next().is_some())
}

/// From dpkg's status file: each package's installed version (None unless `install ok
/// installed`), and whether an interrupted run left anything half done (what `dpkg --audit`
/// lists: a package unpacked, half-installed, half-configured or awaiting triggers, or one
/// marked for reinstallation) or `journal_pending`.
fn read_dpkg_db(
    status: &str,
    packages: &[String],
    journal_pending: bool,
) -> (Vec<Option<String>>, bool) {
    let mut versions = vec![None; packages.len()];
    let mut interrupted = journal_pending;
    for stanza in status.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
        };
        let state = field("Status").unwrap_or("");
        let words: Vec<&str> = state.split_whitespace().collect();
        if let [_, flag, state] = words[..] {
            interrupted |= flag == "reinstreq"
                || matches!(
                    state,
                    "unpacked"
                        | "half-installed"
                        | "half-configured"
                        | "triggers-awaited"
                        | "triggers-pending"
                );
        }
        let Some(package) = field("Package") else {
            continue;
        };
        if let Some(at) = packages.iter().position(|p| p == package) {
            if let Some(version) =
                parse_status(&format!("{state}|{}", field("Version").unwrap_or("")))
            {
                versions[at] = Some(version);
            }
        }
    }
    (versions, interrupted)
}

/// `dpkg --audit` lists packages left half-configured by an interrupted run.
async fn dpkg_interrupted() -> bool {
    sh("dpkg --audit 2>/dev/null")
        .await
        .is_ok_and(|o| !o.output.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_parsing() {
        assert_eq!(
            parse_status("install ok installed|2.9.10-1"),
            Some("2.9.10-1".into())
        );
        assert_eq!(parse_status("install ok half-configured|2.9.10-1"), None);
        assert_eq!(parse_status("deinstall ok config-files|1.0"), None);
        assert_eq!(parse_status(""), None);
    }

    #[test]
    fn a_package_manager_is_found_on_the_path() {
        assert!(on_path("sh"));
        assert!(!on_path("no-such-package-manager-mp"));
    }

    #[tokio::test]
    async fn one_query_answers_for_every_package_in_order() {
        if !on_path("dpkg-query") {
            return;
        }
        let wanted = ["no-such-package-mp".to_string(), "dpkg".to_string()];
        let versions = installed_versions(Manager::Apt, &wanted).await.unwrap();
        assert_eq!(versions[0], None);
        assert!(versions[1].is_some(), "{versions:?}");
    }

    #[test]
    fn dpkg_db_gives_versions_and_interrupted_runs() {
        let status = "Package: nats-server\nStatus: install ok installed\nPriority: optional\nVersion: 2.9.10-1\nDescription: x\n more\n\nPackage: clickhouse-server\nStatus: deinstall ok config-files\nVersion: 18.16.1\n\nPackage: dpkg\nStatus: install ok installed\nVersion: 1.21.22\n";
        let wanted = [
            "nats-server".to_string(),
            "clickhouse-server".to_string(),
            "nope".to_string(),
        ];
        assert_eq!(
            read_dpkg_db(status, &wanted, false),
            (vec![Some("2.9.10-1".into()), None, None], false)
        );
        assert!(
            read_dpkg_db(status, &wanted, true).1,
            "the journal has entries"
        );
        let half = status.replace("deinstall ok config-files", "install ok half-configured");
        assert!(read_dpkg_db(&half, &wanted, false).1);
        let reinst = status.replace("deinstall ok config-files", "install reinstreq installed");
        assert!(read_dpkg_db(&reinst, &wanted, false).1);
        if let Ok(real) = std::fs::read_to_string(DPKG_STATUS) {
            let (versions, _) = read_dpkg_db(&real, &["dpkg".to_string()], false);
            assert!(
                versions[0].is_some(),
                "dpkg is installed on a Debian machine"
            );
        }
    }

    #[test]
    fn apt_script_repairs_first() {
        let script = apt_script("nats-server");
        assert!(script.starts_with("set -e\ndpkg --configure -a\n"));
        assert!(script.contains("--force-confold nats-server"));
    }
}
