//! Where and how to reach one host over SSH, fully resolved (inventory defaults, groups and
//! `~/.ssh/config` already applied): the transport takes it as it is.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// What to do with a host key that known_hosts does not list. A key that differs from the
/// recorded one is refused under every policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyChecking {
    /// Refuse hosts that known_hosts does not list.
    Strict,
    /// Record unknown hosts in known_hosts (the default).
    AcceptNew,
    /// Skip the check entirely.
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// How the user calls this host (inventory name, or the jump spec), for messages.
    pub label: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    /// Key files to try after the agent, in order; `~` already expanded.
    pub identity_files: Vec<PathBuf>,
    pub host_key_checking: HostKeyChecking,
    pub known_hosts: PathBuf,
    pub connect_timeout: Duration,
    /// Interval of SSH keepalive requests; zero turns them off.
    pub keepalive: Duration,
    /// The bastion to tunnel through (ProxyJump), itself fully resolved.
    pub jump: Option<Box<SshTarget>>,
}
