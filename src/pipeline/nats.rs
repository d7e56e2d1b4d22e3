//! The NATS connection both services share the handling of: connect to any of the configured
//! servers, keep retrying in the background (also when none answers at start), and remember
//! since when the connection is down, which decides between "degraded" and "unhealthy".

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::{Client, ConnectOptions, Event};

use super::nats_auth::NatsAuthConfig;

/// Whether the client is connected now, and since when it is not.
#[derive(Debug)]
pub struct Link {
    state: Mutex<LinkState>,
}

#[derive(Debug, Clone, Copy)]
struct LinkState {
    connected: bool,
    /// When the connection went down (or the service started, before the first connect).
    down_since: Instant,
}

impl Link {
    pub fn new() -> Arc<Link> {
        Arc::new(Link {
            state: Mutex::new(LinkState {
                connected: false,
                down_since: Instant::now(),
            }),
        })
    }

    pub fn connected(&self) -> bool {
        self.lock().connected
    }

    /// How long the connection has been down; `None` while connected.
    pub fn down_for(&self, now: Instant) -> Option<Duration> {
        let s = self.lock();
        (!s.connected).then(|| now.saturating_duration_since(s.down_since))
    }

    fn set(&self, connected: bool) {
        let mut s = self.lock();
        if s.connected && !connected {
            s.down_since = Instant::now();
        }
        s.connected = connected;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LinkState> {
        // A panic elsewhere while holding the lock leaves a plain flag and instant: still valid.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How long a TCP connect and the server's greeting may take, per attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client that connects in the background to any of `urls` (as `auth`'s user when given)
/// and reconnects forever; `link` follows its state. Fails on URLs that cannot be parsed
/// (config checks them first) and on a password file it cannot read.
pub async fn connect(
    name: &str,
    urls: &[String],
    auth: Option<&NatsAuthConfig>,
    link: Arc<Link>,
) -> Result<Client, String> {
    let urls_text = urls.join(", ");
    let on_event = move |event: Event| {
        match &event {
            Event::Connected => {
                tracing::info!("NATS connected");
                link.set(true);
            }
            Event::Disconnected => {
                tracing::warn!("NATS disconnected; reconnecting");
                link.set(false);
            }
            // Only at shutdown (reconnects never give up).
            Event::Closed => {
                tracing::info!("NATS connection closed");
                link.set(false);
            }
            other => tracing::warn!("NATS: {other}"),
        }
        async {}
    };
    let options = match auth {
        Some(auth) => auth.apply(ConnectOptions::new())?,
        None => ConnectOptions::new(),
    };
    options
        .name(name)
        .connection_timeout(CONNECT_TIMEOUT)
        .retry_on_initial_connect()
        .event_callback(on_event)
        .connect(urls)
        .await
        .map_err(|e| format!("cannot connect to NATS at {urls_text}: {e}"))
}
