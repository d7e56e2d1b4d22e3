//! NATS with TLS from the inventory (`[components.nats] tls`) on four real hosts: a NATS
//! cluster of three (h1 also runs ClickHouse and the storage) and a collector on h4: certificates made here with openssl
//! (a CA, and one server certificate naming every node's private address and 127.0.0.1),
//! pushed by the deploy; the routes, the collector, the storage and the agent's stream step
//! connect over TLS (the routes count and the deploy's data-flow check prove it), a client
//! without TLS is refused, `status` still answers and a second deploy changes nothing.

use std::path::Path;
use std::process::Command;

use crate::support::fleet::set_roles;
use crate::support::{assert_nothing_changed, mp_remote, run_ok, Fleet};

/// `openssl` with `args` (split at spaces) in `dir`.
fn openssl(dir: &Path, args: &str) {
    run_ok(
        Command::new("openssl")
            .current_dir(dir)
            .args(args.split_whitespace()),
    );
}

/// `ca.pem`, `nats.pem` and `nats-key.pem` in `dir`, the server's naming `ips` and loopback.
fn make_certificates(dir: &Path, ips: &[&str]) {
    openssl(dir, "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mp-test-ca -keyout ca-key.pem -out ca.pem");
    openssl(
        dir,
        "req -newkey rsa:2048 -nodes -subj /CN=nats -keyout nats-key.pem -out nats.csr",
    );
    let names: Vec<String> = ips.iter().map(|ip| format!("IP:{ip}")).collect();
    std::fs::write(
        dir.join("san.ext"),
        format!(
            "subjectAltName = {}, IP:127.0.0.1\nextendedKeyUsage = serverAuth, clientAuth\n",
            names.join(", ")
        ),
    )
    .unwrap();
    openssl(dir, "x509 -req -in nats.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -extfile san.ext -out nats.pem");
}

#[test]
fn nats_with_tls_from_the_inventory() {
    let fleet = Fleet::up("tls", 4, 0);
    let h1 = fleet.host("h1");
    std::fs::create_dir_all(fleet.path("certs")).unwrap();
    let ips: Vec<&str> = fleet.hosts.iter().map(|h| h.private_ip.as_str()).collect();
    make_certificates(&fleet.path("certs"), &ips);
    let known_hosts = fleet.path("known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.roles = &["nats", "clickhouse", "storage", "collector"];
    options.extra = "[components.nats]\nsource = \"os\"\n\
         tls = { cert = \"certs/nats.pem\", key = \"certs/nats-key.pem\", ca = \"certs/ca.pem\" }\n\n\
         [components.clickhouse]\nsource = \"os\"\n";
    let inventory = fleet.inventory("inv.toml", &options);
    set_roles(&inventory, |host| match host {
        "h1" => "[\"nats\", \"clickhouse\", \"storage\"]".to_string(),
        "h4" => "[\"collector\"]".to_string(),
        _ => "[\"nats\"]".to_string(),
    });

    let check = mp_remote(Some(&inventory), &["inventory", "check"]);
    assert_eq!(check.code, 0, "{check:?}");
    let first = mp_remote(Some(&inventory), &["deploy"]);
    println!("first deploy:\n{}{}", first.stdout, first.stderr);
    // Exit 0 includes the streams (the agent over TLS) and rows in every table (both
    // services over TLS).
    assert_eq!(first.code, 0, "{first:?}");
    let key = std::fs::read_to_string(fleet.path("certs/nats-key.pem")).unwrap();
    let key_line = key.lines().nth(1).unwrap();
    assert!(!first.stdout.contains(key_line), "the key was printed");
    assert_eq!(
        fleet.exec("h1", "stat -c '%a %U' /etc/marketprism/nats-key.pem"),
        "600 nats\n"
    );

    // A client without TLS is told to use it, and gets nowhere.
    let said = crate::support::wire::nats_says(&format!("{}:4222", h1.private_ip), None, "");
    assert!(!said.contains("PONG"), "{said}");
    let info = crate::support::wire::nats_info(&format!("{}:4222", h1.private_ip));
    assert!(info.contains("\"tls_required\":true"), "{info}");

    // Every node routes to the two others: over TLS, as the cluster block requires.
    for host in ["h1", "h2", "h3"] {
        let routez = fleet.exec(host, "curl -sf http://127.0.0.1:8222/routez");
        let routes: serde_json::Value = serde_json::from_str(&routez).unwrap();
        assert_eq!(routes["num_routes"], 2, "{host}: {routez}");
    }

    let status = mp_remote(Some(&inventory), &["status"]);
    assert_eq!(status.code, 0, "{status:?}");

    let second = mp_remote(Some(&inventory), &["deploy"]);
    assert_nothing_changed(&second);
}
