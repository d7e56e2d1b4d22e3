//! User services in a host's plan: the steps in order, each file notifying the service, the
//! unit and env file as systemd reads them.

use super::*;

fn inventory(services: &str) -> (tempfile::TempDir, crate::inventory::Inventory) {
    let dir = tempfile::tempdir().unwrap();
    let echo = dir.path().join("services/echo");
    std::fs::create_dir_all(echo.join("wheels")).unwrap();
    std::fs::write(echo.join("app.py"), "print()\n").unwrap();
    std::fs::write(echo.join("requirements.txt"), "nats-py\n").unwrap();
    std::fs::write(dir.path().join("key"), "s3cret\n").unwrap();
    let text = format!(
        "[[hosts]]\nname = \"a\"\nconnection = \"local\"\nroles = [\"nats\", \"collector\"]\n\n\
         [[hosts]]\nname = \"b\"\nconnection = \"local\"\nroles = [\"storage\"]\n\n{services}"
    );
    let path = dir.path().join("inv.toml");
    let inv = crate::inventory::parse(&text, &path, None).unwrap_or_else(|e| panic!("{e}"));
    (dir, inv)
}

const ECHO: &str = "[services.echo]\nkind = \"python\"\npath = \"services/echo\"\n\
command = [\"python\", \"app.py\", \"--greeting\", \"hello world\"]\nroles = [\"collector\"]\n\
env = { NATS_URL = \"nats://127.0.0.1:4222\" }\nenv_files = { API_KEY = \"key\" }\nports = [8090]\n\
health = { http = \"http://127.0.0.1:8090/health\", json = { status = \"ok\" } }\nafter = [\"nats\"]\n\
wheelhouse = \"wheels\"\n";

fn prepared() -> BTreeMap<String, Prepared> {
    BTreeMap::from([(
        "echo".to_string(),
        Prepared {
            sha256: "ab".repeat(32),
            archive: "/var/lib/mp-remote/services/echo-abababababababab.tar".into(),
            venv_key: Some("cd".repeat(32)),
            secrets: BTreeMap::from([("API_KEY".to_string(), "s3\"cret".to_string())]),
        },
    )])
}

fn facts(systemd: bool) -> Facts {
    crate::facts::parse(if systemd {
        include_str!("../../tests/fixtures/facts/debian12_vm.txt")
    } else {
        include_str!("../../tests/fixtures/facts/debian12.txt")
    })
    .unwrap()
}

#[test]
fn a_python_service_gets_its_steps_in_order_each_notifying_the_service() {
    let (_dir, inv) = inventory(ECHO);
    let host = inv.host("a").unwrap();
    let plan = services_plan(host, &facts(true), &inv.services, &prepared(), "r", false)
        .unwrap()
        .expect("a plan");
    let steps = &plan.layers[0].steps;
    let ids: Vec<&str> = steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "start.svc.python",
            "start.svc.echo.user",
            "start.svc.echo.port-8090",
            "start.svc.echo.release",
            "start.svc.echo.venv",
            "start.svc.echo.env",
            "start.svc.echo.unit",
            "start.svc.echo.service",
            "start.svc.echo.health",
        ]
    );
    for step in &steps[3..7] {
        assert_eq!(step.notify, ["start.svc.echo.service"], "{}", step.id);
    }
    let Action::Venv {
        requirements,
        find_links,
        ..
    } = &steps[4].action
    else {
        panic!("{:?}", steps[4])
    };
    assert_eq!(
        requirements.as_deref(),
        Some("/opt/mp-services/echo/releases/abababababababab/requirements.txt")
    );
    assert_eq!(
        find_links.as_deref(),
        Some("/opt/mp-services/echo/releases/abababababababab/wheels")
    );
    let Action::File {
        content,
        mode,
        owner,
        ..
    } = &steps[5].action
    else {
        panic!()
    };
    assert_eq!((*mode, owner), (0o600, &None));
    assert!(content.ends_with("API_KEY=\"s3\\\"cret\"\n"), "{content}");
    let Action::WaitHttp {
        log_unit,
        expect_json,
        ..
    } = &steps[8].action
    else {
        panic!()
    };
    assert_eq!(log_unit.as_deref(), Some("mp-svc-echo"));
    assert_eq!(expect_json.as_ref().unwrap().equals, "ok");
    // Host b runs no service.
    let b = inv.host("b").unwrap();
    assert_eq!(
        services_plan(b, &facts(true), &inv.services, &prepared(), "r", false).unwrap(),
        None
    );
}

#[test]
fn the_unit_runs_the_venvs_python_in_the_release_after_what_it_needs() {
    let (_dir, inv) = inventory(ECHO);
    let unit = unit_file(&inv.services[0], &inv.services);
    for line in [
        "After=network-online.target nats-server.service\n",
        "User=mp-echo\nGroup=mp-echo\nWorkingDirectory=/opt/mp-services/echo/current\n",
        "Environment=PATH=/opt/mp-services/echo/venv/bin:",
        "Environment=NATS_URL=nats://127.0.0.1:4222\n",
        "EnvironmentFile=/etc/mp-services/echo.env\n",
        "ExecStart=/opt/mp-services/echo/venv/bin/python app.py --greeting \"hello world\"\n",
        "Restart=always\n",
    ] {
        assert!(unit.contains(line), "{line}\n{unit}");
    }
    assert!(!unit.contains("s3"), "no secret in the unit");
}

#[test]
fn hosts_without_systemd_are_refused_for_now() {
    let (_dir, inv) = inventory(ECHO);
    let host = inv.host("a").unwrap();
    let error =
        services_plan(host, &facts(false), &inv.services, &prepared(), "r", false).unwrap_err();
    assert!(error.to_string().contains("needs systemd"), "{error}");
}

#[test]
fn a_binary_runs_from_its_release_and_a_tcp_probe_waits_for_the_port() {
    let (dir, _) = inventory("");
    std::fs::create_dir_all(dir.path().join("services/tool")).unwrap();
    std::fs::write(dir.path().join("services/tool/run"), "#!/bin/sh\n").unwrap();
    let text = "[[hosts]]\nname = \"a\"\nconnection = \"local\"\nroles = [\"nats\"]\n\n\
         [services.tool]\nkind = \"binary\"\npath = \"services/tool\"\ncommand = [\"run\", \"-v\"]\nhosts = [\"a\"]\nhealth = { tcp = 7000 }\n";
    let inv = crate::inventory::parse(text, &dir.path().join("inv.toml"), None).unwrap();
    let s = &inv.services[0];
    assert_eq!(exec_start(s), ["/opt/mp-services/tool/current/run", "-v"]);
    let mut ready = prepared();
    let mut p = ready.remove("echo").unwrap();
    p.venv_key = None;
    p.secrets.clear();
    let ready = BTreeMap::from([("tool".to_string(), p)]);
    let plan = services_plan(
        &inv.hosts[0],
        &facts(true),
        &inv.services,
        &ready,
        "r",
        false,
    )
    .unwrap()
    .unwrap();
    let steps = &plan.layers[0].steps;
    assert!(!steps
        .iter()
        .any(|s| matches!(s.action, Action::Packages { .. } | Action::Venv { .. })));
    assert!(matches!(
        steps.last().unwrap().action,
        Action::WaitTcp { port: 7000, .. }
    ));
}

#[test]
fn a_rollback_switches_back_what_the_run_changed_then_restarts_and_waits() {
    use crate::agent::{StepEnd, StepStatus};
    let end = |step: &str, status: StepStatus| -> StepEnd {
        serde_json::from_value(serde_json::json!({
            "layer": "start", "step": step, "status": status, "duration_ms": 0, "message": ""
        }))
        .unwrap()
    };
    let changed = changed_releases(&[
        end("start.svc.echo.release", StepStatus::Changed),
        end("start.svc.echo.venv", StepStatus::Ok),
        end("start.svc.web.release", StepStatus::Ok),
        end("start.svc.echo.health", StepStatus::Failed),
    ]);
    assert_eq!(changed, [("echo".to_string(), false)]);
    assert!(changed_releases(&[end("start.svc.web.release", StepStatus::Ok)]).is_empty());

    let (_dir, inv) = inventory(ECHO);
    let plan = rollback_plan(
        inv.host("a").unwrap(),
        &inv.services,
        &[("echo".into(), true)],
        "r",
    );
    let steps = &plan.layers[0].steps;
    let ids: Vec<&str> = steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "start.svc.echo.rollback",
            "start.svc.echo.service",
            "start.svc.echo.health"
        ]
    );
    assert_eq!(
        steps[0].action,
        Action::ServiceRollback {
            dir: "/opt/mp-services/echo".into(),
            venv: true
        }
    );
    assert_eq!(steps[0].notify, ["start.svc.echo.service"]);
    // A host that runs none of them has nothing to do.
    let other = rollback_plan(
        inv.host("b").unwrap(),
        &inv.services,
        &[("echo".into(), true)],
        "r",
    );
    assert!(other.layers[0].steps.is_empty());
}
