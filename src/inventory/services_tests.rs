//! `[services.*]`: placed, ordered, and every wrong value refused with its position.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::super::resolve::Env;
use super::super::{parse_in, Inventory, InventoryError};
use super::*;

const HOSTS: &str =
    "[[hosts]]\nname = \"a\"\naddress = \"10.0.0.1\"\nroles = [\"nats\", \"collector\"]\n\n\
[[hosts]]\nname = \"b\"\naddress = \"10.0.0.2\"\nroles = [\"storage\"]\n";

/// A directory holding the inventory, `services/echo/app.py`, `services/echo/requirements.txt`,
/// `services/tool/run` and `secrets/key`.
fn dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let echo = dir.path().join("services/echo");
    std::fs::create_dir_all(echo.join("wheels")).unwrap();
    std::fs::write(echo.join("app.py"), "print()\n").unwrap();
    std::fs::write(echo.join("requirements.txt"), "nats-py\n").unwrap();
    std::fs::create_dir_all(dir.path().join("services/tool")).unwrap();
    std::fs::write(dir.path().join("services/tool/run"), "#!/bin/sh\n").unwrap();
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/key"), "s3cret\n").unwrap();
    dir
}

fn parse(dir: &tempfile::TempDir, services: &str) -> Result<Inventory, InventoryError> {
    let env = Env {
        home: Some(PathBuf::from("/home/me")),
        user: "me".into(),
        existing_files: Some(BTreeSet::new()),
    };
    let text = format!("{HOSTS}\n{services}");
    parse_in(&text, &dir.path().join("inv.toml"), None, &env)
}

/// The error for `services`, as `line:col: message` (lines counted from the services text).
fn refused(services: &str) -> String {
    let dir = dir();
    match parse(&dir, services) {
        Ok(_) => panic!("accepted:\n{services}"),
        Err(e) => {
            let (_, line, col) = e.location().expect("a position");
            let summary = e.summary();
            // Drop "/tmp/…/inv.toml:L:C: ": the line is given relative to `services`.
            let message = summary.split_once(": ").map_or(&*summary, |(_, m)| m);
            format!("{}:{col}: {message}", line - HOSTS.lines().count() - 1)
        }
    }
}

const ECHO: &str = "[services.echo]\nkind = \"python\"\npath = \"services/echo\"\ncommand = [\"python\", \"app.py\"]\nroles = [\"collector\"]\n";

#[test]
fn a_full_service_is_placed_and_checked() {
    let dir = dir();
    let inv = parse(
        &dir,
        &format!(
            "{ECHO}hosts = [\"b\"]\nenv = {{ NATS_URL = \"nats://127.0.0.1:4222\" }}\n\
             env_files = {{ API_KEY = \"secrets/key\" }}\nports = [8090]\n\
             health = {{ http = \"http://127.0.0.1:8090/health\", json = {{ status = \"ok\" }}, timeout = \"30s\" }}\n\
             after = [\"nats\"]\nwheelhouse = \"wheels\"\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let s = &inv.services[0];
    assert_eq!(s.name, "echo");
    assert_eq!(s.kind, ServiceKind::Python);
    assert_eq!(s.hosts, ["a", "b"]);
    assert_eq!(s.user, "mp-echo");
    assert_eq!(s.path, dir.path().join("services/echo"));
    assert_eq!(s.env["NATS_URL"], "nats://127.0.0.1:4222");
    assert_eq!(s.env_files["API_KEY"], dir.path().join("secrets/key"));
    assert_eq!(s.ports, [8090]);
    assert_eq!(s.requirements.as_deref(), Some("requirements.txt"));
    assert_eq!(s.wheelhouse.as_deref(), Some("wheels"));
    assert_eq!(
        s.health,
        Some(ServiceHealth {
            probe: ServiceProbe::Http {
                url: "http://127.0.0.1:8090/health".into(),
                json: Some(("status".into(), "ok".into())),
            },
            timeout: Duration::from_secs(30),
        })
    );
}

#[test]
fn services_start_after_what_they_name() {
    let dir = dir();
    let inv = parse(
        &dir,
        "[services.aa]\nkind = \"binary\"\npath = \"services/tool\"\ncommand = [\"run\"]\nhosts = [\"a\"]\nafter = [\"zz\"]\nuser = \"tool\"\nhealth = { tcp = 9999 }\n\n\
             [services.zz]\nkind = \"binary\"\npath = \"services/tool\"\ncommand = [\"run\"]\nhosts = [\"a\"]\n",
    )
    .unwrap();
    let names: Vec<&str> = inv.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["zz", "aa"]);
    assert_eq!(inv.services[1].user, "tool");
    assert_eq!(inv.services[1].requirements, None);
}

#[test]
fn an_unknown_kind_is_refused() {
    assert_eq!(
        refused(&ECHO.replace("\"python\"", "\"java\"")),
        "2:8: unknown kind \"java\" in [services.echo]: use \"python\" (a Python program with its requirements) or \"binary\" (an executable)"
    );
}

#[test]
fn a_missing_directory_is_refused() {
    let error = refused(&ECHO.replace("services/echo", "services/nope"));
    assert!(
        error.starts_with("3:8: [services.echo] path \"services/nope\": no directory"),
        "{error}"
    );
}

#[test]
fn no_command_is_refused() {
    assert_eq!(
        refused(&ECHO.replace("command = [\"python\", \"app.py\"]\n", "")),
        "1:11: [services.echo] has no command: add command = [\"python\", \"app.py\"]"
    );
    assert!(
        refused(&ECHO.replace("[\"python\", \"app.py\"]", "[]")).starts_with("4:11: empty command")
    );
}

#[test]
fn a_binary_missing_from_its_directory_is_refused() {
    let error = refused(
        "[services.t]\nkind = \"binary\"\npath = \"services/tool\"\ncommand = [\"bin/nope\"]\nhosts = [\"a\"]\n",
    );
    assert!(
        error.starts_with("4:12: [services.t]: \"bin/nope\" is not a file"),
        "{error}"
    );
}

#[test]
fn a_port_of_a_builtin_component_on_the_same_host_is_refused() {
    assert_eq!(
        refused(&format!("{ECHO}ports = [8090, 4222]\n")),
        "6:16: port 4222 of [services.echo] is nats's on host a: pick another port: nats uses 4222, 8222, 6222"
    );
    // The storage's port is free on a host without storage.
    let dir = dir();
    parse(&dir, &format!("{ECHO}ports = [8085]\n")).unwrap();
}

#[test]
fn a_port_of_another_service_on_the_same_host_is_refused() {
    let other = ECHO.replace("echo]", "other]");
    assert_eq!(
        refused(&format!("{ECHO}ports = [8090]\n\n{other}ports = [8090]\n")),
        "13:10: port 8090 of [services.other] is also [services.echo]'s on host a: give each service on a host its own ports"
    );
}

#[test]
fn an_unknown_after_is_refused() {
    assert_eq!(
        refused(&format!("{ECHO}after = [\"natz\"]\n")),
        "6:10: unknown \"natz\" in after of service \"echo\": use one of nats, clickhouse, storage, collector"
    );
}

#[test]
fn an_after_cycle_is_refused() {
    let b = ECHO.replace("echo]", "b]");
    let c = ECHO.replace("echo]", "c]");
    let error = refused(&format!(
        "{ECHO}after = [\"b\"]\n\n{b}after = [\"c\"]\n\n{c}after = [\"echo\", \"nats\"]\n"
    ));
    // Tables are checked by name: b -> c -> echo -> b.
    assert!(
        error.contains("after cycle: b -> c -> echo -> b: break the cycle"),
        "{error}"
    );
}

#[test]
fn a_service_placed_on_no_host_is_refused() {
    assert_eq!(
        refused(&ECHO.replace("[\"collector\"]", "[\"clickhouse\"]")),
        "5:9: [services.echo] is placed on no host: no host has these roles: give a host one of its roles, or name hosts = [...]"
    );
    assert!(refused(&ECHO.replace("roles = [\"collector\"]\n", ""))
        .starts_with("1:11: [services.echo] says nowhere to run"));
    assert!(refused(&format!("{ECHO}hosts = [\"zz\"]\n")).starts_with("6:10: unknown host \"zz\""));
}

#[test]
fn a_bad_health_is_refused() {
    assert!(
        refused(&format!("{ECHO}health = {{ http = \"localhost:1\" }}\n"))
            .starts_with("6:19: invalid health URL")
    );
    assert!(refused(&format!("{ECHO}health = {{ tcp = 0 }}\n"))
        .starts_with("6:18: invalid health tcp port"));
    assert!(refused(&format!(
        "{ECHO}health = {{ tcp = 1, http = \"http://x\" }}\n"
    ))
    .starts_with("6:10: health of [services.echo] needs exactly one of http or tcp"));
    assert!(refused(&format!(
        "{ECHO}health = {{ http = \"http://x/\", json = {{ a = \"1\", b = \"2\" }} }}\n"
    ))
    .contains("must name one field"));
    assert!(refused(&format!(
        "{ECHO}health = {{ http = \"http://x/\", every = 1 }}\n"
    ))
    .contains("unknown key \"every\""));
}

#[test]
fn secrets_requirements_and_wheelhouses_must_exist() {
    assert!(
        refused(&format!("{ECHO}env_files = {{ K = \"secrets/nope\" }}\n"))
            .starts_with("6:19: env_files K of [services.echo]: no file")
    );
    assert!(refused(&format!("{ECHO}requirements = \"req/nope.txt\"\n"))
        .starts_with("6:16: [services.echo]: no requirements file"));
    assert!(refused(&format!("{ECHO}wheelhouse = \"nope\"\n"))
        .starts_with("6:14: [services.echo]: no wheelhouse directory"));
    assert!(
        refused(&format!("{ECHO}env = {{ \"1X\" = \"v\" }}\n")).contains("invalid variable name")
    );
}

#[test]
fn a_service_name_must_make_an_account_name() {
    assert!(
        refused(&ECHO.replace("echo]", "Echo]")).starts_with("1:11: invalid service name \"Echo\"")
    );
    assert!(refused(&ECHO.replace("echo]", "\"e.cho\"]")).contains("invalid service name"));
}

#[test]
fn nats_user_picks_the_fleet_login_a_service_gets() {
    let dir = dir();
    let inv = parse(&dir, ECHO).unwrap();
    assert_eq!(inv.services[0].nats_user, NatsUser::Services);
    let inv = parse(&dir, &format!("{ECHO}nats_user = \"collector\"\n")).unwrap();
    assert_eq!(inv.services[0].nats_user, NatsUser::Collector);
    let e = refused(&format!("{ECHO}nats_user = \"mp-admin\"\n"));
    assert!(
        e.starts_with(
            "6:13: [services.echo]: nats_user = \"mp-admin\" is not one of the fleet's NATS users"
        ),
        "{e}"
    );
}
