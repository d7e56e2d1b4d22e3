//! The SSH transport (russh): one connection per host, reused for every command, and opened
//! again when it drops (a command in flight then fails; the next one gets the new connection).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

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
    /// Kept to redo the handshake when the connection drops.
    target: SshTarget,
    options: ConnectOptions,
    /// The current connection; swapped for a new one after a drop.
    handle: RwLock<Arc<Handle<Client>>>,
    /// One reconnect at a time: commands that find the connection closed wait for it.
    reconnecting: tokio::sync::Mutex<()>,
    /// Set by `close`: a connection we ended is not opened again.
    closed: AtomicBool,
    channels: Semaphore,
    /// The bastion's transport, kept (and reconnected) for as long as this one tunnels
    /// through it.
    jump: Option<Box<SshTransport>>,
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
                    .map_err(|e| jump_error(target, jump, e))?,
            )),
            None => None,
        };
        let bastion = jump.as_ref().map(|j| j.current());
        let handle = open(target, options, bastion.as_deref()).await?;
        Ok(Self {
            label: target.label.clone(),
            target: target.clone(),
            options: options.clone(),
            handle: RwLock::new(Arc::new(handle)),
            reconnecting: tokio::sync::Mutex::new(()),
            closed: AtomicBool::new(false),
            channels: Semaphore::new(MAX_CHANNELS),
            jump,
        })
    }

    fn current(&self) -> Arc<Handle<Client>> {
        self.handle
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The connection, opened again first if it was closed (the host rebooted, sshd was
    /// restarted, the network dropped): same checks and errors as `connect`.
    async fn live_handle(&self) -> Result<Arc<Handle<Client>>, TransportError> {
        let handle = self.current();
        if !handle.is_closed() {
            return Ok(handle);
        }
        if self.closed.load(Ordering::SeqCst) {
            return Err(TransportError::Disconnected {
                host: self.label.clone(),
                reason: "the connection was already closed".into(),
            });
        }
        let _one = self.reconnecting.lock().await;
        let handle = self.current();
        if !handle.is_closed() {
            // Another command reconnected while this one waited.
            return Ok(handle);
        }
        tracing::info!(
            "{}: the SSH connection was closed; reconnecting",
            self.label
        );
        let bastion = match &self.jump {
            Some(jump) => Some(
                Box::pin(jump.live_handle())
                    .await
                    .map_err(|e| jump_error(&self.target, &jump.target, e))?,
            ),
            None => None,
        };
        let fresh = Arc::new(open(&self.target, &self.options, bastion.as_deref()).await?);
        *self.handle.write().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
        tracing::info!("{}: reconnected", self.label);
        Ok(fresh)
    }

    /// Opens a session channel, and the connection again first if it was closed. sshd frees a
    /// session slot only after both sides closed it, a moment after our previous command
    /// returned: a refusal while the connection lives is retried with a short backoff before
    /// it counts. Returns the connection the channel belongs to.
    async fn open_session(
        &self,
    ) -> Result<(russh::Channel<client::Msg>, Arc<Handle<Client>>), TransportError> {
        let mut handle = self.live_handle().await?;
        let (mut attempt, mut reconnected) = (0u64, false);
        loop {
            match handle.channel_open_session().await {
                Ok(channel) => return Ok((channel, handle)),
                Err(e) if attempt < 10 && !handle.is_closed() => {
                    attempt += 1;
                    tracing::debug!("{}: session channel refused ({e}), retrying", self.label);
                    tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
                }
                // It closed before this command started (nothing ran): one new connection.
                Err(_) if handle.is_closed() && !reconnected => {
                    reconnected = true;
                    handle = self.live_handle().await?;
                }
                Err(e) => return Err(self.channel_error(&handle, e)),
            }
        }
    }

    /// A channel-level failure: the connection is gone, or the server refused the channel.
    fn channel_error(
        &self,
        handle: &Handle<Client>,
        reason: impl std::fmt::Display,
    ) -> TransportError {
        if handle.is_closed() {
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

fn jump_error(target: &SshTarget, jump: &SshTarget, error: TransportError) -> TransportError {
    TransportError::Jump {
        host: target.label.clone(),
        jump: jump.label.clone(),
        source: Box::new(error),
    }
}

/// A new connection: waits for a handshake slot, then handshakes within
/// `target.connect_timeout`.
async fn open(
    target: &SshTarget,
    options: &ConnectOptions,
    bastion: Option<&Handle<Client>>,
) -> Result<Handle<Client>, TransportError> {
    let _permit = match &options.handshakes {
        Some(semaphore) => Some(semaphore.clone().acquire_owned().await.ok()),
        None => None,
    };
    let deadline = target.connect_timeout;
    let mut attempt = 1;
    loop {
        let result = match tokio::time::timeout(deadline, handshake(target, bastion)).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::ConnectTimeout {
                host: target.label.clone(),
                address: target.address.clone(),
                port: target.port,
                after: deadline,
            }),
        };
        // sshd cuts handshakes beyond MaxStartups, and while it is still starting: a
        // moment later it lets us in.
        match result {
            Err(TransportError::Ssh { reason, .. }) if reason.starts_with(HANDSHAKE_FAILED) => {
                if attempt >= HANDSHAKE_ATTEMPTS {
                    return Err(TransportError::HandshakeCut {
                        host: target.label.clone(),
                        address: target.address.clone(),
                        port: target.port,
                        attempts: attempt,
                        reason: reason[HANDSHAKE_FAILED.len()..].to_string(),
                    });
                }
                tracing::debug!("{}: {reason}; trying again", target.label);
                tokio::time::sleep(HANDSHAKE_BACKOFF * 2u32.pow(attempt - 1)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// How often a handshake the server cut is tried, and the first pause (doubled each time).
const HANDSHAKE_ATTEMPTS: u32 = 3;
const HANDSHAKE_BACKOFF: std::time::Duration = std::time::Duration::from_millis(300);
/// How [`handshake`] words a failure of the SSH handshake itself (not of its checks).
const HANDSHAKE_FAILED: &str = "handshake failed: ";

/// TCP (or a direct-tcpip channel through the bastion), key exchange, host key check, auth.
async fn handshake(
    target: &SshTarget,
    bastion: Option<&Handle<Client>>,
) -> Result<Handle<Client>, TransportError> {
    let verdict = Arc::new(Mutex::new(None));
    let client = Client {
        target: target.clone(),
        verdict: verdict.clone(),
    };
    let config = Arc::new(client_config(target));
    let connected = match bastion {
        Some(bastion) => {
            let channel = bastion
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
                reason: format!("{HANDSHAKE_FAILED}{e}"),
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
        let (channel, handle) = self.open_session().await?;
        channel
            .exec(true, command.as_bytes())
            .await
            .map_err(|e| self.channel_error(&handle, e))?;
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
        let (mut status, mut closed) = (None, false);
        while let Some(message) = reader.wait().await {
            match message {
                ChannelMsg::Data { data } => sink(Stream::Stdout, &data),
                ChannelMsg::ExtendedData { data, ext: 1 } => sink(Stream::Stderr, &data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::ExitSignal { signal_name, .. } => sink(
                    Stream::Stderr,
                    format!("killed by signal {signal_name:?}\n").as_bytes(),
                ),
                ChannelMsg::Close => {
                    closed = true;
                    break;
                }
                _ => {}
            }
        }
        let writer = feeder.await.ok().and_then(Result::ok);
        // A channel that ends without the server's close went down with the connection, even
        // if russh has not marked the connection closed yet. Not retried: the command may
        // have run in part. The next one reconnects.
        if status.is_none() && (!closed || handle.is_closed()) {
            return Err(TransportError::Disconnected {
                host: self.label.clone(),
                reason: "the channel closed before the command exited".into(),
            });
        }
        drop(writer);
        Ok(status)
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = self
            .current()
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use russh::server::{self, Auth, Session};
    use russh::{Channel, ChannelId};
    use tokio::net::TcpListener;
    use tokio::sync::Notify;

    use super::*;

    /// The test server's host key and the client's key (made for these tests only).
    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACAeRvW83sNmNODoyRXDOJ95Bb/od0/0lL/mIx12Z8UM0QAAAJgmzXuaJs17
mgAAAAtzc2gtZWQyNTUxOQAAACAeRvW83sNmNODoyRXDOJ95Bb/od0/0lL/mIx12Z8UM0Q
AAAEA47XxGVhyr9D9H5pz9d8lPMjYOwtzMwkwELcPXCAwDdB5G9bzew2Y04OjJFcM4n3kF
v+h3T/SUv+YjHXZnxQzRAAAADm1wLXJlbW90ZS10ZXN0AQIDBAUGBw==
-----END OPENSSH PRIVATE KEY-----
";

    /// An SSH server in this process: `exec X` prints X and exits 0, `exec hang` never ends,
    /// and direct-tcpip channels are tunnelled (it is its own bastion). Every connection runs
    /// through a relay the test can cut, as a dropped network would.
    #[derive(Clone, Default)]
    struct TestServer {
        connections: Arc<AtomicUsize>,
        relays: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
        hanging: Arc<Notify>,
    }

    impl TestServer {
        async fn start() -> (Self, u16) {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = Self::default();
            let mut config = server::Config::default();
            config
                .keys
                .push(russh::keys::decode_secret_key(KEY, None).unwrap());
            let config = Arc::new(config);
            let accepting = server.clone();
            tokio::spawn(async move {
                while let Ok((mut socket, _)) = listener.accept().await {
                    accepting.connections.fetch_add(1, Ordering::SeqCst);
                    let (mut ours, theirs) = tokio::io::duplex(1 << 16);
                    let relay = tokio::spawn(async move {
                        let _ = tokio::io::copy_bidirectional(&mut socket, &mut ours).await;
                    });
                    accepting.relays.lock().unwrap().push(relay.abort_handle());
                    let (config, handler) = (config.clone(), accepting.clone());
                    tokio::spawn(async move {
                        if let Ok(session) = server::run_stream(config, theirs, handler).await {
                            let _ = session.await;
                        }
                    });
                }
            });
            (server, port)
        }

        /// Drops every connection made so far.
        fn cut(&self) {
            for relay in self.relays.lock().unwrap().drain(..) {
                relay.abort();
            }
        }

        fn connections(&self) -> usize {
            self.connections.load(Ordering::SeqCst)
        }
    }

    impl server::Handler for TestServer {
        type Error = russh::Error;

        async fn auth_publickey(
            &mut self,
            _: &str,
            _: server::VerifiedPublicKey<'_>,
        ) -> Result<Auth, Self::Error> {
            Ok(Auth::Accept)
        }

        async fn channel_open_session(
            &mut self,
            _: Channel<server::Msg>,
            reply: server::ChannelOpenHandle,
            _: &mut Session,
        ) -> Result<(), Self::Error> {
            reply.accept().await;
            Ok(())
        }

        async fn channel_open_direct_tcpip(
            &mut self,
            channel: Channel<server::Msg>,
            host: &str,
            port: u32,
            _: &str,
            _: u32,
            reply: server::ChannelOpenHandle,
            _: &mut Session,
        ) -> Result<(), Self::Error> {
            let mut tcp = TcpStream::connect((host, port as u16)).await?;
            reply.accept().await;
            tokio::spawn(async move {
                let mut stream = channel.into_stream();
                let _ = tokio::io::copy_bidirectional(&mut stream, &mut tcp).await;
            });
            Ok(())
        }

        async fn exec_request(
            &mut self,
            channel: ChannelId,
            command: &[u8],
            session: &mut Session,
        ) -> Result<(), Self::Error> {
            session.channel_success(channel)?;
            if command == b"hang" {
                self.hanging.notify_one();
                return Ok(());
            }
            session.data(channel, command.to_vec())?;
            session.exit_status_request(channel, 0)?;
            session.eof(channel)?;
            session.close(channel)
        }
    }

    fn target(port: u16, key: &std::path::Path, jump: Option<SshTarget>) -> SshTarget {
        SshTarget {
            label: if jump.is_some() { "h1" } else { "bastion" }.into(),
            address: "127.0.0.1".into(),
            port,
            user: "test".into(),
            identity_files: vec![key.to_path_buf()],
            host_key_checking: HostKeyChecking::Off,
            known_hosts: key.with_file_name("known_hosts"),
            connect_timeout: Duration::from_secs(5),
            keepalive: Duration::ZERO,
            jump: jump.map(Box::new),
        }
    }

    fn key_file() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("id"), KEY).unwrap();
        dir
    }

    async fn stdout_of(transport: &SshTransport, command: &str) -> String {
        transport.exec(command, b"").await.unwrap().stdout_text()
    }

    #[tokio::test]
    async fn a_dropped_connection_fails_the_command_in_flight_and_the_next_one_reconnects() {
        let (server, port) = TestServer::start().await;
        let keys = key_file();
        let target = target(port, &keys.path().join("id"), None);
        let transport = Arc::new(
            SshTransport::connect(&target, &ConnectOptions::default())
                .await
                .unwrap(),
        );
        assert_eq!(stdout_of(&transport, "one").await, "one");

        let hanging = server.hanging.notified();
        let in_flight = tokio::spawn({
            let transport = transport.clone();
            async move { transport.exec("hang", b"").await }
        });
        hanging.await;
        server.cut();
        let error = in_flight.await.unwrap().unwrap_err();
        assert!(
            matches!(error, TransportError::Disconnected { .. }),
            "{error}"
        );

        assert_eq!(stdout_of(&transport, "two").await, "two");
        assert_eq!(
            server.connections(),
            2,
            "one reconnect, not one per command"
        );
        assert_eq!(stdout_of(&transport, "three").await, "three");
        assert_eq!(server.connections(), 2);
    }

    #[tokio::test]
    async fn a_connection_through_a_bastion_reconnects_the_bastion_too() {
        let (server, port) = TestServer::start().await;
        let keys = key_file();
        let bastion = target(port, &keys.path().join("id"), None);
        let target = target(port, &keys.path().join("id"), Some(bastion));
        let transport = SshTransport::connect(&target, &ConnectOptions::default())
            .await
            .unwrap();
        assert_eq!(stdout_of(&transport, "one").await, "one");
        assert_eq!(server.connections(), 2);

        server.cut();
        // The drop is seen asynchronously: until then a command may still fail.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !transport.current().is_closed() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the drop was never seen"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(stdout_of(&transport, "two").await, "two");
        assert_eq!(server.connections(), 4, "the bastion and the host, again");
    }

    #[tokio::test]
    async fn a_closed_transport_is_not_reopened() {
        let (server, port) = TestServer::start().await;
        let keys = key_file();
        let target = target(port, &keys.path().join("id"), None);
        let transport = SshTransport::connect(&target, &ConnectOptions::default())
            .await
            .unwrap();
        transport.close().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !transport.current().is_closed() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "close never took effect"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(transport.exec("one", b"").await.is_err());
        assert_eq!(server.connections(), 1);
    }
}
