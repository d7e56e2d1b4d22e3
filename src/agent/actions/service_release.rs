//! A user service's release: the archive the control node packed and uploaded, unpacked into
//! `{dir}/releases/{id}` beside the older ones, `current` and `previous` switched by renaming
//! symlinks and the newest [`KEEP`] kept, as the pipeline's own release
//! ([`super::app_release`]) does: one layout, one rollback story.

use std::path::{Path, PathBuf};

use super::app_release::{file_sha256, name_of, prune, swap_symlink, INSTALLED_AT, KEEP};
use crate::agent::outcome::{Outcome, StepError};
use crate::agent::shell::sh;
use crate::transport::shell::quote;

/// Written last into an unpacked release: a release without it was cut mid-way.
const COMPLETE: &str = ".mp-remote-complete";

pub async fn apply(
    dir: &str,
    archive: &str,
    sha256: &str,
    check_only: bool,
) -> Result<Outcome, StepError> {
    let dir = PathBuf::from(dir);
    let id = &sha256[..16.min(sha256.len())];
    let current = dir.join("current");
    let target = dir.join("releases").join(id);
    let now = std::fs::read_link(&current).ok();
    let complete = target.join(COMPLETE).is_file();
    if complete && now.as_deref() == Some(target.as_path()) {
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
        return Ok(Outcome::changed(format!("would {change}"), vec![change]));
    }
    let mut changes = Vec::new();
    if !complete {
        unpack(Path::new(archive), sha256, &target).await?;
        changes.push(format!("unpack release {id}"));
    }
    if let Some(old) = &now {
        if old != &target {
            swap_symlink(&dir.join("previous"), old)
                .map_err(|e| StepError::new(format!("cannot keep the previous release: {e}")))?;
            changes.push(format!("keep {} as previous", name_of(old)));
        }
    }
    swap_symlink(&current, &target)
        .map_err(|e| StepError::new(format!("cannot switch {}: {e}", current.display())))?;
    changes.insert(0, change.clone());
    let keep: Vec<PathBuf> = [Some(target), std::fs::read_link(dir.join("previous")).ok()]
        .into_iter()
        .flatten()
        .collect();
    for pruned in prune(&dir.join("releases"), &keep, KEEP) {
        changes.push(format!("remove old release {pruned}"));
    }
    // The uploads of older releases go; this one stays, so a re-deploy need not upload it.
    changes.extend(prune_archives(Path::new(archive)));
    Ok(Outcome::changed(change, changes))
}

/// Removes the other uploads of this service (`NAME-<id>.tar` beside `archive`).
fn prune_archives(archive: &Path) -> Vec<String> {
    let (Some(dir), Some(file)) = (archive.parent(), archive.file_name()) else {
        return Vec::new();
    };
    let file = file.to_string_lossy();
    let Some((service, _)) = file.rsplit_once('-') else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let theirs = name
            .strip_prefix(&format!("{service}-"))
            .is_some_and(|id| id.len() == 20 && id.ends_with(".tar"));
        if theirs && name != file && std::fs::remove_file(entry.path()).is_ok() {
            removed.push(format!("remove old upload {name}"));
        }
    }
    removed
}

/// Verifies the uploaded archive and unpacks it beside the target, renamed into place only
/// once whole.
async fn unpack(archive: &Path, sha256: &str, target: &Path) -> Result<(), StepError> {
    match file_sha256(archive) {
        Ok(actual) if actual == sha256 => {}
        Ok(actual) => {
            return Err(StepError::new(format!(
                "{} has sha256 {actual}, the deploy expected {sha256}",
                archive.display()
            ))
            .hint("run the deploy again: the control node uploads the release before this step"))
        }
        Err(e) => {
            return Err(StepError::new(e).hint(
                "run the deploy again: the control node uploads the release before this step",
            ))
        }
    }
    let temp = target.with_extension("unpacking");
    let _ = std::fs::remove_dir_all(&temp);
    let _ = std::fs::remove_dir_all(target);
    std::fs::create_dir_all(&temp)
        .map_err(|e| StepError::new(format!("cannot create {}: {e}", temp.display())))?;
    let run = sh(&format!(
        "tar -xf {} -C {} --no-same-owner",
        quote(&archive.to_string_lossy()),
        quote(&temp.to_string_lossy())
    ))
    .await
    .map_err(|e| StepError::new(format!("cannot run tar: {e}")))?;
    if !run.success() {
        return Err(StepError::new(format!(
            "cannot unpack {} (tar exit {:?})",
            archive.display(),
            run.code
        ))
        .hint("check free space in the service's directory and that tar is installed")
        .with_output(&run.output));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let finish = || -> std::io::Result<()> {
        std::fs::write(temp.join(INSTALLED_AT), format!("{}\n", now.as_millis()))?;
        std::fs::write(temp.join(COMPLETE), "")?;
        std::fs::rename(&temp, target)
    };
    finish().map_err(|e| StepError::new(format!("cannot install {}: {e}", target.display())))
}
