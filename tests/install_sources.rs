//! `source = "release"` and `source = "push"` for NATS on a real host. There is no internet
//! here: a small HTTP server started by the test stands in for GitHub, serving a release
//! tarball laid out as nats-io publishes it, repacked from Debian's nats-server 2.9.10 (the
//! real binary). The test host reaches it at its docker network's gateway address.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::support::site::{gateway, Site};
use crate::support::{assert_nothing_changed, mp_remote, run_ok, Fleet};

const VERSION: &str = "2.9.10";
const TARBALL: &str = "nats-server-v2.9.10-linux-amd64.tar.gz";
const RELEASE_PATH: &str = "nats-io/nats-server/releases/download/v2.9.10";

/// The release tarball, built once per test binary.
struct Release {
    /// Serve this directory: it holds `RELEASE_PATH/TARBALL`.
    root: PathBuf,
    tarball: PathBuf,
    sha256: String,
    /// Debian's package itself, for a push of a .deb.
    deb: PathBuf,
    _dir: tempfile::TempDir,
}

/// Debian's nats-server package (apt-get download on this machine), its binary repacked as
/// `nats-server-v2.9.10-linux-amd64/nats-server` in the tarball, as the vendor ships it.
fn release() -> &'static Release {
    static RELEASE: OnceLock<Release> = OnceLock::new();
    RELEASE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let deb_dir = dir.path().join("deb");
        std::fs::create_dir_all(&deb_dir).unwrap();
        run_ok(
            Command::new("apt-get")
                .args(["download", "-q", "nats-server"])
                .current_dir(&deb_dir),
        );
        let deb = std::fs::read_dir(&deb_dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .expect("apt-get download left a .deb");
        let unpacked = dir.path().join("unpacked");
        run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked));
        let folder = dir.path().join("tree/nats-server-v2.9.10-linux-amd64");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::copy(
            unpacked.join("usr/sbin/nats-server"),
            folder.join("nats-server"),
        )
        .unwrap();
        std::fs::write(folder.join("README.md"), "repacked for mp-remote's tests\n").unwrap();
        let version = run_ok(Command::new(folder.join("nats-server")).arg("--version"));
        assert_eq!(version.trim(), format!("nats-server: v{VERSION}"));
        let root = dir.path().join("site");
        std::fs::create_dir_all(root.join(RELEASE_PATH)).unwrap();
        let tarball = root.join(RELEASE_PATH).join(TARBALL);
        run_ok(
            Command::new("tar")
                .arg("-czf")
                .arg(&tarball)
                .arg("-C")
                .arg(dir.path().join("tree"))
                .arg("nats-server-v2.9.10-linux-amd64"),
        );
        let sha256 = hex::encode(Sha256::digest(std::fs::read(&tarball).unwrap()));
        Release {
            root,
            tarball,
            sha256,
            deb,
            _dir: dir,
        }
    })
}

/// NATS from the release on a fresh host: no OS package, the release's binary healthy under
/// our own unit.
fn assert_release_running(fleet: &Fleet) {
    assert!(
        fleet.holds("h1", "! dpkg-query -W nats-server >/dev/null 2>&1"),
        "no OS package was installed"
    );
    assert_release_running_as_unit(fleet);
}

/// The release's binary, healthy, under our own unit without a drop-in.
fn assert_release_running_as_unit(fleet: &Fleet) {
    assert_eq!(
        fleet
            .exec("h1", "/usr/local/bin/nats-server --version")
            .trim(),
        format!("nats-server: v{VERSION}")
    );
    let health = fleet.exec("h1", "curl -sf http://127.0.0.1:8222/healthz");
    assert!(health.contains(r#""status":"ok""#), "{health}");
    let unit = fleet.exec(
        "h1",
        "systemctl show -p FragmentPath -p ExecStart -p DropInPaths -p User nats-server",
    );
    assert!(
        unit.contains("FragmentPath=/etc/systemd/system/nats-server.service"),
        "{unit}"
    );
    assert!(
        unit.contains("path=/usr/local/bin/nats-server ; argv[]=/usr/local/bin/nats-server -c /etc/marketprism/nats-server.conf"),
        "{unit}"
    );
    assert!(unit.contains("DropInPaths=\n"), "no drop-in: {unit}");
    assert!(unit.contains("User=nats"), "{unit}");
}

#[test]
fn release_verifies_the_sum_installs_then_changes_nothing() {
    let release = release();
    let fleet = Fleet::up("release", 1, 0);
    let site = Site::start(gateway(&fleet), release.root.clone());
    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.roles = &["nats"];

    // A wrong sum: the host fails naming both sums and the URL, and nothing is installed.
    let wrong_sum = "0".repeat(64);
    let components = |sum: &str| {
        format!(
            "[components.nats]\nsource = \"release\"\nversion = \"{VERSION}\"\nsha256 = \"{sum}\"\nbase_url = \"{}\"\n",
            site.base_url
        )
    };
    let wrong = components(&wrong_sum);
    options.extra = &wrong;
    let inventory = fleet.inventory("wrong.toml", &options);
    let failed = mp_remote(Some(&inventory), &["deploy"]);
    println!("wrong sum:\n{}{}", failed.stdout, failed.stderr);
    assert_eq!(failed.code, 2, "{failed:?}");
    let url = format!("{}/{RELEASE_PATH}/{TARBALL}", site.base_url);
    let line = failed
        .stdout
        .lines()
        .find(|l| l.starts_with("failed: h1: install install.nats.binary: sha256 mismatch"))
        .unwrap_or_else(|| panic!("no failure line naming the step: {}", failed.stdout));
    assert!(
        line.contains(&format!(
            "sha256 mismatch for {url}: expected {wrong_sum}, got {}; nothing installed",
            release.sha256
        )),
        "{line}"
    );
    assert_eq!(site.requests_for(TARBALL), 1);
    assert!(fleet.holds("h1", "test ! -e /usr/local/bin/nats-server"));
    assert!(
        fleet.holds("h1", "! id nats >/dev/null 2>&1"),
        "no user either"
    );
    assert!(fleet.holds("h1", "test ! -e /etc/systemd/system/nats-server.service"));
    assert!(fleet.holds("h1", "! systemctl is-active -q nats-server"));
    assert_eq!(
        fleet
            .exec("h1", "ls -A /var/lib/mp-remote/install 2>/dev/null || true")
            .trim(),
        "",
        "the download is gone"
    );

    // The right sum: installed from the release, running under our unit.
    let right = components(&release.sha256);
    options.extra = &right;
    let inventory = fleet.inventory("inv.toml", &options);
    let check = mp_remote(Some(&inventory), &["deploy", "--check"]);
    println!("check:\n{}{}", check.stdout, check.stderr);
    assert!(
        check.stdout.contains(&format!(
            "would download {url}, install nats-server {VERSION} to /usr/local/bin/nats-server"
        )),
        "{}",
        check.stdout
    );
    assert_eq!(site.requests_for(TARBALL), 1, "--check downloads nothing");
    assert!(fleet.holds("h1", "test ! -e /usr/local/bin/nats-server"));
    let first = mp_remote(Some(&inventory), &["deploy"]);
    println!("first deploy:\n{}{}", first.stdout, first.stderr);
    assert_eq!(first.code, 0, "{first:?}");
    assert!(
        first.stdout.contains(&format!(
            "installed nats-server {VERSION} (/usr/local/bin/nats-server)"
        )),
        "{}",
        first.stdout
    );
    assert_eq!(site.requests_for(TARBALL), 2);
    assert_release_running(&fleet);
    let jsz = fleet.exec("h1", "curl -sf 'http://127.0.0.1:8222/jsz?streams=true'");
    assert!(jsz.contains("MARKET_DATA"), "{jsz}");
    let started = fleet.started_at("h1", "nats-server");

    // Again: the installed binary reports the pinned version, so nothing is downloaded,
    // nothing changes, nothing restarts.
    let second = mp_remote(Some(&inventory), &["deploy"]);
    println!("second deploy:\n{}{}", second.stdout, second.stderr);
    assert_nothing_changed(&second);
    assert_eq!(
        site.requests_for(TARBALL),
        2,
        "nothing downloaded the second time"
    );
    assert_eq!(
        fleet.started_at("h1", "nats-server"),
        started,
        "NATS was restarted"
    );
}

#[test]
fn push_refuses_a_wrong_sum_before_upload_then_installs_the_file() {
    let release = release();
    let fleet = Fleet::up("push", 1, 0);
    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.roles = &["nats"];
    // The artifact lives beside the inventory, named relative to it.
    std::fs::create_dir_all(fleet.path("files")).unwrap();
    std::fs::copy(&release.tarball, fleet.path("files").join(TARBALL)).unwrap();
    let components = |sum: &str| {
        format!(
            "[components.nats]\nsource = \"push\"\nartifact = \"files/{TARBALL}\"\nsha256 = \"{sum}\"\nversion = \"{VERSION}\"\n"
        )
    };

    let wrong_sum = "f".repeat(64);
    let wrong = components(&wrong_sum);
    options.extra = &wrong;
    let inventory = fleet.inventory("wrong.toml", &options);
    let refused = mp_remote(Some(&inventory), &["deploy"]);
    println!("wrong sum:\n{}{}", refused.stdout, refused.stderr);
    assert_eq!(refused.code, 1, "refused before any host: {refused:?}");
    assert!(
        refused.stderr.contains(&format!(
            "sha256 mismatch: expected {wrong_sum}, got {}; refused before upload",
            release.sha256
        )),
        "{}",
        refused.stderr
    );
    assert!(
        fleet.holds("h1", "test ! -e /var/lib/mp-remote"),
        "the host was not touched (not even the agent)"
    );

    let right = components(&release.sha256);
    options.extra = &right;
    let inventory = fleet.inventory("inv.toml", &options);
    let first = mp_remote(Some(&inventory), &["deploy"]);
    println!("first deploy:\n{}{}", first.stdout, first.stderr);
    assert_eq!(first.code, 0, "{first:?}");
    assert_release_running(&fleet);
    let uploaded = format!(
        "/var/lib/mp-remote/artifacts/{}-{TARBALL}",
        &release.sha256[..16]
    );
    let stat = format!("stat -c '%y %s' {uploaded}");
    let before = fleet.exec("h1", &stat);
    assert!(
        before.trim().ends_with(&format!(
            " {}",
            std::fs::metadata(&release.tarball).unwrap().len()
        )),
        "{before}"
    );
    let started = fleet.started_at("h1", "nats-server");

    // Again: the upload is skipped (same file, same time stamp), nothing changes.
    let second = mp_remote(Some(&inventory), &["deploy"]);
    println!("second deploy:\n{}{}", second.stdout, second.stderr);
    assert_nothing_changed(&second);
    assert_eq!(fleet.exec("h1", &stat), before, "uploaded again");
    assert_eq!(
        fleet.started_at("h1", "nats-server"),
        started,
        "NATS was restarted"
    );
}

/// A .deb pushed by a sudo user (`become = true`): uploaded to the user's home beside the
/// agent, installed through dpkg, run by the package's own unit with the usual drop-in. Then
/// a switch to the tarball on the same host.
#[test]
fn push_of_a_deb_by_a_sudo_user_then_the_tarball() {
    let release = release();
    let fleet = Fleet::up("pushdeb", 1, 0);
    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.roles = &["nats"];
    options.user = "deploy";
    let file = release
        .deb
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    std::fs::create_dir_all(fleet.path("files")).unwrap();
    std::fs::copy(&release.deb, fleet.path("files").join(&file)).unwrap();
    let sum = hex::encode(Sha256::digest(std::fs::read(&release.deb).unwrap()));
    let components = format!(
        "[components.nats]\nsource = \"push\"\nartifact = \"files/{file}\"\nsha256 = \"{sum}\"\n"
    );
    options.extra = &components;
    let inventory = fleet.inventory("inv.toml", &options);
    let text = std::fs::read_to_string(&inventory).unwrap();
    std::fs::write(
        &inventory,
        text.replacen("[defaults]\n", "[defaults]\nbecome = true\n", 1),
    )
    .unwrap();

    let first = mp_remote(Some(&inventory), &["deploy"]);
    println!("first deploy:\n{}{}", first.stdout, first.stderr);
    assert_eq!(first.code, 0, "{first:?}");
    assert!(fleet.holds(
        "h1",
        &format!(
            "test -f /home/deploy/.mp-remote/artifacts/{}-{file}",
            &sum[..16]
        )
    ));
    let version = fleet.exec("h1", "dpkg-query -W -f '${Version}' nats-server");
    assert!(version.starts_with(VERSION), "{version}");
    let health = fleet.exec("h1", "curl -sf http://127.0.0.1:8222/healthz");
    assert!(health.contains(r#""status":"ok""#), "{health}");
    let unit = fleet.exec(
        "h1",
        "systemctl show -p FragmentPath -p ExecStart -p DropInPaths nats-server",
    );
    assert!(
        unit.contains("FragmentPath=/lib/systemd/system/nats-server.service")
            && unit.contains("/etc/systemd/system/nats-server.service.d/mp-remote.conf")
            && unit.contains("argv[]=/usr/sbin/nats-server -c /etc/marketprism/nats-server.conf"),
        "{unit}"
    );
    assert!(fleet.holds("h1", "test ! -e /usr/local/bin/nats-server"));

    let second = mp_remote(Some(&inventory), &["deploy"]);
    println!("second deploy:\n{}{}", second.stdout, second.stderr);
    assert_nothing_changed(&second);

    // From the package to the release tarball: our unit takes over, the drop-in goes (it
    // would start the package's binary).
    std::fs::copy(&release.tarball, fleet.path("files").join(TARBALL)).unwrap();
    let switched = text
        .replacen("[defaults]\n", "[defaults]\nbecome = true\n", 1)
        .replace(
            &components,
            &format!(
                "[components.nats]\nsource = \"push\"\nartifact = \"files/{TARBALL}\"\nsha256 = \"{}\"\nversion = \"{VERSION}\"\n",
                release.sha256
            ),
        );
    std::fs::write(&inventory, switched).unwrap();
    let third = mp_remote(Some(&inventory), &["deploy"]);
    println!("switch to the tarball:\n{}{}", third.stdout, third.stderr);
    assert_eq!(third.code, 0, "{third:?}");
    assert_release_running_as_unit(&fleet);
}
