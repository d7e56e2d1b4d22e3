//! What `deploy` would refuse is refused at load, with its place: `[components.*]`,
//! `[streams]`, `[thresholds]`, vars, addresses, users, jumps, names, key files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::resolve::Env;
use super::*;

const PATH: &str = "inventory/x.toml";

/// A made-up machine: no file is looked at.
fn env() -> Env {
    Env {
        home: Some(PathBuf::from("/home/me")),
        user: "me".to_string(),
        existing_files: Some(BTreeSet::new()),
    }
}

fn parse_with(source: &str, env: &Env) -> Result<Inventory, InventoryError> {
    parse_in(source, Path::new(PATH), None, env)
}

const H1: &str = "[[hosts]]\nname = \"a\"\naddress = \"10.0.0.1\"\n";
const SUM: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// (inventory after H1, expected message fragment, line, column)
fn refused() -> Vec<(String, &'static str, usize, usize)> {
    let c = |s: &str| format!("{H1}{s}");
    vec![
        // Item 1: what the deploy reads.
        (c("roles = [\"nats\"]\n[components.nats]\nsource = \"npm\"\n"), "unknown source \"npm\"", 6, 10),
        (c("roles = [\"nats\"]\n[components.nats]\nsource = \"release\"\nversion = \"2.10.7\"\n"), "needs the sha256 of nats-server-v2.10.7", 6, 10),
        (c(&format!("roles = [\"nats\"]\n[components.nats]\nsource = \"release\"\nsha256 = {{ \"other.tgz\" = \"{SUM}\" }}\n")), "has no sum for nats-server-v2.10.7-linux-amd64.tar.gz", 7, 10),
        (c("roles = [\"clickhouse\"]\n[components.clickhouse]\nsource = \"release\"\nversion = \"25.10.1\"\n"), "four-part versions: set version = \"25.10.1.N\"", 7, 11),
        (c(&format!("roles = [\"clickhouse\"]\n[components.clickhouse]\nsource = \"release\"\nversion = \"25.10.1.3832\"\nsha256 = \"{SUM}\"\n")), "one sha256 per archive", 8, 10),
        (c("roles = [\"nats\"]\n[components.nats]\nsource = \"push\"\n"), "needs the file to push", 6, 10),
        (c("roles = [\"nats\"]\n[components.nats]\nsource = \"os\"\nversion = \"2\"\n"), "version does not apply to source = \"os\"", 7, 11),
        // NATS TLS: three files that exist, for NATS only.
        (c("roles = [\"nats\"]\n[components.nats]\nsource = \"os\"\ntls = { cert = \"c.pem\", key = \"k.pem\" }\n"), "[components.nats]: tls has no ca", 7, 7),
        (c("roles = [\"nats\"]\n[components.nats]\nsource = \"os\"\ntls = { cert = \"no/such/cert.pem\", key = \"k.pem\", ca = \"ca.pem\" }\n"), "[components.nats]: tls cert: no file inventory/no/such/cert.pem", 7, 16),
        (c("roles = [\"clickhouse\"]\n[components.clickhouse]\nsource = \"os\"\ntls = { cert = \"c.pem\" }\n"), "tls applies to NATS only", 7, 7),
        (c("[components.nats]\nsource = \"release\"\nsha256 = \"abc\"\n"), "64 hex digits", 6, 10),
        (c("[components.nats]\nsource = \"release\"\nversion = 2\n"), "invalid type: integer", 6, 11),
        (c("[components.redis]\nsource = \"os\"\n"), "[components.\"redis\"] is not a component", 4, 13),
        (c("[components.storage]\nsource = \"os\"\n"), "takes no settings", 4, 13),
        (
            c("roles = [\"nats\"]\n[components.nats]\nsource = \"push\"\nartifact = \"\\u001b[31m\"\n"),
            "artifact names no file",
            7,
            12,
        ),
        (c("\n[thresholds]\nmin_memory_gib = -4\n"), "min_memory_gib = -4 is not an amount", 6, 18),
        (c("\n[thresholds]\nmin_disk_gib = nan\n"), "min_disk_gib = nan", 6, 16),
        (c("\n[streams]\nmax_msgs = 0\n"), "max_msgs = 0 is not a limit", 6, 12),
        (c("\n[streams]\nmax_age_secs = 60\n"), "longer than max_age_secs (60)", 6, 16),
        (c("\n[streams]\nmax_age = 60\n"), "unknown key \"max_age\"", 6, 1),
        (c("vars = { deploy_dir = \"relative/dir\" }\n"), "is not absolute", 4, 23),
        // Issue 13: a sane upper bound for the handshake.
        (c("connect_timeout = \"1h\"\n"), "above the 5m mp-remote allows", 4, 19),
        (c("vars = { deploy_dir = \"/\" }\n"), "at the root", 4, 23),
        (c("vars = { deploy_dir = \"/opt/x; rm -rf /\" }\n"), "contains ';'", 4, 23),
        (c("vars = { deploy_dir = 42 }\n"), "integer is not a path", 4, 23),
        (c("vars = { collector_rate = \"fast\" }\n"), "\"fast\" is a string", 4, 27),
        (c("vars = { collector_rate = -1 }\n"), "-1 is not above 0", 4, 27),
        (c("vars = { deploy_dri = \"/opt/mp\" }\n"), "unknown var \"deploy_dri\" in host \"a\": use one of deploy_dir", 4, 10),
        ("[defaults]\nvars = { nats = { port = 1 } }\n".to_string() + H1, "unknown var \"nats\" in [defaults]", 2, 10),
        // Item 2: how hosts are reached.
        ("[[hosts]]\nname = \"a\"\naddress = \"127.0.0.9:2222\"\n".into(), "write address = \"127.0.0.9\" and port = 2222", 3, 11),
        ("[[hosts]]\nname = \"a\"\naddress = \"root@127.0.0.9\"\n".into(), "write the user as user = \"root\"", 3, 11),
        ("[[hosts]]\nname = \"a\"\naddress = \"-oProxyCommand=id\"\n".into(), "which ssh would read as an option", 3, 11),
        ("[[hosts]]\nname = \"a\"\naddress = \"host;id\"\n".into(), "';' is not allowed", 3, 11),
        ("[[hosts]]\nname = \"a\"\naddress = \"ssh://host\"\n".into(), "it is a URL", 3, 11),
        (format!("[[hosts]]\nname = \"a\"\naddress = \"{}\"\n", "a".repeat(100_000)), "it is 100000 characters long", 3, 11),
        ("[[hosts]]\nname = \"a\"\naddress = \"x\\u001b[31m\"\n".into(), "it contains '\\u{1b}'", 3, 11),
        (c("private_address = \"10.0.0.1;id\"\n"), "invalid private_address \"10.0.0.1;id\"", 4, 19),
        (c("user = \"root;id\"\n"), "invalid user \"root;id\" in host \"a\": ';' is not allowed", 4, 8),
        (c("proxy_jump = \"\"\n"), "empty proxy_jump", 4, 14),
        (c("proxy_jump = \"a.lan,b.lan\"\n"), "lists several jumps", 4, 14),
        (c("proxy_jump = \"me;id@gw.lan\"\n"), "its user ';' is not allowed", 4, 14),
        (c("\n[groups.all]\nhosts = [\"a\"]\n"), "group name \"all\" is reserved", 5, 9),
        // Item 3: names fit a file name and DNS.
        (format!("[[hosts]]\nname = \"{}\"\naddress = \"10.0.0.1\"\n", "h".repeat(65_536)), "is too long", 2, 8),
        (format!("[[hosts]]\nname = \"{}\"\naddress = \"10.0.0.1\"\n", "h".repeat(64)), "at most 63 characters between dots", 2, 8),
        (format!("[[hosts]]\nname = \"{}\"\naddress = \"10.0.0.1\"\n", vec!["h".repeat(63); 4].join(".")), "251 in all", 2, 8),
    ]
}

#[test]
fn what_deploy_would_refuse_is_refused_at_load_with_its_place() {
    for (source, fragment, line, column) in refused() {
        let error = match parse_with(&source, &env()) {
            Ok(_) => panic!("accepted:\n{}", &source[..source.len().min(300)]),
            Err(error) => error,
        };
        let text = error.to_string();
        assert!(
            text.contains(fragment),
            "{fragment:?} not in:\n{}",
            &text[..text.len().min(2_000)]
        );
        assert_eq!(
            error.location(),
            Some((PathBuf::from(PATH), line, column)),
            "{}",
            &text[..text.len().min(2_000)]
        );
        assert!(
            !text.contains('\u{1b}'),
            "a raw control character: {text:?}"
        );
        assert!(
            text.len() < 2_000,
            "a huge value is cut: {} bytes",
            text.len()
        );
    }
}

#[test]
fn sound_settings_pass() {
    let source = format!(
        "{H1}roles = [\"nats\", \"clickhouse\"]\nvars = {{ deploy_dir = \"/srv/mp\", collector_rate = 10 }}\n\n[components.nats]\nsource = \"release\"\nversion = \"2.10.7\"\nsha256 = {{ \"nats-server-v2.10.7-linux-arm64.tar.gz\" = \"{SUM}\" }}\n\n[components.clickhouse]\nsource = \"release\"\nversion = \"25.10.1.3832\"\nsha256 = {{ \"clickhouse-common-static-25.10.1.3832-amd64.tgz\" = \"{SUM}\", \"clickhouse-server-25.10.1.3832-amd64.tgz\" = \"{SUM}\" }}\n\n[streams]\nmax_age_secs = 3600\n\n[thresholds]\nmin_memory_gib = 0.5\nmin_disk_gib = 0\n"
    );
    let inventory = parse_with(&source, &env()).unwrap_or_else(|e| panic!("{e}"));
    assert!(inventory.warnings.is_empty(), "{:?}", inventory.warnings);
    // A release source that no host installs needs no sums yet.
    parse_with(
        &format!("{H1}roles = [\"storage\"]\n[components.nats]\nsource = \"release\"\n"),
        &env(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_role_without_its_component_table_is_a_warning() {
    let inventory = parse_with(
        &format!("{H1}roles = [\"storage\", \"clickhouse\"]\n"),
        &env(),
    )
    .unwrap();
    assert_eq!(inventory.warnings.len(), 1, "{:?}", inventory.warnings);
    assert!(
        inventory.warnings[0]
            .starts_with("inventory/x.toml:4:21: role clickhouse without [components.clickhouse]"),
        "{:?}",
        inventory.warnings
    );
}

#[test]
fn a_host_named_all_is_a_warning() {
    let inventory = parse_with(
        "[[hosts]]\nname = \"all\"\naddress = \"10.0.0.1\"\n",
        &env(),
    )
    .unwrap();
    assert_eq!(inventory.warnings.len(), 1);
    assert!(
        inventory.warnings[0].starts_with("inventory/x.toml:2:8: host name \"all\" shadows"),
        "{:?}",
        inventory.warnings
    );
}

#[test]
fn key_and_known_hosts_files_are_looked_at() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let key = file("id", "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n");
    let public = file("id.pub", "ssh-ed25519 AAAA me@host\n");
    let notes = file("notes", "hello\n");
    let here = dir.path().display().to_string();
    let real = Env {
        existing_files: None,
        ..env()
    };
    let with = |line: &str| parse_with(&format!("{H1}{line}\n"), &real);
    assert!(with(&format!("identity_file = \"{key}\"")).is_ok());
    for (line, says) in [
        (format!("identity_file = \"{public}\""), "is a public key"),
        (
            format!("identity_file = \"{notes}\""),
            "is not a private key",
        ),
        (
            format!("identity_file = [\"{key}\", \"{here}\"]"),
            "is a directory",
        ),
        (format!("known_hosts = \"{here}\""), "is a directory"),
    ] {
        let error = with(&line).unwrap_err();
        assert!(error.to_string().contains(says), "{line}: {error}");
        assert_eq!(error.location().map(|l| l.1), Some(4), "{error}");
    }
    let missing = with(&format!("identity_file = \"{here}/gone\"")).unwrap();
    assert_eq!(missing.warnings.len(), 1);
    assert!(
        missing.warnings[0].starts_with("inventory/x.toml:4:17: identity_file")
            && missing.warnings[0].contains("does not exist"),
        "{:?}",
        missing.warnings
    );
}
