//! `agent status`: looks at each target on this host (unit state, package, files, health,
//! versions, extra calls) and answers with what it saw; judging is the caller's.

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use crate::agent::local_addr::here;
use crate::agent::supervise;
use crate::plan::probe::{Call, Check, ProbeReply, ProbeRequest, Reply, Seen, Target};

/// How long one HTTP call or TCP connect may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// A ClickHouse query may take longer than a health answer.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn observe(request: &ProbeRequest) -> ProbeReply {
    let client = client();
    let mut services = Vec::new();
    for target in &request.targets {
        services.push(look(&client, target, request.full).await);
    }
    ProbeReply {
        services,
        listening: request.full.then(listening),
        release: request
            .release_link
            .as_deref()
            .and_then(|link| std::fs::read_link(link).ok())
            .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned())),
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .no_proxy()
        .build()
        .unwrap_or_default()
}

/// One target: its state, and (full) its version and extra calls.
pub async fn look(client: &reqwest::Client, target: &Target, full: bool) -> Seen {
    let (active, supervised) = unit_state(&target.unit).await;
    let health = check(client, &target.check).await;
    let mut seen = Seen {
        name: target.name.clone(),
        active,
        supervised,
        package: match &target.package {
            Some(p) => Some(package_status(p).await),
            None => None,
        },
        files_present: target.files.iter().all(|f| Path::new(f).exists()),
        version: None,
        calls: Default::default(),
        health,
    };
    if full {
        seen.version = version(&target.version_from).await;
        if seen.health.answered {
            for call in &target.calls {
                seen.calls
                    .insert(call.name.clone(), http_call(client, call).await);
            }
        }
    }
    seen
}

/// `systemctl is-active`'s word, or (no systemd) what mp-remote's supervisor runs.
pub async fn unit_state(unit: &str) -> (String, bool) {
    if systemd() {
        let out = Command::new("systemctl")
            .args(["is-active", unit])
            .output()
            .await;
        let word = out
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        return (word, false);
    }
    let running = supervise::inspect(unit);
    let word = match (&running.supervisor, running.supervised_server()) {
        (Some(_), Some(_)) => "active",
        (Some(_), None) => "restarting",
        (None, _) => "inactive",
    };
    (word.to_string(), true)
}

/// The host runs systemd (what `sd_booted` checks).
pub fn systemd() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// dpkg's `Status|Version` of `package`, empty when dpkg does not know it.
async fn package_status(package: &str) -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}|${Version}", package])
        .output()
        .await
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The first line the first existing executable prints for `--version`.
async fn version(candidates: &[String]) -> Option<String> {
    let program = candidates.iter().find(|p| Path::new(p).exists())?;
    let out = Command::new(program)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?.trim().to_string();
    (!line.is_empty()).then_some(line)
}

/// How long a check asks again while NATS says a stream or consumer replica "is not
/// current": a replica catching up after a burst (seen right after a deploy, the data
/// flowing) is a moment, not an unhealthy node; one still behind after this is reported.
const NOT_CURRENT_GRACE: Duration = Duration::from_secs(5);

pub async fn check(client: &reqwest::Client, check: &Check) -> Reply {
    match check {
        Check::Http { url } => {
            let deadline = tokio::time::Instant::now() + NOT_CURRENT_GRACE;
            loop {
                let reply = get(client.get(here(url))).await;
                let catching_up = reply.code == 503 && reply.body.contains("is not current");
                if !catching_up || tokio::time::Instant::now() >= deadline {
                    return reply;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Check::Tcp { port } => {
            let connect = tokio::net::TcpStream::connect(crate::agent::local_addr::socket(*port));
            match tokio::time::timeout(CALL_TIMEOUT, connect).await {
                Ok(Ok(_)) => Reply::http(0, ""),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    Reply::none("connection refused")
                }
                Ok(Err(e)) => Reply::none(&e.to_string()),
                Err(_) => Reply::none("no answer in time"),
            }
        }
        Check::None => Reply::default(),
    }
}

async fn http_call(client: &reqwest::Client, call: &Call) -> Reply {
    let mut request = match &call.body {
        Some(body) => client.post(here(&call.url)).body(body.clone()),
        None => client.get(here(&call.url)),
    }
    .timeout(QUERY_TIMEOUT);
    if let Some((user, file)) = &call.auth {
        // Readable by root only: without it the server's default user answers.
        if let Ok(password) = std::fs::read_to_string(file) {
            request = request.basic_auth(user, Some(password.trim()));
        }
    }
    get(request).await
}

async fn get(request: reqwest::RequestBuilder) -> Reply {
    match request.send().await {
        Ok(response) => {
            let code = response.status().as_u16();
            match response.text().await {
                Ok(body) => Reply::http(code, &body),
                Err(e) => Reply::none(&format!("the answer was cut: {e}")),
            }
        }
        Err(e) if e.is_timeout() => Reply::none("no answer in time"),
        Err(e) if e.is_connect() => Reply::none("connection refused"),
        Err(e) => Reply::none(&e.to_string()),
    }
}

/// Every port a TCP socket listens on, from `/proc/net/tcp` and `tcp6`.
fn listening() -> Vec<u16> {
    let text = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect::<Vec<_>>()
        .join("\n");
    crate::facts::listening_ports(crate::facts::PortsSource::Proc, &text)
}
