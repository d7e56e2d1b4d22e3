//! Raw client conversations from the control node with the servers on a test host, to see
//! exactly what a client that is not one of the fleet's gets: NATS's protocol lines, and
//! ClickHouse's HTTP answer.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Connects to NATS at `addr`, sends `CONNECT` with `login` (user, password) or none, then
/// `commands` and a `PING`; returns what the server said (its INFO line removed) until its
/// `PONG`, an error that closed the connection, or 5 s.
pub fn nats_says(addr: &str, login: Option<(&str, &str)>, commands: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    stream
        .write_all(nats_request(login, commands).as_bytes())
        .unwrap();
    let mut said = String::new();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    while started.elapsed() < Duration::from_secs(5) && !said.contains("PONG") {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => said.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(_) => continue,
        }
    }
    without_info(&said)
}

/// [`nats_says`] from inside `host`, to the NATS that listens on its loopback only (a fleet
/// of one host): bash's `/dev/tcp`, read up to the `PONG` or the server's close.
pub fn nats_says_on(
    fleet: &crate::support::fleet::Fleet,
    host: &str,
    login: Option<(&str, &str)>,
    commands: &str,
) -> String {
    // Every byte as an octal escape: bash's printf writes it back as it was. A server that
    // refuses the login closes the connection while the rest is still being written: the
    // write may fail (SIGPIPE ignored), what the server said is still read.
    let request: String = nats_request(login, commands)
        .bytes()
        .map(|b| format!("\\{b:03o}"))
        .collect();
    let said = fleet.exec(
        host,
        &format!(
            "bash -c 'trap \"\" PIPE; exec 3<>/dev/tcp/127.0.0.1/4222; \
             printf \"{request}\" >&3 2>/dev/null; timeout 5 sed \"/PONG/q\" <&3 || true'"
        ),
    );
    without_info(&said)
}

/// `CONNECT` with `login` (user, password) or none, then `commands` and a `PING`.
fn nats_request(login: Option<(&str, &str)>, commands: &str) -> String {
    let connect = match login {
        Some((user, pass)) => serde_json::json!({
            "verbose": false, "pedantic": false, "protocol": 1, "user": user, "pass": pass
        }),
        None => serde_json::json!({"verbose": false, "pedantic": false, "protocol": 1}),
    };
    format!("CONNECT {connect}\r\n{commands}PING\r\n")
}

fn without_info(said: &str) -> String {
    said.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.starts_with("INFO "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The server's INFO line, as a client sees it first.
pub fn nats_info(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `SELECT 1` over ClickHouse's HTTP interface at `addr` as `user`: (status line, body).
pub fn clickhouse_says(addr: &str, user: &str, password: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!(
        "GET /?query=SELECT%201 HTTP/1.0\r\nHost: {addr}\r\nX-ClickHouse-User: {user}\r\nX-ClickHouse-Key: {password}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}
