//! Tests of `day2`.

use super::*;

/// `if [ -d /run/systemd/system ]; then SYSTEMD; else FUNCTIONS echo mp-remote:supervised;
/// SUPERVISED; fi`, through sudo when asked.
fn both(systemd: &str, supervised: &str) -> String {
    format!(
            "if [ -d /run/systemd/system ]; then {systemd}; else\n{}echo mp-remote:supervised; {supervised}; fi",
            supervisor_sh!()
        )
}

#[test]
fn control_commands() {
    let no_systemd = "echo \"no systemd here and no record of how mp-remote started it: run \\`mp-remote deploy\\` to start it under mp-remote's supervisor\" >&2; exit 3";
    let launch = |unit: &str| format!("sv_launch {unit} || {{ {no_systemd}; }}");
    assert_eq!(
            control_command(Control::Start, Service::Nats, false),
            both(
                "if systemctl is-active --quiet nats-server; then echo mp-remote:already; else systemctl start nats-server; fi",
                &format!("if sv_sup nats-server; then echo mp-remote:already; else {}; fi", launch("nats-server"))
            )
        );
    assert_eq!(
        control_command(Control::Restart, Service::Clickhouse, true),
        with_become(
            &both(
                "systemctl restart clickhouse-server",
                &format!("if sv_launchable clickhouse-server; then sv_stop clickhouse-server && sv_launch clickhouse-server; else {no_systemd}; fi")
            ),
            true
        )
    );
    assert!(control_command(Control::Restart, Service::Clickhouse, true)
            .starts_with("sudo -n -- sh -c 'if [ -d /run/systemd/system ]; then systemctl restart clickhouse-server; else\n"));
    assert_eq!(
            control_command(Control::Stop, Service::Clickhouse, false),
            both(
                "if systemctl is-active --quiet clickhouse-server; then systemctl stop clickhouse-server; else echo mp-remote:already; fi",
                "if sv_sup clickhouse-server; then sv_stop clickhouse-server; else echo mp-remote:already; fi"
            )
        );
}

/// Every command is valid POSIX sh (dash), through sudo's quoting too.
#[test]
fn commands_parse_under_sh() {
    for control in [Control::Start, Control::Stop, Control::Restart] {
        for become_root in [false, true] {
            let command = control_command(control, Service::Clickhouse, become_root);
            let out = std::process::Command::new("sh")
                .args(["-n", "-c", &command])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{command}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Without a record of how the supervisor was started, start and restart refuse, and the
/// refusal reaches the user whole, backquotes and all. Run here with the pid and record
/// directories pointed at nothing, so this machine's own servers are never touched.
#[test]
fn start_without_systemd_or_record_says_to_deploy() {
    for control in [Control::Start, Control::Restart] {
        refused_without_record(control);
    }
}

fn refused_without_record(control: Control) {
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            &control_command(control, Service::Nats, false)
                .replace("[ -d /run/systemd/system ]", "false")
                .replace("/run/mp-remote/", "/nonexistent/run/")
                .replace("/var/lib/mp-remote/supervised/", "/nonexistent/state/"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "mp-remote:supervised\n"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), NO_SYSTEMD);
}

#[test]
fn journal_commands() {
    assert_eq!(
            journal_command(Service::Nats, 5, false),
            "if [ -d /run/systemd/system ]; then journalctl -u nats-server -n 5 --no-pager; else tail -n 5 /var/log/mp-remote/nats-server.log; fi"
        );
    assert_eq!(
            journal_command(Service::Clickhouse, 20, true),
            "sudo -n -- sh -c 'if [ -d /run/systemd/system ]; then journalctl -u clickhouse-server -n 20 --no-pager; else tail -n 20 /var/log/mp-remote/clickhouse-server.log; fi'"
        );
}

#[test]
fn services_follow_the_roles_in_start_order() {
    let text = "[[hosts]]\nname = \"a\"\naddress = \"10.0.0.1\"\nroles = [\"clickhouse\", \"nats\", \"collector\"]\n\n[[hosts]]\nname = \"b\"\naddress = \"10.0.0.2\"\nroles = [\"collector\"]\n";
    let inv = crate::inventory::parse(text, std::path::Path::new("inv.toml"), None).unwrap();
    let (a, b) = (&inv.hosts[0], &inv.hosts[1]);
    assert_eq!(
        services_of(a, None),
        [Service::Nats, Service::Clickhouse, Service::Collector]
    );
    assert_eq!(
        services_of(a, Some(Service::Clickhouse)),
        [Service::Clickhouse]
    );
    assert_eq!(services_of(b, None), [Service::Collector]);
    assert!(services_of(b, Some(Service::Storage)).is_empty());
    let text = "[[hosts]]\nname = \"all\"\naddress = \"10.0.0.1\"\nroles = [\"collector\", \"storage\", \"clickhouse\", \"nats\"]\n";
    let inv = crate::inventory::parse(text, std::path::Path::new("inv.toml"), None).unwrap();
    let all = &inv.hosts[0];
    assert_eq!(services_of(all, None), Service::ALL);
    for control in [Control::Start, Control::Restart] {
        assert_eq!(control_order(all, control, None), Service::ALL);
    }
    assert_eq!(
        control_order(all, Control::Stop, None),
        [
            Service::Collector,
            Service::Storage,
            Service::Clickhouse,
            Service::Nats
        ]
    );
    assert_eq!(
        control_order(all, Control::Stop, Some(Service::Storage)),
        [Service::Storage]
    );
}

#[test]
fn service_names_round_trip() {
    for s in Service::ALL {
        assert_eq!(Service::from_name(s.name()), Some(s));
        assert_eq!(s.role().as_str(), s.name());
    }
    assert_eq!(Service::from_name("mp-storage"), None);
}

/// The pipeline services are what deploy installs: the same units, names and ports.
#[test]
fn pipeline_services_match_the_stack() {
    for (service, pipeline) in [
        (Service::Storage, PipelineService::Storage),
        (Service::Collector, PipelineService::Collector),
    ] {
        assert_eq!(service.pipeline(), Some(pipeline));
        assert_eq!(service.name(), pipeline.name());
        assert_eq!(service.unit(), pipeline.unit());
        assert_eq!(
            service.ports(),
            [pipeline.health_port(), pipeline.metrics_port()]
        );
        assert_eq!(service.health_deadline(), Duration::from_secs(60));
    }
    assert_eq!(Service::Storage.ports(), [8085, 9094]);
    assert_eq!(Service::Collector.ports(), [8087, 9093]);
    assert_eq!(Service::Nats.pipeline(), None);
}

#[test]
fn pipeline_control_commands() {
    let no_systemd = "echo \"no systemd here and no record of how mp-remote started it: run \\`mp-remote deploy\\` to start it under mp-remote's supervisor\" >&2; exit 3";
    let launch = |unit: &str| format!("sv_launch {unit} || {{ {no_systemd}; }}");
    assert_eq!(
            control_command(Control::Start, Service::Storage, false),
            both(
                "if systemctl is-active --quiet mp-storage; then echo mp-remote:already; else systemctl start mp-storage; fi",
                &format!("if sv_sup mp-storage; then echo mp-remote:already; else {}; fi", launch("mp-storage"))
            )
        );
    assert_eq!(
            control_command(Control::Stop, Service::Collector, false),
            both(
                "if systemctl is-active --quiet mp-collector; then systemctl stop mp-collector; else echo mp-remote:already; fi",
                "if sv_sup mp-collector; then sv_stop mp-collector; else echo mp-remote:already; fi"
            )
        );
    assert_eq!(
        control_command(Control::Restart, Service::Collector, true),
        with_become(
            &both(
                "systemctl restart mp-collector",
                &format!("if sv_launchable mp-collector; then sv_stop mp-collector && sv_launch mp-collector; else {no_systemd}; fi")
            ),
            true
        )
    );
    for service in [Service::Storage, Service::Collector] {
        for control in [Control::Start, Control::Stop, Control::Restart] {
            let command = control_command(control, service, true);
            let out = std::process::Command::new("sh")
                .args(["-n", "-c", &command])
                .output()
                .unwrap();
            assert!(out.status.success(), "{command}");
        }
    }
}

#[test]
fn pipeline_journal_commands() {
    assert_eq!(
            journal_command(Service::Storage, 50, false),
            "if [ -d /run/systemd/system ]; then journalctl -u mp-storage -n 50 --no-pager; else tail -n 50 /var/log/mp-remote/mp-storage.log; fi"
        );
    assert_eq!(
            journal_command(Service::Collector, 7, true),
            "sudo -n -- sh -c 'if [ -d /run/systemd/system ]; then journalctl -u mp-collector -n 7 --no-pager; else tail -n 7 /var/log/mp-remote/mp-collector.log; fi'"
        );
}
