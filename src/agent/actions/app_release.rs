//! The pipeline's release: this very program copied to `{dir}/releases/{id}/mp-remote`, with
//! `{dir}/current` pointing at it and `{dir}/previous` at the release it replaced. Every switch
//! is a rename of a symlink (atomic); releases other than those two are pruned.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::agent::outcome::{Outcome, StepError};

/// The release directory name: the first 16 hex digits of the binary's sha256.
fn release_id(sha256: &str) -> &str {
    &sha256[..16.min(sha256.len())]
}

pub async fn apply(dir: &str, sha256: &str, check_only: bool) -> Result<Outcome, StepError> {
    let dir = PathBuf::from(dir);
    let id = release_id(sha256);
    let current = dir.join("current");
    let target = dir.join("releases").join(id);
    let binary = target.join("mp-remote");
    let now = std::fs::read_link(&current).ok();
    if now.as_deref() == Some(target.as_path()) && file_sha256(&binary).as_deref() == Ok(sha256) {
        return Ok(Outcome::unchanged(format!("release {id} is current")));
    }
    let change = match &now {
        Some(old) => format!(
            "switch {} to release {id} (was {})",
            current.display(),
            name_of(old)
        ),
        None => format!("install release {id} as {}", current.display()),
    };
    if check_only {
        return Ok(Outcome::changed(change.clone(), vec![change]));
    }
    let me = std::env::current_exe()
        .map_err(|e| StepError::new(format!("cannot locate the agent's own binary: {e}")))?;
    let mine = file_sha256(&me).map_err(StepError::new)?;
    if mine != sha256 {
        return Err(StepError::new(format!(
            "the agent binary on the host ({}) has sha256 {mine}, the deploy expected {sha256}",
            me.display()
        ))
        .hint("run the deploy again: the control node pushes the agent first"));
    }
    install(&me, &target, &binary).map_err(|e| {
        StepError::new(format!(
            "cannot install release {id} in {}: {e}",
            dir.display()
        ))
        .hint("check free space and permissions there (deploy_dir var)")
    })?;
    let mut changes = vec![change.clone()];
    if let Some(old) = &now {
        if old != &target {
            swap_symlink(&dir.join("previous"), old)
                .map_err(|e| StepError::new(format!("cannot keep the previous release: {e}")))?;
            changes.push(format!("keep {} as previous", name_of(old)));
        }
    }
    swap_symlink(&current, &target)
        .map_err(|e| StepError::new(format!("cannot switch {}: {e}", current.display())))?;
    let keep: Vec<PathBuf> = [
        Some(target.clone()),
        std::fs::read_link(dir.join("previous")).ok(),
    ]
    .into_iter()
    .flatten()
    .collect();
    for pruned in prune(&dir.join("releases"), &keep) {
        changes.push(format!("remove old release {pruned}"));
    }
    Ok(Outcome::changed(change, changes))
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn file_sha256(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// Copies to a temporary name first: a half-copied binary is never `mp-remote`.
fn install(from: &Path, dir: &Path, binary: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    let temp = dir.join(".mp-remote.tmp");
    std::fs::copy(from, &temp)?;
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&temp, binary)
}

/// Points `link` at `target` with one rename, never leaving it missing.
fn swap_symlink(link: &Path, target: &Path) -> std::io::Result<()> {
    let temp = link.with_extension("tmp");
    let _ = std::fs::remove_file(&temp);
    std::os::unix::fs::symlink(target, &temp)?;
    std::fs::rename(&temp, link)
}

/// Removes every release not in `keep`; returns their names.
fn prune(releases: &Path, keep: &[PathBuf]) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(releases) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !keep.contains(&path) && std::fs::remove_dir_all(&path).is_ok() {
            removed.push(name_of(&path));
        }
    }
    removed.sort();
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switching_keeps_one_previous_and_prunes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let releases = dir.path().join("releases");
        for id in ["a", "b", "c"] {
            std::fs::create_dir_all(releases.join(id)).unwrap();
        }
        let current = dir.path().join("current");
        swap_symlink(&current, &releases.join("b")).unwrap();
        swap_symlink(&current, &releases.join("c")).unwrap();
        assert_eq!(std::fs::read_link(&current).unwrap(), releases.join("c"));
        let removed = prune(&releases, &[releases.join("c"), releases.join("b")]);
        assert_eq!(removed, ["a"]);
        assert!(releases.join("b").exists() && releases.join("c").exists());
    }

    #[tokio::test]
    async fn an_unknown_release_would_change_in_check_mode() {
        let dir = tempfile::tempdir().unwrap();
        let sha = "0123456789abcdef".repeat(4);
        let outcome = apply(dir.path().to_str().unwrap(), &sha, true)
            .await
            .unwrap();
        assert_eq!(outcome.status, crate::agent::event::StepStatus::Changed);
        assert!(outcome.message.contains("install release 0123456789abcdef"));
        assert!(!dir.path().join("current").exists());
    }
}
