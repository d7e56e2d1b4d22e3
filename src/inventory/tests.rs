//! Inventory tests: malformed files (message and location), merging, ssh config, jumps, --limit,
//! and the shipped example inventories.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::jump::{parse_jump_spec, JumpSpec};
use super::resolve::Env;
use super::*;
use crate::transport::target::HostKeyChecking;

const PATH: &str = "inventory/x.toml";

/// A machine with home /home/me, local user "me", and only ~/.ssh/id_ed25519 on disk.
fn env() -> Env {
    Env {
        home: Some(PathBuf::from("/home/me")),
        user: "me".to_string(),
        existing_files: Some(BTreeSet::from([
            PathBuf::from("/home/me/.ssh/id_ed25519"),
            PathBuf::from("/home/me/.ssh/work_key"),
        ])),
    }
}

fn parse_with(source: &str, ssh_config: Option<&str>) -> Result<Inventory, InventoryError> {
    parse_in(
        source,
        Path::new(PATH),
        ssh_config.map(|text| (text, Path::new("/home/me/.ssh/config"))),
        &env(),
    )
}

fn ok(source: &str) -> Inventory {
    match parse_with(source, None) {
        Ok(inv) => inv,
        Err(err) => panic!("expected a valid inventory, got:\n{err}"),
    }
}

fn ok_ssh(source: &str, ssh_config: &str) -> Inventory {
    match parse_with(source, Some(ssh_config)) {
        Ok(inv) => inv,
        Err(err) => panic!("expected a valid inventory, got:\n{err}"),
    }
}

fn err(source: &str) -> InventoryError {
    match parse_with(source, None) {
        Ok(inv) => panic!("expected an error, got {inv:#?}"),
        Err(err) => err,
    }
}

fn host<'a>(inv: &'a Inventory, name: &str) -> &'a Host {
    inv.host(name)
        .unwrap_or_else(|| panic!("no host {name} in {inv:#?}"))
}

const H1: &str = "[[hosts]]\nname = \"a\"\naddress = \"10.0.0.1\"\n";

/// (what, inventory, expected message fragment, line, column)
const MALFORMED: &[(&str, &str, &str, usize, usize)] = &[
    (
        "unclosed table header",
        "[[hosts]\nname = \"a\"\n",
        "invalid TOML: unclosed array table",
        1,
        9,
    ),
    (
        "unterminated string",
        "[[hosts]]\nname = \"a\naddress = \"x\"\n",
        "invalid TOML: invalid basic string",
        2,
        10,
    ),
    (
        "unknown top-level key",
        "bogus = 1\n[[hosts]]\nname = \"a\"\naddress = \"x\"\n",
        "unknown key \"bogus\": remove it or use one of defaults, hosts, groups, components, streams, thresholds",
        1,
        1,
    ),
    (
        "unknown key in a host",
        "[[hosts]]\nname = \"a\"\naddress = \"x\"\nrole = [\"nats\"]\n",
        "unknown key \"role\": remove it or use one of",
        4,
        1,
    ),
    (
        "unknown key in defaults",
        "[defaults]\nusr = \"root\"\n",
        "unknown key \"usr\"",
        2,
        1,
    ),
    (
        "unknown key in a group",
        "[[hosts]]\nname = \"a\"\naddress = \"x\"\n[groups.g]\nhosts = [\"a\"]\nmembers = []\n",
        "unknown key \"members\"",
        6,
        1,
    ),
    (
        "become as a string",
        "[[hosts]]\nname = \"a\"\naddress = \"x\"\nbecome = \"yes\"\n",
        "invalid type: string \"yes\", expected a boolean: write true or false",
        4,
        10,
    ),
    (
        "roles not a list",
        "[[hosts]]\nname = \"a\"\naddress = \"x\"\nroles = \"nats\"\n",
        "expected a sequence: write a list",
        4,
        9,
    ),
    (
        "host without a name",
        "[[hosts]]\naddress = \"x\"\n",
        "missing key \"name\": add name = ... to this table",
        1,
        1,
    ),
    (
        "duplicate key",
        "[[hosts]]\nname = \"a\"\nname = \"b\"\n",
        "duplicate key \"name\": keep only one of them",
        3,
        1,
    ),
    (
        "duplicate host name",
        "[[hosts]]\nname = \"a\"\naddress = \"x\"\n\n[[hosts]]\nname = \"a\"\naddress = \"y\"\n",
        "duplicate host name \"a\" (first used on line 2): give every [[hosts]] entry its own name",
        6,
        8,
    ),
    (
        "empty host name",
        "[[hosts]]\nname = \"\"\naddress = \"x\"\n",
        "empty host name: use letters, digits",
        2,
        8,
    ),
    (
        "host name with a space",
        "[[hosts]]\nname = \"mp 1\"\naddress = \"x\"\n",
        "invalid host name \"mp 1\": ' ' is not allowed: use only letters, digits, '.', '_' and '-'",
        2,
        8,
    ),
    (
        "unknown role",
        "[[hosts]]\nname = \"mp-1\"\naddress = \"x\"\nroles = [\"nats\", \"natz\"]\n",
        "unknown role \"natz\" in host \"mp-1\": use one of nats, clickhouse, storage, collector",
        4,
        18,
    ),
    (
        "port 0",
        "[[hosts]]\nname = \"a\"\naddress = \"x\"\nport = 0\n",
        "port 0 in host \"a\" is out of range: use a number from 1 to 65535",
        4,
        8,
    ),
    (
        "port too large",
        "[[hosts]]\nname = \"a\"\naddress = \"x\"\nport = 70000\n",
        "port 70000 in host \"a\" is out of range",
        4,
        8,
    ),
    (
        "negative port",
        "[[hosts]]\nname = \"a\"\naddress = \"x\"\nport = -22\n",
        "port -22 in host \"a\" is out of range",
        4,
        8,
    ),
    (
        "port as a string",
        "[[hosts]]\nname = \"a\"\naddress = \"x\"\nport = \"22\"\n",
        "port in host \"a\" must be a number, not the string \"22\": write port = 22, without quotes",
        4,
        8,
    ),
    (
        "port as a float",
        "[defaults]\nport = 22.5\n",
        "port in [defaults] must be a number, not a float",
        2,
        8,
    ),
    (
        "bad duration",
        "[defaults]\nconnect_timeout = \"10 parsecs\"\n",
        "invalid duration \"10 parsecs\" for connect_timeout in [defaults] (unknown time unit \"parsecs\"): write a number with a unit",
        2,
        19,
    ),
    (
        "duration of the wrong type",
        "[[hosts]]\nname = \"a\"\naddress = \"x\"\nkeepalive = true\n",
        "invalid duration for keepalive in host \"a\": got a boolean: write a number with a unit",
        4,
        13,
    ),
    (
        "zero connect timeout",
        "[defaults]\nconnect_timeout = \"0s\"\n",
        "connect_timeout in [defaults] must be longer than 0s",
        2,
        19,
    ),
    (
        "bad host_key_checking",
        "[defaults]\nhost_key_checking = \"yes\"\n",
        "invalid host_key_checking \"yes\" in [defaults]: use one of strict, accept-new, off",
        2,
        21,
    ),
    (
        "bad connection",
        "[[hosts]]\nname = \"a\"\naddress = \"x\"\nconnection = \"telnet\"\n",
        "invalid connection \"telnet\" in host \"a\": use \"ssh\"",
        4,
        14,
    ),
    (
        "group lists a missing host",
        "[[hosts]]\nname = \"a\"\naddress = \"x\"\n[groups.g]\nhosts = [\"a\", \"b\"]\n",
        "group \"g\" lists unknown host \"b\": use one of the [[hosts]] names: a",
        5,
        15,
    ),
    (
        "group named like a host",
        "[[hosts]]\nname = \"a\"\naddress = \"x\"\n[groups.a]\nhosts = [\"a\"]\n",
        "group \"a\" has the same name as a host",
        4,
        9,
    ),
    (
        "invalid group name",
        "[[hosts]]\nname = \"a\"\naddress = \"x\"\n[groups.\"web servers\"]\nhosts = [\"a\"]\n",
        "invalid group name \"web servers\"",
        4,
        9,
    ),
    (
        "proxy_jump names a missing host",
        "[[hosts]]\nname = \"a\"\naddress = \"x\"\nproxy_jump = \"bastoin\"\n",
        "proxy_jump \"bastoin\" in host \"a\" is not a host in this inventory",
        4,
        14,
    ),
    (
        "proxy_jump with a bad port",
        "[[hosts]]\nname = \"a\"\naddress = \"x\"\nproxy_jump = \"me@jump.example:0\"\n",
        "invalid proxy_jump \"me@jump.example:0\" in host \"a\": invalid port \"0\"",
        4,
        14,
    ),
    (
        "proxy_jump loop",
        "[[hosts]]\nname = \"a\"\naddress = \"x\"\nproxy_jump = \"b\"\n\n[[hosts]]\nname = \"b\"\naddress = \"y\"\nproxy_jump = \"a\"\n",
        "proxy_jump loop: a -> b -> a",
        4,
        14,
    ),
    (
        "proxy_jump to itself",
        "[[hosts]]\nname = \"a\"\naddress = \"x\"\nproxy_jump = \"a\"\n",
        "proxy_jump loop: a -> a",
        4,
        14,
    ),
    (
        "proxy_jump through a local host",
        "[[hosts]]\nname = \"a\"\naddress = \"x\"\nproxy_jump = \"l\"\n[[hosts]]\nname = \"l\"\nconnection = \"local\"\n",
        "proxy_jump of host \"a\" names host \"l\", which has connection = \"local\"",
        4,
        14,
    ),
    (
        "ssh host without an address",
        "[[hosts]]\nname = \"mp-1\"\nroles = [\"nats\"]\n",
        "host \"mp-1\" has no address: add address = \"...\"",
        2,
        8,
    ),
    (
        "address with a space",
        "[[hosts]]\nname = \"a\"\naddress = \"10.0.0.1 x\"\n",
        "invalid address \"10.0.0.1 x\" in host \"a\"",
        3,
        11,
    ),
    (
        "no hosts",
        "[defaults]\nuser = \"root\"\n",
        "the inventory has no hosts: add a [[hosts]] table",
        1,
        1,
    ),
    ("empty file", "", "the inventory has no hosts", 1, 1),
    (
        "empty identity_file",
        "[defaults]\nidentity_file = \"\"\n",
        "empty identity_file in [defaults]",
        2,
        17,
    ),
    (
        "identity_file of the wrong type",
        "[defaults]\nidentity_file = 7\n",
        "identity_file in [defaults] must be a path, not an integer",
        2,
        17,
    ),
    (
        "empty user",
        "[[hosts]]\nname = \"a\"\naddress = \"x\"\nuser = \"\"\n",
        "invalid user \"\" in host \"a\"",
        4,
        8,
    ),
    (
        "streams not a table",
        "streams = 1\n[[hosts]]\nname = \"a\"\naddress = \"x\"\n",
        "invalid type: integer 1, expected a map",
        1,
        11,
    ),
];

#[test]
fn malformed_inventories_name_the_problem_and_its_place() {
    assert!(MALFORMED.len() >= 20);
    let mut failures = Vec::new();
    for (what, source, expected, line, column) in MALFORMED {
        let error = match parse_with(source, None) {
            Ok(_) => {
                failures.push(format!("{what}: parsed without error"));
                continue;
            }
            Err(error) => error,
        };
        let text = error.to_string();
        let headline = format!("{PATH}:{line}:{column}: ");
        if !text.starts_with(&headline) || !text.contains(expected) {
            failures.push(format!(
                "{what}: expected `{headline}…{expected}…`, got:\n{text}"
            ));
        }
        if error.location() != Some((PathBuf::from(PATH), *line, *column)) {
            failures.push(format!("{what}: location {:?}", error.location()));
        }
        // Every located error shows the line and a caret.
        if !text.contains(&format!("\n{line} | ")) || !text.contains('^') {
            failures.push(format!("{what}: no snippet in:\n{text}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn error_display_matches_the_documented_format() {
    let source = "[[hosts]]\nname = \"mp-1\"\naddress = \"203.0.113.10\"\nroles = [\"natz\"]\n";
    let error = err(source);
    assert_eq!(
        error.to_string(),
        "inventory/x.toml:4:10: unknown role \"natz\" in host \"mp-1\": use one of nats, clickhouse, storage, collector\n  |\n4 | roles = [\"natz\"]\n  |          ^^^^^^"
    );
    assert_eq!(
        error.summary(),
        "inventory/x.toml:4:10: unknown role \"natz\" in host \"mp-1\": use one of nats, clickhouse, storage, collector"
    );
    assert!(matches!(
        &error,
        InventoryError::Invalid { at, message, hint }
            if at.line == 4 && message.contains("natz") && hint.starts_with("use one of")
    ));
}

#[test]
fn caret_lines_up_after_tabs_and_wide_line_numbers() {
    let mut source = String::from(H1);
    source.push_str(&"\n".repeat(10));
    source.push_str("\tport = 0\n");
    let text = err(&source).to_string();
    assert!(text.starts_with("inventory/x.toml:14:9: port 0"), "{text}");
    assert!(
        text.ends_with("\n   |\n14 | \tport = 0\n   | \t       ^"),
        "{text:?}"
    );
}

#[test]
fn io_errors_name_the_path() {
    let error = load(Path::new("/nonexistent/inv.toml")).unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with("/nonexistent/inv.toml: cannot read the inventory: "),
        "{text}"
    );
    assert!(text.contains("No such file"), "{text}");
    assert!(error.location().is_none());
}

#[test]
fn minimal_host_gets_the_builtin_defaults() {
    let inv = ok(H1);
    let a = host(&inv, "a");
    assert_eq!(a.connection, Connection::Ssh);
    assert_eq!(a.ssh.label, "a");
    assert_eq!(a.ssh.address, "10.0.0.1");
    assert_eq!(a.private_address, "10.0.0.1");
    assert_eq!(a.ssh.port, 22);
    assert_eq!(a.ssh.user, "me");
    // Only the default key that exists.
    assert_eq!(
        a.ssh.identity_files,
        vec![PathBuf::from("/home/me/.ssh/id_ed25519")]
    );
    assert_eq!(a.ssh.host_key_checking, HostKeyChecking::AcceptNew);
    assert_eq!(
        a.ssh.known_hosts,
        PathBuf::from("/home/me/.ssh/known_hosts")
    );
    assert_eq!(a.ssh.connect_timeout, Duration::from_secs(10));
    assert_eq!(a.ssh.keepalive, Duration::from_secs(15));
    assert_eq!(a.ssh.jump, None);
    assert!(!a.become_);
    assert!(a.roles.is_empty());
    assert!(a.vars.is_empty());
    assert_eq!(inv.digest.len(), 64);
    assert_eq!(inv.path, PathBuf::from(PATH));
}

#[test]
fn paths_expand_home_and_are_relative_to_the_inventory() {
    let inv = ok(&format!(
        "{H1}identity_file = [\"keys/deploy\", \"~/.ssh/missing\", \"/etc/k\"]\nknown_hosts = \"kh\"\n"
    ));
    let a = host(&inv, "a");
    // Explicit files are kept even when missing: the transport reports them.
    assert_eq!(
        a.ssh.identity_files,
        vec![
            PathBuf::from("inventory/keys/deploy"),
            PathBuf::from("/home/me/.ssh/missing"),
            PathBuf::from("/etc/k"),
        ]
    );
    assert_eq!(a.ssh.known_hosts, PathBuf::from("inventory/kh"));
}

const LAYERS: &str = r#"
[defaults]
user = "root"
port = 2200
connect_timeout = "5s"
keepalive = "0s"
host_key_checking = "strict"
become = false
vars = { deploy_dir = "/opt/eu", collector_rate = 5, verify_timeout_secs = 30 }

[[hosts]]
name = "a"
address = "10.0.0.1"
vars = { collector_rate = 3 }

[[hosts]]
name = "b"
address = "10.0.0.2"
port = 22
become = false
vars = { nats_max_store_gib = 2 }

[[hosts]]
name = "c"
address = "10.0.0.3"

[groups.zeta]
hosts = ["b", "c"]
user = "zeta"
become = true
vars = { deploy_dir = "/opt/us", verify_timeout_secs = 1 }

[groups.alpha]
hosts = ["b", "c", "b"]
user = "alpha"
connect_timeout = 30
vars = { deploy_dir = "/opt/ap", nats_max_store_gib = 1 }
"#;

#[test]
fn defaults_then_groups_in_name_order_then_host() {
    let inv = ok(LAYERS);
    let (a, b, c) = (host(&inv, "a"), host(&inv, "b"), host(&inv, "c"));
    // Only defaults.
    assert_eq!((a.ssh.user.as_str(), a.ssh.port), ("root", 2200));
    assert_eq!(a.ssh.connect_timeout, Duration::from_secs(5));
    assert_eq!(a.ssh.keepalive, Duration::ZERO);
    assert_eq!(a.ssh.host_key_checking, HostKeyChecking::Strict);
    assert!(!a.become_);
    assert!(a.groups.is_empty());
    // Groups over defaults; "zeta" sorts after "alpha", so it wins; the host wins over both.
    assert_eq!((c.ssh.user.as_str(), c.ssh.port), ("zeta", 2200));
    assert_eq!(c.ssh.connect_timeout, Duration::from_secs(30));
    assert!(c.become_);
    assert_eq!(c.groups, vec!["alpha", "zeta"]);
    assert_eq!((b.ssh.user.as_str(), b.ssh.port), ("zeta", 22));
    assert!(!b.become_, "host become = false beats group become = true");
    assert_eq!(inv.groups["alpha"].hosts, vec!["b", "c"]);
}

#[test]
fn vars_merge_in_the_same_order() {
    let inv = ok(LAYERS);
    let get = |h: &str| toml::Value::Table(host(&inv, h).vars.clone());
    let a: toml::Value =
        toml::from_str("deploy_dir = \"/opt/eu\"\ncollector_rate = 3\nverify_timeout_secs = 30\n")
            .unwrap();
    assert_eq!(get("a"), a);
    let b: toml::Value = toml::from_str(
        "deploy_dir = \"/opt/us\"\ncollector_rate = 5\nverify_timeout_secs = 1\nnats_max_store_gib = 2\n",
    )
    .unwrap();
    assert_eq!(get("b"), b);
    assert_eq!(
        inv.groups["zeta"].vars.get("verify_timeout_secs"),
        Some(&toml::Value::Integer(1))
    );
}

const SSH_CONFIG: &str = "
# a comment
Host mp-*.lan
    HostName %h.example.net
    User cfg-user
    Port 2222
    IdentityFile ~/.ssh/work_key
    IdentityFile ~/.ssh/not_there
    ProxyJump jumper@gw.example.net:2022

Host alias-only
    HostName 192.0.2.50
    User alias-user

Match host *.lan exec \"false\"
    User from-match

Host *
    User star-user
";

#[test]
fn ssh_config_fills_what_the_inventory_leaves_open() {
    let inv = ok_ssh(
        "[[hosts]]\nname = \"a\"\naddress = \"mp-a.lan\"\n\n[[hosts]]\nname = \"b\"\naddress = \"alias-only\"\n\n[[hosts]]\nname = \"c\"\naddress = \"10.1.1.1\"\n",
        SSH_CONFIG,
    );
    let a = host(&inv, "a");
    assert_eq!(a.ssh.address, "mp-a.lan.example.net");
    assert_eq!(a.private_address, "mp-a.lan.example.net");
    assert_eq!(a.ssh.user, "cfg-user");
    assert_eq!(a.ssh.port, 2222);
    // ssh config key files replace the defaults; missing ones are skipped, as ssh does.
    assert_eq!(
        a.ssh.identity_files,
        vec![PathBuf::from("/home/me/.ssh/work_key")]
    );
    let jump = a.ssh.jump.as_deref().expect("ProxyJump from ssh config");
    assert_eq!(
        (
            jump.label.as_str(),
            jump.address.as_str(),
            jump.port,
            jump.user.as_str()
        ),
        (
            "jumper@gw.example.net:2022",
            "gw.example.net",
            2022,
            "jumper"
        )
    );
    let b = host(&inv, "b");
    assert_eq!(
        (b.ssh.address.as_str(), b.ssh.user.as_str(), b.ssh.port),
        ("192.0.2.50", "alias-user", 22)
    );
    // `Match` is skipped, `Host *` applies to everyone else.
    let c = host(&inv, "c");
    assert_eq!(
        (c.ssh.address.as_str(), c.ssh.user.as_str()),
        ("10.1.1.1", "star-user")
    );
    assert_eq!(c.ssh.jump, None);
}

#[test]
fn the_inventory_wins_over_ssh_config_at_every_level() {
    let source = "[defaults]\nuser = \"root\"\n\n[[hosts]]\nname = \"a\"\naddress = \"mp-a.lan\"\nport = 22\nidentity_file = \"~/.ssh/id_x\"\nproxy_jump = \"none\"\n\n[[hosts]]\nname = \"b\"\naddress = \"mp-b.lan\"\n\n[groups.g]\nhosts = [\"b\"]\nport = 2300\n";
    let inv = ok_ssh(source, SSH_CONFIG);
    let a = host(&inv, "a");
    assert_eq!(
        a.ssh.address, "mp-a.lan.example.net",
        "HostName still applies"
    );
    assert_eq!((a.ssh.user.as_str(), a.ssh.port), ("root", 22));
    assert_eq!(
        a.ssh.identity_files,
        vec![PathBuf::from("/home/me/.ssh/id_x")]
    );
    assert_eq!(a.ssh.jump, None, "proxy_jump = \"none\" beats ProxyJump");
    let b = host(&inv, "b");
    assert_eq!((b.ssh.user.as_str(), b.ssh.port), ("root", 2300));
    assert!(b.ssh.jump.is_some());
}

#[test]
fn ssh_config_errors_point_at_the_line() {
    let error = parse_with(H1, Some("Host a\n  User x\n\n  Port notaport\n")).unwrap_err();
    assert_eq!(
        error.location(),
        Some((PathBuf::from("/home/me/.ssh/config"), 4, 3))
    );
    assert!(
        error.to_string().contains("cannot parse ssh config"),
        "{error}"
    );
}

#[test]
fn ssh_config_proxy_jump_lists_chain_first_hop_first() {
    let config = "Host 10.9.*\n  ProxyJump hop1.example,hop2.example:2200\nHost hop1.example\n  User hopper\n";
    let inv = ok_ssh(
        "[[hosts]]\nname = \"a\"\naddress = \"10.9.0.1\"\nuser = \"root\"\n",
        config,
    );
    let a = host(&inv, "a");
    let direct = a.ssh.jump.as_deref().unwrap();
    assert_eq!(
        (direct.address.as_str(), direct.port, direct.user.as_str()),
        ("hop2.example", 2200, "root")
    );
    let first = direct.jump.as_deref().unwrap();
    assert_eq!(
        (first.address.as_str(), first.user.as_str()),
        ("hop1.example", "hopper")
    );
    assert_eq!(first.jump, None);
}

#[test]
fn ssh_config_proxy_jump_loops_are_errors() {
    let config = "Host 10.9.*\n  ProxyJump j1.example\nHost j1.example\n  ProxyJump j2.example\nHost j2.example\n  ProxyJump j1.example\n";
    let error = parse_with(H1.replace("10.0.0.1", "10.9.0.1").as_str(), Some(config)).unwrap_err();
    assert!(
        matches!(&error, InventoryError::ProxyJumpLoop { cycle, .. } if cycle == &["a", "j1.example", "j2.example", "j1.example"]),
        "{error}"
    );
    assert_eq!(error.location(), Some((PathBuf::from(PATH), 3, 11)));
}

const JUMPS: &str = r#"
[defaults]
user = "root"
identity_file = "~/.ssh/deploy"
connect_timeout = "7s"
proxy_jump = "bastion"

[[hosts]]
name = "bastion"
address = "203.0.113.5"
user = "jumper"
port = 2022

[[hosts]]
name = "inner"
address = "10.0.0.9"
proxy_jump = "bastion"
private_address = "10.0.0.9"

[[hosts]]
name = "deep"
address = "10.0.1.1"
proxy_jump = "inner"

[[hosts]]
name = "outside"
address = "10.0.2.1"
proxy_jump = "ops@gw.example.net:2200"

[[hosts]]
name = "v6"
address = "10.0.3.1"
proxy_jump = "[2001:db8::1]:22"

[[hosts]]
name = "direct"
address = "10.0.4.1"
proxy_jump = "none"

[[hosts]]
name = "inherits"
address = "10.0.5.1"
"#;

#[test]
fn proxy_jump_by_name_gives_the_full_target_of_that_host() {
    let inv = ok(JUMPS);
    let bastion = host(&inv, "bastion");
    assert_eq!(
        bastion.ssh.jump, None,
        "inherited jump to itself is ignored"
    );
    let inner = host(&inv, "inner");
    assert_eq!(inner.ssh.jump.as_deref(), Some(&bastion.ssh));
    assert_eq!(
        host(&inv, "inherits").ssh.jump.as_deref(),
        Some(&bastion.ssh)
    );
    assert_eq!(host(&inv, "direct").ssh.jump, None);
    // Chains: deep -> inner -> bastion.
    let deep = host(&inv, "deep");
    let hop1 = deep.ssh.jump.as_deref().unwrap();
    assert_eq!(hop1.label, "inner");
    let hop2 = hop1.jump.as_deref().unwrap();
    assert_eq!(
        (hop2.label.as_str(), hop2.user.as_str(), hop2.port),
        ("bastion", "jumper", 2022)
    );
    assert_eq!(hop2.jump, None);
}

#[test]
fn proxy_jump_by_spec_inherits_the_referring_hosts_settings() {
    let inv = ok(JUMPS);
    let outside = host(&inv, "outside");
    let jump = outside.ssh.jump.as_deref().unwrap();
    assert_eq!(jump.label, "ops@gw.example.net:2200");
    assert_eq!(
        (jump.address.as_str(), jump.port, jump.user.as_str()),
        ("gw.example.net", 2200, "ops")
    );
    assert_eq!(jump.identity_files, outside.ssh.identity_files);
    assert_eq!(
        jump.identity_files,
        vec![PathBuf::from("/home/me/.ssh/deploy")]
    );
    assert_eq!(jump.connect_timeout, Duration::from_secs(7));
    assert_eq!(jump.known_hosts, outside.ssh.known_hosts);
    assert_eq!(jump.jump, None);
    let v6 = host(&inv, "v6").ssh.jump.as_deref().unwrap();
    assert_eq!(
        (v6.address.as_str(), v6.port, v6.user.as_str()),
        ("2001:db8::1", 22, "root")
    );
}

#[test]
fn jump_specs_parse() {
    let spec = |user: Option<&str>, host: &str, port: Option<u16>| JumpSpec {
        user: user.map(str::to_string),
        host: host.to_string(),
        port,
    };
    assert_eq!(parse_jump_spec("h"), Ok(spec(None, "h", None)));
    assert_eq!(parse_jump_spec("h:2"), Ok(spec(None, "h", Some(2))));
    assert_eq!(parse_jump_spec("u@h"), Ok(spec(Some("u"), "h", None)));
    assert_eq!(
        parse_jump_spec("ssh://u@h:9"),
        Ok(spec(Some("u"), "h", Some(9)))
    );
    assert_eq!(parse_jump_spec("[::1]:7"), Ok(spec(None, "::1", Some(7))));
    assert_eq!(parse_jump_spec("fe80::1"), Ok(spec(None, "fe80::1", None)));
    for bad in [
        "", "@h", "h:", "h:0", "h:99999", "u@", "[::1", "[::1]x", "a b",
    ] {
        assert!(parse_jump_spec(bad).is_err(), "{bad:?} should not parse");
    }
}

#[test]
fn longer_proxy_jump_loops_name_the_whole_cycle() {
    let source = "[[hosts]]\nname = \"x\"\naddress = \"1\"\nproxy_jump = \"a\"\n\n[[hosts]]\nname = \"a\"\naddress = \"2\"\nproxy_jump = \"b\"\n\n[[hosts]]\nname = \"b\"\naddress = \"3\"\nproxy_jump = \"c\"\n\n[[hosts]]\nname = \"c\"\naddress = \"4\"\nproxy_jump = \"a\"\n";
    let error = err(source);
    assert!(
        matches!(&error, InventoryError::ProxyJumpLoop { cycle, .. } if cycle == &["a", "b", "c", "a"]),
        "{error}"
    );
    assert_eq!(error.location(), Some((PathBuf::from(PATH), 9, 14)));
}

#[test]
fn bare_proxy_jump_is_accepted_when_ssh_config_defines_the_alias() {
    let source = format!("{H1}proxy_jump = \"gw\"\n");
    assert!(parse_with(&source, None).is_err());
    let inv = ok_ssh(&source, "Host gw\n  HostName 198.51.100.7\n  User gwuser\n");
    let jump = host(&inv, "a").ssh.jump.as_deref().unwrap();
    assert_eq!(
        (
            jump.label.as_str(),
            jump.address.as_str(),
            jump.user.as_str()
        ),
        ("gw", "198.51.100.7", "gwuser")
    );
}

#[test]
fn local_hosts_need_no_address() {
    let inv = ok("[[hosts]]\nname = \"local\"\nconnection = \"local\"\nroles = [\"nats\", \"storage\", \"nats\"]\n");
    let local = host(&inv, "local");
    assert_eq!(local.connection, Connection::Local);
    assert_eq!(local.ssh.address, "localhost");
    assert_eq!(local.private_address, "127.0.0.1");
    assert_eq!(local.roles, vec![Role::NATS, Role::STORAGE]);
}

#[test]
fn components_streams_and_thresholds_are_kept_raw() {
    let inv = ok(&format!(
        "{H1}\n[components.nats]\nsource = \"os\"\n\n[streams]\nmax_msgs = 1\n\n[thresholds]\nmin_disk_gib = 2.5\n"
    ));
    assert_eq!(
        inv.components["nats"]["source"],
        toml::Value::String("os".into())
    );
    assert_eq!(inv.extra["streams"]["max_msgs"], toml::Value::Integer(1));
    assert!(inv.extra.contains_key("thresholds"));
}

#[test]
fn roles_parse_print_and_serialise_lowercase() {
    for role in Role::ALL {
        assert_eq!(role.to_string().parse::<Role>(), Ok(role));
        assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{role}\""));
    }
    assert_eq!(
        "Nats".parse::<Role>().unwrap_err().to_string(),
        "unknown role \"Nats\": use one of nats, clickhouse, storage, collector"
    );
}

const CLUSTER: &str = r#"
[[hosts]]
name = "mp-nats-1"
address = "1"
roles = ["nats", "clickhouse"]
[[hosts]]
name = "mp-nats-2"
address = "2"
roles = ["nats"]
[[hosts]]
name = "mp-storage-1"
address = "3"
roles = ["storage"]
[[hosts]]
name = "mp-collector-1"
address = "4"
roles = ["collector"]
[[hosts]]
name = "mp-collector-2"
address = "5"
roles = ["collector"]
[[hosts]]
name = "h1"
address = "6"
[groups.collectors]
hosts = ["mp-collector-2", "mp-collector-1"]
[groups.stateful]
hosts = ["mp-storage-1", "mp-nats-2", "mp-nats-1"]
"#;

fn names(inv: &Inventory, limit: &str) -> Vec<String> {
    match inv.select(Some(limit)) {
        Ok(hosts) => hosts.into_iter().map(|h| h.name.clone()).collect(),
        Err(error) => panic!("--limit {limit:?}: {error}"),
    }
}

#[test]
fn limit_selects_by_name_group_glob_and_role_in_inventory_order() {
    let inv = ok(CLUSTER);
    assert_eq!(inv.select(None).unwrap().len(), 6);
    assert_eq!(names(&inv, "mp-nats-2"), ["mp-nats-2"]);
    assert_eq!(
        names(&inv, "collectors"),
        ["mp-collector-1", "mp-collector-2"]
    );
    assert_eq!(names(&inv, "mp-nats-*"), ["mp-nats-1", "mp-nats-2"]);
    assert_eq!(names(&inv, "h?"), ["h1"]);
    assert_eq!(names(&inv, "mp-collector-[2]"), ["mp-collector-2"]);
    assert_eq!(names(&inv, "role:clickhouse"), ["mp-nats-1"]);
    assert_eq!(names(&inv, "all"), names(&inv, "*"));
    // Comma lists are unions, in inventory order, without duplicates.
    assert_eq!(
        names(&inv, " mp-storage-1 , collectors,mp-collector-1,mp-nats-1,"),
        [
            "mp-nats-1",
            "mp-storage-1",
            "mp-collector-1",
            "mp-collector-2"
        ]
    );
}

#[test]
fn limit_intersects_then_excludes() {
    let inv = ok(CLUSTER);
    assert_eq!(
        names(&inv, "stateful,&role:nats"),
        ["mp-nats-1", "mp-nats-2"]
    );
    assert_eq!(names(&inv, "stateful,&role:nats,!mp-nats-1"), ["mp-nats-2"]);
    // Order of terms does not matter: union, then &, then !.
    assert_eq!(names(&inv, "!mp-nats-1,&role:nats,stateful"), ["mp-nats-2"]);
    // Only exclusions: start from all hosts.
    assert_eq!(
        names(&inv, "!collectors,!h1"),
        ["mp-nats-1", "mp-nats-2", "mp-storage-1"]
    );
    assert_eq!(
        names(&inv, "&mp-*,!role:nats,!role:collector"),
        ["mp-storage-1"]
    );
}

#[test]
fn limit_terms_that_match_nothing_are_errors() {
    let inv = ok(CLUSTER);
    let error = inv.select(Some("mp-nats-1,mp-natz-2")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "--limit term \"mp-natz-2\" matches no host or group: use one of mp-nats-1, mp-nats-2, mp-storage-1, mp-collector-1, mp-collector-2, h1, collectors, stateful"
    );
    assert!(matches!(error, InventoryError::LimitNoMatch { ref term, .. } if term == "mp-natz-2"));
    assert!(matches!(
        inv.select(Some("!nope")),
        Err(InventoryError::LimitNoMatch { .. })
    ));
    assert!(matches!(
        inv.select(Some("zz-*")),
        Err(InventoryError::LimitNoMatch { .. })
    ));
    let error = inv.select(Some("role:natz")).unwrap_err();
    assert!(
        error.to_string().contains("use one of nats, clickhouse"),
        "{error}"
    );
    let only_h1 = ok(H1);
    assert!(only_h1
        .select(Some("role:nats"))
        .unwrap_err()
        .to_string()
        .contains("no host has role nats"));
    assert!(matches!(
        inv.select(Some("[z")),
        Err(InventoryError::LimitInvalid { .. })
    ));
    assert!(matches!(
        inv.select(Some(" , ")),
        Err(InventoryError::LimitInvalid { .. })
    ));
    assert!(matches!(
        inv.select(Some("!")),
        Err(InventoryError::LimitInvalid { .. })
    ));
    assert!(matches!(
        inv.select(Some("h1,!h1")),
        Err(InventoryError::LimitEmpty { .. })
    ));
}

#[test]
fn hosts_with_role_keeps_inventory_order() {
    let inv = ok(CLUSTER);
    let nats: Vec<&str> = inv
        .hosts_with_role(Role::NATS)
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    assert_eq!(nats, ["mp-nats-1", "mp-nats-2"]);
    assert!(inv.hosts_with_role(Role::CLICKHOUSE).len() == 1);
}

fn shipped(name: &str) -> PathBuf {
    // file!() is relative to the package root (or absolute): go up from src/inventory/tests.rs.
    let file = Path::new(file!());
    let this = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let root = this
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    root.join("inventory").join(name)
}

#[test]
fn shipped_inventories_load() {
    let single = load_with_ssh_config(&shipped("single-host.toml"), None).unwrap();
    assert_eq!(single.hosts.len(), 1);
    assert_eq!(single.hosts[0].name, "mp-1");
    assert_eq!(single.hosts[0].roles, Role::ALL);
    assert_eq!(single.components["nats"]["source"].as_str(), Some("os"));

    let live = load_with_ssh_config(&shipped("live-data.toml"), None).unwrap();
    let source = &live.hosts[0].collector.source;
    assert_eq!(source.kind, crate::pipeline::config::SourceKind::Exchanges);
    assert_eq!(source.symbols, ["BTC-USDT", "ETH-USDT"]);

    let multi = load_with_ssh_config(&shipped("multi-node.toml"), None).unwrap();
    assert_eq!(multi.hosts_with_role(Role::NATS).len(), 3);
    assert_eq!(multi.hosts_with_role(Role::CLICKHOUSE).len(), 1);
    assert_eq!(multi.hosts_with_role(Role::STORAGE).len(), 1);
    assert_eq!(
        multi.groups["collectors"].hosts,
        ["mp-collector-1", "mp-collector-2"]
    );
    assert!(multi
        .hosts_with_role(Role::COLLECTOR)
        .iter()
        .all(|h| h.groups == ["collectors"]));
    assert!(multi
        .hosts
        .iter()
        .all(|h| h.private_address.starts_with("10.0.0.")));
    assert!(multi
        .hosts
        .iter()
        .all(|h| h.ssh.address.starts_with("203.0.113.")));

    let local = load_with_ssh_config(&shipped("local.toml"), None).unwrap();
    assert_eq!(local.hosts[0].name, "local");
    assert_eq!(local.hosts[0].connection, Connection::Local);
    assert_eq!(local.hosts[0].roles, Role::ALL);
}

#[test]
fn load_reads_the_ssh_config_file_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inv.toml");
    std::fs::write(&inventory, "[[hosts]]\nname = \"a\"\naddress = \"box\"\n").unwrap();
    let ssh_config = dir.path().join("ssh_config");
    std::fs::write(&ssh_config, "Host box\n  Port 2022\n").unwrap();
    let inv = load_with_ssh_config(&inventory, Some(&ssh_config)).unwrap();
    assert_eq!(inv.hosts[0].ssh.port, 2022);
    // A missing ssh config is fine.
    let inv = load_with_ssh_config(&inventory, Some(&dir.path().join("nope"))).unwrap();
    assert_eq!(inv.hosts[0].ssh.port, 22);
    assert_eq!(
        inv.digest,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            std::fs::read(&inventory).unwrap()
        ))
    );
}

/// No input may panic: every prefix of the shipped inventory, and some byte-level damage.
#[test]
fn no_panics_on_truncated_or_damaged_input() {
    let source = std::fs::read_to_string(shipped("multi-node.toml")).unwrap()
        + "\n[[hosts]]\nname = \"j\"\naddress = \"[::1\"\nproxy_jump = \"mp-nats-1\"\nport = 0\n";
    for (end, _) in source.char_indices() {
        let _ = parse_with(&source[..end], Some(SSH_CONFIG));
    }
    let bytes = source.as_bytes();
    for (i, replacement) in (0..bytes.len())
        .step_by(7)
        .zip([b'"', b'[', b'=', b'\n', b'#', 0xff].iter().cycle())
    {
        let mut damaged = bytes.to_vec();
        damaged[i] = *replacement;
        let damaged = String::from_utf8_lossy(&damaged);
        if let Err(error) = parse_with(&damaged, None) {
            let _ = error.to_string();
        }
    }
    for config in [
        "Host",
        "Host *\n  Port",
        "Include /nonexistent/x\n",
        "Match\n",
        "\u{feff}Host x\n",
    ] {
        let _ = parse_with(H1, Some(config));
    }
}
