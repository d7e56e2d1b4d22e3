//! The install layer of each component, per source (`[components.*]`):
//!
//! - `os`: the distribution's package.
//! - `release`: the vendor's archive, downloaded on the host with curl and checked against the
//!   inventory's sha256 before anything is installed.
//! - `push`: a file from the control node, uploaded by it (content-addressed, see
//!   [`pushed_artifact_path`]), then installed like a release; a `.deb` goes through dpkg.
//!
//! A release binary goes to /usr/local/bin (the FHS place for software outside the package
//! manager, on every shell's PATH, so `facts` and `status` find its version the way they find
//! the package's). It replaces the previous one by an atomic rename; keeping old versions side
//! by side would only matter for a rollback, which is a deploy of the older pin anyway.
//! Without a package there is no unit and no account: both are made here.

use super::build::NATS_DROP_IN as NATS_OS_DROP_IN;
use crate::facts::{Facts, Init};
use crate::inventory::Host;
use crate::stack::managed::{with_marker, CommentStyle};
use crate::stack::nats::COMPONENT as NATS;

use super::build::{PlanError, STATE_DIR};
use super::components::{Checksums, Source, NATS_PINNED};
use super::model::{Action, ArtifactFrom, Step};

/// Where a NATS release (or pushed archive) is installed.
pub const NATS_RELEASE_BINARY: &str = "/usr/local/bin/nats-server";
/// Where Debian's package puts it.
pub const NATS_PACKAGE_BINARY: &str = "/usr/sbin/nats-server";
/// The vendors' sites; `base_url` replaces them with a mirror laid out the same way.
pub const NATS_RELEASE_SITE: &str = "https://github.com";
pub const CLICKHOUSE_RELEASE_SITE: &str = "https://packages.clickhouse.com";
/// The unit mp-remote writes where no package brought one.
pub const NATS_UNIT_PATH: &str = "/etc/systemd/system/nats-server.service";

/// How the init layer runs the NATS server the install layer put in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatsRun {
    pub binary: &'static str,
    /// A package brought its own unit: the init layer points it at our config with a
    /// drop-in. Otherwise the install layer wrote a whole unit and no drop-in is wanted.
    pub package_unit: bool,
}

/// The NATS install steps for `source`. `service_step`: the id of the step running the
/// server (an upgraded binary or a new unit restarts it); `config`: the config it runs with.
pub fn nats_install(
    host: &Host,
    facts: &Facts,
    source: &Source,
    service_step: &str,
    config: &str,
) -> Result<(Vec<Step>, NatsRun), PlanError> {
    let refuse = |message: String| PlanError::Source {
        host: host.name.clone(),
        component: "nats",
        message,
    };
    let package = NatsRun {
        binary: NATS_PACKAGE_BINARY,
        package_unit: true,
    };
    let release = NatsRun {
        binary: NATS_RELEASE_BINARY,
        package_unit: false,
    };
    let (binary_step, run) = match source {
        Source::Os {} => {
            let os_package = NATS.package().unwrap_or(NATS.unit);
            return Ok((vec![packages_step(NATS.name, &[os_package])], package));
        }
        Source::Release {
            version,
            sha256,
            base_url,
        } => {
            let version = clean_version(version.as_deref().unwrap_or(NATS_PINNED));
            let arch = release_arch(facts).ok_or_else(|| {
                refuse(format!(
                    "source = \"release\": NATS publishes linux-amd64 and linux-arm64 builds, this host is {}; use source = \"os\" or \"push\"",
                    facts.arch
                ))
            })?;
            let file = format!("nats-server-v{version}-linux-{arch}.tar.gz");
            let base = base_url
                .as_deref()
                .unwrap_or(NATS_RELEASE_SITE)
                .trim_end_matches('/');
            let url = format!("{base}/nats-io/nats-server/releases/download/v{version}/{file}");
            let sum = release_sum(sha256.as_ref(), &file).map_err(refuse)?;
            if !facts.tools.curl {
                return Err(refuse(format!(
                    "source = \"release\" downloads {url} on the host with curl, which the host lacks: install curl there (apt-get install curl), or use source = \"push\""
                )));
            }
            if !facts.tools.tar {
                return Err(refuse(format!(
                    "source = \"release\" unpacks {file} with tar, which the host lacks: install tar there, or push the bare binary (source = \"push\")"
                )));
            }
            let step = binary_step(
                format!("install nats-server {version} ({file})"),
                ArtifactFrom::Download { url },
                sum,
                Some(version),
                service_step,
            );
            (step, release)
        }
        Source::Push {
            artifact,
            sha256,
            version,
        } => {
            let [artifact] = artifact.paths()[..] else {
                return Err(refuse(
                    "source = \"push\" takes one artifact for NATS (the release tarball, the binary or a .deb): artifact = \"files/...\"".into(),
                ));
            };
            let sum = push_sum(sha256.as_ref(), artifact, "nats").map_err(refuse)?;
            let remote = pushed_artifact_path(facts.is_root, &sum, artifact);
            let file = file_name(artifact);
            if file.ends_with(".deb") {
                if !facts.tools.apt_get && facts.os.family != "debian" {
                    return Err(refuse(format!(
                        "artifact {file} is a Debian package, but this host is {} ({}): push the release tarball or the binary instead",
                        facts.os.id, facts.os.family
                    )));
                }
                let step = Step {
                    id: "install.nats.deb".into(),
                    title: format!("install nats-server from {file} (dpkg)"),
                    action: Action::InstallDeb {
                        package: "nats-server".into(),
                        path: remote,
                        sha256: sum,
                    },
                    notify: vec![service_step.into()],
                };
                return Ok((vec![step], package));
            }
            let title = match version {
                Some(v) => format!("install nats-server {} ({file})", clean_version(v)),
                None => format!("install nats-server ({file})"),
            };
            let step = binary_step(
                title,
                ArtifactFrom::Uploaded { path: remote },
                sum,
                version.as_deref().map(clean_version),
                service_step,
            );
            (step, release)
        }
    };
    // The binary first: a download that fails its sum leaves the host exactly as it was.
    let mut steps = vec![
        binary_step,
        Step {
            id: "install.nats.user".into(),
            title: "system user nats".into(),
            action: Action::SystemUser {
                name: "nats".into(),
                home: "/var/lib/nats".into(),
            },
            notify: vec![],
        },
    ];
    if facts.init == Init::Systemd {
        steps.push(Step {
            id: "install.nats.unit".into(),
            title: format!("systemd unit {NATS_UNIT_PATH}"),
            action: Action::File {
                path: NATS_UNIT_PATH.into(),
                content: nats_unit(run.binary, config),
                mode: 0o644,
                owner: None,
            },
            notify: vec![service_step.into()],
        });
        // A host that ran source = "os" before keeps that drop-in, which would start the
        // package's binary instead of this one.
        steps.push(Step {
            id: "install.nats.no-os-drop-in".into(),
            title: format!("no drop-in of source = \"os\" ({NATS_OS_DROP_IN})"),
            action: Action::Script {
                check: Some(format!("test ! -e {NATS_OS_DROP_IN}")),
                apply: format!("rm -f {NATS_OS_DROP_IN} && systemctl daemon-reload"),
                creates: Vec::new(),
            },
            notify: vec![service_step.into()],
        });
    }
    Ok((steps, run))
}

fn binary_step(
    title: String,
    from: ArtifactFrom,
    sha256: String,
    version: Option<String>,
    service_step: &str,
) -> Step {
    Step {
        id: "install.nats.binary".into(),
        title,
        action: Action::InstallBinary {
            name: "nats-server".into(),
            from,
            sha256,
            version,
            path: NATS_RELEASE_BINARY.into(),
            work_dir: format!("{STATE_DIR}/install"),
        },
        notify: vec![service_step.into()],
    }
}

/// The unit for a NATS without a package: Debian's, with our binary and config, restarts on
/// failure and the file limit the `os` drop-in sets.
fn nats_unit(binary: &str, config: &str) -> String {
    with_marker(
        CommentStyle::Hash,
        &format!(
            "[Unit]
Description=NATS Server (installed by mp-remote)
Documentation=https://docs.nats.io
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=nats
Group=nats
ExecStart={binary} -c {config}
ExecReload=/bin/kill -s HUP $MAINPID
ExecStop=/bin/kill -s SIGINT $MAINPID
Restart=on-failure
RestartSec=2
LimitNOFILE=65536
PrivateTmp=true

[Install]
WantedBy=multi-user.target
"
        ),
    )
}

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

pub(super) fn packages_step(component: &str, packages: &[&str]) -> Step {
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
pub(super) fn release_arch(facts: &Facts) -> Option<&'static str> {
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

/// The sum for `file`, or what to add to the inventory.
fn release_sum(sha256: Option<&Checksums>, file: &str) -> Result<String, String> {
    match sha256 {
        None => Err(format!(
            "source = \"release\" needs the sha256 of {file}: add the line sha256 = \"<its sum from the release's SHA256SUMS>\" under [components.nats] (several architectures: sha256 = {{ \"{file}\" = \"<sum>\", ... }})"
        )),
        Some(sums) => sums.for_file(file).map(str::to_string).ok_or_else(|| {
            format!("sha256 has no sum for {file}: add \"{file}\" = \"<its sum from the release's SHA256SUMS>\" to it")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{servers_plan, Components, Fleet, LayerName};

    const SUM: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const OTHER: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
    const SYSTEMD: &str = include_str!("../../tests/fixtures/facts/debian12_vm.txt");
    const CONTAINER: &str = include_str!("../../tests/fixtures/facts/debian12.txt");

    fn host() -> Host {
        let inventory = crate::inventory::parse(
            "[[hosts]]\nname = \"mp-1\"\naddress = \"10.0.0.1\"\nroles = [\"nats\"]\n",
            std::path::Path::new("test.toml"),
            None,
        )
        .unwrap();
        inventory.hosts[0].clone()
    }

    fn facts(text: &str) -> Facts {
        crate::facts::parse(text).unwrap()
    }

    fn nats(facts_text: &str, components: &str) -> Result<(Vec<Step>, NatsRun), PlanError> {
        let components = Components::from_table(&toml::from_str(components).unwrap()).unwrap();
        nats_install(
            &host(),
            &facts(facts_text),
            &components.nats,
            "init.nats.service",
            "/etc/marketprism/nats-server.conf",
        )
    }

    fn ids(steps: &[Step]) -> Vec<&str> {
        steps.iter().map(|s| s.id.as_str()).collect()
    }

    #[test]
    fn os_is_the_package_with_its_own_unit() {
        let (steps, run) = nats(SYSTEMD, "[nats]\nsource = \"os\"\n").unwrap();
        assert_eq!(ids(&steps), ["install.nats.packages"]);
        assert_eq!(
            run,
            NatsRun {
                binary: "/usr/sbin/nats-server",
                package_unit: true
            }
        );
    }

    #[test]
    fn release_downloads_the_vendor_asset_for_the_host_arch() {
        let (steps, run) = nats(
            SYSTEMD,
            &format!("[nats]\nsource = \"release\"\nversion = \"v2.9.10\"\nsha256 = \"{SUM}\"\n"),
        )
        .unwrap();
        assert_eq!(
            ids(&steps),
            [
                "install.nats.binary",
                "install.nats.user",
                "install.nats.unit",
                "install.nats.no-os-drop-in"
            ]
        );
        assert_eq!(
            steps[0].action,
            Action::InstallBinary {
                name: "nats-server".into(),
                from: ArtifactFrom::Download {
                    url: "https://github.com/nats-io/nats-server/releases/download/v2.9.10/nats-server-v2.9.10-linux-amd64.tar.gz".into()
                },
                sha256: SUM.into(),
                version: Some("2.9.10".into()),
                path: "/usr/local/bin/nats-server".into(),
                work_dir: "/var/lib/mp-remote/install".into(),
            }
        );
        // A new binary or unit restarts the server.
        assert_eq!(steps[0].notify, ["init.nats.service"]);
        assert_eq!(steps[2].notify, ["init.nats.service"]);
        let Action::File { path, content, .. } = &steps[2].action else {
            panic!("{:?}", steps[2])
        };
        assert_eq!(path, "/etc/systemd/system/nats-server.service");
        assert!(crate::stack::managed_marker_ok(content), "{content}");
        assert!(content.contains(
            "\nExecStart=/usr/local/bin/nats-server -c /etc/marketprism/nats-server.conf\n"
        ));
        assert!(content.contains("\nUser=nats\n"));
        assert_eq!(
            run,
            NatsRun {
                binary: "/usr/local/bin/nats-server",
                package_unit: false
            }
        );
    }

    #[test]
    fn release_uses_the_mirror_and_the_sum_for_the_file() {
        let (steps, _) = nats(
            SYSTEMD,
            &format!(
                "[nats]\nsource = \"release\"\nbase_url = \"http://172.17.0.1:8000/\"\nsha256 = {{ \"nats-server-v2.10.7-linux-arm64.tar.gz\" = \"{OTHER}\", \"nats-server-v2.10.7-linux-amd64.tar.gz\" = \"{SUM}\" }}\n"
            ),
        )
        .unwrap();
        let Action::InstallBinary {
            from,
            sha256,
            version,
            ..
        } = &steps[0].action
        else {
            panic!("{steps:?}")
        };
        assert_eq!(
            from,
            &ArtifactFrom::Download {
                url: "http://172.17.0.1:8000/nats-io/nats-server/releases/download/v2.10.7/nats-server-v2.10.7-linux-amd64.tar.gz".into()
            }
        );
        assert_eq!(sha256, SUM);
        assert_eq!(version.as_deref(), Some(NATS_PINNED));
    }

    #[test]
    fn release_without_a_sum_is_refused_with_the_line_to_add() {
        let error = nats(
            SYSTEMD,
            "[nats]\nsource = \"release\"\nversion = \"2.9.10\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("mp-1: [components.nats] "), "{error}");
        assert!(
            error.contains("sha256 of nats-server-v2.9.10-linux-amd64.tar.gz")
                && error.contains("add the line sha256 = "),
            "{error}"
        );
        // The default source (no [components.nats]) is the pinned release: same refusal.
        let default = nats(SYSTEMD, "").unwrap_err().to_string();
        assert!(
            default.contains("nats-server-v2.10.7-linux-amd64.tar.gz"),
            "{default}"
        );
        let other_arch = nats(
            SYSTEMD,
            &format!("[nats]\nsource = \"release\"\nsha256 = {{ \"nats-server-v2.10.7-linux-arm64.tar.gz\" = \"{SUM}\" }}\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            other_arch.contains("no sum for nats-server-v2.10.7-linux-amd64.tar.gz"),
            "{other_arch}"
        );
    }

    #[test]
    fn release_needs_curl_and_a_known_arch() {
        let no_curl = SYSTEMD.replace("tool.curl=yes", "tool.curl=no");
        assert_ne!(no_curl, SYSTEMD, "the fixture names curl");
        let error = nats(
            &no_curl,
            &format!("[nats]\nsource = \"release\"\nsha256 = \"{SUM}\"\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("with curl, which the host lacks") && error.contains("push"),
            "{error}"
        );
        let riscv = SYSTEMD.replace("arch=x86_64", "arch=riscv64");
        assert_ne!(riscv, SYSTEMD, "the fixture names the arch");
        let error = nats(
            &riscv,
            &format!("[nats]\nsource = \"release\"\nsha256 = \"{SUM}\"\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("this host is riscv64"), "{error}");
        let no_tar = SYSTEMD.replace("tool.tar=yes", "tool.tar=no");
        let error = nats(
            &no_tar,
            &format!("[nats]\nsource = \"release\"\nsha256 = \"{SUM}\"\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("with tar, which the host lacks"), "{error}");
    }

    #[test]
    fn push_installs_the_uploaded_file() {
        // As root (the container capture): beside the agent in the state dir.
        let (steps, run) = nats(
            CONTAINER,
            &format!("[nats]\nsource = \"push\"\nartifact = \"files/nats-server-v2.10.7-linux-amd64.tar.gz\"\nsha256 = \"{SUM}\"\n"),
        )
        .unwrap();
        assert_eq!(
            steps[0].action,
            Action::InstallBinary {
                name: "nats-server".into(),
                from: ArtifactFrom::Uploaded {
                    path: "/var/lib/mp-remote/artifacts/0123456789abcdef-nats-server-v2.10.7-linux-amd64.tar.gz".into()
                },
                sha256: SUM.into(),
                version: None,
                path: "/usr/local/bin/nats-server".into(),
                work_dir: "/var/lib/mp-remote/install".into(),
            }
        );
        assert!(!run.package_unit);
        let missing = nats(
            SYSTEMD,
            "[nats]\nsource = \"push\"\nartifact = \"a.tar.gz\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            missing.contains("add sha256 = \"<output of sha256sum a.tar.gz>\""),
            "{missing}"
        );
    }

    #[test]
    fn push_of_a_deb_is_dpkg_and_the_package_unit() {
        let (steps, run) = nats(
            SYSTEMD,
            &format!("[nats]\nsource = \"push\"\nartifact = \"nats-server_2.9.10-1+b3_amd64.deb\"\nsha256 = \"{SUM}\"\n"),
        )
        .unwrap();
        assert_eq!(ids(&steps), ["install.nats.deb"]);
        assert!(
            matches!(&steps[0].action, Action::InstallDeb { package, .. } if package == "nats-server")
        );
        assert!(run.package_unit);
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
    fn without_systemd_no_unit_is_written() {
        let (steps, _) = nats(
            CONTAINER,
            &format!("[nats]\nsource = \"release\"\nsha256 = \"{SUM}\"\n"),
        )
        .unwrap();
        assert_eq!(ids(&steps), ["install.nats.binary", "install.nats.user"]);
    }

    /// The whole servers plan: the release's unit replaces the package's drop-in, and the
    /// service runs /usr/local/bin/nats-server with or without systemd.
    #[test]
    fn servers_plan_runs_the_release_binary() {
        for (facts_text, want_unit) in [(SYSTEMD, true), (CONTAINER, false)] {
            let inventory = crate::inventory::parse(
                &format!("[[hosts]]\nname = \"local\"\nconnection = \"local\"\nbecome = true\nroles = [\"nats\"]\n\n[components.nats]\nsource = \"release\"\nversion = \"2.9.10\"\nsha256 = \"{SUM}\"\n"),
                std::path::Path::new("test.toml"),
                None,
            )
            .unwrap();
            let components = Components::from_table(&inventory.components).unwrap();
            let fleet = Fleet::single_host_for_tests();
            let plan = servers_plan(
                &inventory.hosts[0],
                &facts(facts_text),
                &components,
                &fleet,
                "run",
                false,
            )
            .unwrap();
            let steps: Vec<&Step> = plan.layers.iter().flat_map(|l| &l.steps).collect();
            assert!(
                !steps.iter().any(|s| s.id == "init.nats.unit"),
                "no drop-in"
            );
            assert!(!steps
                .iter()
                .any(|s| matches!(&s.action, Action::Packages { .. })));
            assert_eq!(steps.iter().any(|s| s.id == "install.nats.unit"), want_unit);
            let install = &plan.layers[0];
            assert_eq!(install.name, LayerName::Install);
            assert!(install.steps.iter().any(|s| s.id == "install.nats.binary"));
            let service = steps.iter().find(|s| s.id == "init.nats.service").unwrap();
            match &service.action {
                Action::Service { unit } => assert_eq!(unit, "nats-server"),
                Action::Supervised { command, .. } => {
                    assert_eq!(command[0], "/usr/local/bin/nats-server")
                }
                other => panic!("{other:?}"),
            }
        }
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
            &facts(SYSTEMD),
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
