//! The NATS install layer, per source (`[components.nats]`):
//!
//! - `os`: the distribution's package, with its own unit and account.
//! - `release`: the vendor's tarball from GitHub (or a mirror with the same paths), checked
//!   against the inventory's sha256 on the host before anything is installed.
//! - `push`: the tarball, the bare binary or a `.deb`, uploaded from the control node.
//!
//! A release or pushed binary goes to /usr/local/bin; without a package there is no unit and no
//! account: both are made here. The shared parts (packages, pushed paths, sums) are in
//! `plan::install`.

use crate::facts::{Facts, Init};
use crate::inventory::Host;
use crate::plan::build::{PlanError, STATE_DIR};
use crate::plan::components::Source;
use crate::plan::install::{
    clean_version, file_name, packages_step, push_sum, pushed_artifact_path, release_arch,
    release_sum, release_sums_cover, ARCHES,
};
use crate::plan::model::{Action, ArtifactFrom, Step};
use crate::plan::vendor::{SourceCheck, SourceKey, SourceProblem};

use super::{COMPONENT as NATS, DROP_IN as NATS_OS_DROP_IN};

/// Where a NATS release (or pushed archive) is installed.
pub const NATS_RELEASE_BINARY: &str = "/usr/local/bin/nats-server";
/// Where Debian's package puts it.
pub const NATS_PACKAGE_BINARY: &str = "/usr/sbin/nats-server";
/// The vendor's site; `base_url` replaces it with a mirror laid out the same way.
pub const NATS_RELEASE_SITE: &str = "https://github.com";
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
            let version = clean_version(version.as_deref().unwrap_or(super::PINNED));
            let arch = release_arch(facts).ok_or_else(|| {
                refuse(format!(
                    "source = \"release\": NATS publishes linux-amd64 and linux-arm64 builds, this host is {}; use source = \"os\" or \"push\"",
                    facts.arch
                ))
            })?;
            let file = release_file(&version, arch);
            let base = base_url
                .as_deref()
                .unwrap_or(NATS_RELEASE_SITE)
                .trim_end_matches('/');
            let url = format!("{base}/nats-io/nats-server/releases/download/v{version}/{file}");
            let sum = release_sum(sha256.as_ref(), &file, NATS.name).map_err(refuse)?;
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
        steps.push(crate::plan::install::unit_step(
            "nats",
            NATS_UNIT_PATH,
            nats_unit(run.binary, config),
            service_step,
        ));
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

/// The release tarball of `version` for `arch` (`amd64`, `arm64`), as the vendor names it.
fn release_file(version: &str, arch: &str) -> String {
    format!("nats-server-v{version}-linux-{arch}.tar.gz")
}

/// `inventory check`: a release's sums cover its tarball for one architecture at least; a
/// push is one file.
pub(super) fn check_source(source: &SourceCheck) -> Result<(), SourceProblem> {
    match source.kind {
        "release" => {
            let version = clean_version(source.version.unwrap_or(super::PINNED));
            let files = ARCHES.map(|arch| release_file(&version, arch));
            release_sums_cover(source.sums, &files, &format!("[components.{}]", NATS.name))
                .map_err(SourceProblem::sums)
        }
        "push" if source.artifacts.len() != 1 => Err(SourceProblem {
            at: SourceKey::Artifact,
            message: "source = \"push\" takes one artifact for NATS".into(),
            hint: "artifact = \"files/...\": the release tarball, the binary or a .deb".into(),
        }),
        _ => Ok(()),
    }
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
    crate::plan::install::vendor_unit(
        "NATS Server",
        "https://docs.nats.io",
        "nats",
        &[
            &format!("ExecStart={binary} -c {config}"),
            "ExecReload=/bin/kill -s HUP $MAINPID",
            "ExecStop=/bin/kill -s SIGINT $MAINPID",
            "Restart=on-failure",
            "RestartSec=2",
            "LimitNOFILE=65536",
            "PrivateTmp=true",
        ],
    )
}

#[cfg(test)]
#[path = "install_tests.rs"]
mod tests;
