//! `deploy` of the multi-node layout on five real hosts: a 3-node NATS cluster with R3 streams,
//! a separate ClickHouse host and a host for the pipeline services, which reach the others over
//! their private addresses; a second deploy that changes nothing; one NATS node restarted
//! while the collector publishes, and nothing lost.

use crate::support::fleet::set_roles;
use crate::support::pipeline::{Pipeline, TABLES};
use crate::support::{assert_nothing_changed, mp_remote, wait_for, Fleet};

#[test]
fn deploy_three_node_nats_cluster_with_r3_streams() {
    let fleet = Fleet::up("multi", 5, 0);
    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.extra =
        "[components.nats]\nsource = \"os\"\n\n[components.clickhouse]\nsource = \"os\"\n";
    // h1..h3: NATS; h4: ClickHouse and storage; h5: collector. The fleet helper gives every host the same roles, so
    // write the roles per host by rewriting the generated inventory.
    let inventory = fleet.inventory("inv.toml", &options);
    set_roles(&inventory, |host| {
        match host {
            // A short data-flow deadline: the last deploy below fails on purpose.
            "h4" => "[\"clickhouse\", \"storage\"]\nvars = { verify_timeout_secs = 20 }",
            "h5" => "[\"collector\"]",
            _ => "[\"nats\"]",
        }
        .to_string()
    });

    let first = mp_remote(Some(&inventory), &["deploy"]);
    println!("first deploy:\n{}{}", first.stdout, first.stderr);
    assert_eq!(first.code, 0, "{first:?}");

    // Every node sees the other two as routes, and the streams have three replicas.
    for host in ["h1", "h2", "h3"] {
        let routez = fleet.exec(host, "curl -sf http://127.0.0.1:8222/routez");
        let routes: serde_json::Value = serde_json::from_str(&routez).unwrap();
        assert_eq!(routes["num_routes"], 2, "{host}: {routez}");
    }
    // In a fleet, each node's client and cluster listeners are on its private address only,
    // monitoring on loopback only.
    let listening = fleet.exec("h1", "ss -Htln");
    for port in [4222, 6222] {
        let own = format!("{}:{port}", fleet.host("h1").private_ip);
        assert!(
            listening.contains(&own) && !listening.contains(&format!("0.0.0.0:{port}")),
            "NATS on {own} only: {listening}"
        );
    }
    assert!(
        listening.contains("127.0.0.1:8222") && !listening.contains("0.0.0.0:8222"),
        "NATS monitoring on loopback only: {listening}"
    );
    let info = fleet.exec(
        "h2",
        "curl -sf 'http://127.0.0.1:8222/jsz?streams=true&config=true'",
    );
    let jsz: serde_json::Value = serde_json::from_str(&info).unwrap();
    let streams: Vec<&serde_json::Value> = jsz["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["stream_detail"].as_array().into_iter().flatten())
        .collect();
    let names: Vec<&str> = streams
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"MARKET_DATA") && names.contains(&"ORDERBOOK_SNAP"),
        "{info}"
    );
    for stream in &streams {
        assert_eq!(stream["config"]["num_replicas"], 3, "{stream}");
    }
    let tables = fleet.exec(
        "h4",
        "curl -sf --data-binary \"SELECT count() FROM system.tables WHERE database = 'marketprism_hot'\" http://127.0.0.1:8123/",
    );
    assert_eq!(tables.trim(), "8");

    // Layer 5 passed (exit 0): rows in every table, published on h5, stored from h4.
    let p = Pipeline {
        fleet: &fleet,
        clickhouse: "h4",
        nats: &["h1", "h2", "h3"],
        storage: "h4",
        collector: "h5",
    };
    let rows = p.row_counts();
    for table in TABLES {
        assert!(
            rows.get(table).copied().unwrap_or(0) > 0,
            "{table}: {rows:?}"
        );
    }

    let second = mp_remote(Some(&inventory), &["deploy"]);
    println!("second deploy:\n{}{}", second.stdout, second.stderr);
    assert_nothing_changed(&second);

    // One node of the cluster restarts while the collector publishes: R3 keeps every message.
    p.systemctl("h2", "restart nats-server");
    wait_for("h2 back in the cluster", 60, || {
        let body = fleet.exec("h2", "curl -s http://127.0.0.1:8222/healthz || true");
        serde_json::from_str::<serde_json::Value>(&body).is_ok_and(|v| v["status"] == "ok")
    });
    p.wait_for_messages("300 messages after the restart", 300);
    p.assert_nothing_lost();

    // The collector is stopped now: a deploy that leaves its host out fails in layer 5 and
    // names the hop.
    let broken = mp_remote(Some(&inventory), &["deploy", "--limit", "!h5"]);
    println!(
        "deploy without a collector:\n{}{}",
        broken.stdout, broken.stderr
    );
    assert_eq!(broken.code, 2, "{broken:?}");
    assert!(
        broken.stdout.contains("verify.storage.data-flow")
            && broken.stdout.contains("stream not receiving"),
        "{}",
        broken.stdout
    );
}
