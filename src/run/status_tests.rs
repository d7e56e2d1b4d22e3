//! Tests of `status`.

use std::collections::HashMap;

use super::*;
use crate::facts::{listening_ports, PortsSource};
use crate::plan::probe::component_target;

/// The fixtures below were captured on Debian 12 with the shell probe `agent status` replaced
/// (`key=value` lines and `--- name ---` sections); this maps each capture onto the agent's
/// typed answer, so the same real outputs keep testing [`interpret`].
fn parse(output: &str) -> Result<HostProbe, String> {
    let raw = Raw::split(output)?;
    let full = raw.get("listen_source").is_some();
    let services: Vec<Service> = Service::ALL
        .into_iter()
        .filter(|s| raw.get(&format!("{s}.active")).is_some())
        .collect();
    let request = ProbeRequest {
        full,
        targets: services
            .iter()
            .map(|s| component_target(s.component(), "/opt/marketprism"))
            .collect(),
        release_link: None,
    };
    let health_call = |s: Service| match s.name() {
        "nats" => "nats.healthz",
        "clickhouse" => "clickhouse.ping",
        "storage" => "storage.health",
        _ => "collector.health",
    };
    let reply = ProbeReply {
        services: services
            .iter()
            .map(|s| Seen {
                name: s.name().into(),
                active: raw.get(&format!("{s}.active")).unwrap_or("").into(),
                supervised: raw.get(&format!("{s}.manager")) == Some("supervisor"),
                package: raw.get(&format!("{s}.pkg")).map(str::to_string),
                files_present: raw.get(&format!("{s}.installed")) != Some("no"),
                health: raw.reply(health_call(*s)),
                version: raw
                    .get(&format!("{s}.version"))
                    .filter(|v| !v.is_empty())
                    .map(str::to_string),
                calls: [
                    "nats.jsz",
                    "clickhouse.version",
                    "clickhouse.tables",
                    "clickhouse.parts",
                ]
                .into_iter()
                .filter(|c| c.starts_with(s.name()) && raw.has(c))
                .map(|c| (c.to_string(), raw.reply(c)))
                .collect(),
            })
            .collect(),
        listening: match raw.get("listen_source") {
            Some("ss") => Some(listening_ports(PortsSource::Ss, raw.section("listen"))),
            Some("proc") => Some(listening_ports(PortsSource::Proc, raw.section("listen"))),
            _ => None,
        },
        release: raw.get("release").map(str::to_string),
    };
    Ok(interpret(&request, &reply))
}

/// The capture's keys and sections.
struct Raw<'a> {
    keys: HashMap<&'a str, &'a str>,
    sections: HashMap<&'a str, String>,
}

impl<'a> Raw<'a> {
    fn split(output: &'a str) -> Result<Self, String> {
        let mut lines = output
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .skip_while(|l| *l != "mp_status=1");
        lines.next().ok_or("not a capture")?;
        let (mut keys, mut sections) = (HashMap::new(), HashMap::new());
        let mut open: Option<(&str, Vec<&str>)> = None;
        for line in lines {
            if let Some((name, body)) = &mut open {
                if line
                    .strip_prefix("--- end ")
                    .and_then(|l| l.strip_suffix(" ---"))
                    == Some(name)
                {
                    sections.insert(*name, body.join("\n"));
                    open = None;
                } else {
                    body.push(line);
                }
            } else if line == "status_end=ok" {
                return Ok(Raw { keys, sections });
            } else if let Some(name) = line
                .strip_prefix("--- ")
                .and_then(|l| l.strip_suffix(" ---"))
            {
                open = Some((name, Vec::new()));
            } else if let Some((key, value)) = line.split_once('=') {
                keys.insert(key, value);
            }
        }
        Err("the capture stops early".into())
    }

    fn get(&self, key: &str) -> Option<&'a str> {
        self.keys.get(key).copied()
    }

    fn has(&self, call: &str) -> bool {
        self.keys.contains_key(format!("{call}.code").as_str())
    }

    fn section(&self, name: &str) -> &str {
        self.sections.get(name).map(String::as_str).unwrap_or("")
    }

    /// A curl call's capture as the agent's answer: curl exit 7 is a refused connection,
    /// 28 a timeout, HTTP code 000 no answer.
    fn reply(&self, name: &str) -> Reply {
        match (
            self.get(&format!("{name}.curl")),
            self.get(&format!("{name}.code")),
        ) {
            (_, Some(code)) if code != "000" && !code.is_empty() => {
                Reply::http(code.parse().unwrap(), self.section(name))
            }
            (Some("7"), _) => Reply::none("connection refused"),
            (Some("28"), _) => Reply::none("no answer in time"),
            (curl, _) => Reply::none(&format!("no answer (curl exit {})", curl.unwrap_or("?"))),
        }
    }
}

/// Captured on Debian 12 after a deploy (jsz compacted to one line), 2 messages published
/// and 1 row inserted.
const HEALTHY: &str = r#"Welcome to mp-1
mp_status=1
nats.active=active
nats.pkg=install ok installed|2.9.10-1+b3
nats.healthz.curl=0
nats.healthz.code=200
--- nats.healthz ---
{"status":"ok"}
--- end nats.healthz ---
nats.version=nats-server: v2.9.10
nats.jsz.curl=0
nats.jsz.code=200
--- nats.jsz ---
{ "server_id": "ND6H5TKIHSAQXXOZY3P2V5HTQFCACNFCM7AS5CLZEGAPLYRCENREDUA4", "now": "2026-11-25T20:59:18.137942595Z", "config": { "max_memory": 18957376512, "max_storage": 8589934592, "store_dir": "/var/lib/nats/jetstream/jetstream" }, "memory": 0, "storage": 78, "reserved_memory": 0, "reserved_storage": 4294967296, "accounts": 1, "ha_assets": 0, "api": { "total": 0, "errors": 0 }, "streams": 2, "consumers": 0, "messages": 2, "bytes": 78,
"account_details": [ { "name": "$G", "id": "$G", "memory": 0, "storage": 78, "reserved_memory": 18446744073709551615, "reserved_storage": 18446744073709551615, "accounts": 0, "ha_assets": 0, "api": { "total": 0, "errors": 0 },
"stream_detail": [ { "name": "MARKET_DATA", "created": "2026-11-25T20:53:25.740535666Z", "cluster": { "leader": "h1" }, "state": { "messages": 2, "bytes": 78, "first_seq": 1, "first_ts": "2026-11-25T20:59:11.472397131Z", "last_seq": 2, "last_ts": "2026-11-25T20:59:11.472933085Z", "num_subjects": 2, "consumer_count": 0 } },
{ "name": "ORDERBOOK_SNAP", "created": "2026-11-25T20:53:25.742972177Z", "cluster": { "leader": "h1" }, "state": { "messages": 0, "bytes": 0, "first_seq": 1, "first_ts": "1970-01-01T00:00:00Z", "last_seq": 0, "last_ts": "0001-01-01T00:00:00Z", "consumer_count": 0 } } ] } ]}
--- end nats.jsz ---
clickhouse.active=active
clickhouse.pkg=install ok installed|18.16.1+ds-7.3+b2
clickhouse.ping.curl=0
clickhouse.ping.code=200
--- clickhouse.ping ---
Ok.

--- end clickhouse.ping ---
clickhouse.version.curl=0
clickhouse.version.code=200
--- clickhouse.version ---
18.16.1

--- end clickhouse.version ---
clickhouse.tables.curl=0
clickhouse.tables.code=200
--- clickhouse.tables ---
{"name":"funding_rates"}
{"name":"liquidations"}
{"name":"lsr_all_accounts"}
{"name":"lsr_top_positions"}
{"name":"open_interests"}
{"name":"orderbooks"}
{"name":"trades"}
{"name":"volatility_indices"}

--- end clickhouse.tables ---
clickhouse.parts.curl=0
clickhouse.parts.code=200
--- clickhouse.parts ---
{"table":"trades","rows":"1"}

--- end clickhouse.parts ---
listen_source=ss
--- listen ---
LISTEN 0      4096   127.0.0.11:41495 0.0.0.0:*
LISTEN 0      64        0.0.0.0:9009  0.0.0.0:*
LISTEN 0      64        0.0.0.0:9000  0.0.0.0:*
LISTEN 0      64        0.0.0.0:8123  0.0.0.0:*
LISTEN 0      128       0.0.0.0:22    0.0.0.0:*
LISTEN 0      4096            *:8222        *:*
LISTEN 0      4096            *:4222        *:*
LISTEN 0      128          [::]:22       [::]:*
--- end listen ---
status_end=ok
"#;

/// Captured after `systemctl stop nats-server` (ClickHouse part left out).
const NATS_STOPPED: &str = "mp_status=1
nats.active=inactive
nats.pkg=install ok installed|2.9.10-1+b3
nats.healthz.curl=7
nats.healthz.code=000
--- nats.healthz ---
--- end nats.healthz ---
nats.version=nats-server: v2.9.10
nats.jsz.curl=7
nats.jsz.code=000
--- nats.jsz ---
--- end nats.jsz ---
listen_source=ss
--- listen ---
LISTEN 0      128       0.0.0.0:22    0.0.0.0:*
--- end listen ---
status_end=ok
";

/// Captured after `systemctl stop clickhouse-server`: the queries are not even tried.
const CLICKHOUSE_STOPPED: &str = "mp_status=1
clickhouse.active=inactive
clickhouse.pkg=install ok installed|18.16.1+ds-7.3+b2
clickhouse.ping.curl=7
clickhouse.ping.code=000
--- clickhouse.ping ---
--- end clickhouse.ping ---
listen_source=ss
--- listen ---
LISTEN 0      4096            *:4222        *:*
--- end listen ---
status_end=ok
";

/// Captured after `mp-remote clean`: packages removed, config files left by dpkg.
const CLEANED: &str = "mp_status=1
nats.active=inactive
nats.pkg=deinstall ok config-files|2.9.10-1+b3
nats.healthz.curl=7
nats.healthz.code=000
--- nats.healthz ---
--- end nats.healthz ---
nats.version=
nats.jsz.curl=7
nats.jsz.code=000
--- nats.jsz ---
--- end nats.jsz ---
clickhouse.active=inactive
clickhouse.pkg=deinstall ok config-files|18.16.1+ds-7.3+b2
clickhouse.ping.curl=7
clickhouse.ping.code=000
--- clickhouse.ping ---
--- end clickhouse.ping ---
listen_source=ss
--- listen ---
--- end listen ---
status_end=ok
";

fn with_healthz(code: &str, body: &str) -> String {
    format!(
            "mp_status=1\nnats.active=active\nnats.pkg=install ok installed|2.9.10-1+b3\nnats.healthz.curl=0\nnats.healthz.code={code}\n--- nats.healthz ---\n{body}\n--- end nats.healthz ---\nstatus_end=ok\n"
        )
}

#[test]
fn healthy_host() {
    let probe = parse(HEALTHY).unwrap();
    let nats = probe.service(Service::NATS);
    assert_eq!(
        (nats.running, nats.healthy, nats.version.as_deref()),
        (true, true, Some("2.9.10"))
    );
    assert_eq!(nats.ports, [4222, 8222]);
    assert_eq!(nats.problem(), None);
    let ch = probe.service(Service::CLICKHOUSE);
    assert_eq!(
        (ch.running, ch.healthy, ch.version.as_deref()),
        (true, true, Some("18.16.1"))
    );
    assert_eq!(ch.ports, [8123, 9000, 9009]);
    let streams = probe.streams.unwrap().unwrap();
    assert_eq!(
        streams,
        BTreeMap::from([
            ("MARKET_DATA".to_string(), StreamState { messages: 2 }),
            ("ORDERBOOK_SNAP".to_string(), StreamState { messages: 0 }),
        ])
    );
    let tables = probe.tables.unwrap().unwrap();
    assert_eq!(tables.len(), 8);
    assert_eq!(tables["trades"], 1);
    assert_eq!(tables["orderbooks"], 0, "a table without parts has 0 rows");
}

#[test]
fn stopped_nats_is_not_running_but_keeps_its_version() {
    let probe = parse(NATS_STOPPED).unwrap();
    let nats = probe.service(Service::NATS);
    assert!(!nats.running && !nats.healthy && nats.installed);
    assert_eq!(nats.version.as_deref(), Some("2.9.10"));
    assert!(nats.ports.is_empty());
    assert_eq!(
        nats.problem().as_deref(),
        Some("not running (systemctl is-active: inactive)")
    );
    assert_eq!(
        probe.streams,
        Some(Err("nats.jsz: connection refused".into()))
    );
    assert!(!probe.services.contains_key(&Service::CLICKHOUSE));
    assert_eq!(probe.tables, None);
}

#[test]
fn stopped_clickhouse_takes_its_version_from_the_package() {
    let probe = parse(CLICKHOUSE_STOPPED).unwrap();
    let ch = probe.service(Service::CLICKHOUSE);
    assert!(!ch.running && !ch.healthy);
    assert_eq!(ch.version.as_deref(), Some("18.16.1"));
    assert_eq!(
        probe.tables,
        Some(Err("ClickHouse did not answer /ping".into()))
    );
    assert_eq!(probe.streams, None);
}

#[test]
fn cleaned_host_has_nothing_installed() {
    let probe = parse(CLEANED).unwrap();
    for service in Service::ALL {
        let state = probe.service(service);
        assert!(!state.installed && !state.running, "{service}");
        assert_eq!(state.version, None, "{service}");
        assert_eq!(
            problem_line(service, &state, &state.problem().unwrap()),
            format!(
                "{} is not installed: run `mp-remote deploy`",
                service.unit()
            )
        );
    }
}

/// On a host without systemd, after `mp-remote stop --service nats`.
#[test]
fn supervised_nats_stopped_says_to_deploy() {
    let output = NATS_STOPPED.replace(
        "nats.active=inactive\n",
        "nats.active=inactive\nnats.manager=supervisor\n",
    );
    let state = parse(&output).unwrap().service(Service::NATS);
    assert!(state.supervised && !state.running && state.installed);
    let problem = state.problem().unwrap();
    assert_eq!(problem, "not running (mp-remote supervisor: inactive)");
    assert_eq!(
            problem_line(Service::NATS, &state, &problem),
            "nats-server not running (mp-remote supervisor: inactive): start it with `mp-remote start --service nats` (mp-remote's supervisor: no systemd there) or `mp-remote deploy`"
        );
    let running = parse(&with_healthz("200", r#"{"status":"ok"}"#).replace(
        "nats.active=active\n",
        "nats.active=active\nnats.manager=supervisor\n",
    ))
    .unwrap()
    .service(Service::NATS);
    assert!(running.supervised && running.running && running.healthy);
}

#[test]
fn healthz_json_is_parsed_never_substring_matched() {
    let cases = [
        ("200", r#"{"status":"ok"}"#, true),
        ("200", r#"{"status": "ok"}"#, true),
        ("200", r#"{"status":"not ok"}"#, false),
        ("200", r#"{"state":"ok"}"#, false),
        ("200", "ok", false),
        ("503", r#"{"status":"ok"}"#, false),
    ];
    for (code, body, healthy) in cases {
        let state = parse(&with_healthz(code, body))
            .unwrap()
            .service(Service::NATS);
        assert!(state.running);
        assert_eq!(state.healthy, healthy, "{code} {body}");
    }
    let state = parse(&with_healthz(
            "503",
            r#"{"status":"unavailable","error":"JetStream has not established contact with a meta leader"}"#,
        ))
        .unwrap()
        .service(Service::NATS);
    assert_eq!(
        state.problem().as_deref(),
        Some(
            r#"running but not healthy: nats.healthz: HTTP 503: {"status":"unavailable","error":"JetStream has not established contact with a meta leader"}"#
        )
    );
    let state = parse(&with_healthz(
        "200",
        r#"{"status":"unavailable","error":"no leader"}"#,
    ))
    .unwrap()
    .service(Service::NATS);
    assert_eq!(
        state.health_error.as_deref(),
        Some(r#"/healthz status is "unavailable": no leader"#)
    );
}

/// A pipeline service's part of the probe output: `active`, then its `/health` call
/// (`curl` exit, HTTP `code`, `body`), full mode's version line.
fn pipeline(service: &str, active: &str, curl: &str, code: &str, body: &str) -> String {
    format!(
            "{service}.active={active}\n{service}.installed=yes\n{service}.health.curl={curl}\n{service}.health.code={code}\n--- {service}.health ---\n{body}\n--- end {service}.health ---\n{service}.version=mp-remote 0.1.0\n"
        )
}

fn probe_of(sections: &[String]) -> HostProbe {
    parse(&format!(
        "mp_status=1\n{}status_end=ok\n",
        sections.concat()
    ))
    .unwrap()
}

/// A host that runs everything, storage and collector healthy (pretty-printed JSON too).
#[test]
fn healthy_pipeline_services() {
    let output = HEALTHY.replace(
            "listen_source=ss\n",
            &format!(
                "{}{}listen_source=ss\n",
                pipeline(
                    "storage",
                    "active",
                    "0",
                    "200",
                    r#"{"status":"healthy","nats":"connected","clickhouse":"connected","pending":0,"last_error":null}"#
                ),
                pipeline(
                    "collector",
                    "active",
                    "0",
                    "200",
                    "{\n  \"status\": \"healthy\",\n  \"published\": 1200\n}"
                ),
            ),
        )
        .replace(
            "LISTEN 0      128       0.0.0.0:22    0.0.0.0:*\n",
            "LISTEN 0      128       0.0.0.0:22    0.0.0.0:*\nLISTEN 0      1024      0.0.0.0:8085  0.0.0.0:*\nLISTEN 0      1024      0.0.0.0:9094  0.0.0.0:*\nLISTEN 0      1024      0.0.0.0:8087  0.0.0.0:*\nLISTEN 0      1024      0.0.0.0:9093  0.0.0.0:*\n",
        );
    let probe = parse(&output).unwrap();
    assert_eq!(
        probe.services.keys().copied().collect::<Vec<_>>(),
        Service::ALL
    );
    for (service, ports) in [
        (Service::STORAGE, [8085, 9094]),
        (Service::COLLECTOR, [8087, 9093]),
    ] {
        let state = probe.service(service);
        assert!(
            state.running && state.healthy && state.installed,
            "{state:?}"
        );
        assert_eq!(state.version.as_deref(), Some("0.1.0"));
        assert_eq!(state.ports, ports);
        assert_eq!(state.problem(), None);
    }
    assert_eq!(probe.service(Service::NATS).ports, [4222, 8222]);
    assert_eq!(probe.tables.unwrap().unwrap()["trades"], 1);
}

#[test]
fn degraded_or_unhealthy_pipeline_says_so_with_its_last_error() {
    let cases = [
        (
            "200",
            r#"{"status":"degraded","last_error":"NATS: connection refused, reconnecting"}"#,
            r#"/health status is "degraded": NATS: connection refused, reconnecting"#,
        ),
        (
            "503",
            r#"{"status":"unhealthy","last_error":"ClickHouse: table trades has different columns"}"#,
            r#"/health status is "unhealthy": ClickHouse: table trades has different columns"#,
        ),
        (
            "503",
            r#"{"status":"unhealthy"}"#,
            r#"/health status is "unhealthy""#,
        ),
        (
            "200",
            r#"{"status":"degraded","last_error":null}"#,
            r#"/health status is "degraded""#,
        ),
        (
            "200",
            r#"{"status":"degraded","last_error":{"hop":"nats"}}"#,
            r#"/health status is "degraded": {"hop":"nats"}"#,
        ),
        (
            "200",
            r#"{"status":"degraded","last_error":null,"source":{"degraded":["trade.okx.spot.BTC-USDT: no message for 75 s","okx: not connected (closed)"]}}"#,
            r#"/health status is "degraded": trade.okx.spot.BTC-USDT: no message for 75 s (and 1 more)"#,
        ),
        (
            "200",
            r#"{"state":"healthy"}"#,
            r#"/health status is "missing""#,
        ),
        (
            "200",
            r#"{"status":"Healthy"}"#,
            r#"/health status is "Healthy""#,
        ),
        (
            "503",
            r#"{"status":"healthy"}"#,
            r#"/health says "healthy" but answered HTTP 503"#,
        ),
        (
            "200",
            "healthy",
            "/health answered HTTP 200, not JSON (expected value at line 1 column 1): healthy",
        ),
    ];
    for (code, body, error) in cases {
        let state =
            probe_of(&[pipeline("storage", "active", "0", code, body)]).service(Service::STORAGE);
        assert!(state.running, "{body}");
        assert!(!state.healthy, "{code} {body}");
        assert_eq!(state.health_error.as_deref(), Some(error), "{code} {body}");
        assert_eq!(
            state.problem(),
            Some(format!("running but not healthy: {error}"))
        );
    }
    // "unhealthy" contains "healthy": never taken for it.
    let state = probe_of(&[pipeline(
        "collector",
        "active",
        "0",
        "200",
        r#"{"status":"unhealthy","detail":"healthy"}"#,
    )])
    .service(Service::COLLECTOR);
    assert!(!state.healthy);
}

#[test]
fn pipeline_without_an_answer() {
    // Stopped under systemd: nothing listens.
    let stopped =
        probe_of(&[pipeline("storage", "inactive", "7", "000", "")]).service(Service::STORAGE);
    assert!(!stopped.running && !stopped.healthy && stopped.installed);
    assert_eq!(
        stopped.health_error.as_deref(),
        Some("storage.health: connection refused")
    );
    assert_eq!(stopped.version.as_deref(), Some("0.1.0"));
    let problem = stopped.problem().unwrap();
    assert_eq!(problem, "not running (systemctl is-active: inactive)");
    assert_eq!(
            problem_line(Service::STORAGE, &stopped, &problem),
            "mp-storage not running (systemctl is-active: inactive): start it with `mp-remote start --service storage`"
        );
    // Running, but its health port does not answer in time.
    let hung =
        probe_of(&[pipeline("collector", "active", "28", "000", "")]).service(Service::COLLECTOR);
    assert!(hung.running && !hung.healthy);
    assert_eq!(
        hung.problem().as_deref(),
        Some("running but not healthy: collector.health: no answer in time")
    );
    assert_eq!(
            problem_line(Service::COLLECTOR, &hung, &hung.problem().unwrap()),
            "mp-collector running but not healthy: collector.health: no answer in time: see `mp-remote logs --service collector`"
        );
    // Under mp-remote's supervisor, its server restarting.
    let supervised = probe_of(
        &[pipeline("collector", "restarting", "7", "000", "").replace(
            "collector.active=restarting\n",
            "collector.active=restarting\ncollector.manager=supervisor\n",
        )],
    )
    .service(Service::COLLECTOR);
    assert!(supervised.supervised && !supervised.running);
    assert_eq!(
        supervised.problem().as_deref(),
        Some("not running (mp-remote supervisor: restarting)")
    );
    // Never deployed (or cleaned): no release, no config, no version.
    let absent = probe_of(&[pipeline("storage", "inactive", "7", "000", "")
        .replace("storage.installed=yes", "storage.installed=no")
        .replace("storage.version=mp-remote 0.1.0", "storage.version=")])
    .service(Service::STORAGE);
    assert!(!absent.installed && absent.version.is_none());
    assert_eq!(
        problem_line(Service::STORAGE, &absent, &absent.problem().unwrap()),
        "mp-storage is not installed: run `mp-remote deploy`"
    );
    // Health mode: no version line.
    let health = probe_of(&[
        pipeline("storage", "active", "0", "200", r#"{"status":"healthy"}"#)
            .replace("storage.version=mp-remote 0.1.0\n", ""),
    ])
    .service(Service::STORAGE);
    assert!(health.healthy && health.version.is_none());
    // A host without a ClickHouse role has no tables.
    assert_eq!(
        probe_of(&[pipeline(
            "storage",
            "active",
            "0",
            "200",
            r#"{"status":"healthy"}"#
        )])
        .tables,
        None
    );
}

#[test]
fn row_counts_as_numbers_or_strings() {
    let output = HEALTHY.replace(
            r#"{"table":"trades","rows":"1"}"#,
            "{\"table\":\"trades\",\"rows\":7}\n{\"table\":\"orderbooks\",\"rows\":\"18446744073709551615\"}",
        );
    let tables = parse(&output).unwrap().tables.unwrap().unwrap();
    assert_eq!(tables["trades"], 7);
    assert_eq!(tables["orderbooks"], u64::MAX);
}

#[test]
fn streams_come_from_the_first_nats_host_that_answers() {
    let healthy = parse(HEALTHY).unwrap();
    let stopped = parse(NATS_STOPPED).unwrap();
    let clickhouse = parse(CLICKHOUSE_STOPPED).unwrap();
    type Hosts<'a> = &'a [(bool, Option<&'a HostProbe>)];
    let cases: [(Hosts, Option<usize>); 4] = [
        (
            &[(false, Some(&clickhouse)), (true, Some(&healthy))],
            Some(1),
        ),
        (
            &[(true, None), (true, Some(&stopped)), (true, Some(&healthy))],
            Some(2),
        ),
        (&[(true, None), (true, Some(&stopped))], Some(1)),
        (&[(false, Some(&clickhouse)), (true, None)], None),
    ];
    for (hosts, expected) in cases {
        assert_eq!(stream_host(hosts), expected, "{hosts:?}");
    }
}

#[test]
fn deploy_dir_from_the_host_var_else_the_default() {
    let text = "[[hosts]]\nname = \"a\"\naddress = \"10.0.0.1\"\nroles = [\"storage\"]\n\n[[hosts]]\nname = \"b\"\naddress = \"10.0.0.2\"\nroles = [\"collector\"]\n[hosts.vars]\ndeploy_dir = \"/srv/mp\"\n";
    let inv = crate::inventory::parse(text, std::path::Path::new("inv.toml"), None).unwrap();
    assert_eq!(deploy_dir(&inv.hosts[0]), "/opt/marketprism");
    assert_eq!(deploy_dir(&inv.hosts[1]), "/srv/mp");
}

/// What `agent status` is asked follows the component declarations and the user services.
#[test]
fn requests_follow_the_declarations() {
    let text = "[[hosts]]\nname = \"a\"\naddress = \"10.0.0.1\"\nroles = [\"nats\", \"clickhouse\", \"storage\"]\n[hosts.vars]\ndeploy_dir = \"/srv/mp\"\n";
    let inv = crate::inventory::parse(text, std::path::Path::new("inv.toml"), None).unwrap();
    let host = &inv.hosts[0];
    let request = request(host, &services_of(host, None), &[], true);
    let names: Vec<&str> = request.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["nats", "clickhouse", "storage"]);
    let storage = &request.targets[2];
    assert_eq!(storage.unit, "mp-storage");
    assert_eq!(
        storage.files,
        ["/srv/mp/current/mp-remote", "/etc/marketprism/storage.toml"]
    );
    assert_eq!(
        storage.check,
        crate::plan::probe::Check::Http {
            url: "http://127.0.0.1:8085/health".into()
        }
    );
    let nats = &request.targets[0];
    assert_eq!(nats.package.as_deref(), Some("nats-server"));
    assert_eq!(nats.calls[0].url, "http://127.0.0.1:8222/jsz?streams=true");
    let ch = &request.targets[1];
    assert_eq!(ch.calls.len(), 3);
    assert!(ch
        .calls
        .iter()
        .all(|c| c.auth.is_some() && c.body.is_some()));
    assert_eq!(request.release_link.as_deref(), Some("/srv/mp/current"));
}

/// The agent's own look at this machine, where none of the services is deployed: every
/// target is answered, none installed or healthy.
#[tokio::test]
async fn the_agent_answers_for_every_target_here() {
    let targets: Vec<Target> = Service::ALL
        .iter()
        .map(|s| component_target(s.component(), "/nonexistent/mp-remote-status-test"))
        .collect();
    let request = ProbeRequest {
        full: true,
        targets,
        release_link: Some("/nonexistent/mp-remote-status-test/current".into()),
    };
    let reply = crate::agent::hostops::observe(&request).await;
    assert_eq!(reply.services.len(), 4);
    assert!(reply.listening.is_some());
    let probe = interpret(&request, &reply);
    for service in [Service::STORAGE, Service::COLLECTOR] {
        assert!(!probe.service(service).installed, "{service}");
    }
    assert_eq!(probe.release, None);
}
