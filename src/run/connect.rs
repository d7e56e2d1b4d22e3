//! Picks the transport an inventory host asks for.

use std::sync::Arc;

use crate::inventory::{Connection, Host};
use crate::transport::{ConnectOptions, LocalTransport, SshTransport, Transport, TransportError};

pub async fn connect(
    host: &Host,
    options: &ConnectOptions,
) -> Result<Arc<dyn Transport>, TransportError> {
    Ok(match host.connection {
        Connection::Local => Arc::new(LocalTransport::new(host.name.clone())),
        Connection::Ssh => Arc::new(SshTransport::connect(&host.ssh, options).await?),
    })
}
