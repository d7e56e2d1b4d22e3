//! `source = "release"` and `source = "push"` for ClickHouse on a real host. There is no
//! internet here, and no official ClickHouse build on any package registry this machine
//! reaches, so the archives are stand-ins laid out as packages.clickhouse.com publishes them
//! (`clickhouse-common-static-V/usr/bin/clickhouse`, `clickhouse-server-V/etc/...`) and
//! served by a local download site:
//!
//! - the server archive holds Debian's real `config.xml` and `users.xml` (18.16);
//! - the common archive's `clickhouse` is a small script: it answers `--version` the way the
//!   official static binary does and runs Debian's real 18.16 server otherwise. Debian's
//!   server is dynamically linked and has no `--version`, so the test gives the host its
//!   libraries and that binary first (an official build needs neither).
//!
//! What runs for real: the download, both sums, unpacking, the install of the binary, its
//! names, the default configs, account, log directory and unit, the server under systemd,
//! the schema, the idempotent re-run, clean, and the push of the same archives.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::support::site::{gateway, Site};
use crate::support::{assert_nothing_changed, mp_remote, recap_counts, run_ok, Fleet};

const VERSION: &str = "18.16.1.0";
const COMMON: &str = "clickhouse-common-static-18.16.1.0-amd64.tgz";
const SERVER: &str = "clickhouse-server-18.16.1.0-amd64.tgz";
/// Where the host keeps Debian's real server for the stand-in binary to run.
const REAL_SERVER: &str = "/usr/lib/mp-remote-test/clickhouse-server";

struct Archives {
    /// Serve this directory: it holds `tgz/stable/COMMON` and `tgz/stable/SERVER`.
    root: PathBuf,
    common_sha256: String,
    server_sha256: String,
    /// Debian's own packages (clickhouse-common, clickhouse-server), for a push of .debs.
    debs: Vec<PathBuf>,
    _dir: tempfile::TempDir,
}

fn sha256(path: &std::path::Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// The two archives, built once per test binary from Debian's clickhouse-server package
/// (apt-get download on this machine).
fn archives() -> &'static Archives {
    static ARCHIVES: OnceLock<Archives> = OnceLock::new();
    ARCHIVES.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let deb_dir = dir.path().join("deb");
        std::fs::create_dir_all(&deb_dir).unwrap();
        run_ok(Command::new("apt-get")
            .args(["download", "-q", "clickhouse-server", "clickhouse-common"])
            .current_dir(&deb_dir));
        let mut debs: Vec<PathBuf> = std::fs::read_dir(&deb_dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "deb"))
            .collect();
        debs.sort();
        let deb = debs
            .iter()
            .find(|p| p.to_string_lossy().contains("clickhouse-server_"))
            .expect("apt-get download left clickhouse-server's .deb");
        let unpacked = dir.path().join("unpacked");
        run_ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&unpacked));

        let tree = dir.path().join("tree");
        let common = tree.join(format!("clickhouse-common-static-{VERSION}"));
        std::fs::create_dir_all(common.join("usr/bin")).unwrap();
        let binary = common.join("usr/bin/clickhouse");
        std::fs::write(
            &binary,
            format!(
                "#!/bin/sh\n# mp-remote's test stand-in for ClickHouse's static binary.\nif [ \"$1\" = --version ]; then echo 'ClickHouse server version {VERSION} (stand-in: Debian 18.16.1).'; exit 0; fi\nexec {REAL_SERVER} \"$@\"\n"
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
        let server = tree.join(format!("clickhouse-server-{VERSION}"));
        std::fs::create_dir_all(server.join("etc/clickhouse-server")).unwrap();
        for name in ["config.xml", "users.xml"] {
            std::fs::copy(
                unpacked.join("etc/clickhouse-server").join(name),
                server.join("etc/clickhouse-server").join(name),
            )
            .unwrap();
        }
        let root = dir.path().join("site");
        let stable = root.join("tgz/stable");
        std::fs::create_dir_all(&stable).unwrap();
        for (file, folder) in [(COMMON, &common), (SERVER, &server)] {
            run_ok(Command::new("tar")
                .arg("-czf")
                .arg(stable.join(file))
                .arg("-C")
                .arg(&tree)
                .arg(folder.file_name().unwrap()));
        }
        Archives {
            common_sha256: sha256(&stable.join(COMMON)),
            server_sha256: sha256(&stable.join(SERVER)),
            debs,
            root,
            _dir: dir,
        }
    })
}

/// What an official build would not need: Debian's server binary and its libraries.
fn give_the_host_debians_server(fleet: &Fleet) {
    fleet.exec(
        "h1",
        &format!(
            "set -e
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends clickhouse-common >/dev/null
cd /tmp && apt-get download -q clickhouse-server >/dev/null && dpkg-deb -x clickhouse-server_*.deb /tmp/chdeb
install -D -m 755 /tmp/chdeb/usr/sbin/clickhouse-server {REAL_SERVER}
rm -rf /tmp/chdeb /tmp/clickhouse-server_*.deb"
        ),
    );
}

/// The archives' server: healthy under our own unit, with the schema.
fn assert_running_from_the_archives(fleet: &Fleet) {
    assert!(
        fleet.holds("h1", "! dpkg-query -W clickhouse-server >/dev/null 2>&1"),
        "no OS package of the server"
    );
    let unit = fleet.exec(
        "h1",
        "systemctl show -p FragmentPath -p ExecStart -p User -p ActiveState clickhouse-server",
    );
    assert!(
        unit.contains("FragmentPath=/etc/systemd/system/clickhouse-server.service"),
        "{unit}"
    );
    assert!(
        unit.contains(
            "argv[]=/usr/local/bin/clickhouse-server --config=/etc/clickhouse-server/config.xml"
        ),
        "{unit}"
    );
    assert!(
        unit.contains("User=clickhouse") && unit.contains("ActiveState=active"),
        "{unit}"
    );
    assert_eq!(
        fleet
            .exec("h1", "readlink /usr/local/bin/clickhouse-server")
            .trim(),
        "clickhouse"
    );
    let tables = fleet.exec(
        "h1",
        "curl -sf --data-binary \"SELECT count() FROM system.tables WHERE database = 'marketprism_hot'\" http://127.0.0.1:8123/",
    );
    assert_eq!(tables.trim(), "8");
}

#[test]
fn clickhouse_release_verifies_installs_and_changes_nothing_then_clean_and_push() {
    let archives = archives();
    let fleet = Fleet::up("chrel", 1, 0);
    give_the_host_debians_server(&fleet);
    let site = Site::start(gateway(&fleet), archives.root.clone());
    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.roles = &["nats", "clickhouse"];
    let release = |common_sum: &str| {
        format!(
            "[components.nats]\nsource = \"os\"\n[components.clickhouse]\nsource = \"release\"\nversion = \"{VERSION}\"\nbase_url = \"{}\"\nsha256 = {{ \"{COMMON}\" = \"{common_sum}\", \"{SERVER}\" = \"{}\" }}\n",
            site.base_url, archives.server_sha256
        )
    };

    // A wrong sum for the binary's archive: the host fails naming both sums and the URL,
    // and no ClickHouse is installed.
    let wrong_sum = "0".repeat(64);
    let wrong = release(&wrong_sum);
    options.extra = &wrong;
    let inventory = fleet.inventory("wrong.toml", &options);
    let failed = mp_remote(Some(&inventory), &["deploy"]);
    println!("wrong sum:\n{}{}", failed.stdout, failed.stderr);
    assert_eq!(failed.code, 2, "{failed:?}");
    let url = format!("{}/tgz/stable/{COMMON}", site.base_url);
    assert!(
        failed.stdout.contains(&format!(
            "install install.clickhouse.binary: sha256 mismatch for {url}: expected {wrong_sum}, got {}; nothing installed",
            archives.common_sha256
        )),
        "{}",
        failed.stdout
    );
    assert!(fleet.holds("h1", "test ! -e /usr/local/bin/clickhouse"));
    assert!(fleet.holds("h1", "test ! -e /etc/clickhouse-server/config.xml"));
    assert_eq!(
        site.requests_for(SERVER),
        0,
        "nothing after the failed step"
    );

    // The right sums: installed from the archives, under our unit, with the schema.
    let right = release(&archives.common_sha256);
    options.extra = &right;
    let inventory = fleet.inventory("inv.toml", &options);
    // --check downloads nothing and predicts what the deploy then changes.
    let check = mp_remote(Some(&inventory), &["deploy", "--check"]);
    println!("check:\n{}{}", check.stdout, check.stderr);
    assert!(
        check.stdout.contains(&format!(
            "would download {url}, install clickhouse {VERSION} to /usr/local/bin/clickhouse"
        )),
        "{}",
        check.stdout
    );
    assert_eq!(site.requests_for(COMMON), 1, "--check downloads nothing");
    let first = mp_remote(Some(&inventory), &["deploy"]);
    println!("first deploy:\n{}{}", first.stdout, first.stderr);
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(
        recap_counts(&first.stdout, "h1").1,
        recap_counts(&check.stdout, "h1").1,
        "--check predicted the changes"
    );
    for said in [
        format!("installed clickhouse {VERSION} (/usr/local/bin/clickhouse)"),
        "installed /etc/clickhouse-server/config.xml".to_string(),
    ] {
        assert!(first.stdout.contains(&said), "{said}: {}", first.stdout);
    }
    assert_eq!(site.requests_for(COMMON), 2);
    assert_eq!(site.requests_for(SERVER), 1);
    assert_running_from_the_archives(&fleet);
    let started = fleet.started_at("h1", "clickhouse-server");

    // Again: nothing downloaded, nothing changed, nothing restarted.
    let second = mp_remote(Some(&inventory), &["deploy"]);
    println!("second deploy:\n{}{}", second.stdout, second.stderr);
    assert_nothing_changed(&second);
    assert_eq!(site.requests_for(COMMON), 2, "nothing downloaded again");
    assert_eq!(site.requests_for(SERVER), 1, "nothing downloaded again");
    assert_eq!(fleet.started_at("h1", "clickhouse-server"), started);

    // clean takes what the archives installed (data and default configs kept).
    let clean = mp_remote(Some(&inventory), &["clean", "--yes"]);
    println!("clean:\n{}{}", clean.stdout, clean.stderr);
    assert_eq!(clean.code, 0, "{clean:?}");
    for gone in [
        "/usr/local/bin/clickhouse",
        "/usr/local/bin/clickhouse-server",
        "/etc/systemd/system/clickhouse-server.service",
    ] {
        assert!(
            fleet.holds("h1", &format!("test ! -e {gone}")),
            "{gone} left"
        );
    }
    assert!(fleet.holds("h1", "test -e /etc/clickhouse-server/config.xml"));

    // The same archives pushed from the control node (an air-gapped host).
    let files = fleet.dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    for file in [COMMON, SERVER] {
        std::fs::copy(
            archives.root.join("tgz/stable").join(file),
            files.join(file),
        )
        .unwrap();
    }
    let push = format!(
        "[components.nats]\nsource = \"os\"\n[components.clickhouse]\nsource = \"push\"\nversion = \"{VERSION}\"\nartifact = [\"files/{COMMON}\", \"files/{SERVER}\"]\nsha256 = {{ \"{COMMON}\" = \"{}\", \"{SERVER}\" = \"{}\" }}\n",
        archives.common_sha256, archives.server_sha256
    );
    options.extra = &push;
    let inventory = fleet.inventory("push.toml", &options);
    let pushed = mp_remote(Some(&inventory), &["deploy"]);
    println!("push deploy:\n{}{}", pushed.stdout, pushed.stderr);
    assert_eq!(pushed.code, 0, "{pushed:?}");
    assert_running_from_the_archives(&fleet);
    assert_eq!(site.requests_for(COMMON), 2, "a push downloads nothing");
    let again = mp_remote(Some(&inventory), &["deploy"]);
    assert_nothing_changed(&again);

    // Packages pushed instead (here Debian's own, the one real ClickHouse build at hand):
    // installed through apt, run by the package's unit from /usr/sbin.
    let clean = mp_remote(Some(&inventory), &["clean", "--yes"]);
    assert_eq!(clean.code, 0, "{clean:?}");
    let mut names = Vec::new();
    let mut sums = Vec::new();
    for deb in &archives.debs {
        let name = deb.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::copy(deb, files.join(&name)).unwrap();
        sums.push(format!("\"{name}\" = \"{}\"", sha256(deb)));
        names.push(format!("\"files/{name}\""));
    }
    let debs = format!(
        "[components.nats]\nsource = \"os\"\n[components.clickhouse]\nsource = \"push\"\nartifact = [{}]\nsha256 = {{ {} }}\n",
        names.join(", "),
        sums.join(", ")
    );
    options.extra = &debs;
    let inventory = fleet.inventory("debs.toml", &options);
    let from_debs = mp_remote(Some(&inventory), &["deploy"]);
    println!("push of debs:\n{}{}", from_debs.stdout, from_debs.stderr);
    assert_eq!(from_debs.code, 0, "{from_debs:?}");
    assert!(fleet.holds("h1", "dpkg-query -W clickhouse-server >/dev/null 2>&1"));
    let unit = fleet.exec(
        "h1",
        "systemctl show -p FragmentPath -p ActiveState clickhouse-server",
    );
    assert!(
        unit.contains("FragmentPath=/lib/systemd/system/clickhouse-server.service")
            && unit.contains("ActiveState=active"),
        "{unit}"
    );
    let again = mp_remote(Some(&inventory), &["deploy"]);
    assert_nothing_changed(&again);
}
