//! Tests of the day-2 operations' pure parts: which services, in which order.

use super::*;

#[test]
fn services_follow_the_roles_in_start_order() {
    let text = "[[hosts]]\nname = \"a\"\naddress = \"10.0.0.1\"\nroles = [\"clickhouse\", \"nats\", \"collector\"]\n\n[[hosts]]\nname = \"b\"\naddress = \"10.0.0.2\"\nroles = [\"collector\"]\n";
    let inv = crate::inventory::parse(text, std::path::Path::new("inv.toml"), None).unwrap();
    let (a, b) = (&inv.hosts[0], &inv.hosts[1]);
    assert_eq!(
        services_of(a, None),
        [Service::NATS, Service::CLICKHOUSE, Service::COLLECTOR]
    );
    assert_eq!(
        services_of(a, Some(Service::CLICKHOUSE)),
        [Service::CLICKHOUSE]
    );
    assert_eq!(services_of(b, None), [Service::COLLECTOR]);
    assert!(services_of(b, Some(Service::STORAGE)).is_empty());
    let text = "[[hosts]]\nname = \"all\"\naddress = \"10.0.0.1\"\nroles = [\"collector\", \"storage\", \"clickhouse\", \"nats\"]\n";
    let inv = crate::inventory::parse(text, std::path::Path::new("inv.toml"), None).unwrap();
    let all = &inv.hosts[0];
    assert_eq!(services_of(all, None), Service::ALL);
    let names = |control, only: Option<&Named>| -> Vec<String> {
        targets(all, control, only, &[])
            .into_iter()
            .map(|t| t.name)
            .collect()
    };
    for control in [Control::Start, Control::Restart] {
        assert_eq!(
            names(control, None),
            ["nats", "clickhouse", "storage", "collector"]
        );
    }
    assert_eq!(
        names(Control::Stop, None),
        ["collector", "storage", "clickhouse", "nats"]
    );
    let storage = Named::Builtin(Service::STORAGE);
    assert_eq!(names(Control::Stop, Some(&storage)), ["storage"]);
}

/// User services come after the built-ins (stop: before), by their own name with `--service`.
#[test]
fn user_services_are_controlled_after_the_builtins() {
    let dir = std::env::temp_dir().join(format!("mp-day2-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("echo")).unwrap();
    std::fs::write(dir.join("echo/echo"), "").unwrap();
    let text = "[[hosts]]\nname = \"a\"\naddress = \"10.0.0.1\"\nroles = [\"nats\"]\n\n[services.echo]\nkind = \"binary\"\npath = \"echo\"\ncommand = [\"./echo\"]\nroles = [\"nats\"]\nafter = [\"nats\"]\n[services.echo.health]\ntcp = 7000\n";
    let inv = crate::inventory::parse(text, &dir.join("inv.toml"), None).unwrap();
    let host = &inv.hosts[0];
    let users = &inv.services;
    let names = |control, only: Option<&Named>| -> Vec<(String, String)> {
        targets(host, control, only, users)
            .into_iter()
            .map(|t| (t.name, t.unit))
            .collect()
    };
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        names(Control::Start, None),
        [pair("nats", "nats-server"), pair("echo", "mp-svc-echo")]
    );
    assert_eq!(
        names(Control::Stop, None),
        [pair("echo", "mp-svc-echo"), pair("nats", "nats-server")]
    );
    let echo = Named::resolve("echo", users).unwrap();
    assert_eq!(echo, Named::User("echo".into()));
    assert_eq!(
        names(Control::Restart, Some(&echo)),
        [pair("echo", "mp-svc-echo")]
    );
    let error = Named::resolve("ecko", users).unwrap_err();
    assert!(
        error.contains("nats, clickhouse, storage, collector, echo"),
        "{error}"
    );
    std::fs::remove_dir_all(dir).unwrap();
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
        (Service::STORAGE, PipelineService::Storage),
        (Service::COLLECTOR, PipelineService::Collector),
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
    assert_eq!(Service::STORAGE.ports(), [8085, 9094]);
    assert_eq!(Service::COLLECTOR.ports(), [8087, 9093]);
    assert_eq!(Service::NATS.pipeline(), None);
}
