use super::*;
use crate::stack::managed::managed_marker_ok;
use crate::stack::nats::{NatsCredentials, NatsUser};

#[test]
fn single_node_exactly() {
    let f = render_config(&NatsConfigInput::new("mp-nats-1")).unwrap();
    assert_eq!(f.name, "nats-server.conf");
    assert_eq!(
        f.text,
        "# managed by mp-remote: sha256=a34f2ba4721c7f36cc68b8d44217763154fca272329f8a9034f19b16c461298d
server_name: \"mp-nats-1\"
listen: \"0.0.0.0:4222\"
http: \"127.0.0.1:8222\"

jetstream {
    store_dir: \"/var/lib/nats/jetstream\"
    max_file_store: 8589934592
}
"
    );
    assert!(managed_marker_ok(&f.text));
}

#[test]
fn three_nodes_route_to_the_two_others() {
    let all: Vec<String> = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let input = NatsConfigInput {
        routes: peer_addresses("10.0.0.2", &all),
        store_dir: "/srv/nats/js".into(),
        max_file_store_bytes: 20 << 30,
        ..NatsConfigInput::new("nats-b")
    };
    assert_eq!(input.routes, ["10.0.0.1", "10.0.0.3"]);
    let f = render_config(&input).unwrap();
    assert!(managed_marker_ok(&f.text));
    assert_eq!(
        f.text.split_once('\n').unwrap().1,
        "server_name: \"nats-b\"
listen: \"0.0.0.0:4222\"
http: \"127.0.0.1:8222\"

jetstream {
    store_dir: \"/srv/nats/js\"
    max_file_store: 21474836480
}

cluster {
    name: \"marketprism\"
    listen: \"0.0.0.0:6222\"
    routes: [
        \"nats-route://10.0.0.1:6222\"
        \"nats-route://10.0.0.3:6222\"
    ]
}
"
    );
    assert!(!f.text.contains("10.0.0.2"));
}

#[test]
fn routes_use_the_cluster_port_and_bracket_ipv6() {
    let input = NatsConfigInput {
        cluster_port: 7222,
        routes: vec!["fd00::2".into(), "nats-c.internal".into()],
        ..NatsConfigInput::new("a")
    };
    let text = render_config(&input).unwrap().text;
    assert!(
        text.contains("        \"nats-route://[fd00::2]:7222\"\n"),
        "{text}"
    );
    assert!(
        text.contains("        \"nats-route://nats-c.internal:7222\"\n"),
        "{text}"
    );
    assert!(text.contains("    listen: \"0.0.0.0:7222\"\n"), "{text}");
}

#[test]
fn peer_addresses_exclude_self_and_repeats() {
    let all: Vec<String> = ["a", "b", "a", "c", "b"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(peer_addresses("b", &all), ["a", "c"]);
    assert!(peer_addresses("a", &["a".to_string()]).is_empty());
}

#[test]
fn bad_inputs_are_refused() {
    let base = NatsConfigInput::new("n1");
    let cases: Vec<(NatsConfigInput, &str)> = vec![
        (
            NatsConfigInput {
                store_dir: "/tmp/nats/jetstream".into(),
                ..base.clone()
            },
            "invalid JetStream store_dir `/tmp/nats/jetstream`: must not be under /tmp, /var/tmp \
             or /dev/shm: JetStream's data would not survive a reboot",
        ),
        (
            NatsConfigInput {
                store_dir: "/tmp".into(),
                ..base.clone()
            },
            "",
        ),
        (
            NatsConfigInput {
                store_dir: "var/lib/nats".into(),
                ..base.clone()
            },
            "invalid JetStream store_dir `var/lib/nats`: must be an absolute path",
        ),
        (
            NatsConfigInput {
                store_dir: "/var/lib/../../tmp/x".into(),
                ..base.clone()
            },
            "",
        ),
        (
            NatsConfigInput {
                server_name: "my nats".into(),
                ..base.clone()
            },
            "invalid NATS server_name `my nats`: expected letters, digits, `_`, `.` and `-` (no \
             spaces)",
        ),
        (
            NatsConfigInput {
                monitor_port: 4222,
                ..base.clone()
            },
            "invalid NATS monitor_port `4222`: the same port as NATS client_port",
        ),
        (
            NatsConfigInput {
                max_file_store_bytes: 0,
                ..base.clone()
            },
            "",
        ),
        (
            NatsConfigInput {
                routes: vec!["nats-route://10.0.0.2:6222".into()],
                ..base.clone()
            },
            "invalid NATS route `nats-route://10.0.0.2:6222`: expected a node's private IP \
             address or host name (no scheme, no port)",
        ),
        (
            NatsConfigInput {
                routes: vec!["10.0.0.2".into(), "10.0.0.2".into()],
                ..base.clone()
            },
            "invalid NATS route `10.0.0.2`: listed twice",
        ),
    ];
    for (input, msg) in cases {
        let err = render_config(&input).unwrap_err().to_string();
        if !msg.is_empty() {
            assert_eq!(err, msg);
        }
    }
}

#[test]
fn with_credentials_every_client_and_route_authenticates() {
    let all: Vec<String> = ["10.0.0.1", "10.0.0.2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let credentials = NatsCredentials::new("s3cr3t-fleet-secret");
    let input = NatsConfigInput {
        routes: peer_addresses("10.0.0.1", &all),
        credentials: Some(credentials.clone()),
        ..NatsConfigInput::new("nats-a")
    };
    let f = render_config(&input).unwrap();
    assert!(managed_marker_ok(&f.text));
    let route = credentials.route_password();
    let collector = credentials.password(NatsUser::Collector);
    let admin = credentials.password(NatsUser::Admin);
    assert!(
        !f.text.contains("s3cr3t-fleet-secret"),
        "the secret itself stays out"
    );
    assert!(f.text.contains(&format!(
        "
    authorization {{
        user: \"route\"
        password: \"{route}\"
    }}
    routes: [
        \"nats-route://route:{route}@10.0.0.2:6222\"
    ]"
    )));
    assert!(f.text.contains(&format!(
        "
# One user per kind of client, each with the least it needs; no anonymous client.
authorization {{
    users: [
        {{
            user: \"mp-admin\"
            password: \"{admin}\"
        }}
        {{
            user: \"collector\"
            password: \"{collector}\"
            permissions: {{
                publish: {{
                    allow: [\"trade.>\", \"funding_rate.>\", \"open_interest.>\", \"liquidation.>\", \"volatility_index.>\", \"lsr_top_position.>\", \"lsr_all_account.>\", \"orderbook.>\"]
                }}
                subscribe: {{
                    allow: [\"_INBOX_collector.>\"]
                }}
            }}
        }}"
    )), "{}", f.text);
    assert!(f.text.contains("                    deny: [\"trade.>\""));
    // The same inputs give the same bytes: a re-deploy changes nothing.
    assert_eq!(render_config(&input).unwrap().text, f.text);
}

#[test]
fn with_tls_clients_and_routes_use_the_pushed_files() {
    let all: Vec<String> = ["10.0.0.1", "10.0.0.2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let input = NatsConfigInput {
        routes: peer_addresses("10.0.0.1", &all),
        credentials: Some(NatsCredentials::new("s3cr3t-fleet-secret")),
        tls: true,
        ..NatsConfigInput::new("nats-a")
    };
    let text = render_config(&input).unwrap().text;
    let block = "tls {
        cert_file: \"/etc/marketprism/nats-cert.pem\"
        key_file: \"/etc/marketprism/nats-key.pem\"
        ca_file: \"/etc/marketprism/nats-ca.pem\"
        timeout: 5
    }";
    // Once at the top level (clients), once in the cluster block (routes).
    assert!(
        text.contains(&format!(
            "max_file_store: 8589934592
}}

# Clients connect with TLS (the monitoring port stays plain HTTP for health and status).
{}
",
            block.replace("\n    ", "\n")
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
        "    # Routes: each node presents the certificate and checks the other's against the CA.
    {block}
    routes: ["
    )),
        "{text}"
    );
    assert!(
        text.contains("http: \"127.0.0.1:8222\"\n"),
        "monitoring stays plain HTTP"
    );
    let plain = render_config(&NatsConfigInput {
        tls: false,
        ..input
    })
    .unwrap();
    assert!(!plain.text.contains("tls"));
}

#[test]
fn every_listener_binds_the_one_listen_address() {
    let mut input = NatsConfigInput::new("n1");
    input.listen = "10.0.0.5".into();
    input.routes = vec!["10.0.0.6".into()];
    let text = render_config(&input).unwrap().text;
    for line in [
        "listen: \"10.0.0.5:4222\"\n",
        "http: \"127.0.0.1:8222\"\n",
        "    listen: \"10.0.0.5:6222\"\n",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    input.listen = "fd00::5".into();
    assert!(render_config(&input)
        .unwrap()
        .text
        .contains("listen: \"[fd00::5]:4222\"\n"));
    input.listen = "nats.internal".into();
    let e = render_config(&input).unwrap_err().to_string();
    assert!(e.contains("expected an IP address"), "{e}");
}
