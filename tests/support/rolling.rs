//! Rolling updates as a test drives them: builds that differ only in their checksum, the
//! release a host runs, and the run that recorded it.

use std::path::{Path, PathBuf};

use super::runs::{run_dirs, run_json};
use super::{mp_remote, Fleet, Run};

/// `update --serial 1 --agent-binary BUILD` and `extra`.
pub fn roll(inventory: &Path, build: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "update",
        "--serial",
        "1",
        "--agent-binary",
        build.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    mp_remote(Some(inventory), &args)
}

/// The record of the fleet's latest run.
pub fn latest_run(fleet: &Fleet) -> serde_json::Value {
    let dirs = run_dirs(&fleet.path(".mp-remote/runs"));
    run_json(dirs.last().expect("a recorded run"))
}

/// The release `/opt/marketprism/current` points at on `host`.
pub fn release(fleet: &Fleet, host: &str) -> String {
    let link = fleet.exec(host, "readlink /opt/marketprism/current");
    link.trim()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Another build, as far as any checksum can tell: `tag` past the end of the ELF file.
pub fn build(fleet: &Fleet, name: &str, tag: &[u8]) -> PathBuf {
    let path = fleet.path(name);
    let mut bytes = std::fs::read(env!("CARGO_BIN_EXE_mp-remote")).unwrap();
    bytes.extend_from_slice(tag);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The release id of a build: the first 16 hex digits of its sha256.
pub fn sha16(path: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap();
    hex::encode(sha2::Sha256::digest(&bytes))[..16].to_string()
}
