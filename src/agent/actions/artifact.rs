//! Artifacts on the host: downloaded with curl, checked against their pinned sha256 before
//! anything uses them, unpacked into a scratch directory that goes away whatever happens.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::agent::outcome::StepError;
use crate::plan::model::ArtifactFrom;

/// The sha256 of a file, read in chunks (release archives are tens of MB).
pub async fn sha256_file(path: &Path) -> Result<String, StepError> {
    let path_buf = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path_buf)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = std::io::Read::read(&mut file, &mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok::<_, std::io::Error>(hex::encode(hasher.finalize()))
    })
    .await
    .map_err(|e| StepError::new(format!("cannot hash {}: {e}", path.display())))?
    .map_err(|e| StepError::new(format!("cannot read {}: {e}", path.display())))
}

/// Fails naming both sums and where the file came from when `path` is not the pinned file.
pub async fn verify(path: &Path, expected: &str, origin: &str) -> Result<(), StepError> {
    let actual = sha256_file(path).await?;
    if actual.eq_ignore_ascii_case(expected) {
        return Ok(());
    }
    Err(StepError::new(format!(
        "sha256 mismatch for {origin}: expected {expected}, got {actual}; nothing installed"
    ))
    .hint("the file is not the pinned one: check sha256 in [components.*] against the vendor's SHA256SUMS (and the version and architecture), or a proxy that alters downloads; then deploy again"))
}

/// Downloads `url` to `dest` with curl (the host's proxies and CA store apply, as for a
/// person running it there).
pub async fn download(url: &str, dest: &Path) -> Result<(), StepError> {
    let run = Command::new("curl")
        .args(["-fsSL", "--retry", "2", "--connect-timeout", "15"])
        .args(["--max-time", "900", "-o"])
        .arg(dest)
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await;
    let output = match run {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StepError::new(format!(
                "cannot download {url}: curl is not installed on this host"
            ))
            .hint("install curl on the host (apt-get install curl), or use source = \"push\""))
        }
        Err(e) => return Err(StepError::new(format!("cannot run curl: {e}"))),
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(StepError::new(format!(
        "download of {url} failed (curl exit {}): {}; nothing installed",
        output.status.code().unwrap_or(-1),
        stderr.trim()
    ))
    .hint("check that the host reaches it (proxy, firewall, DNS) and that the version exists; or set base_url to a mirror, or use source = \"push\""))
}

/// Copies `from` beside `path`, then renames it over `path`: never half a file there (a
/// running server keeps the file it started from).
pub fn install_file(from: &Path, path: &str, mode: u32) -> Result<(), StepError> {
    use std::os::unix::fs::PermissionsExt;
    let target = Path::new(path);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| StepError::new(format!("cannot create {}: {e}", parent.display())))?;
    }
    let tmp = PathBuf::from(format!("{path}.mp-remote-tmp"));
    let result = std::fs::copy(from, &tmp)
        .and_then(|_| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)))
        .and_then(|_| std::fs::rename(&tmp, target));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(StepError::new(format!("cannot install {path}: {e}")));
    }
    Ok(())
}

/// Where an artifact came from, in messages: its URL or its path on the host.
pub fn origin(from: &ArtifactFrom) -> &str {
    match from {
        ArtifactFrom::Download { url } => url,
        ArtifactFrom::Uploaded { path } => path,
    }
}

/// The artifact, fetched into a scratch directory under `work_dir` (downloaded, or the
/// uploaded file as it is) and checked against its pinned sum, with an empty `unpacked`
/// directory beside it. The scratch goes away when dropped, whatever happens next.
pub async fn fetch_verified(
    from: &ArtifactFrom,
    sha256: &str,
    work_dir: &str,
    name: &str,
) -> Result<Fetched, StepError> {
    std::fs::create_dir_all(work_dir)
        .map_err(|e| StepError::new(format!("cannot create {work_dir}: {e}")))?;
    let scratch = Scratch::new(Path::new(work_dir), name)?;
    let file = match from {
        ArtifactFrom::Download { url } => {
            let dest = scratch.path().join("download");
            download(url, &dest).await?;
            dest
        }
        ArtifactFrom::Uploaded { path } => PathBuf::from(path),
    };
    verify(&file, sha256, origin(from)).await?;
    let unpacked = scratch.path().join("unpacked");
    std::fs::create_dir_all(&unpacked)
        .map_err(|e| StepError::new(format!("cannot create {}: {e}", unpacked.display())))?;
    Ok(Fetched {
        file,
        unpacked,
        _scratch: scratch,
    })
}

/// A verified artifact and where to unpack it; see [`fetch_verified`].
pub struct Fetched {
    pub file: PathBuf,
    pub unpacked: PathBuf,
    _scratch: Scratch,
}

/// A directory removed when dropped, so no failure path leaves half an archive behind.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(parent: &Path, name: &str) -> Result<Self, StepError> {
        let path = parent.join(format!("{name}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .map_err(|e| StepError::new(format!("cannot create {}: {e}", path.display())))?;
        Ok(Self(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The executable called `name` from `artifact`: the file itself when it is an ELF binary,
/// else unpacked with tar (which detects gzip, xz, bzip2) into `into` and found there.
pub async fn binary_from(
    artifact: &Path,
    name: &str,
    into: &Path,
    origin: &str,
) -> Result<PathBuf, StepError> {
    let mut magic = [0u8; 4];
    let head = std::fs::File::open(artifact)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut magic))
        .map_err(|e| StepError::new(format!("cannot read {}: {e}", artifact.display())))?;
    if head == 4 && magic == *b"\x7fELF" {
        return Ok(artifact.to_path_buf());
    }
    unpack(artifact, into, origin).await?;
    let mut found = Vec::new();
    find_files(into, name, 4, &mut found);
    found.sort_by_key(|p| (p.components().count(), p.clone()));
    found.into_iter().next().ok_or_else(|| {
        StepError::new(format!(
            "{origin} holds no file named {name} (it holds: {})",
            top_entries(into)
        ))
        .hint(format!(
            "give an archive with the {name} binary, as the vendor's release has it"
        ))
    })
}

/// Unpacks `artifact` (tar detects gzip, xz, bzip2) into `into`, owned by whoever unpacks.
pub async fn unpack(artifact: &Path, into: &Path, origin: &str) -> Result<(), StepError> {
    let output = Command::new("tar")
        .arg("-xf")
        .arg(artifact)
        .arg("-C")
        .arg(into)
        .arg("--no-same-owner")
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| StepError::new(format!("cannot run tar: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    Err(StepError::new(format!(
        "{origin} is neither an archive tar can unpack nor an executable: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    ))
    .hint("give a release .tar.gz, the bare binary, or a .deb"))
}

/// The file whose path ends with `suffix` (`etc/clickhouse-server/config.xml`) in an
/// unpacked archive, however deep its top folder is named.
pub fn find_suffix(dir: &Path, suffix: &str, depth: usize) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut dirs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(kind) if kind.is_file() && path.ends_with(suffix) => return Some(path),
            Ok(kind) if kind.is_dir() && depth > 0 => dirs.push(path),
            _ => {}
        }
    }
    dirs.sort();
    dirs.iter()
        .find_map(|sub| find_suffix(sub, suffix, depth - 1))
}

fn find_files(dir: &Path, name: &str, depth: usize, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() && depth > 0 {
            find_files(&path, name, depth - 1, found);
        } else if kind.is_file() && entry.file_name() == name {
            found.push(path);
        }
    }
}

fn top_entries(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    if names.is_empty() {
        "nothing".into()
    } else {
        names.join(", ")
    }
}

/// What `binary --version` says (stdout and stderr), or why it did not run (a binary for
/// another architecture, a missing library).
pub async fn version_output(binary: &Path) -> Result<String, String> {
    let run = Command::new(binary)
        .arg("--version")
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(15), run).await {
        Err(_) => Err("`--version` did not finish within 15s".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(output)) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            if output.status.success() {
                Ok(text.trim().to_string())
            } else {
                Err(format!(
                    "`--version` exited with {}: {}",
                    output.status.code().unwrap_or(-1),
                    text.trim()
                ))
            }
        }
    }
}

/// The version in a `--version` line: `nats-server: v2.9.10` -> `2.9.10`.
pub fn parse_version(output: &str) -> Option<String> {
    output.split_whitespace().find_map(|word| {
        let word = word
            .trim_start_matches('v')
            .trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
        (word.starts_with(|c: char| c.is_ascii_digit()) && word.contains('.'))
            .then(|| word.to_string())
    })
}

/// Packs the contents of `tree` into the .tar.gz `archive`; returns its sha256 (tests).
#[cfg(test)]
pub fn tgz_for_test(tree: &Path, archive: &Path) -> String {
    let ok = std::process::Command::new("tar")
        .arg("-czf")
        .arg(archive)
        .arg("-C")
        .arg(tree)
        .arg(".")
        .status()
        .unwrap()
        .success();
    assert!(ok, "tar -czf {}", archive.display());
    hex::encode(Sha256::digest(std::fs::read(archive).unwrap()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_version_lines() {
        assert_eq!(
            parse_version("nats-server: v2.9.10").as_deref(),
            Some("2.9.10")
        );
        assert_eq!(
            parse_version("ClickHouse server version 25.10.1.3832 (official build).").as_deref(),
            Some("25.10.1.3832")
        );
        assert_eq!(parse_version("no version here"), None);
    }

    #[tokio::test]
    async fn sums_and_unpacking() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x\n").unwrap();
        // printf 'x\n' | sha256sum
        let sum = "73cb3858a687a8494ca3323053016282f3dad39d42cf62ca4e79dda2aac7d9ac";
        assert_eq!(sha256_file(&file).await.unwrap(), sum);
        verify(&file, sum, "f").await.unwrap();
        let wrong = verify(&file, &"0".repeat(64), "http://mirror/f")
            .await
            .unwrap_err();
        assert_eq!(
            wrong.message,
            format!(
                "sha256 mismatch for http://mirror/f: expected {}, got {sum}; nothing installed",
                "0".repeat(64)
            )
        );

        // A release-shaped archive: folder/binary.
        let tree = dir.path().join("tree/nats-server-v1.0.0-linux-amd64");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(tree.join("nats-server"), b"#!/bin/sh\n").unwrap();
        std::fs::write(tree.join("README.md"), b"hi").unwrap();
        let archive = dir.path().join("a.tar.gz");
        let status = std::process::Command::new("tar")
            .arg("-czf")
            .arg(&archive)
            .arg("-C")
            .arg(dir.path().join("tree"))
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success());
        let scratch = Scratch::new(dir.path(), "unpack").unwrap();
        let found = binary_from(&archive, "nats-server", scratch.path(), "a.tar.gz")
            .await
            .unwrap();
        assert!(found.ends_with("nats-server-v1.0.0-linux-amd64/nats-server"));
        let missing = binary_from(&archive, "clickhouse", scratch.path(), "a.tar.gz")
            .await
            .unwrap_err();
        assert!(
            missing.message.contains("holds no file named clickhouse"),
            "{missing:?}"
        );
        let garbage = binary_from(&file, "x", scratch.path(), "f")
            .await
            .unwrap_err();
        assert!(
            garbage.message.contains("neither an archive"),
            "{garbage:?}"
        );
        let kept = scratch.path().to_path_buf();
        drop(scratch);
        assert!(!kept.exists(), "scratch removed on drop");
    }
}
