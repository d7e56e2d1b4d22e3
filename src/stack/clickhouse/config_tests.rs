use super::*;
use crate::stack::managed::{managed_marker_ok, managed_state, ManagedState};

fn v(s: &str) -> ClickHouseVersion {
    ClickHouseVersion::parse(s).unwrap()
}

/// The text after the marker line, after checking the marker.
fn body(f: &ManagedFile) -> &str {
    assert!(managed_marker_ok(&f.text), "{}", f.text);
    assert!(f.text.starts_with("<!-- managed by mp-remote: sha256="));
    f.text.split_once('\n').unwrap().1
}

#[test]
fn root_element_by_version() {
    for (raw, root) in [
        ("18.16.1", "yandex"),
        ("21.12.4", "yandex"),
        ("21.11", "yandex"),
        ("22.3.1", "clickhouse"),
        ("23.8.2.7", "clickhouse"),
        ("25.10.1.3832", "clickhouse"),
    ] {
        assert_eq!(xml_root(&v(raw)), root, "{raw}");
    }
}

#[test]
fn listen_config_legacy_root_exactly() {
    let f = listen_config(&v("18.16.1"), &ListenConfigInput::default()).unwrap();
    assert_eq!(f.name, "config.d/mp-listen.xml");
    assert_eq!(
        f.text,
        "<!-- managed by mp-remote: sha256=2e04c28131e80ee02566103983ad3f8dc786bb42c83504501a78d00dbe85e78b -->
<yandex>
    <!-- Listen on these addresses only: Debian's default (::1) fails where IPv6 is off. -->
    <listen_host>0.0.0.0</listen_host>
    <http_port>8123</http_port>
    <tcp_port>9000</tcp_port>
</yandex>
"
    );
}

#[test]
fn listen_config_modern_root_and_several_hosts() {
    let input = ListenConfigInput {
        listen_hosts: vec!["10.0.0.5".into(), "::1".into()],
        ..ListenConfigInput::default()
    };
    let f = listen_config(&v("23.8.2.7"), &input).unwrap();
    assert_eq!(
        body(&f),
        "<clickhouse>
    <!-- Listen on these addresses only: Debian's default (::1) fails where IPv6 is off. -->
    <listen_host>10.0.0.5</listen_host>
    <listen_host>::1</listen_host>
    <http_port>8123</http_port>
    <tcp_port>9000</tcp_port>
</clickhouse>
"
    );
}

#[test]
fn users_config_legacy_root_exactly() {
    let f = users_config(&v("18.16.1"), &UsersConfigInput::marketprism("s3cret")).unwrap();
    assert_eq!(f.name, "users.d/mp-users.xml");
    assert_eq!(
        f.text,
        "<!-- managed by mp-remote: sha256=d8757f179ba03f80612e71e54b66e85328aa8830f0be5f62e322200b22a653b5 -->
<yandex>
    <users>
        <marketprism>
            <password_sha256_hex>1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0</password_sha256_hex>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
            <allow_databases>
                <database>marketprism_hot</database>
            </allow_databases>
        </marketprism>
        <!-- The package's default user has no password: from this host only. -->
        <default>
            <networks replace=\"replace\">
                <ip>::1</ip>
                <ip>127.0.0.1</ip>
            </networks>
        </default>
    </users>
</yandex>
"
    );
    assert!(!f.text.contains("s3cret"));
}

#[test]
fn users_config_modern_root() {
    let f = users_config(&v("25.10.1"), &UsersConfigInput::marketprism("s3cret")).unwrap();
    let b = body(&f);
    assert!(
        b.starts_with("<clickhouse>\n    <users>\n        <marketprism>\n"),
        "{b}"
    );
    assert!(b.ends_with("    </users>\n</clickhouse>\n"), "{b}");
    assert!(!f.text.contains("s3cret"));
}

#[test]
fn the_password_never_shows() {
    let input = UsersConfigInput::marketprism("hunter2-very-secret");
    assert!(!format!("{input:?}").contains("hunter2"));
    let f = users_config(&v("18.16.1"), &input).unwrap();
    assert!(!f.text.contains("hunter2"));
}

#[test]
fn an_edited_file_is_not_ok() {
    let f = listen_config(&v("18.16.1"), &ListenConfigInput::default()).unwrap();
    let edited = f.text.replace("0.0.0.0", "127.0.0.1");
    assert_eq!(managed_state(&edited), ManagedState::Edited);
}

#[test]
fn bad_inputs_are_refused() {
    let ver = v("18.16.1");
    let listen = |hosts: &[&str], http, tcp| ListenConfigInput {
        listen_hosts: hosts.iter().map(|h| h.to_string()).collect(),
        http_port: http,
        tcp_port: tcp,
        listen_try: false,
    };
    for input in [
        listen(&[], 8123, 9000),
        listen(&["localhost"], 8123, 9000),
        listen(&["0.0.0.0</listen_host>"], 8123, 9000),
        listen(&["0.0.0.0"], 0, 9000),
        listen(&["0.0.0.0"], 9000, 9000),
    ] {
        assert!(listen_config(&ver, &input).is_err(), "{input:?}");
    }
    let user = |f: &dyn Fn(&mut UsersConfigInput)| {
        let mut u = UsersConfigInput::marketprism("pw");
        f(&mut u);
        u
    };
    for input in [
        user(&|u| u.password.clear()),
        user(&|u| u.user = "market prism".into()),
        user(&|u| u.user = "<x>".into()),
        user(&|u| u.user = "1user".into()),
        user(&|u| u.networks.clear()),
        user(&|u| u.networks = vec!["10.0.0.0/33".into()]),
        user(&|u| u.networks = vec!["anywhere".into()]),
        user(&|u| u.database = "hot; DROP".into()),
    ] {
        assert!(users_config(&ver, &input).is_err(), "{input:?}");
    }
    assert_eq!(
        users_config(&ver, &user(&|u| u.password.clear()))
            .unwrap_err()
            .to_string(),
        "invalid ClickHouse password ``: an empty password would let anyone in from the allowed \
         networks"
    );
    let ok =
        user(&|u| u.networks = vec!["10.0.0.0/8".into(), "fd00::/8".into(), "127.0.0.1".into()]);
    assert!(users_config(&ver, &ok).is_ok());
}

#[test]
fn listen_on_loopback_and_the_private_address_only() {
    let f = listen_config(&v("18.16.1"), &ListenConfigInput::loopback_and("10.0.0.5")).unwrap();
    assert_eq!(
        body(&f),
        "<yandex>
    <!-- Listen on these addresses only: Debian's default (::1) fails where IPv6 is off. -->
    <listen_host>127.0.0.1</listen_host>
    <listen_host>10.0.0.5</listen_host>
    <!-- An address this host does not have is skipped instead of stopping the server. -->
    <listen_try>1</listen_try>
    <http_port>8123</http_port>
    <tcp_port>9000</tcp_port>
</yandex>
"
    );
    let one = |a: &str| ListenConfigInput::loopback_and(a).listen_hosts;
    assert_eq!(one("127.0.0.1"), ["127.0.0.1"]);
    assert_eq!(one("fd00::5"), ["127.0.0.1", "fd00::5"]);
    // ClickHouse binds IPs: a host name leaves the wildcard (the user's networks still apply).
    assert_eq!(one("db1.internal"), ["0.0.0.0"]);
    assert!(!ListenConfigInput::loopback_and("127.0.0.1").listen_try);
}

#[test]
fn the_user_comes_from_loopback_and_the_allowed_hosts_only() {
    let mut input = UsersConfigInput::marketprism("pw-pw-pw");
    input.allow("10.0.0.21");
    input.allow("10.0.0.21");
    input.allow("storage-2.internal");
    let f = users_config(&v("23.8.2.7"), &input).unwrap();
    assert!(body(&f).contains(
        "            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
                <ip>10.0.0.21</ip>
                <host>storage-2.internal</host>
            </networks>
"
    ));
    assert!(!f.text.contains("::/0"));
    input.allow("bad host;");
    assert!(users_config(&v("23.8.2.7"), &input).is_err());
}
