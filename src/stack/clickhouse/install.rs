//! The ClickHouse install layer, per source (`[components.clickhouse]`):
//!
//! - `os`: the distribution's package (Debian 12: 18.16, its own unit).
//! - `release`: ClickHouse's official tgz archives from packages.clickhouse.com (or a mirror
//!   with the same paths), each checked against the inventory's sha256 on the host before
//!   anything is unpacked.
//! - `push`: the same two archives, or ClickHouse's .deb packages, uploaded from the control
//!   node (air-gapped hosts).
//!
//! The archives are installed by mp-remote itself rather than by their `install/doinst.sh`:
//! that script runs `clickhouse install`, which prompts for a password, writes its own
//! users.d file and unit, and exists only in recent releases. Here the static `clickhouse`
//! binary goes to /usr/local/bin with the `clickhouse-server` / `clickhouse-client` names
//! linked to it (it picks its tool by the name it is called by), the server archive's
//! `config.xml` and `users.xml` go to /etc/clickhouse-server like dpkg's config files, and
//! the account, log directory and unit are made here, as for a NATS release.

use crate::facts::{Facts, Init};
use crate::inventory::Host;
use crate::plan::build::{PlanError, STATE_DIR};
use crate::plan::components::{Checksums, Source};
use crate::plan::install::{
    clean_version, file_name, packages_step, push_sum, pushed_artifact_path, release_arch, ARCHES,
};
use crate::plan::model::{Action, ArtifactFrom, Step, VendorFile};
use crate::plan::vendor::{SourceCheck, SourceKey, SourceProblem};

/// The multi-call binary of a release or pushed archive.
pub const CLICKHOUSE_RELEASE_BINARY: &str = "/usr/local/bin/clickhouse";
/// What the init layer runs where the archives were installed (a link to the binary).
pub const CLICKHOUSE_RELEASE_SERVER: &str = "/usr/local/bin/clickhouse-server";
/// Debian's package puts its server here; ClickHouse's own packages in /usr/bin.
pub const CLICKHOUSE_DEBIAN_SERVER: &str = "/usr/sbin/clickhouse-server";
pub const CLICKHOUSE_VENDOR_SERVER: &str = "/usr/bin/clickhouse-server";
pub const CLICKHOUSE_RELEASE_SITE: &str = "https://packages.clickhouse.com";
/// The unit mp-remote writes where no package brought one.
pub const CLICKHOUSE_UNIT_PATH: &str = "/etc/systemd/system/clickhouse-server.service";
pub const CLICKHOUSE_LOG_DIR: &str = super::LOG_DIR;

/// The two archives of a tgz install, in install order.
const COMMON: &str = "clickhouse-common-static";
const SERVER: &str = CLICKHOUSE.unit;
use super::COMPONENT as CLICKHOUSE;

/// The ClickHouse install steps for `source`, and the server binary the init layer runs.
/// `service_step`: the id of the step running the server (a new binary, config or unit
/// restarts it).
pub fn clickhouse_install(
    host: &Host,
    facts: &Facts,
    source: &Source,
    service_step: &str,
) -> Result<(Vec<Step>, &'static str), PlanError> {
    let refuse = |message: String| PlanError::Source {
        host: host.name.clone(),
        component: "clickhouse",
        message,
    };
    match source {
        Source::Os {} => Ok((
            vec![packages_step(
                CLICKHOUSE.name,
                &[CLICKHOUSE.package().unwrap_or(CLICKHOUSE.unit)],
            )],
            CLICKHOUSE_DEBIAN_SERVER,
        )),
        Source::Release {
            version,
            sha256,
            base_url,
        } => {
            let version = clean_version(version.as_deref().unwrap_or(super::PINNED));
            let archives = release_archives(facts, &version, sha256.as_ref(), base_url.as_deref())
                .map_err(refuse)?;
            Ok((
                archive_steps(facts, &version, Some(&version), archives, service_step),
                CLICKHOUSE_RELEASE_SERVER,
            ))
        }
        Source::Push {
            artifact,
            sha256,
            version,
        } => {
            let paths = artifact.paths();
            if paths.iter().all(|p| p.ends_with(".deb")) {
                return deb_steps(facts, &paths, sha256.as_ref(), service_step).map_err(refuse);
            }
            let archives = pushed_archives(facts, &paths, sha256.as_ref()).map_err(refuse)?;
            let version = version.as_deref().map(clean_version);
            let label = version.clone().unwrap_or_else(|| "(pushed)".into());
            Ok((
                archive_steps(facts, &label, version.as_deref(), archives, service_step),
                CLICKHOUSE_RELEASE_SERVER,
            ))
        }
    }
}

/// The two archives of `version` for `arch` (`amd64`, `arm64`), in install order.
fn archives(version: &str, arch: &str) -> [String; 2] {
    [COMMON, SERVER].map(|package| format!("{package}-{version}-{arch}.tgz"))
}

/// What to write where a release's version has fewer than four parts.
fn four_parts(version: &str) -> String {
    format!(
        "ClickHouse's archives are named by four-part versions: set version = \"{version}.N\" (e.g. 25.10.1.3832, as listed on packages.clickhouse.com/tgz/stable)"
    )
}

/// `inventory check`: a release is named by a four-part version and has both archives' sums
/// for one architecture at least.
pub(super) fn check_source(source: &SourceCheck) -> Result<(), SourceProblem> {
    if source.kind != "release" {
        return Ok(());
    }
    let version = clean_version(source.version.unwrap_or(super::PINNED));
    if version.split('.').count() != 4 {
        return Err(SourceProblem {
            at: SourceKey::Version,
            message: format!("version {version:?} names no ClickHouse archive"),
            hint: four_parts(&version),
        });
    }
    let wanted = archives(&version, ARCHES[0])
        .iter()
        .map(|f| format!("\"{f}\" = \"<its sha256>\""))
        .collect::<Vec<_>>()
        .join(", ");
    match source.sums {
        Some(Checksums::ByFile(by_file))
            if ARCHES.iter().any(|arch| {
                archives(&version, arch)
                    .iter()
                    .all(|f| by_file.contains_key(f))
            }) =>
        {
            Ok(())
        }
        _ => Err(SourceProblem::sums(format!(
            "source = \"release\" needs one sha256 per archive: sha256 = {{ {wanted} }} (arm64 hosts: the -arm64 files)"
        ))),
    }
}

/// Where each of the two archives comes from, with its sum.
struct Archives {
    common: (ArtifactFrom, String),
    server: (ArtifactFrom, String),
}

/// ClickHouse's tgz layout: `{site}/tgz/stable/{package}-{version}-{arch}.tgz`, named by
/// four-part versions.
fn release_archives(
    facts: &Facts,
    version: &str,
    sha256: Option<&Checksums>,
    base_url: Option<&str>,
) -> Result<Archives, String> {
    if version.split('.').count() != 4 {
        return Err(four_parts(version));
    }
    let arch = release_arch(facts).ok_or_else(|| {
        format!(
            "source = \"release\": ClickHouse publishes amd64 and arm64 archives, this host is {}; use source = \"os\" or \"push\"",
            facts.arch
        )
    })?;
    let base = base_url
        .unwrap_or(CLICKHOUSE_RELEASE_SITE)
        .trim_end_matches('/');
    let files = archives(version, arch);
    let wanted = || {
        files
            .iter()
            .map(|f| format!("\"{f}\" = \"<its sha256>\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sums = match sha256 {
        Some(Checksums::ByFile(sums)) => sums,
        _ => {
            return Err(format!(
                "source = \"release\" needs one sha256 per archive: add sha256 = {{ {} }} (sha256sum of each file)",
                wanted()
            ))
        }
    };
    let get = |file: &String| {
        sums.get(file)
            .cloned()
            .ok_or_else(|| format!("sha256 has no sum for {file}: it needs {}", wanted()))
    };
    if !facts.tools.curl {
        return Err(format!(
            "source = \"release\" downloads {base}/tgz/stable/{} on the host with curl, which the host lacks: install curl there (apt-get install curl), or use source = \"push\"",
            files[0]
        ));
    }
    if !facts.tools.tar {
        return Err("source = \"release\" unpacks the archives with tar, which the host lacks: install tar there".into());
    }
    let from = |file: &String| ArtifactFrom::Download {
        url: format!("{base}/tgz/stable/{file}"),
    };
    Ok(Archives {
        common: (from(&files[0]), get(&files[0])?),
        server: (from(&files[1]), get(&files[1])?),
    })
}

/// The two pushed archives, told apart by their names as ClickHouse publishes them.
fn pushed_archives(
    facts: &Facts,
    paths: &[&str],
    sha256: Option<&Checksums>,
) -> Result<Archives, String> {
    let pick = |package: &str| -> Result<(ArtifactFrom, String), String> {
        let path = paths
            .iter()
            .find(|p| file_name(p).starts_with(&format!("{package}-")))
            .ok_or_else(|| {
                format!(
                    "source = \"push\" needs ClickHouse's two archives, {COMMON}-VERSION-ARCH.tgz and {SERVER}-VERSION-ARCH.tgz (or its .deb packages): artifact = [\"files/{COMMON}-...tgz\", \"files/{SERVER}-...tgz\"]; {package} is missing"
                )
            })?;
        let sum = push_sum(sha256, path, "clickhouse")?;
        let remote = pushed_artifact_path(facts.is_root, &sum, path);
        Ok((ArtifactFrom::Uploaded { path: remote }, sum))
    };
    if !facts.tools.tar {
        return Err("the archives are unpacked with tar, which the host lacks: install tar there, or push ClickHouse's .deb packages".into());
    }
    Ok(Archives {
        common: pick(COMMON)?,
        server: pick(SERVER)?,
    })
}

/// Pushed .deb files, installed through apt (which orders them and fetches what else they
/// need) in the order common, server, the rest. Debian's own split (`clickhouse-common` with
/// a library) runs its server from /usr/sbin; ClickHouse's packages from /usr/bin.
fn deb_steps(
    facts: &Facts,
    paths: &[&str],
    sha256: Option<&Checksums>,
    service_step: &str,
) -> Result<(Vec<Step>, &'static str), String> {
    if !facts.tools.apt_get && facts.os.family != "debian" {
        return Err(format!(
            "the artifacts are Debian packages, but this host is {} ({}): push ClickHouse's tgz archives instead",
            facts.os.id, facts.os.family
        ));
    }
    let package_of = |path: &str| {
        let file = file_name(path);
        file.split('_').next().unwrap_or(file).to_string()
    };
    let mut sorted: Vec<&str> = paths.to_vec();
    sorted.sort_by_key(|p| match package_of(p).as_str() {
        "clickhouse-common-static" | "clickhouse-common" => 0,
        "clickhouse-server" => 1,
        _ => 2,
    });
    if !sorted.iter().any(|p| package_of(p) == SERVER) {
        return Err(format!(
            "the pushed packages hold no clickhouse-server_*.deb (got {}): add it to artifact",
            paths.join(", ")
        ));
    }
    let mut steps = Vec::new();
    for path in sorted {
        let package = package_of(path);
        let sum = push_sum(sha256, path, "clickhouse")?;
        steps.push(Step {
            id: format!("install.clickhouse.deb.{package}"),
            title: format!("install {package} from {} (dpkg)", file_name(path)),
            action: Action::InstallDeb {
                package,
                path: pushed_artifact_path(facts.is_root, &sum, path),
                sha256: sum,
            },
            notify: vec![service_step.into()],
        });
    }
    let server = if paths
        .iter()
        .any(|p| package_of(p) == "clickhouse-common-static")
    {
        CLICKHOUSE_VENDOR_SERVER
    } else {
        CLICKHOUSE_DEBIAN_SERVER
    };
    Ok((steps, server))
}

/// Binary, names, default configs, account, log directory and unit from the two archives.
fn archive_steps(
    facts: &Facts,
    label: &str,
    version: Option<&str>,
    archives: Archives,
    service_step: &str,
) -> Vec<Step> {
    let notify = vec![service_step.to_string()];
    let work_dir = format!("{STATE_DIR}/install");
    let (common, common_sum) = archives.common;
    let (server, server_sum) = archives.server;
    let files = ["config.xml", "users.xml"].map(|name| VendorFile {
        member: format!("etc/clickhouse-server/{name}"),
        path: format!("/etc/clickhouse-server/{name}"),
        mode: 0o644,
    });
    let links = ["clickhouse-server", "clickhouse-client"];
    let mut steps = vec![
        // The binary first: an archive that fails its sum leaves the host as it was.
        Step {
            id: "install.clickhouse.binary".into(),
            title: format!("install ClickHouse {label} ({COMMON} archive)"),
            action: Action::InstallBinary {
                name: "clickhouse".into(),
                from: common,
                sha256: common_sum,
                version: version.map(str::to_string),
                path: CLICKHOUSE_RELEASE_BINARY.into(),
                work_dir: work_dir.clone(),
            },
            notify: notify.clone(),
        },
        Step {
            id: "install.clickhouse.links".into(),
            title: format!("{} -> clickhouse", links.join(", ")),
            action: Action::Script {
                check: Some(
                    links
                        .iter()
                        .map(|l| format!("[ \"$(readlink /usr/local/bin/{l})\" = clickhouse ]"))
                        .collect::<Vec<_>>()
                        .join(" && "),
                ),
                apply: format!(
                    "{} && echo 'linked {} to /usr/local/bin/clickhouse'",
                    links
                        .iter()
                        .map(|l| format!("ln -sfn clickhouse /usr/local/bin/{l}"))
                        .collect::<Vec<_>>()
                        .join(" && "),
                    links.join(", ")
                ),
                creates: links
                    .iter()
                    .map(|l| format!("/usr/local/bin/{l}"))
                    .collect(),
            },
            notify: notify.clone(),
        },
        Step {
            id: "install.clickhouse.configs".into(),
            title: format!("ClickHouse {label} default config.xml, users.xml"),
            action: Action::InstallVendorFiles {
                label: format!("the ClickHouse {label} server archive"),
                from: server,
                sha256: server_sum,
                files: files.to_vec(),
                work_dir,
            },
            notify: notify.clone(),
        },
        Step {
            id: "install.clickhouse.user".into(),
            title: "system user clickhouse".into(),
            action: Action::SystemUser {
                name: "clickhouse".into(),
                home: super::DATA_DIR.into(),
            },
            notify: vec![],
        },
        Step {
            id: "install.clickhouse.log-dir".into(),
            title: format!("ClickHouse logs {CLICKHOUSE_LOG_DIR}"),
            action: Action::Directory {
                path: CLICKHOUSE_LOG_DIR.into(),
                owner: Some("clickhouse".into()),
                mode: 0o750,
            },
            notify: vec![],
        },
    ];
    if facts.init == Init::Systemd {
        steps.push(crate::plan::install::unit_step(
            "clickhouse",
            CLICKHOUSE_UNIT_PATH,
            clickhouse_unit(),
            service_step,
        ));
    }
    steps
}

/// ClickHouse's own unit, less what needs a recent server (`Type=notify`) or capabilities a
/// container may not grant: runs the linked server with the package's config path.
fn clickhouse_unit() -> String {
    crate::plan::install::vendor_unit(
        "ClickHouse Server",
        "https://clickhouse.com/docs",
        "clickhouse",
        &[
            &format!(
                "ExecStart={CLICKHOUSE_RELEASE_SERVER} --config=/etc/clickhouse-server/config.xml"
            ),
            "Restart=always",
            "RestartSec=5",
            "LimitNOFILE=500000",
            "TimeoutStopSec=120",
        ],
    )
}

#[cfg(test)]
#[path = "install_tests.rs"]
mod tests;
