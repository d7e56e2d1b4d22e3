use super::*;
use crate::plan::Components;

const SUM: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const OTHER: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
const SYSTEMD: &str = include_str!("../../../tests/fixtures/facts/debian12_vm.txt");
const CONTAINER: &str = include_str!("../../../tests/fixtures/facts/debian12.txt");
const COMMON_TGZ: &str = "clickhouse-common-static-25.10.1.3832-amd64.tgz";
const SERVER_TGZ: &str = "clickhouse-server-25.10.1.3832-amd64.tgz";

fn host() -> Host {
    let inventory = crate::inventory::parse(
        "[[hosts]]\nname = \"mp-1\"\naddress = \"10.0.0.1\"\nroles = [\"clickhouse\"]\n",
        std::path::Path::new("test.toml"),
        None,
    )
    .unwrap();
    inventory.hosts[0].clone()
}

fn install(facts: &str, components: &str) -> Result<(Vec<Step>, &'static str), String> {
    let components = Components::from_table(&toml::from_str(components).unwrap()).unwrap();
    clickhouse_install(
        &host(),
        &crate::facts::parse(facts).unwrap(),
        components.source("clickhouse").unwrap(),
        "init.clickhouse.service",
    )
    .map_err(|e| e.to_string())
}

fn ids(steps: &[Step]) -> Vec<&str> {
    steps.iter().map(|s| s.id.as_str()).collect()
}

fn release(extra: &str) -> String {
    format!(
        "[clickhouse]\nsource = \"release\"\nversion = \"25.10.1.3832\"\nsha256 = {{ \"{COMMON_TGZ}\" = \"{SUM}\", \"{SERVER_TGZ}\" = \"{OTHER}\" }}\n{extra}"
    )
}

#[test]
fn os_is_debians_package() {
    let (steps, server) = install(SYSTEMD, "[clickhouse]\nsource = \"os\"\n").unwrap();
    assert_eq!(ids(&steps), ["install.clickhouse.packages"]);
    assert_eq!(server, "/usr/sbin/clickhouse-server");
}

#[test]
fn release_downloads_both_archives_and_installs_them_itself() {
    let (steps, server) = install(SYSTEMD, &release("")).unwrap();
    assert_eq!(
        ids(&steps),
        [
            "install.clickhouse.binary",
            "install.clickhouse.links",
            "install.clickhouse.configs",
            "install.clickhouse.user",
            "install.clickhouse.log-dir",
            "install.clickhouse.unit",
        ]
    );
    assert_eq!(server, "/usr/local/bin/clickhouse-server");
    assert_eq!(
        steps[0].action,
        Action::InstallBinary {
            name: "clickhouse".into(),
            from: ArtifactFrom::Download {
                url: format!("https://packages.clickhouse.com/tgz/stable/{COMMON_TGZ}")
            },
            sha256: SUM.into(),
            version: Some("25.10.1.3832".into()),
            path: "/usr/local/bin/clickhouse".into(),
            work_dir: "/var/lib/mp-remote/install".into(),
        }
    );
    let Action::InstallVendorFiles {
        from,
        sha256,
        files,
        ..
    } = &steps[2].action
    else {
        panic!("{:?}", steps[2])
    };
    assert_eq!(
        from,
        &ArtifactFrom::Download {
            url: format!("https://packages.clickhouse.com/tgz/stable/{SERVER_TGZ}")
        }
    );
    assert_eq!(sha256, OTHER);
    assert_eq!(files[0].member, "etc/clickhouse-server/config.xml");
    assert_eq!(files[1].path, "/etc/clickhouse-server/users.xml");
    // A new binary, config or unit restarts the server.
    for i in [0, 1, 2, 5] {
        assert_eq!(
            steps[i].notify,
            ["init.clickhouse.service"],
            "{:?}",
            steps[i]
        );
    }
    let Action::File { content, .. } = &steps[5].action else {
        panic!("{:?}", steps[5])
    };
    assert!(crate::stack::managed_marker_ok(content), "{content}");
    assert!(content.contains(
        "\nExecStart=/usr/local/bin/clickhouse-server --config=/etc/clickhouse-server/config.xml\n"
    ));
}

#[test]
fn release_from_a_mirror_without_systemd_writes_no_unit() {
    let (steps, _) = install(
        CONTAINER,
        &release("base_url = \"http://172.17.0.1:8000/\"\n"),
    )
    .unwrap();
    assert!(!ids(&steps).contains(&"install.clickhouse.unit"));
    let Action::InstallBinary { from, .. } = &steps[0].action else {
        panic!("{:?}", steps[0])
    };
    assert_eq!(
        from,
        &ArtifactFrom::Download {
            url: format!("http://172.17.0.1:8000/tgz/stable/{COMMON_TGZ}")
        }
    );
}

#[test]
fn release_refuses_what_it_cannot_name_or_check() {
    // The seed's pin has three parts: the archives need the fourth.
    let error = install(SYSTEMD, "[clickhouse]\nsource = \"release\"\n").unwrap_err();
    assert!(
        error.starts_with("mp-1: [components.clickhouse] ")
            && error.contains("set version = \"25.10.1.N\""),
        "{error}"
    );
    let one_sum = install(
        SYSTEMD,
        &format!(
            "[clickhouse]\nsource = \"release\"\nversion = \"25.10.1.3832\"\nsha256 = \"{SUM}\"\n"
        ),
    )
    .unwrap_err();
    assert!(
        one_sum.contains(&format!("\"{SERVER_TGZ}\" = \"<its sha256>\"")),
        "{one_sum}"
    );
    let no_curl = SYSTEMD.replace("tool.curl=yes", "tool.curl=no");
    assert!(install(&no_curl, &release(""))
        .unwrap_err()
        .contains("with curl, which the host lacks"));
    let riscv = SYSTEMD.replace("arch=x86_64", "arch=riscv64");
    assert!(install(&riscv, &release(""))
        .unwrap_err()
        .contains("this host is riscv64"));
}

#[test]
fn push_of_the_archives_installs_the_uploaded_files() {
    let (steps, server) = install(
        CONTAINER,
        &format!(
            "[clickhouse]\nsource = \"push\"\nartifact = [\"files/{SERVER_TGZ}\", \"files/{COMMON_TGZ}\"]\nsha256 = {{ \"{COMMON_TGZ}\" = \"{SUM}\", \"{SERVER_TGZ}\" = \"{OTHER}\" }}\n"
        ),
    )
    .unwrap();
    assert_eq!(server, "/usr/local/bin/clickhouse-server");
    let Action::InstallBinary { from, version, .. } = &steps[0].action else {
        panic!("{:?}", steps[0])
    };
    assert_eq!(
        from,
        &ArtifactFrom::Uploaded {
            path: format!("/var/lib/mp-remote/artifacts/0123456789abcdef-{COMMON_TGZ}")
        }
    );
    assert_eq!(version, &None);
    let missing = install(
        CONTAINER,
        &format!(
            "[clickhouse]\nsource = \"push\"\nartifact = \"files/{COMMON_TGZ}\"\nsha256 = \"{SUM}\"\n"
        ),
    )
    .unwrap_err();
    assert!(
        missing.contains("clickhouse-server is missing"),
        "{missing}"
    );
}

#[test]
fn push_of_debs_installs_common_before_server() {
    let (steps, server) = install(
        SYSTEMD,
        &format!(
            "[clickhouse]\nsource = \"push\"\nartifact = [\"d/clickhouse-server_18.16.1_amd64.deb\", \"d/clickhouse-common_18.16.1_amd64.deb\"]\nsha256 = {{ \"clickhouse-common_18.16.1_amd64.deb\" = \"{SUM}\", \"clickhouse-server_18.16.1_amd64.deb\" = \"{OTHER}\" }}\n"
        ),
    )
    .unwrap();
    assert_eq!(
        ids(&steps),
        [
            "install.clickhouse.deb.clickhouse-common",
            "install.clickhouse.deb.clickhouse-server"
        ]
    );
    // Debian's split package runs its server from /usr/sbin.
    assert_eq!(server, "/usr/sbin/clickhouse-server");
    let no_sum = install(
        SYSTEMD,
        "[clickhouse]\nsource = \"push\"\nartifact = [\"d/clickhouse-server_1_amd64.deb\"]\n",
    )
    .unwrap_err();
    assert!(no_sum.contains("needs the artifact's sha256"), "{no_sum}");
}

/// What `inventory check` asks of a source: a four-part version (the message at the version),
/// then both archives' sums for one architecture (at the sums); a push is left to the generic
/// per-file check.
#[test]
fn check_source_wants_four_parts_and_both_archives() {
    let check = |kind, version, sums: Option<&Checksums>| {
        check_source(&SourceCheck {
            kind,
            version,
            sums,
            artifacts: &[],
        })
    };
    let pinned = check("release", None, None).unwrap_err();
    assert_eq!(pinned.at, SourceKey::Version);
    assert_eq!(
        pinned.message,
        "version \"25.10.1\" names no ClickHouse archive"
    );
    assert!(
        pinned.hint.contains("set version = \"25.10.1.N\""),
        "{pinned:?}"
    );
    let one = Checksums::One(SUM.into());
    let sums = check("release", Some("25.10.1.3832"), Some(&one)).unwrap_err();
    assert_eq!(sums.at, SourceKey::Sha256);
    assert!(
        sums.message.contains(&format!(
            "\"{COMMON_TGZ}\" = \"<its sha256>\", \"{SERVER_TGZ}\" = \"<its sha256>\""
        )),
        "{sums:?}"
    );
    let arm = Checksums::ByFile(
        [
            "clickhouse-common-static-25.10.1.3832-arm64.tgz",
            "clickhouse-server-25.10.1.3832-arm64.tgz",
        ]
        .map(|f| (f.to_string(), SUM.to_string()))
        .into(),
    );
    assert_eq!(check("release", Some("v25.10.1.3832"), Some(&arm)), Ok(()));
    assert_eq!(check("push", None, None), Ok(()));
    assert_eq!(check("os", None, None), Ok(()));
}
