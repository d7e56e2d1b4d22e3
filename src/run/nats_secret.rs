//! The fleet's NATS secret when the run's selection holds no NATS host (`--limit` to a
//! collector): read from the inventory's other NATS hosts, so that a partial deploy never
//! makes a second secret, whose passwords the servers would refuse.

use anyhow::Context;

use super::session;
use super::FanOut;
use crate::inventory::Host;
use crate::transport::shell::with_become;

/// The secret the first of `nats_hosts` that answers has (None: they answered and none has
/// one yet, so the fleet's NATS is new). Fails when none answers: a new secret would lock
/// the running servers' clients out.
pub async fn from_other_hosts(
    nats_hosts: &[&Host],
    fanout: &FanOut,
) -> anyhow::Result<Option<String>> {
    let (connected, ended) = session::connect_all(nats_hosts, fanout).await;
    for c in &connected {
        let command = with_become(
            &super::deploy::read_secret_command(&[crate::stack::nats::SECRET_FILE]),
            c.host.become_,
        );
        let read = c
            .transport
            .exec(&command, b"")
            .await
            .with_context(|| format!("{}: cannot read the fleet's NATS secret", c.host.name))?;
        let secret = read.stdout_text().trim().to_string();
        if !secret.is_empty() {
            return Ok(Some(secret));
        }
    }
    if connected.is_empty() {
        let why: Vec<String> = ended.iter().map(|e| e.error.clone()).collect();
        anyhow::bail!(
            "no NATS host answered, and the fleet's NATS secret is kept on them: a new one would lock the running services out. Make a NATS host reachable or include one in --limit ({})",
            why.join("; ")
        );
    }
    Ok(None)
}
