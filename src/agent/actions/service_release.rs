//! A user service's release: the archive the control node packed and uploaded, unpacked into
//! `{dir}/releases/{id}` beside the older ones, `current` and `previous` switched by renaming
//! symlinks and the newest [`super::app_release::KEEP`] kept, as the pipeline's own release
//! ([`super::app_release`]) does: one layout, one rollback story.

use std::path::{Path, PathBuf};

use super::app_release::{file_sha256, switch_line, switch_to, INSTALLED_AT};
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
    let change = switch_line(&current, now.as_deref(), id);
    if check_only {
        return Ok(Outcome::changed(format!("would {change}"), vec![change]));
    }
    let mut changes = vec![change.clone()];
    if !complete {
        unpack(Path::new(archive), sha256, &target).await?;
        changes.push(format!("unpack release {id}"));
    }
    changes.extend(switch_to(&dir, now.as_deref(), &target)?);
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
