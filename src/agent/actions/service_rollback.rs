//! A user service switched back to the release (and venv) it ran before this run: what a
//! rolling run does on a host whose batch failed after the service's release changed. The
//! switch is the release's `current`/`previous` pair swapped, and the venv's `venv` /
//! `venv-previous` when the run changed the venv too; the release it leaves stays on disk as
//! `previous` for inspection.

use std::path::{Path, PathBuf};

use super::app_release::{name_of, swap_symlink};
use super::venv;
use crate::agent::outcome::{Outcome, StepError};

pub fn apply(dir: &str, venv: bool, check_only: bool) -> Result<Outcome, StepError> {
    let dir = PathBuf::from(dir);
    let (now, before) = pair(&dir, "current", "previous", "release")?;
    let venvs = if venv {
        Some(pair(&dir, "venv", venv::PREVIOUS, "venv")?)
    } else {
        None
    };
    let mut change = format!(
        "roll back {} to release {} (was {})",
        dir.join("current").display(),
        name_of(&before),
        name_of(&now)
    );
    if let Some((now, before)) = &venvs {
        change.push_str(&format!(
            ", venv {} (was {})",
            name_of(before),
            name_of(now)
        ));
    }
    if check_only {
        return Ok(Outcome::changed(format!("would {change}"), vec![change]));
    }
    swap(&dir, "current", "previous", &now, &before)?;
    if let Some((now, before)) = &venvs {
        swap(&dir, "venv", venv::PREVIOUS, now, before)?;
    }
    Ok(Outcome::changed(
        format!("{change}; kept as previous for inspection"),
        vec![change],
    ))
}

/// Where `link` and `previous` point; both must be there and complete.
fn pair(
    dir: &Path,
    link: &str,
    previous: &str,
    what: &str,
) -> Result<(PathBuf, PathBuf), StepError> {
    let read = |name: &str| std::fs::read_link(dir.join(name)).ok();
    match (read(link), read(previous)) {
        (Some(now), Some(before)) if before.is_dir() && now != before => Ok((now, before)),
        (Some(now), _) => Err(StepError::new(format!(
            "no earlier {what} to roll back to in {} (the {what} in use is {})",
            dir.display(),
            name_of(&now)
        ))
        .hint(
            "the service's first release has nothing before it: fix the service and deploy again",
        )),
        (None, _) => Err(StepError::new(format!(
            "no {what} is installed in {}: nothing to roll back",
            dir.display()
        ))
        .hint("deploy first")),
    }
}

/// `link` to `before`, `previous` to `now`: each one rename, never missing.
fn swap(
    dir: &Path,
    link: &str,
    previous: &str,
    now: &Path,
    before: &Path,
) -> Result<(), StepError> {
    swap_symlink(&dir.join(previous), now)
        .and_then(|()| swap_symlink(&dir.join(link), before))
        .map_err(|e| StepError::new(format!("cannot switch {}: {e}", dir.join(link).display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn layout(with_venvs: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for d in ["releases/aaaa", "releases/bbbb", "venvs/v1", "venvs/v2"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        symlink(dir.path().join("releases/bbbb"), dir.path().join("current")).unwrap();
        symlink(
            dir.path().join("releases/aaaa"),
            dir.path().join("previous"),
        )
        .unwrap();
        symlink(dir.path().join("venvs/v2"), dir.path().join("venv")).unwrap();
        if with_venvs {
            symlink(
                dir.path().join("venvs/v1"),
                dir.path().join("venv-previous"),
            )
            .unwrap();
        }
        dir
    }

    fn points(dir: &Path, link: &str) -> String {
        name_of(&std::fs::read_link(dir.join(link)).unwrap())
    }

    #[test]
    fn switches_the_release_and_the_venv_back() {
        let dir = layout(true);
        let root = dir.path().to_str().unwrap();
        let checked = apply(root, true, true).unwrap();
        assert!(
            checked.message.starts_with("would roll back"),
            "{checked:?}"
        );
        assert_eq!(points(dir.path(), "current"), "bbbb");
        let done = apply(root, true, false).unwrap();
        assert!(
            done.message
                .contains("to release aaaa (was bbbb), venv v1 (was v2)"),
            "{}",
            done.message
        );
        assert_eq!(points(dir.path(), "current"), "aaaa");
        assert_eq!(points(dir.path(), "previous"), "bbbb");
        assert_eq!(points(dir.path(), "venv"), "v1");
        assert_eq!(points(dir.path(), "venv-previous"), "v2");
    }

    #[test]
    fn code_only_keeps_the_venv_and_a_first_release_has_nothing_to_go_back_to() {
        let dir = layout(false);
        let root = dir.path().to_str().unwrap();
        let err = apply(root, true, false).unwrap_err();
        assert!(err.message.contains("no earlier venv"), "{}", err.message);
        assert_eq!(points(dir.path(), "current"), "bbbb", "nothing half-done");
        apply(root, false, false).unwrap();
        assert_eq!(points(dir.path(), "current"), "aaaa");
        assert_eq!(points(dir.path(), "venv"), "v2");
        std::fs::remove_file(dir.path().join("previous")).unwrap();
        let err = apply(root, false, false).unwrap_err();
        assert!(
            err.message.contains("no earlier release"),
            "{}",
            err.message
        );
    }
}
