//! A fleet of test hosts brought up by `tests/hosts/testhosts` and removed when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct TestHost {
    pub name: String,
    pub container: String,
    pub address: String,
    pub ssh_port: u16,
    pub private_ip: String,
    pub hidden: bool,
}

#[derive(Debug, Deserialize)]
struct HostsFile {
    prefix: String,
    key: PathBuf,
    hosts: Vec<TestHost>,
    bastion: Option<TestHost>,
}

pub struct Fleet {
    pub prefix: String,
    pub dir: tempfile::TempDir,
    pub key: PathBuf,
    pub hosts: Vec<TestHost>,
    pub bastion: Option<TestHost>,
}

/// What to put in a generated inventory.
pub struct InventoryOptions<'a> {
    pub user: &'a str,
    pub identity_file: Option<&'a Path>,
    pub host_key_checking: &'a str,
    pub known_hosts: &'a Path,
    pub connect_timeout: &'a str,
    /// Only these host names (all when empty).
    pub only: &'a [&'a str],
    /// Roles of every host.
    pub roles: &'a [&'a str],
    /// Raw TOML appended at the end (components, streams).
    pub extra: &'a str,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hosts/testhosts")
}

/// Runs the test-host script; a failure fails the test (never a skip: no hosts, no proof).
pub fn testhosts(args: &[&str]) -> String {
    let output = Command::new(script())
        .args(args)
        .output()
        .expect("cannot run tests/hosts/testhosts");
    assert!(
        output.status.success(),
        "tests/hosts/testhosts {args:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Container names must not clash between test binaries running at once.
fn run_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| format!("mpt{}", std::process::id()))
}

impl Fleet {
    /// Brings up `count` hosts (plus a bastion and `hidden` hosts behind it when `hidden > 0`).
    pub fn up(name: &str, count: usize, hidden: usize) -> Fleet {
        let prefix = format!("{}-{name}", run_tag());
        let dir = tempfile::tempdir().expect("tempdir");
        let dir_arg = dir.path().to_string_lossy().into_owned();
        let (count_arg, hidden_arg) = (count.to_string(), hidden.to_string());
        let mut args = vec![
            "up", "--prefix", &prefix, "--count", &count_arg, "--dir", &dir_arg,
        ];
        if hidden > 0 {
            args.extend(["--bastion", "--hidden", &hidden_arg]);
        }
        // Whatever happens next, the containers go when the fleet does.
        let mut fleet = Fleet {
            prefix: prefix.clone(),
            dir,
            key: PathBuf::new(),
            hosts: Vec::new(),
            bastion: None,
        };
        testhosts(&args);
        let text =
            std::fs::read_to_string(fleet.dir.path().join("hosts.json")).expect("hosts.json");
        let file: HostsFile = serde_json::from_str(&text).expect("hosts.json parses");
        assert_eq!(file.prefix, prefix);
        fleet.key = file.key;
        fleet.hosts = file.hosts;
        fleet.bastion = file.bastion;
        fleet
    }

    pub fn host(&self, name: &str) -> &TestHost {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no test host {name}"))
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// Runs a testhosts subcommand on one host of this fleet (stop, start, rekey, exec ...).
    pub fn on_host(&self, action: &str, host: &str) -> String {
        testhosts(&[action, "--prefix", &self.prefix, host])
    }

    /// When `unit` last entered "active" on `host`: unchanged means not restarted.
    pub fn started_at(&self, host: &str, unit: &str) -> String {
        self.exec(
            host,
            &format!("systemctl show -p ActiveEnterTimestampMonotonic {unit}"),
        )
        .trim()
        .to_string()
    }

    pub fn exec(&self, host: &str, command: &str) -> String {
        testhosts(&[
            "exec",
            "--prefix",
            &self.prefix,
            host,
            "--",
            "sh",
            "-c",
            command,
        ])
    }

    /// Whether the shell test (`test -e /x`, `! id nats`) holds on `host`.
    pub fn holds(&self, host: &str, test: &str) -> bool {
        self.exec(host, &format!("if {test}; then echo yes; else echo no; fi"))
            .trim()
            == "yes"
    }

    pub fn default_options<'a>(&'a self, known_hosts: &'a Path) -> InventoryOptions<'a> {
        InventoryOptions {
            user: "root",
            identity_file: Some(&self.key),
            host_key_checking: "accept-new",
            known_hosts,
            connect_timeout: "10s",
            only: &[],
            roles: &["nats"],
            extra: "",
        }
    }

    /// Writes an inventory for this fleet and returns its path.
    pub fn inventory(&self, file: &str, options: &InventoryOptions) -> PathBuf {
        let mut text = format!(
            "[defaults]\nuser = \"{}\"\nhost_key_checking = \"{}\"\nknown_hosts = \"{}\"\nconnect_timeout = \"{}\"\n",
            options.user,
            options.host_key_checking,
            options.known_hosts.display(),
            options.connect_timeout,
        );
        if let Some(key) = options.identity_file {
            text.push_str(&format!("identity_file = \"{}\"\n", key.display()));
        }
        for host in &self.hosts {
            if !options.only.is_empty() && !options.only.contains(&host.name.as_str()) {
                continue;
            }
            let roles: Vec<String> = options.roles.iter().map(|r| format!("\"{r}\"")).collect();
            text.push_str(&format!(
                "\n[[hosts]]\nname = \"{}\"\naddress = \"{}\"\nport = {}\nprivate_address = \"{}\"\nroles = [{}]\n",
                host.name,
                host.address,
                host.ssh_port,
                host.private_ip,
                roles.join(", ")
            ));
            if host.hidden {
                let bastion = self.bastion.as_ref().expect("hidden hosts need a bastion");
                text.push_str(&format!(
                    "proxy_jump = \"{}@{}:{}\"\n",
                    options.user, bastion.address, bastion.ssh_port
                ));
            }
        }
        text.push('\n');
        text.push_str(options.extra);
        let path = self.path(file);
        std::fs::write(&path, text).expect("write inventory");
        path
    }
}

/// Rewrites each host's `roles = ...` line of a generated inventory with `roles(name)`: the
/// roles (and any lines to add after them, such as `vars = { ... }`).
pub fn set_roles(inventory: &Path, roles: impl Fn(&str) -> String) {
    let text = std::fs::read_to_string(inventory).expect("read inventory");
    let mut out = String::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("name = ") {
            current = name.trim_matches('"').to_string();
        }
        if line.starts_with("roles = ") {
            out.push_str(&format!("roles = {}\n", roles(&current)));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(inventory, out).expect("write inventory");
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["down", "--prefix", &self.prefix])
            .output();
    }
}

/// The fleet that read-only tests share (3 hosts, a bastion and one host behind it), brought
/// up once per test binary. Statics are never dropped: `tests/run` removes it (`down-all`).
pub fn shared() -> &'static Fleet {
    static SHARED: OnceLock<Fleet> = OnceLock::new();
    SHARED.get_or_init(|| Fleet::up("shared", 3, 1))
}
