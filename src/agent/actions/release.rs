//! A server binary from a vendor release or a pushed file (`source = "release"` / `"push"`).
//!
//! Check first: a binary that already reports the pinned version (or, unpinned, was installed
//! from this very artifact) means nothing is downloaded. Otherwise the artifact is fetched and
//! its sha256 verified, then unpacked, then the binary must run here and report the pinned
//! version; only then does it replace the installed one, by an atomic rename (a running server
//! keeps its old file). Any failure before the rename installs nothing.

use std::path::Path;

use crate::agent::outcome::{Outcome, StepError};
use crate::plan::model::ArtifactFrom;

use super::artifact;

pub struct Binary<'a> {
    pub name: &'a str,
    pub from: &'a ArtifactFrom,
    pub sha256: &'a str,
    pub version: Option<&'a str>,
    pub path: &'a str,
    pub work_dir: &'a str,
}

pub async fn apply(binary: &Binary<'_>, check_only: bool) -> Result<Outcome, StepError> {
    let Binary {
        name,
        from,
        sha256,
        version,
        path,
        work_dir,
    } = *binary;
    let record = Path::new(work_dir).join(format!("{name}.installed"));
    let installed = artifact::version_output(Path::new(path))
        .await
        .ok()
        .and_then(|out| artifact::parse_version(&out));
    match (version, &installed) {
        (Some(want), Some(have)) if want == have => {
            return Ok(Outcome::unchanged(format!(
                "{name} {have} already installed ({path})"
            )))
        }
        (None, Some(have)) if installed_from(&record, path).await.as_deref() == Some(sha256) => {
            return Ok(Outcome::unchanged(format!(
                "{name} {have} from this artifact already installed ({path})"
            )))
        }
        _ => {}
    }
    let origin = artifact::origin(from);
    let what = match version {
        Some(want) => format!("{name} {want}"),
        None => name.to_string(),
    };
    let change = match &installed {
        Some(have) => format!("replace {name} {have} at {path} with {what}"),
        None => format!("install {what} to {path}"),
    };
    if check_only {
        let fetch = match from {
            ArtifactFrom::Download { url } => format!("download {url}, "),
            ArtifactFrom::Uploaded { .. } => String::new(),
        };
        return Ok(Outcome::changed(
            format!("would {fetch}{change}"),
            vec![change],
        ));
    }

    let fetched = artifact::fetch_verified(from, sha256, work_dir, name).await?;
    let new_binary = artifact::binary_from(&fetched.file, name, &fetched.unpacked, origin).await?;
    let reported = artifact::version_output(&new_binary).await.map_err(|e| {
        StepError::new(format!(
            "the {name} from {origin} does not run on this host ({e}); nothing installed"
        ))
        .hint("is it built for this host's architecture (uname -m)? give the matching artifact")
    })?;
    let new_version = artifact::parse_version(&reported);
    if let Some(want) = version {
        if new_version.as_deref() != Some(want) {
            return Err(StepError::new(format!(
                "{origin} holds {name} {}, but the inventory pins {want}; nothing installed",
                new_version.as_deref().unwrap_or("of an unknown version")
            ))
            .hint("make version under [components.*] match the artifact (or the artifact the version)"));
        }
    }

    artifact::install_file(&new_binary, path, 0o755)?;
    let binary_sum = artifact::sha256_file(Path::new(path)).await?;
    // The record lets an unpinned push recognise its artifact next time; losing it only
    // costs a reinstall of the same file.
    if let Err(e) = std::fs::write(&record, format!("{sha256} {binary_sum}\n")) {
        tracing::warn!("cannot write {}: {e}", record.display());
    }
    let done = match (&installed, &new_version) {
        (Some(have), Some(new)) => format!("replaced {name} {have} with {new} ({path})"),
        (None, Some(new)) => format!("installed {name} {new} ({path})"),
        (_, None) => format!("installed {name} ({path}; it reports: {reported})"),
    };
    Ok(Outcome::changed(done, vec![change]))
}

/// The artifact sha256 the install record names, if the binary is still the one installed.
async fn installed_from(record: &Path, path: &str) -> Option<String> {
    let text = std::fs::read_to_string(record).ok()?;
    let (artifact_sum, binary_sum) = text.trim().split_once(' ')?;
    let now = artifact::sha256_file(Path::new(path)).await.ok()?;
    (now == binary_sum).then(|| artifact_sum.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake server: a shell script that prints a version, packed like a release.
    fn release(dir: &Path, version: &str) -> (std::path::PathBuf, String) {
        let tree = dir.join(format!("tree-{version}/fake-server-v{version}-linux-amd64"));
        std::fs::create_dir_all(&tree).unwrap();
        let bin = tree.join("fake-server");
        std::fs::write(
            &bin,
            format!("#!/bin/sh\necho \"fake-server: v{version}\"\n"),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let archive = dir.join(format!("fake-{version}.tar.gz"));
        let sum = artifact::tgz_for_test(&dir.join(format!("tree-{version}")), &archive);
        (archive, sum)
    }

    #[tokio::test]
    async fn installs_once_then_leaves_it_and_refuses_wrong_sums_and_versions() {
        let dir = tempfile::tempdir().unwrap();
        let (archive, sum) = release(dir.path(), "1.2.3");
        let from = ArtifactFrom::Uploaded {
            path: archive.to_string_lossy().into_owned(),
        };
        let target = dir.path().join("bin/fake-server");
        let target_str = target.to_string_lossy().into_owned();
        let work = dir.path().join("work").to_string_lossy().into_owned();
        let pinned = Binary {
            name: "fake-server",
            from: &from,
            sha256: &sum,
            version: Some("1.2.3"),
            path: &target_str,
            work_dir: &work,
        };

        let bad_sum = "0".repeat(64);
        let wrong = apply(
            &Binary {
                sha256: &bad_sum,
                ..pinned
            },
            false,
        )
        .await
        .unwrap_err();
        assert!(wrong.message.contains(&sum) && wrong.message.contains(&bad_sum));
        assert!(!target.exists(), "nothing installed on a mismatch");

        let other_version = apply(
            &Binary {
                version: Some("9.9.9"),
                ..pinned
            },
            false,
        )
        .await
        .unwrap_err();
        assert!(
            other_version
                .message
                .contains("holds fake-server 1.2.3, but the inventory pins 9.9.9"),
            "{other_version:?}"
        );
        assert!(!target.exists());

        let check = apply(&pinned, true).await.unwrap();
        assert!(check.message.starts_with("would install fake-server 1.2.3"));
        assert!(!target.exists());

        let first = apply(&pinned, false).await.unwrap();
        assert_eq!(first.status, crate::agent::StepStatus::Changed, "{first:?}");
        assert!(target.exists());
        let second = apply(&pinned, false).await.unwrap();
        assert_eq!(second.status, crate::agent::StepStatus::Ok, "{second:?}");

        // Unpinned: the install record says which artifact is in place.
        let unpinned = Binary {
            version: None,
            ..pinned
        };
        assert_eq!(
            apply(&unpinned, false).await.unwrap().status,
            crate::agent::StepStatus::Ok
        );
        let (newer, newer_sum) = release(dir.path(), "1.3.0");
        let newer_from = ArtifactFrom::Uploaded {
            path: newer.to_string_lossy().into_owned(),
        };
        let upgrade = apply(
            &Binary {
                from: &newer_from,
                sha256: &newer_sum,
                ..unpinned
            },
            false,
        )
        .await
        .unwrap();
        assert_eq!(
            upgrade.message,
            format!("replaced fake-server 1.2.3 with 1.3.0 ({target_str})")
        );
        let leftovers: Vec<_> = std::fs::read_dir(&work)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers, ["fake-server.installed"], "scratch removed");
    }
}
