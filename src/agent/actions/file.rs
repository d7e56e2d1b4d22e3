//! Managed files: written atomically, left alone when already right, and never overwritten
//! silently when a person edited them (they are backed up, and the step says where).

use std::path::{Path, PathBuf};

use crate::agent::outcome::{Outcome, StepError};
use crate::agent::shell::sh;
use crate::stack::{managed_state, ManagedState};
use crate::transport::shell::quote;

pub async fn apply(
    path: &str,
    content: &str,
    mode: u32,
    owner: Option<&str>,
    check_only: bool,
) -> Result<Outcome, StepError> {
    let current = match tokio::fs::read(path).await {
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(StepError::new(format!("cannot read {path}: {e}"))),
    };
    let mut changes = Vec::new();
    if current.as_deref() == Some(content) {
        let fixed = fix_metadata(path, mode, owner, check_only).await?;
        if fixed.is_empty() {
            return Ok(Outcome::unchanged(format!("{path} up to date")));
        }
        return Ok(Outcome::changed(
            format!("{path}: {}", fixed.join(", ")),
            fixed,
        ));
    }
    let backup = match &current {
        // Ours, unedited: an older rendering, replace it.
        Some(text) if managed_state(text) == ManagedState::Intact => None,
        Some(_) => Some(format!("{path}.mp-remote-backup-{}", unix_now())),
        None => None,
    };
    match (&current, &backup) {
        (None, _) => changes.push(format!("create {path}")),
        (Some(_), None) => changes.push(format!("update {path}")),
        (Some(_), Some(copy)) => changes.push(format!(
            "{path} was edited on the host: backed up to {copy}, then replaced"
        )),
    }
    if check_only {
        return Ok(Outcome::changed(changes.join("; "), changes));
    }
    if let Some(copy) = &backup {
        tokio::fs::copy(path, copy)
            .await
            .map_err(|e| StepError::new(format!("cannot back up {path} to {copy}: {e}")))?;
    }
    write_atomically(path, content, mode, owner)
        .await
        .map_err(|e| full_disk_aware(path, e))?;
    fix_metadata(path, mode, owner, false).await?;
    Ok(Outcome::changed(changes.join("; "), changes))
}

/// Writes a temporary file and renames it into place. It is created with its final mode and
/// (when the account is known) owner: a secret is never readable by others, not even for the
/// moment between a create and a chmod. A secret (no group or other bits) is staged in a
/// directory only root can enter.
async fn write_atomically(
    path: &str,
    content: &str,
    mode: u32,
    owner: Option<&str>,
) -> std::io::Result<()> {
    let path = path.to_string();
    let content = content.to_string();
    let owner = owner.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let staged = stage(&path, content.as_bytes(), mode, owner.as_deref())?;
        std::fs::rename(&staged, &path)?;
        // The staging directory goes again (it would keep a directory `clean` empties alive).
        if let Some(dir) = staged
            .parent()
            .filter(|d| d.ends_with(".mp-remote-staging"))
        {
            let _ = std::fs::remove_dir(dir);
        }
        Ok(())
    })
    .await
    .map_err(std::io::Error::other)?
}

/// The file written beside `path` (or in its private staging directory), mode and owner set.
fn stage(path: &str, content: &[u8], mode: u32, owner: Option<&str>) -> std::io::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let target = Path::new(path);
    let parent = target.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent)?;
    let secret = mode & 0o077 == 0;
    let dir = if secret {
        let private = parent.join(".mp-remote-staging");
        match std::fs::DirBuilder::new().mode(0o700).create(&private) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        std::fs::set_permissions(
            &private,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        private
    } else {
        parent.to_path_buf()
    };
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!("{name}.mp-remote-tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    if let Some((uid, gid)) = owner.and_then(ids) {
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
    }
    file.write_all(content)?;
    file.sync_all()?;
    Ok(tmp)
}

/// The uid and gid of `user` or `user:group` from the local account files; None when either
/// is not there (then the owner is set after the rename, as before).
fn ids(owner: &str) -> Option<(u32, u32)> {
    let (user, group) = owner.split_once(':').unwrap_or((owner, owner));
    let field = |file: &str, name: &str, index: usize| -> Option<u32> {
        std::fs::read_to_string(file).ok()?.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name)).then(|| f.get(index)?.parse().ok())?
        })
    };
    Some((
        field("/etc/passwd", user, 2)?,
        field("/etc/group", group, 2)?,
    ))
}

/// Mode and owner as wanted; returns what it fixed (or would fix).
async fn fix_metadata(
    path: &str,
    mode: u32,
    owner: Option<&str>,
    check_only: bool,
) -> Result<Vec<String>, StepError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|e| StepError::new(format!("cannot stat {path}: {e}")))?;
    let mut fixed = Vec::new();
    if meta.mode() & 0o7777 != mode {
        fixed.push(format!("mode {:o}", mode));
        if !check_only {
            tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .await
                .map_err(|e| StepError::new(format!("cannot chmod {path}: {e}")))?;
        }
    }
    if let Some(owner) = owner {
        let current = crate::agent::owner::owner_and_mode(path)
            .map(|(owner, _)| owner)
            .unwrap_or_default();
        let wanted = if owner.contains(':') {
            owner.to_string()
        } else {
            format!("{owner}:{owner}")
        };
        if current != wanted {
            fixed.push(format!("owner {wanted}"));
            if !check_only {
                let out = sh(&format!("chown {} {}", quote(&wanted), quote(path)))
                    .await
                    .map_err(|e| StepError::new(format!("cannot chown {path}: {e}")))?;
                if !out.success() {
                    return Err(StepError::new(format!("cannot chown {path} to {wanted}"))
                        .with_output(&out.output));
                }
            }
        }
    }
    Ok(fixed)
}

pub fn full_disk_aware(path: &str, e: std::io::Error) -> StepError {
    if e.raw_os_error() == Some(28) {
        StepError::new(format!("disk full: cannot write {path}: {e}")).hint(format!(
            "free space on the file system holding {path} (df -h {path})"
        ))
    } else {
        StepError::new(format!("cannot write {path}: {e}"))
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    /// A secret is created with its final mode, in a directory only root can enter; a config
    /// file beside its target with its own mode.
    #[test]
    fn secrets_are_created_private_from_the_start() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("etc/password");
        let staged = super::stage(secret.to_str().unwrap(), b"s3cret", 0o600, None).unwrap();
        assert_eq!(
            staged.parent().unwrap(),
            dir.path().join("etc/.mp-remote-staging")
        );
        assert_eq!(std::fs::metadata(&staged).unwrap().mode() & 0o7777, 0o600);
        assert_eq!(
            std::fs::metadata(staged.parent().unwrap()).unwrap().mode() & 0o7777,
            0o700
        );
        let config = dir.path().join("etc/app.toml");
        let staged = super::stage(config.to_str().unwrap(), b"a = 1", 0o644, Some("root")).unwrap();
        assert_eq!(staged.parent().unwrap(), dir.path().join("etc"));
        assert_eq!(
            std::fs::metadata(&staged).unwrap().mode() & 0o7777,
            0o644 & !umask()
        );
        assert_eq!(super::ids("root"), Some((0, 0)));
        assert_eq!(super::ids("no-such-account-here"), None);
    }

    fn umask() -> u32 {
        // SAFETY: umask only swaps the process's mask; it is put back at once.
        unsafe {
            let old = libc::umask(0o022);
            libc::umask(old);
            old as u32
        }
    }

    use super::*;
    use crate::agent::event::StepStatus;

    #[tokio::test]
    async fn create_then_unchanged_then_backup_of_an_edit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.conf");
        let path = path.to_str().unwrap();
        let content = crate::stack::managed::with_marker(
            crate::stack::managed::CommentStyle::Hash,
            "a = 1\n",
        );
        let first = apply(path, &content, 0o640, None, false).await.unwrap();
        assert_eq!(first.status, StepStatus::Changed);
        let second = apply(path, &content, 0o640, None, false).await.unwrap();
        assert_eq!(second.status, StepStatus::Ok, "{second:?}");

        std::fs::write(path, format!("{content}b = 2\n")).unwrap();
        let check = apply(path, &content, 0o640, None, true).await.unwrap();
        assert_eq!(check.status, StepStatus::Changed);
        assert!(
            std::fs::read_to_string(path).unwrap().contains("b = 2"),
            "check changes nothing"
        );
        let third = apply(path, &content, 0o640, None, false).await.unwrap();
        assert!(third.message.contains("backed up"), "{third:?}");
        assert_eq!(std::fs::read_to_string(path).unwrap(), content);
        let backups = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("backup")
            })
            .count();
        assert_eq!(backups, 1);
    }
}
