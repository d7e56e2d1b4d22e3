//! The typed facts about one host. Serialised as JSON for `--json` output and for caching, so the
//! field names are part of the interface: rename nothing without a serde alias.

use serde::{Deserialize, Serialize};

/// The TCP ports the pipeline needs (those its components check before installing). Something
/// already listening there is either an earlier install of ours or a conflict, and layer 2
/// must know which before touching the host.
pub fn watched_ports() -> Vec<u16> {
    crate::stack::component::checked_ports()
        .map(|p| p.number)
        .collect()
}

/// Which MarketPrism service a watched port belongs to, for messages like
/// "port 9000 (ClickHouse native) is taken". Unknown ports give `"unknown"`.
pub fn port_owner(port: u16) -> &'static str {
    crate::stack::component::port_purpose(port).unwrap_or("unknown")
}

/// Everything layer 1 learns about a host in its single probe exec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    pub hostname: String,
    pub os: Os,
    /// As `uname -m` says it (`x86_64`, `aarch64`, macOS `arm64`); see [`Facts::target_arch`].
    pub arch: String,
    pub kernel: String,
    /// Online CPUs; 0 when the host would not tell.
    pub cpus: u32,
    /// 0 when the host would not tell.
    pub memory_bytes: u64,
    /// Free space for unprivileged users on the file system of `disk_path`; 0 when unknown.
    pub disk_free_bytes: u64,
    pub deploy_dir: String,
    /// The pipeline release `{deploy_dir}/current` points at (None: not deployed there).
    #[serde(default)]
    pub app_release: Option<String>,
    /// The nearest existing directory at or above `deploy_dir`, where free space was measured.
    #[serde(default)]
    pub disk_path: String,
    pub init: Init,
    /// The name of PID 1 (`systemd`, `launchd`, `bash` in a container, ...); empty when unknown.
    pub pid1: String,
    pub user: String,
    pub uid: u32,
    pub is_root: bool,
    /// `sudo -n true` succeeded; false when sudo is not installed, even for root.
    pub passwordless_sudo: bool,
    /// glibc version like `2.36`; None on macOS, musl, or when neither getconf nor ldd told.
    pub glibc: Option<String>,
    pub tools: Tools,
    /// Those of [`watched_ports`] with a TCP listener, sorted. Empty also when `ports_source`
    /// is `none`, so check that before concluding the ports are free.
    pub listening_ports: Vec<u16>,
    #[serde(default)]
    pub ports_source: PortsSource,
    pub installed: Installed,
    /// The host's IP addresses (`ip -o addr`), loopback included; empty when it would not tell.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// mp-remote agents on the host (path as the probe was given its directory → bytes), when
    /// the probe was asked to look.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub agent_files: std::collections::BTreeMap<String, u64>,
}

impl Facts {
    /// Root work (installing units, packages) is possible without a password prompt.
    pub fn can_become_root(&self) -> bool {
        self.is_root || self.passwordless_sudo
    }

    /// The Rust `target_arch` spelling of `arch` (as in `std::env::consts::ARCH`), to pick a
    /// prebuilt binary; None for architectures we do not build for.
    pub fn target_arch(&self) -> Option<&'static str> {
        match self.arch.as_str() {
            "x86_64" | "amd64" => Some("x86_64"),
            "aarch64" | "arm64" | "armv8l" => Some("aarch64"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Os {
    /// os-release `ID` (`debian`, `ubuntu`, `rocky`, `centos`), or `macos`.
    pub id: String,
    /// os-release `VERSION_ID` or macOS `ProductVersion`; empty for rolling releases (sid, Arch).
    pub version_id: String,
    /// Which packaging world the host belongs to: `debian`, `rhel`, `macos`, else the `id`.
    pub family: String,
    pub pretty_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// Booted with systemd and PID 1 is systemd: we can install units.
    Systemd,
    /// macOS.
    Launchd,
    /// Nothing we can register services with (containers, sysvinit, OpenRC): run detached.
    None,
}

/// Which listing the port facts came from; `None` means the ports could not be checked at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortsSource {
    Ss,
    Netstat,
    Proc,
    #[default]
    None,
}

/// Commands found on `PATH` (plus sbin and Homebrew dirs, which non-login shells often lack).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tools {
    pub curl: bool,
    pub tar: bool,
    pub systemctl: bool,
    pub apt_get: bool,
    pub dnf: bool,
    pub yum: bool,
    pub sha256sum: bool,
    pub ss: bool,
    #[serde(default)]
    pub sudo: bool,
}

/// Versions of the third-party servers already on the host. The clean version (`18.16.1`) is
/// what gets compared; the raw string (`18.16.1+ds-7.4`) is what gets shown to the user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    pub nats_server: Option<String>,
    #[serde(default)]
    pub nats_server_raw: Option<String>,
    pub clickhouse_server: Option<String>,
    #[serde(default)]
    pub clickhouse_server_raw: Option<String>,
}
