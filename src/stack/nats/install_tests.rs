use super::*;
use crate::plan::components::Checksums;
use crate::plan::model::LayerName;
use crate::plan::{servers_plan, Components, Fleet};

const SUM: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const OTHER: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
const SYSTEMD: &str = include_str!("../../../tests/fixtures/facts/debian12_vm.txt");
const CONTAINER: &str = include_str!("../../../tests/fixtures/facts/debian12.txt");

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
        components.source("nats").unwrap(),
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
    assert!(content
        .contains("\nExecStart=/usr/local/bin/nats-server -c /etc/marketprism/nats-server.conf\n"));
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
    assert_eq!(version.as_deref(), Some(crate::stack::nats::PINNED));
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
            !steps.iter().any(|s| s.id == "install.nats.drop-in"),
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

/// What `inventory check` asks of a source: a release's sums cover its tarball for one
/// architecture (the pinned version without a version key); a push is one file.
#[test]
fn check_source_wants_a_sum_for_one_arch_and_one_pushed_file() {
    let check = |kind, version, sums: Option<&Checksums>, artifacts: &[String]| {
        check_source(&SourceCheck {
            kind,
            version,
            sums,
            artifacts,
        })
    };
    let none = check("release", None, None, &[]).unwrap_err();
    assert_eq!(none.at, SourceKey::Sha256);
    assert!(
        none.message
            .contains("needs the sha256 of nats-server-v2.10.7-linux-amd64.tar.gz")
            && none.message.contains("under [components.nats]"),
        "{none:?}"
    );
    let arm = Checksums::ByFile(
        [(
            "nats-server-v2.9.10-linux-arm64.tar.gz".to_string(),
            SUM.to_string(),
        )]
        .into(),
    );
    assert_eq!(check("release", Some("v2.9.10"), Some(&arm), &[]), Ok(()));
    let other = check("release", None, Some(&arm), &[]).unwrap_err();
    assert!(
        other.message.contains(
            "no sum for nats-server-v2.10.7-linux-amd64.tar.gz or nats-server-v2.10.7-linux-arm64.tar.gz"
        ),
        "{other:?}"
    );
    let two = ["a.tar.gz".to_string(), "b.tar.gz".to_string()];
    let pushed = check("push", None, None, &two).unwrap_err();
    assert_eq!(pushed.at, SourceKey::Artifact);
    assert_eq!(
        pushed.message,
        "source = \"push\" takes one artifact for NATS"
    );
    assert_eq!(check("push", None, None, &two[..1]), Ok(()));
    assert_eq!(check("os", None, None, &[]), Ok(()));
}
