//! Layer 1 (detect): what a host is, learned in ONE shell exec and parsed by pure Rust.
//!
//! One exec per host because every round trip costs a latency (and with a bastion, two); the
//! script therefore reports raw facts and never decides anything, so that all interpretation
//! lives in [`parse`], where fixtures captured from real hosts pin it down.
//!
//! Flow: run [`probe_command`] (or [`PROBE_SCRIPT`] with the deploy dir as `$1`) on the host,
//! hand its stdout to [`parse`], get [`Facts`].
//!
//! # Output format (format 1)
//!
//! Line based, UTF-8 or ASCII, `\n` or `\r\n`:
//!
//! - `mp_facts=1` opens the output; anything before it (login banners) is ignored.
//! - `key=value`: the value is everything after the first `=`, never spans lines; an empty
//!   value means the probe could not find out.
//! - `--- name ---` ... `--- end name ---`: a section of verbatim multi-line output.
//! - `probe_end=ok` closes the output; without it the output counts as cut off.
//!
//! Keys: `deploy_dir`, `hostname`, `uname_s`, `kernel`, `arch`, `cpus`, `meminfo` (the raw
//! `MemTotal:` line), `hw_memsize` (macOS, bytes), `disk_path` (nearest existing dir at or above
//! the deploy dir), `disk_df` (its `df -Pk` data line), `pid1`, `run_systemd_system` (yes/no),
//! `uid`, `user`, `sudo` (yes/no/missing), `glibc_raw`, `tool.<command>` (yes/no),
//! `listen_source` (ss/netstat/proc/none), `nats_server_bin` / `clickhouse_server_bin` (first
//! line of `--version`), `nats_server_pkg` / `clickhouse_server_pkg` (dpkg or rpm version, only
//! when installed). Sections: `os-release` (Linux), `sw_vers` (macOS), `listen` (the listener
//! table in the `listen_source` format).
//!
//! Unknown keys and sections are ignored, so the script may grow without breaking older parsers;
//! an incompatible change must bump `mp_facts`.

mod error;
mod model;
mod os;
mod parse;
mod ports;
mod probe;
mod version;

#[cfg(test)]
mod fixture_tests;

pub use error::FactsError;
pub use model::{port_owner, watched_ports, Facts, Init, Installed, Os, PortsSource, Tools};
pub use parse::parse;
pub(crate) use ports::ss_port as ss_local_port;
pub use ports::{listening_ports, watched_listening_ports};
pub use probe::{probe_command, PROBE_SCRIPT};
pub use version::{glibc_version, normalize_version};
