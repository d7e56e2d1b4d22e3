//! Probe output of each supported host kind, parsed to the exact expected facts. `debian12.txt`
//! is a real capture (a Debian 12 container without systemd or sudo); the others are written in
//! the probe's format from what those systems print.

use super::*;

const DEBIAN12: &str = include_str!("../../tests/fixtures/facts/debian12.txt");
const DEBIAN12_VM: &str = include_str!("../../tests/fixtures/facts/debian12_vm.txt");
const UBUNTU2204: &str = include_str!("../../tests/fixtures/facts/ubuntu2204.txt");
const ROCKY9: &str = include_str!("../../tests/fixtures/facts/rocky9.txt");
const CENTOS7: &str = include_str!("../../tests/fixtures/facts/centos7.txt");
const MACOS14: &str = include_str!("../../tests/fixtures/facts/macos14.txt");

fn os(id: &str, version_id: &str, family: &str, pretty_name: &str) -> Os {
    Os {
        id: id.into(),
        version_id: version_id.into(),
        family: family.into(),
        pretty_name: pretty_name.into(),
    }
}

/// Tools in the order curl, tar, systemctl, apt-get, dnf, yum, sha256sum, ss, sudo.
fn tools(t: [bool; 9]) -> Tools {
    let [curl, tar, systemctl, apt_get, dnf, yum, sha256sum, ss, sudo] = t;
    Tools {
        curl,
        tar,
        systemctl,
        apt_get,
        dnf,
        yum,
        sha256sum,
        ss,
        sudo,
    }
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[test]
fn debian12_real_capture() {
    let expected = Facts {
        hostname: "vm".into(),
        os: os("debian", "12", "debian", "Debian GNU/Linux 12 (bookworm)"),
        arch: "x86_64".into(),
        kernel: "6.18.44-fc-v669".into(),
        cpus: 2,
        memory_bytes: 24684084 * 1024,
        disk_free_bytes: 80745992 * 1024,
        deploy_dir: "/opt/marketprism".into(),
        app_release: None,
        disk_path: "/opt".into(),
        // /run/systemd/system is absent and PID 1 is the sandbox's own process.
        init: Init::None,
        pid1: "process_api".into(),
        user: "root".into(),
        uid: 0,
        is_root: true,
        passwordless_sudo: false,
        glibc: some("2.36"),
        tools: tools([true, true, true, true, false, false, true, true, false]),
        listening_ports: vec![],
        ports_source: PortsSource::Ss,
        addresses: vec![],
        agent_files: Default::default(),
        installed: Installed::default(),
    };
    assert_eq!(parse(DEBIAN12).unwrap(), expected);
    assert!(expected.can_become_root());
}

#[test]
fn debian12_vm_with_distro_packages_and_login_banner() {
    let f = parse(DEBIAN12_VM).unwrap();
    assert_eq!(
        f.os,
        os("debian", "12", "debian", "Debian GNU/Linux 12 (bookworm)")
    );
    assert_eq!((f.cpus, f.memory_bytes), (4, 8131216 * 1024));
    assert_eq!(f.disk_free_bytes, 29038516 * 1024);
    assert_eq!(
        (f.deploy_dir.as_str(), f.disk_path.as_str()),
        ("/srv/marketprism", "/srv")
    );
    assert_eq!(f.init, Init::Systemd);
    assert_eq!((f.user.as_str(), f.uid, f.is_root), ("admin", 1000, false));
    assert!(f.passwordless_sudo && f.can_become_root());
    assert_eq!(f.glibc, some("2.36"));
    assert_eq!(f.listening_ports, [4222, 8123, 8222, 9000]);
    assert_eq!(
        f.installed,
        Installed {
            nats_server: some("2.9.10"),
            nats_server_raw: some("nats-server: v2.9.10"),
            clickhouse_server: some("18.16.1"),
            clickhouse_server_raw: some("18.16.1+ds-7.4"),
        }
    );
}

#[test]
fn ubuntu2204() {
    let expected = Facts {
        hostname: "mp-ingest-01".into(),
        os: os("ubuntu", "22.04", "debian", "Ubuntu 22.04.4 LTS"),
        arch: "x86_64".into(),
        kernel: "5.15.0-105-generic".into(),
        cpus: 4,
        memory_bytes: 8139276 * 1024,
        disk_free_bytes: 75950244 * 1024,
        deploy_dir: "/opt/marketprism".into(),
        app_release: None,
        disk_path: "/opt".into(),
        init: Init::Systemd,
        pid1: "systemd".into(),
        user: "ubuntu".into(),
        uid: 1000,
        is_root: false,
        passwordless_sudo: true,
        glibc: some("2.35"),
        tools: tools([true, true, true, true, false, false, true, true, true]),
        listening_ports: vec![4222, 8222],
        ports_source: PortsSource::Ss,
        addresses: vec![],
        agent_files: Default::default(),
        installed: Installed {
            nats_server: some("2.10.7"),
            nats_server_raw: some("nats-server: v2.10.7"),
            ..Installed::default()
        },
    };
    assert_eq!(parse(UBUNTU2204).unwrap(), expected);
}

#[test]
fn rocky9_aarch64_with_clickhouse_and_password_sudo() {
    let expected = Facts {
        hostname: "ch-arm-02.internal".into(),
        os: os("rocky", "9.3", "rhel", "Rocky Linux 9.3 (Blue Onyx)"),
        arch: "aarch64".into(),
        kernel: "5.14.0-362.8.1.el9_3.aarch64".into(),
        cpus: 8,
        memory_bytes: 16063948 * 1024,
        disk_free_bytes: 68741068 * 1024,
        deploy_dir: "/opt/marketprism".into(),
        app_release: None,
        disk_path: "/opt/marketprism".into(),
        init: Init::Systemd,
        pid1: "systemd".into(),
        user: "rocky".into(),
        uid: 1000,
        is_root: false,
        passwordless_sudo: false,
        glibc: some("2.34"),
        tools: tools([true, true, true, false, true, true, true, true, true]),
        listening_ports: vec![8123, 9000],
        ports_source: PortsSource::Ss,
        addresses: vec![],
        agent_files: Default::default(),
        installed: Installed {
            clickhouse_server: some("23.8.2.7"),
            clickhouse_server_raw: some("ClickHouse server version 23.8.2.7 (official build)."),
            ..Installed::default()
        },
    };
    let f = parse(ROCKY9).unwrap();
    assert_eq!(f, expected);
    assert_eq!(f.target_arch(), Some("aarch64"));
    assert!(!f.can_become_root());
}

#[test]
fn centos7_without_ss_falls_back_to_proc_net_tcp() {
    let expected = Facts {
        hostname: "legacy-db.example.com".into(),
        os: os("centos", "7", "rhel", "CentOS Linux 7 (Core)"),
        arch: "x86_64".into(),
        kernel: "3.10.0-1160.119.1.el7.x86_64".into(),
        cpus: 2,
        memory_bytes: 3880348 * 1024,
        disk_free_bytes: 15670820 * 1024,
        deploy_dir: "/opt/marketprism".into(),
        app_release: None,
        disk_path: "/opt".into(),
        init: Init::Systemd,
        pid1: "systemd".into(),
        user: "root".into(),
        uid: 0,
        is_root: true,
        passwordless_sudo: true,
        glibc: some("2.17"),
        tools: tools([true, true, true, false, false, true, true, false, true]),
        // 9000 is taken by something else (php-fpm); the connection *to* 4222 and the
        // TIME_WAIT socket on 8123 are not listeners.
        listening_ports: vec![9000],
        ports_source: PortsSource::Proc,
        addresses: vec![],
        agent_files: Default::default(),
        installed: Installed::default(),
    };
    let f = parse(CENTOS7).unwrap();
    assert_eq!(f, expected);
    assert_eq!(port_owner(f.listening_ports[0]), "ClickHouse native");
}

#[test]
fn macos14() {
    let expected = Facts {
        hostname: "mbp-dev.local".into(),
        os: os("macos", "14.4.1", "macos", "macOS 14.4.1"),
        arch: "arm64".into(),
        kernel: "23.4.0".into(),
        cpus: 10,
        memory_bytes: 17179869184,
        disk_free_bytes: 198765432 * 1024,
        deploy_dir: "/opt/marketprism".into(),
        app_release: None,
        disk_path: "/".into(),
        init: Init::Launchd,
        pid1: "/sbin/launchd".into(),
        user: "dev".into(),
        uid: 501,
        is_root: false,
        passwordless_sudo: false,
        glibc: None,
        tools: tools([true, true, false, false, false, false, false, false, true]),
        listening_ports: vec![4222, 8123],
        ports_source: PortsSource::Netstat,
        addresses: vec![],
        agent_files: Default::default(),
        installed: Installed {
            nats_server: some("2.10.14"),
            nats_server_raw: some("nats-server: v2.10.14"),
            clickhouse_server: some("24.3.1.2672"),
            clickhouse_server_raw: some("ClickHouse server version 24.3.1.2672 (official build)."),
        },
    };
    let f = parse(MACOS14).unwrap();
    assert_eq!(f, expected);
    assert_eq!(f.target_arch(), Some("aarch64"));
}

#[test]
fn json_field_names_and_round_trip() {
    let f = parse(ROCKY9).unwrap();
    let json = serde_json::to_value(&f).unwrap();
    assert_eq!(json["os"]["id"], "rocky");
    assert_eq!(json["os"]["version_id"], "9.3");
    assert_eq!(json["os"]["family"], "rhel");
    assert_eq!(json["arch"], "aarch64");
    assert_eq!(json["cpus"], 8);
    assert_eq!(json["memory_bytes"], 16063948u64 * 1024);
    assert_eq!(json["init"], "systemd");
    assert_eq!(json["tools"]["apt_get"], false);
    assert_eq!(json["listening_ports"], serde_json::json!([8123, 9000]));
    assert_eq!(json["installed"]["clickhouse_server"], "23.8.2.7");
    assert_eq!(json["installed"]["nats_server"], serde_json::Value::Null);
    assert_eq!(json["ports_source"], "ss");
    let back: Facts = serde_json::from_value(json).unwrap();
    assert_eq!(back, f);

    let mac = serde_json::to_value(parse(MACOS14).unwrap()).unwrap();
    assert_eq!(mac["init"], "launchd");
    let deb = serde_json::to_value(parse(DEBIAN12).unwrap()).unwrap();
    assert_eq!(deb["init"], "none");
}

#[test]
fn every_fixture_is_framed_like_the_script_prints() {
    // Catches fixtures drifting from the script: each key the fixtures use is printed by it.
    for fixture in [DEBIAN12, DEBIAN12_VM, UBUNTU2204, ROCKY9, CENTOS7, MACOS14] {
        let body = &fixture[fixture.find("mp_facts=1").unwrap()..];
        let mut in_section = false;
        for line in body.lines() {
            if line.starts_with("--- ") {
                in_section = !line.starts_with("--- end ");
                continue;
            }
            if in_section {
                continue;
            }
            let key = line.split_once('=').map(|(k, _)| k).unwrap_or(line);
            let key = key.strip_prefix("tool.").unwrap_or(key);
            assert!(
                PROBE_SCRIPT.contains(key),
                "fixture key `{key}` is not in probe.sh"
            );
        }
    }
}

#[test]
fn watched_ports_have_owners() {
    for port in watched_ports() {
        assert_ne!(port_owner(port), "unknown", "{port}");
    }
    assert_eq!(port_owner(4222), "NATS client");
    assert_eq!(port_owner(8087), "collector");
    assert_eq!(port_owner(22), "unknown");
}
