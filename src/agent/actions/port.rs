//! A port must be free or held by our own server. A foreign holder fails the step with its
//! name and pid; mp-remote never kills it (upstream's one-click script did).

use std::sync::Mutex;

use crate::agent::outcome::{Outcome, StepError};
use crate::agent::shell::sh;

/// Every listener with its process (`ss -Htlnp`), shared by the port checks that run one
/// after another: listing processes walks all of /proc, once is enough. A step that changes
/// something forgets it ([`forget_listeners`]).
static LISTENERS: Mutex<Option<String>> = Mutex::new(None);

/// Forgets the listeners and the units' states (`service::unit_state`) the checks saw.
pub fn forget_listeners() {
    *LISTENERS.lock().unwrap_or_else(|e| e.into_inner()) = None;
    super::service::forget_units();
}

async fn unit_active(unit: &str) -> bool {
    super::service::unit_state(unit).await.0 == "active"
}

async fn listeners() -> Result<String, StepError> {
    if let Some(known) = LISTENERS.lock().unwrap_or_else(|e| e.into_inner()).clone() {
        return Ok(known);
    }
    let out = sh("ss -Htlnp")
        .await
        .map_err(|e| StepError::new(format!("cannot list listening sockets: {e}")))?;
    *LISTENERS.lock().unwrap_or_else(|e| e.into_inner()) = Some(out.output.clone());
    Ok(out.output)
}

pub async fn apply(
    port: u16,
    service: &str,
    allowed: &[String],
    our_unit: Option<&str>,
) -> Result<Outcome, StepError> {
    let all = listeners().await?;
    let listening = on_port(&all, port);
    let holders = holders(&listening);
    if listening.trim().is_empty() {
        return Ok(Outcome::unchanged(format!(
            "port {port} ({service}) is free"
        )));
    }
    if holders
        .iter()
        .all(|(name, _)| allowed.iter().any(|a| a == name))
        && !holders.is_empty()
    {
        return Ok(Outcome::unchanged(format!(
            "port {port} ({service}) held by our {}",
            holders[0].0
        )));
    }
    if holders.is_empty() {
        if let Some(unit) = our_unit {
            let active = unit_active(unit).await
                // Without systemd: our own supervisor runs the server.
                || crate::agent::supervise::inspect(unit)
                    .supervised_server()
                    .is_some();
            if active {
                return Ok(Outcome::unchanged(format!(
                    "port {port} ({service}) in use while {unit} is active: ours"
                )));
            }
        }
    }
    let who = if holders.is_empty() {
        "an unknown process".to_string()
    } else {
        holders
            .iter()
            .map(|(name, pid)| format!("{name} (pid {pid})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(StepError::new(format!(
        "port {port} ({service}) is already in use by {who}"
    ))
    .hint(format!(
        "mp-remote does not kill other programs: stop {who} or move it to another port, then deploy again"
    ))
    .with_output(&listening))
}

/// The lines of `ss -Htln` whose local address is on `port`. `ss` applies its own filter only
/// through netlink; without netlink (an emulated host under qemu-user says "Cannot open
/// netlink socket") it reads /proc and lists every listener, and says so on stderr.
fn on_port(ss_output: &str, port: u16) -> String {
    ss_output
        .lines()
        .filter(|l| crate::facts::ss_local_port(l) == Some(port))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// `users:(("nats-server",pid=12,fd=5),("x",pid=13,fd=3))` -> [(nats-server, 12), (x, 13)].
fn holders(ss_output: &str) -> Vec<(String, u32)> {
    let mut found = Vec::new();
    for part in ss_output.split("((").skip(1).flat_map(|s| s.split("),(")) {
        let mut fields = part.split(',');
        let name = fields
            .next()
            .unwrap_or_default()
            .trim_matches('"')
            .to_string();
        let pid = fields
            .find_map(|f| f.strip_prefix("pid="))
            .and_then(|p| p.parse().ok());
        if let Some(pid) = pid {
            if !found.contains(&(name.clone(), pid)) {
                found.push((name, pid));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_port_asked_counts_when_ss_cannot_filter() {
        let without_netlink = "Cannot open netlink socket: Protocol not supported\n\
LISTEN 0      0         127.0.0.11:36589      0.0.0.0:*\n\
LISTEN 0      0            0.0.0.0:22         0.0.0.0:*    users:((\"sshd\",pid=89,fd=3))\n\
LISTEN 0      4096               *:4222             *:*    users:((\"nats-server\",pid=7,fd=5))\n";
        assert!(on_port(without_netlink, 9000).is_empty());
        assert_eq!(
            holders(&on_port(without_netlink, 4222)),
            [("nats-server".to_string(), 7)]
        );
        assert!(on_port(without_netlink, 22).contains("sshd"));
        assert!(
            on_port(without_netlink, 2).is_empty(),
            "a port is matched whole"
        );
        // Old iproute2 drops the State column when filtering on one state.
        let no_state = "0      4096               *:4222             *:*    users:((\"nats-server\",pid=7,fd=5))\n";
        assert_eq!(holders(&on_port(no_state, 4222)).len(), 1);
    }

    #[test]
    fn ss_process_column() {
        let line = r#"LISTEN 0 4096 0.0.0.0:4222 0.0.0.0:* users:(("nats-server",pid=812,fd=5))"#;
        assert_eq!(holders(line), vec![("nats-server".to_string(), 812)]);
        let two = r#"LISTEN 0 5 *:4222 *:* users:(("python3",pid=9,fd=3),("python3",pid=10,fd=3))"#;
        assert_eq!(
            holders(two),
            vec![("python3".to_string(), 9), ("python3".to_string(), 10)]
        );
        assert!(holders("LISTEN 0 5 *:4222 *:*").is_empty());
    }
}
