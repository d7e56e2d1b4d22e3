//! The SSH transport (russh): one connection per host, reused for every command.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use russh::client::{self, Handle};
use russh::keys::PublicKeyOrCertificate;
use russh::ChannelMsg;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::error::TransportError;
use super::known_hosts::{self, HostKeyStatus};
use super::target::{HostKeyChecking, SshTarget};
use super::{OutputSink, Stream, Transport};

/// Settings shared by all connections of a run.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Caps concurrent handshakes so that sshd's MaxStartups (10 by default) never drops us.
    pub handshakes: Option<Arc<Semaphore>>,
}

/// Channels open at once on one connection: sshd's MaxSessions defaults to 10 and refuses
/// the eleventh, so callers that run many commands at once wait here instead of failing.
const MAX_CHANNELS: usize = 6;

pub struct SshTransport {
    label: String,
    handle: Handle<Client>,
    channels: Semaphore,
    /// The bastion's connection, kept open for as long as this one tunnels through it.
    _jump: Option<Box<SshTransport>>,
}

impl SshTransport {
    /// Connects, checks the host key and authenticates, within `target.connect_timeout` for the
    /// network part (russh's own connect has no timeout).
    pub async fn connect(
        target: &SshTarget,
        options: &ConnectOptions,
    ) -> Result<Self, TransportError> {
        let jump = match &target.jump {
            Some(jump) => Some(Box::new(
                Box::pin(Self::connect(jump, options))
                    .await
                    .map_err(|e| TransportError::Jump {
                        host: target.label.clone(),
                        jump: jump.label.clone(),
                        source: Box::new(e),
                    })?,
            )),
            None => None,
        };
        let _permit = match &options.handshakes {
            Some(semaphore) => Some(semaphore.clone().acquire_owned().await.ok()),
            None => None,
        };
        let deadline = target.connect_timeout;
        let attempt = handshake(target, jump.as_deref());
        let handle = match tokio::time::timeout(deadline, attempt).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(TransportError::ConnectTimeout {
                    host: target.label.clone(),
                    address: target.address.clone(),
                    port: target.port,
                    after: deadline,
                })
            }
        };
        Ok(Self {
            label: target.label.clone(),
            handle,
            channels: Semaphore::new(MAX_CHANNELS),
            _jump: jump,
        })
    }

    /// Opens a session channel. sshd frees a session slot only after both sides closed it, a
    /// moment after our previous command returned: a refusal while the connection lives is
    /// retried with a short backoff before it counts.
    async fn open_session(&self) -> Result<russh::Channel<client::Msg>, TransportError> {
        let mut attempt = 0u64;
        loop {
            match self.handle.channel_open_session().await {
                Ok(channel) => return Ok(channel),
                Err(e) if attempt < 10 && !self.handle.is_closed() => {
                    attempt += 1;
                    tracing::debug!("{}: session channel refused ({e}), retrying", self.label);
                    tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
                }
                Err(e) => return Err(self.channel_error(e)),
            }
        }
    }

    /// A channel-level failure: the connection is gone, or the server refused the channel.
    fn channel_error(&self, reason: impl std::fmt::Display) -> TransportError {
        if self.handle.is_closed() {
            TransportError::Disconnected {
                host: self.label.clone(),
                reason: reason.to_string(),
            }
        } else {
            TransportError::Ssh {
                host: self.label.clone(),
                reason: format!("the server refused a session channel ({reason}); is MaxSessions in sshd_config below {MAX_CHANNELS}?"),
            }
        }
    }
}

/// TCP (or a direct-tcpip channel through the bastion), key exchange, host key check, auth.
async fn handshake(
    target: &SshTarget,
    jump: Option<&SshTransport>,
) -> Result<Handle<Client>, TransportError> {
    let verdict = Arc::new(Mutex::new(None));
    let client = Client {
        target: target.clone(),
        verdict: verdict.clone(),
    };
    let config = Arc::new(client_config(target));
    let connected = match jump {
        Some(bastion) => {
            let channel = bastion
                .handle
                .channel_open_direct_tcpip(
                    target.address.clone(),
                    target.port.into(),
                    "127.0.0.1",
                    0,
                )
                .await
                .map_err(|e| TransportError::Connect {
                    host: target.label.clone(),
                    address: target.address.clone(),
                    port: target.port,
                    source: std::io::Error::other(format!(
                        "the bastion refused to open a tunnel ({e})"
                    )),
                })?;
            client::connect_stream(config, channel.into_stream(), client).await
        }
        None => {
            let stream = tcp_connect(target).await?;
            client::connect_stream(config, stream, client).await
        }
    };
    let mut handle = match connected {
        Ok(handle) => handle,
        Err(e) => {
            // A refused host key surfaces from russh as a generic error; ours says why.
            let refused = verdict.lock().ok().and_then(|mut v| v.take());
            return Err(refused.unwrap_or_else(|| TransportError::Ssh {
                host: target.label.clone(),
                reason: format!(
                    "handshake with {}:{} failed: {e}",
                    target.address, target.port
                ),
            }));
        }
    };
    super::auth::authenticate(&mut handle, target).await?;
    Ok(handle)
}

async fn tcp_connect(target: &SshTarget) -> Result<TcpStream, TransportError> {
    let addresses = tokio::net::lookup_host((target.address.as_str(), target.port))
        .await
        .map_err(|e| TransportError::Resolve {
            host: target.label.clone(),
            address: target.address.clone(),
            reason: e.to_string(),
        })?;
    let mut last_error = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                stream.set_nodelay(true).ok();
                return Ok(stream);
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(TransportError::Connect {
        host: target.label.clone(),
        address: target.address.clone(),
        port: target.port,
        source: last_error.unwrap_or_else(|| std::io::Error::other("the name has no address")),
    })
}

fn client_config(target: &SshTarget) -> client::Config {
    let keepalive = (!target.keepalive.is_zero()).then_some(target.keepalive);
    client::Config {
        keepalive_interval: keepalive,
        // Three unanswered keepalives: the host is gone; fail the run instead of hanging.
        keepalive_max: 3,
        inactivity_timeout: None,
        nodelay: true,
        ..Default::default()
    }
}

/// russh's callback object: checks the server key against known_hosts.
pub struct Client {
    target: SshTarget,
    /// Why the key was refused, for the error the user sees.
    verdict: Arc<Mutex<Option<TransportError>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match offered {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => cert.public_key().clone().into(),
        };
        match verify_host_key(&self.target, &key) {
            Ok(()) => Ok(true),
            Err(refusal) => {
                if let Ok(mut verdict) = self.verdict.lock() {
                    *verdict = Some(refusal);
                }
                Ok(false)
            }
        }
    }
}

/// Applies the host_key_checking policy. A changed key is refused under every policy but `off`.
fn verify_host_key(target: &SshTarget, key: &russh::keys::PublicKey) -> Result<(), TransportError> {
    if target.host_key_checking == HostKeyChecking::Off {
        return Ok(());
    }
    // Hosts reached through a bastion are filed under the address the bastion dials.
    let (address, port) = (target.address.as_str(), target.port);
    let path: PathBuf = target.known_hosts.clone();
    let _guard = KNOWN_HOSTS_LOCK.lock();
    let contents = std::fs::read_to_string(&path).unwrap_or_default();
    match known_hosts::check(&contents, address, port, key) {
        HostKeyStatus::Known => Ok(()),
        HostKeyStatus::Changed { line, recorded } => Err(TransportError::HostKeyChanged {
            host: target.label.clone(),
            endpoint: known_hosts::endpoint(address, port),
            offered: known_hosts::fingerprint(key),
            recorded,
            known_hosts: path,
            line,
        }),
        HostKeyStatus::Revoked { line } => Err(TransportError::HostKeyChanged {
            host: target.label.clone(),
            endpoint: known_hosts::endpoint(address, port),
            offered: known_hosts::fingerprint(key),
            recorded: format!("a @revoked entry for this very key (line {line})"),
            known_hosts: path,
            line,
        }),
        HostKeyStatus::Unknown if target.host_key_checking == HostKeyChecking::Strict => {
            Err(TransportError::HostKeyUnknown {
                host: target.label.clone(),
                endpoint: known_hosts::endpoint(address, port),
                address: address.to_string(),
                port,
                fingerprint: known_hosts::fingerprint(key),
                known_hosts: path,
            })
        }
        HostKeyStatus::Unknown => {
            known_hosts::learn(&path, address, port, key).map_err(|e| {
                TransportError::KnownHosts {
                    host: target.label.clone(),
                    known_hosts: path.clone(),
                    reason: e.to_string(),
                }
            })?;
            tracing::info!(
                "{}: recorded host key {} in {}",
                target.label,
                known_hosts::fingerprint(key),
                path.display()
            );
            Ok(())
        }
    }
}

/// Many hosts of one run share a known_hosts file: check-then-append must not interleave.
static KNOWN_HOSTS_LOCK: Mutex<()> = Mutex::new(());

#[async_trait]
impl Transport for SshTransport {
    fn label(&self) -> &str {
        &self.label
    }

    async fn exec_streaming(
        &self,
        command: &str,
        stdin: &[u8],
        sink: OutputSink<'_>,
    ) -> Result<Option<u32>, TransportError> {
        let _slot = self.channels.acquire().await.ok();
        let channel = self.open_session().await?;
        channel
            .exec(true, command.as_bytes())
            .await
            .map_err(|e| self.channel_error(e))?;
        let (mut reader, writer) = channel.split();
        // Feed stdin concurrently: a command that writes a lot before reading all of its
        // input would otherwise deadlock against our reading.
        let input = stdin.to_vec();
        let feeder = tokio::spawn(async move {
            if !input.is_empty() {
                writer.data(&input[..]).await?;
            }
            writer.eof().await?;
            Ok::<_, russh::Error>(writer)
        });
        let mut status = None;
        while let Some(message) = reader.wait().await {
            match message {
                ChannelMsg::Data { data } => sink(Stream::Stdout, &data),
                ChannelMsg::ExtendedData { data, ext: 1 } => sink(Stream::Stderr, &data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::ExitSignal { signal_name, .. } => sink(
                    Stream::Stderr,
                    format!("killed by signal {signal_name:?}\n").as_bytes(),
                ),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        let writer = feeder.await.ok().and_then(Result::ok);
        if status.is_none() && self.handle.is_closed() {
            return Err(self.channel_error("the channel closed before the command exited"));
        }
        drop(writer);
        Ok(status)
    }

    async fn close(&self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}
