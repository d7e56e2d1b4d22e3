//! What can go wrong reaching or using a host, with what to do about it.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

/// A transport failure. Every variant names the host (its inventory label) and says what the
/// user can do; `is_unreachable` separates "never got in" from "got in, then something broke".
#[derive(Debug, Error)]
pub enum TransportError {
    #[error("{host}: cannot resolve {address:?}: {reason}; check the address in the inventory or ~/.ssh/config")]
    Resolve {
        host: String,
        address: String,
        reason: String,
    },

    #[error("{host}: cannot connect to {address}:{port}: {source}; check that sshd runs there and the port is right")]
    Connect {
        host: String,
        address: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },

    #[error("{host}: no SSH answer from {address}:{port} within {}; check the address, firewall, or raise connect_timeout", humantime::format_duration(*.after))]
    ConnectTimeout {
        host: String,
        address: String,
        port: u16,
        after: Duration,
    },

    #[error("{host}: host key of {endpoint} is not in {} and host_key_checking is strict (offered {fingerprint}); verify it and add it with `ssh-keyscan -p {port} {address} >> {}`, or use accept-new", known_hosts.display(), known_hosts.display())]
    HostKeyUnknown {
        host: String,
        endpoint: String,
        address: String,
        port: u16,
        fingerprint: String,
        known_hosts: PathBuf,
    },

    #[error("{host}: HOST KEY CHANGED for {endpoint}: it offered {offered}, but {}:{line} records {recorded}; if the host was rebuilt, remove that line (`ssh-keygen -R '{endpoint}' -f {}`), otherwise treat it as an attack", known_hosts.display(), known_hosts.display())]
    HostKeyChanged {
        host: String,
        endpoint: String,
        offered: String,
        recorded: String,
        known_hosts: PathBuf,
        line: usize,
    },

    #[error("{host}: cannot record the host key in {}: {reason}", known_hosts.display())]
    KnownHosts {
        host: String,
        known_hosts: PathBuf,
        reason: String,
    },

    #[error("{host}: cannot use key file {}: {reason}", path.display())]
    KeyFile {
        host: String,
        path: PathBuf,
        reason: String,
    },

    #[error("{host}: authentication failed for user {user:?} (tried: {}); put the public key in ~{user}/.ssh/authorized_keys on the host, or set user/identity_file in the inventory", tried.join(", "))]
    Auth {
        host: String,
        user: String,
        tried: Vec<String>,
    },

    #[error("{host}: via bastion {jump}: {source}")]
    Jump {
        host: String,
        jump: String,
        #[source]
        source: Box<TransportError>,
    },

    #[error("{host}: SSH error: {reason}")]
    Ssh { host: String, reason: String },

    #[error("{host}: the SSH handshake with {address}:{port} was cut by the server ({reason}), {attempts} times with a pause between; sshd may be overloaded (MaxStartups: lower --handshakes) or still starting")]
    HandshakeCut {
        host: String,
        address: String,
        port: u16,
        attempts: u32,
        reason: String,
    },

    #[error("{host}: the connection was lost: {reason}; the host may have rebooted or the network dropped")]
    Disconnected { host: String, reason: String },

    #[error("{host}: `{command}` did not finish within {}", humantime::format_duration(*.after))]
    CommandTimeout {
        host: String,
        command: String,
        after: Duration,
    },

    #[error("{host}: local command failed to start: {source}")]
    Local {
        host: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{host}: upload to {path} failed: {reason}")]
    Upload {
        host: String,
        path: String,
        reason: String,
    },
}

impl TransportError {
    /// True when the host was never reached or never let us in: these hosts end as
    /// `unreachable`, everything else as `failed`.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Jump { source, .. } => source.is_unreachable(),
            Self::Resolve { .. }
            | Self::Connect { .. }
            | Self::ConnectTimeout { .. }
            | Self::HostKeyUnknown { .. }
            | Self::HostKeyChanged { .. }
            | Self::KeyFile { .. }
            | Self::Auth { .. }
            | Self::Disconnected { .. }
            | Self::HandshakeCut { .. } => true,
            Self::KnownHosts { .. }
            | Self::Ssh { .. }
            | Self::CommandTimeout { .. }
            | Self::Local { .. }
            | Self::Upload { .. } => false,
        }
    }
}
