//! The pipeline's release: this very program copied to `{dir}/releases/{id}/mp-remote`, with
//! `{dir}/current` pointing at it and `{dir}/previous` at the release it replaced. Every switch
//! is a rename of a symlink (atomic). The newest [`KEEP`] releases stay on disk (always with
//! `current` and `previous`), so a rollback can go further back than one release.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Releases kept per host, `current` and `previous` among them.
pub const KEEP: usize = 5;
/// In each release directory: when it was installed (unix milliseconds), to keep the newest
/// and to know which one came before another.
pub(crate) const INSTALLED_AT: &str = ".installed-at";

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
    let change = switch_line(&current, now.as_deref(), id);
    if check_only {
        return Ok(Outcome::changed(change.clone(), vec![change]));
    }
    let me = pushed_build(sha256)?;
    install(&me, &target, &binary).map_err(|e| {
        StepError::new(format!(
            "cannot install release {id} in {}: {e}",
            dir.display()
        ))
        .hint("check free space and permissions there (deploy_dir var)")
    })?;
    let mut changes = vec![change.clone()];
    changes.extend(switch_to(&dir, now.as_deref(), &target)?);
    Ok(Outcome::changed(change, changes))
}

/// `switch DIR/current to release ID (was OLD)`, or `install release ID as DIR/current`.
pub(crate) fn switch_line(current: &Path, now: Option<&Path>, id: &str) -> String {
    match now {
        Some(old) => format!(
            "switch {} to release {id} (was {})",
            current.display(),
            name_of(old)
        ),
        None => format!("install release {id} as {}", current.display()),
    }
}

/// Points `{dir}/current` at `target` (the release it leaves, `now`, becomes `previous`) and
/// keeps the newest [`KEEP`] releases: what it changed beyond the switch itself.
pub(crate) fn switch_to(
    dir: &Path,
    now: Option<&Path>,
    target: &Path,
) -> Result<Vec<String>, StepError> {
    let mut changes = Vec::new();
    if let Some(old) = now.filter(|old| *old != target) {
        swap_symlink(&dir.join("previous"), old)
            .map_err(|e| StepError::new(format!("cannot keep the previous release: {e}")))?;
        changes.push(format!("keep {} as previous", name_of(old)));
    }
    let current = dir.join("current");
    swap_symlink(&current, target)
        .map_err(|e| StepError::new(format!("cannot switch {}: {e}", current.display())))?;
    let keep: Vec<PathBuf> = [
        Some(target.to_path_buf()),
        std::fs::read_link(dir.join("previous")).ok(),
    ]
    .into_iter()
    .flatten()
    .collect();
    for pruned in prune(&dir.join("releases"), &keep, KEEP) {
        changes.push(format!("remove old release {pruned}"));
    }
    Ok(changes)
}

/// The build the control node pushed, by its sha256: this very program, or the file pushed
/// beside it when the agent runs through a wrapper (an `--agent-binary` script that execs
/// another build).
fn pushed_build(sha256: &str) -> Result<PathBuf, StepError> {
    let me = std::env::current_exe()
        .map_err(|e| StepError::new(format!("cannot locate the agent's own binary: {e}")))?;
    let mine = file_sha256(&me).map_err(StepError::new)?;
    if mine == sha256 {
        return Ok(me);
    }
    let name = format!("mp-remote-{}", release_id(sha256));
    let pushed = [
        Some(
            Path::new(crate::plan::build::STATE_DIR)
                .join("bin")
                .join(&name),
        ),
        std::env::var_os("HOME").map(|home| Path::new(&home).join(".mp-remote/bin").join(&name)),
    ];
    for candidate in pushed.into_iter().flatten() {
        if file_sha256(&candidate).as_deref() == Ok(sha256) {
            return Ok(candidate);
        }
    }
    Err(StepError::new(format!(
        "the agent binary on the host ({}) has sha256 {mine}, the deploy expected {sha256}",
        me.display()
    ))
    .hint("run the deploy again: the control node pushes the agent first"))
}

/// Switches `current` back to `to` (a release id), or to the release installed before it;
/// the release it leaves becomes `previous` and stays on disk for inspection.
pub async fn rollback(dir: &str, to: Option<&str>, check_only: bool) -> Result<Outcome, StepError> {
    let dir = PathBuf::from(dir);
    let current = dir.join("current");
    let releases = dir.join("releases");
    let Ok(now) = std::fs::read_link(&current) else {
        return Err(StepError::new(format!(
            "no release is installed in {}: nothing to roll back",
            dir.display()
        ))
        .hint("deploy first; rollback switches between releases a deploy installed"));
    };
    let target = match to {
        Some(id) => releases.join(id),
        // The release installed last before the current one.
        None => {
            let since = installed_at(&now);
            by_age(&releases)
                .into_iter()
                .find(|p| *p != now && installed_at(p) < since)
                .ok_or_else(|| {
                    StepError::new(format!(
                        "no release older than the current one ({}) in {} to roll back to",
                        name_of(&now),
                        releases.display()
                    ))
                    .hint(available(&releases))
                })?
        }
    };
    if !target.join("mp-remote").is_file() {
        return Err(StepError::new(format!(
            "release {} is not on this host ({} has no mp-remote)",
            name_of(&target),
            target.display()
        ))
        .hint(available(&releases)));
    }
    if target == now {
        return Ok(Outcome::unchanged(format!(
            "release {} is current already",
            name_of(&target)
        )));
    }
    let change = format!(
        "roll back {} to release {} (was {})",
        current.display(),
        name_of(&target),
        name_of(&now)
    );
    if check_only {
        return Ok(Outcome::changed(format!("would {change}"), vec![change]));
    }
    swap_symlink(&dir.join("previous"), &now)
        .map_err(|e| StepError::new(format!("cannot keep the release rolled back from: {e}")))?;
    swap_symlink(&current, &target)
        .map_err(|e| StepError::new(format!("cannot switch {}: {e}", current.display())))?;
    Ok(Outcome::changed(
        format!(
            "rolled back to release {} (was {}, kept as previous for inspection)",
            name_of(&target),
            name_of(&now)
        ),
        vec![change, format!("keep {} as previous", name_of(&now))],
    ))
}

/// "releases on this host: a (current), b, c", newest first.
fn available(releases: &Path) -> String {
    let names: Vec<String> = by_age(releases).iter().map(|p| name_of(p)).collect();
    if names.is_empty() {
        format!("{} holds no release", releases.display())
    } else {
        format!(
            "releases on this host, newest first: {}; pass one with --to",
            names.join(", ")
        )
    }
}

/// The release directories, newest install first.
fn by_age(releases: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(releases) else {
        return Vec::new();
    };
    let mut dirs: Vec<(u128, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .map(|p| (installed_at(&p), p))
        .collect();
    dirs.sort_by(|a, b| b.cmp(a));
    dirs.into_iter().map(|(_, p)| p).collect()
}

/// When a release was installed (ms): its record, else its directory's mtime.
fn installed_at(release: &Path) -> u128 {
    std::fs::read_to_string(release.join(INSTALLED_AT))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .or_else(|| {
            let modified = std::fs::metadata(release).ok()?.modified().ok()?;
            Some(
                modified
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()?
                    .as_millis(),
            )
        })
        .unwrap_or(0)
}

pub(crate) fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

pub(crate) fn file_sha256(path: &Path) -> Result<String, String> {
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
    std::fs::rename(&temp, binary)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    std::fs::write(dir.join(INSTALLED_AT), format!("{}\n", now.as_millis()))
}

/// Points `link` at `target` with one rename, never leaving it missing.
pub(crate) fn swap_symlink(link: &Path, target: &Path) -> std::io::Result<()> {
    let temp = link.with_extension("tmp");
    let _ = std::fs::remove_file(&temp);
    std::os::unix::fs::symlink(target, &temp)?;
    std::fs::rename(&temp, link)
}

/// Removes every release but those in `keep` and the newest `newest`; returns their names.
pub(crate) fn prune(releases: &Path, keep: &[PathBuf], newest: usize) -> Vec<String> {
    let mut kept = keep.len();
    let mut removed = Vec::new();
    for path in by_age(releases) {
        if keep.contains(&path) {
            continue;
        }
        if kept < newest {
            kept += 1;
            continue;
        }
        if std::fs::remove_dir_all(&path).is_ok() {
            removed.push(name_of(&path));
        }
    }
    removed.sort();
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Releases a..g installed in that order (g newest).
    fn seven_releases(releases: &Path) {
        for (at, id) in ["a", "b", "c", "d", "e", "f", "g"].iter().enumerate() {
            std::fs::create_dir_all(releases.join(id)).unwrap();
            std::fs::write(releases.join(id).join("mp-remote"), id).unwrap();
            std::fs::write(
                releases.join(id).join(INSTALLED_AT),
                format!("{}", 1000 + at),
            )
            .unwrap();
        }
    }

    #[test]
    fn pruning_keeps_current_previous_and_the_newest_five() {
        let dir = tempfile::tempdir().unwrap();
        let releases = dir.path().join("releases");
        seven_releases(&releases);
        let current = dir.path().join("current");
        swap_symlink(&current, &releases.join("b")).unwrap();
        swap_symlink(&current, &releases.join("g")).unwrap();
        assert_eq!(std::fs::read_link(&current).unwrap(), releases.join("g"));
        // An old release kept as previous (a rollback went there) survives.
        let removed = prune(&releases, &[releases.join("g"), releases.join("a")], KEEP);
        assert_eq!(removed, ["b", "c"]);
        for id in ["a", "d", "e", "f", "g"] {
            assert!(releases.join(id).exists(), "{id}");
        }
    }

    #[tokio::test]
    async fn rollback_goes_to_previous_or_a_named_release_and_keeps_the_one_it_left() {
        let dir = tempfile::tempdir().unwrap();
        let releases = dir.path().join("releases");
        seven_releases(&releases);
        let path = dir.path().to_str().unwrap();
        let error = rollback(path, None, false).await.unwrap_err();
        assert!(
            error.message.contains("no release is installed"),
            "{error:?}"
        );
        swap_symlink(&dir.path().join("current"), &releases.join("g")).unwrap();
        swap_symlink(&dir.path().join("previous"), &releases.join("f")).unwrap();

        let preview = rollback(path, None, true).await.unwrap();
        assert!(
            preview.message.starts_with("would roll back"),
            "{preview:?}"
        );
        assert_eq!(
            std::fs::read_link(dir.path().join("current")).unwrap(),
            releases.join("g")
        );

        let done = rollback(path, None, false).await.unwrap();
        assert_eq!(done.status, crate::agent::event::StepStatus::Changed);
        assert!(
            done.message.contains("rolled back to release f (was g"),
            "{done:?}"
        );
        assert_eq!(
            std::fs::read_link(dir.path().join("current")).unwrap(),
            releases.join("f")
        );
        assert_eq!(
            std::fs::read_link(dir.path().join("previous")).unwrap(),
            releases.join("g")
        );

        // Again: the release installed before f, not back to g.
        let before = rollback(path, None, false).await.unwrap();
        assert!(before.message.contains("release e (was f"), "{before:?}");
        rollback(path, Some("f"), false).await.unwrap();
        let again = rollback(path, Some("f"), false).await.unwrap();
        assert_eq!(
            again.status,
            crate::agent::event::StepStatus::Ok,
            "{again:?}"
        );
        let further = rollback(path, Some("c"), false).await.unwrap();
        assert!(further.message.contains("release c (was f"), "{further:?}");

        let missing = rollback(path, Some("zz"), false).await.unwrap_err();
        assert!(
            missing.message.contains("release zz is not on this host"),
            "{missing:?}"
        );
        assert!(
            missing
                .hint
                .as_deref()
                .unwrap_or("")
                .contains("newest first: g, f, e"),
            "{missing:?}"
        );
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
