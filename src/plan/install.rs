//! The install layer's component-neutral parts, shared by the vendor servers' own install
//! steps (`stack::nats::install`, `stack::clickhouse::install`), per source
//! (`[components.*]`):
//!
//! - `os`: the distribution's package (`packages_step`), all of a host's in one transaction
//!   ([`one_package_transaction`]).
//! - `release`: the vendor's archive, downloaded on the host with curl and checked against the
//!   inventory's sha256 before anything is installed (`release_sum`, `release_arch`).
//! - `push`: a file from the control node, uploaded by it (content-addressed, see
//!   [`pushed_artifact_path`]), then installed like a release; a `.deb` goes through dpkg.
//!
//! A release binary goes to /usr/local/bin (the FHS place for software outside the package
//! manager, on every shell's PATH, so `facts` and `status` find its version the way they find
//! the package's). It replaces the previous one by an atomic rename; keeping old versions side
//! by side would only matter for a rollback, which is a deploy of the older pin anyway.
//! Without a package there is no unit and no account: the server's module makes both.

use crate::facts::Facts;

use super::build::STATE_DIR;
use super::components::Checksums;
use super::model::{Action, Step};

/// `install.NAME.unit`: the systemd unit mp-remote writes for a server installed without a
/// package (a release or a pushed archive); a changed unit restarts it through `service_step`.
pub fn unit_step(component: &str, path: &str, content: String, service_step: &str) -> Step {
    Step {
        id: format!("install.{component}.unit"),
        title: format!("systemd unit {path}"),
        action: Action::File {
            path: path.into(),
            content,
            mode: 0o644,
            owner: None,
        },
        notify: vec![service_step.into()],
    }
}

/// The unit of a vendor's server installed without a package: ordered after the network,
/// run as its own account, `service` the rest of its `[Service]` section (one line each).
pub fn vendor_unit(description: &str, docs: &str, account: &str, service: &[&str]) -> String {
    crate::stack::managed::with_marker(
        crate::stack::managed::CommentStyle::Hash,
        &format!(
            "[Unit]
Description={description} (installed by mp-remote)
Documentation={docs}
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={account}
Group={account}
{}

[Install]
WantedBy=multi-user.target
",
            service.join("\n")
        ),
    )
}

/// The architectures the vendors publish builds for, as they spell them.
pub const ARCHES: [&str; 2] = ["amd64", "arm64"];

/// Where a pushed artifact lands on the host: beside the agent (root: the state dir; a sudo
/// user: its home, where it can upload without sudo), named by its sha256 so a changed file
/// is a new upload and the same file is never sent twice. The control node uploads there
/// (run/agent_exec.rs), the plan installs from there.
pub fn pushed_artifact_path(is_root: bool, sha256: &str, artifact: &str) -> String {
    let dir = if is_root {
        format!("{STATE_DIR}/artifacts")
    } else {
        ".mp-remote/artifacts".to_string()
    };
    format!(
        "{dir}/{}-{}",
        &sha256[..16.min(sha256.len())],
        file_name(artifact)
    )
}

/// The sum of one pushed file, or what to add to the inventory.
pub(crate) fn push_sum(
    sha256: Option<&Checksums>,
    artifact: &str,
    component: &str,
) -> Result<String, String> {
    let file = file_name(artifact);
    match sha256 {
        None => Err(format!(
            "source = \"push\" needs the artifact's sha256: add sha256 = \"<output of sha256sum {artifact}>\" under [components.{component}]"
        )),
        Some(sums) => sums.for_file(file).map(str::to_string).ok_or_else(|| {
            format!("sha256 has no sum for {file}: add \"{file}\" = \"<output of sha256sum {artifact}>\" to it")
        }),
    }
}

pub(crate) fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

pub(crate) fn packages_step(component: &str, packages: &[&str]) -> Step {
    Step {
        id: format!("install.{component}.packages"),
        title: format!("install {}", packages.join(", ")),
        action: Action::Packages {
            packages: packages.iter().map(|p| p.to_string()).collect(),
        },
        notify: vec![],
    }
}

/// One package transaction for the whole host: the OS packages of every component it runs
/// (NATS and ClickHouse from Debian's archive) installed by one `apt-get install`, in place
/// of the first; dpkg's triggers and the lists' reading are paid once. The port checks move
/// in front of it, so that a port another program holds still stops the host before anything
/// is installed.
pub fn one_package_transaction(steps: Vec<Step>) -> Vec<Step> {
    let is_packages = |s: &Step| matches!(s.action, Action::Packages { .. });
    if steps.iter().filter(|s| is_packages(s)).count() < 2 {
        return steps;
    }
    let (ports, rest): (Vec<Step>, Vec<Step>) = steps
        .into_iter()
        .partition(|s| matches!(s.action, Action::PortFree { .. }));
    let mut names: Vec<String> = Vec::new();
    for step in rest.iter().filter(|s| is_packages(s)) {
        if let Action::Packages { packages } = &step.action {
            names.extend(packages.iter().cloned());
        }
    }
    let mut merged = Some(Step {
        id: "install.packages".into(),
        title: format!("install {}", names.join(", ")),
        action: Action::Packages { packages: names },
        notify: vec![],
    });
    let mut out = ports;
    for step in rest {
        if !is_packages(&step) {
            out.push(step);
        } else if let Some(one) = merged.take() {
            out.push(one);
        }
    }
    out
}

/// The vendors' spelling of the host's architecture.
pub(crate) fn release_arch(facts: &Facts) -> Option<&'static str> {
    match facts.target_arch()? {
        "x86_64" => Some("amd64"),
        "aarch64" => Some("arm64"),
        _ => None,
    }
}

/// `v2.10.7` and `2.10.7` name the same release.
pub(crate) fn clean_version(version: &str) -> String {
    version.trim().trim_start_matches('v').to_string()
}

/// `inventory check`: a release's sums must cover its file (`files`, one per architecture the
/// vendor builds) for at least one architecture; `table` is where to add them.
pub(crate) fn release_sums_cover(
    sums: Option<&Checksums>,
    files: &[String],
    table: &str,
) -> Result<(), String> {
    let Some(sums) = sums else {
        return Err(format!(
            "source = \"release\" needs the sha256 of {}: add sha256 = \"<its sum from the release's SHA256SUMS>\" under {table} (several architectures: sha256 = {{ \"<file>\" = \"<sum>\", ... }})",
            files[0]
        ));
    };
    if files.iter().any(|f| sums.for_file(f).is_some()) {
        Ok(())
    } else {
        Err(format!(
            "sha256 has no sum for {}: add \"<file>\" = \"<its sum>\" for the architectures of your hosts",
            files.join(" or ")
        ))
    }
}

/// The sum for `file` of `component`'s release, or what to add to the inventory.
pub(crate) fn release_sum(
    sha256: Option<&Checksums>,
    file: &str,
    component: &str,
) -> Result<String, String> {
    match sha256 {
        None => Err(format!(
            "source = \"release\" needs the sha256 of {file}: add the line sha256 = \"<its sum from the release's SHA256SUMS>\" under [components.{component}] (several architectures: sha256 = {{ \"{file}\" = \"<sum>\", ... }})"
        )),
        Some(sums) => sums.for_file(file).map(str::to_string).ok_or_else(|| {
            format!("sha256 has no sum for {file}: add \"{file}\" = \"<its sum from the release's SHA256SUMS>\" to it")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{servers_plan, Components, Fleet};

    const SUM: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const SYSTEMD: &str = include_str!("../../tests/fixtures/facts/debian12_vm.txt");

    fn ids(steps: &[Step]) -> Vec<&str> {
        steps.iter().map(|s| s.id.as_str()).collect()
    }

    #[test]
    fn pushed_files_land_beside_the_agent() {
        assert_eq!(
            pushed_artifact_path(true, SUM, "/abs/dir/nats.tar.gz"),
            "/var/lib/mp-remote/artifacts/0123456789abcdef-nats.tar.gz"
        );
        assert_eq!(
            pushed_artifact_path(false, SUM, "nats.tar.gz"),
            ".mp-remote/artifacts/0123456789abcdef-nats.tar.gz"
        );
    }

    #[test]
    fn the_os_packages_of_a_host_install_in_one_transaction_after_every_port_check() {
        let inventory = crate::inventory::parse(
            "[[hosts]]\nname = \"local\"\nconnection = \"local\"\nbecome = true\nroles = [\"nats\", \"clickhouse\"]\n\n[components.nats]\nsource = \"os\"\n\n[components.clickhouse]\nsource = \"os\"\n",
            std::path::Path::new("test.toml"),
            None,
        )
        .unwrap();
        let components = Components::from_table(&inventory.components).unwrap();
        let plan = servers_plan(
            &inventory.hosts[0],
            &crate::facts::parse(SYSTEMD).unwrap(),
            &components,
            &Fleet::single_host_for_tests(),
            "run",
            false,
        )
        .unwrap();
        let install = &plan.layers[0].steps;
        let packages: Vec<&Step> = install
            .iter()
            .filter(|s| matches!(s.action, Action::Packages { .. }))
            .collect();
        assert_eq!(packages.len(), 1, "{:?}", ids(install));
        assert_eq!(packages[0].id, "install.packages");
        assert_eq!(
            packages[0].action,
            Action::Packages {
                packages: vec!["nats-server".into(), "clickhouse-server".into()]
            }
        );
        let at = |id: &str| install.iter().position(|s| s.id == id).unwrap();
        let last_port = install
            .iter()
            .rposition(|s| matches!(s.action, Action::PortFree { .. }))
            .unwrap();
        assert!(last_port < at("install.packages"), "{:?}", ids(install));
        assert_eq!(
            install
                .iter()
                .filter(|s| matches!(s.action, Action::PortFree { .. }))
                .count(),
            4
        );
    }
}
