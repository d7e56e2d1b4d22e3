//! User services: `[services.echo]` (a small real Python service in
//! tests/fixtures/services/echo that talks to NATS through nats-py) deployed on a real host
//! beside NATS: from a package index, re-deployed without a change or a restart, then from a
//! wheelhouse pushed with it (`pip --no-index`), then removed by `clean`; beside it a
//! `binary` service (`[services.web]`, a script run from its release, a TCP health probe), and
//! two that fail: a requirement pip cannot resolve, a service that never answers.
//!
//! The index: the test hosts reach pypi.org, but this environment's egress proxy re-signs
//! TLS with a CA the hosts do not trust, so the hosts' pip is pointed (in /etc/pip.conf, as a
//! site with a mirror would do) at a PEP 503 simple index served from the fleet's gateway,
//! holding the nats-py wheel pip downloaded on this machine from the real index.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::support::site::{gateway, Site};
use crate::support::{assert_nothing_changed, mp_remote, recap_counts, run_ok, Fleet};

const SECRET: &str = "echo-secret-7f3a9c2e";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn service_table(wheelhouse: bool) -> String {
    format!(
        "[components.nats]\nsource = \"os\"\n\n\
         [services.echo]\nkind = \"python\"\npath = \"services/echo\"\n\
         command = [\"python\", \"app.py\", \"--port\", \"8090\"]\nroles = [\"nats\"]\n\
         env = {{ GREETING = \"hello world\" }}\n\
         env_files = {{ API_KEY = \"secrets/echo-key\" }}\nports = [8090]\n\
         health = {{ http = \"http://127.0.0.1:8090/health\", json = {{ status = \"ok\" }} }}\n\
         after = [\"nats\"]\n{}\n\
         [services.web]\nkind = \"binary\"\npath = \"services/web\"\ncommand = [\"bin/serve\", \"8091\"]\n\
         hosts = [\"h1\"]\nports = [8091]\nhealth = {{ tcp = 8091, timeout = \"15s\" }}\nafter = [\"echo\"]\n",
        if wheelhouse {
            "wheelhouse = \"wheels\"\n"
        } else {
            ""
        }
    )
}

#[test]
fn a_python_service_from_the_index_then_a_wheelhouse_then_cleaned() {
    let fleet = Fleet::up("usvc", 1, 0);

    // The nats-py wheel, from the real index, on this machine.
    let wheels = fleet.path("wheels");
    run_ok(Command::new("pip3").args([
        "download",
        "nats-py",
        "--no-deps",
        "--only-binary=:all:",
        "-d",
        wheels.to_str().unwrap(),
    ]));
    let wheel = std::fs::read_dir(&wheels)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".whl"))
        .expect("a nats-py wheel");

    // Whether the host reaches the real index (printed: the reason for the local one).
    println!(
        "pypi.org from the host: {}",
        fleet.exec(
            "h1",
            "curl -sS -m 10 -o /dev/null -w '%{http_code}' https://pypi.org/simple/nats-py/ 2>&1 | tail -n 1; true"
        )
    );
    let index = fleet.path("index");
    std::fs::create_dir_all(index.join("simple/nats-py")).unwrap();
    std::fs::create_dir_all(index.join("files")).unwrap();
    std::fs::copy(wheels.join(&wheel), index.join("files").join(&wheel)).unwrap();
    std::fs::write(
        index.join("simple/nats-py/index.html"),
        format!("<html><body><a href=\"/files/{wheel}\">{wheel}</a></body></html>\n"),
    )
    .unwrap();
    let ip = gateway(&fleet);
    let site = Site::start(ip, index);
    fleet.exec(
        "h1",
        &format!(
            "printf '[global]\\nindex-url = {}/simple/\\ntrusted-host = {ip}\\n' > /etc/pip.conf",
            site.base_url
        ),
    );

    // The service's directory and its secret, beside the inventory.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/services/echo");
    copy_dir(&fixture, &fleet.path("services/echo"));
    // A `binary` service: any executable in its directory (here a script; its mode travels).
    std::fs::create_dir_all(fleet.path("services/web/bin")).unwrap();
    std::fs::write(
        fleet.path("services/web/bin/serve"),
        "#!/bin/sh\nexec python3 -m http.server \"$1\" --bind 127.0.0.1\n",
    )
    .unwrap();
    std::fs::write(fleet.path("services/web/index.html"), "web ok\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let serve = fleet.path("services/web/bin/serve");
        std::fs::set_permissions(serve, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::create_dir_all(fleet.path("secrets")).unwrap();
    std::fs::write(fleet.path("secrets/echo-key"), format!("{SECRET}\n")).unwrap();

    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    let table = service_table(false);
    options.extra = &table;
    let inventory = fleet.inventory("inv.toml", &options);
    let check = mp_remote(Some(&inventory), &["inventory", "check"]);
    assert_eq!(check.code, 0, "{check:?}");
    assert!(
        check
            .stdout
            .contains("echo             python  on h1 as mp-echo, ports 8090, after nats"),
        "{}",
        check.stdout
    );

    let took = Instant::now();
    let first = mp_remote(Some(&inventory), &["deploy"]);
    println!(
        "first deploy ({} ms):\n{}{}",
        took.elapsed().as_millis(),
        first.stdout,
        first.stderr
    );
    assert_eq!(first.code, 0, "{first:?}");
    // The agent's health step passed (an unchanged step: in the record, not on stdout).
    let runs = fleet.path(".mp-remote/runs");
    let last = crate::support::runs::run_dirs(&runs).pop().expect("a run");
    let health_step = crate::support::runs::events(&last)
        .into_iter()
        .find(|e| e["event"] == "step_finished" && e["step"] == "start.svc.echo.health")
        .expect("the health step ran");
    assert_eq!(health_step["status"], "ok", "{health_step}");
    println!("health step: {health_step}");
    assert!(!first.stdout.contains(SECRET) && !first.stderr.contains(SECRET));
    assert!(
        site.requests_for(&wheel) >= 1,
        "pip fetched nats-py from the index"
    );

    // Healthy on the host itself, connected to NATS, with its env and its secret.
    let health: serde_json::Value =
        serde_json::from_str(&fleet.exec("h1", "curl -sf http://127.0.0.1:8090/health")).unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["nats"], "connected", "{health}");
    assert_eq!(health["api_key_set"], true, "{health}");
    assert_eq!(health["greeting"], "hello world", "{health}");
    assert_eq!(
        fleet
            .exec("h1", "stat -c '%a %U' /etc/mp-services/echo.env")
            .trim(),
        "600 root"
    );
    // The service connected with the NATS_URL mp-remote gave it: loopback, on one host.
    assert_eq!(
        fleet
            .exec("h1", "grep '^NATS_URL=' /etc/mp-services/echo.env")
            .trim(),
        "NATS_URL=\"nats://127.0.0.1:4222\""
    );
    assert_eq!(
        fleet
            .exec("h1", "systemctl show -p User --value mp-svc-echo")
            .trim(),
        "mp-echo"
    );
    assert!(fleet.holds("h1", "test -L /opt/mp-services/echo/current"));
    assert_eq!(
        fleet
            .exec("h1", "curl -sf http://127.0.0.1:8091/index.html")
            .trim(),
        "web ok"
    );
    // Nothing the run recorded (run.json, events, host logs) holds the secret.
    for file in crate::support::runs::files_under(&runs) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        assert!(
            !text.contains(SECRET),
            "{} holds the secret",
            file.display()
        );
    }
    assert!(
        !crate::support::runs::run_dirs(&runs).is_empty(),
        "a run was recorded"
    );

    // Again: nothing changes, nothing restarts.
    let before = fleet.started_at("h1", "mp-svc-echo");
    let took = Instant::now();
    let second = mp_remote(Some(&inventory), &["deploy"]);
    println!("second deploy: {} ms", took.elapsed().as_millis());
    assert_nothing_changed(&second);
    assert_eq!(fleet.started_at("h1", "mp-svc-echo"), before, "restarted");
    // --check agrees, and update (which installs nothing) changes nothing either.
    let check = mp_remote(Some(&inventory), &["deploy", "--check"]);
    assert_eq!(check.code, 0, "{check:?}");
    assert_eq!(recap_counts(&check.stdout, "h1").1, 0, "{}", check.stdout);
    assert_nothing_changed(&mp_remote(Some(&inventory), &["update"]));
    assert_eq!(fleet.started_at("h1", "mp-svc-echo"), before, "restarted");

    // Day 2 knows the user services: status shows them, restart and logs take their names.
    let status = mp_remote(Some(&inventory), &["status", "--json"]);
    assert_eq!(status.code, 0, "{status:?}");
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let echo = &doc["hosts"][0]["services"]["echo"];
    assert_eq!(
        (&echo["running"], &echo["healthy"]),
        (&serde_json::json!(true), &serde_json::json!(true)),
        "{doc}"
    );
    assert_eq!(echo["ports"], serde_json::json!([8090]), "{doc}");
    let restart = mp_remote(Some(&inventory), &["restart", "--service", "echo"]);
    println!("restart:\n{}{}", restart.stdout, restart.stderr);
    assert_eq!(restart.code, 0, "{restart:?}");
    assert!(
        restart
            .stdout
            .contains("mp-svc-echo restarted, healthy after"),
        "{restart:?}"
    );
    assert_ne!(fleet.started_at("h1", "mp-svc-echo"), before, "restarted");
    let logs = mp_remote(Some(&inventory), &["logs", "--service", "echo", "-n", "5"]);
    assert_eq!(logs.code, 0, "{logs:?}");
    assert!(
        logs.stdout.lines().all(|l| l.starts_with("h1 | ")),
        "{logs:?}"
    );
    assert!(!logs.stdout.contains(SECRET), "{logs:?}");
    let unknown = mp_remote(Some(&inventory), &["logs", "--service", "ecko"]);
    assert_eq!(unknown.code, 1, "{unknown:?}");
    assert!(
        unknown.stderr.contains("no service \"ecko\""),
        "{unknown:?}"
    );
    let before = fleet.started_at("h1", "mp-svc-echo");

    // The same service with a wheelhouse pushed with it: the venv is rebuilt without the index.
    copy_dir(&wheels, &fleet.path("services/echo/wheels"));
    let requests = site.requests_for(&wheel);
    let table = service_table(true);
    options.extra = &table;
    fleet.inventory("inv.toml", &options);
    // Through a rolling deploy: the user's services roll with their host's batch.
    let took = Instant::now();
    let third = mp_remote(Some(&inventory), &["deploy", "--serial", "1"]);
    println!(
        "wheelhouse deploy ({} ms):\n{}{}",
        took.elapsed().as_millis(),
        third.stdout,
        third.stderr
    );
    assert_eq!(third.code, 0, "{third:?}");
    assert!(
        format!("{}{}", third.stdout, third.stderr).contains("batch 1"),
        "{third:?}"
    );
    assert_eq!(site.requests_for(&wheel), requests, "no index request");
    let pip_log = fleet.exec("h1", "cat /opt/mp-services/echo/venv/pip.log");
    assert!(pip_log.contains("--no-index --find-links"), "{pip_log}");
    assert!(
        pip_log.contains("Successfully installed nats-py"),
        "{pip_log}"
    );
    assert_ne!(
        fleet.started_at("h1", "mp-svc-echo"),
        before,
        "restarted on the new venv"
    );
    let health = fleet.exec("h1", "curl -sf http://127.0.0.1:8090/health");
    assert!(health.contains("\"connected\""), "{health}");
    assert_nothing_changed(&mp_remote(Some(&inventory), &["deploy"]));

    // A release of `web` that never comes up, through a rolling deploy: the batch fails and
    // web is switched back to the release it ran before, restarted and healthy on it.
    let serve = fleet.path("services/web/bin/serve");
    let good = std::fs::read_to_string(&serve).unwrap();
    let web_release = fleet.exec("h1", "readlink /opt/mp-services/web/current");
    std::fs::write(
        &serve,
        "#!/bin/sh\necho 'web: broken release' >&2\nexit 3\n",
    )
    .unwrap();
    let broken = mp_remote(Some(&inventory), &["deploy", "--serial", "1"]);
    let said = format!("{}{}", broken.stdout, broken.stderr);
    println!("rolling deploy of a broken web:\n{said}");
    assert_ne!(broken.code, 0, "{said}");
    assert!(said.contains("start.svc.web."), "{said}");
    assert!(said.contains("rolled back: h1"), "{said}");
    assert_eq!(
        fleet.exec("h1", "readlink /opt/mp-services/web/current"),
        web_release,
        "web runs its earlier release again"
    );
    assert_ne!(
        fleet.exec("h1", "readlink /opt/mp-services/web/previous"),
        web_release,
        "the broken release is kept as previous"
    );
    assert!(fleet.holds("h1", "systemctl is-active --quiet mp-svc-web"));
    assert!(fleet.holds("h1", "bash -c 'exec 3<>/dev/tcp/127.0.0.1/8091'"));
    let record = crate::support::runs::run_json(
        crate::support::runs::run_dirs(&fleet.path(".mp-remote/runs"))
            .last()
            .unwrap(),
    );
    let note = record["hosts"][0]["note"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        note.starts_with("automatic rollback: roll back /opt/mp-services/web/current to release"),
        "{record}"
    );
    std::fs::write(&serve, good).unwrap();
    assert_nothing_changed(&mp_remote(Some(&inventory), &["deploy"]));

    // A requirement pip cannot resolve: the deploy fails naming the host, the service and
    // pip's last lines; the running echo is left alone.
    std::fs::create_dir_all(fleet.path("services/bad")).unwrap();
    std::fs::write(fleet.path("services/bad/app.py"), "print('never')\n").unwrap();
    std::fs::write(
        fleet.path("services/bad/requirements.txt"),
        "no-such-package-for-mp-remote-tests==1.0\n",
    )
    .unwrap();
    let table = format!(
        "{}\n[services.bad]\nkind = \"python\"\npath = \"services/bad\"\n\
         command = [\"python\", \"app.py\"]\nroles = [\"nats\"]\nafter = [\"echo\"]\n",
        service_table(true)
    );
    options.extra = &table;
    fleet.inventory("inv.toml", &options);
    let echo_started = fleet.started_at("h1", "mp-svc-echo");
    let failed = mp_remote(Some(&inventory), &["deploy"]);
    let said = format!("{}{}", failed.stdout, failed.stderr);
    println!("deploy with an unresolvable requirement:\n{said}");
    assert_ne!(failed.code, 0, "{said}");
    assert!(
        said.contains("h1: start start.svc.bad.venv: service bad: pip install failed"),
        "{said}"
    );
    assert!(
        said.contains("No matching distribution found for no-such-package-for-mp-remote-tests"),
        "{said}"
    );
    assert_eq!(fleet.started_at("h1", "mp-svc-echo"), echo_started);

    // A service that never answers its health probe: the step names it, with its log.
    std::fs::create_dir_all(fleet.path("services/mute")).unwrap();
    std::fs::write(
        fleet.path("services/mute/app.py"),
        "import time\nprint('mute: up, never listening', flush=True)\ntime.sleep(3600)\n",
    )
    .unwrap();
    let table = format!(
        "{}\n[services.bad]\nkind = \"python\"\npath = \"services/bad\"\n\
         command = [\"python\", \"app.py\"]\nroles = [\"nats\"]\nafter = [\"echo\", \"mute\"]\n\n\
         [services.mute]\nkind = \"python\"\npath = \"services/mute\"\n\
         command = [\"python\", \"app.py\"]\nroles = [\"nats\"]\n\
         health = {{ tcp = 8099, timeout = \"4s\" }}\n",
        service_table(true)
    );
    options.extra = &table;
    fleet.inventory("inv.toml", &options);
    let failed = mp_remote(Some(&inventory), &["deploy"]);
    let said = format!("{}{}", failed.stdout, failed.stderr);
    println!("deploy with a service that never answers:\n{said}");
    assert_ne!(failed.code, 0, "{said}");
    assert!(
        said.contains("h1: start start.svc.mute.health: 127.0.0.1:8099 not open within 4 s"),
        "{said}"
    );
    assert!(said.contains("mute: up, never listening"), "{said}");

    // clean removes the unit, the release directory, the env file and the account; mute,
    // dropped from the inventory since its deploy, is found by its unit and goes too.
    let table = format!(
        "{}\n[services.bad]\nkind = \"python\"\npath = \"services/bad\"\n\
         command = [\"python\", \"app.py\"]\nroles = [\"nats\"]\n",
        service_table(true)
    );
    options.extra = &table;
    fleet.inventory("inv.toml", &options);
    let clean = mp_remote(Some(&inventory), &["clean", "--yes"]);
    println!("clean:\n{}{}", clean.stdout, clean.stderr);
    assert_eq!(clean.code, 0, "{clean:?}");
    for gone in [
        "! test -e /etc/systemd/system/mp-svc-echo.service",
        "! test -e /opt/mp-services",
        "! test -e /etc/mp-services",
        "! id mp-echo",
        "! id mp-web",
        "! id mp-bad",
        "! id mp-mute",
        "! test -e /etc/systemd/system/mp-svc-mute.service",
        "! systemctl is-active --quiet mp-svc-echo",
    ] {
        assert!(fleet.holds("h1", gone), "{gone}");
    }
}
